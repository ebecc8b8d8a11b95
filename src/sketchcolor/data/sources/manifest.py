"""The manifest written beside prepared images: one row per picture, with source, licence and split.

The split is a stable hash of the drawing's *base id* (all variants of one drawing share it), so
it is the same on every machine and every run, and variants never straddle two splits.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from sketchcolor.atomic import atomic_path
from sketchcolor.errors import SketchColorError

MANIFEST = "manifest.csv"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Row:
    """One prepared picture. ``image``/``sketch``/``hed`` are paths relative to the data folder
    (``sketch`` empty when the source has no line art, ``hed`` empty until HED sketches are made)."""

    id: str
    base_id: str
    source: str
    split: str
    license: str
    attribution: str
    title: str
    image: str
    sketch: str = ""
    hed: str = ""


def write_manifest(folder: Path, rows: list[Row]) -> Path:
    """Write ``folder/manifest.csv`` atomically, rows sorted by id."""
    path = folder / MANIFEST
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[f.name for f in fields(Row)])
        w.writeheader()
        for r in sorted(rows, key=lambda r: (r.source, r.id)):
            w.writerow(asdict(r))
    return path


def read_manifest(folder: Path) -> list[Row]:
    """Rows of ``folder/manifest.csv``; a clear error when it is missing or malformed."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise SketchColorError(f"{path}: no manifest (run `sketchcolor prepare-data`)")
    try:
        with path.open(newline="") as fh:
            return [Row(**{k: (v or "") for k, v in rec.items()}) for rec in csv.DictReader(fh)]
    except (TypeError, csv.Error) as e:
        raise SketchColorError(f"{path}: malformed manifest ({e})") from None


def manifest_hash(folder: Path) -> str:
    """SHA-256 of the manifest file: names the exact data a model was trained on."""
    return hashlib.sha256((Path(folder) / MANIFEST).read_bytes()).hexdigest()
