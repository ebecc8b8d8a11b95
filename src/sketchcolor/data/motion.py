"""Synthetic frame sequences for measuring color consistency (issue 13): one drawing moved by a
smooth thin-plate-spline motion across N frames, with its regions tracked from frame to frame.

The motion is :mod:`sketchcolor.data.tps`' warp with control points that follow slow sine waves
(random amplitude direction and phase per point, frame 0 unmoved), so consecutive frames differ a
little, as an animation's in-betweens do. A region of the first frame is tracked by warping its
mask with the same motion; its color in a colorized frame is the median Lab of the paint inside
the warped mask (eroded, lines left out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from skimage.color import rgb2lab

from sketchcolor.data.tps import TPSParams, apply_tps

LINE_THRESHOLD = 128  # sketch pixels darker than this are lines (as inference.render)


def smooth_motion(num_frames: int, grid: int = 4, amplitude: float = 0.06, cycles: float = 1.0,
                  seed: int = 0) -> list[TPSParams]:
    """``num_frames`` TPS warps on a ``grid x grid`` lattice: point k moves along a random
    direction by ``amplitude * (sin(2 pi cycles t / N + phi_k) - sin(phi_k))`` (normalised units;
    the picture spans 2), so frame 0 is the identity and the motion is smooth in t."""
    gen = torch.Generator().manual_seed(seed)
    lin = torch.linspace(-1.0, 1.0, grid)
    ys, xs = torch.meshgrid(lin, lin, indexing="ij")
    src = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    phase = torch.rand(len(src), generator=gen) * 2 * math.pi
    angle = torch.rand(len(src), generator=gen) * 2 * math.pi
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    out = []
    for t in range(num_frames):
        wave = torch.sin(2 * math.pi * cycles * t / max(num_frames, 1) + phase) - torch.sin(phase)
        out.append(TPSParams(src=src, dst=src + amplitude * wave[:, None] * direction))
    return out


def warp_gray(image: np.ndarray, params: TPSParams) -> np.ndarray:
    """uint8 ``[H, W]`` (white paper) warped; uncovered areas white."""
    x = torch.from_numpy(image).float()[None] / 127.5 - 1.0
    y = apply_tps(x, params, fill=1.0)[0]
    return np.clip(np.round((y.numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)


def warp_masks(masks: np.ndarray, params: TPSParams) -> np.ndarray:
    """bool ``[R, H, W]`` warped (bilinear, then more than half covered)."""
    y = apply_tps(torch.from_numpy(masks.astype(np.float32)), params, fill=0.0)
    return y.numpy() > 0.5


@dataclass
class TrackedSequence:
    """``frames``: uint8 ``[H, W]`` line art, one per frame; ``masks``: bool ``[T, R, H, W]``, each
    tracked region's pixels in each frame (eroded, lines left out)."""

    frames: list[np.ndarray]
    masks: np.ndarray


def make_sequence(line: np.ndarray, labels: np.ndarray, regions: list[int], num_frames: int,
                  erode: int = 2, **motion: float) -> TrackedSequence:
    """Move ``line`` (uint8 ``[H, W]``) smoothly over ``num_frames`` frames and track the
    ``regions`` (labels of ``labels`` ``[H, W]``, e.g. ``inference.render.segment_regions``'
    output on ``line``). ``motion``: :func:`smooth_motion`'s settings."""
    masks0 = np.stack([labels == r for r in regions])
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
    frames, masks = [], []
    for params in smooth_motion(num_frames, **motion):
        frame = warp_gray(line, params)
        moved = warp_masks(masks0, params) & (frame >= LINE_THRESHOLD)[None]
        if erode > 0:
            moved = np.stack([cv2.erode(m.astype(np.uint8), disc).astype(bool) for m in moved])
        frames.append(frame)
        masks.append(moved)
    return TrackedSequence(frames=frames, masks=np.stack(masks))


def tracked_colors(paints: list[np.ndarray], masks: np.ndarray, min_pixels: int = 8) -> np.ndarray:
    """Lab ``[T, R, 3]``: the median Lab color of each frame's paint (uint8 ``[H, W, 3]``) over each
    tracked region's mask; NaN where fewer than ``min_pixels`` pixels are left."""
    out = np.full((len(paints), masks.shape[1], 3), np.nan)
    for t, paint in enumerate(paints):
        lab = rgb2lab(paint)
        for r in range(masks.shape[1]):
            m = masks[t, r]
            if m.sum() >= min_pixels:
                out[t, r] = np.median(lab[m], axis=0)
    return out


def color_spread(colors: np.ndarray) -> np.ndarray:
    """Per tracked region ``[R]``: the mean ΔE (CIE76, Euclidean in Lab) of its color in each frame
    to its mean color over the frames (``colors`` Lab ``[T, R, 3]``, NaN frames left out)."""
    mean = np.nanmean(colors, axis=0, keepdims=True)
    return np.nanmean(np.linalg.norm(colors - mean, axis=-1), axis=0)


def color_drift(colors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """ΔE ``[T, R]`` of each frame's region colors (Lab ``[T, R, 3]``) to ``reference`` (Lab ``[R, 3]``:
    e.g. the first frame's colors or the color book's)."""
    return np.linalg.norm(colors - reference[None], axis=-1)
