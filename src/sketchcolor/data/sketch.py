"""Sketch extraction: XDoG line drawings from color pictures; real line art passes through.

XDoG (Winnemoeller, Kyprianidis, Olsen, "XDoG: An eXtended difference-of-Gaussians compendium",
2012) is a few lines on top of OpenCV's Gaussian blur; no maintained library ships it, so it is
written here.
"""

from __future__ import annotations

import cv2
import numpy as np

from sketchcolor.config import DataConfig
from sketchcolor.data.io import to_gray


def xdog(gray: np.ndarray, sigma: float, k: float, sharpen: float, epsilon: float, phi: float) -> np.ndarray:
    """XDoG of a uint8 ``[H, W]`` luminance image -> uint8 ``[H, W]``, dark lines on white.

    ``D = (1 + p) G_sigma - p G_{k sigma}`` sharpens edges; values under ``epsilon`` fall
    smoothly to black through ``1 + tanh(phi (D - epsilon))``.
    """
    g = gray.astype(np.float32) / 255.0
    g1 = cv2.GaussianBlur(g, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    g2 = cv2.GaussianBlur(g, (0, 0), sigmaX=sigma * k, borderType=cv2.BORDER_REPLICATE)
    d = (1.0 + sharpen) * g1 - sharpen * g2
    out = np.where(d >= epsilon, 1.0, 1.0 + np.tanh(phi * (d - epsilon)))
    return (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def is_line_art(rgb: np.ndarray, chroma_tol: int = 12, extreme_share: float = 0.9) -> bool:
    """True for an image that already is a line drawing: gray, mostly near-white or near-black.

    ``rgb`` is uint8 ``[H, W, 3]``. A drawing whose pixels are nearly all white paper or dark
    ink is used as the sketch as it is instead of being run through XDoG.
    """
    rgb16 = rgb.astype(np.int16)
    chroma = (rgb16.max(axis=2) - rgb16.min(axis=2)).mean()
    if chroma > chroma_tol:
        return False
    gray = to_gray(rgb)
    extreme = np.mean((gray >= 200) | (gray <= 80))
    return bool(extreme >= extreme_share and np.mean(gray >= 200) >= 0.5)


def extract_sketch(rgb: np.ndarray, cfg: DataConfig, force: bool = False) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` -> uint8 sketch ``[H, W]`` (black lines on white).

    Line art passes through as its luminance; everything else goes through XDoG with the
    parameters of ``cfg``. ``force`` runs XDoG even on line art.
    """
    gray = to_gray(rgb)
    if not force and is_line_art(rgb):
        return gray
    return xdog(gray, cfg.xdog_sigma, cfg.xdog_k, cfg.xdog_sharpen, cfg.xdog_epsilon, cfg.xdog_phi)
