"""Sketch extraction: XDoG on photos, pass-through for real line art."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sketchcolor.config import DataConfig
from sketchcolor.data.io import load_image, to_gray
from sketchcolor.data.sketch import extract_sketch, is_line_art


def _photo(sample_photos, name: str) -> np.ndarray:
    [path] = [p for p in sample_photos if p.stem == name]
    return load_image(path)


def _line_drawing(h: int = 48, w: int = 64) -> np.ndarray:
    canvas = np.full((h, w, 3), 255, dtype=np.uint8)
    cv2.line(canvas, (4, 4), (60, 40), (0, 0, 0), 1)
    cv2.line(canvas, (5, 40), (50, 6), (0, 0, 0), 2)
    cv2.line(canvas, (10, 24), (58, 24), (0, 0, 0), 1)
    cv2.rectangle(canvas, (20, 10), (40, 30), (0, 0, 0), 1)
    return canvas


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_photo_sketch_is_dark_lines_on_white(sample_photos, name):
    rgb = _photo(sample_photos, name)
    sk = extract_sketch(rgb, DataConfig())
    assert sk.dtype == np.uint8
    assert sk.shape == rgb.shape[:2]
    white = sk >= 200
    dark = sk < 100
    assert white.mean() > 0.6, "a sketch is mostly white paper"
    assert dark.mean() > 0.01, "a sketch has some dark lines"
    # Lines follow edges: the photo's gradient (max over a 3x3 neighbourhood, since XDoG draws
    # the line on the dark side of an edge) is clearly stronger near the dark pixels.
    gray = to_gray(rgb).astype(np.float32)
    grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    near = cv2.dilate(grad, np.ones((3, 3), np.uint8))
    assert near[dark].mean() > 1.4 * near[white].mean()
    # A photo is not passed through as its luminance.
    assert not np.array_equal(sk, to_gray(rgb))


def test_photo_sketch_is_deterministic(sample_photos):
    rgb = _photo(sample_photos, "astronaut")
    np.testing.assert_array_equal(extract_sketch(rgb, DataConfig()), extract_sketch(rgb, DataConfig()))


def test_flat_image_gives_blank_paper():
    flat = np.full((32, 32, 3), (180, 40, 90), dtype=np.uint8)
    sk = extract_sketch(flat, DataConfig())
    assert np.all(sk == 255)


def test_line_drawing_passes_through_unchanged():
    canvas = _line_drawing()
    assert is_line_art(canvas)
    sk = extract_sketch(canvas, DataConfig())
    assert sk.dtype == np.uint8 and sk.shape == canvas.shape[:2]
    np.testing.assert_array_equal(sk, to_gray(canvas))
    np.testing.assert_array_equal(sk, canvas[..., 0])  # pure black on pure white
    # force=True runs XDoG instead, which does not reproduce the 2 px line exactly
    forced = extract_sketch(canvas, DataConfig(), force=True)
    assert forced.shape == sk.shape
    assert not np.array_equal(forced, sk)


@pytest.mark.parametrize("name", ["astronaut", "colorwheel", "coffee"])
def test_colorful_photo_is_not_line_art(sample_photos, name):
    assert not is_line_art(_photo(sample_photos, name))


def test_colored_lines_are_not_line_art():
    canvas = _line_drawing()
    red = canvas.copy()
    red[np.all(canvas == 0, axis=2)] = (255, 0, 0)
    red[:, :, 1:][np.all(canvas == 255, axis=2)] = 0  # red paper: strongly chromatic
    assert not is_line_art(red)


def test_gray_photo_is_not_line_art(sample_photos):
    # No chroma, but mid-gray tones everywhere: still a photo, not a drawing.
    gray = to_gray(_photo(sample_photos, "astronaut"))
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert not is_line_art(rgb)
