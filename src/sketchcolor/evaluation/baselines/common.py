"""What every baseline shares: the call signature, input checks and the line overlay."""

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
