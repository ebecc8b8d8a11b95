"""One browser tab's state and what each of its buttons and clicks does, without Gradio.

The web page (:mod:`sketchcolor.app.ui`) only wires these methods to widgets, so they are tested
as plain functions. Every picture operation is the pipeline's (:class:`ColorizePipeline`) or
:mod:`sketchcolor.inference.explain`'s; a bad upload becomes a :class:`SketchColorError` whose
one line the page shows.

Clicks arrive as pixel coordinates of the picture shown (the drawing at its own size, or the
reference) and are turned into points in [0, 1], the unit of :mod:`sketchcolor.inference.fixes`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from sketchcolor.data.io import Letterbox, load_image, save_image
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.cells import point_pixel
from sketchcolor.inference.explain import (
    heat_on,
    outline_regions,
    reference_point_heat,
    region_confidence,
    sketch_point_heat,
    weakest_regions,
)
from sketchcolor.inference.fixes import Fixes, Hint, Recolor
from sketchcolor.inference.pipeline import ColorizePipeline, Colorization, Frame, References, apply_recolors
from sketchcolor.inference.render import Fill

MAX_PIXELS = 16_000_000  # per upload: a drawing larger than this takes seconds per fix; downscale it first
Mode = Literal["inspect", "hint", "recolor"]
MODES: tuple[str, ...] = ("inspect", "hint", "recolor")


@dataclass
class Options:
    """The page's settings: the CLI's rendering options and the extractor's parameters."""

    extract_sketch: bool = False
    fill: Fill = "regions"
    palette_snap: float = 0.0
    paint_background: bool = False
    xdog: dict[str, float] = field(default_factory=dict)


@dataclass
class View:
    """What the page shows after an action: ``result`` (paint + lines, the drawing's size),
    ``confidence`` (the result with its least confident regions outlined), ``heat`` (a heat map
    over the reference or the drawing; None leaves the last one), ``message`` (one line),
    ``color`` (a color picked from the reference, ``#rrggbb``; None keeps the picker's),
    ``elapsed`` (seconds of the re-render, None when nothing was rendered)."""

    result: np.ndarray | None = None
    confidence: np.ndarray | None = None
    heat: np.ndarray | None = None
    message: str = ""
    color: str | None = None
    elapsed: float | None = None


def to_point(x: float, y: float, shape: tuple[int, ...]) -> tuple[float, float]:
    """Pixel (x, y) of a picture of ``shape`` ``(H, W, ...)`` -> (x, y) in [0, 1] (pixel centres)."""
    h, w = shape[:2]
    return (min(max((x + 0.5) / w, 0.0), 1.0), min(max((y + 0.5) / h, 0.0), 1.0))


def parse_color(value: str) -> tuple[int, int, int]:
    """``#rrggbb``, ``#rgb`` or ``rgb(r, g, b)`` / ``rgba(r, g, b, a)`` (what color pickers send) -> uint8 triple."""
    v = (value or "").strip().lower()
    try:
        if v.startswith("#") and len(v) in (4, 7):
            digits = v[1:] if len(v) == 7 else "".join(c * 2 for c in v[1:])
            return tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
        if v.startswith(("rgb(", "rgba(")) and v.endswith(")"):
            parts = [float(p) for p in v[v.index("(") + 1:-1].split(",")][:3]
            if len(parts) == 3 and all(0 <= p <= 255 for p in parts):
                return tuple(int(round(p)) for p in parts)  # type: ignore[return-value]
    except ValueError:
        pass
    raise SketchColorError(f"not a color: {value!r} (expected #rrggbb)")


def _limited(image: np.ndarray, name: str) -> np.ndarray:
    h, w = image.shape[:2]
    if h * w > MAX_PIXELS:
        raise SketchColorError(f"{name}: {w} x {h} pixels, more than the app's limit of {MAX_PIXELS / 1e6:.0f} "
                               "megapixels; downscale it first (the command line takes larger drawings)")
    return image


def to_hex(rgb: np.ndarray | tuple[int, int, int]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


class Session:
    """One user's drawing, reference, fixes and last result. ``pipe`` is shared by all sessions
    (the page queues requests, so one runs at a time); everything else is this session's own,
    including ``folder``, where its downloads are written."""

    def __init__(self, pipe: ColorizePipeline, folder: str | Path | None = None) -> None:
        self.pipe = pipe
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="sketchcolor-app-"))
        self.sketch: np.ndarray | None = None
        self.reference: np.ndarray | None = None
        self.fixes = Fixes()
        self.order: list[str] = []  # "hint" / "recolor", in the order added, for undo
        self.pending: tuple[float, float] | None = None  # a hint's drawing point, awaiting its reference point
        self.options = Options()
        self.result: Colorization | None = None
        self.confidence: np.ndarray | None = None
        # prepared once and reused by every re-render: the letterboxed drawing (per extraction
        # settings) and the reference's encoder features and SCFT keys/values
        self._frame: tuple[tuple, Frame] | None = None
        self._references: References | None = None
        self._base: tuple[tuple, Colorization, np.ndarray | None] | None = None  # the last model run

    # -- inputs ---------------------------------------------------------------------------------

    def set_sketch(self, path: str | Path | None, name: str = "sketch") -> np.ndarray | None:
        """Read an uploaded drawing (or picture, with ``extract_sketch``); None clears it. A new
        drawing starts with the same fixes (they are relative; made for this character)."""
        # a bad file leaves no stale drawing behind
        self.sketch, self.result, self.confidence, self.pending = None, None, None, None
        self._frame, self._base = None, None
        self.sketch = None if path is None else _limited(load_image(path, name=name), name)
        return self.sketch

    def set_reference(self, path: str | Path | None, name: str = "reference") -> np.ndarray | None:
        self.reference, self.result, self.confidence, self.pending = None, None, None, None
        self._references, self._base = None, None
        self.reference = None if path is None else _limited(load_image(path, name=name), name)
        return self.reference

    @property
    def reference_box(self) -> Letterbox:
        """Where the reference sits in the model's square (the frame of its heat maps and hint
        points): the letterbox the pipeline encoded it with."""
        return self.references().boxes[0]

    def line_art(self) -> np.ndarray:
        """The drawing as the model sees it at full size (extracted with the current settings)."""
        self._need_inputs(reference=False)
        return self.frame().line

    def frame(self) -> Frame:
        """The drawing made ready for the model with the current extraction settings (cached)."""
        self._need_inputs(reference=False)
        key = (self.options.extract_sketch, tuple(sorted(self.options.xdog.items())))
        if self._frame is None or self._frame[0] != key:
            self._frame = (key, self.pipe.load_frame(self.sketch, self.options.extract_sketch, self.options.xdog))
            self._base = None
        return self._frame[1]

    def references(self) -> References:
        """The reference encoded once (:meth:`ColorizePipeline.encode_references`)."""
        self._need_inputs()
        if self._references is None:
            self._references = self.pipe.encode_references(self.reference)
        return self._references

    # -- colorizing -----------------------------------------------------------------------------

    def colorize(self, options: Options | None = None) -> View:
        """Colorize the drawing with the reference, the options and every fix so far. Options
        that fail (recolors with another fill, a bad extractor setting) are not kept: the
        session stays with those of the result shown."""
        previous = self.options
        if options is not None:
            self.options = options
        try:
            return self._render()
        except BaseException:
            self.options = previous
            raise

    def _render(self) -> View:
        self._need_inputs()
        o = self.options
        fixes = self.fixes if len(self.fixes) else None
        if fixes is not None and fixes.recolors and o.fill != "regions":
            raise SketchColorError("recolors paint regions: switch the fill back to regions or undo them")
        start = time.perf_counter()
        frame = self.frame()
        # the model runs only when its inputs change (drawing, extraction, rendering options,
        # hints); a recolor repaints the last result's regions
        # (a new drawing, reference or extraction setting resets _base)
        key = (o.fill, o.palette_snap, o.paint_background, tuple(self.fixes.hints))
        if self._base is None or self._base[0] != key:
            hints = Fixes(hints=list(self.fixes.hints)) if self.fixes.hints else None
            base = self.pipe.colorize_frames([frame], self.references(), o.fill, o.palette_snap, o.paint_background,
                                             fixes=hints)[0]
            confidence = None
            if base.regions is not None and base.attention is not None:
                confidence = region_confidence(base.attention, base.regions.labels, base.box, base.grid,
                                               base.reference_grids, self.pipe.config.model.feature_stride)
            self._base = (key, base, confidence)
        _, base, self.confidence = self._base
        self.result = apply_recolors(base, self.fixes.recolors) if self.fixes.recolors else base
        elapsed = time.perf_counter() - start
        marked = self.result.image
        message = f"colorized in {elapsed * 1000:.0f} ms"
        if self.confidence is not None:
            r = self.result
            weak = weakest_regions(self.confidence, r.regions.labels, r.regions.paper)
            marked = outline_regions(r.image, r.regions.labels, weak)
            if weak:
                message += ("; least confident regions outlined (match "
                            + ", ".join(f"{self.confidence[i]:.2f}" for i in weak) + ")")
        if len(self.fixes):
            message += f"; {len(self.fixes)} fix(es) applied"
        return View(result=self.result.image, confidence=marked, message=message, elapsed=elapsed)

    # -- clicks ---------------------------------------------------------------------------------

    def click_result(self, x: float, y: float, mode: str, color: str = "#ff0000", strength: float = 1.5) -> View:
        """A click at pixel (x, y) of the drawing or result. inspect: that point's attention over
        the reference; hint: remember the point (the next click on the reference completes the
        hint); recolor: paint the region there in ``color``."""
        self._need_result()
        point = to_point(x, y, self.result.image.shape)
        if mode == "inspect":
            return self._inspect_sketch(point)
        if mode == "hint":
            self.pending = point
            return View(message=f"hint: drawing point ({point[0]:.2f}, {point[1]:.2f}) chosen; "
                                "now click where its color should come from in the reference")
        if mode == "recolor":
            fix = Recolor(point, parse_color(color))

            def add() -> None:
                self.fixes.recolors.append(fix)
                self.order.append("recolor")

            return self._change_fixes(add)
        raise SketchColorError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")

    def click_reference(self, x: float, y: float, mode: str, strength: float = 1.5) -> View:
        """A click at pixel (x, y) of the reference. inspect: which parts of the drawing draw on
        it; hint: complete the pending hint and re-run; recolor: pick the color there."""
        self._need_inputs()
        point = to_point(x, y, self.reference.shape)
        if mode == "inspect":
            self._need_result()
            return self._inspect_reference(point)
        if mode == "hint":
            if self.pending is None:
                return View(message="hint: click the drawing first, then the reference")
            fix = Hint(self.pending, point, float(strength))

            def add() -> None:
                self.fixes.hints.append(fix)
                self.order.append("hint")
                self.pending = None

            return self._change_fixes(add)
        if mode == "recolor":
            px, py = point_pixel(point, self.reference.shape)
            rgb = self.reference[py, px]
            return View(color=to_hex(rgb), message=f"color {to_hex(rgb)} picked from the reference; "
                                                   "click a region of the result to paint it")
        raise SketchColorError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")

    def _inspect_sketch(self, point: tuple[float, float]) -> View:
        r = self._attention_result()
        stride = self.pipe.config.model.feature_stride
        heat = sketch_point_heat(r.attention, point, r.box, r.grid, r.reference_grids[0], stride)
        message = f"where the color at ({point[0]:.2f}, {point[1]:.2f}) came from"
        if r.regions is not None and self.confidence is not None:
            label = r.regions.label_at(*point_pixel(point, r.regions.labels.shape))
            message += f"; this region's match confidence {self.confidence[label]:.2f}"
        return View(heat=heat_on(self.reference, heat, self.reference_box), message=message)

    def _inspect_reference(self, point: tuple[float, float]) -> View:
        r = self._attention_result()
        stride = self.pipe.config.model.feature_stride
        heat = reference_point_heat(r.attention, point, self.reference_box, r.grid, r.reference_grids[0], stride)
        return View(heat=heat_on(r.line, heat, r.box),
                    message=f"which parts of the drawing take their color from reference point ({point[0]:.2f}, {point[1]:.2f})")

    # -- the list of fixes ----------------------------------------------------------------------

    def undo(self) -> View:
        """Drop the last fix and re-render."""
        if not self.order:
            return View(message="no fix to undo")
        kind = self.order[-1]

        def drop() -> None:
            self.order.pop()
            (self.fixes.hints if kind == "hint" else self.fixes.recolors).pop()

        return self._change_fixes(drop, f"undid a {kind}")

    def clear_fixes(self) -> View:
        def clear() -> None:
            self.fixes, self.order, self.pending = Fixes(), [], None

        return self._change_fixes(clear, "fixes cleared")

    def load_fixes(self, path: str | Path) -> View:
        """Replace the fixes with a saved fixes file (from this drawing or another of the character)."""
        fixes = Fixes.load(path)

        def replace() -> None:
            self.fixes = fixes
            self.order = ["hint"] * len(fixes.hints) + ["recolor"] * len(fixes.recolors)

        return self._change_fixes(replace, f"loaded {len(fixes)} fix(es)")

    def _change_fixes(self, change: Callable[[], None], message: str = "") -> View:
        """Apply ``change`` to the fixes and re-render when the inputs are there (else say
        ``message``). A render that fails puts the fixes (and the pending hint point) back as
        they were, so the list always matches the picture shown."""
        saved = Fixes(list(self.fixes.hints), list(self.fixes.recolors)), list(self.order), self.pending
        change()
        if not self._ready():
            return View(message=message)
        try:
            return self.colorize()
        except BaseException:
            self.fixes, self.order, self.pending = saved
            raise

    def fixes_table(self) -> list[list[str]]:
        """One row per fix, in the order added: kind, where, what."""
        rows, counts = [], {"hint": 0, "recolor": 0}
        for kind in self.order:
            i = counts[kind]
            counts[kind] += 1
            if kind == "hint":
                h = self.fixes.hints[i]
                rows.append(["hint", f"({h.sketch[0]:.2f}, {h.sketch[1]:.2f})",
                             f"from reference ({h.reference[0]:.2f}, {h.reference[1]:.2f}), strength {h.strength:g}"])
            else:
                rc = self.fixes.recolors[i]
                rows.append(["recolor", f"({rc.point[0]:.2f}, {rc.point[1]:.2f})", to_hex(rc.color)])
        return rows

    # -- downloads ------------------------------------------------------------------------------

    def save_outputs(self) -> tuple[Path, Path, Path]:
        """Write the result, the color layer (transparent PNG) and the fixes (JSON) into this
        session's folder; -> their paths."""
        self._need_result()
        paths = (self.folder / "colorized.png", self.folder / "color_layer.png", self.folder / "fixes.json")
        save_image(self.result.image, paths[0])
        save_image(self.result.color_layer, paths[1])
        self.fixes.save(paths[2])
        return paths

    # -- checks ---------------------------------------------------------------------------------

    def _ready(self) -> bool:
        return self.sketch is not None and self.reference is not None

    def _need_inputs(self, reference: bool = True) -> None:
        if self.sketch is None:
            raise SketchColorError("upload or pick a drawing first")
        if reference and self.reference is None:
            raise SketchColorError("upload or pick a reference first")

    def _need_result(self) -> None:
        if self.result is None:
            raise SketchColorError("colorize first")

    def _attention_result(self) -> Colorization:
        self._need_result()
        if self.result.attention is None:
            raise SketchColorError("this model has no attention map (model.fusion=concat): nothing to show")
        return self.result
