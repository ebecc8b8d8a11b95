"""The TPS warp s() and the sketch-cell -> reference-cell correspondence it implies.

Coordinates: kornia's ``grid_sample`` frame with ``align_corners=False``, so pixel ``x`` of a
``W`` wide image sits at ``x_norm = (2x + 1) / W - 1`` and the center of cell ``j`` of a ``g``
wide grid at ``(2j + 1) / g - 1``. With 64 px and an 8 x 8 grid (stride 8), a cell center is at
pixel coordinate ``8j + 3.5``: between two pixels.
"""

from __future__ import annotations

import pytest
import torch
from kornia.geometry.transform import warp_points_tps

from sketchcolor.data.tps import (
    TPSParams,
    apply_tps,
    cell_centers,
    identity_tps,
    sample_tps,
    tps_correspondence,
    warp_positions,
)

SIZE, GRID = 64, 8
STRIDE = SIZE // GRID


def _norm_to_pixel(v: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of ``(2p + 1) / n - 1`` (align_corners=False)."""
    return ((v + 1.0) * n - 1.0) / 2.0


def _dots_at_cell_centers(kind: str) -> torch.Tensor:
    """``[GRID*GRID, SIZE, SIZE]``: channel c holds one dot at the center of sketch cell c.

    ``"onehot"``: a single pixel = 1 at (8i+4, 8j+4), half a pixel off the true center.
    ``"blob"``: a Gaussian (sigma 1 px) centered exactly at (8i+3.5, 8j+3.5).
    """
    img = torch.zeros(GRID * GRID, SIZE, SIZE)
    yy, xx = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij")
    centers = _norm_to_pixel(cell_centers(GRID, GRID), SIZE)  # [(x, y)] in pixels
    assert torch.allclose(centers[0], torch.tensor([3.5, 3.5]))
    for c in range(GRID * GRID):
        cx, cy = centers[c].tolist()
        if kind == "onehot":
            img[c, int(cy + 0.5), int(cx + 0.5)] = 1.0
        else:
            img[c] = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
    return img


def _landing_cells(params: TPSParams, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp every dot into the reference; return (cell of its argmax, peak value) per sketch cell."""
    warped = apply_tps(_dots_at_cell_centers(kind), params, fill=0.0)
    peak, arg = warped.flatten(1).max(dim=1)
    py, px = arg // SIZE, arg % SIZE
    return (py // STRIDE) * GRID + px // STRIDE, peak


def _chebyshev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.maximum((a // GRID - b // GRID).abs(), (a % GRID - b % GRID).abs())


# ---------------------------------------------------------------- identity


def test_identity_warp_leaves_image_unchanged():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, SIZE, SIZE, generator=g) * 2 - 1
    for grid in (3, 4):
        out = apply_tps(img, identity_tps(grid))
        assert out.shape == img.shape
        assert torch.allclose(out, img, atol=1e-4)


def test_identity_correspondence_is_arange():
    corr = tps_correspondence(identity_tps(), GRID, GRID)
    assert corr.dtype == torch.long and corr.shape == (GRID * GRID,)
    assert torch.equal(corr, torch.arange(GRID * GRID))
    # non-square grid: row-major, h rows of w cells
    assert torch.equal(tps_correspondence(identity_tps(4), 4, 6), torch.arange(24))


def test_cell_centers_row_major_align_corners_false():
    c = cell_centers(2, 4)
    assert c.shape == (8, 2)
    assert torch.allclose(c[0], torch.tensor([-0.75, -0.5]))
    assert torch.allclose(c[1], torch.tensor([-0.25, -0.5]))  # x varies fastest
    assert torch.allclose(c[4], torch.tensor([-0.75, 0.5]))


# ---------------------------------------------------------------- random warps


def test_sample_tps_is_seeded_and_bounded():
    a = sample_tps(torch.Generator().manual_seed(3), 4, 0.2)
    b = sample_tps(torch.Generator().manual_seed(3), 4, 0.2)
    c = sample_tps(torch.Generator().manual_seed(4), 4, 0.2)
    assert a.src.shape == a.dst.shape == (16, 2)
    assert torch.equal(a.dst, b.dst) and not torch.equal(a.dst, c.dst)
    off = a.dst - a.src
    assert off.abs().max() <= 0.2 and off.abs().max() > 0.0


def test_mirror_turns_the_reference_around_exactly():
    # no displacement, always mirrored: the reference is the target read right to left (pixel
    # centers land on pixel centers, so bilinear sampling is exact) and every sketch cell
    # corresponds to the cell in the same row, counted from the other side
    params = sample_tps(torch.Generator().manual_seed(0), 4, 0.0, mirror=1.0)
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert torch.allclose(apply_tps(image, params), image.flip(-1), atol=1e-5)
    expected = torch.arange(GRID * GRID).view(GRID, GRID).flip(-1).reshape(-1)
    assert torch.equal(tps_correspondence(params, GRID, GRID), expected)


def test_mirror_probability_is_kept():
    flips = [float(sample_tps(torch.Generator().manual_seed(s), 4, 0.0, mirror=0.5).turn[0, 0]) < 0 for s in range(400)]
    assert 0.4 < sum(flips) / len(flips) < 0.6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotation_is_the_plain_warp_turned(seed):
    # the same draw with a turn: the reference shows, at each point, what the plain warp shows at
    # that point turned back, by an angle within the bound (a turn of the control points instead
    # folds the image: TPSParams)
    plain = sample_tps(torch.Generator().manual_seed(seed), 4, 0.2)
    turned = sample_tps(torch.Generator().manual_seed(seed), 4, 0.2, rotation=30.0)
    assert torch.equal(plain.dst, turned.dst)
    m = turned.turn
    assert torch.allclose(m @ m.T, torch.eye(2), atol=1e-6) and float(torch.linalg.det(m)) > 0
    assert 0 < abs(float(torch.atan2(m[1, 0], m[0, 0]))) <= torch.pi / 6 + 1e-6
    back = cell_centers(SIZE, SIZE) @ m
    expected = warp_points_tps(back[None], *plain.solve())[0]
    assert torch.allclose(warp_positions(turned, SIZE, SIZE), expected, atol=1e-6)
    # a blob at each sketch cell center lands where the correspondence says, as for a plain TPS
    corr = tps_correspondence(turned, GRID, GRID)
    landed, peak = _landing_cells(turned, "blob")
    seen = (corr >= 0) & (peak > 0.1)
    assert seen.sum() >= 0.6 * GRID * GRID
    assert (landed[seen] == corr[seen]).float().mean() >= 0.85
    assert _chebyshev(landed[seen], corr[seen]).max() <= 1


def test_without_mirror_or_rotation_nothing_more_is_drawn():
    # recipes without them keep the triplets they had: the generator ends where the plain TPS left it
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    plain = sample_tps(a, 4, 0.2)
    same = sample_tps(b, 4, 0.2, mirror=0.0, rotation=0.0)
    assert torch.equal(plain.dst, same.dst) and same.turn is None and torch.equal(a.get_state(), b.get_state())
    sample_tps(b := torch.Generator().manual_seed(5), 4, 0.2, mirror=0.5)
    assert not torch.equal(a.get_state(), b.get_state())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_correspondence_matches_where_cell_centers_land(seed):
    params = sample_tps(torch.Generator().manual_seed(seed), 4, 0.2)
    corr = tps_correspondence(params, GRID, GRID)
    assert corr.shape == (GRID * GRID,) and corr.dtype == torch.long
    valid = corr >= 0
    # A blob centered exactly on each sketch cell center: its warped peak is the reference
    # pixel showing that point, so its cell is what the correspondence must name.
    landed, peak = _landing_cells(params, "blob")
    seen = valid & (peak > 0.1)
    assert seen.sum() >= 0.9 * GRID * GRID
    exact = (landed[seen] == corr[seen]).float().mean().item()
    assert exact >= 0.9, f"only {exact:.2%} of cells agree exactly"
    assert _chebyshev(landed[seen], corr[seen]).max() <= 1
    # A one-hot pixel dot (half a pixel off the center) agrees within one cell everywhere.
    landed1, peak1 = _landing_cells(params, "onehot")
    seen1 = valid & (peak1 > 0)
    assert _chebyshev(landed1[seen1], corr[seen1]).max() <= 1
    assert (landed1[seen1] == corr[seen1]).float().mean() >= 0.75


def test_correspondence_is_not_the_inverse_warp():
    # Guards the direction convention: the correspondence of the swapped warp (dst <-> src)
    # must disagree with where the content actually goes.
    params = sample_tps(torch.Generator().manual_seed(0), 4, 0.2)
    wrong = tps_correspondence(TPSParams(src=params.dst, dst=params.src), GRID, GRID)
    landed, peak = _landing_cells(params, "blob")
    seen = (wrong >= 0) & (peak > 0.1)
    assert (landed[seen] == wrong[seen]).float().mean() < 0.8


# ---------------------------------------------------------------- pushed out of view


def _shift_params(dx: float) -> TPSParams:
    base = identity_tps(4)
    return TPSParams(src=base.src, dst=base.src + torch.tensor([dx, 0.0]))


def test_large_shift_marks_out_of_view_cells_invalid():
    corr = tps_correspondence(_shift_params(0.6), GRID, GRID).view(GRID, GRID)
    # content moves right by 0.6 (2.4 cells): sketch columns 6 and 7 (x = 0.625, 0.875) leave
    # the reference; column j <= 5 lands in reference column j + 2.
    assert torch.all(corr[:, 6:] == -1)
    rows = torch.arange(GRID)[:, None]
    cols = torch.arange(6)[None, :]
    assert torch.equal(corr[:, :6], rows * GRID + cols + 2)
    # the dots confirm it: invalid cells' dots vanish, valid ones land where named
    landed, peak = _landing_cells(_shift_params(0.6), "blob")
    flat = corr.reshape(-1)
    assert torch.all(peak[flat == -1] < 0.05)
    assert torch.equal(landed[flat >= 0], flat[flat >= 0])


def test_shift_fills_uncovered_area_with_fill():
    img = torch.zeros(1, 32, 32)
    out = apply_tps(img, _shift_params(0.6))  # default fill = 1.0 (white paper)
    # reference x < -0.4 shows target x < -1: nothing -> fill; x > -0.3 shows real content
    px_left = int(_norm_to_pixel(torch.tensor(-0.45), 32))
    px_right = int(_norm_to_pixel(torch.tensor(-0.25), 32)) + 1
    assert torch.allclose(out[..., :px_left], torch.ones(1, 32, px_left))
    assert torch.allclose(out[..., px_right:], torch.zeros(1, 32, 32 - px_right), atol=1e-5)
    out0 = apply_tps(img, _shift_params(0.6), fill=-1.0)
    assert torch.allclose(out0[..., :px_left], -torch.ones(1, 32, px_left))


def test_tolerance_controls_invalid_marking():
    params = _shift_params(0.6)
    strict = tps_correspondence(params, GRID, GRID, tolerance=0.75)
    loose = tps_correspondence(params, GRID, GRID, tolerance=100.0)
    assert (strict == -1).any()
    assert (loose >= 0).all()


@pytest.mark.parametrize("seed", [0, 7])
def test_correspondence_is_the_exact_nearest_landed_probe(seed):
    # the k-d tree search gives the cell of the nearest landed probe, as an exhaustive float64
    # distance matrix does (density 8 probes per cell side, tolerance 0.75 cell)
    params = sample_tps(torch.Generator().manual_seed(seed), 4, 0.2)
    centers, kernel_w, affine_w = params.solve()
    probes = cell_centers(GRID * 8, GRID * 8)
    landed = warp_points_tps(probes[None], centers, kernel_w, affine_w)[0].double()
    scale = torch.tensor([GRID / 2.0, GRID / 2.0], dtype=torch.float64)
    d = torch.cdist(cell_centers(GRID, GRID).double() * scale, landed * scale,
                    compute_mode="donot_use_mm_for_euclid_dist")
    best, idx = d.min(dim=1)
    want = (idx // (GRID * 8) // 8) * GRID + (idx % (GRID * 8)) // 8
    want[best > 0.75] = -1
    assert torch.equal(tps_correspondence(params, GRID, GRID), want)


@pytest.mark.parametrize("seed", [0, 1])
def test_shared_positions_give_the_separate_results(seed):
    """make_triplet warps the reference's pixel centers once for the image and the
    correspondence: the same image as kornia's warp_image_tps and the same correspondence as
    probing separately, to the bit."""
    from kornia.geometry.transform import warp_image_tps

    params = sample_tps(torch.Generator().manual_seed(seed), 4, 0.2)
    img = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    positions = warp_positions(params, SIZE, SIZE)
    assert positions.shape == (SIZE * SIZE, 2)
    shared = apply_tps(img, params, positions=positions)
    assert torch.equal(shared, apply_tps(img, params))
    centers, kernel_w, affine_w = params.solve()
    kornia = warp_image_tps((img - 1.0)[None], centers, kernel_w, affine_w, align_corners=False)[0] + 1.0
    assert torch.equal(shared, kornia)
    assert torch.equal(tps_correspondence(params, GRID, GRID, positions=positions), tps_correspondence(params, GRID, GRID))
    with pytest.raises(AssertionError):
        tps_correspondence(params, GRID, GRID, density=4, positions=positions)  # probes of another density
