"""What encoding the references once saves (issue 13): time per frame of a folder of test drawings
with the shipped weights, the reference side (E_r + SCFT keys/values) cached or recomputed for
every batch, at batch 1 and batch 8, for the network alone and end to end (network + region fill).

    nice -n 5 .venv/bin/python bench/sequence_speed.py --frames 16 --references 1
    nice -n 5 .venv/bin/python bench/sequence_speed.py --frames 16 --references 2

Timings: ``time.perf_counter``, median of ``--repeats`` passes over the folder after one warm-up
pass, torch on ``--threads`` threads (default 1: the machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sketchcolor.inference.pipeline import ColorizePipeline  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights" / "default"))
    p.add_argument("--testset", default=str(ROOT / "examples" / "testset"))
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--references", type=int, default=1, help="how many reference pictures")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-render", action="store_true", help="time the network alone")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = ColorizePipeline.from_pretrained(args.weights, device="cpu")
    sketches = sorted(Path(args.testset).glob("*_line.png"))[: args.frames]
    refs = sorted(Path(args.testset).glob("*_color.png"))[-args.references:]
    frames = [pipe.load_frame(s) for s in sketches]

    def network(cache: bool, batch: int) -> None:
        r = pipe.encode_references(refs, cache=cache)  # inside the timing: its cost is part of the run
        for i in range(0, len(frames), batch):
            pipe.predict(torch.stack([f.small for f in frames[i:i + batch]]), r)

    def end_to_end(cache: bool, batch: int) -> None:
        r = pipe.encode_references(refs, cache=cache)
        for i in range(0, len(frames), batch):
            pipe.colorize_frames(frames[i:i + batch], r)

    def timed(fn, *a) -> float:
        fn(*a)  # warm-up
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn(*a)
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs) / len(frames) * 1000.0

    print(f"{len(frames)} drawings ({Path(args.testset).name}), {len(refs)} reference(s), shipped weights "
          f"({pipe.size} px), CPU, {args.threads} thread(s); ms per frame, median of {args.repeats}\n")
    print("| part | batch | reference encoded every batch | encoded once (cached) | saved |")
    print("|---|---:|---:|---:|---:|")
    parts = [("network", network)] + ([] if args.no_render else [("network + region fill", end_to_end)])
    for name, fn in parts:
        for batch in (1, 8):
            slow, fast = timed(fn, False, batch), timed(fn, True, batch)
            print(f"| {name} | {batch} | {slow:.1f} | {fast:.1f} | {100 * (1 - fast / slow):.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
