"""Held-out scores logged during training: L1, reference responsiveness, correspondence accuracy,
cross-reference color distance, paint on the paper under cross references.

They decide which checkpoint a run keeps (``model/`` is the best one, not the last). Evaluation
reuses :func:`correspondence_accuracy` (it stands on training; training never imports evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from sketchcolor.data.color import chroma, follow_score, rotate_hue, to_lab
from sketchcolor.losses.cross_color import CrossPairs, cross_color_loss
from sketchcolor.losses.paper import paper_loss

# Turns of the reference's hues (degrees) used by reference responsiveness.
RESPONSIVENESS_TURNS = (90.0, 180.0, 270.0)
# A picture enters the responsiveness score only when this share of its reference is colored
# (chroma > MIN_CHROMA): a black-and-white reference has no hue to follow.
MIN_COLORED_SHARE = 0.05
MIN_CHROMA = 8.0


@dataclass(frozen=True)
class CorrespondenceScores:
    """Over ``n_valid`` sketch cells with a known true reference cell: share whose attention
    argmax is that cell (``top1``), is within one cell of it (Chebyshev <= 1, ``within_one``),
    and the mean attention mass on its 3 x 3 neighbourhood (``neighbourhood_mass``)."""

    top1: float
    within_one: float
    neighbourhood_mass: float
    n_valid: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @staticmethod
    def combine(parts: Iterable[CorrespondenceScores]) -> CorrespondenceScores:
        """Pool scores of several batches, weighting each by its ``n_valid``."""
        parts = [p for p in parts if p.n_valid > 0]
        n = sum(p.n_valid for p in parts)
        if n == 0:
            return CorrespondenceScores(float("nan"), float("nan"), float("nan"), 0)

        def avg(key: str) -> float:
            return sum(getattr(p, key) * p.n_valid for p in parts) / n

        return CorrespondenceScores(avg("top1"), avg("within_one"), avg("neighbourhood_mass"), n)


def neighbourhood(h: int, w: int, radius: int = 1) -> torch.Tensor:
    """bool ``[h*w, h*w]``: cells ``i`` and ``j`` (row-major) lie within Chebyshev ``radius``."""
    ys, xs = torch.arange(h * w) // w, torch.arange(h * w) % w
    return ((ys[:, None] - ys[None]).abs() <= radius) & ((xs[:, None] - xs[None]).abs() <= radius)


@torch.no_grad()
def correspondence_accuracy(attention: torch.Tensor, correspondence: torch.Tensor,
                            grid: tuple[int, int]) -> CorrespondenceScores:
    """How well attention rows find the true reference cell.

    ``attention [B, N, M]``: rows are sketch cells, columns reference cells of an ``(h, w) =
    grid`` grid (``M = h * w``, row-major; rows sum to 1). ``correspondence [B, N]`` long: the
    true reference cell of each sketch cell, -1 where none (warped out of view), as made by
    :func:`sketchcolor.data.tps.tps_correspondence`.
    """
    h, w = grid
    assert attention.dim() == 3 and attention.shape[2] == h * w, (tuple(attention.shape), grid)
    assert correspondence.shape == attention.shape[:2], (tuple(correspondence.shape), tuple(attention.shape))
    valid = correspondence >= 0
    n = int(valid.sum())
    if n == 0:
        return CorrespondenceScores(float("nan"), float("nan"), float("nan"), 0)
    attn = attention[valid].float()  # [n, M]
    true = correspondence[valid].long().to(attn.device)  # [n]
    pred = attn.argmax(dim=1)
    dy = (pred // w - true // w).abs()
    dx = (pred % w - true % w).abs()
    near = neighbourhood(h, w).to(attn.device)[true]  # [n, M]
    return CorrespondenceScores(
        top1=float((pred == true).float().mean()),
        within_one=float((torch.maximum(dy, dx) <= 1).float().mean()),
        neighbourhood_mass=float((attn * near).sum(dim=1).mean()),
        n_valid=n,
    )


def has_hue(reference: torch.Tensor) -> bool:
    """Whether enough of RGB ``reference`` ``[3, H, W]`` is colored to have hues to follow."""
    return float((chroma(to_lab(reference)) > MIN_CHROMA).float().mean()) >= MIN_COLORED_SHARE


def responsiveness(outputs: torch.Tensor, turned: dict[float, torch.Tensor]) -> list[float]:
    """Per-picture scores of reference responsiveness.

    ``outputs [B, 3, H, W]``: outputs for the original references; ``turned[deg] [B, 3, H, W]``:
    outputs for the references with hues turned by ``deg``. Each picture scores the mean over the
    turns of cos(output turn - reference turn); a turn where the outputs have no colored pixel in
    common counts 0 (no hue followed)."""
    scores = []
    for i in range(outputs.shape[0]):
        per_turn = [follow_score(outputs[i], out[i], math.radians(deg), MIN_CHROMA) for deg, out in turned.items()]
        scores.append(sum(0.0 if s is None else s for s in per_turn) / len(per_turn))
    return scores


@torch.no_grad()
def validate(generator: nn.Module, batches: list[dict[str, torch.Tensor]], device: torch.device,
             grid: tuple[int, int]) -> dict[str, float]:
    """``val_l1`` (to the target), ``val_responsiveness`` (on references that have hues),
    ``val_corr_within_one``, ``val_cross_color`` (sketch i with picture i+1's reference:
    :func:`sketchcolor.losses.cross_color.cross_color_loss` on fixed directions, Lab / 100) and
    ``val_paper_paint`` (the same outputs' paint on the paper around sketch i's drawing:
    :func:`sketchcolor.losses.paper.paper_loss`; part of :func:`selection_score` for runs with the paper term) over
    fixed held-out triplet batches."""
    was_training = generator.training
    generator.eval()
    l1, n, follow, corr, cross, paper = 0.0, 0, [], [], [], []
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        out = generator(b["sketch"], b["reference"])
        l1 += float((out.image - b["target"]).abs().mean()) * out.image.shape[0]
        n += out.image.shape[0]
        if out.attention is not None:
            corr.append(correspondence_accuracy(out.attention, b["correspondence"], grid))
        keep = [i for i in range(b["reference"].shape[0]) if has_hue(b["reference"][i].cpu())]
        if keep:
            ref = b["reference"][keep]
            turned = {deg: generator(b["sketch"][keep], rotate_hue(ref, math.radians(deg))).image.cpu()
                      for deg in RESPONSIVENESS_TURNS}
            follow += responsiveness(out.image[keep].cpu(), turned)
        if b["sketch"].shape[0] > 1:
            pairs = CrossPairs(generator(b["sketch"][:-1], b["reference"][1:]).image, b["sketch"][:-1],
                               b["target"][1:], b["sketch"][1:], b["target"][:-1],
                               b["around"][:-1] if "around" in b else None)
            cross.append(float(cross_color_loss(pairs, torch.Generator().manual_seed(0))))
            paper.append(float(paper_loss(pairs.image, pairs.sketch, pairs.own_target, pairs.own_around)))
    generator.train(was_training)
    scores = {"val_l1": l1 / max(n, 1)}
    if follow:
        scores["val_responsiveness"] = sum(follow) / len(follow)
    if corr:
        scores["val_corr_within_one"] = CorrespondenceScores.combine(corr).within_one
    if cross:
        scores["val_cross_color"] = sum(cross) / len(cross)
        scores["val_paper_paint"] = sum(paper) / len(paper)
    return scores


def selection_score(scores: dict[str, float], cross: bool = False, paper: bool = False) -> float:
    """Higher is better: the checkpoint a run keeps. Responsiveness (-1..1) is what the model is
    for; L1 (0..2) breaks ties and guards against a model that follows hues but paints badly; with
    ``cross`` (runs that train with ``loss.lambda_cross``; the others keep the score they always
    had, so resumed runs compare like with like) the cross color distance (Lab / 100, about 0.13)
    guards against one that turns hues but does not paint another picture's colors; with ``paper``
    (runs that train with ``loss.lambda_paper``) the paint on the paper around other pictures'
    drawings counts once. Why: in the run that made the step-15,500 weights, validation L1 rose
    0.083 -> 0.088 while that paint fell 0.068 -> 0.025, and the rendered output (what a user gets)
    was better at the end on the test split (a fifth less paint on the paper, drawing colors
    closer, PSNR within 0.03 dB); the score without it kept the run's first validation. A run
    resumed from before this term keeps its best score until a validation beats it."""
    score = scores.get("val_responsiveness", 0.0) - 2.0 * scores["val_l1"]
    if cross:
        score -= 2.0 * scores.get("val_cross_color", 0.0)
    if paper:
        score -= scores.get("val_paper_paint", 0.0)
    return score
