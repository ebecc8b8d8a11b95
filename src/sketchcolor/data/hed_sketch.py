"""Line drawings from photos with the HED edge detector: threshold, thin, stroke, clean.

HED (``sketchcolor.models.hed``) gives a soft edge probability a few pixels wide. A drawing-like
sketch is made from it by non-maximum suppression across the edges (only the crest of each soft
line survives), hysteresis thresholding (strong edges, plus weaker edge pixels connected to
them), thinning to one-pixel skeletons (``skimage.morphology.thin``), removing connected specks
smaller than ``min_size`` pixels, and optionally dilating the skeleton by one pixel so the strokes
are about 2-3 px wide, like pen lines.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from sketchcolor.errors import SketchColorError


def hed_probability(rgb: np.ndarray, hed: nn.Module) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` -> float32 ``[H, W]`` edge probability in [0, 1].

    ``hed`` is the network (:class:`sketchcolor.models.hed.HED`): passed in, since the data layer
    imports no models."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {rgb.dtype} {rgb.shape}")
    device = next(hed.parameters()).device
    x = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1.0
    with torch.no_grad():
        return hed(x)[0, 0].float().cpu().numpy()


def ridge_nms(prob: np.ndarray, sigma: float = 1.5, radius: float = 1.0) -> np.ndarray:
    """Keep only pixels that are the maximum of ``prob`` across the edge (a ridge): ``[H, W]`` bool.

    The across-edge direction is the Hessian eigenvector of the most negative eigenvalue of
    ``prob`` blurred by ``sigma``; a pixel survives where ``prob`` is not below its values
    ``radius`` pixels away on either side along that direction (bilinear samples).
    """
    p = prob.astype(np.float32)
    g = cv2.GaussianBlur(p, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    hxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    hyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3, borderType=cv2.BORDER_REPLICATE)
    hxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    theta = 0.5 * np.arctan2(2.0 * hxy, hxx - hyy) + np.pi / 2  # direction of the smaller eigenvalue
    nx, ny = np.cos(theta) * radius, np.sin(theta) * radius
    h, w = p.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    keep = np.ones_like(p, dtype=bool)
    for sgn in (1.0, -1.0):
        q = cv2.remap(p, xx + sgn * nx, yy + sgn * ny, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        keep &= p >= q
    return keep


def _remove_specks(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Drop 8-connected components of fewer than ``min_size`` pixels (thin diagonal lines stay whole)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_size
    keep[0] = False  # background
    return keep[labels]


def edges_to_sketch(
    prob: np.ndarray,
    threshold: float = 0.6,
    low_threshold: float | None = 0.3,
    nms: bool = True,
    nms_sigma: float = 1.5,
    thin: bool = True,
    min_size: int = 10,
    dilate: int = 1,
) -> np.ndarray:
    """An edge probability ``[H, W]`` -> uint8 ``[H, W]`` sketch, black (0) lines on white (255).

    ``nms``: keep only the crest of HED's soft, several-pixel-wide response (:func:`ridge_nms`,
    orientation from ``prob`` blurred by ``nms_sigma``); without it, thresholding keeps wide
    plateaus whose skeletons become cell-like networks. ``threshold``: pixels above it are strokes;
    ``low_threshold`` (None: off) also keeps weaker pixels above it that connect to a stroke
    (hysteresis). ``thin``: reduce strokes to one-pixel
    skeletons. ``min_size``: remove connected pieces (8-connected, counted on the skeleton) of
    fewer pixels. ``dilate``: grow the lines by this many pixels (0 keeps one-pixel lines).
    """
    try:
        from skimage.filters import apply_hysteresis_threshold
        from skimage.morphology import thin as skeleton_thin
    except ImportError:
        raise SketchColorError("scikit-image is needed for HED sketches: pip install 'sketchcolor[demo]'") from None
    if nms:
        prob = np.where(ridge_nms(prob, sigma=nms_sigma), prob, 0.0)
    if low_threshold is not None and low_threshold < threshold:
        mask = apply_hysteresis_threshold(prob, low_threshold, threshold)
    else:
        mask = prob > threshold
    if thin:
        mask = skeleton_thin(mask)
    if min_size > 1:
        mask = _remove_specks(mask, min_size)
    if dilate > 0:
        k = 2 * dilate + 1
        mask = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    return np.where(mask, 0, 255).astype(np.uint8)


def hed_sketch(rgb: np.ndarray, hed: nn.Module, **options: Any) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` -> uint8 ``[H, W]`` line drawing (black thin lines on white).

    Runs ``hed`` (from :func:`sketchcolor.models.hed_weights.load_hed`) and passes its edge probability to
    :func:`edges_to_sketch`; ``options`` are that function's keyword arguments (its defaults apply).
    """
    return edges_to_sketch(hed_probability(rgb, hed), **options)
