"""What Table 1's cross color distance allows a colorizer that keeps the paper white.

    nice -n 5 .venv/bin/python bench/color_floor.py --data data/drawings

Each test sketch with another test picture's colors (the partners of ``sketchcolor evaluate``,
same seed). The metric (:func:`sketchcolor.evaluation.metrics.color_distance`) compares every
painted pixel of the output, paper included, with every pixel of the reference, paper included;
so two drawings that cover different shares of their paper are apart even when painted in
exactly the same colors. A bound and two outputs a pair that keep the sketch's paper white (the test
picture's own: :func:`~sketchcolor.evaluation.metrics.paper_around_drawing`, its near-white
pixels in the region around the drawing, what an artist leaves unpainted), each scored by the
metric and by the drawing color distance (paper left out on both sides):

* ``floor``: :func:`~sketchcolor.evaluation.metrics.white_paper_floor`, a lower bound of the
  metric over every such output, whatever it paints inside the drawing (not an output: the
  drawing column is empty);
* ``histogram oracle``: the drawing painted with the reference's pixels, paper included, less the
  share nearest to white that the sketch's paper stands for: what the metric asks for, a colorizer
  that knows the reference's color histogram and ignores what the sketch shows;
* ``ideal colorizer``: the drawing painted with the reference's *drawing* colors in the
  reference's proportions (its paper left out, :func:`~sketchcolor.evaluation.metrics.drawing_mask`):
  the perfect answer to "take the reference's colors", but for which color goes where.

``--every N`` scores every N-th picture.
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
    color_distance,
    drawing_color_distance,
    drawing_mask,
    painted_mask,
    paper_around_drawing,
    white_paper_floor,
)


def histogram_colors(reference: np.ndarray, paper_share: float) -> np.ndarray:
    """uint8 ``[N, 3]``: the reference's pixels less the ``paper_share`` of them nearest to white (in
    Lab), which white paper already stands for: the histogram oracle's colors."""
    ref = reference.reshape(-1, 3)
    d_white = np.linalg.norm(rgb2lab(reference).reshape(-1, 3) - [100.0, 0.0, 0.0], axis=1)
    return ref[np.argsort(d_white, kind="stable")[int(round(paper_share * len(ref))):]]


def paint_drawing(sketch: np.ndarray, paper: np.ndarray, colors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``[H, W, 3]`` at the sketch's size: lines black, ``paper [H, W]`` white, the other
    painted pixels drawn at random from ``colors [N, 3]`` (white where there are none)."""
    paint = painted_mask(sketch)
    drawing = paint & ~paper
    out = np.zeros((*sketch.shape, 3), np.uint8)
    out[paper & paint] = 255
    n = int(drawing.sum())
    if n:
        out[drawing] = colors[rng.integers(0, len(colors), n)] if len(colors) else 255
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
    rows: dict[str, list[tuple[float, float]]] = {"floor": [], "histogram oracle": [], "ideal colorizer": []}
    shares = []
    t0 = time.perf_counter()
    for i in tqdm(chosen, desc="pairs", unit="pair", dynamic_ncols=True):
        sketch, picture = pictures[i].sketch, pictures[i].color
        ref, ref_sketch = pictures[partners[i]].color, pictures[partners[i]].sketch
        paint = painted_mask(sketch)
        paper = paper_around_drawing(picture, sketch)
        shares.append((paper & paint).sum() / max(int(paint.sum()), 1))
        rows["floor"].append((white_paper_floor(ref, float(shares[-1]), seed=args.seed), float("nan")))
        for name, colors in (("histogram oracle", histogram_colors(ref, float(shares[-1]))),
                             ("ideal colorizer", ref[drawing_mask(ref, ref_sketch)])):
            out = paint_drawing(sketch, paper, colors, rng)
            rows[name].append((color_distance(out, ref, sketch, seed=args.seed),
                               drawing_color_distance(out, picture, sketch, ref, ref_sketch, seed=args.seed)))
    print(f"\n{len(chosen)} of {len(pictures)} {args.split} pictures, cross partners of seed {args.seed}, "
          f"{args.size} px, {time.perf_counter() - t0:.0f} s; the sketch's paper {np.mean(shares):.3f} of its painted area "
          "on average\n")
    print("| the paper white | color dist. (cross) ↓ | median | 90th percentile | color dist., drawing (cross) ↓ |")
    print("|---|---:|---:|---:|---:|")
    for name, values in rows.items():
        v = np.array(values)
        drawing = "–" if np.isnan(v[:, 1]).all() else f"{np.nanmean(v[:, 1]):.3f}"
        print(f"| {name} | {v[:, 0].mean():.3f} | {np.median(v[:, 0]):.3f} | {np.percentile(v[:, 0], 90):.3f} | {drawing} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
