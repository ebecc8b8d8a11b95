"""Rendering SVG drawings on white, offline, with resvg (a self-contained wheel)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sketchcolor.data.io import load_image, resize_longer_side
from sketchcolor.errors import ImageError, SketchColorError


def render_svg(path: Path, size: int) -> np.ndarray:
    """Render ``path`` so that its longer side is ``size`` px, on white: uint8 ``[H, W, 3]``.

    SVGs without width/height fall back to their viewBox (resvg does this itself); files resvg
    cannot parse raise :class:`ImageError`.
    """
    try:
        import resvg_py
    except ImportError:
        raise SketchColorError("rendering SVG needs resvg-py: pip install resvg-py==0.5.0") from None
    def render(svg: str | None = None, **kw: float) -> np.ndarray:
        source = {"svg_string": svg} if svg is not None else {"svg_path": str(path)}
        png = resvg_py.svg_to_bytes(background="#ffffff", skip_system_fonts=True, **source, **kw)
        with Image.open(io.BytesIO(bytes(png))) as im:
            if im.width * im.height > 40_000_000:  # an SVG declaring a poster-sized canvas
                raise ValueError(f"renders to {im.width}x{im.height} px")
            return load_image(im, str(path))

    try:
        declared = _declared_size(path)
        try:
            # One render straight at the target size when the file declares its size: rendering at
            # the declared size first costs seconds for the poster-sized canvases of some clip art.
            natural = render(zoom=size / max(declared)) if declared else render()
            svg = None
        except ValueError as e:
            if "size" not in str(e):
                raise
            svg = _big_canvas(path)  # about a third of clip art has a size resvg rejects
            natural = _crop_to_content(render(svg))
        h, w = natural.shape[:2]
        if h < 2 or w < 2:
            raise ImageError(f"{path}: SVG renders to {w}x{h} px")
        rgb = render(zoom=size / max(h, w)) if svg is None and not declared else natural
    except (ValueError, TypeError, RuntimeError, OSError, Image.DecompressionBombError) as e:
        msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ImageError(f"{path}: cannot render SVG ({msg})") from None
    # zoom rounds; make the longer side exact (area interpolation both ways: a pixel or two of change)
    return resize_longer_side(rgb, size, enlarge=cv2.INTER_AREA)


_SVG_TAG = re.compile(r"<svg\b[^>]*>", re.S)
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}


def _declared_size(path: Path) -> tuple[float, float] | None:
    """(width, height) in px as the root element declares them (absolute units), else None."""
    head = path.read_bytes()[:20_000].decode("utf-8", "replace")
    m = _SVG_TAG.search(head)
    if m is None:
        return None
    dims = []
    for attr in ("width", "height"):
        a = re.search(rf"\s{attr}\s*=\s*[\"']\s*([0-9.eE+-]+)\s*([a-z]*)\s*[\"']", m.group(0))
        try:
            v = float(a.group(1)) * _UNITS[a.group(2)] if a is not None and a.group(2) in _UNITS else None
        except ValueError:
            v = None
        dims.append(v if v is not None and 1 <= v <= 1e6 else None)
    if None in dims:  # no absolute size: the viewBox gives the natural size
        vb = re.search(r"\sviewBox\s*=\s*[\"']([^\"']+)[\"']", m.group(0))
        if vb is None:
            return None
        try:
            _, _, w, h = (float(v) for v in vb.group(1).replace(",", " ").split())
        except ValueError:
            return None
        if not (1 <= w <= 1e6 and 1 <= h <= 1e6):
            return None
        dims = [w, h] if dims == [None, None] else [d if d is not None else (w if i == 0 else h) for i, d in enumerate(dims)]
    return dims[0], dims[1]


def _big_canvas(path: Path, side: int = 1280) -> str:
    """The SVG with its root width/height replaced by a large pixel canvas (content keeps its
    user-unit coordinates); the caller crops the render to the drawn area."""
    text = path.read_bytes().decode("utf-8", "replace")
    m = _SVG_TAG.search(text)
    if m is None:
        raise ValueError("no <svg> element")
    tag = re.sub(r"\s(width|height)\s*=\s*(\"[^\"]*\"|'[^']*')", "", m.group(0))
    tag = tag[:-1].rstrip("/") + f' width="{side}" height="{side}"' + (" />" if tag.endswith("/>") else ">")
    return text[: m.start()] + tag + text[m.end():]


def _crop_to_content(rgb: np.ndarray, pad: int = 4) -> np.ndarray:
    """Crop a white-background render to its non-white bounding box (plus ``pad`` px)."""
    ys, xs = np.nonzero(rgb.min(axis=2) < 250)
    if len(ys) == 0:
        raise ValueError("SVG draws nothing")
    y0, y1 = max(0, ys.min() - pad), min(rgb.shape[0], ys.max() + 1 + pad)
    x0, x1 = max(0, xs.min() - pad), min(rgb.shape[1], xs.max() + 1 + pad)
    return rgb[y0:y1, x0:x1]
