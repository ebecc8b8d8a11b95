"""Baselines that colorize a sketch from a reference without our model, for side-by-side tables.

Each is a small class with a ``name`` and ``__call__(sketch, reference) -> image``: ``sketch``
uint8 ``[H, W]`` (dark lines on white), ``reference`` uint8 RGB ``[H', W', 3]`` of any size,
output uint8 RGB ``[H, W, 3]`` at the sketch's size. All of them draw the sketch's lines on top
of their paint by multiplication (``paint * sketch / 255``), so lines stay as dark as drawn.

- :class:`Colorless`: the sketch on mid-gray (no color at all).
- :class:`GlobalTransfer`: Reinhard-style global statistics: the reference's mean Lab color.
- :class:`FlatFill`: every enclosed region in the reference's mean non-paper color, paper white
  (the simple baseline a colorizer must beat on flat-colored drawings).
- :class:`PatchNN`: per-cell nearest neighbour on local line structure, copying cell colors.

The "no attention" baseline (SCFT replaced by concatenation) is a model variant, not here.
"""

from __future__ import annotations

from sketchcolor.evaluation.baselines.colorless import Colorless
from sketchcolor.evaluation.baselines.common import Baseline, check_inputs, lines_on
from sketchcolor.evaluation.baselines.flat_fill import FlatFill
from sketchcolor.evaluation.baselines.global_transfer import GlobalTransfer
from sketchcolor.evaluation.baselines.patch_nn import PatchNN


def all_baselines() -> list[Baseline]:
    """One instance of every baseline with its default settings, in table order."""
    return [Colorless(), GlobalTransfer(), FlatFill(), PatchNN()]


__all__ = ["Baseline", "Colorless", "FlatFill", "GlobalTransfer", "PatchNN", "all_baselines", "check_inputs", "lines_on"]
