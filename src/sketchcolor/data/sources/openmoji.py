"""OpenMoji (CC BY-SA 4.0): an artist's black line drawing aligned with each colored emoji.

Install with ``npm install openmoji@17.0.0``; the package holds ``color/svg/`` and ``black/svg/``
(same file names) and ``data/openmoji.json`` (author, skin tone and base emoji per file).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sketchcolor.errors import SketchColorError

LICENSE = "CC BY-SA 4.0"
# Codepoints that only vary a drawing: skin tones, gender signs and person/man/woman, joiners.
_SKIN = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
_GENDER = {"2640", "2642", "FE0F", "200D"}
_PERSON = {"1F468": "P", "1F469": "P", "1F9D1": "P", "1F466": "C", "1F467": "C", "1F9D2": "C",
           "1F474": "O", "1F475": "O", "1F9D3": "O"}


@dataclass(frozen=True)
class Emoji:
    hexcode: str
    base_id: str
    author: str
    title: str
    color_svg: Path
    line_svg: Path


def base_id(hexcode: str, skintone_base: str = "") -> str:
    """The drawing an emoji is a variant of: skin tone and gender variants share one base id."""
    parts = (skintone_base or hexcode).upper().split("-")
    kept = [_PERSON.get(p, p) for p in parts if p not in _SKIN and p not in _GENDER]
    return "-".join(kept) or hexcode.upper()


def find_openmoji(explicit: str | Path | None = None) -> Path:
    """The openmoji npm package folder: ``explicit``, else ./node_modules/openmoji or .cache/npm/."""
    candidates = [Path(explicit)] if explicit else [Path("node_modules/openmoji"), Path(".cache/npm/node_modules/openmoji")]
    for c in candidates:
        if (c / "color" / "svg").is_dir() and (c / "black" / "svg").is_dir():
            return c
    raise SketchColorError(f"OpenMoji not found at {', '.join(map(str, candidates))}: run `npm install openmoji@17.0.0` "
                           "(or `make data`) or pass --source DIR")


def list_emojis(root: Path) -> list[Emoji]:
    """Every emoji that has both a color and a black drawing, with its metadata."""
    meta_path = root / "data" / "openmoji.json"
    meta = {}
    if meta_path.is_file():
        meta = {m["hexcode"]: m for m in json.loads(meta_path.read_text(encoding="utf-8"))}
    out = []
    for color in sorted((root / "color" / "svg").glob("*.svg")):
        hexcode = color.stem
        line = root / "black" / "svg" / color.name
        if not line.is_file():
            continue
        m = meta.get(hexcode, {})
        out.append(Emoji(hexcode=hexcode, base_id=base_id(hexcode, m.get("skintone_base_hexcode", "")),
                         author=m.get("openmoji_author", "") or "OpenMoji contributors",
                         title=re.sub(r"\s+", " ", m.get("annotation", "") or hexcode), color_svg=color, line_svg=line))
    return out
