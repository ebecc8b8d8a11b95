"""Perceptual (Eq. 9) and style (Eq. 10) losses on a given frozen VGG trunk.

The trunk is built and loaded in :mod:`sketchcolor.models.vgg` (ImageNet VGG19) or
:mod:`sketchcolor.models.hed_weights` (HED's VGG16); anything that maps an image to
``{layer name: features}`` and names its ``layers`` will do.
"""

from __future__ import annotations

import torch

from sketchcolor.models.vgg import VGGTrunk


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by C*H*W: ``[B, C, H, W] -> [B, C, C]``, in fp32 under autocast too.

    The product sums H*W squares before the division: on HED's relu1_1 at 128 px up to 8.4e4,
    beyond fp16's largest number (65,504), so under fp16 autocast the style term was inf and
    every G step was skipped. In bf16 their rounding added to the style gradient's error against
    fp32 (7-27% before, 6-18% now, the rest from the bf16 features; measured on HED's trunk)."""
    b, c, h, w = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.float().reshape(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def perceptual_and_style(
    vgg: VGGTrunk, output: torch.Tensor, target: torch.Tensor, want_style: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over layers of mean L1 between features (perceptual) and between Gram matrices (style)."""
    f_out = vgg(output)
    with torch.no_grad():
        f_tgt = vgg(target)
    perc = sum((f_out[n] - f_tgt[n]).abs().mean() for n in vgg.layers)
    style = sum((gram(f_out[n]) - gram(f_tgt[n])).abs().mean() for n in vgg.layers) if want_style else output.sum() * 0.0
    return perc, style  # type: ignore[return-value]
