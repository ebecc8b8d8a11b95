"""The appearance transform a(): a random per-channel color shift of the whole image.

Sampling (needs a generator) is kept apart from applying (pure), so a seed reproduces a batch.
"""

from __future__ import annotations

import torch


def sample_appearance(gen: torch.Generator, strength: float) -> torch.Tensor:
    """Draw one shift per RGB channel, uniform in [-strength, strength]: ``[3]``."""
    return (torch.rand(3, generator=gen) * 2.0 - 1.0) * strength


def apply_appearance(image: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Add ``shift`` ``[3]`` (or ``[B, 3]``) to ``image`` ``[3, H, W]`` (or ``[B, 3, H, W]``) in
    [-1, 1] units and clamp back to [-1, 1]."""
    return (image + shift[..., None, None]).clamp(-1.0, 1.0)
