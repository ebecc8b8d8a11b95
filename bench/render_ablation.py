"""What each rendering step buys (issue 11's ablation): the same network output of the same weights,
rendered four ways, scored as ``sketchcolor evaluate`` scores our model on the test split at the
drawings' native size.

    nice -n 5 .venv/bin/python bench/render_ablation.py --data data/drawings --limit 0

Renderings: ``none`` (the network's 128 px paint resized), ``guided`` (joint bilateral under the
lines), ``regions`` (the default: one median color per line-art region, paper white) and
``regions + snap 1.0`` (each region's color moved onto the reference's palette). Columns: self-reference PSNR and L1
(the augmented-self pairs of ``evaluate``, same seed), cross color distance and lines kept (each
drawing with another drawing's colors, same partners as ``evaluate``). The model runs once per
pair; only the rendering differs from row to row.
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

from sketchcolor.evaluation.evaluate import cross_partners, load_test_pictures  # noqa: E402
from sketchcolor.evaluation.metrics import color_distance, lines_kept, psnr  # noqa: E402
from sketchcolor.evaluation.selfref import self_reference_cases  # noqa: E402
from sketchcolor.inference.pipeline import ColorizePipeline  # noqa: E402
from sketchcolor.inference.render import (  # noqa: E402
    fill_guided,
    lines_on,
    reference_palette,
    region_fill,
    sketch_regions,
)


def renderings(prediction: np.ndarray, sketch: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """The four renderings of one prediction ``[H, W, 3]`` uint8 under ``sketch`` ``[H, W]``."""
    trapped = sketch_regions(sketch)  # the line art's regions, shared by both region rows
    palette = reference_palette(reference)
    return {
        "none": prediction,
        "guided": lines_on(fill_guided(prediction, sketch), sketch),
        "regions": lines_on(region_fill(prediction, sketch, trapped=trapped).paint()[0], sketch),
        "regions + snap 1.0": lines_on(region_fill(prediction, sketch, palette, 1.0, trapped=trapped).paint()[0], sketch),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights" / "default"))
    p.add_argument("--data", default=str(ROOT / "data" / "drawings"))
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=0, help="first N pictures of the split (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = ColorizePipeline.from_pretrained(args.weights, device="cpu")
    pictures = load_test_pictures(args.data, args.size, args.split, args.limit or None)
    cases = self_reference_cases([(q.sketch, q.color) for q in pictures], pipe, seed=args.seed, size=args.size)
    partners = cross_partners(len(pictures), args.seed)
    scores: dict[str, dict[str, list[float]]] = {}
    start = time.perf_counter()
    for i, (pic, case) in enumerate(tqdm(list(zip(pictures, cases)), desc="render ablation", unit="img")):
        own = pipe.colorize(case.sketch, case.reference, fill="none").prediction
        for name, out in renderings(own, case.sketch, case.reference).items():
            row = scores.setdefault(name, {"psnr": [], "l1": [], "dist": [], "kept": []})
            row["psnr"].append(psnr(out, case.target))
            row["l1"].append(float(np.abs(out.astype(np.float64) - case.target).mean() / 255))
        ref = pictures[partners[i]].color
        cross = pipe.colorize(pic.sketch, ref, fill="none").prediction
        for name, out in renderings(cross, pic.sketch, ref).items():
            scores[name]["dist"].append(color_distance(out, ref, pic.sketch, seed=args.seed))
            scores[name]["kept"].append(lines_kept(out, pic.sketch))
    print(f"{len(pictures)} pictures of {args.data} ({args.split}), {args.size} px, weights {args.weights}, "
          f"{time.perf_counter() - start:.0f} s")
    print("| rendering | PSNR (self) ↑ | L1 (self) ↓ | color dist. (cross) ↓ | lines kept (cross) ↑ |")
    print("|---|---:|---:|---:|---:|")
    for name, row in scores.items():
        print(f"| {name} | {np.mean(row['psnr']):.2f} | {np.mean(row['l1']):.4f} | {np.mean(row['dist']):.2f} | "
              f"{np.nanmean(row['kept']):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
