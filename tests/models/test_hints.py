"""Correspondence hints: a bias on SCFT's logits (models/scft.py) built from a user's point pair
(inference/fixes.py)."""

from __future__ import annotations

import pytest
import torch

from sketchcolor.data.io import Letterbox
from sketchcolor.inference.fixes import Hint, hint_bias
from sketchcolor.models import Colorizer


def _model(tiny_model_cfg) -> Colorizer:
    torch.manual_seed(0)
    return Colorizer(tiny_model_cfg).eval()


def _inputs(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 1, size, size, generator=g) * 2 - 1, torch.rand(1, 3, size, size, generator=g) * 2 - 1


def test_zero_bias_and_zero_strength_change_nothing(tiny_model_cfg) -> None:
    model = _model(tiny_model_cfg)
    s, r = _inputs(tiny_model_cfg.image_size)
    n = (tiny_model_cfg.image_size // tiny_model_cfg.feature_stride) ** 2
    with torch.no_grad():
        plain = model(s, r)
        zero = model(s, r, attention_bias=torch.zeros(1, n, n))
    assert torch.equal(plain.image, zero.image) and torch.equal(plain.attention, zero.attention)
    box = Letterbox(32, 32, 32, 0, 0, 32, 32)
    grid = (tiny_model_cfg.image_size // tiny_model_cfg.feature_stride,) * 2
    assert hint_bias([Hint((0.5, 0.5), (0.1, 0.1), strength=0.0)], box, [box], grid, [grid],
                     tiny_model_cfg.feature_stride) is None


@pytest.mark.parametrize("target", [(0.1, 0.1), (0.9, 0.3), (0.4, 0.95)])
def test_a_hint_moves_the_row_argmax_to_the_hinted_cell(tiny_model_cfg, target) -> None:
    model = _model(tiny_model_cfg)
    size, stride = tiny_model_cfg.image_size, tiny_model_cfg.feature_stride
    s, r = _inputs(size)
    grid = (size // stride,) * 2
    box = Letterbox(size, size, size, 0, 0, size, size)
    point = (0.3, 0.6)
    row = int(point[1] * grid[0]) * grid[1] + int(point[0] * grid[1])
    col = int(target[1] * grid[0]) * grid[1] + int(target[0] * grid[1])
    with torch.no_grad():
        before = model(s, r).attention[0, row]
        bias = hint_bias([Hint(point, target, strength=1.5)], box, [box], grid, [grid], stride)
        after = model(s, r, attention_bias=bias)
    assert int(before.argmax()) != col or target == (0.1, 0.1)  # the hint has work to do (seeded)
    assert int(after.attention[0, row].argmax()) == col
    assert torch.allclose(after.attention.sum(-1), torch.ones(1, grid[0] * grid[1]))
    # rows far from the hinted point keep their attention exactly
    far = 0 if row > grid[1] * 2 else grid[0] * grid[1] - 1
    assert torch.equal(after.attention[0, far], model(s, r).attention[0, far])


def test_hint_bias_through_the_letterbox_and_several_references() -> None:
    """A hint's points are relative to each picture: a wide reference sits in the middle rows of
    the model's square, and a second reference's cells follow the first's."""
    sketch_box = Letterbox(64, 64, 64, 0, 0, 64, 64)
    wide = Letterbox(32, 64, 64, 16, 0, 32, 64)  # 2:1 picture letterboxed: rows 16..48
    grid = (8, 8)
    bias = hint_bias([Hint((0.55, 0.55), (0.05, 0.05), 2.0, reference_index=1)], sketch_box, [sketch_box, wide],
                     grid, [grid, grid], 8)
    assert bias.shape == (1, 64, 128)
    row = 4 * 8 + 4
    assert float(bias[0, row, :64].abs().max()) == 0.0  # nothing on the first reference
    assert int(bias[0, row, 64:].argmax()) == 2 * 8 + 0  # top-left of the picture: row 2 of the square
    assert int(bias[0].amax(dim=1).argmax()) == row  # the hinted drawing cell gets the most
    assert 0 < float(bias.max()) <= 2.0
