"""How fast the web app answers a fix (issue 12): the time of one re-render after a recolor, after a
correspondence hint, and of an inspect click (heat map), with the shipped weights on the CPU, for
the example cross pairs of the test split at the drawings' native size and enlarged.

    nice -n 5 .venv/bin/python bench/app_rerender.py --sizes 256 1024 --repeats 5

A re-render is what the app does on a click (sketchcolor.app.session.Session): the model on the
prepared drawing with the reference's features encoded once, the regions fill at the drawing's
size, the match confidence of every region and its outline picture. Writing the downloads (three
PNGs) is timed apart. ``time.perf_counter``, median over pairs x repeats after one warm-up;
torch on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sketchcolor.app.session import Session  # noqa: E402
from sketchcolor.inference.pipeline import ColorizePipeline  # noqa: E402
from sketchcolor.shipped import read_example_pairs  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights" / "default"))
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="longer side of the drawing (px)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = ColorizePipeline.from_pretrained(args.weights, device="cpu")
    examples = ROOT / "examples"
    pairs = [(s, r) for s, r, kind in read_example_pairs(examples) if kind == "cross"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(pairs)} cross pairs, "
          f"model {pipe.size} px, {args.repeats} repeats")
    print("| drawing | re-render after a recolor | after a hint | inspect click | writing the 3 downloads |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            times: dict[str, list[float]] = {"recolor": [], "hint": [], "inspect": [], "save": []}
            for k, (sketch, reference) in enumerate(pairs):
                drawing = Image.open(sketch).convert("L")
                drawing = drawing.resize((size, round(size * drawing.height / drawing.width)), Image.LANCZOS)
                path = Path(tmp) / f"d{k}_{size}.png"
                drawing.save(path)
                s = Session(pipe, Path(tmp) / f"s{k}_{size}")
                s.set_sketch(path)
                s.set_reference(reference)
                s.colorize()  # warm-up: prepares the drawing and encodes the reference once
                cx, cy = 0.5 * drawing.width, 0.5 * drawing.height
                for _ in range(args.repeats):
                    times["recolor"].append(timed(lambda: s.click_result(cx, cy, "recolor", "#3070d0")))
                    s.undo()
                    s.click_result(cx, cy, "hint")
                    times["hint"].append(timed(lambda: s.click_reference(128, 200, "hint", 1.5)))
                    times["inspect"].append(timed(lambda: s.click_result(cx, cy, "inspect")))
                    times["save"].append(timed(s.save_outputs))
                    s.undo()
            ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
            print(f"| longer side {size} px | {ms['recolor']:.0f} ms | {ms['hint']:.0f} ms | {ms['inspect']:.0f} ms "
                  f"| {ms['save']:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
