"""Color math in CIE Lab shared by the appearance transform a(), inference and the metrics.

kornia does the RGB <-> Lab conversions; what is written here is only the hue geometry on the
ab plane (a rotation and the measurement of a rotation), which no library offers as such.
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb, rgb_to_lab


def to_lab(image: torch.Tensor) -> torch.Tensor:
    """RGB in [-1, 1] ``[..., 3, H, W]`` -> Lab ``[..., 3, H, W]`` (L in 0..100, a/b about ±128)."""
    return rgb_to_lab(((image + 1.0) * 0.5).clamp(0.0, 1.0))


def from_lab(lab: torch.Tensor) -> torch.Tensor:
    """Lab ``[..., 3, H, W]`` -> RGB in [-1, 1], out-of-gamut colors clipped."""
    return lab_to_rgb(lab, clip=True) * 2.0 - 1.0


def chroma(lab: torch.Tensor) -> torch.Tensor:
    """Chroma sqrt(a^2 + b^2) of Lab ``[..., 3, H, W]`` -> ``[..., H, W]``."""
    return torch.sqrt(lab[..., 1, :, :] ** 2 + lab[..., 2, :, :] ** 2)


def rotate_hue(image: torch.Tensor, radians: torch.Tensor | float) -> torch.Tensor:
    """Turn the hue of RGB ``image`` ``[..., 3, H, W]`` in [-1, 1] by ``radians`` on Lab's ab plane.

    ``radians`` is a number, or a tensor broadcastable to ``[..., H, W]`` (one angle per pixel).
    Lightness and chroma are kept (up to gamut clipping)."""
    lab = to_lab(image)
    theta = torch.as_tensor(radians, dtype=lab.dtype, device=lab.device)
    c, s = torch.cos(theta), torch.sin(theta)
    a, b = lab[..., 1, :, :], lab[..., 2, :, :]
    lab = torch.stack([lab[..., 0, :, :], c * a - s * b, s * a + c * b], dim=-3)
    return from_lab(lab)


def hue_turn(before: torch.Tensor, after: torch.Tensor, min_chroma: float = 8.0) -> torch.Tensor | None:
    """How far the hues of ``after`` turned from those of ``before`` (both RGB in [-1, 1]
    ``[3, H, W]``): the chroma-weighted circular mean of the per-pixel angle between their ab
    vectors, over pixels whose chroma exceeds ``min_chroma`` in both. Radians in (-pi, pi], or
    None when no pixel is colored enough to have a hue."""
    la, lb = to_lab(before), to_lab(after)
    ca, cb = chroma(la), chroma(lb)
    keep = (ca > min_chroma) & (cb > min_chroma)
    if not bool(keep.any()):
        return None
    # angle of b relative to a: atan2(cross, dot) of the two ab vectors
    a1, b1, a2, b2 = la[1][keep], la[2][keep], lb[1][keep], lb[2][keep]
    angle = torch.atan2(a1 * b2 - b1 * a2, a1 * a2 + b1 * b2)
    weight = torch.sqrt(ca[keep] * cb[keep])
    return torch.atan2((weight * torch.sin(angle)).sum(), (weight * torch.cos(angle)).sum())


def follow_score(before: torch.Tensor, after: torch.Tensor, radians: float, min_chroma: float = 8.0) -> float | None:
    """cos(turn - radians): how well ``after`` (the output for a reference turned by ``radians``)
    follows the turn from ``before`` (the output for the original reference). 1 follows exactly,
    -1 turns the opposite way; None when the two outputs share no colored pixel."""
    turn = hue_turn(before, after, min_chroma)
    return None if turn is None else float(torch.cos(turn - radians))
