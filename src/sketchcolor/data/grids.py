"""Picture grids: rows of (sketch | reference | output [| target]) as one uint8 image.

Shared by the training samples, the evaluation grid and the demo, so it sits in the bottom layer.
"""

from __future__ import annotations

import numpy as np
import torch

from sketchcolor.data.io import to_uint8


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def grid_from_rows(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tile uint8 images (all the same size, gray or RGB) into ``[H, W, 3]`` with white gaps."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) - pad, ncol * (w + pad) - pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            out[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = _rgb(img)
    return out


def tensor_grid(*columns: torch.Tensor, max_rows: int = 4) -> np.ndarray:
    """Columns of batches ``[B, C, H, W]`` in [-1, 1] -> grid ``[H, W, 3]`` of up to ``max_rows`` rows."""
    n = min(max_rows, columns[0].shape[0])
    return grid_from_rows([[to_uint8(c[i]) for c in columns] for i in range(n)])
