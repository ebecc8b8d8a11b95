"""L_rec = || G(I_s, I_r) - I_gt ||_1 (Eq. 7)."""

import torch


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over ``[B, 3, H, W]``."""
    return (output - target).abs().mean()
