"""The CLI end to end on temporary files, and one clear error line for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketchcolor.cli import main

TRAIN = ["train.batch_size=2", "train.steps=3"]  # on top of the tiny test model (conftest)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_photos: list[Path], tiny_recipe: Path,
            small_overrides: tuple[str, ...]) -> Path:
    run = tmp_path_factory.mktemp("run")
    args = ["train", "--config", str(tiny_recipe), "--data", str(sample_photos[0].parent), "--out", str(run), "-q"]
    for s in [*small_overrides, *TRAIN]:
        args += ["--set", s]
    assert main(args) == 0
    assert (run / "model" / "config.json").is_file() and (run / "model" / "model.safetensors").is_file()
    assert list((run / "checkpoints").glob("step_*"))
    return run / "model"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sketchcolor.cli", *args], capture_output=True, text=True, timeout=120)


def test_dry_run_prints_resolved_config(capsys: pytest.CaptureFixture[str], tiny_recipe: Path) -> None:
    assert main(["train", "--config", str(tiny_recipe), "--dry-run", "--set", "train.steps=7"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["steps"] == 7 and cfg["model"]["image_size"] == 64


def test_colorize_one_pair_keeps_the_sketch_size(trained: Path, sample_photos: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert main(["colorize", "--sketch", str(sample_photos[1]), "--reference", str(sample_photos[0]),
                 "-o", str(out), "--weights", str(trained), "--extract-sketch"]) == 0
    with Image.open(out) as im, Image.open(sample_photos[1]) as sk:
        assert im.size == sk.size and im.mode == "RGB"


def test_colorize_folder(trained: Path, sample_photos: list[Path], tmp_path: Path) -> None:
    sketches = tmp_path / "sketches"
    sketches.mkdir()
    Image.fromarray(np.full((40, 70), 255, np.uint8)).save(sketches / "wide.png")
    Image.fromarray(np.full((90, 30), 255, np.uint8)).save(sketches / "tall.jpg")
    out = tmp_path / "colored"
    assert main(["colorize", "--sketch", str(sketches), "--reference", str(sample_photos[0]), "-o", str(out),
                 "--weights", str(trained), "-q"]) == 0
    assert Image.open(out / "wide.png").size == (70, 40)
    assert Image.open(out / "tall.png").size == (30, 90)


def test_info_prints_counts(capsys: pytest.CaptureFixture[str], tiny_recipe: Path) -> None:
    assert main(["info", "--config", str(tiny_recipe)]) == 0
    text = capsys.readouterr().out
    assert "G parameters" in text and "D parameters" in text and "GFLOP" in text


def _assert_one_error_line(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]


def test_corrupt_image_fails_with_one_line(trained: Path, sample_photos: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    proc = _run("colorize", "--sketch", str(bad), "--reference", str(sample_photos[0]), "-o", str(tmp_path / "o.png"),
                "--weights", str(trained))
    _assert_one_error_line(proc, "broken.png")
    assert not (tmp_path / "o.png").exists()


def test_unsupported_mode_fails_with_one_line(trained: Path, sample_photos: list[Path], tmp_path: Path) -> None:
    odd = tmp_path / "float.tif"
    Image.fromarray(np.zeros((16, 16), np.float32), mode="F").save(odd)
    proc = _run("colorize", "--sketch", str(sample_photos[1]), "--reference", str(odd), "-o", str(tmp_path / "o.png"),
                "--weights", str(trained))
    _assert_one_error_line(proc, "float.tif")


def test_missing_checkpoint_fails_with_one_line(sample_photos: list[Path], tmp_path: Path) -> None:
    proc = _run("colorize", "--sketch", str(sample_photos[1]), "--reference", str(sample_photos[0]),
                "-o", str(tmp_path / "o.png"), "--weights", str(tmp_path / "nowhere"))
    _assert_one_error_line(proc, "nowhere")


def test_truncated_weights_fail_with_one_line(trained: Path, sample_photos: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "config.json").write_bytes((trained / "config.json").read_bytes())
    data = (trained / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    proc = _run("colorize", "--sketch", str(sample_photos[1]), "--reference", str(sample_photos[0]),
                "-o", str(tmp_path / "o.png"), "--weights", str(broken))
    _assert_one_error_line(proc, "model.safetensors")


def test_colorize_folder_keeps_files_with_the_same_stem_apart(trained: Path, sample_photos: list[Path], tmp_path: Path) -> None:
    sketches = tmp_path / "sk"
    sketches.mkdir()
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(sketches / "a.png")
    Image.fromarray(np.full((20, 30), 255, np.uint8)).save(sketches / "a.jpg")
    out = tmp_path / "o"
    assert main(["colorize", "--sketch", str(sketches), "--reference", str(sample_photos[0]), "-o", str(out),
                 "--weights", str(trained), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg.png", "a.png.png"]
