"""Patch nearest-neighbour baseline: match local line structure, copy the matched cell's color.

The reference is resized to the sketch's size and turned into line art with the same XDoG
extractor as training (:func:`sketchcolor.data.sketch.extract_sketch`), so both sides are
compared as drawings. Each ``cell x cell`` block of either drawing gets a descriptor:

- the HOG orientation histograms (scikit-image, one cell per block) of the block and its eight
  neighbours (81 numbers: local structure with some context),
- its ink density (mean darkness), and
- its position in the picture (normalised to [0, 1], scaled by ``position_weight``), which
  breaks ties between equally empty blocks in favour of the same place rather than an
  arbitrary one.

Every sketch cell takes the mean color of its nearest reference cell (Euclidean distance
between descriptors; the reference cell's line pixels are left out of its mean when it has
others), the cell colors are upsampled bilinearly to the sketch's size, and the lines are
multiplied on top.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.feature import hog

from sketchcolor.config import DataConfig
from sketchcolor.data.sketch import extract_sketch
from sketchcolor.evaluation.baselines.common import check_inputs, lines_on


def _pad_to(img: np.ndarray, h: int, w: int, fill: int = 255) -> np.ndarray:
    """Pad ``[H, W(, C)]`` at the bottom/right to ``[h, w(, C)]`` with ``fill``."""
    pad = [(0, h - img.shape[0]), (0, w - img.shape[1])] + [(0, 0)] * (img.ndim - 2)
    return np.pad(img, pad, constant_values=fill)


class PatchNN:
    """``(sketch [H, W], reference [H', W', 3]) -> [H, W, 3]``, see the module docstring."""

    name = "patch_nn"

    def __init__(self, cell: int = 8, orientations: int = 9, ink_weight: float = 1.0,
                 position_weight: float = 0.5, data: DataConfig | None = None) -> None:
        self.cell = cell
        self.orientations = orientations
        self.ink_weight = ink_weight
        self.position_weight = position_weight
        self.data = data or DataConfig()

    def descriptors(self, drawing: np.ndarray) -> np.ndarray:
        """uint8 ``[gh * c, gw * c]`` drawing -> ``[gh * gw, 9 * orientations + 3]`` (row-major cells)."""
        c = self.cell
        gh, gw = drawing.shape[0] // c, drawing.shape[1] // c
        ink = 1.0 - drawing.astype(np.float64) / 255.0
        hist = hog(ink, orientations=self.orientations, pixels_per_cell=(c, c), cells_per_block=(1, 1),
                   feature_vector=False)[:, :, 0, 0, :]  # [gh, gw, o]
        padded = np.pad(hist, ((1, 1), (1, 1), (0, 0)))
        context = np.concatenate([padded[dy : dy + gh, dx : dx + gw] for dy in range(3) for dx in range(3)], axis=2)
        density = ink.reshape(gh, c, gw, c).mean(axis=(1, 3))[..., None] * self.ink_weight
        ys, xs = np.meshgrid(np.arange(gh) / max(gh - 1, 1), np.arange(gw) / max(gw - 1, 1), indexing="ij")
        position = np.stack([ys, xs], axis=2) * self.position_weight
        return np.concatenate([context, density, position], axis=2).reshape(gh * gw, -1)

    def cell_colors(self, reference: np.ndarray, drawing: np.ndarray) -> np.ndarray:
        """Mean RGB of each cell of ``reference [gh * c, gw * c, 3]``, line pixels of ``drawing``
        left out where the cell has other pixels: ``[gh * gw, 3]``."""
        c = self.cell
        gh, gw = drawing.shape[0] // c, drawing.shape[1] // c
        rgb = reference.astype(np.float64).reshape(gh, c, gw, c, 3)
        paper = (drawing >= 128).astype(np.float64).reshape(gh, c, gw, c, 1)
        paper_sum = paper.sum(axis=(1, 3))
        on_paper = (rgb * paper).sum(axis=(1, 3)) / np.maximum(paper_sum, 1.0)
        overall = rgb.mean(axis=(1, 3))
        return np.where(paper_sum > 0, on_paper, overall).reshape(gh * gw, 3)

    def __call__(self, sketch: np.ndarray, reference: np.ndarray) -> np.ndarray:
        check_inputs(sketch, reference)
        h, w = sketch.shape
        c = self.cell
        gh, gw = max(1, -(-h // c)), max(1, -(-w // c))
        ref = cv2.resize(reference, (w, h), interpolation=cv2.INTER_AREA)
        ref_drawing = extract_sketch(ref, self.data)
        sk = _pad_to(sketch, gh * c, gw * c)
        ref = _pad_to(ref, gh * c, gw * c)
        ref_drawing = _pad_to(ref_drawing, gh * c, gw * c)
        d_s, d_r = self.descriptors(sk), self.descriptors(ref_drawing)
        dist = (d_s**2).sum(1)[:, None] - 2.0 * d_s @ d_r.T + (d_r**2).sum(1)[None]  # [Ns, Nr]
        match = dist.argmin(axis=1)
        colors = self.cell_colors(ref, ref_drawing)[match].reshape(gh, gw, 3).astype(np.float32)
        paint = cv2.resize(colors, (gw * c, gh * c), interpolation=cv2.INTER_LINEAR)[:h, :w]
        return lines_on(paint, sketch)
