"""load_image's accepted modes and error messages; tensor conversions; letterboxing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sketchcolor.data.io import letterbox, load_image, to_tensor, to_uint8, unletterbox
from sketchcolor.errors import ImageError


def _check_rgb(arr: np.ndarray, h: int, w: int) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8
    assert arr.shape == (h, w, 3)


# ---------------------------------------------------------------- accepted modes


def test_rgb_png_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    p = tmp_path / "rgb.png"
    Image.fromarray(rgb, mode="RGB").save(p)
    out = load_image(p)
    _check_rgb(out, 5, 7)
    np.testing.assert_array_equal(out, rgb)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 0)  # fully transparent -> white
    rgba[0, 1] = (10, 20, 30, 255)  # opaque -> unchanged
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid gray
    rgba[1, :] = (200, 100, 50, 255)
    p = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(p)
    out = load_image(p)
    _check_rgb(out, 2, 3)
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (10, 20, 30)
    # 255 * (1 - 128/255) = 127; allow one level of rounding either way.
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 1)
    assert np.all(out[1] == (200, 100, 50))


def test_grayscale_l_is_replicated(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    p = tmp_path / "gray.png"
    Image.fromarray(gray, mode="L").save(p)
    out = load_image(p)
    _check_rgb(out, 3, 4)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_palette_p(tmp_path):
    im = Image.new("P", (4, 2))
    palette = [0] * 768
    palette[0:3] = (255, 0, 0)
    palette[3:6] = (0, 0, 255)
    im.putpalette(palette)
    im.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    p = tmp_path / "pal.png"
    im.save(p)
    assert Image.open(p).mode == "P"
    out = load_image(p)
    _check_rgb(out, 2, 4)
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[0, 1]) == (0, 0, 255)
    assert tuple(out[1, 0]) == (0, 0, 255)
    assert tuple(out[1, 3]) == (255, 0, 0)


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    im = Image.new("P", (2, 1))
    palette = [0] * 768
    palette[0:3] = (0, 255, 0)
    palette[3:6] = (0, 0, 0)
    im.putpalette(palette)
    im.putdata([0, 1])
    im.info["transparency"] = 1  # palette entry 1 is transparent
    p = tmp_path / "pal_t.png"
    im.save(p, transparency=1)
    out = load_image(p)
    _check_rgb(out, 1, 2)
    assert tuple(out[0, 0]) == (0, 255, 0)
    assert tuple(out[0, 1]) == (255, 255, 255)


def test_16bit_png_is_scaled_to_8bit(tmp_path):
    a16 = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(a16).save(p)
    assert Image.open(p).mode.startswith("I;16")
    out = load_image(p)
    _check_rgb(out, 1, 4)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    assert np.all(out[..., 0] == out[..., 1]) and np.all(out[..., 1] == out[..., 2])


def test_dark_16bit_png_is_not_brightened(tmp_path):
    # All values under 256 in a 16-bit file are nearly black, not the full 8-bit range.
    a16 = np.array([[0, 100, 255]], dtype=np.uint16)
    p = tmp_path / "dark16.png"
    Image.fromarray(a16).save(p)
    out = load_image(p)
    assert out.max() <= 1


# ---------------------------------------------------------------- refused inputs


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    p = tmp_path / "cmyk_picture.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p, quality=100)  # pure red in CMYK
    assert Image.open(p).mode == "CMYK"
    out = load_image(p)
    assert out.shape == (8, 8, 3)
    assert out[..., 0].min() > 200 and out[..., 1].max() < 60 and out[..., 2].max() < 60


def test_pixel_limit_refuses_before_decoding(tmp_path, monkeypatch):
    from sketchcolor.data import io as sio

    p = tmp_path / "big.png"
    Image.new("RGB", (300, 200), (1, 2, 3)).save(p)
    monkeypatch.setattr(sio, "MAX_PIXELS", 50_000)
    with pytest.raises(ImageError, match="big.png.*over the limit"):
        load_image(p)


def test_animated_gif_gives_first_frame(tmp_path, caplog):
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with caplog.at_level("WARNING"):
        out = load_image(p)
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50
    assert "first frame" in caplog.text


def test_exif_rotation_is_applied(tmp_path):
    p = tmp_path / "rotated.jpg"
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img.save(p, exif=exif)
    assert load_image(p).shape == (40, 20, 3)


def test_float_tiff_is_refused_with_file_name(tmp_path):
    p = tmp_path / "float_picture.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(p)
    assert Image.open(p).mode == "F"
    with pytest.raises(ImageError, match="float_picture.tif"):
        load_image(p)


def test_garbage_bytes_raise_image_error(tmp_path):
    p = tmp_path / "garbage.png"
    p.write_bytes(b"this is definitely not a PNG file" * 4)
    with pytest.raises(ImageError, match="garbage.png"):
        load_image(p)


def test_truncated_png_raises_image_error(tmp_path):
    good = tmp_path / "good.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    p = tmp_path / "truncated.png"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated.png"):
        load_image(p)


def test_zero_byte_file_raises_image_error(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png"):
        load_image(p)


def test_missing_file_raises_image_error(tmp_path):
    p = tmp_path / "no_such_file.png"
    with pytest.raises(ImageError, match="no_such_file.png"):
        load_image(p)


def test_custom_name_is_used_in_errors(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"junk")
    with pytest.raises(ImageError, match="my-upload"):
        load_image(p, name="my-upload")


# ---------------------------------------------------------------- tensors


def test_to_tensor_to_uint8_round_trip_is_exact():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    rgb[0, 0] = (0, 128, 255)
    t = to_tensor(rgb)
    assert t.shape == (3, 6, 5) and t.dtype == torch.float32
    assert t.min() >= -1.0 and t.max() <= 1.0
    assert t[0, 0, 0] == -1.0 and t[2, 0, 0] == 1.0
    # channel-first layout: t[c, y, x] corresponds to rgb[y, x, c]
    assert float(t[1, 3, 2]) == pytest.approx(rgb[3, 2, 1] / 127.5 - 1.0, abs=1e-6)
    np.testing.assert_array_equal(to_uint8(t), rgb)


def test_to_tensor_to_uint8_round_trip_gray():
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    t = to_tensor(gray)
    assert t.shape == (1, 16, 16)
    back = to_uint8(t)
    assert back.shape == (16, 16) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, gray)


def test_to_uint8_clamps():
    t = torch.tensor([[[-3.0, 3.0]]])
    np.testing.assert_array_equal(to_uint8(t), [[0, 255]])


# ---------------------------------------------------------------- letterbox


def test_letterbox_wide_image_pads_white_and_round_trips_exactly():
    # 16 x 32 into 32: scale 1, so the content is copied as is and the round trip is exact.
    rng = np.random.default_rng(3)
    img = rng.integers(0, 200, size=(16, 32, 3), dtype=np.uint8)
    canvas, box = letterbox(img, 32)
    assert canvas.shape == (32, 32, 3) and canvas.dtype == np.uint8
    assert (box.top, box.left, box.inner_h, box.inner_w) == (8, 0, 16, 32)
    assert np.all(canvas[:8] == 255) and np.all(canvas[24:] == 255)
    np.testing.assert_array_equal(canvas[8:24], img)
    back = unletterbox(canvas, box)
    assert back.shape == img.shape
    np.testing.assert_array_equal(back, img)


def test_letterbox_tall_image_downscaled_keeps_content():
    # 60 x 30 (tall), four flat color quadrants; letterboxed to 32 then restored.
    img = np.zeros((60, 30, 3), dtype=np.uint8)
    img[:30, :15] = (200, 0, 0)
    img[:30, 15:] = (0, 200, 0)
    img[30:, :15] = (0, 0, 200)
    img[30:, 15:] = (100, 100, 100)
    canvas, box = letterbox(img, 32)
    assert canvas.shape == (32, 32, 3)
    assert box.inner_h == 32 and box.inner_w == 16 and box.left == 8 and box.top == 0
    # padding on the left and right is white
    assert np.all(canvas[:, :8] == 255) and np.all(canvas[:, 24:] == 255)
    back = unletterbox(canvas, box)
    assert back.shape == (60, 30, 3)
    # away from the color boundaries the content is unchanged
    for (ys, xs) in [(slice(2, 26), slice(2, 12)), (slice(2, 26), slice(18, 28)),
                     (slice(34, 58), slice(2, 12)), (slice(34, 58), slice(18, 28))]:
        np.testing.assert_array_equal(back[ys, xs], img[ys, xs])
    assert np.abs(back.astype(int) - img.astype(int)).mean() < 8


def test_letterbox_grayscale_and_upscale():
    img = np.full((4, 8), 50, dtype=np.uint8)
    canvas, box = letterbox(img, 32)
    assert canvas.shape == (32, 32)
    assert np.all(canvas[:8] == 255) and np.all(canvas[24:] == 255)
    assert np.all(canvas[8:24] == 50)
    back = unletterbox(canvas, box)
    assert back.shape == (4, 8)
    np.testing.assert_array_equal(back, img)
