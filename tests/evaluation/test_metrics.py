"""Each metric on constructed images with a known answer; correspondence accuracy; result tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sketchcolor.data.tps import sample_tps, tps_correspondence
from sketchcolor.evaluation import metrics as M
from sketchcolor.evaluation.fid import Interval
from sketchcolor.evaluation.report import format_value, markdown_table, read_json, write_json
from sketchcolor.models.vgg import VGGFeatures


def _sketch(h: int = 48, w: int = 64) -> np.ndarray:
    """White paper with a few black lines, uint8 [H, W]."""
    s = np.full((h, w), 255, np.uint8)
    s[10, 5:60] = 0
    s[5:40, 30:32] = 0
    s[30:45, 50] = 0
    return s


def _painted(color: tuple[int, int, int], sketch: np.ndarray | None = None) -> np.ndarray:
    """A flat color ``[H, W, 3]``, the sketch's lines multiplied on top when given."""
    h, w = (48, 64) if sketch is None else sketch.shape
    img = np.broadcast_to(np.array(color, np.float32), (h, w, 3))
    if sketch is not None:
        img = img * (sketch[..., None] / 255.0)
    return np.round(img).astype(np.uint8)


def test_psnr_ssim_identical_and_different() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert M.psnr(img, img) == float("inf")
    assert M.ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(img.astype(int) + rng.integers(-60, 61, img.shape), 0, 255).astype(np.uint8)
    assert 10 < M.psnr(noisier, img) < M.psnr(noisy, img) < 60
    assert M.ssim(noisier, img) < M.ssim(noisy, img) < 1.0
    with pytest.raises(ValueError, match="differ in size"):
        M.psnr(img, img[:16])


def test_color_distance_zero_for_same_colors_and_grows_with_shift() -> None:
    rng = np.random.default_rng(1)
    ref = rng.integers(30, 220, (40, 40, 3), dtype=np.uint8)
    assert M.color_distance(ref, ref) == 0.0
    shuffled = rng.permutation(ref.reshape(-1, 3)).reshape(ref.shape)  # same colors, other places
    assert M.color_distance(shuffled, ref) == 0.0
    dists = [M.color_distance(np.clip(ref.astype(int) + [s, -s // 2, 0], 0, 255).astype(np.uint8), ref)
             for s in (0, 8, 16, 32)]
    assert dists[0] == 0.0 and all(a < b for a, b in zip(dists, dists[1:]))
    # Only the painted area counts: black lines in the output do not move the score.
    sketch = _sketch()
    out, flat = _painted((200, 120, 60), sketch), _painted((200, 120, 60))
    assert M.color_distance(out, flat, sketch) == pytest.approx(0.0, abs=1e-9)
    assert M.color_distance(out, flat) > 1.0


def _framed(inner: tuple[int, int, int], paper: tuple[int, int, int] = (255, 255, 255), size: int = 64,
            box: tuple[int, int] = (16, 48)) -> tuple[np.ndarray, np.ndarray]:
    """A square drawn at ``box`` on paper: (sketch ``[size, size]``, picture ``[size, size, 3]``)
    with the square painted ``inner`` and the paper ``paper``."""
    a, b = box
    sketch = np.full((size, size), 255, np.uint8)
    sketch[a:b, a:b] = 0
    sketch[a + 2:b - 2, a + 2:b - 2] = 255
    picture = np.empty((size, size, 3), np.uint8)
    picture[:] = paper
    picture[a + 2:b - 2, a + 2:b - 2] = inner
    picture[sketch < 128] = 0
    return sketch, picture


def test_drawing_color_distance_leaves_the_paper_out() -> None:
    # reference: a small red square on a lot of white paper; picture: a large square on little
    # paper, painted red. The shares of paper differ, the drawings' colors do not.
    ref_sketch, ref = _framed((220, 30, 30), box=(24, 40))
    sketch, out = _framed((220, 30, 30), box=(4, 60))
    truth = _framed((30, 30, 220), box=(4, 60))[1]  # the picture's own colors: only its paper matters
    assert M.drawing_color_distance(out, truth, sketch, ref, ref_sketch) == pytest.approx(0.0, abs=1e-9)
    assert M.color_distance(out, ref, sketch) > 10  # the paper counted: far apart
    # painting the paper in the reference's red helps the plain distance, not the drawing's
    painted = out.copy()
    painted[M.around_drawing(sketch) & M.painted_mask(sketch)] = (220, 30, 30)
    assert M.drawing_color_distance(painted, truth, sketch, ref, ref_sketch) == pytest.approx(0.0, abs=1e-9)
    # another color inside the drawing is seen
    _, blue = _framed((30, 30, 220), box=(4, 60))
    assert M.drawing_color_distance(blue, truth, sketch, ref, ref_sketch) > 20


def test_white_paper_floor_bounds_every_output_with_white_paper() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    ref[:12] = 255  # a quarter of the reference is white paper
    # all white: the floor is the distance itself, to the float
    white = np.full((40, 40, 3), 255, np.uint8)
    assert M.white_paper_floor(ref, 1.0) == pytest.approx(M.color_distance(white, ref), rel=1e-12)
    # no more white than the reference has: an output can match it exactly
    assert M.white_paper_floor(ref, 0.25) == pytest.approx(0.0, abs=1e-9) and M.white_paper_floor(ref, 0.0) == 0.0
    assert M.color_distance(ref, ref) == 0.0
    # any output white on a given share scores at or above the floor; the floor grows with the share
    floors = []
    for share in (0.4, 0.6, 0.8):
        floors.append(M.white_paper_floor(ref, share))
        n_white = int(np.ceil(share * 1600))
        for trial in range(5):
            out = rng.integers(0, 256, (1600, 3), dtype=np.uint8)
            if trial:  # the best guesses: the reference's own pixels, its darkest or its most colored ones
                pool = ref.reshape(-1, 3)
                pool = pool[np.argsort([-np.ptp(c.astype(int)) if trial % 2 else c.astype(int).sum() for c in pool],
                                       kind="stable")]
                out = pool[rng.integers(0, len(pool), 1600)] if trial > 2 else np.resize(pool, (1600, 3))
            out[:n_white] = 255
            assert M.color_distance(out.reshape(40, 40, 3), ref) >= floors[-1] - 1e-9
    assert 0.0 < floors[0] < floors[1] < floors[2]
    with pytest.raises(ValueError, match="paper_share"):
        M.white_paper_floor(ref, 1.5)


@pytest.mark.parametrize("share", [0.13, 0.5, 0.871])
def test_white_paper_floor_is_reached_in_one_direction(share: float) -> None:
    """With one direction the bound is exact: 1,000 pixels, white on the cheapest block of quantile
    levels (found here by brute force) and the reference's own quantile pixels elsewhere, score it."""
    from skimage.color import rgb2lab
    rng = np.random.default_rng(int(share * 1000))
    ref = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    ref[:6, :20] = 255
    direction = M._directions(1, 0)[0]
    proj = rgb2lab(ref).reshape(-1, 3) @ direction
    order = np.argsort(proj, kind="stable")
    idx = np.ceil((np.arange(1000) + 0.5) / 1000 * proj.size).astype(int) - 1
    white = float(rgb2lab(np.full((1, 1, 3), 255, np.uint8)).reshape(3) @ direction)
    k = int(np.floor(share * 1000))
    costs = [np.abs(proj[order[idx[a:a + k]]] - white).sum() / 1000 for a in range(1000 - k + 1)]
    start = int(np.argmin(costs))
    out = ref.reshape(-1, 3)[order[idx]].copy()
    out[start:start + k] = 255
    floor = M.white_paper_floor(ref, share, n_directions=1)
    assert floor == pytest.approx(min(costs), abs=1e-9)
    assert M.color_distance(out.reshape(25, 40, 3), ref, n_directions=1) == pytest.approx(floor, abs=1e-9)


def test_paper_painted_is_the_share_of_the_paper_around_the_drawing_that_is_painted() -> None:
    sketch, picture = _framed((220, 30, 30))
    paper = M.paper_around_drawing(picture, sketch)
    assert np.array_equal(paper, M.around_drawing(sketch) & M.painted_mask(sketch))  # white, off the lines
    assert M.paper_painted(picture, paper) == 0.0
    spilled = picture.copy()
    spilled[:8] = (250, 235, 150)  # a pale yellow band along the top of the paper
    assert M.paper_painted(spilled, paper) == pytest.approx(paper[:8].sum() / paper.sum())
    grey = picture.copy()
    grey[paper] = (200, 200, 200)  # a grey paper counts as painted too (L under 90)
    assert M.paper_painted(grey, paper) == 1.0
    inside = picture.copy()
    inside[20:44, 20:44] = (30, 30, 220)  # paint inside the drawing is not on the paper
    assert M.paper_painted(inside, paper) == 0.0
    _, flag = _framed((220, 30, 30), paper=(30, 160, 60))  # a full-frame picture has no paper
    no_paper = M.paper_around_drawing(flag, sketch)
    assert not no_paper.any() and np.isnan(M.paper_painted(flag, no_paper))
    with pytest.raises(ValueError, match="shape"):
        M.paper_painted(picture, paper[:32])


def test_drawing_mask_keeps_a_full_frame_picture() -> None:
    # a flag: its "paper" around the drawn square is green, so it is content and counts
    sketch, flag = _framed((220, 30, 30), paper=(30, 160, 60))
    mask = M.drawing_mask(flag, sketch)
    assert mask[2, 2] and mask[30, 30] and not mask[16, 30]  # the field, the square, not a line
    _, paper = _framed((220, 30, 30))
    assert not M.drawing_mask(paper, sketch)[2, 2]
    # a picture against itself scores 0, full-frame or not
    assert M.drawing_color_distance(flag, flag, sketch, flag, sketch) == pytest.approx(0.0, abs=1e-9)
    assert M.drawing_color_distance(paper, paper, sketch, paper, sketch) == pytest.approx(0.0, abs=1e-9)
    # the flag's field counts on the output side too: painted white there, it is far from the flag
    assert M.drawing_color_distance(paper, flag, sketch, flag, sketch) > 10
    blank = np.full((64, 64), 255, np.uint8)  # no lines, white: all of it is paper
    assert np.isnan(M.drawing_color_distance(paper, np.full((64, 64, 3), 255, np.uint8), blank, flag, sketch))


def test_sliced_wasserstein_of_a_shift() -> None:
    # Shifting a cloud by d moves each projection by d . u: the mean |d . u| over the directions.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 3))
    d = np.array([3.0, 0.0, 4.0])
    dirs = M._directions(64, 0)
    assert M.sliced_wasserstein(x + d, x) == pytest.approx(np.abs(dirs @ d).mean(), rel=1e-6)


def test_line_preservation_kept_erased_and_on_dark_paint() -> None:
    sketch = _sketch()
    kept, erased = _painted((200, 120, 60), sketch), _painted((200, 120, 60))
    assert M.line_preservation(kept, sketch) == pytest.approx(1.0)
    assert M.line_preservation(erased, sketch) == 0.0
    assert M.edge_correlation(kept, sketch) > 0.95
    assert M.edge_correlation(erased, sketch) == 0.0
    # Dark paint with the lines gone is not "preserved" just because it is dark.
    assert M.line_preservation(_painted((20, 20, 30)), sketch) == 0.0
    assert np.isnan(M.line_preservation(kept, np.full_like(sketch, 255)))


def test_lines_kept_counts_line_pixels_still_dark() -> None:
    sketch = _sketch()
    kept, erased = _painted((200, 120, 60), sketch), _painted((200, 120, 60))
    assert M.lines_kept(kept, sketch) == pytest.approx(1.0)
    assert M.lines_kept(erased, sketch) == 0.0
    # lines repainted gray (a low-resolution network's thin lines): not kept
    gray = kept.copy()
    gray[sketch < 128] = 160
    assert M.lines_kept(gray, sketch) == 0.0
    half = kept.copy()
    half[:20][sketch[:20] < 128] = 160  # the upper lines gray, the lower ones kept
    assert 0.0 < M.lines_kept(half, sketch) < 1.0
    # absolute: dark paint keeps them dark (line contrast is the measure that sees they are gone)
    assert M.lines_kept(_painted((20, 20, 30)), sketch) == 1.0
    assert np.isnan(M.lines_kept(kept, np.full_like(sketch, 255)))


def test_vgg_feature_distance_on_a_tiny_trunk() -> None:
    torch.manual_seed(0)
    trunk = VGGFeatures(("relu1_1", "relu2_1"), plan=(4, "M", 8))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    y = x.clone()
    y[1] = torch.rand(3, 16, 16) * 2 - 1
    d = M.vgg_feature_distance(trunk, x, y)
    assert d.shape == (2,) and d[0].item() == pytest.approx(0.0, abs=1e-6) and d[1].item() > 0.01


def _one_hot(corr: torch.Tensor, m: int) -> torch.Tensor:
    """Attention ``[B, N, M]`` whose rows put all mass on the true cell (uniform where -1)."""
    attn = torch.full(corr.shape + (m,), 1.0 / m)
    valid = corr >= 0
    attn[valid] = torch.nn.functional.one_hot(corr[valid], m).float()
    return attn


def test_correspondence_accuracy_true_uniform_and_random() -> None:
    h = w = 8
    m = h * w
    gen = torch.Generator().manual_seed(0)
    corr = torch.stack([tps_correspondence(sample_tps(gen, 4, 0.2), h, w) for _ in range(3)])  # [3, 64]
    assert (corr >= 0).any() and corr.shape == (3, m)
    exact = M.correspondence_accuracy(_one_hot(corr, m), corr, (h, w))
    assert (exact.top1, exact.within_one, exact.neighbourhood_mass) == (1.0, 1.0, 1.0)
    assert exact.n_valid == int((corr >= 0).sum())

    # Uniform rows: the mass on the 3 x 3 neighbourhood is its size over M (smaller at borders).
    uniform = torch.full((3, m, m), 1.0 / m)
    scores = M.correspondence_accuracy(uniform, corr, (h, w))
    sizes = M.neighbourhood(h, w).sum(1).float()[corr[corr >= 0]]
    assert scores.neighbourhood_mass == pytest.approx(float(sizes.mean()) / m, rel=1e-5)
    assert 7.0 / m < scores.neighbourhood_mass < 9.0 / m

    # Random rows: the argmax hits the true cell about 1/M of the time.
    true = torch.randint(0, m, (60, m), generator=gen)
    rand = torch.softmax(torch.randn(60, m, m, generator=gen), dim=-1)
    scores = M.correspondence_accuracy(rand, true, (h, w))
    assert scores.top1 == pytest.approx(1.0 / m, abs=0.01)
    assert scores.within_one == pytest.approx(float(M.neighbourhood(h, w).sum(1).float().mean()) / m, abs=0.03)

    pooled = M.CorrespondenceScores.combine([exact, scores])
    assert pooled.n_valid == exact.n_valid + scores.n_valid
    assert scores.top1 < pooled.top1 < 1.0
    none = M.correspondence_accuracy(uniform, torch.full((3, m), -1), (h, w))
    assert none.n_valid == 0 and np.isnan(none.top1)


def test_report_markdown_and_json(tmp_path) -> None:
    results = {
        "ours": {"fid": Interval(12.345, 11.0, 13.5, 0.95, 100, 0.6, "half"), "psnr": float("inf"), "ssim": 0.81234},
        "colorless": {"fid": {"value": 80.0, "low": 75.0, "high": 85.0}, "ssim": float("nan")},
    }
    table = markdown_table(results, digits=2)
    lines = table.strip().splitlines()
    assert lines[0] == "| method | fid ↓ | psnr ↑ | ssim ↑ |"
    assert lines[2] == "| ours | 12.35 [11.00, 13.50] | ∞ | 0.81 |"
    assert lines[3] == "| colorless | 80.00 [75.00, 85.00] | – | – |"
    assert format_value(7) == "7" and format_value(None) == "–"
    path = write_json(results, tmp_path / "out" / "results.json", meta={"images": np.int64(20)})
    raw = json.loads(path.read_text())  # strict JSON: inf as a string, NaN as null
    assert raw["results"]["ours"]["psnr"] == "inf" and raw["results"]["colorless"]["ssim"] is None
    meta, back = read_json(path)
    assert meta == {"images": 20} and back["ours"]["psnr"] == float("inf")
    assert back["ours"]["fid"]["high"] == 13.5 and back["ours"]["fid"]["method"] == "half"
