"""Cross-reference color term (not in the paper): a sketch colorized with *another* picture's
reference must be painted in that picture's colors.

The paper trains on augmented self-references only, where the L1 to the target already pulls the
output toward the reference's colors. At use the reference shows another drawing; where the
correspondence is unsure the network falls back to a muddy average of the reference (the cross
color distance of Table 1). This term scores exactly that setting: the sliced Wasserstein-1
distance in CIELAB between the colors of ``G(sketch_i, reference_j)`` in sketch i's painted area
and the colors of target j (the same recolored picture the reference was warped from, aligned with
its own sketch, so its lines can be left out). It compares distributions, not positions, so it
needs no ground truth for the cross pair. The paper is left out on both sides (pixels whose own
target is near-white): the two pictures cover different shares of their paper, and matching
those shares would teach the network to paint the background. Hand-written: a dozen lines of
sorting, the estimator of :func:`sketchcolor.evaluation.metrics.sliced_wasserstein` made
differentiable (training may not import evaluation, and POT is not worth a dependency).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sketchcolor.data.paper import LINE_LEVEL, lab_units, paper_in_lab

# Pairs whose painted area is smaller than this are left out (a sketch that is nearly all lines).
MIN_PIXELS = 64


@dataclass
class CrossPairs:
    """``image [n, 3, H, W]``: G's output for sketch i with the reference of picture j, in [-1, 1];
    ``sketch [n, 1, H, W]``: sketch i; ``target [n, 3, H, W]``: picture j's target (the colors the
    reference was warped from); ``target_sketch [n, 1, H, W]``: picture j's sketch;
    ``own_target [n, 3, H, W]``: picture i's target (where its paper is); ``own_around`` bool
    ``[n, 1, H, W]``: the pixels around sketch i's drawing, where the batch brings them (the
    ``around`` of :class:`~sketchcolor.data.datasets.TripletStream`'s examples; the paper term
    computes them when None)."""

    image: torch.Tensor
    sketch: torch.Tensor
    target: torch.Tensor
    target_sketch: torch.Tensor
    own_target: torch.Tensor
    own_around: torch.Tensor | None = None


def _content(lab: torch.Tensor, sketch: torch.Tensor) -> torch.Tensor:
    """bool ``[n, H*W]``: off the lines of ``sketch [n, 1, H, W]`` and not paper in ``lab [n, H*W, 3]``
    (:func:`~sketchcolor.data.paper.lab_units`)."""
    return (sketch[:, 0] >= LINE_LEVEL).flatten(1) & ~paper_in_lab(lab)


# Stands in for the projections of left-out pixels: sorted after every real one (real projections
# of Lab / 100 lie within +-2), finite so that rows without pixels give no NaN gradients.
_LEFT_OUT = 1.0e4


def _quantiles(points: torch.Tensor, keep: torch.Tensor, directions: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Projections of each row's kept points (``points [n, P, 3]``, ``keep`` bool ``[n, P]``) on
    ``directions [K, 3]`` at the quantile ``levels [Q]`` (inverted-CDF, as the metric) -> ``[n, Q, K]``.
    All rows in one sort with the left-out points placed last, so nothing waits on the count of
    each row's points (no host sync on a GPU); differentiable through the sort."""
    proj = torch.where(keep[..., None], points @ directions.T, _LEFT_OUT)  # [n, P, K]
    proj = torch.sort(proj, dim=1).values
    count = keep.sum(dim=1, keepdim=True)  # [n, 1]
    idx = (torch.ceil(levels[None] * count).long() - 1).clamp(0, points.shape[1] - 1)  # [n, Q]
    return torch.gather(proj, 1, idx[..., None].expand(-1, -1, proj.shape[-1]))


def cross_color_loss(pairs: CrossPairs, gen: torch.Generator | None = None, n_directions: int = 32,
                     n_quantiles: int = 256) -> torch.Tensor:
    """Mean over the pairs of the sliced W1 (Lab / 100) between the output's pixels off sketch
    i's lines and paper and target j's pixels off its lines and paper, on ``n_directions`` random
    unit directions drawn from ``gen`` (a fresh draw each step averages out the slicing). A
    scalar; 0 when no pair has enough such pixels on both sides. Computed in fp32 under autocast
    too: bf16 projections (3 significant digits) would be as coarse as the distances they sort."""
    with torch.autocast(device_type=pairs.image.device.type, enabled=False):
        return _cross_color_loss(pairs, gen, n_directions, n_quantiles)


def _cross_color_loss(pairs: CrossPairs, gen: torch.Generator | None, n_directions: int,
                      n_quantiles: int) -> torch.Tensor:
    device = pairs.image.device
    directions = torch.randn(n_directions, 3, generator=gen).to(device)
    directions = directions / directions.norm(dim=1, keepdim=True)
    levels = (torch.arange(n_quantiles, device=device, dtype=torch.float32) + 0.5) / n_quantiles
    with torch.no_grad():
        painted = _content(lab_units(pairs.own_target), pairs.sketch)
        target_lab = lab_units(pairs.target)
        target_painted = _content(target_lab, pairs.target_sketch)
        usable = (painted.sum(dim=1) >= MIN_PIXELS) & (target_painted.sum(dim=1) >= MIN_PIXELS)  # [n]
        ref = _quantiles(target_lab, target_painted, directions, levels)
    out = _quantiles(lab_units(pairs.image), painted, directions, levels)
    per_pair = torch.where(usable, (out - ref).abs().mean(dim=(1, 2)), 0.0)
    # the mean over usable pairs; 0 with the graph kept when there is none (DDP expects every
    # process to backward)
    return per_pair.sum() / usable.sum().clamp(min=1)
