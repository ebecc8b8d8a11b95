"""Baselines that colorize a sketch from a reference without our model, for side-by-side tables.

Each is a small class with a ``name`` and ``__call__(sketch, reference) -> image``: ``sketch``
uint8 ``[H, W]`` (dark lines on white), ``reference`` uint8 RGB ``[H', W', 3]`` of any size,
output uint8 RGB ``[H, W, 3]`` at the sketch's size. All of them draw the sketch's lines on top
of their paint by multiplication (``paint * sketch / 255``), so lines stay as dark as drawn.

- :class:`Colorless`: the sketch on mid-gray (no color at all).
- :class:`GlobalTransfer`: Reinhard-style global statistics: the reference's mean Lab color.
- :class:`PatchNN`: per-cell nearest neighbour on local line structure, copying cell colors.

The "no attention" baseline (SCFT replaced by concatenation) is a model variant, not here.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Baseline(Protocol):
    """``baseline(sketch [H, W] uint8, reference [H', W', 3] uint8) -> [H, W, 3] uint8``."""

    name: str

    def __call__(self, sketch: np.ndarray, reference: np.ndarray) -> np.ndarray: ...


def check_inputs(sketch: np.ndarray, reference: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``sketch`` is uint8 ``[H, W]`` and ``reference`` uint8 ``[H', W', 3]``."""
    if sketch.dtype != np.uint8 or sketch.ndim != 2:
        raise ValueError(f"sketch must be uint8 [H, W], got {sketch.dtype} {sketch.shape}")
    if reference.dtype != np.uint8 or reference.ndim != 3 or reference.shape[2] != 3:
        raise ValueError(f"reference must be uint8 [H, W, 3], got {reference.dtype} {reference.shape}")


def lines_on(paint: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """Multiply the sketch's lines onto ``paint``: float or uint8 ``[H, W, 3]`` in [0, 255] ->
    uint8 ``[H, W, 3]``. White paper leaves the paint as it is; black ink gives black."""
    out = np.asarray(paint, np.float32) * (sketch.astype(np.float32)[..., None] / 255.0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# Imported after the helpers above, which the baseline modules use.
from sketchcolor.evaluation.baselines.colorless import Colorless  # noqa: E402
from sketchcolor.evaluation.baselines.global_transfer import GlobalTransfer  # noqa: E402
from sketchcolor.evaluation.baselines.patch_nn import PatchNN  # noqa: E402


def all_baselines() -> list[Baseline]:
    """One instance of every baseline with its default settings, in table order."""
    return [Colorless(), GlobalTransfer(), PatchNN()]


__all__ = ["Baseline", "Colorless", "GlobalTransfer", "PatchNN", "all_baselines", "check_inputs", "lines_on"]
