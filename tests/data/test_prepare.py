"""prepare-data on small generated copies of each source's layout: files, manifest, split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchcolor.cli import main
from sketchcolor.data.datasets import open_images
from sketchcolor.config import DataConfig
from sketchcolor.data.sources.manifest import read_manifest
from sketchcolor.data.sources.openmoji import base_id
from sketchcolor.data.sources.prepare import prepare
from sketchcolor.data.splits import split_for

def test_openmoji_pairs_manifest_and_split(tmp_path: Path, make_openmoji) -> None:
    src = make_openmoji(tmp_path / "openmoji")
    out = tmp_path / "data"
    summary = prepare("openmoji", out, size=64, src=src, workers=1, progress=False)
    assert summary["written"] == 4 and summary["outcomes"] == {"ok": 4, "broken": 1}
    rows = {r.id: r for r in read_manifest(out)}
    assert set(rows) == {"openmoji-1F600", "openmoji-1F44B", "openmoji-1F44B-1F3FB", "openmoji-1F44B-1F3FF"}
    for r in rows.values():
        img = np.asarray(Image.open(out / r.image))
        sk = np.asarray(Image.open(out / r.sketch))
        assert img.shape == (64, 64, 3) and sk.shape == (64, 64)
        assert sk.min() < 50 and np.median(sk) > 200  # black lines on white
        assert r.license == "CC BY-SA 4.0" and "Test Artist" in r.attribution
    # skin-tone variants share the base id, hence the split
    variants = [rows[k] for k in ("openmoji-1F44B", "openmoji-1F44B-1F3FB", "openmoji-1F44B-1F3FF")]
    assert {r.base_id for r in variants} == {"1F44B"} and len({r.split for r in variants}) == 1
    # stable across runs
    first = (out / "manifest.csv").read_bytes()
    prepare("openmoji", out, size=64, src=src, workers=1, progress=False)
    assert (out / "manifest.csv").read_bytes() == first


def test_base_id_merges_skin_tones_and_genders() -> None:
    assert base_id("1F44B-1F3FB", "1F44B") == "1F44B"
    assert base_id("1F468-200D-1F393") == base_id("1F469-200D-1F393") == base_id("1F9D1-200D-1F393")
    assert base_id("1F3C3-200D-2640-FE0F") == base_id("1F3C3-200D-2642-FE0F") == base_id("1F3C3")
    assert base_id("1F600") != base_id("1F601")


def test_split_is_deterministic_and_roughly_90_5_5() -> None:
    splits = [split_for("openmoji", f"id{i}") for i in range(4000)]
    assert splits == [split_for("openmoji", f"id{i}") for i in range(4000)]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.87 < share["train"] < 0.93 and 0.03 < share["val"] < 0.07 and 0.03 < share["test"] < 0.07


def test_openclipart_keeps_colored_and_counts_the_rest(tmp_path: Path, make_clipart) -> None:
    out = tmp_path / "data"
    summary = prepare("openclipart", out, size=64, src=make_clipart(tmp_path / "clip"), workers=1, progress=False)
    assert summary["outcomes"] == {"ok": 2, "not colored": 1, "broken": 1}
    rows = {r.id: r for r in read_manifest(out)}
    assert set(rows) == {"openclipart-animals-red", "openclipart-people-sizeless"}
    red = rows["openclipart-animals-red"]
    assert red.title == "Red box" and "Jo" in red.attribution and red.sketch == ""
    assert max(Image.open(out / red.image).size) == 64
    # the sizeless file was rendered on a large canvas and cropped to its drawing
    w, h = Image.open(out / rows["openclipart-people-sizeless"].image).size
    assert max(w, h) == 64 and 1.3 < w / h < 1.9


def test_sources_merge_into_one_manifest_and_train_reads_it(tmp_path: Path, make_openmoji, make_clipart) -> None:
    out = tmp_path / "data"
    prepare("openmoji", out, size=64, src=make_openmoji(tmp_path / "om"), workers=1, progress=False)
    prepare("openclipart", out, size=64, src=make_clipart(tmp_path / "clip"), workers=1, progress=False)
    rows = read_manifest(out)
    assert {r.source for r in rows} == {"openmoji", "openclipart"} and len(rows) == 6
    by_split = {s: [r for r in rows if r.split == s] for s in ("train", "val", "test")}
    assert not ({r.base_id for r in by_split["train"]} & {r.base_id for r in by_split["test"]})
    split = next(s for s, rs in by_split.items() if any(r.sketch for r in rs))
    images = open_images(out, 32, DataConfig(), split)
    kinds = set().union(*(set(images[i][1]) for i in range(len(images))))
    assert "line_art" in kinds and "xdog" in kinds


def test_cli_prepare_folder_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "pics" / "sub"
    src.mkdir(parents=True)
    Image.new("RGB", (50, 30), (200, 10, 10)).save(src / "a.jpg")
    (src / "bad.png").write_bytes(b"not a png")
    assert main(["prepare-data", "folder", "--source-dir", str(tmp_path / "pics"), "--out", str(tmp_path / "d"),
                 "--size", "40", "-q", "--workers", "1"]) == 0
    text = capsys.readouterr().out
    assert "wrote 1 images" in text and "broken 1" in text
    assert Image.open(tmp_path / "d" / "images" / "folder" / "sub-a.png").size == (40, 24)
