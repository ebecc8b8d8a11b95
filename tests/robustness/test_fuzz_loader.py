"""Issue 4, property: whatever bytes a file holds, load_image returns an RGB picture or raises
sketchcolor's ImageError; never another exception, never a hang."""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sketchcolor.data.io import load_image
from sketchcolor.errors import ImageError


def _encode(fmt: str, mode: str = "RGB", frames: int = 1, **kw) -> bytes:
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)).convert(mode) for _ in range(frames)]
    buf = io.BytesIO()
    if frames > 1:
        kw.update(save_all=True, append_images=imgs[1:])
    imgs[0].save(buf, format=fmt, **kw)
    return buf.getvalue()


# Small valid files of every format Pillow reads here; mutated and truncated by the strategy.
VALID = [_encode("PNG"), _encode("PNG", "P"), _encode("PNG", "RGBA"), _encode("PNG", frames=2),
         _encode("JPEG"), _encode("JPEG", progressive=True), _encode("GIF", frames=2), _encode("BMP"),
         _encode("TIFF"), _encode("TIFF", compression="tiff_lzw"), _encode("WEBP"), _encode("ICO"),
         _encode("TGA"), _encode("PPM")]
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1", b"GIF89a", b"GIF87a", b"BM",
              b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"\x00\x00\x01\x00", b"P6\n"]


@st.composite
def file_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "signature", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "signature":
        return draw(st.sampled_from(SIGNATURES)) + draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


_SCRATCH = Path(tempfile.mkdtemp(prefix="sketchcolor-fuzz-")) / "input.png"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=file_bytes())
def test_load_image_raises_only_image_error(data: bytes) -> None:
    _SCRATCH.write_bytes(data)
    logging.disable(logging.WARNING)  # "animated ... first frame" on mutated GIFs is expected
    try:
        arr = load_image(_SCRATCH)
    except ImageError as e:
        msg = str(e)
        assert msg.startswith(str(_SCRATCH)) and "\n" not in msg, msg
        return
    finally:
        logging.disable(logging.NOTSET)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and min(arr.shape[:2]) >= 1


def _gif_cut_after_second_frame_header() -> bytes:
    """Two-frame GIF cut right after the second frame's image descriptor: PIL 13's n_frames reads
    one byte past the end and raises IndexError."""
    data = _encode("GIF", frames=2)
    for n in range(20, len(data)):
        try:
            with Image.open(io.BytesIO(data[:n])) as im:
                im.n_frames  # noqa: B018
        except IndexError:
            return data[:n]
        except Exception:  # noqa: BLE001
            continue
    pytest.skip("this Pillow no longer raises IndexError for a cut GIF")


def _tiff_second_page_without_size() -> bytes:
    """TIFF whose first page is fine and whose second IFD has no width/height tags: PIL 13's
    n_frames raises TypeError("Missing dimensions")."""
    import struct

    data = _encode("TIFF")
    first = struct.unpack("<I", data[4:8])[0]
    entries = struct.unpack("<H", data[first:first + 2])[0]
    link = first + 2 + 12 * entries  # offset of the "next IFD" pointer
    ifd2 = struct.pack("<H", 1) + struct.pack("<HHII", 0x0103, 3, 1, 1) + b"\x00" * 4
    return data[:link] + struct.pack("<I", len(data)) + data[link + 4:] + ifd2


@pytest.mark.parametrize("make", [_gif_cut_after_second_frame_header, _tiff_second_page_without_size],
                         ids=["gif_cut_after_second_frame_header", "tiff_second_page_without_size"])
def test_fuzz_regressions(make, tmp_path: Path) -> None:
    """Found by fuzzing: these escaped as IndexError / TypeError before load_image caught every
    exception of a Pillow plugin."""
    p = tmp_path / "found.img"
    p.write_bytes(make())
    with pytest.raises(ImageError, match="found.img: corrupt"):
        load_image(p)
