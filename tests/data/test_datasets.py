"""Listing, splitting, the cached image folder and the deterministic triplet stream."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketchcolor.config import DataConfig
from sketchcolor.data.datasets import ImageFolder, TripletStream, list_images
from sketchcolor.data.paper import around_drawing
from sketchcolor.data.splits import split_files, stable_fraction
from sketchcolor.errors import SketchColorError

SIZE = 32
GRID = (8, 8)


def _png(path: Path, color=(10, 200, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), color).save(path)
    return path


# ---------------------------------------------------------------- listing and split


def test_list_images_recursive_and_filters_extensions(tmp_path):
    exts = DataConfig().extensions
    wanted = [
        _png(tmp_path / "a.png"),
        _png(tmp_path / "sub" / "b.PNG"),
        _png(tmp_path / "sub" / "deeper" / "c.jpg"),
    ]
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub" / "model.pt").write_bytes(b"x")
    (tmp_path / "sub" / "noext").write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a directory with an image-like name is not a file
    found = list_images(tmp_path, exts)
    assert found == sorted(wanted)
    assert all(isinstance(p, Path) for p in found)


def test_list_images_missing_folder(tmp_path):
    with pytest.raises(SketchColorError, match="not found"):
        list_images(tmp_path / "nope", DataConfig().extensions)


def test_split_files_stable_and_disjoint(tmp_path):
    files = [tmp_path / f"d{i % 3}" / f"img_{i:03d}.png" for i in range(60)]
    train, val = split_files(files, tmp_path, 0.3)
    assert set(train).isdisjoint(val)
    assert sorted(train + val) == sorted(files)
    assert 0 < len(val) < len(files)
    # stable: same answer again, in another order, and under another root folder
    train2, val2 = split_files(list(reversed(files)), tmp_path, 0.3)
    assert set(train2) == set(train) and set(val2) == set(val)
    other = Path("/somewhere/else")
    moved = [other / f.relative_to(tmp_path) for f in files]
    _, val3 = split_files(moved, other, 0.3)
    assert {f.relative_to(other) for f in val3} == {f.relative_to(tmp_path) for f in val}
    # nested fractions: a bigger validation share only adds files
    _, val_big = split_files(files, tmp_path, 0.6)
    assert set(val) <= set(val_big)
    assert split_files(files, tmp_path, 0.0) == (files, [])


def test_stable_fraction_is_a_fixed_hash():
    # Pinned values: a change of hash, byte order or scaling would silently move files between
    # the train and validation splits of every existing run folder.
    assert stable_fraction("x/y.png") == 0.734636140401137
    assert stable_fraction("x/z.png") == 0.5200502454990922
    assert stable_fraction("train/a.png") == 0.24158885025121038
    # the first 8 bytes of SHA-1 as a big-endian fraction of 2^64
    digest = hashlib.sha1(b"x/y.png").digest()
    assert stable_fraction("x/y.png") == int.from_bytes(digest[:8], "big") / 2**64


# ---------------------------------------------------------------- ImageFolder


def test_image_folder_items(sample_photos):
    ds = ImageFolder(sample_photos[:3], SIZE, DataConfig())
    assert len(ds) == 3
    rgb, sketches = ds[1]
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    assert set(sketches) == {"xdog"}  # a plain folder has no aligned line art
    assert sketches["xdog"].shape == (SIZE, SIZE) and sketches["xdog"].dtype == np.uint8
    assert ds[1][0] is rgb  # cached


def test_image_folder_cache_keeps_to_its_bound(tmp_path, sample_photos):
    line = tmp_path / "line.png"
    Image.fromarray(np.full((20, 30), 255, np.uint8)).save(line)
    kinds = [{"line_art": line}, {}, {}, {}]
    full = ImageFolder(sample_photos[:4], SIZE, DataConfig(), kinds)
    items = [full[i] for i in range(4)]
    # RGB + XDoG, and the line art where one is given: the bytes of every cached array
    assert full.cache_bytes_needed() == SIZE * SIZE * (5 + 4 + 4 + 4) == full._cached_bytes
    bounded = ImageFolder(sample_photos[:4], SIZE, DataConfig(), kinds)
    bounded.cache_limit = SIZE * SIZE * (5 + 4)  # room for the first two pictures
    for i, (rgb, sketches) in enumerate(items):
        got, got_sketches = bounded[i]
        np.testing.assert_array_equal(got, rgb)  # the same pictures, cached or decoded again
        assert set(got_sketches) == set(sketches)
    assert sorted(bounded._cache) == [0, 1] and bounded._cached_bytes == bounded.cache_limit
    assert bounded[0][0] is bounded[0][0] and bounded[3][0] is not bounded[3][0]
    off = ImageFolder(sample_photos[:2], SIZE, DataConfig(cache_images=False))
    off[0]
    assert not off._cache and off._cached_bytes == 0


def test_aligned_line_art_is_offered_and_picked(tmp_path, sample_photos):
    from sketchcolor.data.datasets import pick_sketch

    line = tmp_path / "line.png"
    Image.fromarray(np.full((20, 30), 255, np.uint8)).save(line)
    ds = ImageFolder(sample_photos[:1], SIZE, DataConfig(), [{"line_art": line}])
    _, sketches = ds[0]
    assert set(sketches) == {"xdog", "line_art"} and sketches["line_art"].shape == (SIZE, SIZE)
    only_art = DataConfig(line_art_weight=1.0, xdog_weight=0.0, hed_weight=0.0)
    assert pick_sketch(sketches, only_art, torch.Generator().manual_seed(0)) is sketches["line_art"]
    picks = {id(pick_sketch(sketches, DataConfig(), torch.Generator().manual_seed(s))) for s in range(40)}
    assert picks == {id(sketches["line_art"]), id(sketches["xdog"])}  # both kinds get used


def test_image_folder_skips_corrupt_file(tmp_path, sample_photos):
    good = [shutil.copy(p, tmp_path / p.name) for p in sample_photos[:2]]
    bad = tmp_path / "0_corrupt.png"
    bad.write_bytes(b"\x89PNG garbage garbage garbage")
    files = list_images(tmp_path, DataConfig().extensions)
    assert files[0] == bad
    ds = ImageFolder(files, SIZE, DataConfig())
    rgb, _ = ds[0]  # the corrupt file is skipped in favour of the next one
    assert str(bad) in ds.bad_files
    assert "0_corrupt.png" in ds.bad_files[str(bad)]
    expected, _ = ds[1]
    np.testing.assert_array_equal(rgb, expected)
    assert len(ds.bad_files) == 1 and ds.unreadable_files() == [str(bad)]
    assert Path(good[0]).name == files[1].name


def test_files_found_unreadable_in_dataloader_workers_are_counted(tmp_path, sample_photos):
    """The workers decode in their own copies of the ImageFolder: what they find unreadable must
    still reach the run's count (summary.json's bad_files), and no other worker tries it again."""
    from torch.utils.data import DataLoader

    for p in sample_photos[:3]:
        shutil.copy(p, tmp_path / p.name)
    bad = tmp_path / "0_corrupt.png"
    bad.write_bytes(b"\x89PNG garbage garbage garbage")
    ds = ImageFolder(list_images(tmp_path, DataConfig().extensions), SIZE, DataConfig())
    stream = TripletStream(ds, (4, 4), seed=0, length=8, around=False)
    assert len(list(DataLoader(stream, batch_size=4, num_workers=2))) == 2
    assert ds.bad_files == {}  # this process decoded nothing itself
    assert ds.unreadable_files() == [str(bad)]


def test_image_folder_all_bad_raises(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    ds = ImageFolder([bad], SIZE, DataConfig())
    with pytest.raises(SketchColorError, match="no readable"):
        ds[0]


def test_image_folder_empty_raises():
    with pytest.raises(SketchColorError):
        ImageFolder([], SIZE, DataConfig())


# ---------------------------------------------------------------- TripletStream


@pytest.fixture(scope="module")
def photo_files(sample_photos):
    return sample_photos[:4]


def _stream(files, seed=3, start=0, length=0):
    return TripletStream(ImageFolder(files, SIZE, DataConfig()), GRID, seed=seed, start=start, length=length)


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() == {"sketch", "reference", "target", "correspondence", "around"}
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_stream_example_rebuilds_identically(photo_files):
    a = _stream(photo_files)
    b = _stream(photo_files)
    # visit a in another order first: the result must depend on g alone
    for g in (9, 2, 5):
        a.example(g)
    for g in (6, 1):
        _assert_same(a.example(g), b.example(g))
    ex = a.example(6)
    assert ex["sketch"].shape == (1, SIZE, SIZE)
    assert ex["reference"].shape == ex["target"].shape == (3, SIZE, SIZE)
    assert ex["correspondence"].shape == (GRID[0] * GRID[1],)
    # the paper term's region around the drawing comes with the example, made from its sketch
    assert ex["around"].dtype == torch.bool and torch.equal(ex["around"], around_drawing(ex["sketch"][None])[0])


def test_stream_without_the_region_leaves_only_it_out(photo_files):
    with_region = _stream(photo_files).example(4)
    without = TripletStream(ImageFolder(photo_files, SIZE, DataConfig()), GRID, seed=3, around=False).example(4)
    assert "around" not in without and without.keys() == with_region.keys() - {"around"}
    for k in without:
        assert torch.equal(without[k], with_region[k]), k


def test_stream_resume_matches_unbroken_run(photo_files):
    full = _stream(photo_files, length=10)
    resumed = _stream(photo_files, start=7, length=3)
    assert len(resumed) == 3
    for i in range(3):
        _assert_same(resumed[i], full[7 + i])


def test_stream_seed_changes_examples(photo_files):
    a = _stream(photo_files, seed=3).example(0)
    b = _stream(photo_files, seed=4).example(0)
    assert not torch.equal(a["target"], b["target"])


def test_stream_epochs_use_different_permutations(sample_photos):
    s = _stream(sample_photos)  # 11 images
    n = len(sample_photos)
    epochs = [[s.image_index(g) for g in range(e * n, (e + 1) * n)] for e in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(n))  # each epoch visits every image once
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    # and the order is reproducible from the seed alone
    t = _stream(sample_photos)
    assert [t.image_index(g) for g in range(2 * n - 1, n - 1, -1)] == epochs[1][::-1]
    assert [t.image_index(g) for g in range(n)] == epochs[0]
    # a different seed gives a different order
    u = _stream(sample_photos, seed=5)
    assert [u.image_index(g) for g in range(n)] != epochs[0]


def test_stream_same_image_different_epochs_differ(photo_files):
    s = _stream(photo_files)
    n = len(photo_files)
    g0 = 0
    img = s.image_index(g0)
    g1 = next(g for g in range(n, 2 * n) if s.image_index(g) == img)
    a, b = s.example(g0), s.example(g1)
    assert torch.equal(a["sketch"], b["sketch"])  # same image
    assert not torch.equal(a["target"], b["target"])  # new augmentation
