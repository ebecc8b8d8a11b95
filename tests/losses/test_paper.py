"""The paper term (loss.lambda_paper): L1 on the cross rows over the paper around the drawing only,
and that mask (data/paper.py), which training batches bring made in the data workers."""

from __future__ import annotations

import pytest
import torch

from sketchcolor.config import Config, ConfigError, LossConfig
from sketchcolor.data.paper import around_drawing, paper_around_drawing, reach_from_frame
from sketchcolor.losses.paper import paper_loss
from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.training.step import train_step


def _ring(size: int = 32, gap: bool = False) -> torch.Tensor:
    """``[1, 1, size, size]`` sketch in [-1, 1]: a square outline (rows/cols 8 and 23, 2 px wide
    lines at -1) on white, with a 4 px opening in its top side when ``gap``."""
    s = torch.ones(1, 1, size, size)
    s[..., 8:10, 8:24] = s[..., 22:24, 8:24] = -1
    s[..., 8:24, 8:10] = s[..., 8:24, 22:24] = -1
    if gap:
        s[..., 8:10, 14:18] = 1
    return s


def _picture(size: int = 32) -> torch.Tensor:
    """``[1, 3, size, size]`` in [-1, 1]: white paper, a black outline where ``_ring`` has it, a
    white inside (paper-colored, so only the reach from the frame tells it from the paper)."""
    return torch.ones(1, 3, size, size) * _ring(size)


def test_reach_from_frame_stops_at_lines_and_goes_through_gaps() -> None:
    closed = reach_from_frame(_ring() >= 0)
    assert closed[0, 0, 0, 0] and closed[0, 0, 31, 31] and closed[0, 0, 4, 16]
    assert not closed[0, 0, 10:22, 10:22].any() and not closed[0, 0, 8, 8]
    opened = reach_from_frame(_ring(gap=True) >= 0)
    assert opened[0, 0, 10:22, 10:22].all()


def test_reach_is_four_connected() -> None:
    """A diamond drawn with one-pixel diagonal steps is closed: an 8-connected flood would leak
    into it between two diagonal neighbours."""
    pocket = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    for i in range(4):
        for r, c in ((4 + i, 8 + i), (8 + i, 12 - i), (12 - i, 8 - i), (8 - i, 4 + i)):
            pocket[0, 0, r, c] = False
    reached = reach_from_frame(pocket)
    assert not reached[0, 0, 6:11, 7:10].any() and reached[0, 0, 0, 0] and reached[0, 0, 15, 15]


def test_reach_follows_paths_of_any_length() -> None:
    """A serpentine corridor opening on the frame, its path from there far longer than H + W (the
    step count of the flood the training step once ran): all of it is reached, the walls are not."""
    size = 33
    free = torch.zeros(1, 1, size, size, dtype=torch.bool)
    for r in range(1, size - 1, 2):  # rows 1, 3, ... joined alternately at the right and left ends
        free[0, 0, r, 1:size - 1] = True
        if r + 2 < size - 1:
            c = size - 2 if (r // 2) % 2 == 0 else 1
            free[0, 0, r + 1, c] = True
    free[0, 0, 0, 1] = True  # the opening on the top edge
    reached = reach_from_frame(free)
    assert int(free.sum()) > 2 * size * 4
    assert torch.equal(reached, free)
    assert torch.equal(reach_from_frame(free.repeat(3, 1, 1, 1)), free.repeat(3, 1, 1, 1))


def test_mask_leaves_out_the_inside_and_colored_paper() -> None:
    target = _picture()
    mask = paper_around_drawing(target, _ring())
    assert mask[0, 0, 0, 0] and not mask[0, 0, 16, 16] and not mask[0, 0, 8, 8]
    colored = target.clone()
    colored[:, 1:, :4] = -1  # a red band along the top: not paper
    mask = paper_around_drawing(colored, _ring())
    assert not mask[0, 0, :4].any() and mask[0, 0, 4:8].all()


def test_loss_scores_paint_on_the_paper_only() -> None:
    target, sketch = _picture(), _ring()
    assert paper_loss(target.clone(), sketch, target).item() == 0.0
    inside = target.clone()
    inside[..., 10:22, 10:22] = -0.5  # paint inside the drawing: not this term's business
    assert paper_loss(inside, sketch, target).item() == 0.0
    spill = target.clone().requires_grad_()
    painted = spill.detach().clone()
    painted[..., 0:4, 0:32] = 0.0  # a grey band on the paper: |0 - 1| on 3 x 4 x 32 values
    loss = paper_loss(painted.requires_grad_(), sketch, target)
    assert loss.item() == pytest.approx(3 * 4 * 32 / (3 * 32 * 32))
    loss.backward()
    assert spill.grad is None and painted.grad[..., 10:22, 10:22].abs().sum() == 0
    assert painted.grad[..., 0:4, :].abs().sum() > 0


def test_loss_with_the_batch_region_equals_the_loss_that_finds_it() -> None:
    target, sketch = _picture(), _ring(gap=True)
    painted = target * 0.3
    around = around_drawing(sketch)
    assert torch.equal(paper_around_drawing(target, sketch, around), paper_around_drawing(target, sketch))
    assert paper_loss(painted, sketch, target, around).item() == paper_loss(painted, sketch, target).item() > 0
    none = torch.zeros_like(around)  # a region the caller gives is the one used
    assert paper_loss(painted, sketch, target, none).item() == 0.0


def test_loss_is_float32_under_bf16_autocast() -> None:
    target, sketch = _picture(), _ring()
    painted = target * 0.5
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        mixed = paper_loss(painted.bfloat16(), sketch, target)
    assert mixed.dtype == torch.float32 and mixed.item() == pytest.approx(paper_loss(painted, sketch, target).item(),
                                                                          rel=1e-2)


def test_train_step_reports_the_term_and_adds_it_to_the_total(tiny_model_cfg) -> None:
    g_ = torch.Generator().manual_seed(3)
    sketch = _ring().repeat(4, 1, 1, 1)
    batch = {"sketch": sketch, "reference": torch.rand(4, 3, 32, 32, generator=g_) * 2 - 1,
             "target": _picture().repeat(4, 1, 1, 1), "correspondence": torch.arange(64).repeat(4, 1)}

    def step(lambda_paper: float) -> dict[str, float]:
        torch.manual_seed(0)
        g, d = Colorizer(tiny_model_cfg), PatchDiscriminator(tiny_model_cfg)
        opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
        cfg = LossConfig(lambda_perc=0, lambda_style=0, lambda_cross=1.0, lambda_paper=lambda_paper)
        return train_step(g, d, opt_g, opt_d, batch, cfg, None, torch.Generator().manual_seed(0))

    off, on = step(0.0), step(7.0)
    assert "paper" not in off and on["paper"] > 0
    assert on["total"] == pytest.approx(off["total"] + 7.0 * on["paper"], rel=1e-4)
    # a batch from the data stream brings the region around each drawing: the same step
    batch["around"] = around_drawing(sketch)
    assert step(7.0) == on


def test_config_needs_the_cross_rows() -> None:
    Config(loss=LossConfig(lambda_cross=1.0, lambda_paper=30.0)).validate()
    with pytest.raises(ConfigError, match="lambda_paper.*lambda_cross"):
        Config(loss=LossConfig(lambda_paper=30.0)).validate()
    with pytest.raises(ConfigError, match="lambda_paper"):
        Config(loss=LossConfig(lambda_cross=1.0, lambda_paper=-1.0)).validate()


def test_validation_logs_the_paint_on_the_paper(tiny_model_cfg) -> None:
    from sketchcolor.training.validation import validate

    torch.manual_seed(0)
    g = Colorizer(tiny_model_cfg)
    batch = {"sketch": _ring().repeat(3, 1, 1, 1), "reference": torch.rand(3, 3, 32, 32) * 2 - 1,
             "target": _picture().repeat(3, 1, 1, 1), "correspondence": torch.arange(64).repeat(3, 1)}
    with torch.no_grad():
        cross = g(batch["sketch"][:-1], batch["reference"][1:]).image
    scores = validate(g, [batch], torch.device("cpu"), (8, 8))
    assert scores["val_paper_paint"] == pytest.approx(paper_loss(cross, batch["sketch"][:-1], batch["target"][:-1]).item(),
                                                rel=1e-5)
    assert scores["val_paper_paint"] > 0  # an untrained G does not paint the paper white
