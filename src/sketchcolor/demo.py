"""`make demo`: colorize held-out example drawings with the shipped weights and write a grid.

``examples/pairs.csv`` lists (sketch, reference, kind) rows from the test split of our data:
``cross`` pairs take the colors of a *different* drawing; a ``self`` row uses the drawing's own
augmented self-reference (color shift + TPS warp, as in training, fixed seed). Without shipped
weights (or with ``train_tiny``) the demo instead trains the tiny recipe for a few minutes on
scikit-image's sample photos, to show the whole path working.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from sketchcolor.config import load_config
from sketchcolor.data.io import letterbox, load_image, save_image, to_uint8
from sketchcolor.evaluation.selfref import self_reference_cases
from sketchcolor.data.sources.skimage_samples import write_sample_photos
from sketchcolor.errors import SketchColorError
from sketchcolor.data.grids import grid_from_rows
from sketchcolor.shipped import read_example_pairs, shipped_path

TINY = shipped_path("configs/tiny.yaml")  # these three ship in the wheel (setup.py); else the checkout's
EXAMPLES = shipped_path("examples")
DEFAULT_WEIGHTS = shipped_path("weights/default")
SHOW = 192  # px per grid cell


def example_grid(pipe, examples: Path, out: Path) -> Path:
    """Colorize every row of ``examples/pairs.csv``; write each output and ``out/demo_grid.png``."""
    pairs_csv = examples / "pairs.csv"
    if not pairs_csv.is_file():
        raise SketchColorError(f"{pairs_csv}: example list not found")
    rows = []
    for i, (sketch_path, reference_path, kind) in enumerate(read_example_pairs(examples)):
        sketch = load_image(sketch_path)
        reference = load_image(reference_path)
        if kind == "self":
            # the drawing's own a() + s() at the model's size (the evaluation's fixed settings)
            reference = self_reference_cases([(sketch, reference)], pipe, seed=i)[0].reference
        colored = pipe(sketch, reference)
        save_image(colored, out / f"{sketch_path.stem}__{kind}.png")
        rows.append([letterbox(im, SHOW)[0] for im in (sketch, reference, colored)])
    grid = out / "demo_grid.png"
    save_image(grid_from_rows(rows), grid)
    return grid


def tiny_training_demo(out: Path, steps: int | None, progress: bool) -> Path:
    """Train tiny on the sample photos under ``out/run`` and colorize their sketches."""
    from sketchcolor.inference.pipeline import ColorizePipeline
    from sketchcolor.training.loop import fit

    photos = write_sample_photos(out / "photos")
    cfg = load_config(TINY, [f"train.steps={steps}"] if steps else [])
    run = out / "run"
    if not (run / "model" / "config.json").is_file() or steps:
        fit(cfg, out / "photos", run, resume=True, progress=progress)
    pipe = ColorizePipeline.from_pretrained(run / "model")
    by_name = {p.stem: p for p in photos}
    rows = []
    for sk, ref in [("chelsea", "coffee"), ("astronaut", "rocket"), ("coffee", "chelsea"), ("astronaut", "astronaut")]:
        sketch_t, _ = pipe.prepare_sketch(by_name[sk], extract_sketch=True)  # extracted at the model's size
        line = cv2.resize(to_uint8(sketch_t[0]), (SHOW, SHOW), interpolation=cv2.INTER_NEAREST)
        colored = pipe(by_name[sk], by_name[ref], extract_sketch=True)
        rows.append([line, letterbox(load_image(by_name[ref]), SHOW)[0], letterbox(colored, SHOW)[0]])
    grid = out / "demo_grid.png"
    save_image(grid_from_rows(rows), grid)
    return grid


def run_demo(out: Path, weights: Path | None = None, train_tiny: bool = False, steps: int | None = None,
             progress: bool = True) -> Path:
    """The shipped weights on the examples, or (``train_tiny``/no weights) the tiny training demo."""
    from sketchcolor.inference.pipeline import ColorizePipeline

    weights = weights or DEFAULT_WEIGHTS
    if train_tiny or not (weights / "config.json").is_file():
        return tiny_training_demo(out, steps, progress)
    return example_grid(ColorizePipeline.from_pretrained(weights), EXAMPLES, out)
