"""Where a picture's points and pixels fall on the model's feature grid.

A picture is letterboxed into the model's square (:func:`sketchcolor.data.io.letterbox`); the
encoders reduce that square by ``stride`` to a grid of cells, the rows (sketch) and columns
(reference) of SCFT's attention. Points are (x, y) normalized to [0, 1] over the picture.
"""

from __future__ import annotations

import numpy as np

from sketchcolor.data.io import Letterbox


def to_cell(point: tuple[float, float], box: Letterbox, stride: int) -> tuple[float, float]:
    """A normalized point of a picture -> (column, row) on the feature grid, fractional (cell
    centres at .5), through the letterbox that put the picture in the model's square."""
    x = box.left + point[0] * box.inner_w
    y = box.top + point[1] * box.inner_h
    return x / stride, y / stride


def point_pixel(point: tuple[float, float], shape: tuple[int, ...]) -> tuple[int, int]:
    """A normalized point -> the (x, y) pixel of a picture of ``shape`` ``(H, W, ...)`` it lies in,
    clipped into the picture: the inverse of taking a pixel's centre, ``((x + 0.5) / W, (y + 0.5) / H)``.
    Recolors, hints and the app's clicks all find "the region under a point" through this."""
    h, w = shape[:2]
    return min(max(int(point[0] * w), 0), w - 1), min(max(int(point[1] * h), 0), h - 1)


def pixel_cells(shape: tuple[int, int], box: Letterbox, grid: tuple[int, int], stride: int) -> np.ndarray:
    """int64 ``[H, W]``: the row-major cell index of every pixel of a picture of ``shape``."""
    h, w = shape
    xs = ((box.left + (np.arange(w) + 0.5) * box.inner_w / w) // stride).clip(0, grid[1] - 1).astype(np.int64)
    ys = ((box.top + (np.arange(h) + 0.5) * box.inner_h / h) // stride).clip(0, grid[0] - 1).astype(np.int64)
    return ys[:, None] * grid[1] + xs[None, :]


def cell_coverage(mask: np.ndarray, box: Letterbox, grid: tuple[int, int], stride: int) -> np.ndarray:
    """float ``[h * w]`` in [0, 1]: the share of each cell's picture pixels that lie in ``mask``
    (bool ``[H, W]``, full resolution); 0 for cells outside the picture."""
    cells = pixel_cells(mask.shape, box, grid, stride).ravel()
    n = grid[0] * grid[1]
    total = np.bincount(cells, minlength=n).astype(np.float64)
    inside = np.bincount(cells[mask.ravel()], minlength=n).astype(np.float64)
    return np.divide(inside, total, out=np.zeros(n), where=total > 0)
