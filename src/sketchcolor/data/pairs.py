"""Augmented self-reference: one color image -> (sketch, reference, target, correspondence)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sketchcolor.config import DataConfig
from sketchcolor.data.appearance import apply_appearance, sample_appearance
from sketchcolor.data.io import to_tensor
from sketchcolor.data.sketch import extract_sketch
from sketchcolor.data.tps import PROBE_DENSITY, apply_tps, sample_tps, tps_correspondence, warp_positions


@dataclass
class Triplet:
    """One training example.

    sketch ``[1, H, W]``, reference ``[3, H, W]``, target ``[3, H, W]`` in [-1, 1];
    correspondence ``[h * w]`` long: for each sketch feature cell, the reference cell it came
    from (-1 when not visible)."""

    sketch: torch.Tensor
    reference: torch.Tensor
    target: torch.Tensor
    correspondence: torch.Tensor


def make_triplet(
    image: np.ndarray,
    gen: torch.Generator,
    cfg: DataConfig,
    grid: tuple[int, int],
    sketch: np.ndarray | None = None,
) -> Triplet:
    """Build a triplet from uint8 RGB ``image`` ``[H, W, 3]``; deterministic for a given ``gen`` state.

    ``grid`` is the (h, w) of the model's feature grid. ``sketch`` (uint8 ``[H, W]``) is used as
    is when given (real line art, or a cached extraction); otherwise it is extracted here.
    """
    sketch = triplet_sketch(image, cfg, sketch)
    target = apply_appearance(to_tensor(image), sample_appearance(gen, cfg), cfg)  # a(I)
    params = sample_tps(gen, cfg.tps_grid, cfg.tps_scale, cfg.mirror, cfg.rotation)
    h, w = target.shape[-2:]
    positions = warp_positions(params, h, w)  # one point warp for the image and the correspondence
    reference = apply_tps(target, params, positions=positions)  # s(a(I))
    # the correspondence probes the reference PROBE_DENSITY times per cell side: the image's own
    # pixel centers when the image is the grid times that (every recipe: feature stride 8)
    shared = (h, w) == (grid[0] * PROBE_DENSITY, grid[1] * PROBE_DENSITY)
    corr = tps_correspondence(params, grid[0], grid[1], cfg.correspondence_tolerance, PROBE_DENSITY,
                              positions if shared else None)
    return Triplet(to_tensor(sketch), reference, target, corr)


def triplet_sketch(image: np.ndarray, cfg: DataConfig, sketch: np.ndarray | None = None) -> np.ndarray:
    """The sketch of a triplet of uint8 RGB ``image [H, W, 3]``: ``sketch`` (uint8 ``[H, W]``) as
    given, else extracted here; the same size as the image or a ValueError."""
    if sketch is None:
        sketch = extract_sketch(image, cfg)
    if sketch.shape[:2] != image.shape[:2]:
        raise ValueError(f"sketch {sketch.shape[:2]} and image {image.shape[:2]} differ in size")
    return sketch


def make_triplet_from_seed(image: np.ndarray, seed: int, cfg: DataConfig, grid: tuple[int, int],
                           sketch: np.ndarray | None = None) -> Triplet:
    """:func:`make_triplet` with a fresh generator seeded by ``seed``."""
    return make_triplet(image, torch.Generator().manual_seed(seed), cfg, grid, sketch)
