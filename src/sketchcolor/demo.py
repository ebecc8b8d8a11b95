"""`make demo` before shipped weights exist: train the tiny recipe on real photos, then colorize.

The photos are scikit-image's bundled samples (public domain; no download). The model is small
and trained for minutes on ten pictures: it shows the whole path working, not final quality.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from sketchcolor.config import load_config
from sketchcolor.data.io import letterbox, load_image, save_image, to_uint8
from sketchcolor.data.sources.skimage_samples import write_sample_photos
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
        # The sketch is extracted at the model's size, as in training; shown enlarged.
        sketch_t, _ = pipe.prepare_sketch(by_name[sk], extract_sketch=True)
        line = cv2.resize(to_uint8(sketch_t[0]), (size, size), interpolation=cv2.INTER_NEAREST)
        colored, _ = letterbox(pipe(by_name[sk], by_name[ref], extract_sketch=True), size)
        ref_small, _ = letterbox(load_image(by_name[ref]), size)
        rows.append([line, ref_small, colored])
    grid = out / "demo_grid.png"
    save_image(grid_from_rows(rows), grid)
    return grid
