"""data.augment_on=device: the workers draw, the step builds the batch's triplets; the same triplets.

Stated tolerances against the workers' triplets (``make_triplet``), on CPU: pictures within 1e-5
(the same per-pixel arithmetic; kornia's batched spline solve may round differently), the
correspondence equal (the exhaustive search computes distances as the k-d tree does; only an
exact tie could pick another probe, and these draws have none)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from sketchcolor.config import ConfigError, DataConfig
from sketchcolor.data.datasets import ImageFolder, TripletStream
from sketchcolor.data.device_triplets import RECIPE_KEYS, build_triplets, sample_recipe
from sketchcolor.data.pairs import make_triplet
from sketchcolor.data.tps import cell_centers, correspondence_batch, sample_tps, tps_correspondence, warp_positions
from sketchcolor.training.loop import fit

CONFIGS = {
    "default": DataConfig(),
    "regions, mirror and turn": replace(DataConfig(), region_recolor=1.0, mirror=0.5, rotation=30.0),
    "shift": replace(DataConfig(), appearance="shift", color_shift=0.3),
}


def _batches(photos: list[Path], cfg: DataConfig, size: int, grid: int) -> tuple[dict, dict]:
    images = ImageFolder(photos, size, cfg)
    n = 2 * len(photos)  # every picture twice, other draws
    kw = {"grid": (grid, grid), "seed": 5, "length": n, "around": True}
    workers = next(iter(DataLoader(TripletStream(images, **kw), batch_size=n)))
    recipes = next(iter(DataLoader(TripletStream(images, **kw, recipes=True), batch_size=n)))
    return workers, recipes


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize(("size", "grid"), [(64, 8), (48, 8)])  # probes = pixel centers, and not
def test_device_triplets_match_the_workers(sample_photos: list[Path], name: str, size: int, grid: int) -> None:
    cfg = CONFIGS[name]
    workers, recipes = _batches(sample_photos, cfg, size, grid)
    assert set(recipes) == {*RECIPE_KEYS, "around"}
    built = build_triplets(recipes, cfg, (grid, grid))
    assert set(built) == set(workers)
    assert torch.equal(built["sketch"], workers["sketch"]) and torch.equal(built["around"], workers["around"])
    for key in ("target", "reference"):
        assert built[key].shape == workers[key].shape and built[key].dtype == workers[key].dtype
        assert (built[key] - workers[key]).abs().max() <= 1e-5, key
    assert built["correspondence"].dtype == torch.long
    assert torch.equal(built["correspondence"], workers["correspondence"])


def test_the_recipe_draws_what_make_triplet_draws(sample_photos: list[Path]) -> None:
    """Same numbers from the generator, so the stream after each example is the same."""
    cfg = CONFIGS["regions, mirror and turn"]
    rgb, _ = ImageFolder(sample_photos, 64, cfg)[0]
    a, b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    make_triplet(rgb, a, cfg, (8, 8))
    recipe = sample_recipe(rgb, b, cfg)
    assert torch.equal(a.get_state(), b.get_state())
    assert recipe["regions"].dtype == torch.uint8 and int(recipe["regions"].max()) > 0  # recolored region by region


@pytest.mark.parametrize("search", ["cells", "all", "tree"])
@pytest.mark.parametrize("tolerance", [0.75, 0.0, 2.3])
def test_correspondence_batch_matches_the_k_d_tree(search: str, tolerance: float) -> None:
    gen = torch.Generator().manual_seed(0)
    draws = [sample_tps(gen, 4, 0.3, mirror=0.5, rotation=45.0) for _ in range(12)]
    positions = torch.stack([warp_positions(p, 64, 64) for p in draws])
    positions[0] = float("nan")  # a degenerate warp: its probes are never nearest, its cells all out of view
    positions[1, :50] = float("inf")
    positions[2, :30] = -1e30  # finite, but far beyond any index a window could take
    want = torch.stack([tps_correspondence(p, 8, 8, tolerance, positions=pos) for p, pos in zip(draws, positions)])
    # one block; blocks of 3 examples (cells at 0.75); too small for one example's window pairs,
    # so every probe against every cell, in blocks of cells
    for chunk in (1 << 28, 6_000_000, 40_000):
        got = correspondence_batch(positions, 8, 8, tolerance, search=search, chunk_bytes=chunk)
        assert torch.equal(got, want), chunk
    assert (got[0] == -1).all()
    if tolerance == 0.75:
        assert (got[1:] == -1).any() and (got[1:] >= 0).float().mean() > 0.9  # some warped out of view, most not


@pytest.mark.parametrize("search", ["cells", "all", "tree"])
def test_correspondence_batch_on_a_grid_that_is_not_square(search: str) -> None:
    # probes exactly on the cell centers (one per cell): each cell is its own, even at tolerance 0
    exact = cell_centers(4, 8)[None]
    assert torch.equal(correspondence_batch(exact, 4, 8, 0.0, density=1, search=search), torch.arange(32)[None])
    # a warp on a 4 x 8 grid (32 x 64 probes): rows and columns are not swapped
    gen = torch.Generator().manual_seed(2)
    draws = [sample_tps(gen, 4, 0.2, mirror=0.5) for _ in range(4)]
    positions = torch.stack([warp_positions(p, 32, 64) for p in draws])
    want = torch.stack([tps_correspondence(p, 4, 8, positions=pos) for p, pos in zip(draws, positions)])
    assert torch.equal(correspondence_batch(positions, 4, 8, search=search), want)


def test_correspondence_batch_search_is_checked() -> None:
    with pytest.raises(ValueError, match="search must be"):
        correspondence_batch(torch.zeros(1, 64, 2), 1, 1, search="grid")


def test_augment_on_is_checked() -> None:
    with pytest.raises(ConfigError, match="data.augment_on must be one of"):
        replace(DataConfig(), augment_on="gpu").validate()


def test_a_run_with_device_triplets_trains_as_the_workers_run(tmp_path: Path, sample_photos: list[Path],
                                                               small_config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two steps of the tiny recipe, paper term on: the same weights within float rounding."""
    from sketchcolor.training import loop

    built = []

    def spy(*args, **kwargs):  # the device run really builds its batches in the step
        built.append(1)
        return build_triplets(*args, **kwargs)

    monkeypatch.setattr(loop, "build_triplets", spy)
    common = ["train.batch_size=2", "train.log_every=1", "train.image_every=1", "train.steps=2", "train.threads=1",
              "loss.lambda_cross=1", "loss.lambda_paper=1"]
    a = fit(small_config(*common), sample_photos[0].parent, tmp_path / "workers", progress=False)
    assert not built
    b = fit(small_config(*common, "data.augment_on=device"), sample_photos[0].parent, tmp_path / "device",
            progress=False)
    assert len(built) == 2
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
