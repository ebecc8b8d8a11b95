"""Where the time of building one training triplet goes (one CPU thread, pictures cached).

Times each stage of :func:`sketchcolor.data.pairs.make_triplet` on the first ``--n`` train
pictures of a prepared data folder at ``--size`` px, over ``--repeats`` passes (best pass kept):
a() (sampling + applying), the TPS warp of the reference's pixel centers (one for the image and
the correspondence, as make_triplet shares it), the image's sampling, and the sketch-to-reference
correspondence (its k-d tree); then ``make_triplet`` itself, end to end. Then the other place
the same work can run (``data.augment_on=device``): what is left to a worker per example (its
draws and, where a() recolors region by region, the picture's flat-color regions:
``sample_recipe``) and the batch-wise build on ``--device`` (``build_triplets``, batches of
``--batch``), whose time adds to the training step's.

    .venv/bin/python bench/triplet_time.py --data data/drawings [--device cuda --batch 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sketchcolor.config import DataConfig
from sketchcolor.data.appearance import apply_appearance, sample_appearance
from sketchcolor.data.datasets import open_images
from sketchcolor.data.device_triplets import build_triplets, sample_recipe
from sketchcolor.data.io import to_tensor
from sketchcolor.data.pairs import make_triplet
from sketchcolor.data.tps import PROBE_DENSITY, apply_tps, sample_tps, tps_correspondence, warp_positions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/drawings")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--grid", type=int, default=16, help="feature grid side (128 px / stride 8)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="where build_triplets runs (data.augment_on=device)")
    ap.add_argument("--batch", type=int, default=8, help="batch of build_triplets")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = DataConfig()
    images = open_images(args.data, args.size, cfg, "train")
    loaded = [images[i] for i in range(args.n)]
    pictures = [to_tensor(rgb) for rgb, _ in loaded]
    shared = args.size == args.grid * PROBE_DENSITY
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        spent = {"a()": 0.0, "TPS point warp": 0.0, "image sampling": 0.0, "correspondence": 0.0}
        gen = torch.Generator().manual_seed(0)
        for picture in pictures:
            t0 = time.perf_counter()
            target = apply_appearance(picture, sample_appearance(gen, cfg), cfg)
            t1 = time.perf_counter()
            params = sample_tps(gen, cfg.tps_grid, cfg.tps_scale, cfg.mirror, cfg.rotation)
            positions = warp_positions(params, args.size, args.size)
            t2 = time.perf_counter()
            apply_tps(target, params, positions=positions)
            t3 = time.perf_counter()
            tps_correspondence(params, args.grid, args.grid, cfg.correspondence_tolerance,
                               positions=positions if shared else None)
            t4 = time.perf_counter()
            for name, dt in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                spent[name] += dt
        for name, total in spent.items():
            best[name] = min(best.get(name, float("inf")), total / len(pictures) * 1000)
    for name, ms in best.items():
        print(f"{name:16s} {ms:6.2f} ms a triplet")
    print(f"{'sum':16s} {sum(best.values()):6.2f} ms a triplet ({args.size} px, one thread, best of {args.repeats})")
    whole = float("inf")
    for _ in range(args.repeats):
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for rgb, sketches in loaded:
            make_triplet(rgb, gen, cfg, (args.grid, args.grid), next(iter(sketches.values()), None))
        whole = min(whole, (time.perf_counter() - t0) / len(loaded) * 1000)
    print(f"{'make_triplet':16s} {whole:6.2f} ms a triplet (end to end, the sketch given)")
    device_path(loaded, cfg, args)


def device_path(loaded: list[tuple[np.ndarray, dict[str, np.ndarray]]], cfg: DataConfig,
                args: argparse.Namespace) -> None:
    """data.augment_on=device: the worker's share per example, the batch-wise build on the device,
    and how far its triplets are from the workers' (``make_triplet``, on the CPU)."""
    device = torch.device(args.device)
    if args.batch > len(loaded):
        raise SystemExit(f"--batch {args.batch} is more than the --n {len(loaded)} pictures")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    worker, recipes = float("inf"), []
    for _ in range(args.repeats):
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        recipes = [sample_recipe(rgb, gen, cfg, next(iter(sketches.values()), None)) for rgb, sketches in loaded]
        worker = min(worker, (time.perf_counter() - t0) / len(loaded) * 1000)
    print(f"{'sample_recipe':16s} {worker:6.2f} ms a triplet (the worker's share with data.augment_on=device)")
    batches = [{k: torch.stack([r[k] for r in recipes[i:i + args.batch]]).to(device) for k in recipes[0]}
               for i in range(0, len(recipes) - args.batch + 1, args.batch)]
    grid = (args.grid, args.grid)
    build_triplets(batches[0], cfg, grid)  # warm-up (CUDA context, kernels)
    sync()
    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for b in batches:
            build_triplets(b, cfg, grid)
        sync()
        best = min(best, (time.perf_counter() - t0) / len(batches) * 1000)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"{'build_triplets':16s} {best:6.2f} ms a batch of {args.batch} on {device} ({best / args.batch:.2f} ms a "
          f"triplet, {threads} thread(s); adds to the step)")
    # the same triplets? (on a GPU kornia's Lab conversion may run in TF32: data.device_triplets)
    gen = torch.Generator().manual_seed(0)
    want = [make_triplet(rgb, gen, cfg, grid, next(iter(sketches.values()), None)) for rgb, sketches in loaded]
    diff, cells, off = 0.0, 0, 0
    for k, b in enumerate(batches):
        got = {key: v.cpu() for key, v in build_triplets(b, cfg, grid).items()}
        for j, t in enumerate(want[k * args.batch:(k + 1) * args.batch]):
            diff = max(diff, float((got["target"][j] - t.target).abs().max()), float((got["reference"][j] - t.reference).abs().max()))
            cells += t.correspondence.numel()
            off += int((got["correspondence"][j] != t.correspondence).sum())
    print(f"{'vs make_triplet':16s} pictures within {diff:.2e}; correspondence differs in {off} of {cells} cells")


if __name__ == "__main__":
    main()
