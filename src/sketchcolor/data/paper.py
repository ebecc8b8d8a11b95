"""Where a training picture's paper is: the rule the cross-reference terms leave out or score.

The cross color term (:mod:`sketchcolor.losses.cross_color`) leaves the paper out of both
pictures; the paper term (:mod:`sketchcolor.losses.paper`) scores paint on the paper around a
drawing. Both depend on the example alone (its sketch and its target), not on the model. The part
that costs something, the pixels the frame reaches without crossing a line of the sketch, is made
with the triplet (:class:`sketchcolor.data.datasets.TripletStream`, in the DataLoader workers)
and travels in the batch as ``around``; the color rule stays in the step, batched. The step used
to flood ``around`` on the device, a fixed H + W steps of a pad, four maxima and a product: 5,814
top-level operator calls in a ``default`` step at batch 8 then, 2,213 now, on a GPU whose step is
bound by kernel launches (README "Training at scale").
"""

from __future__ import annotations

import numpy as np
import torch
from kornia.color import rgb_to_lab
from scipy import ndimage

# Sketch pixels darker than 128/255 are lines (inference.render and the metrics use the same
# threshold); in the training tensors' [-1, 1] range that is 128 / 255 * 2 - 1.
LINE_LEVEL = 128 / 255 * 2 - 1
# Paper: L > 80 and chroma < 6 (CIELAB) in a picture's own target. a() keeps white paper near
# white (its lightness shift fades with chroma); the margin below evaluation's 90 also leaves out
# light greys, which the L1 to the target still covers.
PAPER_L, PAPER_CHROMA = 80.0, 6.0

# 4-connected: a line drawn with one-pixel diagonal steps closes a shape
_FOUR = ndimage.generate_binary_structure(2, 1)


def lab_units(image: torch.Tensor) -> torch.Tensor:
    """``[n, 3, H, W]`` in [-1, 1] -> ``[n, H*W, 3]`` CIELAB, divided by 100 (L in [0, 1])."""
    return rgb_to_lab(((image.float() + 1.0) * 0.5).clamp(0.0, 1.0)).flatten(2).transpose(1, 2) / 100.0


def paper_in_lab(lab: torch.Tensor) -> torch.Tensor:
    """bool ``[n, H*W]``: the paper pixels (L > 80, chroma < 6) of ``lab [n, H*W, 3]`` (:func:`lab_units`)."""
    return (lab[..., 0] > PAPER_L / 100) & (lab[..., 1:].norm(dim=-1) < PAPER_CHROMA / 100)


def is_paper(image: torch.Tensor) -> torch.Tensor:
    """bool ``[n, H*W]``: the paper pixels of ``image [n, 3, H, W]`` (in [-1, 1])."""
    return paper_in_lab(lab_units(image))


def reach_from_frame(free: torch.Tensor) -> torch.Tensor:
    """bool ``[n, 1, H, W]``: the pixels of ``free`` (bool ``[n, 1, H, W]``) that a 4-connected
    path inside ``free`` joins to the picture's frame: the components of ``free`` that touch it
    (scipy's labelling, on the host; the result comes back on ``free``'s device)."""
    assert free.dim() == 4 and free.shape[1] == 1 and free.dtype == torch.bool, (tuple(free.shape), free.dtype)
    host = free.detach().cpu().numpy()
    out = np.zeros_like(host)
    for i in range(host.shape[0]):
        labels, _ = ndimage.label(host[i, 0], structure=_FOUR)
        rim = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        out[i, 0] = np.isin(labels, rim[rim > 0])
    return torch.from_numpy(out).to(free.device)


def around_drawing(sketch: torch.Tensor) -> torch.Tensor:
    """bool ``[n, 1, H, W]``: the pixels around the drawing of ``sketch [n, 1, H, W]`` (in [-1, 1]):
    off its lines and reached from the frame without crossing one (:func:`reach_from_frame`)."""
    assert sketch.dim() == 4 and sketch.shape[1] == 1, tuple(sketch.shape)
    return reach_from_frame(sketch >= LINE_LEVEL)


def paper_around_drawing(target: torch.Tensor, sketch: torch.Tensor, around: torch.Tensor | None = None) -> torch.Tensor:
    """bool ``[n, 1, H, W]``: the paper around the drawing of ``sketch [n, 1, H, W]`` (in [-1, 1]):
    :func:`around_drawing` (or ``around``, where the caller has it: a batch's ``around``) and paper
    in its picture's ``target [n, 3, H, W]`` (in [-1, 1]; :func:`is_paper`)."""
    assert sketch.dim() == 4 and sketch.shape[1] == 1 and target.shape[-2:] == sketch.shape[-2:], (
        tuple(target.shape), tuple(sketch.shape))
    if around is None:
        around = around_drawing(sketch)
    assert around.shape == sketch.shape and around.dtype == torch.bool, (tuple(around.shape), around.dtype)
    return around & is_paper(target).view(sketch.shape)
