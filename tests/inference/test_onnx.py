"""ONNX (issue 13, part 4): ``sketchcolor export --format onnx`` and ``colorize --backend onnxruntime``.

The tiny recipe (configs/tiny.yaml, seeded, untrained) is exported once per module, with and
without the color path; ONNX Runtime must agree with PyTorch on random inputs at batch 1 and 3
(the batch axis is dynamic) within :data:`TOL`, and the CLI round trip must give the torch
backend's picture within :data:`PICTURE_TOL` levels.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sketchcolor.cli import main
from sketchcolor.config import load_config
from sketchcolor.data.io import load_image
from sketchcolor.inference.onnx_backend import OnnxColorizer
from sketchcolor.inference.pipeline import ColorizePipeline
from sketchcolor.models import Colorizer
from sketchcolor.models import onnx_export
from sketchcolor.models.onnx_export import CONFIG_KEY, ONNX_NAME, export_artifact
from sketchcolor.models.serialization import CONFIG_NAME, load_artifact, save_artifact

onnx = pytest.importorskip("onnx", reason="the `onnx` extra is not installed")
pytest.importorskip("onnxruntime", reason="the `onnx` extra is not installed")
pytest.importorskip("onnxscript", reason="the `onnx` extra is not installed")

# max |ONNX Runtime - PyTorch| on random inputs in [-1, 1] (float32 outputs: image in [-1, 1],
# attention rows summing to 1, warped colors in [-1, 1]); measured differences are ~1e-7.
TOL = {"image": 1e-4, "attention": 1e-5, "warped_colors": 1e-5}
PICTURE_TOL = 2  # uint8 levels: the rendered pictures of the two backends (measured: identical)


def _artifact(root: Path, tiny_recipe: Path, *overrides: str) -> Path:
    cfg = load_config(tiny_recipe, list(overrides))
    torch.manual_seed(0)
    return save_artifact(root / "model", Colorizer(cfg.model).eval(), cfg)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, tiny_recipe: Path) -> tuple[Path, Path]:
    """(artifact, exported folder holding model.onnx): the tiny recipe, exported through the CLI."""
    root = tmp_path_factory.mktemp("onnx_plain")
    artifact = _artifact(root, tiny_recipe)
    assert main(["export", "--format", "onnx", "--weights", str(artifact), "-o", str(root / "exported") + "/"]) == 0
    return artifact, root / "exported"


@pytest.fixture(scope="module")
def color(tmp_path_factory: pytest.TempPathFactory, tiny_recipe: Path) -> tuple[Path, Path]:
    """(artifact, .onnx file): the tiny recipe with the color path, exported through the API."""
    root = tmp_path_factory.mktemp("onnx_color")
    artifact = _artifact(root, tiny_recipe, "model.color_path=true")
    return artifact, export_artifact(artifact, root / "tiny_color.onnx")


def _one_error(capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(p in lines[0] for p in parts), lines[0]
    return lines[0]


@pytest.mark.parametrize("which", ["plain", "color"])
def test_onnxruntime_matches_pytorch_at_batch_1_and_3(which: str, request: pytest.FixtureRequest) -> None:
    artifact, exported = request.getfixturevalue(which)
    model, cfg, _ = load_artifact(artifact)
    session = OnnxColorizer(exported, threads=1)
    assert session.config == cfg
    names = ["image", "attention"] + (["warped_colors"] if which == "color" else [])
    assert session.outputs == names
    s = cfg.model.image_size
    gen = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        sketch = torch.rand(batch, 1, s, s, generator=gen) * 2 - 1
        reference = torch.rand(batch, 3, s, s, generator=gen) * 2 - 1
        with torch.no_grad():
            want = model(sketch, reference)
        got = session(sketch, reference)
        assert got.query is None and got.key is None
        for name in names:
            a, b = getattr(got, name), getattr(want, name)
            assert a.shape == b.shape and a.dtype == torch.float32, name
            diff = (a - b).abs().max().item()
            assert diff < TOL[name], f"{name} at batch {batch}: max |ONNX - torch| = {diff:.2e}"
    if which == "plain":
        assert want.warped_colors is None and got.warped_colors is None


def test_the_onnx_file_carries_its_config_and_a_dynamic_batch(plain: tuple[Path, Path]) -> None:
    artifact, exported = plain
    proto = onnx.load(str(exported / ONNX_NAME))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[CONFIG_KEY] == (artifact / CONFIG_NAME).read_text()
    size = json.loads(meta[CONFIG_KEY])["config"]["model"]["image_size"]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims["sketch"][1:] == [1, size, size] and dims["reference"][1:] == [3, size, size]
    assert isinstance(dims["sketch"][0], str) and dims["sketch"][0] == dims["reference"][0]  # symbolic, shared
    assert not list(exported.glob("*.data"))  # the weights are inside: the file alone is enough
    # the file alone is enough: no artifact folder beside it
    alone = exported.parent / "alone.onnx"
    alone.write_bytes((exported / ONNX_NAME).read_bytes())
    assert ColorizePipeline.from_onnx(alone).size == size


def test_cli_round_trip_matches_the_torch_backend(plain: tuple[Path, Path], tmp_path: Path, sample_photos: list[Path]) -> None:
    artifact, exported = plain
    sketch = np.full((50, 70), 255, np.uint8)
    sketch[10:40, 20] = sketch[10:40, 50] = sketch[10, 20:51] = sketch[40, 20:51] = 0
    Image.fromarray(sketch).save(tmp_path / "sketch.png")
    args = ["colorize", "--sketch", str(tmp_path / "sketch.png"), "--reference", str(sample_photos[0]), "-q"]
    assert main([*args, "--weights", str(artifact), "-o", str(tmp_path / "torch.png")]) == 0
    # --weights: the folder holding model.onnx
    assert main([*args, "--backend", "onnxruntime", "--weights", str(exported), "-o", str(tmp_path / "ort.png")]) == 0
    a, b = load_image(tmp_path / "torch.png"), load_image(tmp_path / "ort.png")
    assert a.shape == b.shape == (50, 70, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= PICTURE_TOL


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_export_onto_an_input_is_refused(plain: tuple[Path, Path], tmp_path: Path, link: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    artifact, _ = plain
    weights = artifact / "model.safetensors"
    before = weights.read_bytes()
    dst = tmp_path / "model.onnx"
    (os.symlink if link == "symlink" else os.link)(weights, dst)
    assert main(["export", "--weights", str(artifact), "-o", str(dst)]) == 2
    _one_error(capsys, f"{dst}: is the input weights file {weights}; an input is never overwritten")
    assert weights.read_bytes() == before


def test_export_output_rules(plain: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact, _ = plain
    config = (artifact / CONFIG_NAME).read_text()
    assert main(["export", "--weights", str(artifact), "-o", str(artifact / CONFIG_NAME)]) == 2
    _one_error(capsys, "the output must be a .onnx file")
    assert main(["export", "--weights", str(artifact), "-o", ""]) == 2
    _one_error(capsys, "-o is empty")
    (tmp_path / ONNX_NAME).write_bytes(b"the user's own file")
    assert main(["export", "--weights", str(artifact), "-o", str(tmp_path)]) == 2  # a folder: model.onnx inside
    _one_error(capsys, f"{tmp_path / ONNX_NAME}: already exists; not replaced without --overwrite")
    assert (tmp_path / ONNX_NAME).read_bytes() == b"the user's own file"
    assert (artifact / CONFIG_NAME).read_text() == config


@pytest.mark.parametrize("content", [b"not an onnx model", None], ids=["text", "png"])
def test_a_non_onnx_file_as_weights_is_one_line(tmp_path: Path, sample_photos: list[Path], content: bytes | None,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "model.onnx"
    if content is None:
        bad.write_bytes(sample_photos[0].read_bytes())
    else:
        bad.write_bytes(content)
    out = tmp_path / "out.png"
    assert main(["colorize", "--sketch", str(sample_photos[0]), "--reference", str(sample_photos[1]), "--backend",
                 "onnxruntime", "--weights", str(bad), "-o", str(out), "-q"]) == 2
    _one_error(capsys, f"{bad}: not an ONNX model onnxruntime can load")
    assert not out.exists()


def test_an_onnx_model_without_our_metadata_is_refused(plain: tuple[Path, Path], tmp_path: Path) -> None:
    _, exported = plain
    proto = onnx.load(str(exported / ONNX_NAME))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "other.onnx"))
    with pytest.raises(Exception, match="no sketchcolor config in its metadata"):
        OnnxColorizer(tmp_path / "other.onnx")


def test_missing_onnxruntime_names_the_extra(tmp_path: Path, sample_photos: list[Path], monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    assert main(["colorize", "--sketch", str(sample_photos[0]), "--reference", str(sample_photos[1]), "--backend",
                 "onnxruntime", "--weights", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.png"), "-q"]) == 2
    _one_error(capsys, "--backend onnxruntime needs onnxruntime: pip install 'sketchcolor[onnx]'")


def test_missing_exporter_names_the_extra(plain: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    artifact, _ = plain
    find_spec = onnx_export.importlib.util.find_spec
    monkeypatch.setattr(onnx_export.importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a))
    assert main(["export", "--weights", str(artifact), "-o", str(tmp_path / "m.onnx")]) == 2
    _one_error(capsys, "ONNX export needs onnxscript: pip install 'sketchcolor[onnx]'")
    assert not (tmp_path / "m.onnx").exists()
