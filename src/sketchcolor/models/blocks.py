"""Small building blocks shared by the encoders, the decoder and D."""

from __future__ import annotations

import torch
from torch import nn


def make_norm(kind: str, channels: int) -> nn.Module:
    """``"none"`` -> identity, ``"batch"`` -> BatchNorm2d."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}")


class ConvAct(nn.Module):
    """3x3 conv (stride 1 or 2) -> norm -> LeakyReLU(0.2): ``[B, Cin, H, W] -> [B, Cout, H/s, W/s]``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, norm: str = "none") -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=norm == "none")
        self.norm = make_norm(norm, cout)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut: ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, channels: int, norm: str = "none") -> None:
        super().__init__()
        self.conv1 = ConvAct(channels, channels, norm=norm)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none")
        self.norm2 = make_norm(norm, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm2(self.conv2(self.conv1(x)))


class UpBlock(nn.Module):
    """Upsample x2, conv to the skip's width, concatenate the skip, fuse.

    ``x [B, Cin, H, W]``, ``skip [B, Cs, 2H, 2W]`` -> ``[B, Cs, 2H, 2W]``."""

    def __init__(self, cin: int, cskip: int, norm: str = "none") -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce = ConvAct(cin, cskip, norm=norm)
        self.fuse = ConvAct(2 * cskip, cskip, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.reduce(self.up(x))
        return self.fuse(torch.cat([x, skip], dim=1))
