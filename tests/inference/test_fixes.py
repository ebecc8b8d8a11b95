"""A user's fixes: JSON round trip, one-line errors for bad files, and their effect in the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchcolor import ColorizePipeline, Config
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.fixes import Fixes, Hint, Recolor
from sketchcolor.models import Colorizer
from sketchcolor.models.serialization import save_artifact


@pytest.fixture
def pipe(tmp_path: Path, tiny_model_cfg) -> ColorizePipeline:
    torch.manual_seed(0)
    return ColorizePipeline.from_pretrained(
        save_artifact(tmp_path / "model", Colorizer(tiny_model_cfg), Config(model=tiny_model_cfg)), device="cpu")


def _drawing() -> tuple[np.ndarray, np.ndarray]:
    """A 60 x 90 drawing of two boxes and a 50 x 50 reference of four colored quarters."""
    sketch = np.full((60, 90), 255, np.uint8)
    sketch[10:50, 10] = sketch[10:50, 40] = sketch[10, 10:41] = sketch[49, 10:41] = 0
    sketch[10:50, 50] = sketch[10:50, 80] = sketch[10, 50:81] = sketch[49, 50:81] = 0
    ref = np.zeros((50, 50, 3), np.uint8)
    ref[:25, :25], ref[:25, 25:], ref[25:, :25], ref[25:, 25:] = (220, 30, 30), (30, 200, 40), (30, 40, 210), (230, 220, 20)
    return sketch, ref


def test_json_round_trip(tmp_path: Path) -> None:
    fixes = Fixes(hints=[Hint((0.1, 0.2), (0.3, 0.4), 2.5, 0)], recolors=[Recolor((0.5, 0.5), (1, 2, 3))])
    fixes.save(tmp_path / "f.json")
    assert Fixes.load(tmp_path / "f.json") == fixes


@pytest.mark.parametrize("doc, message", [
    ({"format": "other"}, "not a sketchcolor fixes file"),
    ({"format": "sketchcolor-fixes", "version": 9}, "version 9 is not supported"),
    ({"format": "sketchcolor-fixes", "version": 1, "hints": {}}, "must be lists"),
    ({"format": "sketchcolor-fixes", "version": 1, "hints": [{"sketch": [0.5], "reference": [0, 0]}]}, "hints[0].sketch"),
    ({"format": "sketchcolor-fixes", "version": 1, "hints": [{"sketch": [0.5, 2], "reference": [0, 0]}]}, "in [0, 1]"),
    ({"format": "sketchcolor-fixes", "version": 1,
      "hints": [{"sketch": [0.5, 0.5], "reference": [0, 0], "strength": 1e9}]}, "strength must lie in"),
    ({"format": "sketchcolor-fixes", "version": 1,
      "hints": [{"sketch": [0.5, 0.5], "reference": [0, 0], "strength": float("nan")}]}, "finite number"),
    ({"format": "sketchcolor-fixes", "version": 1, "recolors": [{"point": [0, 0], "color": [0, 0, 256]}]}, "recolors[0].color"),
    ({"format": "sketchcolor-fixes", "version": 1, "recolors": [{"point": [0, 0], "color": "red"}]}, "0-255"),
    ({"format": "sketchcolor-fixes", "version": 1, "recolors": [7]}, "must be an object"),
])
def test_bad_documents_are_one_line(tmp_path: Path, doc: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SketchColorError) as e:
        Fixes.load(path)
    assert message in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_bytes(b"\xff\xfe{")
    for path, message in ((tmp_path / "missing.json", "no such fixes file"), (tmp_path / "junk.json", "not a valid fixes file: not UTF-8 text")):
        with pytest.raises(SketchColorError, match=message):
            Fixes.load(path)


def test_recolor_paints_the_region_under_the_point(pipe: ColorizePipeline) -> None:
    sketch, ref = _drawing()
    plain = pipe.colorize(sketch, ref)
    fixed = pipe.colorize(sketch, ref, fixes=Fixes(recolors=[Recolor((25 / 89, 30 / 59), (10, 200, 250))]))
    inside = fixed.regions.labels == fixed.regions.labels[30, 25]
    assert np.all(fixed.color_layer[inside][:, :3] == (10, 200, 250)) and np.all(fixed.color_layer[inside][:, 3] == 255)
    # the other box and the paper are as they were
    other = plain.regions.labels == plain.regions.labels[30, 65]
    assert np.array_equal(plain.image[other], fixed.image[other])
    assert np.array_equal(plain.image[~inside], fixed.image[~inside])


def test_hints_change_the_result_and_zero_strength_does_not(pipe: ColorizePipeline) -> None:
    sketch, ref = _drawing()
    plain = pipe.colorize(sketch, ref, fill="none")
    zero = pipe.colorize(sketch, ref, fill="none", fixes=Fixes(hints=[Hint((0.3, 0.5), (0.9, 0.9), 0.0)]))
    strong = pipe.colorize(sketch, ref, fill="none", fixes=Fixes(hints=[Hint((0.3, 0.5), (0.9, 0.9), 1.5)]))
    assert np.array_equal(plain.image, zero.image) and np.array_equal(plain.attention, zero.attention)
    # the untrained tiny model hardly uses the reference, so look at the attention itself: the
    # drawing cell under the hint (column 2 of 8; row 3 of the letterboxed square) now draws on the
    # reference cell under its point
    row = 3 * 8 + 2
    assert int(strong.attention[row].argmax()) == 7 * 8 + 7 != int(plain.attention[row].argmax())


def test_recolors_need_regions_and_hints_need_torch(pipe: ColorizePipeline) -> None:
    sketch, ref = _drawing()
    with pytest.raises(SketchColorError, match="regions"):
        pipe.colorize(sketch, ref, fill="guided", fixes=Fixes(recolors=[Recolor((0.5, 0.5), (0, 0, 0))]))


def test_cli_applies_a_fixes_file(tmp_path: Path, pipe: ColorizePipeline, capsys) -> None:
    from PIL import Image

    from sketchcolor.cli import main

    sketch, ref = _drawing()
    Image.fromarray(sketch).save(tmp_path / "s.png")
    Image.fromarray(ref).save(tmp_path / "r.png")
    Fixes(recolors=[Recolor((25 / 89, 30 / 59), (10, 200, 250))]).save(tmp_path / "fixes.json")
    weights = tmp_path / "model"
    args = ["colorize", "--sketch", str(tmp_path / "s.png"), "--reference", str(tmp_path / "r.png"),
            "--weights", str(weights), "-q"]
    assert main(args + ["-o", str(tmp_path / "o.png"), "--fixes", str(tmp_path / "fixes.json")]) == 0
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert tuple(out[30, 25]) == (10, 200, 250)
    (tmp_path / "bad.json").write_text("{}")
    assert main(args + ["-o", str(tmp_path / "o2.png"), "--fixes", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not a sketchcolor fixes file" in capsys.readouterr().err
    assert not (tmp_path / "o2.png").exists()


@pytest.mark.parametrize("text, message", [
    # an integer too large for a float: JSON allows it, math.isfinite overflows on it
    ('{"format": "sketchcolor-fixes", "version": 1, "hints": [{"sketch": [0.5, 0.5], "reference": [0, 0], '
     '"strength": 1' + "0" * 400 + '}]}', "strength must be a finite number"),
    ('{"format": "sketchcolor-fixes", "version": 1, "recolors": [{"point": [1' + "0" * 400 + ', 0], '
     '"color": [0, 0, 0]}]}', "recolors[0].point must be a finite number"),
    # more digits than Python converts to an int: a ValueError that is not a JSONDecodeError
    ('{"format": "sketchcolor-fixes", "version": ' + "1" * 5000 + "}", "not a valid fixes file: not JSON"),
    ('{"format": "sketchcolor-fixes", "version": true}', "version True is not supported"),
])
def test_numbers_json_allows_but_python_does_not_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "big.json"
    path.write_text(text)
    with pytest.raises(SketchColorError) as e:
        Fixes.load(path)
    assert message in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 400


def test_cli_says_one_line_for_a_fixes_file_with_huge_numbers(tmp_path: Path, pipe: ColorizePipeline, capsys) -> None:
    from PIL import Image

    from sketchcolor.cli import main

    sketch, ref = _drawing()
    Image.fromarray(sketch).save(tmp_path / "s.png")
    Image.fromarray(ref).save(tmp_path / "r.png")
    (tmp_path / "huge.json").write_text('{"format": "sketchcolor-fixes", "version": 1, "hints": '
                                        '[{"sketch": [0.5, 0.5], "reference": [0, 0], "strength": 1' + "0" * 400 + "}]}")
    assert main(["colorize", "--sketch", str(tmp_path / "s.png"), "--reference", str(tmp_path / "r.png"),
                 "--weights", str(tmp_path / "model"), "-q", "-o", str(tmp_path / "o.png"),
                 "--fixes", str(tmp_path / "huge.json")]) == 2
    err = capsys.readouterr().err
    assert "huge.json: hints[0].strength must be a finite number" in err and len(err.splitlines()) == 1


def test_cli_refuses_a_hint_on_a_reference_not_given(tmp_path: Path, pipe: ColorizePipeline, capsys) -> None:
    from PIL import Image

    from sketchcolor.cli import main

    sketch, ref = _drawing()
    Image.fromarray(sketch).save(tmp_path / "s.png")
    Image.fromarray(ref).save(tmp_path / "r.png")
    Fixes(hints=[Hint((0.5, 0.5), (0.5, 0.5), 1.5, reference_index=1)]).save(tmp_path / "fixes.json")
    assert main(["colorize", "--sketch", str(tmp_path / "s.png"), "--reference", str(tmp_path / "r.png"),
                 "--weights", str(tmp_path / "model"), "-q", "-o", str(tmp_path / "o.png"),
                 "--fixes", str(tmp_path / "fixes.json")]) == 2
    assert "a hint names reference 1 (counting from 0), but 1 --reference given" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
