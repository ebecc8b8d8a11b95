"""The cross-reference color term (loss.lambda_cross): a differentiable sliced Wasserstein in Lab
that leaves lines and paper out, and its place in the training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sketchcolor.config import LossConfig
from sketchcolor.evaluation.metrics import sliced_wasserstein
from sketchcolor.losses.cross_color import CrossPairs, cross_color_loss
from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.training.step import cross_rows, train_step
from sketchcolor.training.validation import validate

def _flat(colors: list[tuple[float, float, float]], shares: list[float], size: int = 32) -> torch.Tensor:
    """``[3, size, size]`` in [-1, 1]: horizontal bands of ``colors`` (RGB in [0, 1]) covering ``shares``."""
    img = torch.empty(3, size, size)
    rows = np.round(np.cumsum([0.0] + shares) * size).astype(int)
    for c, a, b in zip(colors, rows[:-1], rows[1:]):
        img[:, a:b] = torch.tensor(c)[:, None, None] * 2 - 1
    return img


def _pairs(image: torch.Tensor, target: torch.Tensor, own: torch.Tensor | None = None,
           sketch: torch.Tensor | None = None, target_sketch: torch.Tensor | None = None) -> CrossPairs:
    blank = torch.ones(1, 1, *image.shape[-2:])
    return CrossPairs(image[None], blank if sketch is None else sketch[None], target[None],
                      blank if target_sketch is None else target_sketch[None],
                      torch.zeros_like(image)[None] if own is None else own[None])


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_zero_for_the_same_colors_in_another_arrangement() -> None:
    a = _flat([(1, 0, 0), (0, 0.5, 1), (0.2, 0.8, 0.2)], [0.5, 0.25, 0.25])
    b = torch.flip(a, dims=[1])  # same colors, same shares, other places
    assert float(cross_color_loss(_pairs(a, b), _gen())) == pytest.approx(0.0, abs=1e-4)
    other = _flat([(1, 0, 0), (0, 0.5, 1), (0.2, 0.8, 0.2)], [0.25, 0.25, 0.5])
    assert float(cross_color_loss(_pairs(a, other), _gen())) > 0.02


def test_agrees_with_the_evaluation_metric() -> None:
    """The same estimator as evaluation.metrics.sliced_wasserstein (other random directions): a
    pure shift of the colors scores about the same in both, in Lab / 100."""
    from skimage.color import rgb2lab
    a = _flat([(0.9, 0.2, 0.1), (0.1, 0.3, 0.9)], [0.6, 0.4])
    b = _flat([(0.8, 0.7, 0.1), (0.1, 0.7, 0.5)], [0.6, 0.4])
    ours = float(cross_color_loss(_pairs(a, b), _gen(), n_directions=256)) * 100
    lab = [rgb2lab(((x + 1) / 2).permute(1, 2, 0).numpy()).reshape(-1, 3) for x in (a, b)]
    assert ours == pytest.approx(sliced_wasserstein(*lab, n_directions=256), rel=0.1)


def test_paper_and_lines_are_left_out() -> None:
    """Extra white paper in the output's picture, and black lines in the target's, change nothing."""
    colors = [(1, 0, 0), (0, 0, 1)]
    target = _flat(colors, [0.5, 0.5])
    target_sketch = torch.ones(1, 32, 32)
    target[:, :, :4] = -1.0  # the target's own black lines ...
    target_sketch[:, :, :4] = -1.0  # ... where its sketch has lines
    own = _flat([(1, 1, 1), (0.5, 0.5, 0.5)], [0.5, 0.5])  # picture i: paper on top
    image = _flat([(1, 1, 1), (1, 0, 0), (0, 0, 1)], [0.5, 0.25, 0.25])  # paints the paper white
    loss = cross_color_loss(_pairs(image, target, own, target_sketch=target_sketch), _gen())
    assert float(loss) == pytest.approx(0.0, abs=1e-3)
    # counted, the paper would be far from the target's colors
    counted = cross_color_loss(_pairs(image, target, own=-torch.ones(3, 32, 32), target_sketch=target_sketch), _gen())
    assert float(counted) > 0.1


def test_gradient_moves_the_colors_toward_the_target() -> None:
    target = _flat([(1, 0, 0), (0, 0, 1)], [0.5, 0.5])
    image = (_flat([(0.6, 0.4, 0.4), (0.4, 0.4, 0.6)], [0.5, 0.5])).requires_grad_(True)
    opt = torch.optim.Adam([image], lr=0.02)
    first = None
    for _ in range(30):
        loss = cross_color_loss(_pairs(image, target), _gen())
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert cross_color_loss(_pairs(image, target), _gen()).item() < 0.5 * first


def test_no_usable_pair_gives_zero_with_a_graph() -> None:
    image = torch.zeros(3, 32, 32, requires_grad=True)
    lines = -torch.ones(1, 32, 32)  # a sketch that is all lines
    loss = cross_color_loss(_pairs(image, image.detach(), sketch=lines), _gen())
    assert loss.item() == 0.0
    loss.backward()
    assert image.grad is not None


def test_a_batch_is_the_mean_of_its_usable_pairs() -> None:
    """Pairs are scored in one batched sort: a pair with no usable pixel (all lines) drops out of
    the mean, gives no NaN gradient, and the others score as they do alone."""
    a = _flat([(0.9, 0.2, 0.1), (0.1, 0.3, 0.8)], [0.5, 0.5])
    b = _flat([(0.2, 0.7, 0.2), (0.9, 0.8, 0.1)], [0.3, 0.7])
    c = _flat([(0.5, 0.1, 0.6)], [1.0])
    blank, lines = torch.ones(1, 32, 32), -torch.ones(1, 32, 32)
    image = torch.stack([a, c, b]).requires_grad_()
    pairs = CrossPairs(image, torch.stack([blank, lines, blank])[:, :1], torch.stack([b, a, c]),
                       torch.stack([blank, blank, blank]), torch.zeros(3, 3, 32, 32))
    alone = [float(cross_color_loss(_pairs(x, y), _gen())) for x, y in ((a, b), (b, c))]
    loss = cross_color_loss(pairs, _gen())
    assert loss.item() == pytest.approx(sum(alone) / 2, rel=1e-5)
    loss.backward()
    assert torch.isfinite(image.grad).all() and image.grad[1].abs().sum() == 0 and image.grad[0].abs().sum() > 0


def test_fp32_under_bf16_autocast() -> None:
    a = _flat([(0.9, 0.2, 0.1), (0.1, 0.3, 0.9), (0.5, 0.5, 0.2)], [0.5, 0.25, 0.25])
    b = _flat([(0.8, 0.7, 0.1), (0.1, 0.7, 0.5), (0.3, 0.3, 0.3)], [0.25, 0.5, 0.25])
    fp32 = cross_color_loss(_pairs(a, b), _gen())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        mixed = cross_color_loss(_pairs(a, b), _gen())
    assert mixed.dtype == torch.float32 and float(mixed) == pytest.approx(float(fp32), rel=1e-6)


def test_cross_rows() -> None:
    assert [cross_rows(b) for b in (1, 2, 3, 8)] == [0, 1, 1, 4]


def _batch(b: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"sketch": torch.rand(b, 1, 32, 32, generator=g) * 2 - 1,
            "reference": torch.rand(b, 3, 32, 32, generator=g) * 2 - 1,
            "target": torch.rand(b, 3, 32, 32, generator=g) * 2 - 1,
            "correspondence": torch.arange(64).repeat(b, 1)}


def test_train_step_reports_the_term_only_when_weighted(tiny_model_cfg) -> None:
    def step(lambda_cross: float) -> tuple[dict[str, float], Colorizer]:
        torch.manual_seed(0)
        g, d = Colorizer(tiny_model_cfg), PatchDiscriminator(tiny_model_cfg)
        opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
        cfg = LossConfig(lambda_perc=0, lambda_style=0, lambda_cross=lambda_cross)
        return train_step(g, d, opt_g, opt_d, _batch(4), cfg, None, torch.Generator().manual_seed(0)), g

    off, g_off = step(0.0)
    on, g_on = step(5.0)
    assert "cross" not in off and on["cross"] > 0
    # the batch's own terms are those of the same rows whether or not the cross rows ride along
    assert on["rec"] == pytest.approx(off["rec"], rel=1e-5)
    assert on["total"] == pytest.approx(off["total"] + 5.0 * on["cross"], rel=1e-4)
    assert any(not torch.equal(a, b) for a, b in zip(g_on.parameters(), g_off.parameters()))


def test_train_step_with_a_batch_of_one_has_no_cross_term(tiny_model_cfg) -> None:
    torch.manual_seed(0)
    g, d = Colorizer(tiny_model_cfg), PatchDiscriminator(tiny_model_cfg)
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    out = train_step(g, d, opt_g, opt_d, _batch(1), LossConfig(lambda_perc=0, lambda_style=0, lambda_cross=5.0),
                     None, torch.Generator().manual_seed(0))
    assert "cross" not in out and out["skipped"] == 0.0


def test_validation_logs_the_cross_color_distance(tiny_model_cfg) -> None:
    torch.manual_seed(0)
    g = Colorizer(tiny_model_cfg)
    scores = validate(g, [_batch(3)], torch.device("cpu"), (8, 8))
    assert 0 < scores["val_cross_color"] < 2
    assert validate(g, [_batch(3)], torch.device("cpu"), (8, 8)) == scores  # fixed directions
    assert 0 <= scores["val_paper_paint"] < 2
    assert {"val_cross_color", "val_paper_paint"}.isdisjoint(validate(g, [_batch(1)], torch.device("cpu"), (8, 8)))


def test_train_step_pairs_sketch_i_with_the_next_pictures_reference(tiny_model_cfg, monkeypatch) -> None:
    import sketchcolor.losses.objective as objective

    seen: list[CrossPairs] = []
    real = objective.cross_color_loss

    def spy(pairs: CrossPairs, gen=None):  # noqa: ANN001, ANN202
        seen.append(pairs)
        return real(pairs, gen)

    monkeypatch.setattr(objective, "cross_color_loss", spy)
    torch.manual_seed(0)
    g, d = Colorizer(tiny_model_cfg), PatchDiscriminator(tiny_model_cfg)
    batch = _batch(5)
    with torch.no_grad():
        expected = g(batch["sketch"][:2], batch["reference"][1:3]).image  # before the update
    opt_g, opt_d = torch.optim.SGD(g.parameters(), lr=0.0), torch.optim.SGD(d.parameters(), lr=0.0)
    train_step(g, d, opt_g, opt_d, batch, LossConfig(lambda_perc=0, lambda_style=0, lambda_cross=1.0), None,
               torch.Generator().manual_seed(0))
    (pairs,) = seen
    assert torch.allclose(pairs.image, expected, atol=1e-5)
    assert torch.equal(pairs.sketch, batch["sketch"][:2])
    assert torch.equal(pairs.target, batch["target"][1:3])
    assert torch.equal(pairs.target_sketch, batch["sketch"][1:3])
    assert torch.equal(pairs.own_target, batch["target"][:2])


def test_selection_weighs_the_cross_color_only_for_runs_that_train_it() -> None:
    from sketchcolor.training.validation import selection_score

    scores = {"val_l1": 0.1, "val_responsiveness": 0.9, "val_cross_color": 0.2}
    assert selection_score(scores) == pytest.approx(0.9 - 0.2)
    assert selection_score(scores, cross=True) == pytest.approx(0.9 - 0.2 - 0.4)


def test_selection_weighs_the_paper_paint_only_for_runs_that_train_it() -> None:
    """The validations of the run that made the step-15,500 weights (`runs/paper30n`, steps
    13,000 and 15,500): without the paper paint the score keeps 13,000, with it 15,500, which
    painted less of the paper when rendered and was shipped."""
    from sketchcolor.training.validation import selection_score

    early = {"val_l1": 0.0831, "val_responsiveness": 0.9765, "val_cross_color": 0.1157, "val_paper_paint": 0.0684}
    late = {"val_l1": 0.0877, "val_responsiveness": 0.9766, "val_cross_color": 0.1125, "val_paper_paint": 0.0253}
    assert selection_score(early, cross=True) > selection_score(late, cross=True)
    assert selection_score(late, cross=True, paper=True) > selection_score(early, cross=True, paper=True)
    assert selection_score(late, cross=True, paper=True) == pytest.approx(0.9766 - 2 * 0.0877 - 2 * 0.1125 - 0.0253)
    assert selection_score(late, paper=True) == pytest.approx(0.9766 - 2 * 0.0877 - 0.0253)


def test_config_refuses_the_term_with_batch_norm() -> None:
    from sketchcolor.config import Config, ConfigError, LossConfig, ModelConfig

    Config(loss=LossConfig(lambda_cross=1.0)).validate()
    with pytest.raises(ConfigError, match="lambda_cross"):
        Config(model=ModelConfig(norm="batch"), loss=LossConfig(lambda_cross=1.0)).validate()
