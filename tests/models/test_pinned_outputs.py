"""Pinned output slices of the tiny test model at a fixed seed, in the style of diffusers.

Shapes and invariants do not notice a change to initialisation or architecture (an init scale,
a layer order, a skip connection, a default flag); these numbers do. They were computed once on
CPU (float32) and pasted in. If a change is *meant* to alter the model, recompute them: run the
test, read the printed ``actual`` slice from the failure, and say why in the commit.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sketchcolor.config import ModelConfig
from sketchcolor.models import Colorizer


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _tiny_output(cfg: ModelConfig):
    torch.manual_seed(0)
    g = Colorizer(cfg).eval()
    with torch.no_grad():
        return g(_rand(1, 1, 32, 32, seed=1), _rand(1, 3, 32, 32, seed=2))


def _check(actual: torch.Tensor, expected: list[float]) -> None:
    assert actual.shape == (len(expected),)
    assert torch.allclose(actual, torch.tensor(expected), atol=1e-4), f"actual = {[round(v, 6) for v in actual.tolist()]}"


# image[0, :, :2, :3]: channels R, G, B; rows 0-1; columns 0-2
IMAGE_SLICE = [-0.095617, -0.097416, -0.098965, -0.100947, -0.114544, -0.1047,
               0.013096, 0.006953, 0.006567, 0.029857, 0.030337, 0.026776,
               -0.126929, -0.130949, -0.141798, -0.117823, -0.124116, -0.127228]
IMAGE_MEAN, IMAGE_ABS_MEAN = -0.06646, 0.08971

COLOR_PATH_IMAGE_SLICE = [0.079546, 0.085732, 0.08227, 0.07891, 0.079989, 0.079725,
                          -0.145794, -0.152646, -0.151322, -0.145481, -0.144573, -0.143688,
                          0.101874, 0.088835, 0.09192, 0.095544, 0.091204, 0.095789]
COLOR_PATH_IMAGE_MEAN, COLOR_PATH_IMAGE_ABS_MEAN = 0.010085, 0.106408
# warped_colors[0, :, 0, :3]: the reference's cell colors moved by the attention, first grid row
COLOR_PATH_WARPED_SLICE = [-0.027824, -0.027829, -0.027827, -0.013664, -0.013643, -0.013645, 0.001395, 0.001408, 0.001408]


def test_tiny_colorizer_output_slice(tiny_model_cfg: ModelConfig) -> None:
    out = _tiny_output(tiny_model_cfg)
    assert out.image.shape == (1, 3, 32, 32) and out.warped_colors is None
    _check(out.image[0, :, :2, :3].flatten(), IMAGE_SLICE)
    assert out.image.mean().item() == pytest.approx(IMAGE_MEAN, abs=1e-4)
    assert out.image.abs().mean().item() == pytest.approx(IMAGE_ABS_MEAN, abs=1e-4)


def test_tiny_colorizer_with_color_path_output_slice(tiny_model_cfg: ModelConfig) -> None:
    out = _tiny_output(dataclasses.replace(tiny_model_cfg, color_path=True))
    assert out.image.shape == (1, 3, 32, 32) and out.warped_colors.shape == (1, 3, 8, 8)
    _check(out.image[0, :, :2, :3].flatten(), COLOR_PATH_IMAGE_SLICE)
    _check(out.warped_colors[0, :, 0, :3].flatten(), COLOR_PATH_WARPED_SLICE)
    assert out.image.mean().item() == pytest.approx(COLOR_PATH_IMAGE_MEAN, abs=1e-4)
    assert out.image.abs().mean().item() == pytest.approx(COLOR_PATH_IMAGE_ABS_MEAN, abs=1e-4)
