"""Reference responsiveness as logged during training: 1 for a model that follows, -1/3 for one that ignores."""

from __future__ import annotations

import math

import torch

from sketchcolor.data.color import rotate_hue
from sketchcolor.training.validation import RESPONSIVENESS_TURNS, has_hue, responsiveness, selection_score


def muted_colors(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(2, 3, 1, 1, generator=g) * 0.6 - 0.3  # muted: turns stay inside the gamut
    return (base + 0.05 * torch.rand(2, 3, 16, 16, generator=g)).clamp(-1, 1)


def test_a_model_that_follows_the_reference_scores_one():
    ref = muted_colors()
    turned = {deg: rotate_hue(ref, math.radians(deg)) for deg in RESPONSIVENESS_TURNS}
    assert all(s > 0.95 for s in responsiveness(ref, turned))


def test_a_model_that_ignores_the_reference_scores_minus_a_third():
    out = muted_colors()
    turned = {deg: out.clone() for deg in RESPONSIVENESS_TURNS}
    for s in responsiveness(out, turned):
        assert abs(s - (-1.0 / 3.0)) < 1e-5


def test_colorless_outputs_score_zero_and_gray_references_have_no_hue():
    gray = torch.zeros(1, 3, 8, 8)
    assert responsiveness(gray, {deg: gray for deg in RESPONSIVENESS_TURNS}) == [0.0]
    assert not has_hue(gray[0])
    assert has_hue(muted_colors()[0] * 3)


def test_selection_prefers_responsive_then_accurate():
    assert selection_score({"val_l1": 0.2, "val_responsiveness": 0.9}) > selection_score({"val_l1": 0.2, "val_responsiveness": 0.1})
    assert selection_score({"val_l1": 0.1}) > selection_score({"val_l1": 0.3})
