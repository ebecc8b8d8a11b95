"""The break detector of train.max_rewinds (training/rewind.py)."""

from __future__ import annotations

import random

import torch

from sketchcolor.training.rewind import MIN_HISTORY, BreakWatch


def _healthy(watch: BreakWatch, n: int, seed: int = 0) -> list[bool]:
    rng = random.Random(seed)
    return [watch.broken(rng.uniform(0.06, 0.14)) for _ in range(n)]


def test_noise_of_a_healthy_run_never_fires() -> None:
    assert not any(_healthy(BreakWatch(2.5), 500))


def test_a_jump_fires_on_its_second_log_point_and_one_bad_batch_does_not() -> None:
    watch = BreakWatch(2.5)
    _healthy(watch, 30)
    assert watch.broken(0.8) is False  # one point above the bar
    assert watch.broken(0.1) is False  # ... then back: not a break, and the spike is not history
    assert max(watch.history) <= 0.14
    assert watch.broken(0.6) is False and watch.broken(0.9) is True


def test_nan_counts_as_above_the_bar_and_nothing_fires_without_history_unless_resumed_with_it() -> None:
    watch = BreakWatch(2.5)
    assert not any(watch.broken(10.0 * (i % 2) + 0.1) for i in range(MIN_HISTORY - 1))  # too little history yet
    watch = BreakWatch(2.5)
    _healthy(watch, MIN_HISTORY)
    assert watch.broken(float("nan")) is False and watch.broken(float("nan")) is True
    resumed = BreakWatch(2.5, [0.1] * MIN_HISTORY)  # a checkpoint's history: it watches at once
    assert resumed.broken(0.5) is False and resumed.broken(0.5) is True


def test_the_bar_is_factor_times_the_median_not_the_mean() -> None:
    watch = BreakWatch(2.0, [0.1] * 15 + [1.0] * 4)  # median 0.1, mean 0.28
    assert watch.broken(0.2) is False and not watch.suspect  # at the bar: not above it
    assert watch.broken(0.21) is False and watch.suspect
    assert watch.broken(0.21) is True


def test_non_finite_values_never_enter_the_history() -> None:
    watch = BreakWatch(2.5)
    for v in (0.1, float("nan"), 0.1, float("inf"), 0.1):
        watch.broken(v)
    assert list(watch.history) == [0.1, 0.1, 0.1]


def test_fresh_discriminator_restarts_d_in_place_and_leaves_the_rng(tiny_model_cfg) -> None:
    from sketchcolor.config import Config, TrainConfig
    from sketchcolor.models import PatchDiscriminator
    from sketchcolor.training.loop import build_models, fresh_discriminator

    cfg = Config(model=tiny_model_cfg, train=TrainConfig(lr_d=2e-4))
    models = build_models(cfg, torch.device("cpu"))
    params = list(models.discriminator.parameters())
    loss = sum(p.square().sum() for p in params)
    loss.backward()
    models.opt_d.step()
    models.opt_d.param_groups[0]["lr"] = 5e-5  # what a rewind's scale left
    rng = torch.get_rng_state()
    fresh_discriminator(cfg, models, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(3)
    expected = PatchDiscriminator(tiny_model_cfg).state_dict()
    got = models.discriminator.state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert all(p is q for p, q in zip(models.discriminator.parameters(), params))  # in place
    assert not models.opt_d.state and models.opt_d.param_groups[0]["lr"] == 5e-5
