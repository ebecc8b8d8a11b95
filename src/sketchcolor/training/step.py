"""One training iteration: a D step, then a G step. No file IO."""

from __future__ import annotations

import torch
from torch import nn

from sketchcolor.config import LossConfig
from sketchcolor.losses.objective import discriminator_terms, generator_terms


def train_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    cfg: LossConfig,
    vgg: nn.Module | None,
    gen: torch.Generator,
) -> dict[str, float]:
    """Alternate D and G on one batch (``sketch [B,1,H,W]``, ``reference``/``target [B,3,H,W]``,
    ``correspondence [B, hw]``). Returns the scalar terms; a step whose G loss is not finite is
    skipped (``skipped = 1``) so that one bad batch cannot poison the weights."""
    sketch, reference, target = batch["sketch"], batch["reference"], batch["target"]
    out = generator(sketch, reference)
    metrics: dict[str, float] = {}
    if cfg.lambda_adv:
        d_terms = discriminator_terms(target, out.image, sketch, discriminator, cfg)
        if torch.isfinite(d_terms["d"]):
            opt_d.zero_grad(set_to_none=True)
            d_terms["d"].backward()
            opt_d.step()
        metrics["d"] = float(d_terms["d"].detach())
    discriminator.requires_grad_(False)  # G's step must not accumulate gradients in D
    try:
        g_terms = generator_terms(out, sketch, target, batch["correspondence"], discriminator, cfg, vgg, gen)
        total = g_terms["total"]
        metrics.update({k: float(v.detach()) for k, v in g_terms.items()})
        if not torch.isfinite(total):
            metrics["skipped"] = 1.0
            return metrics
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        opt_g.step()
    finally:
        discriminator.requires_grad_(True)
    metrics["skipped"] = 0.0
    return metrics
