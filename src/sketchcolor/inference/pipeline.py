"""ColorizePipeline: load an artifact once, colorize any number of (sketch, reference) pairs.

The CLI, the web demo and evaluation all go through this class, so input handling (formats,
letterboxing to the model's size and back, optional sketch extraction) lives in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sketchcolor.config import Config, DataConfig
from sketchcolor.data.io import ImageLike, Letterbox, letterbox, load_image, to_gray, to_tensor, to_uint8, unletterbox
from sketchcolor.data.sketch import extract_sketch as extract_sketch_fn
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.cells import point_pixel
from sketchcolor.inference.color_book import ColorBook
from sketchcolor.inference.onnx_backend import OnnxColorizer
from sketchcolor.inference.fixes import Fixes, Recolor, hint_bias
from sketchcolor.inference.render import (
    FILLS,
    Fill,
    RegionFill,
    fill_guided,
    lines_on,
    reference_palette,
    region_fill,
    sketch_regions,
)
from sketchcolor.device import pick_device
from sketchcolor.models.generator import Colorizer, ColorizerOutput, ReferenceFeatures, concat_features, reference_cells
from sketchcolor.models.serialization import load_artifact


def recolor(paint: np.ndarray, alpha: np.ndarray, regions: RegionFill, fixes: Fixes) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``fixes.recolors`` in order to a rendered paint ``[H, W, 3]`` / alpha ``[H, W]``: the
    region under each point (``regions``' labels) painted in its color, made opaque. ``regions``
    records the new colors (:meth:`RegionFill.recolor`)."""
    paint, alpha = paint.copy(), alpha.copy()
    for r in fixes.recolors:
        label = regions.label_at(*point_pixel(r.point, regions.labels.shape))
        regions.recolor(label, r.color)
        mask = regions.labels == label
        paint[mask] = r.color
        alpha[mask] = 255
    return paint, alpha


XDOG_PARAMETERS = ("sigma", "k", "sharpen", "epsilon", "phi")  # DataConfig.xdog_* (data/sketch.py)


def apply_recolors(result: Colorization, recolors: Sequence[Recolor]) -> Colorization:
    """``result`` (regions fill) with ``recolors`` painted, as a new Colorization (``result`` is
    not changed): no model run, for a user's recolors on a result already computed."""
    if result.regions is None:
        raise SketchColorError("recolors paint regions: use them with --fill regions")
    regions = RegionFill(labels=result.regions.labels, colors=result.regions.colors.copy(),
                         paper=result.regions.paper.copy())
    paint, alpha = recolor(result.color_layer[..., :3], result.color_layer[..., 3], regions, Fixes(recolors=list(recolors)))
    return dataclasses.replace(result, image=lines_on(paint, result.line), color_layer=np.dstack([paint, alpha]),
                               regions=regions)


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
    # for inspection and fixes (the web app): the regions and their colors (``regions`` fill only),
    # SCFT's attention ``[hw, M]`` float32 of this sketch (None for concatenation models), where
    # the sketch sits in the model's square, the feature grids of the sketch and of each reference
    regions: RegionFill | None = None
    attention: np.ndarray | None = None
    box: Letterbox | None = None
    grid: tuple[int, int] | None = None
    reference_grids: tuple[tuple[int, int], ...] = ()


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
    boxes: list[Letterbox] = field(default_factory=list)  # where each picture sits in its tensor

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
                          features=features, palette_images=self.palette_images, boxes=self.boxes + other.boxes)


@dataclass
class Frame:
    """A sketch made ready for the model: ``small`` ``[1, S, S]`` in [-1, 1] (the letterboxed
    line art), ``box`` where the drawing sits in it, ``line`` uint8 ``[H, W]`` the full-size lines
    laid on top of the paint."""

    small: torch.Tensor
    box: Letterbox
    line: np.ndarray
    regions: np.ndarray | None = None  # render.sketch_regions(line), computed on first use and kept


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
                 fill: Fill | None = None, palette_snap: float = 0.0, paint_background: bool = False,
                 fixes: Fixes | None = None, xdog: Mapping[str, float] | None = None) -> Colorization:
        """Colorize and render at the sketch's own resolution.

        ``fill``: ``"regions"`` (flat color per line-art region, the default for line art),
        ``"guided"`` (edge-aware upsampling, the default with ``extract_sketch``, whose lines do
        not close), both with the drawing's lines multiplied on top, or ``"none"`` (the raw
        network output resized, as the network painted it). ``palette_snap`` in [0, 1]
        pulls each region's color toward the reference's nearest palette color (regions only).
        The paper around the drawing stays white unless ``paint_background`` (regions only).
        ``fixes``: a user's correspondence hints (imposed on SCFT's attention) and recolors
        (regions painted after the model; regions fill only). ``xdog``: the extractor's
        parameters where they differ from the artifact's (with ``extract_sketch``)."""
        fill = self._check_fill(fill or ("guided" if extract_sketch else "regions"), palette_snap, fixes)
        frame = self.load_frame(sketch, extract_sketch, xdog)
        return self.colorize_frames([frame], self.encode_references(reference, cache=False), fill=fill,
                                    palette_snap=palette_snap, paint_background=paint_background, fixes=fixes)[0]

    def _check_fill(self, fill: str, palette_snap: float, fixes: Fixes | None) -> Fill:
        if fill not in FILLS:
            raise SketchColorError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
        if not 0.0 <= palette_snap <= 1.0:
            raise SketchColorError(f"palette snapping strength must lie in [0, 1], got {palette_snap}")
        if fixes is not None and fixes.recolors and fill != "regions":
            raise SketchColorError("recolors paint regions: use them with --fill regions")
        if fixes is not None and fixes.hints and not isinstance(self.model, Colorizer):
            raise SketchColorError("correspondence hints need the torch backend (the ONNX graph has no hint input)")
        if fixes is not None and fixes.hints and self.config.model.fusion != "scft":
            raise SketchColorError("correspondence hints need an SCFT model (model.fusion=scft): this one has no attention")
        return fill  # type: ignore[return-value]

    def encode_references(self, references: ImageLike | Sequence[ImageLike], cache: bool = True) -> References:
        """Decode and letterbox one reference or several, and with ``cache`` (the torch backend)
        run the model's reference side once (:meth:`Colorizer.encode_reference`): every sketch
        colorized with the result reuses those keys and values. Several references make one
        attention over all their cells."""
        refs = list(references) if isinstance(references, (list, tuple)) else [references]
        if not refs:
            raise SketchColorError("no reference given")
        images = [load_image(r) for r in refs]
        boxed = [letterbox(im, self.size) for im in images]
        tensors = [to_tensor(b)[None].to(self.device) for b, _ in boxed]
        if isinstance(self.model, OnnxColorizer) and len(tensors) > 1:
            raise SketchColorError("the onnxruntime backend takes one reference (its graph has one reference input); "
                                   "use --backend torch for several")
        features = None
        if cache and isinstance(self.model, Colorizer):
            with torch.no_grad():
                features = self.model.encode_reference(tensors)
        return References(images=images, tensors=tensors, features=features, palette_images=images,
                          boxes=[box for _, box in boxed])

    def extractor(self, xdog: Mapping[str, float] | None = None) -> DataConfig:
        """The data settings the XDoG extractor reads: the artifact's, with ``xdog`` overrides
        (``sigma``, ``k``, ``sharpen``, ``epsilon``, ``phi``), checked as a config is."""
        if not xdog:
            return self.config.data
        unknown = sorted(set(xdog) - set(XDOG_PARAMETERS))
        if unknown:
            raise SketchColorError(f"unknown XDoG parameter(s) {', '.join(unknown)}; expected {', '.join(XDOG_PARAMETERS)}")
        data = dataclasses.replace(self.config.data, **{f"xdog_{k}": float(v) for k, v in xdog.items()})
        data.validate()  # a ConfigError line naming the field and its bounds
        return data

    def load_frame(self, sketch: ImageLike, extract_sketch: bool = False,
                   xdog: Mapping[str, float] | None = None) -> Frame:
        """Read a sketch and letterbox it to the model's size (as :meth:`colorize` does);
        ``xdog``: the extractor's parameters where they differ from the artifact's."""
        rgb = load_image(sketch)
        boxed, box = letterbox(rgb, self.size)
        data = self.extractor(xdog)
        small = extract_sketch_fn(boxed, data) if extract_sketch else to_gray(boxed)
        # the lines laid on top: the drawing's own at full size (extracted at full size for pictures)
        line = extract_sketch_fn(rgb, data) if extract_sketch else to_gray(rgb)
        return Frame(small=to_tensor(small), box=box, line=line)

    @torch.no_grad()
    def predict(self, sketches: torch.Tensor, references: References,
                attention_bias: torch.Tensor | None = None) -> ColorizerOutput:
        """The network on a batch ``[B, 1, S, S]``: with cached reference features when
        ``references`` has them, else with the reference pictures (encoded anew).
        ``attention_bias`` ``[B or 1, hw, M]``: added to SCFT's logits (hints)."""
        sketches = sketches.to(self.device)
        extra = {} if attention_bias is None else {"attention_bias": attention_bias.to(self.device)}
        if references.features is not None:
            return self.model(sketches, cached=references.features, **extra)
        b = sketches.shape[0]
        tensors = [t.expand(b, -1, -1, -1) for t in references.tensors]
        return self.model(sketches, tensors[0] if len(tensors) == 1 else tensors, **extra)

    @staticmethod
    def frame_regions(frame: Frame) -> np.ndarray:
        """The drawing's regions from its lines (:func:`~sketchcolor.inference.render.sketch_regions`),
        computed once per frame: re-rendering the same drawing (fixes in the app) reuses them."""
        if frame.regions is None:
            frame.regions = sketch_regions(frame.line)
        return frame.regions

    @property
    def grid(self) -> tuple[int, int]:
        """The feature grid of a sketch (and of each reference) in the model's square."""
        n = self.size // self.config.model.feature_stride
        return (n, n)

    def reference_cell_colors(self, references: References) -> np.ndarray:
        """uint8 ``[M, 3]``: the color of every reference cell, in the attention's column order."""
        grid = (self.size // self.config.model.feature_stride,) * 2
        cells = torch.cat([reference_cells(t, grid)[0] for t in references.tensors])
        return np.clip(np.round((cells.cpu().numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)

    @torch.no_grad()
    def colorize_frames(self, frames: Sequence[Frame], references: References, fill: Fill = "regions",
                        palette_snap: float = 0.0, paint_background: bool = False,
                        book: ColorBook | None = None, fixes: Fixes | None = None) -> list[Colorization]:
        """Colorize a batch of prepared sketches (:meth:`load_frame`) with prepared references
        (:meth:`encode_references`): one forward pass for the batch, then each frame rendered as
        :meth:`colorize` does. ``book`` (regions only): the frames' regions are matched to the
        book's reference colors through the attention and snapped to the colors the book holds
        (learning them from the first frames), in the frames' order. ``fixes``: hints imposed on
        the attention of every frame, recolors applied to every frame's regions (after the book)."""
        fill = self._check_fill(fill, palette_snap, fixes)
        if book is not None and fill != "regions":
            raise SketchColorError("a color book works on regions: use it with --fill regions")
        if not frames:
            return []
        bias = None
        if fixes is not None and fixes.hints:
            stride = self.config.model.feature_stride
            grids = [self.grid] * len(references)
            parts = [hint_bias(fixes.hints, f.box, references.boxes, self.grid, grids, stride,
                               labels=self.frame_regions(f)) for f in frames]
            bias = None if parts[0] is None else torch.cat(parts)
        out = self.predict(torch.stack([f.small for f in frames]), references, bias)
        palette = references.palette() if fill == "regions" and palette_snap > 0 else None
        cell_colors = self.reference_cell_colors(references) if book is not None and out.attention is not None else None
        results = []
        for i, frame in enumerate(frames):
            prediction = unletterbox(to_uint8(out.image[i]), frame.box)
            attention = None if out.attention is None else out.attention[i].float().cpu().numpy()
            regions = None
            if fill == "regions":
                regions = region_fill(prediction, frame.line, palette, palette_snap, paint_background,
                                      trapped=self.frame_regions(frame))
                paint, alpha = regions.paint()
                if book is not None:
                    probs = None
                    if cell_colors is not None:
                        probs = book.entry_probabilities(attention, cell_colors, self.grid[0], frame.box)
                    paint = book.apply(paint, alpha, probs)
                if fixes is not None and fixes.recolors:
                    paint, alpha = recolor(paint, alpha, regions, fixes)
            else:
                paint = prediction if fill == "none" else fill_guided(prediction, frame.line)
                alpha = np.full(frame.line.shape, 255, np.uint8)
            image = prediction if fill == "none" else lines_on(paint, frame.line)
            results.append(Colorization(image=image, color_layer=np.dstack([paint, alpha]), prediction=prediction,
                                        line=frame.line, fill=fill, regions=regions, attention=attention,
                                        box=frame.box, grid=self.grid, reference_grids=(self.grid,) * len(references)))
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
