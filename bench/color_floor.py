"""How low the cross color distance of Table 1 can go for any method that keeps the paper white.

    nice -n 5 .venv/bin/python bench/color_floor.py --data data/drawings

Each test sketch with another test picture's colors (the partners of ``sketchcolor evaluate``,
same seed). The metric (:func:`sketchcolor.evaluation.metrics.color_distance`) compares every
painted pixel of the output, the paper around the drawing included, with every pixel of the
reference; where the sketch has more paper than the reference has white, the white paper alone
costs something. Two figures a pair, averaged over the split:

* ``floor``: :func:`~sketchcolor.evaluation.metrics.white_paper_floor`, a lower bound over every
  output whose paper (the region around the drawing that the ``regions`` fill keeps white,
  :func:`~sketchcolor.evaluation.metrics.around_drawing`) is white, whatever it paints inside;
* ``oracle``: one such output, scored by the metric itself: white paper, and the drawing painted
  with the reference's own pixels, less the share of them nearest to white that the paper stands
  for (a colorizer that knew the reference's color distribution exactly and ignored the sketch).

A method above the floor loses that much on its paint inside the drawing (or on paper it did not
keep white). ``--every N`` scores every N-th picture.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from skimage.color import rgb2lab
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sketchcolor.evaluation.evaluate import cross_partners, load_test_pictures  # noqa: E402
from sketchcolor.evaluation.metrics import (  # noqa: E402
    around_drawing,
    color_distance,
    painted_mask,
    white_paper_floor,
)


def oracle(sketch: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``[H, W, 3]`` at the sketch's size: lines black, the paper around the drawing white,
    the drawing's pixels drawn at random from the reference's pixels less the share nearest to white
    (in Lab) that the paper already stands for."""
    paint = painted_mask(sketch)
    paper = around_drawing(sketch) & paint
    drawing = paint & ~paper
    share = paper.sum() / max(int(paint.sum()), 1)
    ref = reference.reshape(-1, 3)
    d_white = np.linalg.norm(rgb2lab(reference).reshape(-1, 3) - [100.0, 0.0, 0.0], axis=1)
    kept = np.argsort(d_white, kind="stable")[int(round(share * len(ref))):]
    out = np.zeros((*sketch.shape, 3), np.uint8)
    out[paper] = 255
    n = int(drawing.sum())
    if n:
        out[drawing] = ref[kept[rng.integers(0, len(kept), n)]] if len(kept) else 255
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT / "data" / "drawings"))
    p.add_argument("--split", default="test")
    p.add_argument("--every", type=int, default=1, help="score every N-th picture of the split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    pictures = load_test_pictures(args.data, args.size, args.split)
    partners = cross_partners(len(pictures), args.seed)  # over the whole split, as evaluate draws them
    chosen = range(0, len(pictures), max(args.every, 1))
    rng = np.random.default_rng(args.seed)
    floors, oracles, shares = [], [], []
    t0 = time.perf_counter()
    for i in tqdm(chosen, desc="pairs", unit="pair", dynamic_ncols=True):
        sketch, ref = pictures[i].sketch, pictures[partners[i]].color
        paint = painted_mask(sketch)
        shares.append((around_drawing(sketch) & paint).sum() / max(int(paint.sum()), 1))
        floors.append(white_paper_floor(ref, float(shares[-1]), seed=args.seed))
        oracles.append(color_distance(oracle(sketch, ref, rng), ref, sketch, seed=args.seed))
    f, o = np.array(floors), np.array(oracles)
    print(f"\n{len(chosen)} of {len(pictures)} {args.split} pictures, cross partners of seed {args.seed}, "
          f"{args.size} px, {time.perf_counter() - t0:.0f} s; paper {np.mean(shares):.3f} of the painted area on average\n")
    print("| white paper | color dist. (cross), mean ↓ | median | 90th percentile |")
    print("|---|---:|---:|---:|")
    for name, v in (("floor (no such output scores lower)", f), ("oracle (the reference's own colors in the drawing)", o)):
        print(f"| {name} | {v.mean():.3f} | {np.median(v):.3f} | {np.percentile(v, 90):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
