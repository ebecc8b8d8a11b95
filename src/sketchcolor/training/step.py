"""One training iteration: a D step, then a G step. No file IO.

The same code runs in one process and under DDP (:mod:`sketchcolor.training.distributed`): then
``generator`` is the DDP-wrapped G, ``d_pair`` the DDP-wrapped :class:`DiscriminatorPair`, and
``options.shard`` says which rows of the global batch this process holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.profiler import record_function

from sketchcolor.config import LossConfig
from sketchcolor.losses.adversarial import r1_penalty
from sketchcolor.losses.cross_color import CrossPairs
from sketchcolor.losses.objective import discriminator_objective, generator_terms
from sketchcolor.losses.triplet import BatchShard
from sketchcolor.models.generator import ColorizerOutput


class DiscriminatorPair(nn.Module):
    """D on the real and the (detached) generated pictures in one forward call.

    DDP expects one forward per backward (its gradient hooks fire once per parameter); D's loss
    needs two calls of D, so DDP wraps this module instead of D. D is called twice, real first,
    exactly as :func:`sketchcolor.losses.objective.discriminator_terms` does, so spectral norm's
    power iteration runs as often as in one process. With ``r1`` the R1 penalty's gradient is taken
    inside the same forward, from the same real call, so it adds no call of D (nor a power
    iteration) and DDP still sees one forward and one backward."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, real: torch.Tensor, fake: torch.Tensor, sketch: torch.Tensor,
                r1: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``real``/``fake [B, 3, H, W]``, ``sketch [B, 1, H, W]`` -> patch logits ``[B, 1, h, w]``
        each, and the R1 penalty (a scalar, None without ``r1``)."""
        if r1:
            real = real.detach().requires_grad_(True)
        real_logits = self.discriminator(real, sketch)
        penalty = r1_penalty(real_logits, real) if r1 else None
        return real_logits, self.discriminator(fake, sketch), penalty


def discriminator_terms(real: torch.Tensor, fake: torch.Tensor, sketch: torch.Tensor, pair: nn.Module,
                        cfg: LossConfig) -> dict[str, torch.Tensor]:
    """D's loss on real targets and (detached) outputs through ``pair`` (a
    :class:`DiscriminatorPair`, maybe DDP-wrapped): the terms of
    :func:`sketchcolor.losses.objective.discriminator_terms` in one forward call. ``d`` is what D
    minimises (with ``loss.r1_gamma`` > 0 it includes the weighted penalty, also given as ``r1``)."""
    return discriminator_objective(*pair(real, fake.detach(), sketch, cfg.r1_gamma > 0), cfg)


def _everywhere(flag: bool) -> bool:
    return flag


@dataclass
class StepOptions:
    """How the step runs, beyond what it computes.

    ``autocast``: the dtype of torch.autocast (None = fp32) on ``device_type``; ``scaler_g`` /
    ``scaler_d``: gradient scalers (fp16); ``shard``: this process's rows of the global batch;
    ``agree``: True only when the flag is True on every process (identity in one process), so
    every process skips the same updates and none waits for a backward another one skipped."""

    device_type: str = "cpu"
    autocast: torch.dtype | None = None
    scaler_g: torch.amp.GradScaler | None = None
    scaler_d: torch.amp.GradScaler | None = None
    shard: BatchShard | None = None
    agree: Callable[[bool], bool] = _everywhere

    @contextlib.contextmanager
    def autocasting(self) -> Iterator[None]:
        if self.autocast is None:
            yield
        else:
            with torch.autocast(device_type=self.device_type, dtype=self.autocast):
                yield


def cross_rows(batch_size: int) -> int:
    """How many of a (per-process) batch's sketches ``loss.lambda_cross`` also colorizes with the
    next picture's reference: half, none for a batch of one (no other picture to take)."""
    return batch_size // 2


def _split(out: ColorizerOutput, b: int) -> tuple[ColorizerOutput, torch.Tensor]:
    """The first ``b`` rows of a joint forward (the batch's own pairs) and the images of the rest."""
    def head(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[:b]
    return (ColorizerOutput(out.image[:b], head(out.attention), head(out.query), head(out.key),
                            head(out.warped_colors)), out.image[b:])


def _grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor | None:
    """The total L2 norm of the gradients (None without any): non-finite exactly when some
    gradient is (or when the norm overflows float32, which no usable gradient does). It is the
    finiteness check and, when clipping, the norm ``clip_grad_norm_`` would compute: one read of
    each gradient, where ``isfinite(g).all()`` took four passes (measured 6% of a step)."""
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else None


def _apply(loss: torch.Tensor, opt: torch.optim.Optimizer, clip: float = 0.0,
           scaler: torch.amp.GradScaler | None = None, agree: Callable[[bool], bool] = _everywhere) -> bool:
    """Backpropagate ``loss`` and step ``opt`` unless the loss or a gradient is not finite.

    ``clip > 0`` rescales the gradients to that total L2 norm at most (torch's
    ``clip_grad_norm_``). Returns whether the update was applied; a refused update leaves the
    weights and the optimizer state exactly as they were. Under DDP the gradients are averaged
    over the processes during ``backward``, so the gradient check gives the same answer on every
    process; the loss check is agreed explicitly before any backward starts."""
    if not agree(bool(torch.isfinite(loss))):
        return False
    opt.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if scaler is not None:
        scaler.unscale_(opt)  # the check and the clipping see the true gradients
    params = [p for group in opt.param_groups for p in group["params"]]
    norm = _grad_norm(params)
    if norm is not None and not bool(torch.isfinite(norm)):
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update()  # an fp16 overflow: lower the scale for the next step
        return False
    if clip > 0 and norm is not None:
        torch.nn.utils.clip_grads_with_norm_(params, clip, norm)  # = clip_grad_norm_(params, clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
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
    *,
    d_pair: nn.Module | None = None,
    options: StepOptions | None = None,
) -> dict[str, float]:
    """Alternate D and G on one batch (``sketch [B,1,H,W]``, ``reference``/``target [B,3,H,W]``,
    ``correspondence [B, hw]``). Returns the scalar terms.

    ``discriminator`` is the plain D (G's adversarial term calls it with D frozen: no gradient of
    D to synchronise); ``d_pair`` a :class:`DiscriminatorPair` over it for D's own step (the
    DDP-wrapped one under DDP; built here when None).

    A non-finite loss or gradient never reaches the weights: when D's loss (or a gradient of it)
    is not finite, neither D nor G is updated on this batch (G's adversarial term would come from
    the same D on the same batch); when G's is not finite, G is not updated (D's update, whose loss
    and gradients were finite, stands). Either way the step is reported with ``skipped = 1`` and
    the loop counts it."""
    opts = options or StepOptions()
    pair = d_pair if d_pair is not None else DiscriminatorPair(discriminator)
    sketch, reference, target = batch["sketch"], batch["reference"], batch["target"]
    b = sketch.shape[0]
    n_cross = cross_rows(b) if cfg.lambda_cross else 0
    # record_function names the phases in a torch.profiler trace (bench/train_throughput.py)
    with opts.autocasting(), record_function("G forward"):
        if n_cross:
            # sketch i with picture i+1's reference, in the same forward call (DDP wants one per
            # backward; G has no batch statistics, config.Config.validate refuses norm=batch with
            # the term, so the rows do not mix)
            out, cross_image = _split(generator(torch.cat([sketch, sketch[:n_cross]]),
                                                torch.cat([reference, reference[1:n_cross + 1]])), b)
        else:
            out = generator(sketch, reference)
    # the region around each drawing comes with the batch (data.paper, made in the data workers);
    # for a batch built without it (tests, benches) the paper term computes it
    around = batch.get("around")
    cross = (CrossPairs(cross_image, sketch[:n_cross], target[1:n_cross + 1], sketch[1:n_cross + 1], target[:n_cross],
                        None if around is None else around[:n_cross])
             if n_cross else None)
    metrics: dict[str, float] = {}
    if cfg.lambda_adv:
        with opts.autocasting(), record_function("D forward"):
            d_terms = discriminator_terms(target, out.image, sketch, pair, cfg)
        d_loss = d_terms["d"]
        metrics.update((k, float(v.detach())) for k, v in d_terms.items())
        with record_function("D backward + update"):
            if not _apply(d_loss, opt_d, grad_clip, opts.scaler_d, opts.agree):
                metrics["skipped"] = 1.0
                return metrics
    discriminator.requires_grad_(False)  # G's step must not accumulate gradients in D
    try:
        with opts.autocasting(), record_function("G losses forward"):
            g_terms = generator_terms(out, sketch, target, batch["correspondence"], discriminator, cfg, vgg, gen,
                                      opts.shard, cross)
        # one device sync for all terms, not one per term
        values = torch.stack([v.detach().float() for v in g_terms.values()]).tolist()
        metrics.update(zip(g_terms, values))
        with record_function("G backward + update"):
            applied = _apply(g_terms["total"], opt_g, grad_clip, opts.scaler_g, opts.agree)
    finally:
        discriminator.requires_grad_(True)
    metrics["skipped"] = 0.0 if applied else 1.0
    return metrics
