"""scikit-image's bundled sample photos (public domain), written out as PNG files.

Only the color pictures that ship inside the wheel are used: the rest of ``skimage.data`` is
fetched from the internet on first use, which is not possible here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from sketchcolor.data.io import load_image, save_image
from sketchcolor.errors import SketchColorError


def _loaders() -> dict[str, Callable[[], np.ndarray]]:
    try:
        import skimage.data as d
    except ImportError:
        raise SketchColorError("scikit-image is needed for the sample photos: pip install 'sketchcolor[demo]'") from None
    return {
        "astronaut": d.astronaut, "chelsea": d.chelsea, "coffee": d.coffee, "rocket": d.rocket,
        "hubble_deep_field": d.hubble_deep_field, "retina": d.retina, "immunohistochemistry": d.immunohistochemistry,
        "logo": d.logo, "colorwheel": d.colorwheel,
        "motorcycle_left": lambda: d.stereo_motorcycle()[0], "motorcycle_right": lambda: d.stereo_motorcycle()[1],
    }


SAMPLE_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
                "logo", "colorwheel", "motorcycle_left", "motorcycle_right")


def write_sample_photos(folder: str | Path, names: tuple[str, ...] = SAMPLE_NAMES, max_side: int = 512) -> list[Path]:
    """Save the named photos (longest side at most ``max_side``) as ``folder/<name>.png``."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    loaders = _loaders()
    paths = []
    for name in names:
        p = folder / f"{name}.png"
        if not p.exists():
            rgb = load_image(np.asarray(loaders[name]()))
            scale = max_side / max(rgb.shape[:2])
            # Not data.io.resize_longer_side: OpenCV's area filter by factor (fx, fy) gives other
            # pixels than by target size (up to 88 levels on these photos), and the demo and the
            # tests were made with these; the output size is the same.
            if scale < 1:
                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            save_image(rgb, p)
        paths.append(p)
    return paths
