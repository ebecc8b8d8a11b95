"""Reading and validating images; uint8 HWC <-> float CHW in [-1, 1].

Every entry point (CLI, pipeline, datasets) reads pictures through :func:`load_image`, so the
accepted formats and the error messages live in one place.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sketchcolor.atomic import atomic_path
from sketchcolor.config import parse_amount
from sketchcolor.errors import ImageError, SketchColorError
from sketchcolor.formats import IMAGE_EXTENSIONS  # noqa: F401 - re-exported: the formats load_image is for
from sketchcolor.outputs import check_output_extension

ImageLike = Union[str, Path, Image.Image, np.ndarray]

# PIL modes we convert ourselves; anything else is refused with a clear message.
_SUPPORTED_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "1", "I;16", "I;16B", "I;16L", "I", "RGBa", "La", "CMYK", "YCbCr"}
# A float array may stray this far outside [0, 1] (rounding) before it is taken for 0..255 values.
_FLOAT_TOLERANCE = 1e-3
# Refuse pictures larger than this before decoding them (a decompression bomb is a few KB on
# disk and gigabytes in memory). Configurable: SKETCHCOLOR_MAX_PIXELS (64000000, 64_000_000, 64M).


class _InvalidLimit:
    """MAX_PIXELS when SKETCHCOLOR_MAX_PIXELS is not a pixel count: importing must not fail with a
    traceback, so the first size check (``w * h > MAX_PIXELS``) raises one ImageError line."""

    def __init__(self, raw: str) -> None:
        self.raw = raw

    def _refuse(self, other: object) -> bool:
        raise ImageError(f"SKETCHCOLOR_MAX_PIXELS={self.raw!r:.40} is not a pixel count (e.g. 64000000 or 64M)")

    __lt__ = __le__ = __gt__ = __ge__ = _refuse


def _pixel_limit(raw: str | None) -> int | _InvalidLimit:
    try:
        return 64_000_000 if raw is None else parse_amount(raw)
    except ValueError:
        return _InvalidLimit(raw)


MAX_PIXELS = _pixel_limit(os.environ.get("SKETCHCOLOR_MAX_PIXELS"))
log = logging.getLogger(__name__)


def _raise_pil_limit(limit: int) -> None:
    """Pillow refuses images over twice its own MAX_IMAGE_PIXELS (~179 M px) on its own; a limit of
    ours above that would never be reached, so Pillow's is raised to follow it (never lowered)."""
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit


if isinstance(MAX_PIXELS, int):
    _raise_pil_limit(MAX_PIXELS)


@contextmanager
def _quiet_c_stderr(active: bool):
    """Silence what C libraries print straight to file descriptor 2 (libtiff writes lines such as
    "Using code not yet in table." for a corrupt TIFF), so that a bad file gives one error line.

    Only used around TIFF decoding; the descriptor is restored before returning."""
    if not active:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded, closed)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _to_pil_rgb(img: Image.Image, name: str) -> Image.Image:
    """Normalise a PIL image of a supported mode to 8-bit RGB (alpha composited on white)."""
    mode = img.mode
    if mode not in _SUPPORTED_MODES:
        raise ImageError(f"{name}: unsupported image mode {mode!r} (use RGB, RGBA, grayscale, palette or 16-bit)")
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit files span 0..65535; mode "I" may hold either range, so scale by its own maximum range.
        top = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        arr8 = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(source: ImageLike, name: str | None = None) -> np.ndarray:
    """Read an image into uint8 RGB ``[H, W, 3]``.

    Accepts a path, a PIL image or an array (``[H, W]``, ``[H, W, 1|3|4]``, uint8/uint16/float in
    [0, 1]; a float array outside [0, 1] is refused, not clipped to black and white). RGBA and
    palette images are composited on white; grayscale is replicated to RGB; EXIF orientation is
    applied. Raises :class:`ImageError` with the file name on any failure.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name or "<array>")
    if isinstance(source, Image.Image):
        label = name or "<image>"
        w, h = source.size
        if w * h > MAX_PIXELS:
            raise ImageError(f"{label}: {w}x{h} px is over the limit of {MAX_PIXELS:,} pixels (SKETCHCOLOR_MAX_PIXELS)")
        try:
            arr = np.asarray(_to_pil_rgb(source, label))
        except ImageError:
            raise
        except Exception as e:  # noqa: BLE001 - a lazily opened, corrupt file decodes only now
            raise ImageError(f"{label}: corrupt image ({type(e).__name__}: {_short(e)})") from None
        if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ImageError(f"{label}: image has no pixels")
        return arr
    path = Path(source)
    label = name or str(path)
    if not path.is_file():
        raise ImageError(f"{label}: file not found")
    if path.stat().st_size == 0:
        raise ImageError(f"{label}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow's warnings (its own bomb warning: our limit is below; "Corrupt EXIF data",
            # "Truncated File Read", ...) are noise here: the file is either read or refused.
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{label}: {w}x{h} px is over the limit of {MAX_PIXELS:,} pixels (SKETCHCOLOR_MAX_PIXELS)")
                if w < 1 or h < 1:
                    raise ImageError(f"{label}: image has no pixels ({w}x{h})")
                with _quiet_c_stderr(im.format == "TIFF"):
                    frames = getattr(im, "n_frames", 1)
                    if frames > 1:
                        log.warning("%s: animated or multi-page image with %d frames; using the first frame", label, frames)
                        im.seek(0)
                    im.load()
                    im = ImageOps.exif_transpose(im)
                rgb = _to_pil_rgb(im, label)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        # Pillow's own hard stop (twice its MAX_IMAGE_PIXELS), raised while reading the header.
        m = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(m.group(1)):,} px" if m else "the image"
        raise ImageError(f"{label}: {size} is over the limit of {MAX_PIXELS:,} pixels (SKETCHCOLOR_MAX_PIXELS)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not a readable image (unknown format or corrupt header)") from None
    except PermissionError:
        raise ImageError(f"{label}: cannot be read (permission denied)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise ImageError(f"{label}: corrupt or truncated image ({_short(e)})") from None
    except MemoryError:
        raise ImageError(f"{label}: not enough memory to decode the image") from None
    except Exception as e:  # noqa: BLE001 - a corrupt file can make a Pillow plugin fail in any way
        # (IndexError in GifImagePlugin, TypeError "Missing dimensions" in TiffImagePlugin, ...)
        raise ImageError(f"{label}: corrupt image ({type(e).__name__}: {_short(e)})") from None
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{label}: image has no pixels")
    return arr


def _short(e: BaseException) -> str:
    """An exception's message on one line, at most 120 characters."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _array_to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{name}: array of shape {arr.shape} is not an image")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageError(f"{name}: {arr.shape[1]}x{arr.shape[0]} px is over the limit of {MAX_PIXELS:,} pixels (SKETCHCOLOR_MAX_PIXELS)")
    if arr.dtype in (np.float32, np.float64) and not np.isfinite(arr).all():
        raise ImageError(f"{name}: array holds NaN or infinite values")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 65535.0 * 255.0).round().astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -_FLOAT_TOLERANCE or hi > 1.0 + _FLOAT_TOLERANCE:  # 0..255 or -1..1 values: clipping would leave black and white
            raise ImageError(f"{name}: float array values span [{lo:g}, {hi:g}], outside [0, 1]; "
                             "divide 0-255 values by 255 (or pass a uint8 array)")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise ImageError(f"{name}: unsupported array dtype {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return np.asarray(_to_pil_rgb(Image.fromarray(arr, mode="RGBA"), name))
    if arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr)
    raise ImageError(f"{name}: array of shape {arr.shape} is not an image")


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> uint8 ``[H, W]`` luminance (ITU-R 601, as OpenCV)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, C]`` or ``[H, W]`` -> float ``[C, H, W]`` in [-1, 1]."""
    if img.ndim == 2:
        img = img[..., None]
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()
    return t / 127.5 - 1.0


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float ``[C, H, W]`` in [-1, 1] -> uint8 ``[H, W, C]`` (``[H, W]`` for one channel)."""
    arr = ((t.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[2] == 1 else arr


@dataclass(frozen=True)
class Letterbox:
    """Where an image of size (height, width) sits inside a square canvas of side ``size``."""

    height: int
    width: int
    size: int
    top: int
    left: int
    inner_h: int
    inner_w: int


def resize_longer_side(img: np.ndarray, size: int, enlarge: int = cv2.INTER_LINEAR, shrink: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize keeping the aspect ratio so that the longer side is ``size`` px.

    ``[H, W]`` or ``[H, W, C]`` -> ``[h, w(, C)]`` with ``h = max(1, round(H * s))`` (``w``
    alike), ``s = size / max(H, W)``; OpenCV interpolation ``shrink`` when ``s < 1``, else
    ``enlarge``. A picture whose longer side already is ``size`` is returned as it is.
    """
    h, w = img.shape[:2]
    if max(h, w) == size:
        return img
    scale = size / max(h, w)
    out = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                     interpolation=shrink if scale < 1 else enlarge)
    if out.ndim == 2 and img.ndim == 3:  # OpenCV drops a single channel axis
        out = out[..., None]
    return out


def letterbox(img: np.ndarray, size: int, fill: int = 255) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad with ``fill`` (white) to ``size x size``."""
    h, w = img.shape[:2]
    resized = resize_longer_side(img, size)
    ih, iw = resized.shape[:2]
    top, left = (size - ih) // 2, (size - iw) // 2
    canvas = np.full((size, size) + img.shape[2:], fill, dtype=img.dtype)
    canvas[top : top + ih, left : left + iw] = resized
    return canvas, Letterbox(h, w, size, top, left, ih, iw)


def unletterbox(img: np.ndarray, box: Letterbox) -> np.ndarray:
    """Crop the padding added by :func:`letterbox` and resize back to the original size."""
    crop = img[box.top : box.top + box.inner_h, box.left : box.left + box.inner_w]
    return cv2.resize(crop, (box.width, box.height), interpolation=cv2.INTER_LINEAR)


def save_image(img: np.ndarray, path: str | Path) -> None:
    """Write uint8 ``[H, W]``, ``[H, W, 3]`` (or ``[H, W, 4]`` to PNG) to ``path`` atomically: a
    temporary file unique to this process and call (:func:`sketchcolor.atomic.atomic_path`), then
    a rename, so two writers of one path never share a temporary file. The format follows the
    extension, one of :data:`~sketchcolor.formats.OUTPUT_EXTENSIONS` (else :class:`ImageError`)."""
    path = Path(path)
    fmt = _output_format(path)
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format=fmt)
    except OSError as e:  # a full disk must not leave a half-written file behind (atomic_path removed it)
        reason = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e)).lower()
        raise SketchColorError(f"{path}: could not be written: {reason}") from None


def _output_format(path: Path) -> str:
    """Pillow's format name for ``path``'s extension; :class:`ImageError` listing the supported ones."""
    check_output_extension(path)
    return Image.registered_extensions()[path.suffix.lower()]
