"""Parameter counts and FLOPs (counted by ``torch.utils.flop_counter``) of G and D."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from sketchcolor.config import ModelConfig
from sketchcolor.models.discriminator import PatchDiscriminator
from sketchcolor.models.generator import Colorizer


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def forward_flops(cfg: ModelConfig, generator: Colorizer | None = None) -> int:
    """FLOPs (2 x multiply-adds) of one G forward on one ``image_size`` pair."""
    g = generator if generator is not None else Colorizer(cfg)
    s = cfg.image_size
    with FlopCounterMode(display=False) as fc:
        g(torch.zeros(1, 1, s, s), torch.zeros(1, 3, s, s))
    return int(fc.get_total_flops())


def describe(cfg: ModelConfig) -> list[str]:
    """Human-readable lines: parameters of G (and its parts) and D, and forward FLOPs."""
    g, d = Colorizer(cfg), PatchDiscriminator(cfg)
    n = cfg.image_size // cfg.feature_stride
    parts = {"encoders": count_params(g.sketch_encoder) + count_params(g.reference_encoder),
             "fusion": count_params(g.scft if cfg.fusion == "scft" else g.concat), "res_blocks": count_params(g.bottleneck) + count_params(g.res_blocks),
             "decoder": count_params(g.decoder) + count_params(g.to_rgb)}
    lines = [f"image size        {cfg.image_size} px, feature grid {n} x {n}, k = {cfg.feature_channels}",
             f"G parameters      {count_params(g) / 1e6:.2f} M  (" + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in parts.items()) + ")",
             f"D parameters      {count_params(d) / 1e6:.2f} M",
             f"G forward FLOPs   {forward_flops(cfg, g) / 1e9:.2f} GFLOP per {cfg.image_size} px image"]
    return lines
