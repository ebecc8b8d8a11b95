"""Global color transfer baseline, Reinhard-style (Reinhard et al. 2001, statistics in Lab).

Reinhard's transfer shifts and scales each Lab channel of a source image to the reference's mean
and standard deviation. With a line drawing as the source it degenerates: the sketch has no
chroma to rescale (its a, b are 0 everywhere, standard deviation 0) and its only luminance
variation is paper versus ink. So the transfer reduces to its mean term: the paper becomes the
reference's mean Lab color, and the lines are multiplied on top (the choice documented here:
flat fill, no luminance variation, because stretching the sketch's paper/ink contrast to the
reference's luminance spread would only tint the lines).
"""

from __future__ import annotations

import numpy as np
from skimage.color import lab2rgb, rgb2lab

from sketchcolor.evaluation.baselines.common import check_inputs, lines_on


def mean_lab_color(reference: np.ndarray) -> np.ndarray:
    """The reference's mean color taken in CIELAB, back as RGB float ``[3]`` in [0, 255]."""
    lab = rgb2lab(reference).reshape(-1, 3).mean(axis=0)
    return np.clip(lab2rgb(lab[None, None])[0, 0], 0.0, 1.0) * 255.0


class GlobalTransfer:
    """``(sketch [H, W], reference [H', W', 3]) -> [H, W, 3]``: flat fill with the reference's
    mean Lab color under the sketch's lines."""

    name = "global_transfer"

    def __call__(self, sketch: np.ndarray, reference: np.ndarray) -> np.ndarray:
        check_inputs(sketch, reference)
        paint = np.broadcast_to(mean_lab_color(reference).astype(np.float32), sketch.shape + (3,))
        return lines_on(paint, sketch)
