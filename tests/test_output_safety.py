"""`colorize` never destroys a user's file (issue 10): its output paths are checked against the
inputs (symlinks and hard links included) and against existing files before any model work, a
folder run never writes among its sketches or onto another output, and two writers of one path
leave one valid picture.

Refusals are run with ``--weights`` naming a folder that does not exist: the refusal being the
error proves that the paths were checked before the model was loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketchcolor.cli import main
from sketchcolor.data.io import load_image, save_image
from sketchcolor.errors import ImageError
from sketchcolor.formats import OUTPUT_EXTENSIONS
from sketchcolor.models import Colorizer
from sketchcolor.models.serialization import save_artifact
from sketchcolor.outputs import output_names

SUPPORTED = ", ".join(OUTPUT_EXTENSIONS)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, small_config) -> Path:
    """A seeded, untrained tiny Colorizer saved as an inference artifact."""
    cfg = small_config()
    torch.manual_seed(0)
    return save_artifact(tmp_path_factory.mktemp("artifact") / "model", Colorizer(cfg.model).eval(), cfg)


def _sketch(path: Path, w: int = 24, h: int = 20) -> Path:
    a = np.full((h, w), 255, np.uint8)
    a[h // 2, 2:-2] = 0
    a[2:-2, w // 2] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def _reference(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """``d/drawing.png`` and ``d/ref.png``."""
    return _sketch(tmp_path / "d" / "drawing.png"), _reference(tmp_path / "d" / "ref.png")


def _snapshot(*roots: Path) -> dict[Path, bytes]:
    """Every file under ``roots`` (or the file itself) with its bytes."""
    out: dict[Path, bytes] = {}
    for root in roots:
        for p in [root] if root.is_file() else sorted(root.rglob("*")):
            if p.is_file():
                out[p] = p.read_bytes()
    return out


def _colorize(*args: str, weights: Path | str = "/nonexistent/weights") -> int:
    return main(["colorize", *args, "--weights", str(weights), "-q"])


def _one_error(capsys: pytest.CaptureFixture[str], message: str) -> None:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines == [f"error: {message}"], lines


# --- one sketch -----------------------------------------------------------------------------


def test_dot_in_the_sketch_folder_is_refused(pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(pair[0].parent)
    monkeypatch.chdir(pair[0].parent)
    assert _colorize("--sketch", "drawing.png", "--reference", "ref.png", "-o", ".") == 2
    _one_error(capsys, "drawing.png: is the input sketch; an input is never overwritten, choose another -o")
    assert _snapshot(pair[0].parent) == before


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_the_sketch_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _sketch(tmp_path / "sub" / "d.png")
    _reference(tmp_path / "ref.png")
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    flags = ["--overwrite"] if overwrite else []
    assert _colorize("--sketch", "sub/d.png", "--reference", "ref.png", "-o", "sub", *flags) == 2
    _one_error(capsys, "sub/d.png: is the input sketch; an input is never overwritten, choose another -o")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("option", ["-o", "--color-layer"])
def test_empty_path_is_an_error(pair: tuple[Path, Path], tmp_path: Path, option: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(pair[0].parent)
    args = ["-o", ""] if option == "-o" else ["-o", str(tmp_path / "o.png"), "--color-layer", ""]
    assert _colorize("--sketch", str(pair[0]), "--reference", str(pair[1]), *args) == 2
    _one_error(capsys, f"{option} is empty: give an output file ({SUPPORTED}) or a folder")
    assert _snapshot(pair[0].parent) == before and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("target", ["sketch", "reference"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_naming_an_input_is_refused(pair: tuple[Path, Path], target: str, overwrite: bool,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    sketch, ref = pair
    before = _snapshot(sketch.parent)
    dst = sketch if target == "sketch" else ref
    flags = ["--overwrite"] if overwrite else []
    assert _colorize("--sketch", str(sketch), "--reference", str(ref), "-o", str(dst), *flags) == 2
    _one_error(capsys, f"{dst}: is the input {target}; an input is never overwritten, choose another -o")
    assert _snapshot(sketch.parent) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("target", ["sketch", "reference"])
def test_a_link_to_an_input_is_refused(pair: tuple[Path, Path], tmp_path: Path, link: str, target: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    sketch, ref = pair
    src = sketch if target == "sketch" else ref
    dst = tmp_path / "elsewhere" / "out.png"
    dst.parent.mkdir()
    (os.symlink if link == "symlink" else os.link)(src, dst)
    before = _snapshot(sketch.parent)
    assert _colorize("--sketch", str(sketch), "--reference", str(ref), "-o", str(dst), "--overwrite") == 2
    _one_error(capsys, f"{dst}: is the input {target} {src}; an input is never overwritten, choose another -o")
    assert _snapshot(sketch.parent) == before
    assert dst.is_symlink() == (link == "symlink") and dst.read_bytes() == src.read_bytes()


def test_a_symlinked_folder_holding_the_sketch_is_refused(pair: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    sketch, ref = pair
    (tmp_path / "alias").symlink_to(sketch.parent, target_is_directory=True)
    before = _snapshot(sketch.parent)
    assert _colorize("--sketch", str(sketch), "--reference", str(ref), "-o", str(tmp_path / "alias")) == 2
    dst = tmp_path / "alias" / "drawing.png"
    _one_error(capsys, f"{dst}: is the input sketch {sketch}; an input is never overwritten, choose another -o")
    assert _snapshot(sketch.parent) == before


def test_an_existing_file_in_the_output_folder_needs_overwrite(pair: tuple[Path, Path], tmp_path: Path, weights: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    sketch, ref = pair
    out = tmp_path / "out"
    out.mkdir()
    (out / "drawing.png").write_bytes(b"the user's own file")
    assert _colorize("--sketch", str(sketch), "--reference", str(ref), "-o", str(out)) == 2
    _one_error(capsys, f"{out / 'drawing.png'}: already exists; not replaced without --overwrite")
    assert (out / "drawing.png").read_bytes() == b"the user's own file"
    before = _snapshot(sketch.parent)
    assert _colorize("--sketch", str(sketch), "--reference", str(ref), "-o", str(out), "--overwrite", weights=weights) == 0
    assert load_image(out / "drawing.png").shape == (20, 24, 3)
    assert _snapshot(sketch.parent) == before


def test_an_existing_file_named_outright_is_replaced(pair: tuple[Path, Path], tmp_path: Path, weights: Path) -> None:
    sketch, ref = pair
    before = _snapshot(sketch.parent)
    out = tmp_path / "result.png"
    out.write_bytes(b"old")
    assert _colorize("--sketch", str(sketch), "--reference", str(ref), "-o", str(out), weights=weights) == 0
    assert load_image(out).shape == (20, 24, 3)
    assert _snapshot(sketch.parent) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", ["out.xpm", "out.gif", "out.pdf"])
def test_an_unsupported_extension_is_one_line(pair: tuple[Path, Path], tmp_path: Path, name: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / name
    assert _colorize("--sketch", str(pair[0]), "--reference", str(pair[1]), "-o", str(dst)) == 2
    _one_error(capsys, f"{dst}: unsupported output extension {dst.suffix!r} (supported: {SUPPORTED})")
    assert list(tmp_path.iterdir()) == [pair[0].parent]
    with pytest.raises(ImageError, match=r"unsupported output extension '\.xpm'"):
        save_image(np.zeros((2, 2, 3), np.uint8), tmp_path / "x.xpm")


def test_an_existing_file_without_extension_is_not_a_folder(pair: tuple[Path, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes").write_text("keep me")
    assert _colorize("--sketch", str(pair[0]), "--reference", str(pair[1]), "-o", str(tmp_path / "notes")) == 2
    _one_error(capsys, f"{tmp_path / 'notes'}: exists and is not a folder; name an output file ({SUPPORTED}) or a folder")
    assert (tmp_path / "notes").read_text() == "keep me"


def test_color_layer_guards(pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sketch, ref = pair
    before = _snapshot(sketch.parent)
    out = tmp_path / "o.png"
    base = ["--sketch", str(sketch), "--reference", str(ref), "-o", str(out)]
    assert _colorize(*base, "--color-layer", str(out)) == 2
    _one_error(capsys, f"{out}: is also the -o file; the color layer needs a file of its own")
    assert _colorize(*base, "--color-layer", str(sketch), "--overwrite") == 2
    _one_error(capsys, f"{sketch}: is the input sketch; an input is never overwritten, choose another --color-layer")
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "drawing.png").write_bytes(b"mine")
    assert _colorize(*base, "--color-layer", str(tmp_path / "layers")) == 2
    _one_error(capsys, f"{tmp_path / 'layers' / 'drawing.png'}: already exists; not replaced without --overwrite")
    assert _colorize(*base, "--color-layer", str(tmp_path / "paint.jpg")) == 2
    _one_error(capsys, f"{tmp_path / 'paint.jpg'}: the color layer has transparency and is written as PNG; name it .png")
    assert _snapshot(sketch.parent) == before and (tmp_path / "layers" / "drawing.png").read_bytes() == b"mine"
    assert not out.exists()


# --- a folder of sketches --------------------------------------------------------------------


@pytest.fixture
def sketches(tmp_path: Path) -> Path:
    """``sk/a.png`` and ``sk/b.jpg``."""
    _sketch(tmp_path / "sk" / "a.png")
    _sketch(tmp_path / "sk" / "b.jpg", w=30)
    return tmp_path / "sk"


def test_folder_run_into_its_own_folder_is_refused(sketches: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ref = _reference(tmp_path / "ref.png")
    before = _snapshot(sketches)
    assert _colorize("--sketch", str(sketches), "--reference", str(ref), "-o", str(sketches)) == 2
    _one_error(capsys, f"{sketches}: is the input folder; outputs are not written among the sketches without "
                       "--overwrite (choose another -o)")
    monkeypatch.chdir(sketches)
    assert _colorize("--sketch", ".", "--reference", str(ref), "-o", "./") == 2
    _one_error(capsys, ".: is the input folder; outputs are not written among the sketches without "
                       "--overwrite (choose another -o)")
    assert _snapshot(sketches) == before


def test_folder_run_with_overwrite_never_replaces_a_sketch(sketches: Path, tmp_path: Path, weights: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    ref = _reference(tmp_path / "ref.png")
    before = _snapshot(sketches)
    assert _colorize("--sketch", str(sketches), "--reference", str(ref), "-o", str(sketches), "--overwrite",
                     weights=weights) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: {sketches / 'a.png'}: is the input sketch; an input is never overwritten, choose another -o"]
    assert captured.out.splitlines()[-1] == f"colorized 1 of 2 sketches into {sketches}"
    assert {p: b for p, b in _snapshot(sketches).items() if p in before} == before
    assert sorted(p.name for p in sketches.iterdir()) == ["a.png", "b.jpg", "b.png"]


def test_folder_run_refuses_existing_outputs_one_by_one(sketches: Path, tmp_path: Path, weights: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ref = _reference(tmp_path / "ref.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep")
    before = _snapshot(sketches, ref)
    assert _colorize("--sketch", str(sketches), "--reference", str(ref), "-o", str(out), weights=weights) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"error: {out / 'a.png'}: already exists; not replaced without --overwrite"]
    assert captured.out.splitlines()[-1] == f"colorized 1 of 2 sketches into {out}"
    assert (out / "a.png").read_bytes() == b"keep" and load_image(out / "b.png").shape == (20, 30, 3)
    assert _colorize("--sketch", str(sketches), "--reference", str(ref), "-o", str(out), "--overwrite", weights=weights) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"colorized 2 of 2 sketches into {out}"
    assert load_image(out / "a.png").shape == (20, 24, 3)
    assert _snapshot(sketches, ref) == before


def test_folder_run_output_onto_the_reference_is_refused(sketches: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    ref = _reference(out / "a.png")  # the reference sits where a.png's output would go
    before = _snapshot(sketches, ref)
    assert _colorize("--sketch", str(sketches), "--reference", str(ref), "-o", str(out), "--overwrite") == 2
    # (2: b.jpg's output is fine and reaches the model loading, which has no weights here)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {ref}: is the input reference; an input is never overwritten, choose another -o"
    assert _snapshot(sketches, ref) == before


def test_folder_run_color_layer_folder_guards(sketches: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = _reference(tmp_path / "ref.png")
    out = tmp_path / "out"
    base = ["--sketch", str(sketches), "--reference", str(ref), "-o", str(out)]
    assert _colorize(*base, "--color-layer", str(out)) == 2
    _one_error(capsys, f"{out}: is also the -o folder; the color layers need a folder of their own")
    assert _colorize(*base, "--color-layer", str(sketches)) == 2
    _one_error(capsys, f"{sketches}: is the input folder; outputs are not written among the sketches without "
                       "--overwrite (choose another --color-layer)")
    assert _colorize(*base, "--color-layer", str(tmp_path / "l.png")) == 2
    _one_error(capsys, f"{tmp_path / 'l.png'}: for a folder of sketches, --color-layer must be a folder")
    assert not out.exists()


def test_name_clashes_get_distinct_names_and_the_count_is_true(tmp_path: Path, weights: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    sk = tmp_path / "sk"
    for name in ["a.gif", "a.png", "a.gif.png", "b.webp", "B.png"]:
        _sketch(sk / name)
    ref = _reference(tmp_path / "ref.png")
    out = tmp_path / "out"
    before = _snapshot(sk)
    assert _colorize("--sketch", str(sk), "--reference", str(ref), "-o", str(out), weights=weights) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"note: {sk / 'a.gif.png'}: written as {out / 'a.gif-2.png'}, since a.gif.png is a.gif's output"]
    assert captured.out.splitlines()[-1] == f"colorized 5 of 5 sketches into {out}"
    assert sorted(p.name for p in out.iterdir()) == ["B.png.png", "a.gif-2.png", "a.gif.png", "a.png.png", "b.webp.png"]
    assert _snapshot(sk) == before


def test_output_names_are_distinct_case_blind() -> None:
    files = [Path(n) for n in ["x.png", "x.jpg", "x.jpg.png", "x.jpg-2.png", "X.JPG", "y.png"]]
    names, renamed = output_names(files)
    assert len({n.casefold() for n in names.values()}) == len(files)
    assert names[Path("y.png")] == "y.png"
    assert all(n.endswith(".png") for n in names.values()) and len(renamed) == 2


# --- the Python API and concurrent writers ---------------------------------------------------


@pytest.mark.parametrize(("values", "span"), [(255.0, "[0, 255]"), (-1.0, "[-1, 1]")], ids=["0_255", "minus1_1"])
def test_float_array_outside_0_1_is_refused(values: float, span: str, weights: Path) -> None:
    arr = np.linspace(values if values < 0 else 0.0, 1.0 if values < 0 else values, 64 * 3).reshape(8, 8, 3)
    message = rf"<array>: float array values span \{span}, outside \[0, 1\]; divide 0-255 values by 255 \(or pass a uint8 array\)"
    with pytest.raises(ImageError, match=message):
        load_image(arr)
    from sketchcolor.inference.pipeline import ColorizePipeline

    pipe = ColorizePipeline.from_pretrained(weights, device="cpu")
    good = np.full((8, 8, 3), 255, np.uint8)
    with pytest.raises(ImageError, match="divide 0-255 values by 255"):
        pipe.colorize(good, arr.astype(np.float32))
    with pytest.raises(ImageError, match="divide 0-255 values by 255"):
        pipe.colorize(arr, good)
    # values in [0, 1] (with a rounding error's slack) are taken as they are
    assert load_image(np.full((2, 2), 1.0004)).max() == 255 and load_image(np.full((2, 2), -0.0004)).max() == 0


def test_two_writers_of_one_output_leave_one_valid_picture(pair: tuple[Path, Path], tmp_path: Path, weights: Path) -> None:
    """Started together: each either writes the picture or, while the other holds the output's
    lock, fails at once with one line; never a corrupt picture or a temporary file left."""
    sketch, ref = pair
    out_dir = tmp_path / "shared"
    out = out_dir / "o.png"
    cmd = [sys.executable, "-m", "sketchcolor.cli", "colorize", "--sketch", str(sketch), "--reference", str(ref),
           "-o", str(out), "--weights", str(weights), "--device", "cpu", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes and set(codes) <= {0, 2}, results
    for code, (_, err) in zip(codes, results):
        if code == 2:
            assert err.strip() == f"error: {out}: another sketchcolor process is writing this output; wait for it or choose another -o"
    assert [p.name for p in out_dir.iterdir()] == ["o.png"]  # no temporary file left
    with Image.open(out) as im:
        im.load()
        assert im.size == (24, 20) and im.format == "PNG"


@pytest.mark.parametrize("folder_run", [False, True], ids=["file", "folder"])
def test_a_second_writer_of_a_locked_output_fails_at_once(pair: tuple[Path, Path], tmp_path: Path, weights: Path,
                                                          folder_run: bool, capsys: pytest.CaptureFixture[str]) -> None:
    from sketchcolor.outputs import output_lock

    sketch, ref = pair
    src = sketch.parent if folder_run else sketch
    out = tmp_path / ("out" if folder_run else "o.png")
    with output_lock([out]):  # another process's lock: a flock on its own open file
        code = main(["colorize", "--sketch", str(src), "--reference", str(ref), "-o", str(out), "--weights", str(weights),
                     "--device", "cpu", "-q"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {out}: another sketchcolor process is writing this output; wait for it or choose another -o")
    assert not out.exists()
    # released: the same command now writes
    assert main(["colorize", "--sketch", str(src), "--reference", str(ref), "-o", str(out), "--weights", str(weights),
                 "--device", "cpu", "-q"]) in (0, 1)
    assert out.exists()


def test_interleaved_writers_of_one_path_do_not_share_a_temporary_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer B saves the whole picture while writer A is between writing its temporary file and
    renaming it: with one shared temporary name B would move A's file away and A would fail."""
    out = tmp_path / "o.png"
    first, second = np.zeros((4, 6, 3), np.uint8), np.full((4, 6, 3), 200, np.uint8)
    real_save = Image.Image.save
    calls: list[str] = []

    def save(self: Image.Image, fp, *args, **kwargs) -> None:
        real_save(self, fp, *args, **kwargs)
        calls.append(Path(fp).name)
        if len(calls) == 1:  # A's temporary file is complete, not yet renamed: B writes now
            save_image(second, out)

    monkeypatch.setattr(Image.Image, "save", save)
    save_image(first, out)
    assert len(set(calls)) == 2  # two temporary names
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]
    assert np.array_equal(load_image(out), first)  # A renamed last
