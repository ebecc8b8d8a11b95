"""Each baseline runs on two pairs of different sizes and returns the sketch's size as uint8 RGB."""

from __future__ import annotations

import numpy as np
import pytest

from sketchcolor.config import DataConfig
from sketchcolor.data.sketch import extract_sketch
from sketchcolor.evaluation.baselines import Colorless, GlobalTransfer, PatchNN, all_baselines


def _two_halves(h: int, w: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:, : w // 2] = left
    img[:, w // 2 :] = right
    return img


@pytest.fixture
def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    photo = _two_halves(40, 56, (200, 40, 40), (40, 60, 200))
    sketch = extract_sketch(photo, DataConfig())
    other = rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)
    return [(sketch, photo), (np.full((33, 21), 255, np.uint8), other)]


def test_every_baseline_returns_the_sketch_size(pairs) -> None:
    names = [b.name for b in all_baselines()]
    assert names == ["colorless", "global_transfer", "flat_fill", "patch_nn"]
    for baseline in all_baselines():
        for sketch, reference in pairs:
            out = baseline(sketch, reference)
            assert out.dtype == np.uint8 and out.shape == sketch.shape + (3,), (baseline.name, out.shape)
        with pytest.raises(ValueError, match="sketch"):
            baseline(pairs[0][1], pairs[0][1])


def test_colorless_and_global_transfer_values() -> None:
    sketch = np.full((16, 16), 255, np.uint8)
    sketch[8] = 0
    gray = Colorless()(sketch, np.zeros((8, 8, 3), np.uint8))
    assert (gray[0] == 128).all() and (gray[8] == 0).all()
    flat = GlobalTransfer()(sketch, np.full((10, 12, 3), (30, 140, 90), np.uint8))
    assert np.abs(flat[0].astype(int) - (30, 140, 90)).max() <= 1 and (flat[8] == 0).all()


def test_patch_nn_copies_colors_from_matching_places(pairs) -> None:
    sketch, photo = pairs[0]
    out = PatchNN(cell=8)(sketch, photo)
    # Away from the boundary the paint comes from the same half of the reference.
    assert out[20, 4, 0] > 150 and out[20, 4, 2] < 90
    assert out[20, 52, 2] > 150 and out[20, 52, 0] < 90


def test_flat_fill_paints_enclosed_regions_in_the_reference_mean_and_keeps_paper_white():
    from sketchcolor.evaluation.baselines import FlatFill

    sketch = np.full((40, 40), 255, np.uint8)
    sketch[10, 10:30] = sketch[29, 10:30] = 0
    sketch[10:30, 10] = sketch[10:30, 29] = 0  # a closed square
    reference = np.full((20, 20, 3), 255, np.uint8)
    reference[5:15, 5:15] = (30, 90, 200)  # blue ink on white paper: the paper is not averaged in
    out = FlatFill()(sketch, reference)
    assert out.shape == (40, 40, 3)
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert np.abs(out[20, 20].astype(int) - (30, 90, 200)).max() <= 3
    assert tuple(out[10, 20]) == (0, 0, 0)
