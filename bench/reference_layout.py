"""Does a model match the reference by content or by position? Self-reference L1 with the reference
as it is, mirrored, upside down and turned by 90 degrees.

Each of every ``--stride``-th picture of a split becomes the evaluation's self-reference case
(:func:`sketchcolor.evaluation.selfref.self_reference_cases`: the target recolored by the default
a(), the reference that target TPS-warped), colorized at ``--size`` px with ``--fill`` (``none``:
the network's own paint, upsampled), and scored by the mean absolute error to the target in [0, 1]
units. A mirrored reference shows every part of the target in the same colors, only elsewhere: a
model that finds the parts by what they look like paints the same picture either way, one that
looks where the part sits in the sketch does not. The columns "target as reference" use the
unwarped target itself, so that the TPS plays no part. Not a timing: runs in a minute per weights
folder on a 2-core CPU with the default stride.

    .venv/bin/python bench/reference_layout.py weights/default runs/mirror/best --data data/drawings
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Callable

import numpy as np

from sketchcolor.evaluation.evaluate import load_test_pictures
from sketchcolor.evaluation.selfref import mean_l1, self_reference_cases
from sketchcolor.inference.pipeline import ColorizePipeline

LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as is": lambda r: r,
    "mirrored": lambda r: r[:, ::-1],
    "upside down": lambda r: r[::-1],
    "turned 90°": lambda r: np.rot90(r),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="artifact or checkpoint folders")
    ap.add_argument("--data", default="data/drawings", help="prepared data folder")
    ap.add_argument("--split", default="val")
    ap.add_argument("--stride", type=int, default=4, help="every n-th picture of the split")
    ap.add_argument("--size", type=int, default=256, help="px of the sketch, reference and target")
    ap.add_argument("--fill", default="none", choices=("none", "regions", "guided"))
    args = ap.parse_args()
    pictures = load_test_pictures(args.data, args.size, args.split)[::args.stride]
    head = [f"{src}: {name}" for src in ("warped reference", "target as reference") for name in LAYOUTS]
    print(f"self-reference L1 (fill {args.fill}), {len(pictures)} {args.split} pictures at {args.size} px\n")
    print("| weights | " + " | ".join(head) + " | mirrored / as is |")
    print("|---|" + "---:|" * (len(head) + 1))
    for folder in args.weights:
        pipe = ColorizePipeline.from_pretrained(folder, device="cpu")
        cases = self_reference_cases([(p.sketch, p.color) for p in pictures], pipe, seed=0, size=args.size)
        unwarped = [replace(c, reference=c.target) for c in cases]
        row = [mean_l1(lambda sketch, reference, turn=turn: pipe.colorize(
                   sketch, np.ascontiguousarray(turn(reference)), fill=args.fill).image, which)
               for which in (cases, unwarped) for turn in LAYOUTS.values()]
        print(f"| {folder} | " + " | ".join(f"{v:.4f}" for v in row) + f" | {row[1] / row[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
