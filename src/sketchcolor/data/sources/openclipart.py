"""Open Clip Art Library (public domain), Debian package ``openclipart-svg``.

SVGs under ``/usr/share/openclipart/svg/<category>/``; only colored drawings are kept (the rest
are black-and-white). Sketches come from the extractors at training time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchcolor.errors import SketchColorError

LICENSE = "Public domain (CC0)"
DEFAULT_ROOT = Path("/usr/share/openclipart/svg")


@dataclass(frozen=True)
class ClipArt:
    path: Path
    id: str
    category: str


def find_openclipart(explicit: str | Path | None = None) -> Path:
    root = Path(explicit) if explicit else DEFAULT_ROOT
    if not root.is_dir():
        raise SketchColorError(f"{root}: Open Clip Art not found; install the Debian package openclipart-svg (`make data`) or pass --source DIR")
    return root


def list_clipart(root: Path) -> list[ClipArt]:
    out = []
    for p in sorted(root.rglob("*.svg")):
        rel = p.relative_to(root).with_suffix("")
        category = rel.parts[0] if len(rel.parts) > 1 else "misc"
        # The whole relative path: the same file name recurs in several folders.
        ident = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(rel.parts))[:150]
        out.append(ClipArt(path=p, id=ident, category=category))
    return out


def svg_metadata(path: Path) -> tuple[str, str]:
    """(title, creator) from the SVG's Dublin Core metadata, empty when absent."""
    head = path.read_bytes()[:200_000].decode("utf-8", "replace")

    def first(tag: str) -> str:
        m = re.search(rf"<dc:{tag}>(.*?)</dc:{tag}>", head, re.S)
        if not m:
            return ""
        return re.sub(r"<[^>]+>", " ", m.group(1)).strip()[:200]

    return re.sub(r"\s+", " ", first("title")), re.sub(r"\s+", " ", first("creator"))


def is_colored(rgb: np.ndarray, min_drawn: float = 0.02, min_colored: float = 0.1, chroma: int = 40) -> bool:
    """True when a real share of the drawn (non-white) pixels has visible color."""
    px = rgb.reshape(-1, 3).astype(np.int16)
    drawn = px.min(axis=1) < 245
    if drawn.mean() < min_drawn:
        return False
    c = px[drawn].max(axis=1) - px[drawn].min(axis=1)
    return bool((c > chroma).mean() >= min_colored)
