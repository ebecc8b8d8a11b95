"""Issue 4, images: every bad file through load_image, the CLI (as sketch and as reference) and
the training dataset. Each gives a correct result or one clear error line naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_files import CASES, Case
from sketchcolor.cli import main
from sketchcolor.config import DataConfig
from sketchcolor.data.datasets import ImageFolder, TripletStream, list_images
from sketchcolor.data.io import load_image
from sketchcolor.errors import ImageError

IDS = [c.name for c in CASES]


_made: dict[str, Path] = {}  # case name -> its file in the module's bad folder


@pytest.fixture(scope="module", autouse=True)
def bad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad_files")
    for c in CASES:
        _made[c.name] = c.make(d)
    return d


def _one_error_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ------------------------------------------------------------------ load_image


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_load_image(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    path = _made[case.name]
    if case.outcome == "error":
        with pytest.raises(ImageError) as info:
            load_image(path)
        msg = str(info.value)
        assert msg.startswith(str(path)) and case.error in msg and "\n" not in msg, msg
        return
    with caplog.at_level("WARNING"):
        arr = load_image(path)
    w, h = case.size
    assert arr.dtype == np.uint8 and arr.shape == (h, w, 3)
    if case.name in ("animated_gif", "apng", "animated_webp"):
        assert "first frame" in caplog.text
        assert arr[0, 0, 0] > 200 and arr[0, 0, 1] < 30 and arr[0, 0, 2] < 30  # the first frame is red


def test_conversions_give_the_right_colors() -> None:
    cmyk = load_image(_made["cmyk_jpeg"])
    assert cmyk[..., 0].min() > 200 and cmyk[..., 1:].max() < 60  # CMYK (0, 255, 255, 0) is red
    pal = load_image(_made["palette_png_transparency"])
    assert (pal[:, :8] == 255).all() and (pal[:, 8:] == (0, 200, 0)).all()  # transparent -> white
    gif = load_image(_made["gif_palette_transparent"])
    assert (gif[:, :10] == (200, 30, 30)).all() and (gif[:, 10:] == 255).all()
    rgba = load_image(_made["rgba_png"])
    assert (rgba[:, :9] == (255, 0, 0)).all() and (rgba[:, 9:] == 255).all()
    g16 = load_image(_made["png_16bit_gray"])
    want = np.round((np.arange(600).reshape(20, 30) * 100) / 65535 * 255)
    assert np.abs(g16[..., 0].astype(int) - want).max() <= 1
    import cv2

    rgb16 = cv2.imread(str(_made["png_16bit_rgb"]), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert np.abs(load_image(_made["png_16bit_rgb"]).astype(int) - np.round(rgb16 / 257)).max() <= 1
    # EXIF orientation 6: stored 40 wide x 20 high, shown rotated 90 degrees clockwise
    with Image.open(_made["exif_rotated_jpeg"]) as im:
        stored = np.asarray(im.convert("RGB"))
    assert np.array_equal(load_image(_made["exif_rotated_jpeg"]), np.rot90(stored, k=-1))


def test_pixel_limit_is_configurable_from_the_environment(good_pictures: tuple[Path, Path], tiny_artifact: Path,
                                                          tmp_path: Path) -> None:
    """SKETCHCOLOR_MAX_PIXELS read by a fresh process; the refusal is one line on stderr, exit 2."""
    sketch, reference = good_pictures  # 48 x 40 = 1920 px
    env = {**os.environ, "SKETCHCOLOR_MAX_PIXELS": "1000"}
    proc = subprocess.run([sys.executable, "-m", "sketchcolor.cli", "colorize", "--sketch", str(sketch), "--reference",
                           str(reference), "-o", str(tmp_path / "o.png"), "--weights", str(tiny_artifact)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "good_reference.png", "30x50 px", "over the limit of 1,000 pixels")  # reference is read first
    assert not (tmp_path / "o.png").exists()


# ------------------------------------------------------------------ CLI


@pytest.mark.parametrize("role", ["sketch", "reference"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_colorize(case: Case, role: str, tiny_artifact: Path, good_pictures: tuple[Path, Path], tmp_path: Path,
                      capfd: pytest.CaptureFixture[str]) -> None:
    """capfd: what C libraries write to file descriptor 2 counts as a line too."""
    bad = _made[case.name]
    sketch, reference = good_pictures
    if role == "sketch":
        sketch = bad
    else:
        reference = bad
    out = tmp_path / "out.png"
    rc = main(["colorize", "--sketch", str(sketch), "--reference", str(reference), "-o", str(out),
               "--weights", str(tiny_artifact), "-q"])
    err = capfd.readouterr().err
    if case.outcome == "error":
        assert rc == 2
        _one_error_line(err, bad.name, case.error)
        assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written
        return
    assert rc == 0, err
    assert "error" not in err
    with Image.open(out) as im, Image.open(good_pictures[0]) as good:
        assert im.mode == "RGB"
        assert im.size == (case.size if role == "sketch" else good.size)  # the sketch's (displayed) size


def test_cli_folder_of_bad_sketches(tiny_artifact: Path, good_pictures: tuple[Path, Path], tmp_path: Path,
                                    capfd: pytest.CaptureFixture[str]) -> None:
    """A folder run colorizes every readable file and prints one error line per bad one."""
    folder = tmp_path / "sketches"
    folder.mkdir()
    for c in CASES:
        c.make(folder)
    out = tmp_path / "colored"
    rc = main(["colorize", "--sketch", str(folder), "--reference", str(good_pictures[1]), "-o", str(out),
               "--weights", str(tiny_artifact), "-q"])
    captured = capfd.readouterr()
    assert rc == 1
    errors = [ln for ln in captured.err.splitlines() if ln.strip()]
    bad = [c for c in CASES if c.outcome == "error"]
    assert len(errors) == len(bad) and all(ln.startswith("error: ") for ln in errors), captured.err
    for c in bad:
        assert sum(_made[c.name].name in ln for ln in errors) == 1, c.name
    ok = [c for c in CASES if c.outcome == "ok"]
    assert f"colorized {len(ok)} of {len(CASES)}" in captured.out
    for c in ok:
        with Image.open(out / f"{_made[c.name].stem}.png") as im:
            assert im.size == c.size, c.name


# ------------------------------------------------------------------ dataset


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dataset_skips_and_counts(case: Case, good_pictures: tuple[Path, Path]) -> None:
    path = _made[case.name]
    ds = ImageFolder([path, good_pictures[1]], 32, DataConfig())
    rgb, sketches = ds[0]
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8 and sketches["xdog"].shape == (32, 32)
    if case.outcome == "error":
        assert list(ds.bad_files) == [str(path)] and case.error in ds.bad_files[str(path)]
        np.testing.assert_array_equal(rgb, ds[1][0])  # the next readable picture stood in
    else:
        assert ds.bad_files == {}


def test_training_stream_over_the_whole_bad_folder(bad_dir: Path) -> None:
    """Triplets for two epochs over the folder: never a crash; bad files counted once each."""
    cfg = DataConfig()
    files = list_images(bad_dir, cfg.extensions)
    ds = ImageFolder(files, 32, cfg)
    stream = TripletStream(ds, (8, 8), seed=0, length=2 * len(files))
    for i in range(len(stream)):
        item = stream[i]
        assert item["target"].shape == (3, 32, 32) and item["sketch"].shape == (1, 32, 32)
    expected_bad = {str(_made[c.name]) for c in CASES if c.outcome == "error"}
    assert set(ds.bad_files) == expected_bad


# ------------------------------------------------------------------ Python API (arrays, PIL images)


def _lazy_truncated_png() -> Image.Image:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(9).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    return Image.open(io.BytesIO(buf.getvalue()[:-200]))  # opened, not decoded yet


API_CASES = [
    ("empty_array", lambda: np.zeros((0, 5, 3), np.uint8), "is not an image"),
    ("nan_float_array", lambda: np.full((4, 4, 3), np.nan, np.float32), "NaN or infinite"),
    ("4d_array", lambda: np.zeros((1, 2, 3, 4), np.uint8), "is not an image"),
    ("two_channel_array", lambda: np.zeros((2, 2, 2), np.uint8), "is not an image"),
    ("int64_array", lambda: np.zeros((3, 3), np.int64), "unsupported array dtype"),
    ("lazy_truncated_pil", _lazy_truncated_png, "corrupt image"),
    ("pil_float_mode", lambda: Image.new("F", (3, 3)), "unsupported image mode"),
    ("one_pixel_array", lambda: np.zeros((1, 1, 3), np.uint8), None),
    ("thin_float_array", lambda: np.linspace(0, 1, 300)[None, :], None),
    ("bool_array", lambda: np.eye(5, dtype=bool), None),
    ("rgba_pil", lambda: Image.new("RGBA", (7, 3), (0, 0, 0, 0)), None),
]


@pytest.mark.parametrize(("name", "make", "error"), API_CASES, ids=[c[0] for c in API_CASES])
def test_pipeline_with_arrays_and_pil_images(name: str, make, error: str | None, tiny_artifact: Path,
                                             good_pictures: tuple[Path, Path]) -> None:
    from sketchcolor.inference.pipeline import ColorizePipeline

    pipe = ColorizePipeline.from_pretrained(tiny_artifact, device="cpu")
    source = make()
    if error:
        with pytest.raises(ImageError, match=error):
            pipe(source, good_pictures[1])
        with pytest.raises(ImageError, match=error):
            pipe(good_pictures[0], make())
        return
    out = pipe(source, good_pictures[1])
    h, w = np.asarray(source).shape[:2]
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert pipe(good_pictures[0], make()).shape == (40, 48, 3)


@pytest.mark.parametrize(("exc", "reason"), [
    (OSError(28, "No space left on device"), "no space left on device"),  # errno.ENOSPC
    (PermissionError(13, "Permission denied"), "permission denied"),
], ids=["disk_full", "permission"])
def test_cli_output_that_cannot_be_written(exc: OSError, reason: str, tiny_artifact: Path,
                                           good_pictures: tuple[Path, Path], tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def save(self, fp, *a, **k):
        Path(fp).write_bytes(b"\x89PNG half")  # some bytes reached the disk
        raise exc
    monkeypatch.setattr(Image.Image, "save", save)
    out = tmp_path / "out" / "o.png"
    rc = main(["colorize", "--sketch", str(good_pictures[0]), "--reference", str(good_pictures[1]), "-o", str(out),
               "--weights", str(tiny_artifact), "-q"])
    assert rc == 2
    _one_error_line(capfd.readouterr().err, f"{out}: could not be written: {reason}")
    assert list((tmp_path / "out").iterdir()) == []  # no half-written file, no temporary file
