"""Export the generator (``Colorizer``, SCFT attention inside) to one self-contained ONNX file.

The graph takes ``sketch [B, 1, S, S]`` and ``reference [B, 3, S, S]`` in [-1, 1] (B dynamic, S the
model's ``image_size``) and returns ``image [B, 3, S, S]``, ``attention [B, hw, hw]`` (SCFT models)
and ``warped_colors [B, 3, h, w]`` (models with the color path). The artifact's ``config.json``
text is stored in the model's ``metadata_props`` under :data:`CONFIG_KEY`, so the ``.onnx`` file
alone is enough to colorize (image size, the sketch extractor's settings): see
:mod:`sketchcolor.inference.onnx_backend`. The weights are inside the file (no external data).

Exporter: ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` + onnxscript). It is the
exporter PyTorch maintains (the default since 2.9; the TorchScript one is deprecated), and on this
model it is the one that works: the TorchScript exporter refuses the encoders'
``adaptive_avg_pool2d`` once the batch axis is dynamic ("output_size is not constant").
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from sketchcolor.atomic import write_bytes_atomic
from sketchcolor.errors import SketchColorError
from sketchcolor.models.generator import Colorizer
from sketchcolor.models.serialization import CONFIG_NAME, load_artifact
from sketchcolor.version import __version__

ONNX_NAME = "model.onnx"  # the file `export` writes into a folder, and `colorize --weights FOLDER` looks for
CONFIG_KEY = "sketchcolor.config.json"  # metadata_props: the artifact's config.json, verbatim
VERSION_KEY = "sketchcolor.version"  # metadata_props: the sketchcolor that exported the file
INPUT_NAMES = ("sketch", "reference")
OPSET = 18
EXTRA_HINT = "pip install 'sketchcolor[onnx]'"


def output_names(model: Colorizer) -> list[str]:
    """The graph's outputs for ``model``: image, then attention (SCFT), then warped_colors (color path)."""
    names = ["image"]
    if model.cfg.fusion == "scft":
        names.append("attention")
    if model.cfg.color_path:
        names.append("warped_colors")
    return names


class _TensorOutputs(nn.Module):
    """The Colorizer with a tuple of tensors as output (the exporter takes tensors, not a dataclass)."""

    def __init__(self, model: Colorizer) -> None:
        super().__init__()
        self.model = model

    def forward(self, sketch: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(sketch, reference)
        return tuple(t for t in (out.image, out.attention, out.warped_colors) if t is not None)


def require_exporter() -> None:
    """Raise one line naming the extra to install when onnx or onnxscript is missing."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise SketchColorError(f"ONNX export needs {' and '.join(missing)}: {EXTRA_HINT}")


def to_onnx_bytes(model: Colorizer, config_text: str, opset: int = OPSET) -> bytes:
    """The serialized ONNX model of ``model`` (on the CPU, in eval mode, float32) with
    ``config_text`` (the artifact's config.json) in its metadata."""
    require_exporter()
    was_training = model.training
    model = model.eval()
    size = model.cfg.image_size
    gen = torch.Generator().manual_seed(0)
    # batch 2 as the example: a batch of 1 would let torch.export specialize the axis to 1
    example = (torch.rand(2, 1, size, size, generator=gen) * 2 - 1, torch.rand(2, 3, size, size, generator=gen) * 2 - 1)
    batch = torch.export.Dim("batch")
    names = output_names(model)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    try:
        # the exporter logs about optional torchvision ops and warns about its own internals
        quiet.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(_TensorOutputs(model).cpu(), example, dynamo=True, verbose=False,
                                        input_names=list(INPUT_NAMES), output_names=names, opset_version=opset,
                                        dynamic_shapes={"sketch": {0: batch}, "reference": {0: batch}},
                                        external_data=False, optimize=True)
    except Exception as e:  # torch.export / onnxscript failures have many types; one line for the CLI
        text = " ".join(str(e).split())[:200] or type(e).__name__
        raise SketchColorError(f"ONNX export failed ({type(e).__name__}: {text})") from e
    finally:
        quiet.setLevel(level)
        model.train(was_training)
    proto = program.model_proto
    for key, value in ((CONFIG_KEY, config_text), (VERSION_KEY, __version__)):
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def export_onnx(model: Colorizer, config_text: str, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``model`` as ONNX to ``path`` atomically (a temporary file renamed into place)."""
    return write_bytes_atomic(path, to_onnx_bytes(model, config_text, opset))


def export_artifact(folder: str | Path, path: str | Path, opset: int = OPSET) -> Path:
    """Export the inference artifact ``folder`` (config.json + model.safetensors) to ``path``."""
    require_exporter()  # before the weights are read
    model, _, _ = load_artifact(folder)
    return export_onnx(model, (Path(folder) / CONFIG_NAME).read_text(encoding="utf-8"), path, opset)
