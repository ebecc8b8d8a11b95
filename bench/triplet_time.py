"""Where the time of building one training triplet goes (one CPU thread, pictures cached).

Times each stage of :func:`sketchcolor.data.pairs.make_triplet` on the first ``--n`` train
pictures of a prepared data folder at ``--size`` px, over ``--repeats`` passes (best pass kept):
a() (sampling + applying), the TPS image warp, and the sketch-to-reference correspondence.

    .venv/bin/python bench/triplet_time.py --data data/drawings
"""

from __future__ import annotations

import argparse
import time

import torch

from sketchcolor.config import DataConfig
from sketchcolor.data.appearance import apply_appearance, sample_appearance
from sketchcolor.data.datasets import open_images
from sketchcolor.data.io import to_tensor
from sketchcolor.data.tps import apply_tps, sample_tps, tps_correspondence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/drawings")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--grid", type=int, default=16, help="feature grid side (128 px / stride 8)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = DataConfig()
    images = open_images(args.data, args.size, cfg, "train")
    pictures = [to_tensor(images[i][0]) for i in range(args.n)]
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        spent = {"a()": 0.0, "TPS image warp": 0.0, "correspondence": 0.0}
        gen = torch.Generator().manual_seed(0)
        for picture in pictures:
            t0 = time.perf_counter()
            target = apply_appearance(picture, sample_appearance(gen, cfg), cfg)
            t1 = time.perf_counter()
            params = sample_tps(gen, cfg.tps_grid, cfg.tps_scale)
            apply_tps(target, params)
            t2 = time.perf_counter()
            tps_correspondence(params, args.grid, args.grid, cfg.correspondence_tolerance)
            t3 = time.perf_counter()
            for name, dt in zip(spent, (t1 - t0, t2 - t1, t3 - t2)):
                spent[name] += dt
        for name, total in spent.items():
            best[name] = min(best.get(name, float("inf")), total / len(pictures) * 1000)
    for name, ms in best.items():
        print(f"{name:16s} {ms:6.2f} ms a triplet")
    print(f"{'total':16s} {sum(best.values()):6.2f} ms a triplet ({args.size} px, one thread, best of {args.repeats})")


if __name__ == "__main__":
    main()
