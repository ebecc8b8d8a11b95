"""`make demo` before shipped weights exist: train the tiny recipe on real photos, then colorize.

The photos are scikit-image's bundled samples (public domain; no download). The model is small
and trained for minutes on ten pictures: it shows the whole path working, not final quality.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from sketchcolor.config import load_config
from sketchcolor.data.io import load_image, save_image
from sketchcolor.data.sources.skimage_samples import write_sample_photos
from sketchcolor.data.sketch import extract_sketch
from sketchcolor.evaluation.grids import grid_from_rows

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def run_demo(out: Path, steps: int | None = None, progress: bool = True) -> Path:
    """Train tiny on the sample photos under ``out/run`` and write ``out/demo_grid.png``."""
    from sketchcolor.inference.pipeline import ColorizePipeline
    from sketchcolor.training.loop import fit

    photos = write_sample_photos(out / "photos")
    overrides = [f"train.steps={steps}"] if steps else []
    cfg = load_config(TINY, overrides)
    run = out / "run"
    model_dir = run / "model"
    if not (model_dir / "config.json").is_file() or steps:
        fit(cfg, out / "photos", run, resume=True, progress=progress)
    pipe = ColorizePipeline.from_pretrained(model_dir)
    by_name = {p.stem: p for p in photos}
    pairs = [("chelsea", "coffee"), ("astronaut", "rocket"), ("coffee", "chelsea"), ("astronaut", "astronaut")]
    rows = []
    size = 160
    for sk, ref in pairs:
        sketch_rgb = load_image(by_name[sk])
        line = extract_sketch(cv2.resize(sketch_rgb, (size, size), interpolation=cv2.INTER_AREA), cfg.data)
        colored = pipe(line, by_name[ref])
        ref_small = cv2.resize(load_image(by_name[ref]), (size, size), interpolation=cv2.INTER_AREA)
        rows.append([line, ref_small, colored])
    grid = out / "demo_grid.png"
    save_image(grid_from_rows(rows), grid)
    return grid
