"""Augmented self-reference evaluation: where the target is known, score outputs by L1.

Each test drawing (line art + its color image) becomes a triplet as in training, with a fixed
seed: the reference is the color image recolored by a() and TPS-warped, the target the recolored
image. a() and the warp are always those of the default recipe (:data:`PROTOCOL`), whatever the
scored model was trained with: a model trained with a weaker a() (an ablation row) is scored on the
same targets as every other model, not on easier ones of its own. Any method (our pipeline or a
baseline) maps (sketch, reference) to an image that is compared with the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sketchcolor.config import DataConfig
from sketchcolor.data.io import letterbox, to_gray, to_uint8
from sketchcolor.data.pairs import make_triplet_from_seed


# The evaluation's a() and TPS: the default recipe's (full-circle hue rotation in Lab, half the
# pictures recolored region by region); fixed so that results of differently trained models compare.
PROTOCOL = DataConfig()


@dataclass
class SelfRefCase:
    """uint8 arrays at the evaluation size: sketch ``[S, S]``, reference/target ``[S, S, 3]``;
    correspondence ``[h * w]`` (-1 = not visible)."""

    sketch: np.ndarray
    reference: np.ndarray
    target: np.ndarray
    correspondence: np.ndarray


def self_reference_cases(drawings: list[tuple[np.ndarray, np.ndarray]], pipe, seed: int = 0,
                         size: int | None = None) -> list[SelfRefCase]:
    """``drawings``: (line art uint8 RGB or gray, color uint8 RGB) pairs -> one case each, seeded,
    at ``size`` px (default the model's size; the correspondence is on the model's grid). The
    triplets follow :data:`PROTOCOL`, not the model's own training data settings."""
    size = size or pipe.size
    n = pipe.size // pipe.config.model.feature_stride
    cases = []
    for i, (line, color) in enumerate(drawings):
        line_gray = to_gray(line) if line.ndim == 3 else line
        sketch = letterbox(line_gray, size)[0]
        t = make_triplet_from_seed(letterbox(color, size)[0], seed + i, PROTOCOL, (n, n), sketch=sketch)
        cases.append(SelfRefCase(sketch, to_uint8(t.reference), to_uint8(t.target), t.correspondence.numpy()))
    return cases


def mean_l1(method: Callable[[np.ndarray, np.ndarray], np.ndarray], cases: list[SelfRefCase]) -> float:
    """Mean absolute error to the target in [0, 1] units over all cases."""
    errs = [np.abs(method(c.sketch, c.reference).astype(np.float64) - c.target).mean() / 255.0 for c in cases]
    return float(np.mean(errs))
