"""ColorizePipeline: load an artifact once, colorize any number of (sketch, reference) pairs.

The CLI, the web demo and evaluation all go through this class, so input handling (formats,
letterboxing to the model's size and back, optional sketch extraction) lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sketchcolor.config import Config
from sketchcolor.data.io import ImageLike, Letterbox, letterbox, load_image, to_gray, to_tensor, to_uint8, unletterbox
from sketchcolor.data.sketch import extract_sketch as extract_sketch_fn
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.color_book import ColorBook
from sketchcolor.inference.onnx_backend import OnnxColorizer
from sketchcolor.inference.render import FILLS, Fill, fill_guided, fill_regions, lines_on, reference_palette
from sketchcolor.device import pick_device
from sketchcolor.models.generator import Colorizer, ColorizerOutput, ReferenceFeatures, concat_features, reference_cells
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


@dataclass
class References:
    """One or more references prepared once for many sketches (:meth:`ColorizePipeline.encode_references`).

    ``images``: the decoded pictures (uint8 ``[H, W, 3]``); ``tensors``: ``[1, 3, S, S]`` each,
    letterboxed; ``features``: the model's reference side computed once (E_r + SCFT keys and
    values, :class:`~sketchcolor.models.generator.ReferenceFeatures`), or None where it is
    recomputed for every batch (``cache=False``, or the ONNX backend, whose graph takes the
    picture); ``palette_images``: the pictures palette snapping and the color book take their
    colors from (the original references; a chained frame is not among them)."""

    images: list[np.ndarray]
    tensors: list[torch.Tensor]
    features: ReferenceFeatures | None
    palette_images: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tensors)

    def palette(self) -> np.ndarray:
        """The original references' main colors (Lab ``[k, 3]``), k-means over all their pixels."""
        if not hasattr(self, "_palette"):
            pixels = np.concatenate([im.reshape(-1, 1, 3) for im in self.palette_images], axis=0)
            self._palette = reference_palette(pixels)
        return self._palette

    def plus(self, other: References) -> References:
        """These references and ``other``'s (appended: one attention over all their cells); the
        palette stays these references'."""
        features = None
        if self.features is not None and other.features is not None:
            features = concat_features([self.features, other.features])
        return References(images=self.images + other.images, tensors=self.tensors + other.tensors,
                          features=features, palette_images=self.palette_images)


@dataclass
class Frame:
    """A sketch made ready for the model: ``small`` ``[1, S, S]`` in [-1, 1] (the letterboxed
    line art), ``box`` where the drawing sits in it, ``line`` uint8 ``[H, W]`` the full-size lines
    laid on top of the paint."""

    small: torch.Tensor
    box: Letterbox
    line: np.ndarray


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

    def encode_references(self, references: ImageLike | Sequence[ImageLike], cache: bool = True) -> References:
        """Decode and letterbox one reference or several, and with ``cache`` (the torch backend)
        run the model's reference side once (:meth:`Colorizer.encode_reference`): every sketch
        colorized with the result reuses those keys and values. Several references make one
        attention over all their cells."""
        refs = list(references) if isinstance(references, (list, tuple)) else [references]
        if not refs:
            raise SketchColorError("no reference given")
        images = [load_image(r) for r in refs]
        tensors = [self.prepare_reference(im) for im in images]
        if isinstance(self.model, OnnxColorizer) and len(tensors) > 1:
            raise SketchColorError("the onnxruntime backend takes one reference (its graph has one reference input); "
                                   "use --backend torch for several")
        features = None
        if cache and isinstance(self.model, Colorizer):
            with torch.no_grad():
                features = self.model.encode_reference(tensors)
        return References(images=images, tensors=tensors, features=features, palette_images=images)

    def load_frame(self, sketch: ImageLike, extract_sketch: bool = False) -> Frame:
        """Read a sketch and letterbox it to the model's size (as :meth:`colorize` does)."""
        rgb = load_image(sketch)
        boxed, box = letterbox(rgb, self.size)
        small = extract_sketch_fn(boxed, self.config.data) if extract_sketch else to_gray(boxed)
        line = extract_sketch_fn(rgb, self.config.data) if extract_sketch else to_gray(rgb)
        return Frame(small=to_tensor(small), box=box, line=line)

    @torch.no_grad()
    def predict(self, sketches: torch.Tensor, references: References) -> ColorizerOutput:
        """The network on a batch ``[B, 1, S, S]``: with cached reference features when
        ``references`` has them, else with the reference pictures (encoded anew)."""
        sketches = sketches.to(self.device)
        if references.features is not None:
            return self.model(sketches, cached=references.features)
        b = sketches.shape[0]
        tensors = [t.expand(b, -1, -1, -1) for t in references.tensors]
        return self.model(sketches, tensors[0] if len(tensors) == 1 else tensors)

    def reference_cell_colors(self, references: References) -> np.ndarray:
        """uint8 ``[M, 3]``: the color of every reference cell, in the attention's column order."""
        grid = (self.size // self.config.model.feature_stride,) * 2
        cells = torch.cat([reference_cells(t, grid)[0] for t in references.tensors])
        return np.clip(np.round((cells.cpu().numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)

    @torch.no_grad()
    def colorize_frames(self, frames: Sequence[Frame], references: References, fill: Fill = "regions",
                        palette_snap: float = 0.0, paint_background: bool = False,
                        book: ColorBook | None = None) -> list[Colorization]:
        """Colorize a batch of prepared sketches (:meth:`load_frame`) with prepared references
        (:meth:`encode_references`): one forward pass for the batch, then each frame rendered as
        :meth:`colorize` does. ``book`` (regions only): the frames' regions are matched to the
        book's reference colors through the attention and snapped to the colors the book holds
        (learning them from the first frames), in the frames' order."""
        if fill not in FILLS:
            raise SketchColorError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
        if book is not None and fill != "regions":
            raise SketchColorError("a color book works on regions: use it with --fill regions")
        if not frames:
            return []
        out = self.predict(torch.stack([f.small for f in frames]), references)
        palette = references.palette() if fill == "regions" and palette_snap > 0 else None
        cell_colors = self.reference_cell_colors(references) if book is not None and out.attention is not None else None
        results = []
        for i, frame in enumerate(frames):
            prediction = unletterbox(to_uint8(out.image[i]), frame.box)
            if fill == "regions":
                paint, alpha = fill_regions(prediction, frame.line, palette, palette_snap, paint_background)
                if book is not None:
                    probs = None
                    if cell_colors is not None:
                        probs = book.entry_probabilities(out.attention[i].float().cpu().numpy(), cell_colors,
                                                         self.size // self.config.model.feature_stride, frame.box)
                    paint = book.apply(paint, alpha, probs)
            else:
                paint = prediction if fill == "none" else fill_guided(prediction, frame.line)
                alpha = np.full(frame.line.shape, 255, np.uint8)
            image = prediction if fill == "none" else lines_on(paint, frame.line)
            results.append(Colorization(image=image, color_layer=np.dstack([paint, alpha]), prediction=prediction,
                                        line=frame.line, fill=fill))
        return results

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
