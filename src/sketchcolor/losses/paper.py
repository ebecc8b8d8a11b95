"""Paper term (not in the paper): a sketch colorized with *another* picture's reference must leave
the paper around its drawing white.

The cross-reference color term (:mod:`sketchcolor.losses.cross_color`) scores the colors of the
drawing only, so nothing in training ever told the cross output to keep off the paper: where the
correspondence is unsure near a drawing's outline, the network paints the reference's colors onto
the paper beside it, and the ``regions`` rendering turns that paint into a painted shape (the pale
yellow patch beside the demo student's head). The self-reference L1 covers the paper, but a
self-reference shows white paper at the very same place. This term is that L1 on the cross rows,
restricted to the paper around the drawing: pixels whose own target is paper (the same rule as
the cross term's) and that the frame reaches without crossing a line of the sketch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sketchcolor.losses.cross_color import LINE_LEVEL, is_paper


def reach_from_frame(free: torch.Tensor) -> torch.Tensor:
    """bool ``[n, 1, H, W]``: the pixels of ``free`` (bool ``[n, 1, H, W]``) that a 4-connected
    path inside ``free`` joins to the picture's frame.

    A geodesic dilation from the free pixels on the frame, a fixed ``H + W`` steps so that nothing
    waits on a convergence test (no host sync on a GPU); a path longer than that (a spiral) is
    left out, which only shrinks the term's area. Hand-written (four shifts per step): labelling
    components with scipy needs the host, and kornia's ``connected_components`` labels every
    component where one flood from the frame is needed.
    """
    h, w = free.shape[-2:]
    frame = torch.zeros_like(free)
    frame[..., 0, :] = frame[..., -1, :] = True
    frame[..., :, 0] = frame[..., :, -1] = True
    reached = (free & frame).float()
    keep = free.float()
    for _ in range(h + w):
        padded = F.pad(reached, (1, 1, 1, 1))
        grown = torch.maximum(torch.maximum(padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]),
                              torch.maximum(padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]))
        reached = torch.maximum(reached, grown) * keep
    return reached > 0


def paper_around_drawing(own_target: torch.Tensor, sketch: torch.Tensor) -> torch.Tensor:
    """bool ``[n, 1, H, W]``: the paper around the drawing of ``sketch [n, 1, H, W]`` (in [-1, 1]):
    off its lines, reached from the frame without crossing one, and paper in ``own_target
    [n, 3, H, W]`` (in [-1, 1]; CIELAB L > 80 and chroma < 6, as the cross term)."""
    paper = is_paper(own_target).view(sketch.shape)
    return reach_from_frame(sketch >= LINE_LEVEL) & paper


def paper_loss(image: torch.Tensor, sketch: torch.Tensor, own_target: torch.Tensor) -> torch.Tensor:
    """L1 between the cross output ``image [n, 3, H, W]`` and the picture's own target
    ``own_target [n, 3, H, W]`` (both in [-1, 1]) over the paper around the drawing of ``sketch
    [n, 1, H, W]`` (:func:`paper_around_drawing`), summed there and divided by every pixel of the
    rows, as the reconstruction L1 divides: with the same weight a spill costs what it costs in a
    self-reference row. A scalar; 0 (graph kept) when there is no such paper or no row."""
    with torch.no_grad():
        mask = paper_around_drawing(own_target, sketch).float()  # [n, 1, H, W]
    diff = (image.float() - own_target.float()).abs() * mask
    return diff.sum() / max(image.numel(), 1)
