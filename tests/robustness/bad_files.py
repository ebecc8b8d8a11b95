"""Makers of bad (and awkward but valid) image files, shared by the robustness tests.

Each maker writes one file into a folder and returns its path. The table :data:`CASES` says what
every entry point must do with it: ``ok`` (read, possibly converted; ``size`` is the (width,
height) the picture has once read) or ``error`` (one :class:`ImageError` naming the file).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb_bytes(width: int = 20_000, height: int = 20_000) -> bytes:
    """A real, valid 1-bit PNG of ``width x height`` white pixels: ~60 KB on disk, 400 M pixels."""
    row = b"\x00" + b"\xff" * ((width + 7) // 8)  # filter byte 0 + packed bits
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 500) for _ in range(height // 500)]
    parts.append(comp.compress(row * (height % 500)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def png_header_only_bytes(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but holds (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b"")


# ------------------------------------------------------------------ makers: (folder) -> path


def truncated_png(d: Path) -> Path:
    data = _png_bytes(Image.fromarray(_noise(48, 48, 1)))
    (p := d / "truncated.png").write_bytes(data[: len(data) // 2])
    return p


def truncated_jpeg(d: Path) -> Path:
    data = _jpeg_bytes(Image.fromarray(_noise(48, 48, 2)), quality=95)
    (p := d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return p


def zero_byte(d: Path) -> Path:
    (p := d / "empty.png").write_bytes(b"")
    return p


def text_as_png(d: Path) -> Path:
    (p := d / "notes.png").write_text("This is a shopping list, not a picture.\nmilk\neggs\n")
    return p


def html_as_jpg(d: Path) -> Path:
    (p := d / "download.jpg").write_text("<!DOCTYPE html><html><head><title>403 Forbidden</title></head>"
                                          "<body><h1>Forbidden</h1></body></html>\n")
    return p


def png_signature_garbage(d: Path) -> Path:
    (p := d / "sig_garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return p


def jpeg_signature_garbage(d: Path) -> Path:
    (p := d / "sig_garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    return p


def animated_gif(d: Path) -> Path:
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(p := d / "animated_gif.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return p


def gif_palette_transparent(d: Path) -> Path:
    im = Image.new("P", (20, 10), 0)
    im.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    im.paste(1, (0, 0, 10, 10))
    im.save(p := d / "transparent.gif", transparency=0)
    return p


def apng(d: Path) -> Path:
    frames = [Image.new("RGBA", (36, 24), c) for c in ((255, 0, 0, 255), (0, 0, 255, 255))]
    frames[0].save(p := d / "animated_apng.png", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return p


def cmyk_jpeg(d: Path) -> Path:
    Image.new("CMYK", (24, 16), (0, 255, 255, 0)).save(p := d / "cmyk.jpg", quality=95)
    return p


def png_16bit_gray(d: Path) -> Path:
    a = (np.arange(30 * 20, dtype=np.uint32).reshape(20, 30) * 100).astype(np.uint16)
    Image.fromarray(a).save(p := d / "gray16.png")
    return p


def png_16bit_rgb(d: Path) -> Path:
    import cv2

    a = (np.random.default_rng(3).integers(0, 65536, size=(20, 30, 3))).astype(np.uint16)
    cv2.imwrite(str(p := d / "rgb16.png"), a)
    return p


def palette_png_transparency(d: Path) -> Path:
    im = Image.new("P", (16, 12), 0)
    im.putpalette([0, 200, 0, 0, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 8, 12))
    im.save(p := d / "palette_transparent.png", transparency=1)
    return p


def rgba_png(d: Path) -> Path:
    a = np.zeros((12, 18, 4), np.uint8)
    a[..., 0] = 255
    a[:, :9, 3] = 255
    Image.fromarray(a, "RGBA").save(p := d / "rgba.png")
    return p


def exif_rotated_jpeg(d: Path) -> Path:
    img = Image.fromarray(_noise(20, 40, 4))  # stored 40 wide x 20 high
    exif = img.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees: 20 wide x 40 high
    img.save(p := d / "exif_rotated.jpg", exif=exif)
    return p


def bad_exif_jpeg(d: Path) -> Path:
    img = Image.fromarray(_noise(10, 14, 5))
    exif = img.getexif()
    exif[0x0112] = 77  # orientation out of range
    img.save(p := d / "bad_exif.jpg", exif=exif)
    return p


def decompression_bomb(d: Path) -> Path:
    (p := d / "bomb.png").write_bytes(png_bomb_bytes())
    return p


def header_claims_huge(d: Path) -> Path:
    (p := d / "huge_header.png").write_bytes(png_header_only_bytes(100_000, 100_000))
    return p


def one_by_one(d: Path) -> Path:
    Image.new("RGB", (1, 1), (200, 10, 10)).save(p := d / "one_pixel.png")
    return p


def thin_wide(d: Path) -> Path:
    Image.fromarray(_noise(1, 500, 6)).save(p := d / "thin_1x500.png")
    return p


def thin_tall(d: Path) -> Path:
    Image.fromarray(_noise(500, 1, 7)).save(p := d / "thin_500x1.png")
    return p


def float_tiff(d: Path) -> Path:
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(p := d / "float.tif")
    return p


def corrupt_lzw_tiff(d: Path) -> Path:
    """LZW TIFF with scrambled strip data: libtiff prints "Using code not yet in table." straight
    to file descriptor 2 while Pillow fails."""
    buf = io.BytesIO()
    Image.fromarray(_noise(24, 24, 8)).save(buf, format="TIFF", compression="tiff_lzw")
    data = bytearray(buf.getvalue())
    for i in range(208, 400, 3):
        data[i] ^= 0x5A
    (p := d / "corrupt_lzw.tif").write_bytes(bytes(data))
    return p


def webp_animated(d: Path) -> Path:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(p := d / "animated_webp.webp", save_all=True, append_images=frames[1:], duration=50)
    return p


def bmp_gray(d: Path) -> Path:
    Image.new("L", (10, 7), 90).save(p := d / "gray.bmp")
    return p


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], Path]
    outcome: str  # "ok" or "error"
    size: tuple[int, int] | None = None  # (width, height) once read, for "ok"
    error: str = ""  # text the error line must contain besides the file name


CASES = [
    Case("truncated_png", truncated_png, "error", error="truncated"),
    Case("truncated_jpeg", truncated_jpeg, "error", error="truncated"),
    Case("zero_byte", zero_byte, "error", error="empty file"),
    Case("text_as_png", text_as_png, "error", error="not a readable image"),
    Case("html_as_jpg", html_as_jpg, "error", error="not a readable image"),
    Case("png_signature_garbage", png_signature_garbage, "error"),
    Case("jpeg_signature_garbage", jpeg_signature_garbage, "error"),
    Case("decompression_bomb", decompression_bomb, "error", error="over the limit"),
    Case("header_claims_huge", header_claims_huge, "error", error="over the limit"),
    Case("float_tiff", float_tiff, "error", error="unsupported image mode"),
    Case("corrupt_lzw_tiff", corrupt_lzw_tiff, "error", error="corrupt or truncated image"),
    Case("animated_gif", animated_gif, "ok", (40, 30)),
    Case("apng", apng, "ok", (36, 24)),
    Case("animated_webp", webp_animated, "ok", (20, 20)),
    Case("gif_palette_transparent", gif_palette_transparent, "ok", (20, 10)),
    Case("cmyk_jpeg", cmyk_jpeg, "ok", (24, 16)),
    Case("png_16bit_gray", png_16bit_gray, "ok", (30, 20)),
    Case("png_16bit_rgb", png_16bit_rgb, "ok", (30, 20)),
    Case("palette_png_transparency", palette_png_transparency, "ok", (16, 12)),
    Case("rgba_png", rgba_png, "ok", (18, 12)),
    Case("exif_rotated_jpeg", exif_rotated_jpeg, "ok", (20, 40)),
    Case("bad_exif_jpeg", bad_exif_jpeg, "ok", (14, 10)),
    Case("one_by_one", one_by_one, "ok", (1, 1)),
    Case("thin_1x500", thin_wide, "ok", (500, 1)),
    Case("thin_500x1", thin_tall, "ok", (1, 500)),
    Case("bmp_gray", bmp_gray, "ok", (10, 7)),
]
