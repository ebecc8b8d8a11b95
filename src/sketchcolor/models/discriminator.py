"""Conditional PatchGAN D(image, sketch) with spectral norm."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from sketchcolor.config import ModelConfig


class PatchDiscriminator(nn.Module):
    """``image [B, 3, H, W]`` + ``sketch [B, 1, H, W]`` -> patch logits ``[B, 1, H', W']``.

    pix2pix's n-layer PatchGAN: 4x4 convs, stride 2 for the first ``disc_layers``, then two
    stride-1 layers; LeakyReLU 0.2; spectral norm on every conv when configured.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        sn = spectral_norm if cfg.disc_spectral_norm else (lambda m: m)
        c = cfg.disc_channels
        layers: list[nn.Module] = [sn(nn.Conv2d(4, c, 4, 2, 1)), nn.LeakyReLU(0.2)]
        cin = c
        for n in range(1, cfg.disc_layers):
            cout = c * min(2**n, 8)
            layers += [sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin = cout
        cout = c * min(2**cfg.disc_layers, 8)
        layers += [sn(nn.Conv2d(cin, cout, 4, 1, 1)), nn.LeakyReLU(0.2), sn(nn.Conv2d(cout, 1, 4, 1, 1))]
        self.layers = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, sketch: torch.Tensor) -> torch.Tensor:
        assert image.shape[1] == 3 and sketch.shape[1] == 1 and image.shape[-2:] == sketch.shape[-2:], (
            tuple(image.shape), tuple(sketch.shape))
        return self.layers(torch.cat([image, sketch], dim=1))
