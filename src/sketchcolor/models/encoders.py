"""E_s and E_r: L conv layers whose activations, pooled to the last level, form V."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sketchcolor.config import ModelConfig
from sketchcolor.models.blocks import ConvAct


class Encoder(nn.Module):
    """``[B, Cin, H, W]`` -> list of L activations ``f^l [B, c_l, H_l, W_l]``.

    Layer ``l`` (1-based) has stride 2 when ``l`` is in ``cfg.downsample_layers``.
    """

    def __init__(self, in_channels: int, cfg: ModelConfig) -> None:
        super().__init__()
        layers = []
        cin = in_channels
        for i, cout in enumerate(cfg.encoder_channels, start=1):
            stride = 2 if i in cfg.downsample_layers else 1
            layers.append(ConvAct(cin, cout, stride=stride, norm=cfg.norm))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        assert x.dim() == 4 and x.shape[1] == self.in_channels, f"expected [B, {self.in_channels}, H, W], got {tuple(x.shape)}"
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


def concat_levels(feats: list[torch.Tensor]) -> torch.Tensor:
    """V: every level average-pooled to the last level's size and concatenated: ``[B, k, h, w]``."""
    h, w = feats[-1].shape[-2:]
    return torch.cat([f if f.shape[-2:] == (h, w) else F.adaptive_avg_pool2d(f, (h, w)) for f in feats], dim=1)
