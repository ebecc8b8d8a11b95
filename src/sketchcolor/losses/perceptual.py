"""Perceptual (Eq. 9) and style (Eq. 10) losses on a given frozen VGG trunk.

The trunk is built and loaded in :mod:`sketchcolor.models.vgg` (ImageNet VGG19) or
:mod:`sketchcolor.models.hed_weights` (HED's VGG16); anything that maps an image to
``{layer name: features}`` and names its ``layers`` will do.
"""

from __future__ import annotations

import torch

from sketchcolor.models.vgg import VGGTrunk


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by C*H*W: ``[B, C, H, W] -> [B, C, C]``."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
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
