"""Eq. 11: the weighted sum of the five terms, as named scalars."""

from __future__ import annotations

import torch
from torch import nn

from sketchcolor.config import LossConfig
from sketchcolor.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from sketchcolor.losses.cross_color import CrossPairs, cross_color_loss
from sketchcolor.losses.paper import paper_loss
from sketchcolor.losses.perceptual import perceptual_and_style
from sketchcolor.losses.reconstruction import l1_loss, warp_l1
from sketchcolor.losses.triplet import BatchShard, triplet_loss
from sketchcolor.models.generator import ColorizerOutput


def generator_terms(
    out: ColorizerOutput,
    sketch: torch.Tensor,
    target: torch.Tensor,
    correspondence: torch.Tensor,
    discriminator: nn.Module,
    cfg: LossConfig,
    vgg: nn.Module | None,
    gen: torch.Generator | None = None,
    shard: BatchShard | None = None,
    cross: CrossPairs | None = None,
) -> dict[str, torch.Tensor]:
    """Unweighted terms that have a non-zero weight, plus ``total`` (Eq. 11).

    Terms with weight 0 are not computed (the VGG forward can cost more than G itself).
    ``shard``: this batch is one process's share of a global batch (the triplet term needs it;
    every other term is a mean over equal per-example parts already). ``cross``: outputs for other
    pictures' references (``loss.lambda_cross`` and ``loss.lambda_paper``, not in the paper; their
    terms are left out without them)."""
    terms: dict[str, torch.Tensor] = {}
    if cfg.lambda_rec:
        terms["rec"] = l1_loss(out.image, target)
    if cfg.lambda_warp and out.warped_colors is not None:
        terms["warp"] = warp_l1(out.warped_colors, target)
    if cfg.lambda_tr and out.query is not None:  # the concatenation baseline has no attention to supervise
        terms["tr"] = triplet_loss(out.query, out.key, correspondence, cfg.triplet_margin, gen, cfg.triplet_negatives,
                                   shard)
    if cfg.lambda_adv:
        terms["adv"] = generator_loss(discriminator(out.image, sketch), cfg.gan_mode)
    if cfg.lambda_perc or cfg.lambda_style:
        if vgg is None:
            raise ValueError("perceptual/style weights are non-zero but no VGG was given")
        terms["perc"], terms["style"] = perceptual_and_style(vgg, out.image, target, want_style=bool(cfg.lambda_style))
    if cfg.lambda_cross and cross is not None:
        terms["cross"] = cross_color_loss(cross, gen)
    if cfg.lambda_paper and cross is not None:
        terms["paper"] = paper_loss(cross.image, cross.sketch, cross.own_target, cross.own_around)
    weights = {"rec": cfg.lambda_rec, "tr": cfg.lambda_tr, "adv": cfg.lambda_adv,
               "perc": cfg.lambda_perc, "style": cfg.lambda_style, "warp": cfg.lambda_warp,
               "cross": cfg.lambda_cross, "paper": cfg.lambda_paper}
    total = out.image.new_zeros(())  # a tensor even when every weight is zero
    for name, value in terms.items():
        total = total + weights[name] * value
    terms["total"] = total
    return terms


def discriminator_terms(
    real: torch.Tensor, fake: torch.Tensor, sketch: torch.Tensor, discriminator: nn.Module, cfg: LossConfig
) -> dict[str, torch.Tensor]:
    """D's loss on real targets and (detached) outputs, both conditioned on the sketch; with
    ``loss.r1_gamma`` > 0, ``d`` includes the weighted R1 penalty, also given as ``r1``."""
    if cfg.r1_gamma > 0:
        real = real.detach().requires_grad_(True)
    real_logits = discriminator(real, sketch)
    penalty = r1_penalty(real_logits, real) if cfg.r1_gamma > 0 else None
    return discriminator_objective(real_logits, discriminator(fake.detach(), sketch), penalty, cfg)


def discriminator_objective(real_logits: torch.Tensor, fake_logits: torch.Tensor, penalty: torch.Tensor | None,
                            cfg: LossConfig) -> dict[str, torch.Tensor]:
    """D's terms from its patch logits on real and generated pictures (``[B, 1, h, w]`` each) and
    the R1 penalty (None when ``loss.r1_gamma`` is 0): ``d``, what D minimises (the weighted
    penalty included), and ``r1``, the penalty alone."""
    loss = discriminator_loss(real_logits, fake_logits, cfg.gan_mode)
    if penalty is None:
        return {"d": loss}
    return {"d": loss + 0.5 * cfg.r1_gamma * penalty, "r1": penalty}
