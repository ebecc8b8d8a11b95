"""Reading SCFT's attention on the pictures: heat maps and per-region match confidence."""

from __future__ import annotations

import numpy as np
import pytest

from sketchcolor.data.io import Letterbox
from sketchcolor.inference.explain import (
    cell_index,
    heat_on,
    outline_regions,
    reference_point_heat,
    region_cells,
    region_confidence,
    sketch_point_heat,
    weakest_regions,
)

SQUARE = Letterbox(64, 64, 64, 0, 0, 64, 64)
GRID = (8, 8)


def test_cell_index_follows_the_letterbox() -> None:
    wide = Letterbox(32, 64, 64, 16, 0, 32, 64)  # a 2:1 picture in rows 16..48 of the square
    assert cell_index((0.0, 0.0), wide, GRID, 8) == 2 * 8
    assert cell_index((0.99, 0.99), wide, GRID, 8) == 5 * 8 + 7
    assert cell_index((0.5, 0.5), SQUARE, GRID, 8) == 4 * 8 + 4


def test_point_heat_maps_are_the_row_and_the_column() -> None:
    rng = np.random.default_rng(0)
    attention = rng.random((64, 64))
    attention /= attention.sum(1, keepdims=True)
    row = sketch_point_heat(attention, (0.3, 0.7), SQUARE, GRID, GRID, 8)
    assert row.shape == GRID and np.array_equal(row.ravel(), attention[5 * 8 + 2])
    col = reference_point_heat(attention, (0.9, 0.1), SQUARE, GRID, GRID, 8)
    assert col.shape == GRID and np.array_equal(col.ravel(), attention[:, 0 * 8 + 7])
    # a second reference's columns start after the first's
    two = np.concatenate([attention, attention[:, ::-1]], axis=1)
    assert np.array_equal(sketch_point_heat(two, (0.3, 0.7), SQUARE, GRID, GRID, 8, reference_offset=64).ravel(),
                          attention[5 * 8 + 2, ::-1])


def test_heat_on_has_the_picture_size_and_is_brightest_at_the_peak() -> None:
    picture = np.full((50, 100, 3), 200, np.uint8)
    box = Letterbox(50, 100, 64, 16, 0, 32, 64)
    heat = np.zeros(GRID)
    heat[3, 6] = 1.0  # square rows 24..32 -> picture rows (24 - 16) * 50 / 32 = 12.5 .. 25
    out = heat_on(picture, heat, box)
    assert out.shape == (50, 100, 3) and out.dtype == np.uint8
    y, x = np.unravel_index(out.sum(2).argmax(), out.shape[:2])
    assert 10 <= y <= 27 and 75 <= x <= 110
    assert heat_on(picture, np.zeros(GRID), box).shape == (50, 100, 3)  # no heat: no division by zero


def test_region_cells_rows_sum_to_one_and_small_regions_keep_a_cell() -> None:
    labels = np.ones((64, 64), np.int32)
    labels[10:12, 10:12] = 2  # 4 pixels, inside cell (1, 1)
    labels[:, 40:] = 3
    w = region_cells(labels, SQUARE, GRID, 8)
    assert w.shape == (4, 64)
    assert np.allclose(w[1:].sum(1), 1.0) and w[0].sum() == 0
    assert w[2, 1 * 8 + 1] == 1.0
    assert w[3].reshape(GRID)[:, 5:].sum() == pytest.approx(1.0)


def test_region_confidence_is_high_for_a_focused_match_and_low_for_a_blend() -> None:
    labels = np.ones((64, 64), np.int32)
    labels[:, 32:] = 2
    attention = np.full((64, 64), 1.0 / 64)  # region 1 (left half) spreads over everything
    right = np.zeros((8, 8), bool)
    right[:, 4:] = True
    focused = np.zeros(64)
    focused[3 * 8 + 3] = 1.0  # region 2's cells all take one reference cell
    attention[right.ravel()] = focused
    conf = region_confidence(attention, labels, SQUARE, GRID, [GRID], 8)
    assert conf[2] == pytest.approx(1.0)
    assert conf[1] == pytest.approx(9 / 64)
    paper = np.zeros(3, bool)
    assert weakest_regions(conf, labels, paper, count=1) == [1]
    paper[1] = True
    assert weakest_regions(conf, labels, paper, count=1) == [2]


def test_outline_regions_draws_only_on_the_marked_region() -> None:
    image = np.full((64, 64, 3), 255, np.uint8)
    labels = np.ones((64, 64), np.int32)
    labels[20:40, 20:40] = 2
    out = outline_regions(image, labels, [2])
    changed = np.any(out != 255, axis=2)
    assert changed.any() and not changed[:15].any() and not changed[45:].any()
