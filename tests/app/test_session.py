"""The web app's callbacks as plain functions (sketchcolor.app.session), on the tiny test model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketchcolor import ColorizePipeline, Config
from sketchcolor.app.session import Options, Session, parse_color, to_point
from sketchcolor.errors import SketchColorError
from sketchcolor.models import Colorizer
from sketchcolor.models.serialization import save_artifact


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> ColorizePipeline:
    from sketchcolor.config import ModelConfig

    cfg = ModelConfig(image_size=32, encoder_channels=(4, 4, 8, 8, 16, 16), downsample_layers=(3, 5),
                      attention_dim=16, bottleneck_channels=16, num_res_blocks=1, disc_channels=8, disc_layers=2)
    torch.manual_seed(0)
    folder = save_artifact(tmp_path_factory.mktemp("app") / "model", Colorizer(cfg), Config(model=cfg))
    return ColorizePipeline.from_pretrained(folder, device="cpu")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A 60 x 90 drawing of two boxes, a 50 x 40 four-color reference, and a corrupt PNG."""
    sketch = np.full((60, 90), 255, np.uint8)
    for x0 in (10, 50):
        sketch[10:50, x0] = sketch[10:50, x0 + 30] = sketch[10, x0:x0 + 31] = sketch[49, x0:x0 + 31] = 0
    ref = np.zeros((50, 40, 3), np.uint8)
    ref[:25, :20], ref[:25, 20:], ref[25:, :20], ref[25:, 20:] = (220, 30, 30), (30, 200, 40), (30, 40, 210), (230, 220, 20)
    Image.fromarray(sketch).save(tmp_path / "drawing.png")
    Image.fromarray(ref).save(tmp_path / "reference.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return tmp_path / "drawing.png", tmp_path / "reference.png", tmp_path / "corrupt.png"


@pytest.fixture
def session(pipe: ColorizePipeline, files, tmp_path: Path) -> Session:
    s = Session(pipe, tmp_path / "session")
    s.set_sketch(files[0])
    s.set_reference(files[1])
    return s


def test_points_and_colors() -> None:
    assert to_point(0, 0, (10, 20)) == (0.025, 0.05)
    assert to_point(1e9, -5, (10, 20)) == (1.0, 0.0)
    assert parse_color("#0a0B0c") == (10, 11, 12) and parse_color("#fff") == (255, 255, 255)
    assert parse_color("rgba(1, 2, 3, 0.5)") == (1, 2, 3)
    with pytest.raises(SketchColorError, match="not a color"):
        parse_color("banana")


def test_colorize_gives_the_drawing_size_and_marks_regions(session: Session) -> None:
    view = session.colorize()
    assert view.result.shape == (60, 90, 3) and view.confidence.shape == (60, 90, 3)
    assert view.elapsed is not None and "colorized in" in view.message
    assert session.confidence is not None and session.confidence.shape[0] == session.result.regions.labels.max() + 1


def test_actions_before_inputs_say_what_is_missing(pipe: ColorizePipeline, files, tmp_path: Path) -> None:
    s = Session(pipe, tmp_path / "s")
    with pytest.raises(SketchColorError, match="drawing first"):
        s.colorize()
    s.set_sketch(files[0])
    with pytest.raises(SketchColorError, match="reference first"):
        s.colorize()
    s.set_reference(files[1])
    with pytest.raises(SketchColorError, match="colorize first"):
        s.click_result(5, 5, "inspect")


def test_a_corrupt_upload_is_one_line_and_clears_the_picture(session: Session, files) -> None:
    session.colorize()
    with pytest.raises(SketchColorError) as e:
        session.set_sketch(files[2], name="corrupt.png")
    assert "corrupt.png" in str(e.value) and "\n" not in str(e.value)
    assert session.sketch is None and session.result is None
    with pytest.raises(SketchColorError, match="drawing first"):
        session.colorize()


def test_inspect_shows_heat_maps_on_the_other_picture(session: Session) -> None:
    session.colorize()
    view = session.click_result(20, 30, "inspect")
    assert view.heat.shape == (50, 40, 3) and "confidence" in view.message
    view = session.click_reference(5, 5, "inspect")
    assert view.heat.shape == (60, 90, 3)


def test_hint_then_undo(session: Session) -> None:
    plain = session.colorize()
    attention = session.result.attention.copy()
    assert "now click" in session.click_result(25, 30, "hint").message
    view = session.click_reference(35, 45, "hint", strength=1.5)
    assert len(session.fixes.hints) == 1 and session.pending is None and view.result is not None
    assert not np.array_equal(attention, session.result.attention)
    assert session.fixes_table()[0][0] == "hint"
    view = session.undo()
    assert len(session.fixes) == 0 and np.array_equal(view.result, plain.result)
    assert np.array_equal(session.result.attention, attention)
    assert session.undo().message == "no fix to undo"


def test_reference_click_without_a_drawing_point_asks_for_one(session: Session) -> None:
    session.colorize()
    assert "click the drawing first" in session.click_reference(3, 3, "hint").message


def test_recolor_with_a_color_picked_from_the_reference(session: Session) -> None:
    session.colorize()
    picked = session.click_reference(30, 40, "recolor").color  # the bottom-right quarter: yellow
    assert picked == "#e6dc14"
    view = session.click_result(25, 30, "recolor", picked)
    assert tuple(view.result[30, 25]) == (230, 220, 20)
    assert tuple(session.result.color_layer[30, 25]) == (230, 220, 20, 255)
    session.click_result(65, 30, "recolor", "#102030")
    assert [row[0] for row in session.fixes_table()] == ["recolor", "recolor"]
    view = session.undo()
    assert tuple(view.result[30, 25]) == (230, 220, 20) and tuple(view.result[30, 65]) != (16, 32, 48)


def test_fixes_saved_with_the_result_apply_to_the_next_drawing(session: Session, pipe: ColorizePipeline,
                                                             files, tmp_path: Path) -> None:
    session.colorize()
    session.click_result(25, 30, "recolor", "#10c0f0")
    result, layer, fixes = session.save_outputs()
    assert np.asarray(Image.open(result)).shape == (60, 90, 3)
    assert np.asarray(Image.open(layer)).shape == (60, 90, 4)
    assert json.loads(fixes.read_text())["recolors"][0]["color"] == [16, 192, 240]
    # the next drawing: the same boxes drawn twice as large
    big = np.asarray(Image.open(files[0]).resize((180, 120), Image.NEAREST))
    Image.fromarray(big).save(tmp_path / "next.png")
    other = Session(pipe, tmp_path / "other")
    other.set_sketch(tmp_path / "next.png")
    other.set_reference(files[1])
    view = other.load_fixes(fixes)
    assert tuple(view.result[60, 50]) == (16, 192, 240)


def test_recolors_need_the_regions_fill(session: Session) -> None:
    session.colorize()
    session.click_result(25, 30, "recolor", "#ff0000")
    with pytest.raises(SketchColorError, match="regions"):
        session.colorize(Options(fill="guided"))


def test_extraction_settings_change_the_line_art(pipe: ColorizePipeline, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    photo = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    s = Session(pipe, tmp_path / "s")
    s.set_sketch(tmp_path / "photo.png")
    s.options = Options(extract_sketch=True, xdog={"sigma": 0.5})
    thin = s.line_art()
    s.options = Options(extract_sketch=True, xdog={"sigma": 2.5})
    assert thin.shape == (40, 40) and not np.array_equal(thin, s.line_art())
    s.options = Options(extract_sketch=True, xdog={"sigma": -1})
    with pytest.raises(SketchColorError, match="xdog_sigma"):
        s.line_art()


def test_the_page_builds(pipe: ColorizePipeline) -> None:
    pytest.importorskip("gradio", reason="the web app's extra (gradio) is not installed")
    from sketchcolor.app.ui import build, example_pairs

    root = Path(__file__).resolve().parents[2] / "examples"
    pairs = example_pairs(root)
    assert pairs and all(Path(p).is_file() for pair in pairs for p in pair)
    assert all("/testset/" not in a or a.replace("_line", "_color") != b for a, b in pairs)  # cross pairs
    page = build(pipe, pairs)
    assert page is not None


def test_uploads_over_the_pixel_limit_are_refused(pipe: ColorizePipeline, tmp_path: Path, monkeypatch) -> None:
    import sketchcolor.app.session as session_module

    monkeypatch.setattr(session_module, "MAX_PIXELS", 1000)
    Image.fromarray(np.full((40, 30), 255, np.uint8)).save(tmp_path / "big.png")
    s = Session(pipe, tmp_path / "s")
    with pytest.raises(SketchColorError, match="big.png: 30 x 40 pixels, more than the app's limit"):
        s.set_sketch(tmp_path / "big.png", name="big.png")
    assert s.sketch is None


# -- review fixes: one-line errors, state kept consistent, one pixel convention -------------------


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"just some text\n", "not a readable image")])
def test_non_images_are_one_line_and_leave_no_drawing(session: Session, tmp_path: Path, content: bytes,
                                                      message: str) -> None:
    session.colorize()
    (tmp_path / "notes.png").write_bytes(content)  # an empty file, a .txt renamed .png
    for setter in (session.set_sketch, session.set_reference):
        with pytest.raises(SketchColorError) as e:
            setter(tmp_path / "notes.png", name="notes.png")
        assert "notes.png" in str(e.value) and message in str(e.value) and "\n" not in str(e.value)
    assert session.sketch is None and session.reference is None and session.result is None


def test_a_pixel_and_its_point_are_inverse() -> None:
    from sketchcolor.inference.cells import point_pixel

    shape = (7, 13, 3)
    for y in range(7):
        for x in range(13):
            assert point_pixel(to_point(x, y, shape), shape) == (x, y)
    assert point_pixel((1.0, 1.0), shape) == (12, 6) and point_pixel((0.0, 0.0), shape) == (0, 0)


def test_the_reference_box_is_the_pipelines(session: Session, pipe: ColorizePipeline) -> None:
    from sketchcolor.data.io import letterbox

    assert session.reference_box == letterbox(session.reference, pipe.size)[1]
    assert session.reference_box == session.references().boxes[0]


def test_a_fix_that_cannot_render_is_not_kept(session: Session) -> None:
    """A recolor needs the regions fill: refused under another fill, it must not stay in the list
    (invisible on the page, yet applied, undone and saved)."""
    session.colorize(Options(fill="guided"))
    with pytest.raises(SketchColorError, match="regions"):
        session.click_result(25, 30, "recolor", "#ff0000")
    assert len(session.fixes) == 0 and session.order == [] and session.fixes_table() == []


def test_options_that_fail_are_not_kept(session: Session) -> None:
    session.colorize()
    session.click_result(25, 30, "recolor", "#ff0000")
    with pytest.raises(SketchColorError, match="regions"):
        session.colorize(Options(fill="guided"))
    assert session.options.fill == "regions"  # those of the result shown
    view = session.click_result(65, 30, "recolor", "#0000ff")  # the next fix still renders
    assert tuple(view.result[30, 65]) == (0, 0, 255) and len(session.fixes) == 2


def test_a_failed_hint_keeps_the_pending_point(session: Session, monkeypatch) -> None:
    session.colorize()
    session.click_result(25, 30, "hint")
    pending = session.pending

    def broken(*args, **kwargs):
        raise SketchColorError("the model failed")

    monkeypatch.setattr(session.pipe, "colorize_frames", broken)
    with pytest.raises(SketchColorError, match="the model failed"):
        session.click_reference(35, 45, "hint")
    assert session.fixes.hints == [] and session.order == [] and session.pending == pending


def test_bad_or_unrenderable_fixes_files_leave_the_fixes_alone(session: Session, tmp_path: Path) -> None:
    from sketchcolor.inference.fixes import Fixes, Recolor

    session.colorize()
    session.click_result(25, 30, "recolor", "#ff0000")
    before = (list(session.fixes.recolors), list(session.order))
    (tmp_path / "bad.json").write_text('{"format": "sketchcolor-fixes", "version": 1, "hints": [{"sketch": 1}]}')
    with pytest.raises(SketchColorError, match=r"bad.json: hints\[0\]"):
        session.load_fixes(tmp_path / "bad.json")
    assert (session.fixes.recolors, session.order) == before
    # a file of recolors under the guided fill: refused, and the list is the one shown before
    session.undo()
    session.colorize(Options(fill="guided"))
    Fixes(recolors=[Recolor((0.5, 0.5), (1, 2, 3))]).save(tmp_path / "recolors.json")
    with pytest.raises(SketchColorError, match="regions"):
        session.load_fixes(tmp_path / "recolors.json")
    assert len(session.fixes) == 0 and session.order == []


def _callback(page, elem_id: str, event: str):
    """The function the page runs for ``event`` on the component ``elem_id``."""
    for fn in page.fns.values():
        if any(page.blocks[t[0]].elem_id == elem_id and t[1] == event for t in fn.targets if t[0] in page.blocks):
            return fn.fn
    raise AssertionError(f"no {event} callback on #{elem_id}")


def test_page_callbacks_show_one_line_and_keep_the_table(pipe: ColorizePipeline, files, tmp_path: Path) -> None:
    """The page's callbacks (inputs -> outputs) without a browser: bad uploads and clicks outside
    the picture become one line in the message; the fixes table always shows the session's list."""
    gr = pytest.importorskip("gradio", reason="the web app's extra (gradio) is not installed")
    from sketchcolor.app.ui import _forget, build

    page = build(pipe)
    upload, colorize = _callback(page, "sketch-file", "change"), _callback(page, "colorize", "click")
    click = _callback(page, "result", "select")
    settings = (False, "regions", 0.0, False, 1.0, 1.6, 20.0, 0.0, 10.0)
    (tmp_path / "notes.png").write_text("not a picture")
    out = upload(None, str(tmp_path / "notes.png"), *settings)
    assert out[0] is None and out[1].startswith("error: notes.png") and "\n" not in out[1]
    assert out[2:8] == (None,) * 6 and isinstance(out[8], Session)
    s = upload(out[8], str(files[0]), *settings)[8]
    s.set_reference(files[1])
    shown = colorize(s, *settings)
    assert shown[0].shape == (60, 90, 3) and "colorized in" in shown[6] and shown[9] is s
    assert all(Path(p).is_file() for p in shown[3:6])  # the downloads
    outside = click(s, "recolor", "#ff0000", 1.5, gr.SelectData(None, {"index": None, "value": None}))
    assert outside[6] == "error: click inside the picture"
    # a fix that fails to render: the message says why and the table stays as it was (empty)
    s.options = Options(fill="guided")
    s.colorize()
    failed = click(s, "recolor", "#ff0000", 1.5, gr.SelectData(None, {"index": [25, 30], "value": None}))
    assert failed[6].startswith("error: recolors paint regions") and failed[8] == [] and len(s.fixes) == 0
    # a new upload clears the result and its downloads
    assert upload(s, str(files[0]), *settings)[2:8] == (None,) * 6
    _forget(s)
    assert not s.folder.exists()
