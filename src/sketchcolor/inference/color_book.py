"""A color book: one character's memory of region colors, so that the same part keeps one color
from frame to frame (issue 13).

The book holds *swatches*: the colors the frames' regions were given (each region is a flat color
of :func:`~sketchcolor.inference.render.fill_regions`' paint). A swatch remembers the reference
area the region was painted from and the color it gave: the areas are the entries of a palette
(k-means in Lab over the references' pixels, render's
:func:`~sketchcolor.inference.render.reference_palette`, plus one entry for the paper); each
reference feature cell belongs to the entry nearest its color, and a region's area is the entry on
whose cells its sketch cells' SCFT attention puts the most weight (at least ``min_share`` of it;
without an attention map, the entry nearest its color).

Frame by frame, in order, every region goes to the swatch nearest its color within ``radius`` ΔE
(Lab; a swatch of the region's own reference area counts ``entry_bonus`` ΔE nearer), or, if none
is that near, starts a new swatch. A region that lies mostly within a region of the previous
frame keeps that region's swatch while its color stays within 1.5 ``radius``, and whatever its
color when the two are the same region (intersection over union at least :data:`SAME_IOU`): the
network flips a small part it cannot decide between two colors from frame to frame, and lets a
large one drift far as the drawing moves. A new part drawn over a larger old region, or a region
merged through a gap with a neighbour more than two thirds its size, is not the same region and
goes by color (one merged with a smaller neighbour keeps its swatch). A swatch's color is the area-weighted mean of the regions that
joined it in its first ``learn_frames`` frames, then frozen; every region is painted in its
swatch's color (``strength`` 1: exactly; less: part of the way). So the first frames (or a book
saved by an earlier run, :meth:`ColorBook.save` / :meth:`ColorBook.load`, plain JSON) set the
colors the later ones keep, while the small frame-to-frame wobble of the network's colors is
snapped away. Matching by color first is deliberate: the shipped model's attention is spread out
(a region's top reference area often holds under half of its attention and changes from frame to
frame), so it decides only between swatches of similar color.

Render is composed, not changed: the book works on ``fill_regions``' finished paint and alpha.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage.color import lab2rgb, rgb2lab

from sketchcolor.atomic import write_text_atomic
from sketchcolor.data.io import Letterbox
from sketchcolor.errors import SketchColorError
from sketchcolor.inference.render import reference_palette
from sketchcolor.jsonfile import read_json

BOOK_FORMAT = "sketchcolor-color-book"
BOOK_VERSION = 1
PAPER_LAB = (100.0, 0.0, 0.0)
MAX_ENTRIES = 256
MAX_SWATCHES = 4096


def image_digest(image: np.ndarray) -> str:
    """``sha256:HEX`` of a decoded picture (shape and pixels): the same picture in another file
    format has the same digest."""
    h = hashlib.sha256(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return "sha256:" + h.hexdigest()


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 3]`` -> Lab ``[N, 3]``."""
    return rgb2lab(rgb.reshape(-1, 1, 3)).reshape(-1, 3)


def _to_rgb(lab: np.ndarray) -> np.ndarray:
    """Lab ``[N, 3]`` -> uint8 ``[N, 3]``."""
    rgb = lab2rgb(np.asarray(lab, np.float64).reshape(-1, 1, 3)).reshape(-1, 3)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def flat_regions(paint: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The regions of a flat paint ``[H, W, 3]``: connected parts (4-neighbours) of one color,
    paper (``alpha`` 0) left out. -> labels int32 ``[H, W]`` (0: paper, 1..N) and each region's
    color uint8 ``[N + 1, 3]`` (row 0 unused)."""
    code = (paint[..., 0].astype(np.int32) << 16) | (paint[..., 1].astype(np.int32) << 8) | paint[..., 2]
    code[alpha == 0] = -1
    labels = np.zeros(code.shape, np.int32)
    colors = [np.zeros(3, np.uint8)]
    for value in np.unique(code):
        if value < 0:
            continue
        n, parts = cv2.connectedComponents((code == value).astype(np.uint8), connectivity=4)
        if n <= 1:
            continue
        inside = parts > 0
        labels[inside] = parts[inside] + len(colors) - 1
        rgb = np.array([(value >> 16) & 255, (value >> 8) & 255, value & 255], np.uint8)
        colors.extend([rgb] * (n - 1))
    return labels, np.stack(colors)


def dumps(data: dict[str, Any]) -> str:
    """JSON text with one top-level key, one palette row and one entry per line (readable, diffable)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n".join(f"  {json.dumps(v)}" for v in value)
            lines.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


@dataclass
class Swatch:
    """One remembered color: ``entry`` the palette row (reference area) of the region that started
    it (-1: none clear), the summed Lab of the regions that taught it (weighted by area), their
    total area, and in how many frames it learned."""

    entry: int
    lab_sum: np.ndarray
    weight: float
    frames: int

    @property
    def lab(self) -> np.ndarray:
        return self.lab_sum / self.weight


# a region is the same as the previous frame's region it overlaps most when their intersection
# over union is at least this (smooth motion keeps it near 0.8-0.9; a new part drawn over a larger
# old region, or a region merged with a neighbour more than 2/3 of its size, falls below)
SAME_IOU = 0.6

SETTINGS = {"learn_frames": 3, "radius": 10.0, "entry_bonus": 3.0, "min_share": 0.3, "strength": 1.0, "min_area": 16}


class ColorBook:
    """Per-character memory of region colors (see the module's docstring).

    ``palette``: Lab ``[E, 3]``, the reference areas (the last row is the paper); ``references``:
    the digests (:func:`image_digest`) of the references it was made for; the settings as in
    :data:`SETTINGS` (``radius``, ``entry_bonus`` in ΔE; ``min_area`` in pixels: a smaller region
    joins a swatch but does not start one)."""

    def __init__(self, palette: np.ndarray, references: list[str], learn_frames: int = 3, radius: float = 10.0,
                 entry_bonus: float = 3.0, min_share: float = 0.3, strength: float = 1.0, min_area: int = 16) -> None:
        if learn_frames < 1 or min_area < 1:
            raise SketchColorError(f"color book: learn_frames and min_area must be at least 1, got {learn_frames} and {min_area}")
        if not 0.0 <= min_share <= 1.0 or not 0.0 <= strength <= 1.0:
            raise SketchColorError(f"color book: min_share and strength lie in [0, 1], got {min_share} and {strength}")
        if not radius >= 0.0 or not entry_bonus >= 0.0:
            raise SketchColorError(f"color book: radius and entry_bonus must be >= 0, got {radius} and {entry_bonus}")
        self.palette = np.asarray(palette, np.float64).reshape(-1, 3)
        self.references = list(references)
        self.learn_frames, self.radius, self.entry_bonus = learn_frames, radius, entry_bonus
        self.min_share, self.strength, self.min_area = min_share, strength, min_area
        self.swatches: list[Swatch] = []
        # temporal coherence (frames in order): a region mostly covering a region of the previous
        # frame keeps that region's swatch while its color stays within track_radius * radius, or
        # whatever its color when they are the same region (see apply)
        self.track, self.track_radius = True, 1.5
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.frames = 0  # frames applied (or learned from) so far
        self.last_matches: list[tuple[int, int, int]] = []  # (region, entry, swatch or -1) of the last frame

    def settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SETTINGS}

    @classmethod
    def from_references(cls, images: list[np.ndarray], k: int = 8, **settings: Any) -> ColorBook:
        """An empty book whose areas are the references' palette (k-means over all their pixels)
        plus the paper."""
        pixels = np.concatenate([im.reshape(-1, 1, 3) for im in images], axis=0)
        palette = np.vstack([reference_palette(pixels, k=k), [PAPER_LAB]])
        return cls(palette, [image_digest(im) for im in images], **settings)

    def check_references(self, images: list[np.ndarray], where: str) -> None:
        """One line when ``images`` are not the references this book was made for."""
        got = [image_digest(im) for im in images]
        if got != self.references:
            raise SketchColorError(f"{where}: this color book was made for other references "
                                   f"({len(self.references)} picture(s), first {self.references[0][:19]}...); "
                                   f"use the same --reference pictures in the same order, or a new book file")

    # -- matching -------------------------------------------------------------------------------

    def cell_entries(self, cell_colors: np.ndarray) -> np.ndarray:
        """The entry of each reference cell (uint8 ``[M, 3]``): the nearest palette color in Lab."""
        lab = _to_lab(cell_colors)
        return np.linalg.norm(lab[:, None, :] - self.palette[None], axis=2).argmin(axis=1)

    def entry_probabilities(self, attention: np.ndarray, cell_colors: np.ndarray, grid: int,
                            box: Letterbox) -> np.ndarray:
        """Where each sketch position's attention goes, per entry: ``attention`` ``[grid**2, M]``
        (rows sum to 1) over reference cells colored ``cell_colors`` -> float32 ``[h, w, E]`` over
        the drawing's part of the letterboxed square (``box``; h, w = its inner size)."""
        onehot = np.zeros((attention.shape[1], len(self.palette)), np.float32)
        onehot[np.arange(attention.shape[1]), self.cell_entries(cell_colors)] = 1.0
        probs = (attention.astype(np.float32) @ onehot).reshape(grid, grid, -1)
        full = cv2.resize(probs, (box.size, box.size), interpolation=cv2.INTER_LINEAR).reshape(box.size, box.size, -1)
        return full[box.top:box.top + box.inner_h, box.left:box.left + box.inner_w]

    def match(self, labels: np.ndarray, colors: np.ndarray, probs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Each region's entry and share: ``labels`` ``[H, W]`` (0 = paper), ``colors`` uint8
        ``[N + 1, 3]``, ``probs`` from :meth:`entry_probabilities` (or None: nearest color).
        -> entries int ``[N + 1]`` (-1: none) and shares ``[N + 1]``."""
        n = len(colors) - 1
        entries = np.full(n + 1, -1)
        shares = np.zeros(n + 1)
        nearest = self.cell_entries(colors)  # the fallback: the entry nearest the region's own color
        if probs is None:
            entries[1:], shares[1:] = nearest[1:], 1.0
            return entries, shares
        small = cv2.resize(labels, (probs.shape[1], probs.shape[0]), interpolation=cv2.INTER_NEAREST).ravel()
        area = np.bincount(small, minlength=n + 1)[: n + 1].astype(np.float64)
        flat = probs.reshape(-1, probs.shape[-1])
        mass = np.stack([np.bincount(small, weights=flat[:, e], minlength=n + 1)[: n + 1]
                         for e in range(flat.shape[1])], axis=1)
        seen = area > 0
        mass[seen] /= area[seen, None]
        entries[seen] = mass[seen].argmax(axis=1)
        shares[seen] = mass[seen].max(axis=1)
        lost = ~seen  # too small to show at the model's resolution: its own color decides
        entries[lost], shares[lost] = nearest[lost], 1.0
        entries[0], shares[0] = -1, 0.0
        return entries, shares

    # -- learning and painting ------------------------------------------------------------------

    def nearest(self, lab: np.ndarray, entry: int) -> int:
        """The swatch for a region of color ``lab`` matched to ``entry``: the nearest within
        ``radius`` ΔE (one of ``entry``'s counting ``entry_bonus`` nearer), or -1."""
        if not self.swatches:
            return -1
        colors = np.stack([w.lab for w in self.swatches])
        d = np.linalg.norm(colors - lab[None], axis=1)
        score = d - self.entry_bonus * np.array([entry >= 0 and w.entry == entry for w in self.swatches])
        score[d > self.radius] = np.inf
        best = int(score.argmin())
        return best if np.isfinite(score[best]) else -1

    def _previous_swatches(self, labels: np.ndarray, area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Temporal coherence: for each region, the swatch of the previous frame's region that covers
        most of it (at least half), or -1 (no previous frame, another size, no such region); and
        whether the two are the same region (intersection over union at least :data:`SAME_IOU`:
        not a new part drawn over a larger old one). -> int ``[N + 1]``, bool ``[N + 1]``."""
        out, same = np.full(len(area), -1), np.zeros(len(area), bool)
        if not self.track or self._previous is None or self._previous[0].shape != labels.shape:
            return out, same
        prev_labels, prev_chosen = self._previous
        m = len(prev_chosen)
        joint = np.bincount(labels.ravel().astype(np.int64) * m + prev_labels.ravel(), minlength=len(area) * m)
        joint = joint.reshape(len(area), m)
        joint[:, 0] = 0  # the previous frame's paper
        prev_area = np.bincount(prev_labels.ravel(), minlength=m)[:m]
        best = joint.argmax(axis=1)
        overlap = joint[np.arange(len(area)), best]
        ok = overlap >= 0.5 * np.maximum(area, 1)
        out[ok] = prev_chosen[best[ok]]
        union = area[ok] + prev_area[best[ok]] - overlap[ok]
        same[ok] = overlap[ok] >= SAME_IOU * np.maximum(union, 1)
        out[0], same[0] = -1, False
        return out, same

    def apply(self, paint: np.ndarray, alpha: np.ndarray, probs: np.ndarray | None = None,
              learn: bool = True) -> np.ndarray:
        """One frame's flat ``paint`` ``[H, W, 3]`` (and its ``alpha``, 0 on the paper) -> the paint
        with each region in its swatch's color. With ``learn``, regions start swatches and teach
        those still learning (their first ``learn_frames`` frames); larger regions go first."""
        labels, colors = flat_regions(paint, alpha)
        entries, shares = self.match(labels, colors, probs)
        entries = np.where(shares >= self.min_share, entries, -1)
        area = np.bincount(labels.ravel(), minlength=len(colors))
        lab = _to_lab(colors)
        chosen = np.full(len(colors), -1)
        before, same = self._previous_swatches(labels, area)
        taught: set[int] = set()
        for i in sorted(range(1, len(colors)), key=lambda i: -area[i]):
            tracked = int(before[i])
            far = tracked >= 0 and np.linalg.norm(self.swatches[tracked].lab - lab[i]) > self.track_radius * self.radius
            k = tracked
            # the same region as in the previous frame keeps its swatch even when its color moved
            # far: the network's colors of a part it cannot decide flip (an eye near-white in one
            # frame, yellow in the next) or drift far as the drawing moves (a tent's pink to red
            # over 30 frames); that color teaches nothing
            if k < 0 or (far and not same[i]):
                k = self.nearest(lab[i], int(entries[i]))
            if k < 0 and learn and area[i] >= self.min_area:
                self.swatches.append(Swatch(int(entries[i]), np.zeros(3), 0.0, 0))
                k = len(self.swatches) - 1
            wobble = far and k == tracked
            if k >= 0 and learn and self.swatches[k].frames < self.learn_frames and not wobble:
                w = self.swatches[k]
                w.lab_sum = w.lab_sum + lab[i] * area[i]
                w.weight += float(area[i])
                taught.add(k)
            chosen[i] = k
        for k in taught:
            self.swatches[k].frames += 1
        self.frames += 1
        self._previous = (labels, chosen)
        self.last_matches = [(i, int(entries[i]), int(chosen[i])) for i in range(1, len(colors))]
        new = lab.copy()
        for i in np.nonzero(chosen >= 0)[0]:
            new[i] = lab[i] + self.strength * (self.swatches[chosen[i]].lab - lab[i])
        changed = np.nonzero(np.any(np.abs(new - lab) > 1e-9, axis=1))[0]
        if len(changed) == 0:
            return paint
        rgb = colors.copy()
        rgb[changed] = _to_rgb(new[changed])
        out = paint.copy()
        mask = np.isin(labels, changed)
        out[mask] = rgb[labels[mask]]
        return out

    # -- JSON -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BOOK_FORMAT,
            "version": BOOK_VERSION,
            "references": self.references,
            "settings": self.settings(),
            "frames": self.frames,
            "palette": [[round(float(v), 6) for v in row] for row in self.palette],
            "swatches": [{"entry": w.entry, "lab": [round(float(v), 6) for v in w.lab], "weight": w.weight,
                          "frames": w.frames} for w in self.swatches],
        }

    def save(self, path: str | Path) -> Path:
        """Write the book as JSON, atomically (a run killed mid-save leaves the old book)."""
        return write_text_atomic(path, dumps(self.to_dict()))

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ColorBook:
        """A book from its JSON object; one line naming ``where`` and what is wrong otherwise."""

        def bad(what: str) -> SketchColorError:
            return SketchColorError(f"{where}: not a valid color book: {what}")

        def number(v: Any, what: str) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(f"{what} must be a finite number, got {json.dumps(v)[:40]}")
            return float(v)

        def integer(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def lab(v: Any, what: str) -> list[float]:
            if not isinstance(v, list) or len(v) != 3:
                raise bad(f"{what} must be a list of 3 numbers (L, a, b)")
            out = [number(x, what) for x in v]
            if not 0.0 <= out[0] <= 100.0 or abs(out[1]) > 200 or abs(out[2]) > 200:
                raise bad(f"{what} {out} is not a Lab color (L in [0, 100], |a|, |b| <= 200)")
            return out

        if not isinstance(data, dict):
            raise bad("the file must hold a JSON object")
        if data.get("format") != BOOK_FORMAT:
            raise bad(f'"format" must be "{BOOK_FORMAT}"')
        if data.get("version") != BOOK_VERSION:
            raise bad(f'version {json.dumps(data.get("version"))[:20]} is not supported (this sketchcolor reads version {BOOK_VERSION})')
        unknown = set(data) - {"format", "version", "references", "settings", "frames", "palette", "swatches"}
        if unknown:
            raise bad(f"unknown key {sorted(unknown)[0]!r}")
        refs = data.get("references")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.startswith("sha256:") for r in refs):
            raise bad('"references" must be a non-empty list of "sha256:..." digests')
        settings = data.get("settings", {})
        if not isinstance(settings, dict) or set(settings) - set(SETTINGS):
            raise bad(f'"settings" may hold only {", ".join(SETTINGS)}')
        values: dict[str, Any] = {}
        for key, default in SETTINGS.items():
            v = settings.get(key, default)
            if isinstance(default, int):
                if not integer(v) or v < 1:
                    raise bad(f"settings.{key} must be an integer >= 1")
                values[key] = v
            else:
                values[key] = number(v, f"settings.{key}")
        if not (0 <= values["min_share"] <= 1 and 0 <= values["strength"] <= 1):
            raise bad("settings.min_share and settings.strength must lie in [0, 1]")
        if values["radius"] < 0 or values["entry_bonus"] < 0:
            raise bad("settings.radius and settings.entry_bonus must be >= 0")
        frames = data.get("frames", 0)
        if not integer(frames) or frames < 0:
            raise bad('"frames" must be an integer >= 0')
        palette = data.get("palette")
        if not isinstance(palette, list) or not 1 <= len(palette) <= MAX_ENTRIES:
            raise bad(f'"palette" must be a list of 1 to {MAX_ENTRIES} Lab colors')
        rows = [lab(row, f"palette[{i}]") for i, row in enumerate(palette)]
        book = cls(np.array(rows), refs, **values)
        book.frames = frames
        swatches = data.get("swatches")
        if not isinstance(swatches, list) or len(swatches) > MAX_SWATCHES:
            raise bad(f'"swatches" must be a list of at most {MAX_SWATCHES}')
        for j, item in enumerate(swatches):
            if not isinstance(item, dict) or set(item) != {"entry", "lab", "weight", "frames"}:
                raise bad(f"swatches[{j}] must have exactly entry, lab, weight and frames")
            entry, seen = item["entry"], item["frames"]
            if not integer(entry) or not -1 <= entry < len(rows):
                raise bad(f"swatches[{j}].entry must be a palette row (0 to {len(rows) - 1}) or -1")
            if not integer(seen) or seen < 1:
                raise bad(f"swatches[{j}].frames must be an integer >= 1")
            weight = number(item["weight"], f"swatches[{j}].weight")
            if weight <= 0:
                raise bad(f"swatches[{j}].weight must be positive")
            color = np.array(lab(item["lab"], f"swatches[{j}].lab"))
            book.swatches.append(Swatch(entry, color * weight, weight, seen))
        return book

    @classmethod
    def load(cls, path: str | Path) -> ColorBook:
        """Read a book saved by :meth:`save`; one line naming the file when it cannot be used."""
        data = read_json(path, "color book")
        return cls.from_dict(data, str(path))
