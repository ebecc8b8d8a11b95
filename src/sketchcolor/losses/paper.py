"""Paper term (not in the paper): a sketch colorized with *another* picture's reference must leave
the paper around its drawing white.

The cross-reference color term (:mod:`sketchcolor.losses.cross_color`) scores the colors of the
drawing only, so nothing in training ever told the cross output to keep off the paper: where the
correspondence is unsure near a drawing's outline, the network paints the reference's colors onto
the paper beside it, and the ``regions`` rendering turns that paint into a painted shape (the pale
yellow patch beside the demo student's head). The self-reference L1 covers the paper, but a
self-reference shows white paper at the very same place. This term is that L1 on the cross rows,
restricted to the paper around the drawing: pixels whose own target is paper (the same rule as
the cross term's) and that the frame reaches without crossing a line of the sketch
(:func:`sketchcolor.data.paper.paper_around_drawing`; a training batch brings the part that
needs the lines, ``around``, made with each example in the data workers).
"""

from __future__ import annotations

import torch

from sketchcolor.data.paper import paper_around_drawing


def paper_loss(image: torch.Tensor, sketch: torch.Tensor, own_target: torch.Tensor,
               around: torch.Tensor | None = None) -> torch.Tensor:
    """L1 between the cross output ``image [n, 3, H, W]`` and the picture's own target
    ``own_target [n, 3, H, W]`` (both in [-1, 1]) over the paper around the drawing of ``sketch
    [n, 1, H, W]`` (:func:`~sketchcolor.data.paper.paper_around_drawing`; ``around``, bool
    ``[n, 1, H, W]``, the pixels around the drawing where the caller has them: a batch's
    ``around``), summed there and divided by every pixel of the rows, as the reconstruction L1
    divides: with the same weight a spill costs what it costs in a self-reference row. A scalar;
    0 (graph kept) when there is no such paper or no row."""
    with torch.no_grad():
        mask = paper_around_drawing(own_target, sketch, around).float()  # [n, 1, H, W]
    diff = (image.float() - own_target.float()).abs() * mask
    return diff.sum() / max(image.numel(), 1)
