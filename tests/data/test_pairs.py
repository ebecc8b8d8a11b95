"""make_triplet: augmented self-reference from one color image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sketchcolor.config import DataConfig
from sketchcolor.data.io import letterbox, load_image, to_tensor
from sketchcolor.data.pairs import make_triplet, make_triplet_from_seed
from sketchcolor.data.sketch import extract_sketch

SIZE = 32
GRID = (8, 8)


@pytest.fixture(scope="module")
def photo(sample_photos) -> np.ndarray:
    [path] = [p for p in sample_photos if p.stem == "astronaut"]
    rgb, _ = letterbox(load_image(path), SIZE)
    return rgb


def _fields(t):
    return (t.sketch, t.reference, t.target, t.correspondence)


def test_same_seed_same_triplet_different_seed_differs(photo):
    cfg = DataConfig()
    a = make_triplet_from_seed(photo, 7, cfg, GRID)
    b = make_triplet_from_seed(photo, 7, cfg, GRID)
    c = make_triplet_from_seed(photo, 8, cfg, GRID)
    for x, y in zip(_fields(a), _fields(b)):
        assert torch.equal(x, y)
    assert torch.equal(a.sketch, c.sketch)  # the sketch depends on the image only
    assert not torch.equal(a.target, c.target)
    assert not torch.equal(a.reference, c.reference)


def test_seeded_equals_explicit_generator(photo):
    cfg = DataConfig()
    a = make_triplet_from_seed(photo, 11, cfg, GRID)
    b = make_triplet(photo, torch.Generator().manual_seed(11), cfg, GRID)
    for x, y in zip(_fields(a), _fields(b)):
        assert torch.equal(x, y)


def test_shapes_dtypes_and_ranges(photo):
    t = make_triplet_from_seed(photo, 0, DataConfig(), GRID)
    assert t.sketch.shape == (1, SIZE, SIZE)
    assert t.reference.shape == (3, SIZE, SIZE)
    assert t.target.shape == (3, SIZE, SIZE)
    assert t.correspondence.shape == (GRID[0] * GRID[1],)
    assert t.correspondence.dtype == torch.long
    for x in (t.sketch, t.reference, t.target):
        assert x.dtype == torch.float32
        assert x.min() >= -1.0 and x.max() <= 1.0
    assert t.correspondence.min() >= -1 and t.correspondence.max() < GRID[0] * GRID[1]
    # the sketch is the extracted sketch of the image
    assert torch.equal(t.sketch, to_tensor(extract_sketch(photo, DataConfig())))


def test_non_square_grid_correspondence_length(photo):
    t = make_triplet_from_seed(photo, 0, DataConfig(), (4, 8))
    assert t.correspondence.shape == (32,)


def test_reference_is_warped_target(photo):
    for seed in range(3):
        t = make_triplet_from_seed(photo, seed, DataConfig(), GRID)
        assert not torch.allclose(t.reference, t.target, atol=1e-3)
        # a warp with small displacements keeps most cells in place or near it
        assert (t.correspondence >= 0).float().mean() > 0.8


def test_no_warp_gives_reference_equal_to_target(photo):
    cfg = DataConfig(tps_scale=0.0)
    t = make_triplet_from_seed(photo, 0, cfg, GRID)
    assert torch.allclose(t.reference, t.target, atol=1e-4)
    assert torch.equal(t.correspondence, torch.arange(GRID[0] * GRID[1]))


def test_mirrored_reference_is_the_target_mirrored(photo):
    # data.mirror = 1 with no displacement: the reference is the recolored target read right to
    # left, and each sketch cell's correspondence names the cell mirrored across the middle
    t = make_triplet_from_seed(photo, 0, DataConfig(tps_scale=0.0, mirror=1.0), GRID)
    assert torch.allclose(t.reference, t.target.flip(-1), atol=1e-4)
    expected = torch.arange(GRID[0] * GRID[1]).view(GRID).flip(-1).reshape(-1)
    assert torch.equal(t.correspondence, expected)


def test_target_is_per_channel_shift_of_image(photo):
    cfg = DataConfig(appearance="shift", color_shift=0.35)
    plain = to_tensor(photo)
    shifts = []
    for seed in range(3):
        t = make_triplet_from_seed(photo, seed, cfg, GRID)
        diff = t.target - plain
        inside = (t.target > -1.0) & (t.target < 1.0)
        shift = []
        for ch in range(3):
            d = diff[ch][inside[ch]]
            assert d.numel() > 0.5 * SIZE * SIZE
            assert torch.allclose(d, d[0].expand_as(d), atol=1e-5), "shift is not constant over the image"
            assert abs(float(d[0])) <= cfg.color_shift + 1e-6
            shift.append(float(d[0]))
        # where clamped, the shifted value really went past the range
        clamped = ~inside
        if clamped.any():
            full = plain + torch.tensor(shift)[:, None, None]
            assert torch.all((full[clamped] <= -1.0) | (full[clamped] >= 1.0))
        shifts.append(shift)
    assert any(abs(s) > 1e-3 for s in shifts[0])
    # channels get independent shifts, and the seed changes them
    assert len({round(s, 6) for s in shifts[0]}) == 3
    assert shifts[0] != shifts[1]


def test_no_color_shift_gives_plain_target(photo):
    t = make_triplet_from_seed(photo, 0, DataConfig(appearance="shift", color_shift=0.0), GRID)
    assert torch.equal(t.target, to_tensor(photo))


def test_given_sketch_is_used_and_size_is_checked(photo):
    cfg = DataConfig()
    sketch = np.full(photo.shape[:2], 255, dtype=np.uint8)
    sketch[10:12, :] = 0
    t = make_triplet_from_seed(photo, 0, cfg, GRID, sketch=sketch)
    assert torch.equal(t.sketch, to_tensor(sketch))
    with pytest.raises(ValueError):
        make_triplet_from_seed(photo, 0, cfg, GRID, sketch=sketch[:-1])


@pytest.mark.parametrize("size", [32, 64])
def test_warp_and_correspondence_are_those_of_the_sampled_tps(sample_photos, size):
    """At 64 px with an 8 x 8 grid the correspondence's probes are the image's pixel centers and
    make_triplet warps them once for both (at 32 px it probes apart): either way the reference
    and the correspondence are exactly those of the TPS the generator drew."""
    from sketchcolor.data.appearance import sample_appearance
    from sketchcolor.data.tps import apply_tps, sample_tps, tps_correspondence

    [path] = [p for p in sample_photos if p.stem == "astronaut"]
    rgb, _ = letterbox(load_image(path), size)
    cfg = DataConfig()
    t = make_triplet(rgb, torch.Generator().manual_seed(5), cfg, GRID)
    gen = torch.Generator().manual_seed(5)
    sample_appearance(gen, cfg)  # make_triplet draws a() first, then the TPS
    params = sample_tps(gen, cfg.tps_grid, cfg.tps_scale)
    assert torch.equal(t.reference, apply_tps(t.target, params))
    assert torch.equal(t.correspondence, tps_correspondence(params, *GRID, cfg.correspondence_tolerance))
