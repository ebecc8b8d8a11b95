"""ColorizePipeline: load an artifact once, colorize any number of (sketch, reference) pairs.

The CLI, the web demo and evaluation all go through this class, so input handling (formats,
letterboxing to the model's size and back, optional sketch extraction) lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sketchcolor.config import Config
from sketchcolor.data.io import ImageLike, Letterbox, letterbox, load_image, to_gray, to_tensor, to_uint8, unletterbox
from sketchcolor.data.sketch import extract_sketch as extract_sketch_fn
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.onnx_backend import OnnxColorizer
from sketchcolor.inference.render import FILLS, Fill, fill_guided, fill_regions, lines_on, reference_palette
from sketchcolor.device import pick_device
from sketchcolor.models.generator import Colorizer
from sketchcolor.models.serialization import load_artifact


@dataclass
class Colorization:
    """One result at the sketch's own size: ``image`` uint8 ``[H, W, 3]`` (paint + lines);
    ``color_layer`` uint8 ``[H, W, 4]`` (the paint alone, transparent on the paper; for artists'
    layers); ``prediction`` uint8 ``[H, W, 3]`` (the network's raw output resized); ``line``
    uint8 ``[H, W]`` (the line art laid on top); ``fill`` the rendering used."""

    image: np.ndarray
    color_layer: np.ndarray
    prediction: np.ndarray
    line: np.ndarray
    fill: str


class ColorizePipeline:
    """``pipe(sketch, reference) -> uint8 [H, W, 3]`` at the sketch's own size.

    ``sketch`` and ``reference`` are paths, PIL images or arrays of any size; both are
    letterboxed on white to the model's square size (aspect ratio kept) and the output is cropped
    and resized back. With ``extract_sketch=True`` a color or gray picture is first turned into
    line art by the XDoG extractor the model was trained with.
    """

    def __init__(self, model: Colorizer | OnnxColorizer, config: Config, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.size = config.model.image_size

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "auto") -> ColorizePipeline:
        """Load ``folder/config.json`` + ``folder/model.safetensors``."""
        model, cfg, _ = load_artifact(folder)
        return cls(model, cfg, pick_device(device))

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None) -> ColorizePipeline:
        """Run an ONNX export with ONNX Runtime on the CPU in place of the torch model: ``path`` is
        a ``.onnx`` file or a folder holding ``model.onnx``; the config comes from its metadata."""
        model = OnnxColorizer(path, threads)
        return cls(model, model.config, "cpu")

    def prepare_sketch(self, sketch: ImageLike, extract_sketch: bool = False) -> tuple[torch.Tensor, Letterbox]:
        """-> ``[1, 1, S, S]`` in [-1, 1] and where the drawing sits in it."""
        rgb = load_image(sketch)
        boxed, box = letterbox(rgb, self.size)
        # the extractor the model was trained with (XDoG with the artifact's data settings)
        line = extract_sketch_fn(boxed, self.config.data) if extract_sketch else to_gray(boxed)
        return to_tensor(line)[None].to(self.device), box

    def prepare_reference(self, reference: ImageLike) -> torch.Tensor:
        """-> ``[1, 3, S, S]`` in [-1, 1]."""
        boxed, _ = letterbox(load_image(reference), self.size)
        return to_tensor(boxed)[None].to(self.device)

    @torch.no_grad()
    def colorize(self, sketch: ImageLike, reference: ImageLike, extract_sketch: bool = False,
                 fill: Fill | None = None, palette_snap: float = 0.0, paint_background: bool = False) -> Colorization:
        """Colorize and render at the sketch's own resolution.

        ``fill``: ``"regions"`` (flat color per line-art region, the default for line art),
        ``"guided"`` (edge-aware upsampling, the default with ``extract_sketch``, whose lines do
        not close), both with the drawing's lines multiplied on top, or ``"none"`` (the raw
        network output resized, as the network painted it). ``palette_snap`` in [0, 1]
        pulls each region's color toward the reference's nearest palette color (regions only).
        The paper around the drawing stays white unless ``paint_background`` (regions only)."""
        fill = fill or ("guided" if extract_sketch else "regions")
        if fill not in FILLS:
            raise SketchColorError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
        if not 0.0 <= palette_snap <= 1.0:
            raise SketchColorError(f"palette snapping strength must lie in [0, 1], got {palette_snap}")
        rgb = load_image(sketch)
        ref = load_image(reference)
        boxed, box = letterbox(rgb, self.size)
        small = extract_sketch_fn(boxed, self.config.data) if extract_sketch else to_gray(boxed)
        # the lines laid on top: the drawing's own at full size (extracted at full size for pictures)
        line = extract_sketch_fn(rgb, self.config.data) if extract_sketch else to_gray(rgb)
        s = to_tensor(small)[None].to(self.device)
        r = self.prepare_reference(ref)
        prediction = unletterbox(to_uint8(self.model(s, r).image[0]), box)
        if fill == "regions":
            palette = reference_palette(ref) if palette_snap > 0 else None
            paint, alpha = fill_regions(prediction, line, palette, palette_snap, paint_background)
        else:
            paint = prediction if fill == "none" else fill_guided(prediction, line)
            alpha = np.full(line.shape, 255, np.uint8)
        image = prediction if fill == "none" else lines_on(paint, line)
        return Colorization(image=image, color_layer=np.dstack([paint, alpha]), prediction=prediction, line=line,
                            fill=fill)

    def __call__(self, sketch: ImageLike, reference: ImageLike, extract_sketch: bool = False,
                 fill: Fill | None = None, palette_snap: float = 0.0) -> np.ndarray:
        """:meth:`colorize`'s image: uint8 ``[H, W, 3]`` at the sketch's size."""
        return self.colorize(sketch, reference, extract_sketch, fill, palette_snap).image

    @torch.no_grad()
    def attention(self, sketch: ImageLike, reference: ImageLike, extract_sketch: bool = False) -> torch.Tensor:
        """SCFT attention ``[hw, hw]`` for inspection (rows: sketch cells, columns: reference cells)."""
        s, _ = self.prepare_sketch(sketch, extract_sketch)
        attention = self.model(s, self.prepare_reference(reference)).attention
        if attention is None:
            raise SketchColorError("this model fuses by concatenation (model.fusion=concat): it has no attention map")
        return attention[0].cpu()
