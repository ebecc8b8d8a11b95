"""a() in Lab: hue rotation, chroma/lightness changes, per-region recoloring; the hue geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sketchcolor.config import DataConfig
from sketchcolor.data.appearance import REGION_SLOTS, apply_appearance, color_regions, sample_appearance
from sketchcolor.data.color import chroma, follow_score, hue_turn, rotate_hue, to_lab

SIZE = 32


def flat_picture() -> torch.Tensor:
    """White paper, a red disc, a green square (muted, so no turn leaves the sRGB gamut), a black
    outline: ``[3, 32, 32]`` in [-1, 1]."""
    img = np.full((SIZE, SIZE, 3), 255, np.uint8)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    img[(yy - 10) ** 2 + (xx - 10) ** 2 < 36] = (200, 120, 110)
    img[18:28, 16:28] = (110, 170, 120)
    img[16, :] = 0
    return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1.0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("deg", [90.0, 180.0, 270.0])
def test_rotate_hue_is_measured_back(deg):
    img = flat_picture()
    turn = hue_turn(img, rotate_hue(img, math.radians(deg)))
    # Lab -> sRGB clips a little gamut, so the measured turn is close, not exact
    assert math.cos(float(turn) - math.radians(deg)) > 0.98
    assert follow_score(img, rotate_hue(img, math.radians(deg)), math.radians(deg)) > 0.98


def test_hue_turn_of_gray_pictures_is_none():
    gray = torch.zeros(3, 8, 8)
    assert hue_turn(gray, gray) is None
    assert follow_score(gray, gray, 1.0) is None


def test_identity_parameters_keep_the_picture():
    cfg = DataConfig(hue_rotation=0.0, chroma_range=(1.0, 1.0), lightness_shift=0.0, region_recolor=0.0)
    img = flat_picture()
    out = apply_appearance(img, sample_appearance(gen(0), cfg), cfg)
    assert (out - img).abs().max() < 0.02  # only the Lab round trip


def test_sampling_is_seeded_and_draws_a_fixed_count():
    cfg = DataConfig()
    a, b, c = sample_appearance(gen(3), cfg), sample_appearance(gen(3), cfg), sample_appearance(gen(4), cfg)
    assert torch.equal(a.hue, b.hue) and torch.equal(a.lightness, b.lightness)
    assert not torch.equal(a.hue, c.hue)
    for p in (a, c):
        assert p.hue.shape == p.chroma_scale.shape == p.lightness.shape == (REGION_SLOTS,)
        assert p.hue.abs().max() <= math.pi + 1e-6
    # the draw count does not depend on the outcome: the next number from the generator is the same
    g1, g2 = gen(5), gen(5)
    sample_appearance(g1, DataConfig(region_recolor=0.0))
    sample_appearance(g2, DataConfig(region_recolor=1.0))
    assert torch.equal(torch.rand(1, generator=g1), torch.rand(1, generator=g2))


def test_whole_picture_mode_turns_every_region_alike_and_keeps_paper_and_lines():
    cfg = DataConfig(region_recolor=0.0, chroma_range=(1.0, 1.0), lightness_shift=0.0)
    img = flat_picture()
    params = sample_appearance(gen(1), cfg)
    assert bool((params.hue == params.hue[0]).all())
    out = apply_appearance(img, params, cfg)
    red, green = (slice(None), 10, 10), (slice(None), 22, 22)
    for where in (red, green):
        turn = hue_turn(img[where][:, None, None], out[where][:, None, None], min_chroma=1.0)
        assert math.cos(float(turn) - float(params.hue[0])) > 0.97
    assert (out[:, 0, 0] - img[:, 0, 0]).abs().max() < 0.02  # white paper stays white
    assert (out[:, 16, 5] - img[:, 16, 5]).abs().max() < 0.02  # black line stays black


def test_per_region_mode_gives_regions_their_own_colors():
    cfg = DataConfig(region_recolor=1.0)
    img = flat_picture()
    labels = color_regions(img)
    assert labels.shape == (SIZE, SIZE) and labels.dtype == torch.long
    assert labels[10, 10] != labels[22, 22]  # red disc and green square are different regions
    assert labels[10, 10] == labels[9, 11]  # one region is one label
    turns = []
    for seed in range(6):
        params = sample_appearance(gen(seed), cfg)
        out = apply_appearance(img, params, cfg, labels)
        assert torch.allclose(out, apply_appearance(img, params, cfg))  # labels are recomputed the same
        for where in ((10, 10), (22, 22)):
            turns.append(float(hue_turn(img[:, where[0], where[1]][:, None, None],
                                        out[:, where[0], where[1]][:, None, None], min_chroma=1.0)))
    red, green = turns[0::2], turns[1::2]
    assert any(abs(math.remainder(r - g, 2 * math.pi)) > 0.3 for r, g in zip(red, green))


def test_chroma_scale_and_lightness_move_colored_pixels_only():
    cfg = DataConfig(hue_rotation=0.0, chroma_range=(0.5, 0.5), lightness_shift=0.0, region_recolor=0.0)
    img = flat_picture()
    out = apply_appearance(img, sample_appearance(gen(0), cfg), cfg)
    c_in, c_out = chroma(to_lab(img)), chroma(to_lab(out))
    assert abs(float(c_out[10, 10] / c_in[10, 10]) - 0.5) < 0.05
    assert float(c_out[0, 0]) < 1.0


def test_bad_appearance_settings_are_config_errors():
    from sketchcolor.config import config_from_dict
    from sketchcolor.errors import ConfigError

    for bad in ({"chroma_range": [1.5, 0.5]}, {"chroma_range": [1.0]}, {"region_recolor": 2.0}, {"hue_rotation": 400}):
        with pytest.raises(ConfigError):
            config_from_dict({"data": bad})
