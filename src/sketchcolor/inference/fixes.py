"""A user's fixes to a colorization: correspondence hints and direct recolors, saved as JSON.

- A **hint** pairs a point of the sketch with a point of the reference: "take this part's color
  from there". It becomes a bias on SCFT's logits (:func:`hint_bias`) for the sketch cells of
  the line-art region under the point (and those around the point), peaked on the reference
  cells around the other point, so the model re-runs with that correspondence imposed and the
  rest of the picture unchanged where the hint does not reach.
- A **recolor** paints the region under a point of the drawing in a chosen color after the
  model (no re-run).

Points are stored normalized to [0, 1] over the picture's width and height, so a fixes file made
on one drawing applies to the next drawing of the same character (another size, a similar pose).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sketchcolor.atomic import write_text_atomic
from sketchcolor.data.io import Letterbox
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.cells import cell_coverage, point_pixel, to_cell
from sketchcolor.jsonfile import read_json

FORMAT = "sketchcolor-fixes"
VERSION = 1
MAX_FIXES = 1000  # a fixes file is a human's clicks; more is not one
MAX_STRENGTH = 4.0  # in units of a row's logit range (models/scft.py); 2 already makes the hinted cell win


@dataclass(frozen=True)
class Hint:
    """``sketch`` and ``reference``: (x, y) in [0, 1] of each picture; ``strength`` >= 0 is the
    bias at the pair's centre in units of each attention row's logit range (0 changes nothing;
    from about 1.3 on, the hinted reference cell has the row's highest logit); ``reference_index``:
    which reference, where several are attended together."""

    sketch: tuple[float, float]
    reference: tuple[float, float]
    strength: float = 1.5
    reference_index: int = 0


@dataclass(frozen=True)
class Recolor:
    """Paint the region under ``point`` ((x, y) in [0, 1] of the drawing) in ``color`` (uint8 RGB)."""

    point: tuple[float, float]
    color: tuple[int, int, int]


@dataclass
class Fixes:
    """The ordered list of a user's fixes (undo drops the last one)."""

    hints: list[Hint] = field(default_factory=list)
    recolors: list[Recolor] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hints) + len(self.recolors)

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION,
                "hints": [{"sketch": list(h.sketch), "reference": list(h.reference), "strength": h.strength,
                           "reference_index": h.reference_index} for h in self.hints],
                "recolors": [{"point": list(r.point), "color": list(r.color)} for r in self.recolors]}

    def save(self, path: str | Path) -> None:
        """Write the fixes as JSON, atomically."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def from_json(cls, data: object, where: str = "fixes") -> Fixes:
        """Parse and check a fixes document; every problem is one :class:`SketchColorError` line."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SketchColorError(f"{where}: not a sketchcolor fixes file (expected \"format\": \"{FORMAT}\")")
        if isinstance(data.get("version"), bool) or data.get("version") != VERSION:
            raise SketchColorError(f"{where}: fixes version {data.get('version')!r} is not supported (expected {VERSION})")
        hints, recolors = data.get("hints", []), data.get("recolors", [])
        if not isinstance(hints, list) or not isinstance(recolors, list):
            raise SketchColorError(f"{where}: \"hints\" and \"recolors\" must be lists")
        if len(hints) + len(recolors) > MAX_FIXES:
            raise SketchColorError(f"{where}: {len(hints) + len(recolors)} fixes, more than the limit of {MAX_FIXES}")
        out = cls()
        for i, h in enumerate(hints):
            at = f"{where}: hints[{i}]"
            if not isinstance(h, dict):
                raise SketchColorError(f"{at} must be an object")
            strength = _number(h.get("strength", 1.5), at + ".strength")
            if not 0.0 <= strength <= MAX_STRENGTH:
                raise SketchColorError(f"{at}.strength must lie in [0, {MAX_STRENGTH:g}], got {strength}")
            index = h.get("reference_index", 0)
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise SketchColorError(f"{at}.reference_index must be an integer >= 0, got {index!r}")
            out.hints.append(Hint(_point(h.get("sketch"), at + ".sketch"), _point(h.get("reference"), at + ".reference"),
                                  strength, index))
        for i, r in enumerate(recolors):
            at = f"{where}: recolors[{i}]"
            if not isinstance(r, dict):
                raise SketchColorError(f"{at} must be an object")
            out.recolors.append(Recolor(_point(r.get("point"), at + ".point"), _color(r.get("color"), at + ".color")))
        return out

    @classmethod
    def load(cls, path: str | Path) -> Fixes:
        data = read_json(path, "fixes file")
        return cls.from_json(data, str(path))


def _number(v: object, where: str) -> float:
    try:  # an integer too large for a float (JSON allows any) is not a finite number either
        finite = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    except OverflowError:
        finite = False
    if not finite:
        raise SketchColorError(f"{where} must be a finite number, got {_short(v)}")
    return float(v)


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _point(v: object, where: str) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise SketchColorError(f"{where} must be [x, y] in [0, 1], got {v!r}")
    x, y = (_number(c, where) for c in v)
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise SketchColorError(f"{where} must be [x, y] in [0, 1], got {v!r}")
    return (x, y)


def _color(v: object, where: str) -> tuple[int, int, int]:
    if (not isinstance(v, (list, tuple)) or len(v) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in v)):
        raise SketchColorError(f"{where} must be [r, g, b] integers in 0-255, got {v!r}")
    return (int(v[0]), int(v[1]), int(v[2]))


def _gaussian(grid: tuple[int, int], centre: tuple[float, float], sigma: float) -> np.ndarray:
    """``[h * w]``: exp(-d^2 / 2 sigma^2) over the cell centres of ``grid`` (row-major)."""
    h, w = grid
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = (xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2
    return np.exp(-d2 / (2.0 * sigma**2)).ravel()


def hint_bias(hints: Sequence[Hint], sketch_box: Letterbox, reference_boxes: Sequence[Letterbox],
              grid: tuple[int, int], reference_grids: Sequence[tuple[int, int]], stride: int,
              sigma: float = 1.0, labels: np.ndarray | None = None,
              reference_sigma: float = 0.5) -> torch.Tensor | None:
    """The SCFT logit bias ``[1, hw, M]`` of ``hints`` (None when there are none or all have
    strength 0), in SCFT's units (a share of each row's logit range). Sketch cells near the
    hint's sketch point (Gaussian weight, ``sigma`` cells)
    and, given the drawing's regions ``labels`` (int ``[H, W]`` at its size, e.g.
    :func:`~sketchcolor.inference.render.sketch_regions`), the cells covered by the region under
    the point (weight: the share of the cell the region covers) get ``strength * weight`` times
    a Gaussian (``reference_sigma`` cells: narrow, so the cell under the point wins over its
    neighbours) over the reference cells around the hint's reference point; hints add up. ``M`` is the sum of the references' cell counts, in the order
    of :meth:`Colorizer.encode_reference`."""
    active = [h for h in hints if h.strength > 0]
    if not active:
        return None
    offsets = np.cumsum([0] + [g[0] * g[1] for g in reference_grids])
    bias = np.zeros((grid[0] * grid[1], int(offsets[-1])), np.float32)
    # with the drawing's regions, a hint is about the part of the drawing the user clicked, not
    # only the few cells around the click
    for h in active:
        if h.reference_index >= len(reference_grids):
            raise SketchColorError(f"a hint names reference {h.reference_index}, but there are {len(reference_grids)}")
        rows = _gaussian(grid, to_cell(h.sketch, sketch_box, stride), sigma)
        rows[rows < 1e-3] = 0.0
        if labels is not None:
            x, y = point_pixel(h.sketch, labels.shape)
            at = labels[y, x]
            rows = np.maximum(rows, cell_coverage(labels == at, sketch_box, grid, stride))
        cols = _gaussian(reference_grids[h.reference_index],
                         to_cell(h.reference, reference_boxes[h.reference_index], stride), reference_sigma)
        start = offsets[h.reference_index]
        bias[:, start:start + len(cols)] += h.strength * np.outer(rows, cols).astype(np.float32)
    return torch.from_numpy(bias)[None]
