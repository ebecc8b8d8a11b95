#!/usr/bin/env python
"""Speed benchmark of sketchcolor's recipes on this machine.

For each recipe: parameters and FLOPs of G and D, G+D training steps/s (``train_step`` on random
batches), G inference images/s, the FLOP/s these reach and their ratio to the machine's measured
fp32 matmul rate. Prints a Markdown table; ``--json PATH`` also writes the numbers.

Recommended (glibc's allocator otherwise hands big blocks back to the OS after every forward):

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1073741824 \\
        .venv/bin/python bench/bench_speed.py

See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from sketchcolor.config import Config, load_config
from sketchcolor.models.complexity import count_params, forward_flops
from sketchcolor.models.discriminator import PatchDiscriminator
from sketchcolor.models.generator import Colorizer
from sketchcolor.training.step import train_step

REPO = Path(__file__).resolve().parents[1]
MALLOC_HINT = ("MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 "
               "MALLOC_TOP_PAD_=1073741824")
NO_VGG_NOTE = "G+D step without the VGG perceptual/style terms"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_configs() -> list[str]:
    names = ["tiny.yaml", "paper.yaml", "default.yaml"]
    return [str(REPO / "configs" / n) for n in names if (REPO / "configs" / n).is_file()]


def resolve_config(path: str) -> Path:
    """A path as given, else relative to the repository root, else ``configs/NAME[.yaml]``."""
    for cand in (Path(path), REPO / path, REPO / "configs" / path, REPO / "configs" / f"{path}.yaml"):
        if cand.is_file():
            return cand
    raise SystemExit(f"bench_speed: config {path!r} not found")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int, min_time: float = 0.0,
               device: torch.device | None = None) -> list[float]:
    """Seconds per call of ``fn`` (time.perf_counter), warmup calls excluded; on a CUDA ``device``
    each call is timed to the end of its kernels (torch.cuda.synchronize).

    Runs at least ``repeats`` timed calls and keeps going until ``min_time`` seconds of timed
    calls have passed (cheap calls get more samples), capped at 50 x ``repeats`` calls."""
    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_time and len(times) < 50 * repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "best_s": min(times), "count": len(times)}


def bench_matmul(n: int, warmup: int, repeats: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen, dtype=torch.float32)
    b = torch.randn(n, n, generator=gen, dtype=torch.float32)
    times = time_calls(lambda: torch.mm(a, b), warmup, repeats, min_time=1.0)
    flops = 2 * n**3
    s = summary(times)
    return {"n": n, **s, "gflops_best": flops / s["best_s"] / 1e9,
            "gflops_median": flops / s["median_s"] / 1e9}


def random_batch(cfg: Config, b: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    s = cfg.model.image_size
    h = s // cfg.model.feature_stride
    return {
        "sketch": torch.rand(b, 1, s, s, generator=gen) * 2 - 1,
        "reference": torch.rand(b, 3, s, s, generator=gen) * 2 - 1,
        "target": torch.rand(b, 3, s, s, generator=gen) * 2 - 1,
        "correspondence": torch.arange(h * h).repeat(b, 1),
    }


def bench_recipe(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config(path, args.set)
    orig_loss = cfg.loss
    vgg_dropped = bool(orig_loss.lambda_perc or orig_loss.lambda_style)
    # No VGG19 weights here: time the step without the perceptual/style terms.
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, lambda_perc=0.0, lambda_style=0.0))
    mc, tc, b = cfg.model, cfg.train, args.batch
    log(f"[{cfg.name}] {path}: building G and D ({mc.image_size} px)")

    torch.manual_seed(tc.seed)
    g, d = Colorizer(mc), PatchDiscriminator(mc)
    opt_g = torch.optim.Adam(g.parameters(), lr=tc.lr_g, betas=(tc.beta1, tc.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=tc.lr_d, betas=(tc.beta1, tc.beta2))
    g_params, d_params = count_params(g), count_params(d)

    data_gen = torch.Generator().manual_seed(1234)
    batches = [random_batch(cfg, b, data_gen) for _ in range(2)]
    step_no = [0]
    skipped = [0]

    def one_step() -> None:
        i = step_no[0]
        step_no[0] += 1
        gen = torch.Generator().manual_seed(i)  # triplet negatives, as the training loop does
        m = train_step(g, d, opt_g, opt_d, batches[i % len(batches)], cfg.loss, None, gen)
        skipped[0] += int(m.get("skipped", 0.0))

    g.train()
    d.train()
    # FLOPs of one full G+D train_step, counted directly (forward + backward of both nets).
    log(f"[{cfg.name}] counting FLOPs of one train_step (batch {b})")
    with FlopCounterMode(display=False) as fc:
        one_step()
    train_flops_step = int(fc.get_total_flops())
    fwd_flops = forward_flops(mc, g)  # G forward, one image, no grad

    log(f"[{cfg.name}] timing train_step: {args.warmup} warmup + {args.repeats} timed (batch {b})")
    skipped[0] = 0
    train_times = time_calls(one_step, args.warmup, args.repeats, args.min_time)
    train = summary(train_times)

    g.eval()
    infer: dict[int, dict[str, Any]] = {}
    for ib in [1] + ([8] if args.batch8 else []):
        x = random_batch(cfg, ib, data_gen)
        sk, ref = x["sketch"], x["reference"]

        def fwd() -> None:
            with torch.no_grad():
                g(sk, ref)

        log(f"[{cfg.name}] timing G inference: batch {ib}")
        s = summary(time_calls(fwd, args.warmup, args.repeats, args.min_time))
        s["img_per_s"] = ib / s["median_s"]
        s["gflops"] = fwd_flops * ib / s["median_s"] / 1e9
        infer[ib] = s

    step_s = train["median_s"]
    train_gflops = train_flops_step / step_s / 1e9
    res = {
        "recipe": cfg.name,
        "config_path": str(path),
        "image_size": mc.image_size,
        "g_params": g_params,
        "d_params": d_params,
        "g_forward_flops_per_image": fwd_flops,
        "train_batch": b,
        "train_flops_per_step": train_flops_step,
        "train_flops_per_image": train_flops_step / b,
        "train_step": train,
        "train_steps_per_s": 1.0 / step_s,
        "train_img_per_s": b / step_s,
        "train_gflops": train_gflops,
        "train_skipped_steps": skipped[0],
        "inference": {str(k): v for k, v in infer.items()},
        "loss_weights_timed": dataclasses.asdict(cfg.loss),
        "recipe_vgg_weights": {"lambda_perc": orig_loss.lambda_perc, "lambda_style": orig_loss.lambda_style},
        "vgg_terms_dropped": vgg_dropped,
    }
    log(f"[{cfg.name}] step {step_s:.3f} s (median of {train['count']}), "
        f"inference b1 {infer[1]['median_s'] * 1e3:.1f} ms")
    del g, d, opt_g, opt_d, batches
    gc.collect()
    return res


def rate(x: float) -> str:
    """3 significant digits, trailing zeros kept (5.00, 26.2, 105, 0.319)."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def table(results: list[dict[str, Any]], batch: int, batch8: bool) -> str:
    head = ["recipe", "VGG perc/style", "image px", "G params (M)", "D params (M)", "G fwd GFLOP/img",
            "train GFLOP/img", f"train step/s (G+D, B={batch})", "train img/s", "infer img/s (B=1)"]
    if batch8:
        head.append("infer img/s (B=8)")
    head += ["train GFLOP/s", "infer GFLOP/s (B=1)", "train / matmul", "infer / matmul"]
    rows = []
    for r in results:
        i1 = r["inference"]["1"]
        vgg = "off *" if r["vgg_terms_dropped"] else "0 in recipe"
        row = [r["recipe"], vgg, str(r["image_size"]), f"{r['g_params'] / 1e6:.2f}", f"{r['d_params'] / 1e6:.2f}",
               f"{r['g_forward_flops_per_image'] / 1e9:.2f}", f"{r['train_flops_per_image'] / 1e9:.2f}",
               rate(r["train_steps_per_s"]), rate(r["train_img_per_s"]), rate(i1["img_per_s"])]
        if batch8:
            row.append(rate(r["inference"]["8"]["img_per_s"]))
        row += [f"{r['train_gflops']:.1f}", f"{i1['gflops']:.1f}",
                f"{r['train_ratio_to_matmul'] * 100:.0f}%", f"{i1['ratio_to_matmul'] * 100:.0f}%"]
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    notes = []
    for r in results:
        if r["vgg_terms_dropped"]:
            w = r["recipe_vgg_weights"]
            notes.append(f"\\* {r['recipe']}: {NO_VGG_NOTE} (the recipe sets lambda_perc={w['lambda_perc']:g}, "
                         f"lambda_style={w['lambda_style']:g}; no VGG19 weights file here, so both were set "
                         f"to 0 for the benchmark; a real step costs more).")
        if r["train_skipped_steps"]:
            notes.append(f"! {r['recipe']}: {r['train_skipped_steps']} timed step(s) skipped the G update "
                         f"(non-finite loss).")
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", default=None, metavar="YAML",
                   help="recipe to benchmark (repeatable); default: configs/tiny.yaml, configs/paper.yaml "
                        "and configs/default.yaml if present")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override applied to every recipe, as in `sketchcolor train --set`")
    p.add_argument("--batch", type=int, default=4, help="training batch size (default 4)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before each measurement (default 2)")
    p.add_argument("--min-time", type=float, default=1.0,
                   help="keep timing cheap calls until this many seconds are measured (default 1.0)")
    p.add_argument("--batch8", action="store_true", help="also time inference at batch 8")
    p.add_argument("--matmul-n", type=int, default=2048, help="side of the square fp32 matmul (default 2048)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        p.error("--batch and --repeats must be >= 1, --warmup >= 0")

    if args.threads:
        torch.set_num_threads(args.threads)
    if "MALLOC_MMAP_MAX_" not in os.environ:
        log("hint: glibc's allocator slows these models down (~20% in the project's measurements); run as\n"
            f"  {MALLOC_HINT} {sys.executable} {' '.join(sys.argv)}")
    paths = [resolve_config(c) for c in (args.config or default_configs())]

    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "malloc_env": {k: os.environ[k] for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
                       if k in os.environ},
        "argv": sys.argv,
        "loadavg_start": os.getloadavg(),
    }
    print(f"torch {env['torch']} | threads {env['threads']} (interop {env['interop_threads']}) | "
          f"CPU: {env['cpu']} ({env['cpu_count']} logical cores) | load average {env['loadavg_start'][0]:.2f}")
    print("malloc env: " + (" ".join(f"{k}={v}" for k, v in env["malloc_env"].items()) or "not set (see hint)"))

    log(f"timing torch.mm of two {args.matmul_n}x{args.matmul_n} fp32 matrices")
    mm = bench_matmul(args.matmul_n, max(args.warmup, 2), max(args.repeats, 5))
    print(f"fp32 matmul {args.matmul_n}x{args.matmul_n}: best {mm['gflops_best']:.1f} GFLOP/s, "
          f"median {mm['gflops_median']:.1f} GFLOP/s")
    sys.stdout.flush()

    results = [bench_recipe(pth, args) for pth in paths]
    # The machine may be shared: measure the matmul again, warn when the rate moved, and take the
    # higher of the two as the machine's rate (competing processes can only lower it).
    mm_end = bench_matmul(args.matmul_n, max(args.warmup, 2), max(args.repeats, 5))
    env["loadavg_end"] = os.getloadavg()
    drift = mm_end["gflops_best"] / mm["gflops_best"] - 1
    peak = max(mm["gflops_best"], mm_end["gflops_best"])
    print(f"fp32 matmul again after the recipes: best {mm_end['gflops_best']:.1f} GFLOP/s ({drift:+.0%}); "
          f"load average {env['loadavg_end'][0]:.2f}; ratios below use {peak:.1f} GFLOP/s (the higher best)")
    if abs(drift) > 0.15:
        print("WARNING: the matmul rate changed by more than 15% during the run: other processes were "
              "probably competing for the cores, so the numbers below are not reliable.")
    for r in results:
        r["train_ratio_to_matmul"] = r["train_gflops"] / peak
        for v in r["inference"].values():
            v["ratio_to_matmul"] = v["gflops"] / peak
        r["matmul_gflops_reference"] = peak
    print()
    print(table(results, args.batch, args.batch8))
    print()
    print(f"Timings: median of >= {args.repeats} timed calls after {args.warmup} warmup calls (time.perf_counter). "
          "FLOPs: torch.utils.flop_counter (train = one full train_step / batch).")

    if args.json:
        out = {"env": env, "matmul": mm, "matmul_end": mm_end, "settings": {k: v for k, v in vars(args).items() if k != "json"},
               "results": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
