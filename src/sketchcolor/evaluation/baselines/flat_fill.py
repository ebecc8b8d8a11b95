"""Flat fill baseline: every enclosed region of the sketch in the reference's mean color, paper white.

On flat-colored drawings this ten-line rule is hard to beat on distribution scores: even paint,
crisp lines and a clean background. A colorizer must beat it by putting the *right* colors in the
right regions. Regions come from the same segmentation as the pipeline's ``regions`` rendering.
"""

from __future__ import annotations

import numpy as np
from skimage.color import lab2rgb, rgb2lab

from sketchcolor.evaluation.baselines.common import check_inputs, lines_on
from sketchcolor.inference.render import PAPER_CHROMA, PAPER_LIGHTNESS, border_labels, segment_regions


def mean_ink_color(reference: np.ndarray) -> np.ndarray:
    """The reference's mean Lab color over its non-paper pixels, as RGB float ``[3]`` in [0, 255]."""
    lab = rgb2lab(reference).reshape(-1, 3)
    paper = (lab[:, 0] > PAPER_LIGHTNESS) & (np.hypot(lab[:, 1], lab[:, 2]) < PAPER_CHROMA)
    ink = lab[~paper] if (~paper).any() else lab
    return np.clip(lab2rgb(ink.mean(axis=0)[None, None])[0, 0], 0.0, 1.0) * 255.0


class FlatFill:
    """``(sketch [H, W], reference [H', W', 3]) -> [H, W, 3]``: regions not touching the border
    in the reference's mean non-paper color, the rest white, lines multiplied on top."""

    name = "flat_fill"

    def __call__(self, sketch: np.ndarray, reference: np.ndarray) -> np.ndarray:
        check_inputs(sketch, reference)
        labels = segment_regions(sketch)
        enclosed = ~np.isin(labels, border_labels(labels))
        paint = np.full(sketch.shape + (3,), 255.0, np.float32)
        paint[enclosed] = mean_ink_color(reference)
        return lines_on(paint, sketch)
