"""Cross color distance with and without the paper: which methods take their colors from the
reference, and which only copy how much of the reference is paper.

    nice -n 5 .venv/bin/python bench/drawing_color.py --data data/drawings --weights weights/default

Each test sketch with another test picture's colors (the partners of ``sketchcolor evaluate``,
same seed), scored two ways: ``color dist.`` as in Table 1 (every painted pixel of the output
against every pixel of the reference) and ``drawing`` (:func:`sketchcolor.evaluation.metrics.
drawing_color_distance`: the output inside the drawing against the reference's own drawing, the
paper around each left out). Rows: our weights rendered ``regions`` (the default) and ``none``
(the raw network output), ``--compare NAME=DIR`` models the same two ways, and the two baselines
that matter here (flat fill, patch nearest neighbour). ``--every N`` scores every N-th picture.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sketchcolor.evaluation.baselines import all_baselines  # noqa: E402
from sketchcolor.evaluation.evaluate import cross_partners, load_test_pictures  # noqa: E402
from sketchcolor.evaluation.methods import parse_compare, pipeline_method  # noqa: E402
from sketchcolor.evaluation.metrics import color_distance, drawing_color_distance  # noqa: E402
from sketchcolor.inference.pipeline import ColorizePipeline  # noqa: E402

BASELINES = ("flat_fill", "patch_nn")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights" / "default"))
    p.add_argument("--compare", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--data", default=str(ROOT / "data" / "drawings"))
    p.add_argument("--split", default="test")
    p.add_argument("--every", type=int, default=1, help="score every N-th picture of the split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--no-baselines", action="store_true")
    args = p.parse_args()
    pictures = load_test_pictures(args.data, args.size, args.split)
    partners = cross_partners(len(pictures), args.seed)  # over the whole split, as evaluate draws them
    chosen = range(0, len(pictures), max(args.every, 1))
    methods = {}
    for name, folder in [("sketchcolor", args.weights)] + [parse_compare(s) for s in args.compare]:
        pipe = ColorizePipeline.from_pretrained(folder, device="cpu")
        methods[f"{name} (regions)"] = pipeline_method(pipe, "regions")
        methods[f"{name} (none)"] = pipeline_method(pipe, "none")
    if not args.no_baselines:
        methods.update({b.name: b for b in all_baselines() if b.name in BASELINES})
    print(f"{len(chosen)} of {len(pictures)} test pictures, cross partners of seed {args.seed}\n")
    print("| method | color dist. (cross) ↓ | color dist., drawing (cross) ↓ | seconds |")
    print("|---|---:|---:|---:|")
    for name, method in methods.items():
        t0 = time.perf_counter()
        full, drawing = [], []
        for i in tqdm(chosen, desc=name, leave=False, file=sys.stderr):
            ref = pictures[partners[i]]
            with torch.inference_mode():
                out = method(pictures[i].sketch, ref.color)
            full.append(color_distance(out, ref.color, pictures[i].sketch, seed=args.seed))
            drawing.append(drawing_color_distance(out, pictures[i].color, pictures[i].sketch, ref.color, ref.sketch,
                                                  seed=args.seed))
        print(f"| {name} | {np.mean(full):.3f} | {np.nanmean(drawing):.3f} | {time.perf_counter() - t0:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
