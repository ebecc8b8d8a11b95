"""The appearance transform a(): recolor the picture so that its colors cannot be told from its shape.

Two kinds (``DataConfig.appearance``):

- ``"shift"``: a uniform per-channel shift of RGB (the first recipe). Measured too weak: a face
  stays yellowish, so a model can paint each shape's typical color and ignore the reference.
- ``"lab"``: a hue rotation over the full circle on Lab's ab plane, a chroma (saturation) scale
  and a lightness shift; with probability ``region_recolor`` each flat-color region of the picture
  gets its own rotation, scale and shift, so every region takes an independent random color. The
  reference is cut from the same recolored picture, so the target's colors are reachable only
  through the correspondence.

Sampling (needs a generator, draws the same count of numbers every time) is kept apart from
applying (pure), so a seed reproduces a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sketchcolor.config import DataConfig
from sketchcolor.data.color import chroma, from_lab, to_lab

# Region slots of the per-region recoloring: a picture's k-th most common flat color takes slot
# k mod REGION_SLOTS. Fixed so that sampling draws the same count of numbers for every picture.
REGION_SLOTS = 16
# Chroma (Lab units) at which a pixel takes the full lightness shift; below it the shift fades
# out, so black lines and white paper stay black and white.
_FULL_SHIFT_CHROMA = 20.0


@dataclass(frozen=True)
class AppearanceParams:
    """shift ``[3]`` (RGB, [-1, 1] units); per region slot ``[REGION_SLOTS]``: hue (radians),
    chroma scale, lightness shift (Lab L units). Slots are all equal unless the picture was
    drawn for per-region recoloring."""

    shift: torch.Tensor
    hue: torch.Tensor
    chroma_scale: torch.Tensor
    lightness: torch.Tensor


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def sample_appearance(gen: torch.Generator, cfg: DataConfig) -> AppearanceParams:
    """Draw the parameters of one a() from ``gen`` as ``cfg`` says (same draw count every call)."""
    shift = _uniform(gen, 3, -cfg.color_shift, cfg.color_shift)
    max_turn = math.radians(cfg.hue_rotation)
    c_lo, c_hi = cfg.chroma_range
    hue = _uniform(gen, 1 + REGION_SLOTS, -max_turn, max_turn)
    scale = _uniform(gen, 1 + REGION_SLOTS, c_lo, c_hi)
    light = _uniform(gen, 1 + REGION_SLOTS, -cfg.lightness_shift, cfg.lightness_shift)
    per_region = bool(torch.rand(1, generator=gen) < cfg.region_recolor)
    if not per_region:  # one color change for the whole picture
        hue, scale, light = (t[:1].expand(REGION_SLOTS).clone() for t in (hue, scale, light))
    else:
        hue, scale, light = hue[1:], scale[1:], light[1:]
    return AppearanceParams(shift=shift, hue=hue, chroma_scale=scale, lightness=light)


def color_regions(image: torch.Tensor, min_share: float = 0.002, max_colors: int = 48) -> torch.Tensor:
    """Flat-color regions of RGB ``image`` ``[3, H, W]`` in [-1, 1] -> slot labels ``[H, W]`` long.

    The picture's colors are quantized to 16 levels per channel; every color covering at least
    ``min_share`` of the picture (the ``max_colors`` most common) is a palette entry, ranked by
    area; each pixel joins its nearest entry, so anti-aliased edges follow a neighbouring region
    instead of forming their own. Same-colored parts share a label (both eyes get one new color).
    """
    q = ((image.clamp(-1, 1) + 1.0) * 7.5).round().long()  # 0..15 per channel
    keys = (q[0] * 256 + q[1] * 16 + q[2]).flatten()
    values, counts = torch.unique(keys, return_counts=True)
    order = torch.argsort(counts, descending=True, stable=True)
    keep = order[counts[order] >= max(1, int(min_share * keys.numel()))][:max_colors]
    if keep.numel() == 0:
        keep = order[:1]
    palette = values[keep]
    centers = torch.stack([palette // 256, (palette // 16) % 16, palette % 16], dim=1).float()  # [P, 3]
    pixels = q.flatten(1).T.float()  # [HW, 3]
    nearest = torch.cdist(pixels, centers).argmin(dim=1)
    return (nearest % REGION_SLOTS).reshape(image.shape[-2:])


def per_region(params: AppearanceParams) -> bool:
    """Whether the draw recolors each flat-color region on its own (its slots differ), so that
    applying it needs the picture's :func:`color_regions`."""
    return bool((params.hue != params.hue[0]).any() | (params.chroma_scale != params.chroma_scale[0]).any()
                | (params.lightness != params.lightness[0]).any())


def apply_appearance(image: torch.Tensor, params: AppearanceParams, cfg: DataConfig,
                     regions: torch.Tensor | None = None) -> torch.Tensor:
    """a(image): RGB ``[3, H, W]`` in [-1, 1] -> recolored ``[3, H, W]`` in [-1, 1].

    ``regions`` (``[H, W]`` slot labels from :func:`color_regions`) is needed only when the
    per-region slots differ; otherwise slot 0 applies everywhere."""
    out = image
    if cfg.appearance == "lab":
        if per_region(params):
            labels = regions if regions is not None else color_regions(image)
        else:
            labels = torch.zeros(image.shape[-2:], dtype=torch.long)
        out = recolor(image, params.hue[labels], params.chroma_scale[labels], params.lightness[labels])
    return (out + params.shift[:, None, None]).clamp(-1.0, 1.0)


def recolor(image: torch.Tensor, hue: torch.Tensor, chroma_scale: torch.Tensor, lightness: torch.Tensor) -> torch.Tensor:
    """The Lab part of a(), per pixel: RGB ``[..., 3, H, W]`` in [-1, 1], hue turn (radians),
    chroma scale and lightness shift each ``[..., H, W]`` -> RGB ``[..., 3, H, W]`` in [-1, 1].
    Shared by :func:`apply_appearance` and the batch-wise a() of
    :mod:`sketchcolor.data.device_triplets`, so both compute the same numbers."""
    lab = to_lab(image)
    cos, sin = torch.cos(hue), torch.sin(hue)
    a, b = lab[..., 1, :, :], lab[..., 2, :, :]
    weight = (chroma(lab) / _FULL_SHIFT_CHROMA).clamp(0.0, 1.0)
    lab = torch.stack([(lab[..., 0, :, :] + lightness * weight).clamp(0.0, 100.0),
                       chroma_scale * (cos * a - sin * b), chroma_scale * (sin * a + cos * b)], dim=-3)
    return from_lab(lab)
