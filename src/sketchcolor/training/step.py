"""One training iteration: a D step, then a G step. No file IO."""

from __future__ import annotations

import torch
from torch import nn

from sketchcolor.config import LossConfig
from sketchcolor.losses.objective import discriminator_terms, generator_terms


def _grads_finite(params: list[torch.nn.Parameter]) -> bool:
    """True when every gradient is finite (one device sync for all parameters)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def _apply(loss: torch.Tensor, opt: torch.optim.Optimizer, clip: float = 0.0) -> bool:
    """Backpropagate ``loss`` and step ``opt`` unless the loss or a gradient is not finite.

    ``clip > 0`` rescales the gradients to that total L2 norm at most (torch's
    ``clip_grad_norm_``). Returns whether the update was applied; a refused update leaves the
    weights and the optimizer state exactly as they were."""
    if not bool(torch.isfinite(loss)):
        return False
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in opt.param_groups for p in group["params"]]
    if not _grads_finite(params):
        opt.zero_grad(set_to_none=True)
        return False
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    return True


def train_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    cfg: LossConfig,
    vgg: nn.Module | None,
    gen: torch.Generator,
    grad_clip: float = 0.0,
) -> dict[str, float]:
    """Alternate D and G on one batch (``sketch [B,1,H,W]``, ``reference``/``target [B,3,H,W]``,
    ``correspondence [B, hw]``). Returns the scalar terms.

    A non-finite loss or gradient never reaches the weights: when D's loss (or a gradient of it)
    is not finite, neither D nor G is updated on this batch (G's adversarial term would come from
    the same D on the same batch); when G's is not finite, G is not updated (D's update, whose loss
    and gradients were finite, stands). Either way the step is reported with ``skipped = 1`` and
    the loop counts it."""
    sketch, reference, target = batch["sketch"], batch["reference"], batch["target"]
    out = generator(sketch, reference)
    metrics: dict[str, float] = {}
    if cfg.lambda_adv:
        d_terms = discriminator_terms(target, out.image, sketch, discriminator, cfg)
        metrics["d"] = float(d_terms["d"].detach())
        if not _apply(d_terms["d"], opt_d, grad_clip):
            metrics["skipped"] = 1.0
            return metrics
    discriminator.requires_grad_(False)  # G's step must not accumulate gradients in D
    try:
        g_terms = generator_terms(out, sketch, target, batch["correspondence"], discriminator, cfg, vgg, gen)
        metrics.update({k: float(v.detach()) for k, v in g_terms.items()})
        applied = _apply(g_terms["total"], opt_g, grad_clip)
    finally:
        discriminator.requires_grad_(True)
    metrics["skipped"] = 0.0 if applied else 1.0
    return metrics
