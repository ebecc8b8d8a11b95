"""The paper's data-set layouts, on tiny fixtures made here, through prepare-data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchcolor.data.sources.manifest import read_manifest
from sketchcolor.data.sources.paper_datasets import list_items
from sketchcolor.data.sources.prepare import prepare
from sketchcolor.errors import SketchColorError


def _img(path: Path, size=(24, 16), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def make_layout(name: str, root: Path) -> Path:
    if name == "tag2pix":
        for part in ("train", "test"):
            _img(root / f"rgb_{part}" / f"{part}1.png")
            Image.new("L", (24, 16), 255).save(_img(root / f"keras_{part}" / f"{part}1.png"))
        _img(root / "rgb_train" / "nosketch.png")
    elif name == "yumi":
        for i in range(4):
            _img(root / "frames" / f"f{i}.jpg")
    elif name == "spair":
        _img(root / "JPEGImages" / "cat" / "a.jpg")
        _img(root / "JPEGImages" / "car" / "b.jpg")
    elif name == "imagenet":
        _img(root / "train" / "n01440764" / "x.JPEG")
        _img(root / "val" / "n01440764" / "y.JPEG")
    elif name == "celeba":
        for i in range(1, 4):
            _img(root / "img_align_celeba" / f"00000{i}.jpg")
        (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n")
    elif name == "edges2shoes":
        for part in ("train", "val"):
            a = np.zeros((16, 32, 3), np.uint8)
            a[:, :16] = 255  # left half: white edge map
            a[:, 16:] = (10, 20, 200)  # right half: blue photo
            (root / part).mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(root / part / f"{part}_1.jpg", quality=100)
    return root


EXPECTED = {  # name -> {split: count}, with sketches
    "tag2pix": ({"train": 2, "test": 1}, 2),
    "yumi": ({"train": None}, 0),
    "spair": ({"train": None}, 0),
    "imagenet": ({"train": 1, "test": 1}, 0),
    "celeba": ({"train": 1, "val": 1, "test": 1}, 0),
    "edges2shoes": ({"train": 1, "test": 1}, 2),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layout_is_read_and_prepared(name: str, tmp_path: Path) -> None:
    root = make_layout(name, tmp_path / name)
    items = list(list_items(name, root))
    splits, n_sketches = EXPECTED[name]
    for split, count in splits.items():
        if count is not None:
            assert sum(i.split == split for i in items) == count, split
    out = tmp_path / "out"
    summary = prepare(name, out, size=32, src=root, workers=1, progress=False)
    assert summary["outcomes"] == {"ok": len(items)}
    rows = read_manifest(out)
    assert len(rows) == len(items) and sum(bool(r.sketch) for r in rows) == n_sketches
    for r in rows:
        assert (out / r.image).is_file()


def test_edges2shoes_halves_become_image_and_sketch(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare("edges2shoes", out, size=16, src=make_layout("edges2shoes", tmp_path / "e2s"), workers=1, progress=False)
    row = next(r for r in read_manifest(out) if r.split == "train")
    photo = np.asarray(Image.open(out / row.image))
    edges = np.asarray(Image.open(out / row.sketch))
    assert photo.shape == (16, 16, 3) and photo[..., 2].mean() > 150 and photo[..., 0].mean() < 60
    assert edges.shape == (16, 16) and edges.mean() > 200


def test_wrong_layout_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name, needle in (("tag2pix", "rgb_train"), ("spair", "JPEGImages"), ("celeba", "img_align_celeba"),
                         ("imagenet", "train/"), ("edges2shoes", "train/")):
        with pytest.raises(SketchColorError, match=needle):
            list(list_items(name, tmp_path / "empty"))
