"""Where did this color come from: SCFT's attention shown on the pictures.

The attention ``[hw, M]`` of one forward pass says, for every cell of the sketch's feature grid,
how much of its color it took from each reference cell. This module reads it three ways:

- a point of the drawing -> its row, as a heat map over the reference (:func:`sketch_point_heat`);
- a point of the reference -> its column, as a heat map over the drawing (:func:`reference_point_heat`);
- per region of the drawing, how concentrated the match is (:func:`region_confidence`): the
  attention mass that falls in the best 3 x 3 cell window of the reference, averaged over the
  region's cells. A region that spreads its attention thinly over the whole reference took a
  blend, not a match, and is where a user should look first (:func:`weakest_regions`).

Points are (x, y) normalized to [0, 1] over each picture, as in :mod:`sketchcolor.inference.fixes`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from sketchcolor.data.io import Letterbox, unletterbox
from sketchcolor.inference.cells import pixel_cells, to_cell

HEAT_COLORMAP = cv2.COLORMAP_INFERNO


def cell_index(point: tuple[float, float], box: Letterbox, grid: tuple[int, int], stride: int) -> int:
    """The row-major index of the feature cell under a normalized point of a picture."""
    cx, cy = to_cell(point, box, stride)
    col = min(max(int(cx), 0), grid[1] - 1)
    row = min(max(int(cy), 0), grid[0] - 1)
    return row * grid[1] + col


def heat_on(image: np.ndarray, heat: np.ndarray, box: Letterbox) -> np.ndarray:
    """Overlay a heat map over the model's square grid (``[h, w]`` float >= 0, any scale) on
    ``image`` (uint8 ``[H, W, 3]`` or ``[H, W]``, the picture the letterbox ``box`` was made from):
    upsampled smoothly to the square, cropped to the picture, scaled to its maximum and blended
    over a dimmed gray copy of the picture. -> uint8 ``[H, W, 3]``."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    square = cv2.resize(heat.astype(np.float32), (box.size, box.size), interpolation=cv2.INTER_CUBIC)
    h = np.clip(unletterbox(square, box), 0.0, None)
    h = h / h.max() if h.max() > 0 else h
    colored = cv2.cvtColor(cv2.applyColorMap(np.round(h * 255).astype(np.uint8), HEAT_COLORMAP), cv2.COLOR_BGR2RGB)
    base = np.repeat((0.35 * gray.astype(np.float32) + 0.65 * 255 * 0.5)[..., None], 3, axis=2)
    a = (0.25 + 0.75 * h)[..., None]
    return np.clip(np.round(base * (1 - a) + colored.astype(np.float32) * a), 0, 255).astype(np.uint8)


def sketch_point_heat(attention: np.ndarray, point: tuple[float, float], sketch_box: Letterbox,
                      grid: tuple[int, int], reference_grid: tuple[int, int], stride: int,
                      reference_offset: int = 0) -> np.ndarray:
    """The attention row of the sketch cell under ``point`` as a ``reference_grid`` map
    ``[h_r, w_r]`` (the weights that cell gave each reference cell; its reference's columns
    start at ``reference_offset``)."""
    row = attention[cell_index(point, sketch_box, grid, stride)]
    n = reference_grid[0] * reference_grid[1]
    return row[reference_offset:reference_offset + n].reshape(reference_grid)


def reference_point_heat(attention: np.ndarray, point: tuple[float, float], reference_box: Letterbox,
                         grid: tuple[int, int], reference_grid: tuple[int, int], stride: int,
                         reference_offset: int = 0) -> np.ndarray:
    """The attention column of the reference cell under ``point``: how much each sketch cell drew
    on it, as a ``grid`` map ``[h, w]``."""
    col = reference_offset + cell_index(point, reference_box, reference_grid, stride)
    return attention[:, col].reshape(grid)


def region_cells(labels: np.ndarray, box: Letterbox, grid: tuple[int, int], stride: int) -> np.ndarray:
    """float ``[N + 1, hw]``: for each region, the share of its pixels in each feature cell (rows
    sum to 1 for labels with pixels). Every full-resolution pixel is mapped to its cell through
    the letterbox, so a region smaller than a cell still gets its cell."""
    cells = pixel_cells(labels.shape, box, grid, stride)
    n, hw = int(labels.max()) + 1, grid[0] * grid[1]
    counts = np.bincount((labels.astype(np.int64) * hw + cells).ravel(), minlength=n * hw).reshape(n, hw)
    counts = counts.astype(np.float64)
    sums = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)


def region_confidence(attention: np.ndarray, labels: np.ndarray, sketch_box: Letterbox, grid: tuple[int, int],
                      reference_grids: Sequence[tuple[int, int]], stride: int, window: int = 3) -> np.ndarray:
    """float ``[N + 1]`` in [0, 1]: per region, the attention mass its cells put (on average) in
    the best ``window`` x ``window`` area of one reference. 1 means every cell of the region drew
    on one small reference area; 9/M (a uniform row) means no match at all."""
    weights = region_cells(labels, sketch_box, grid, stride)
    rows = weights @ attention.astype(np.float64)  # [N + 1, M]: the region's mean attention row
    best = np.zeros(len(rows))
    start = 0
    for gh, gw in reference_grids:
        maps = rows[:, start:start + gh * gw].reshape(-1, gh, gw)
        start += gh * gw
        # sum over every window x window area (zero-padded at the edges): a cumulative-sum box filter
        pad = window // 2
        p = np.pad(maps, ((0, 0), (pad + 1, pad), (pad + 1, pad)))
        c = p.cumsum(1).cumsum(2)
        boxes = c[:, window:, window:] - c[:, :-window, window:] - c[:, window:, :-window] + c[:, :-window, :-window]
        best = np.maximum(best, boxes.reshape(len(rows), -1).max(axis=1))
    return best


def weakest_regions(confidence: np.ndarray, labels: np.ndarray, paper: np.ndarray, count: int = 3,
                    min_share: float = 0.002) -> list[int]:
    """The ``count`` painted regions (not paper, at least ``min_share`` of the picture) whose
    match is least confident, weakest first."""
    areas = np.bincount(labels.ravel(), minlength=len(confidence))
    candidates = [i for i in range(1, len(confidence)) if not paper[i] and areas[i] >= min_share * labels.size]
    return sorted(candidates, key=lambda i: confidence[i])[:count]


def outline_regions(image: np.ndarray, labels: np.ndarray, regions: Sequence[int],
                    color: tuple[int, int, int] = (255, 0, 200)) -> np.ndarray:
    """``image`` uint8 ``[H, W, 3]`` with the outlines of ``regions`` drawn in ``color`` (about
    0.5% of the picture thick), to mark where to look."""
    out = image.copy()
    thickness = max(2, round(0.005 * max(labels.shape)))
    for r in regions:
        mask = (labels == r).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, color, thickness)
    return out
