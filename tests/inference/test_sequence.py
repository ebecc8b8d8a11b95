"""Issue 13: folders of frames colorized in batches with the references encoded once, several
references, resumable runs, --chain, and the color book (its effect, its JSON)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sketchcolor.inference.sequence as sequence_mod
from sketchcolor.cli import main
from sketchcolor.data.io import load_image, to_gray
from sketchcolor.data.motion import color_spread, make_sequence, tracked_colors
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.color_book import ColorBook
from sketchcolor.inference.pipeline import ColorizePipeline
from sketchcolor.inference.render import outside_labels, segment_regions
from sketchcolor.models import Colorizer
from sketchcolor.models.generator import concat_features
from sketchcolor.models.serialization import save_artifact
from sketchcolor.outputs import plan_folder

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "weights" / "default"
TESTSET = ROOT / "examples" / "testset"


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, small_config) -> Path:
    """A seeded, untrained tiny Colorizer (with the color path) saved as an inference artifact."""
    cfg = small_config("model.color_path=true")
    torch.manual_seed(0)
    return save_artifact(tmp_path_factory.mktemp("artifact") / "model", Colorizer(cfg.model).eval(), cfg)


def _frames(folder: Path, n: int) -> Path:
    """``n`` small line drawings ``f1.png`` .. ``fn.png`` (a box moving right)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        a = np.full((24, 24), 255, np.uint8)
        a[4:20, 3 + i] = a[4:20, 14 + i] = 0
        a[4, 3 + i:15 + i] = a[19, 3 + i:15 + i] = 0
        Image.fromarray(a).save(folder / f"f{i}.png")
    return folder


def _ref(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


# --- the model: cached reference features, several references --------------------------------


@pytest.mark.parametrize("color_path", [False, True])
def test_cached_reference_features_give_the_same_output(tiny_model_cfg, color_path: bool) -> None:
    torch.manual_seed(0)
    g = Colorizer(dataclasses.replace(tiny_model_cfg, color_path=color_path)).eval()
    sketch, ref = _rand(3, 1, 32, 32, seed=1), _rand(1, 3, 32, 32, seed=2)
    with torch.no_grad():
        plain = g(sketch, ref.expand(3, -1, -1, -1))
        cached = g.encode_reference(ref)  # batch 1, broadcast to the 3 sketches
        again = g(sketch, cached=cached)
        same_batch = g(sketch, cached=g.encode_reference(ref.expand(3, -1, -1, -1)))
        one = g(sketch[:1], ref)
    assert torch.equal(same_batch.image, plain.image)  # bit for bit
    assert torch.allclose(again.image, plain.image, atol=1e-6, rtol=0)
    assert torch.allclose(again.attention, plain.attention, atol=1e-6, rtol=0)
    assert torch.equal(g(sketch[:1], cached=cached).image, one.image)
    if color_path:
        assert torch.allclose(again.warped_colors, plain.warped_colors, atol=1e-6, rtol=0)


def test_two_references_give_attention_over_both(tiny_model_cfg) -> None:
    torch.manual_seed(0)
    g = Colorizer(dataclasses.replace(tiny_model_cfg, color_path=True)).eval()
    sketch = _rand(2, 1, 32, 32, seed=1)
    r1, r2 = _rand(1, 3, 32, 32, seed=2), _rand(1, 3, 32, 32, seed=3)
    with torch.no_grad():
        both = g.encode_reference([r1, r2])
        out = g(sketch, cached=both)
        direct = g(sketch, [r1.expand(2, -1, -1, -1), r2.expand(2, -1, -1, -1)])
        joined = g(sketch, cached=concat_features([g.encode_reference(r1), g.encode_reference(r2)]))
    hw = (32 // tiny_model_cfg.feature_stride) ** 2
    assert both.cell_counts == (hw, hw) and both.count == 2
    assert out.attention.shape == (2, hw, 2 * hw)
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, hw), atol=1e-5)
    first, second = out.attention[..., :hw].sum(-1), out.attention[..., hw:].sum(-1)
    assert first.min() > 0.05 and second.min() > 0.05  # every sketch cell looks at both references
    assert torch.allclose(direct.image, out.image, atol=1e-6) and torch.equal(joined.image, out.image)
    with torch.no_grad():
        alone = g(sketch, cached=g.encode_reference(r1))
    assert not torch.allclose(alone.image, out.image, atol=1e-4)  # the second reference counts


def test_pipeline_batches_match_one_at_a_time(weights: Path, tmp_path: Path) -> None:
    pipe = ColorizePipeline.from_pretrained(weights, device="cpu")
    folder = _frames(tmp_path / "frames", 3)
    ref = _ref(tmp_path / "ref.png", 0)
    refs = pipe.encode_references(ref)
    batched = pipe.colorize_frames([pipe.load_frame(p) for p in sorted(folder.iterdir())], refs)
    for p, got in zip(sorted(folder.iterdir()), batched):
        want = pipe.colorize(p, ref)
        assert np.abs(got.prediction.astype(int) - want.prediction.astype(int)).max() <= 1
        assert got.image.shape == want.image.shape


# --- the CLI: folders, several references, resume, chain --------------------------------------


def _run(*args: str, weights: Path) -> int:
    return main(["colorize", *args, "--weights", str(weights), "-q"])


def test_folder_with_two_references_and_batches(weights: Path, tmp_path: Path, capsys) -> None:
    frames = _frames(tmp_path / "frames", 5)
    r1, r2 = _ref(tmp_path / "r1.png", 1), _ref(tmp_path / "r2.png", 2)
    out = tmp_path / "out"
    assert _run("--sketch", str(frames), "--reference", str(r1), str(r2), "-o", str(out), "--batch-size", "2",
                weights=weights) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"f{i}.png" for i in range(1, 6)]
    assert capsys.readouterr().out.splitlines()[-1] == f"colorized 5 of 5 sketches into {out}"


def test_interrupted_and_restarted_run_writes_each_frame_once(weights: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    frames = _frames(tmp_path / "frames", 7)
    ref = _ref(tmp_path / "ref.png", 0)
    out, layers = tmp_path / "out", tmp_path / "layers"
    writes: list[Path] = []
    stop_after = [7]
    real_save = sequence_mod.save_image

    def counting_save(img, path):
        if len(writes) == stop_after[0]:  # killed mid-run: after frame 3's picture and frame 4's layer
            raise KeyboardInterrupt
        real_save(img, path)
        writes.append(Path(path))

    monkeypatch.setattr(sequence_mod, "save_image", counting_save)
    args = ["--sketch", str(frames), "--reference", str(ref), "-o", str(out), "--color-layer", str(layers),
            "--batch-size", "3"]
    assert _run(*args, weights=weights) == 130
    assert len(list(out.iterdir())) == 3 and len(list(layers.iterdir())) == 4  # frame 4: its layer only
    first = list(writes)
    writes.clear()
    stop_after[0] = -1
    assert _run(*args, "--resume", weights=weights) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"colorized 4 of 7 sketches into {out} (3 already done)"
    # every frame's picture written exactly once over the two runs; only the unfinished frame's
    # layer was written again
    pictures = [p.name for p in first + writes if p.parent == out]
    assert sorted(pictures) == [f"f{i}.png" for i in range(1, 8)]
    assert sorted(p.name for p in writes if p.parent == layers) == [f"f{i}.png" for i in range(4, 8)]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in layers.iterdir()) == \
        [f"f{i}.png" for i in range(1, 8)]
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary file left
    writes.clear()
    assert _run(*args, "--resume", weights=weights) == 0 and writes == []  # all done: nothing written


def test_resume_refuses_an_unreadable_output(weights: Path, tmp_path: Path, capsys) -> None:
    frames = _frames(tmp_path / "frames", 2)
    ref = _ref(tmp_path / "ref.png", 0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f1.png").write_bytes(b"not a picture")
    assert _run("--sketch", str(frames), "--reference", str(ref), "-o", str(out), "--resume", weights=weights) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "not replaced without --overwrite" in err
    assert (out / "f1.png").read_bytes() == b"not a picture" and (out / "f2.png").is_file()


def test_plan_folder_resume_marks_existing_outputs_done(tmp_path: Path) -> None:
    frames = _frames(tmp_path / "frames", 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f2.png").write_bytes(b"x")
    files = sorted(frames.iterdir())
    plain = plan_folder(frames, files, [tmp_path / "r.png"], str(out), None, False)
    assert len(plain.refused) == 1 and not plain.done
    resumed = plan_folder(frames, files, [tmp_path / "r.png"], str(out), None, False, resume=True)
    assert [t.output.name for t in resumed.done] == ["f2.png"] and not resumed.refused
    assert [t.output.name for t in resumed.targets] == ["f1.png", "f3.png"]


def test_chain_uses_the_previous_frame(weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _frames(tmp_path / "frames", 3)
    ref = _ref(tmp_path / "ref.png", 0)
    counts: list[int] = []
    real = ColorizePipeline.colorize_frames

    def spy(self, frames_, references, **kw):
        counts.append(len(references))
        return real(self, frames_, references, **kw)

    monkeypatch.setattr(ColorizePipeline, "colorize_frames", spy)
    assert _run("--sketch", str(frames), "--reference", str(ref), "-o", str(tmp_path / "out"), "--chain",
                weights=weights) == 0
    assert counts == [1, 2, 2]  # frame 1: the reference; frames 2, 3: the reference + the frame before
    assert len(list((tmp_path / "out").iterdir())) == 3


@pytest.mark.parametrize("flag", ["--chain", "--resume"])
def test_chain_and_resume_need_a_folder(weights: Path, tmp_path: Path, flag: str, capsys) -> None:
    sketch = _frames(tmp_path / "frames", 1) / "f1.png"
    ref = _ref(tmp_path / "ref.png", 0)
    assert _run("--sketch", str(sketch), "--reference", str(ref), "-o", str(tmp_path / "o.png"), flag,
                weights=weights) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "are for a folder of frames" in err[0]


def test_natural_frame_order() -> None:
    names = [Path(n) for n in ["f10.png", "f2.png", "F1.png", "f1b.png"]]
    assert [p.name for p in sorted(names, key=sequence_mod.natural_key)] == ["F1.png", "f1b.png", "f2.png", "f10.png"]


# --- the color book ----------------------------------------------------------------------------


def _jittered_sequence(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Flat paints of two regions (a red square on a blue one) whose colors wobble a little from
    frame to frame, as the network's do; and their masks ``[T, 2, H, W]``."""
    rng = np.random.default_rng(seed)
    paints, masks = [], []
    for t in range(n):
        paint = np.zeros((40, 40, 3), np.uint8)
        inner = np.zeros((40, 40), bool)
        inner[10 + t % 3:25 + t % 3, 12:27] = True
        paint[~inner] = np.clip(np.array([40, 60, 200]) + rng.integers(-6, 7, 3), 0, 255)
        paint[inner] = np.clip(np.array([200, 40, 40]) + rng.integers(-6, 7, 3), 0, 255)
        paints.append(paint)
        masks.append(np.stack([~inner, inner]))
    return paints, np.stack(masks)


def test_color_book_snaps_wobbling_regions() -> None:
    paints, masks = _jittered_sequence(8)
    book = ColorBook(np.array([[50.0, 0, 0], [100.0, 0, 0]]), ["sha256:x"], learn_frames=2)
    alpha = np.full((40, 40), 255, np.uint8)
    snapped = [book.apply(p, alpha) for p in paints]
    before = color_spread(tracked_colors(paints, masks))
    after = color_spread(tracked_colors(snapped, masks))
    assert (after < 0.5 * before).all() and after.max() < 1.0, (before, after)
    assert len(book.swatches) == 2


def test_color_book_keeps_a_tracked_region_through_a_color_flip() -> None:
    """A region that stays in place but flips far in color (an eye the network paints white, then
    yellow) keeps its swatch, even when it flips to a color the book already holds (the blue
    around it); a new part drawn over a larger old region starts its own."""
    paints, _ = _jittered_sequence(4)
    book = ColorBook(np.array([[50.0, 0, 0], [100.0, 0, 0]]), ["sha256:x"], learn_frames=2)
    alpha = np.full((40, 40), 255, np.uint8)
    for p in paints[:3]:
        book.apply(p, alpha)
    red = book.swatches[1].lab.copy()
    yellow, blue = paints[3].copy(), paints[3].copy()
    inner = np.all(paints[3] == paints[3][17, 19], axis=-1)
    yellow[inner] = (230, 200, 40)  # 60+ ΔE from the red, far from every swatch
    out = book.apply(yellow, alpha)
    assert np.array_equal(out[inner][0], _rgb_of(red)) and len(book.swatches) == 2
    # 3 ΔE off the blue around it (the exact blue would merge the two regions: flat_regions)
    blue[inner] = blue[0, 0]
    blue[inner] = np.clip(blue[inner].astype(int) + 3, 0, 255)
    out = book.apply(blue, alpha)
    assert np.array_equal(out[inner][0], _rgb_of(red)) and len(book.swatches) == 2
    book.apply(paints[3], alpha)
    small = paints[3].copy()
    small[14:20, 16:22] = (230, 200, 40)  # a new yellow part inside the red square
    book.apply(small, alpha)
    assert len(book.swatches) == 3
    # a flip while the swatch is still learning teaches it nothing
    learning = ColorBook(np.array([[50.0, 0, 0], [100.0, 0, 0]]), ["sha256:x"], learn_frames=3)
    for p in paints[:2]:
        learning.apply(p, alpha)
    before = learning.swatches[1].lab.copy()
    flipped = paints[2].copy()
    flipped[np.all(paints[2] == paints[2][17, 19], axis=-1)] = (230, 200, 40)
    learning.apply(flipped, alpha)
    assert np.allclose(learning.swatches[1].lab, before) and learning.swatches[1].frames == 2


def _rgb_of(lab: np.ndarray) -> np.ndarray:
    from sketchcolor.inference.color_book import _to_rgb

    return _to_rgb(lab[None])[0]


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").is_file(), reason="no shipped weights")
def test_color_book_shrinks_the_spread_on_a_synthetic_sequence() -> None:
    torch.set_num_threads(1)
    pipe = ColorizePipeline.from_pretrained(SHIPPED, device="cpu")
    line = to_gray(load_image(TESTSET / "1F31D_line.png"))
    color = load_image(TESTSET / "1F31D_color.png")
    labels = segment_regions(line)
    area = np.bincount(labels.ravel())
    regions = [r for r in range(1, len(area)) if r not in set(outside_labels(labels).tolist()) and area[r] > 200]
    seq = make_sequence(line, labels, regions, 6, seed=0)
    refs = pipe.encode_references(color)
    frames = [pipe.load_frame(f) for f in seq.frames]
    plain = pipe.colorize_frames(frames, refs)
    booked = pipe.colorize_frames(frames, refs, book=ColorBook.from_references(refs.images))
    without = color_spread(tracked_colors([r.color_layer[..., :3] for r in plain], seq.masks))
    with_book = color_spread(tracked_colors([r.color_layer[..., :3] for r in booked], seq.masks))
    assert np.nanmean(with_book) < 0.5 * np.nanmean(without), (without, with_book)


def test_color_book_json_round_trips(tmp_path: Path) -> None:
    paints, _ = _jittered_sequence(6)
    alpha = np.full((40, 40), 255, np.uint8)
    book = ColorBook(np.array([[50.0, 0, 0], [60.0, 10, -5], [100.0, 0, 0]]), ["sha256:ab", "sha256:cd"])
    for p in paints[:3]:
        book.apply(p, alpha)
    path = book.save(tmp_path / "book.json")
    loaded = ColorBook.load(path)
    assert loaded.to_dict() == book.to_dict()
    assert json.loads(path.read_text())["version"] == 1
    # a book reloaded in a second sitting paints later frames as the first sitting would
    for p in paints[3:]:
        assert np.array_equal(loaded.apply(p, alpha), book.apply(p, alpha))


GOOD = {"format": "sketchcolor-color-book", "version": 1, "references": ["sha256:ab"],
        "palette": [[50.0, 0.0, 0.0]], "swatches": [{"entry": 0, "lab": [50.0, 1.0, 2.0], "weight": 10.0, "frames": 1}]}


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ("[1, 2]", "the file must hold a JSON object"),
    (json.dumps({**GOOD, "format": "other"}), '"format" must be'),
    (json.dumps({**GOOD, "version": 99}), "version 99 is not supported"),
    (json.dumps({**GOOD, "references": []}), '"references" must be'),
    (json.dumps({**GOOD, "palette": [[50, 0]]}), "palette[0] must be a list of 3 numbers"),
    (json.dumps({**GOOD, "palette": [[150, 0, 0]]}), "is not a Lab color"),
    (json.dumps({**GOOD, "swatches": [{"entry": 5, "lab": [1, 2, 3], "weight": 1, "frames": 1}]}), "swatches[0].entry"),
    (json.dumps({**GOOD, "swatches": [{"entry": 0, "lab": [1, 2, 3], "weight": -1, "frames": 1}]}), "weight must be positive"),
    (json.dumps({**GOOD, "settings": {"radius": "big"}}), "settings.radius must be a finite number"),
    (json.dumps({**GOOD, "settings": {"strength": 2}}), "must lie in [0, 1]"),
    (json.dumps({**GOOD, "extra": 1}), "unknown key 'extra'"),
    ('{"format": "sketchcolor-color-book", "version": 1, "references": ["sha256:a"], "palette": [[NaN, 0, 0]], "swatches": []}',
     "must be a finite number"),
])
def test_bad_color_book_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "book.json"
    path.write_text(text)
    with pytest.raises(SketchColorError) as e:
        ColorBook.load(path)
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"{path}: ") and message in line, line


def test_good_book_json_loads(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    path.write_text(json.dumps(GOOD))
    book = ColorBook.load(path)
    assert len(book.swatches) == 1 and np.allclose(book.swatches[0].lab, [50.0, 1.0, 2.0])


def test_cli_color_book_made_reused_and_checked(weights: Path, tmp_path: Path, capsys) -> None:
    frames = _frames(tmp_path / "frames", 3)
    r1, r2 = _ref(tmp_path / "r1.png", 1), _ref(tmp_path / "r2.png", 2)
    book = tmp_path / "book.json"
    assert _run("--sketch", str(frames), "--reference", str(r1), "-o", str(tmp_path / "a"), "--color-book", str(book),
                weights=weights) == 0
    first = ColorBook.load(book)
    assert first.frames == 3
    # a second sitting with the same reference continues the book
    assert _run("--sketch", str(frames), "--reference", str(r1), "-o", str(tmp_path / "b"), "--color-book", str(book),
                weights=weights) == 0
    assert ColorBook.load(book).frames == 6
    capsys.readouterr()
    # another reference: refused in one line, nothing written
    assert _run("--sketch", str(frames), "--reference", str(r2), "-o", str(tmp_path / "c"), "--color-book", str(book),
                weights=weights) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made for other references" in err[0] and not (tmp_path / "c").exists()
    # a broken book: one line
    book.write_text("{")
    assert _run("--sketch", str(frames), "--reference", str(r1), "-o", str(tmp_path / "d"), "--color-book", str(book),
                weights=weights) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {book}: not a valid color book")
    # the book is never one of the inputs
    assert _run("--sketch", str(frames), "--reference", str(r1), "-o", str(tmp_path / "e"), "--color-book", str(r1),
                weights=weights) == 2
    assert "the output must be a .json file" in capsys.readouterr().err
