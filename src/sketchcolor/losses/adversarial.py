"""Conditional adversarial loss (Eq. 8): the discriminator is passed in as its logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _target_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"unknown gan_mode {mode!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str = "vanilla") -> torch.Tensor:
    """D's loss: real patches -> 1, generated patches -> 0 (logits ``[B, 1, h, w]``)."""
    return _target_loss(real_logits, True, mode) + _target_loss(fake_logits, False, mode)


def generator_loss(fake_logits: torch.Tensor, mode: str = "vanilla") -> torch.Tensor:
    """G's loss: make D call generated patches real (the non-saturating form of Eq. 8)."""
    return _target_loss(fake_logits, True, mode)


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): the squared gradient norm of D's score on real pictures,
    ``E ||d D(x) / dx||^2``, the score being the mean of an image's patch logits (as D's loss
    averages them). ``real [B, 3, H, W]`` must require grad and ``real_logits [B, 1, h, w]`` come
    from it; the result keeps its graph, so the penalty trains D. It keeps D from sharpening
    without bound around the real pictures, which is how these runs' D won its runaways."""
    score = real_logits.float().mean(dim=(1, 2, 3)).sum()
    (grad,) = torch.autograd.grad(score, real, create_graph=True)
    return grad.float().square().sum(dim=(1, 2, 3)).mean()
