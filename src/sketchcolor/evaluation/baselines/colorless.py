"""Colorless baseline: the sketch on mid-gray paper (what a colorizer that paints nothing scores)."""

from __future__ import annotations

import numpy as np

from sketchcolor.evaluation.baselines.common import check_inputs, lines_on


class Colorless:
    """``(sketch [H, W], reference) -> [H, W, 3]``: regions ``gray`` (128), lines kept dark."""

    name = "colorless"

    def __init__(self, gray: int = 128) -> None:
        self.gray = gray

    def __call__(self, sketch: np.ndarray, reference: np.ndarray) -> np.ndarray:
        check_inputs(sketch, reference)
        return lines_on(np.full(sketch.shape + (3,), self.gray, np.float32), sketch)
