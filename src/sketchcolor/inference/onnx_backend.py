"""Run an ONNX export (``sketchcolor export --format onnx``) with ONNX Runtime in place of the torch model.

:class:`OnnxColorizer` is called like :class:`~sketchcolor.models.generator.Colorizer`:
``(sketch [B, 1, S, S], reference [B, 3, S, S]) -> ColorizerOutput`` with torch tensors made from
ONNX Runtime's arrays (``query`` and ``key`` are None: the graph does not return them), so
:class:`~sketchcolor.inference.pipeline.ColorizePipeline` renders its output exactly as the torch
model's. The config (image size, the sketch extractor's settings) comes from the file's metadata
(:data:`~sketchcolor.models.onnx_export.CONFIG_KEY`). CPU only (the ``CPUExecutionProvider``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from sketchcolor.errors import CheckpointError, SketchColorError
from sketchcolor.models.generator import ColorizerOutput
from sketchcolor.models.onnx_export import CONFIG_KEY, EXTRA_HINT, INPUT_NAMES, ONNX_NAME
from sketchcolor.models.serialization import parse_config


def _onnxruntime() -> Any:
    """The onnxruntime module, or one line naming the extra to install."""
    try:
        import onnxruntime  # optional dependency (the `onnx` extra): imported only for this backend
    except ImportError:
        raise SketchColorError(f"--backend onnxruntime needs onnxruntime: {EXTRA_HINT}") from None
    return onnxruntime


def resolve_onnx(path: str | Path) -> Path:
    """``path`` itself (an ``.onnx`` file) or, for a folder, the ``model.onnx`` in it."""
    path = Path(path)
    if path.is_dir():
        if not (path / ONNX_NAME).is_file():
            raise CheckpointError(f"{path}: no {ONNX_NAME} in this folder; make one with "
                                  f"`sketchcolor export --format onnx --weights {path} -o {path / ONNX_NAME}`")
        return path / ONNX_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX model not found")
    return path


class OnnxColorizer:
    """An ONNX Runtime session over an exported Colorizer; ``threads``: ONNX Runtime's intra-op
    threads (None: its default, one per physical core)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = resolve_onnx(path)
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings about unused initializers on stderr
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception alone
            text = " ".join(str(e).split())[:160] or type(e).__name__
            raise CheckpointError(f"{self.path}: not an ONNX model onnxruntime can load ({text})") from None
        text = self.session.get_modelmeta().custom_metadata_map.get(CONFIG_KEY)
        if text is None:
            raise CheckpointError(f"{self.path}: this ONNX model has no sketchcolor config in its metadata; "
                                  f"make one with `sketchcolor export --format onnx`")
        self.config, self.meta = parse_config(text, f"{self.path} (metadata {CONFIG_KEY})")
        self.cfg = self.config.model  # as Colorizer.cfg
        size = self.cfg.image_size
        inputs = {i.name: list(i.shape) for i in self.session.get_inputs()}
        want = {"sketch": [1, size, size], "reference": [3, size, size]}
        if set(inputs) != set(INPUT_NAMES) or any(inputs[k][1:] != v for k, v in want.items()):
            raise CheckpointError(f"{self.path}: inputs {inputs} do not match its config "
                                  f"(sketch [B, 1, {size}, {size}], reference [B, 3, {size}, {size}])")
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, sketch: torch.Tensor, reference: torch.Tensor) -> ColorizerOutput:
        """sketch ``[B, 1, S, S]`` + reference ``[B, 3, S, S]`` in [-1, 1] -> ColorizerOutput (CPU tensors)."""
        size = self.cfg.image_size
        if tuple(sketch.shape[1:]) != (1, size, size) or tuple(reference.shape[1:]) != (3, size, size) \
                or sketch.shape[0] != reference.shape[0]:
            raise SketchColorError(f"{self.path}: takes sketch [B, 1, {size}, {size}] and reference [B, 3, {size}, {size}], "
                                   f"got {tuple(sketch.shape)} and {tuple(reference.shape)}")
        feed = {name: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
                for name, t in zip(INPUT_NAMES, (sketch, reference))}
        got = dict(zip(self.outputs, (torch.from_numpy(a) for a in self.session.run(self.outputs, feed))))
        return ColorizerOutput(image=got["image"], attention=got.get("attention"), query=None, key=None,
                               warped_colors=got.get("warped_colors"))

    def to(self, device: str | torch.device) -> OnnxColorizer:
        """For ColorizePipeline: the session runs on the CPU; any other device is an error."""
        if torch.device(device).type != "cpu":
            raise SketchColorError(f"the onnxruntime backend runs on the CPU, not {device}; use --backend torch for {device}")
        return self

    def eval(self) -> OnnxColorizer:
        """For ColorizePipeline: an exported graph is always in inference mode."""
        return self
