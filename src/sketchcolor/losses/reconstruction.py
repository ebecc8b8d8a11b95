"""L_rec = || G(I_s, I_r) - I_gt ||_1 (Eq. 7), and the same L1 on the colors SCFT moves."""

import torch
import torch.nn.functional as F


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over ``[B, 3, H, W]``."""
    return (output - target).abs().mean()


def warp_l1(warped: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the attention-moved reference colors ``[B, 3, h, w]`` and the target
    ``[B, 3, H, W]`` average-pooled to the same ``h x w`` cells."""
    return (warped - F.adaptive_avg_pool2d(target, warped.shape[-2:])).abs().mean()
