#!/usr/bin/env python
"""Training throughput of sketchcolor's recipes with every loss on, against the machine's peaks.

For each recipe (default: ``default`` and ``paper``) and each variant (``--variant NAME=KEY=VALUE,...``
sets of config overrides, e.g. ``cl=train.channels_last=true``): the full G+D training step that
``sketchcolor train`` runs (``training.step.train_step`` on the models, VGG trunk, autocast and
wrappers ``training.loop`` builds; all five losses with the recipe's weights, perceptual and style
included) on random batches (with ``data.augment_on=device`` the step also builds the batch's
triplets from the workers' draws, as training does), in a fresh process each (clean peak memory and allocator state):
images/s, seconds per step, peak memory, FLOPs per step (``torch.utils.flop_counter``: convolutions
and matrix products, forward and backward) and the FLOP/s reached, as a share of the machine's
best convolution kernel and of its fp32 matmul, both measured in the same run; then a
``torch.profiler`` summary of one step: the phases (G forward, D step, G losses, G backward +
update) and the operators taking the most time.

    .venv/bin/python bench/train_throughput.py [--config default --config paper] [--batch 4]
        [--variant base= --variant cl=train.channels_last=true] [--json out.json]

See bench/README.md. Runs on CUDA when present (``--device``), measuring the peaks there too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

# run as a script, so bench/ is on sys.path: one CPU-name reader and logger for the benches
from bench_speed import cpu_model, log, time_calls  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# 3x3 convolutions (batch, channels in = out, side) swept for the machine's best convolution
# kernel: the widths and sizes of the recipes' layers and of the VGG trunk, and larger ones.
CONV_SHAPES = [(4, 64, 128), (4, 128, 64), (4, 256, 32), (4, 512, 16), (8, 128, 64), (8, 256, 32), (8, 512, 32),
               (16, 256, 32), (4, 64, 256), (4, 992, 16)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} logical cores, {torch.get_num_threads()} threads)"


# ----------------------------------------------------------------------------- machine peaks
def measure_peaks(device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Best GFLOP/s of ``torch.mm`` (4096^2 on GPU, 2048^2 on CPU) and of a 3x3 convolution over
    :data:`CONV_SHAPES` (forward, ``torch.nn.functional.conv2d``, channels_last and contiguous),
    in ``dtype``; and of the same convolutions run as training runs them (``conv_train``: forward,
    then the input and weight gradients; 3x the forward's FLOPs), the most a training step made
    of the best-shaped convolutions alone could reach; in fp32, and in other dtypes on CUDA only
    (a CPU without native bf16 takes 15-35 s a call at these shapes in bf16; the forward sweep is
    slow enough). Each the best of its timed calls."""
    gen = torch.Generator().manual_seed(0)
    n = 4096 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, generator=gen).to(device, dtype) for _ in range(2))
    mm_best = min(time_calls(lambda: torch.mm(a, b), 2, 5, 0.5, device))
    out = {"matmul": {"n": n, "gflops": 2 * n**3 / mm_best / 1e9}}
    convs = []
    for batch, c, side in CONV_SHAPES:
        for fmt in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(batch, c, side, side, generator=gen).to(device, dtype).contiguous(memory_format=fmt)
            w = (torch.randn(c, c, 3, 3, generator=gen) * 0.05).to(device, dtype).contiguous(memory_format=fmt)
            flops = 2 * batch * c * c * 9 * side * side
            with torch.no_grad():
                best = min(time_calls(lambda: torch.nn.functional.conv2d(x, w, padding=1), 2, 3, 0.3, device))
            row = {"batch": batch, "channels": c, "side": side, "channels_last": fmt is torch.channels_last,
                   "gflops": flops / best / 1e9}
            if dtype == torch.float32 or device.type == "cuda":
                xg, wg = x.detach().requires_grad_(), w.detach().requires_grad_()
                grad = torch.randn(batch, c, side, side, generator=gen).to(device, dtype).contiguous(memory_format=fmt)

                def train_conv() -> None:
                    torch.autograd.grad(torch.nn.functional.conv2d(xg, wg, padding=1), (xg, wg), grad)

                row["train_gflops"] = 3 * flops / min(time_calls(train_conv, 2, 3, 0.3, device)) / 1e9
            convs.append(row)
    out["conv"] = max(convs, key=lambda r: r["gflops"])
    if all("train_gflops" in r for r in convs):
        train = max(convs, key=lambda r: r["train_gflops"])
        out["conv_train"] = {**train, "gflops": train["train_gflops"]}
    out["conv_all"] = convs
    return out


# ----------------------------------------------------------------------------- one recipe, one process
def random_batch(cfg: Any, b: int, device: torch.device) -> dict[str, torch.Tensor]:
    s = cfg.model.image_size
    h = s // cfg.model.feature_stride
    gen = torch.Generator().manual_seed(1234)
    batch = {"sketch": torch.rand(b, 1, s, s, generator=gen) * 2 - 1, "reference": torch.rand(b, 3, s, s, generator=gen) * 2 - 1,
             "target": torch.rand(b, 3, s, s, generator=gen) * 2 - 1, "correspondence": torch.arange(h * h).repeat(b, 1)}
    from sketchcolor.data.paper import around_drawing
    from sketchcolor.training.loop import _to

    # made with each example in the data workers, as a training batch brings it (data.paper)
    batch["around"] = around_drawing(batch["sketch"])

    return _to(batch, device, cfg.train.channels_last)


def recipe_batch(cfg: Any, b: int, device: torch.device) -> dict[str, torch.Tensor]:
    """With ``data.augment_on=device``: what the workers send for ``b`` random pictures (the
    draws of a() and s(), ``data.device_triplets.sample_recipe``), on ``device``; the timed step
    then builds the triplets from it."""
    import numpy as np

    from sketchcolor.data.device_triplets import sample_recipe
    from sketchcolor.data.paper import around_drawing

    s = cfg.model.image_size
    rng = np.random.default_rng(1234)
    gen = torch.Generator().manual_seed(1234)
    recipes = [sample_recipe(rng.integers(0, 256, (s, s, 3), dtype=np.uint8), gen, cfg.data,
                             rng.integers(0, 256, (s, s), dtype=np.uint8)) for _ in range(b)]
    batch = {k: torch.stack([r[k] for r in recipes]) for k in recipes[0]}
    batch["around"] = around_drawing(batch["sketch"])
    return {k: v.to(device) for k, v in batch.items()}


# how torch.profiler names the code TorchInductor generated for a compiled graph (its fused
# elementwise kernels; the convolutions and matrix products it leaves to aten appear as aten::)
COMPILED_GRAPH = "## Call CompiledFxGraph"


def _category(name: str) -> str:
    if name.startswith(COMPILED_GRAPH):
        return "compiled graphs' fused kernels"
    if "conv" in name:
        return "convolution (fwd + bwd)"
    if name in ("aten::mm", "aten::bmm", "aten::addmm", "aten::addmv_", "aten::addmv", "aten::baddbmm", "aten::matmul",
                "aten::linear", "aten::_scaled_dot_product_flash_attention_for_cpu"):
        return "matmul"
    return "other (elementwise, pooling, copies, optimizer, ...)"


def profile_step(step: Callable[[], Any], device: torch.device, top: int) -> dict[str, Any]:
    """One step under torch.profiler: phase times (the step's record_function ranges), the share
    of each operator category and the ``top`` operators by self time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
        sync(device)
    events = prof.key_averages()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    # the phases' time on the host: on a GPU that is the time to launch their kernels (which run
    # asynchronously; their work shows where a sync waits for it), so the report says so there
    phases = {e.key: e.cpu_time_total / 1e6 for e in events
              if e.key in ("G forward", "D forward", "D backward + update", "G losses forward", "G backward + update")}
    ops = [e for e in events if e.key.startswith(("aten::", "mkldnn", COMPILED_GRAPH))]
    total = sum(getattr(e, key) for e in ops) or 1.0
    cats: dict[str, float] = {}
    for e in ops:
        cats[_category(e.key)] = cats.get(_category(e.key), 0.0) + getattr(e, key) / total
    top_ops = sorted(ops, key=lambda e: getattr(e, key), reverse=True)[:top]
    return {"phases_s": phases, "categories": cats, "op_total_s": total / 1e6,
            "top": [{"op": "compiled graph (fused kernels)" if e.key.startswith(COMPILED_GRAPH) else e.key,
                     "share": getattr(e, key) / total, "calls": e.count, "self_s": getattr(e, key) / 1e6}
                    for e in top_ops]}


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one recipe + variant in this process (called in a subprocess by :func:`main`)."""
    from torch.utils.flop_counter import FlopCounterMode

    from sketchcolor.config import load_config
    from sketchcolor.training.allocator import keep_freed_memory
    from sketchcolor.training.distributed import World
    from sketchcolor.training.loop import build_models, build_vgg, wrap_for_training
    from sketchcolor.training.precision import choose_precision
    from sketchcolor.training.step import DiscriminatorPair, StepOptions, train_step

    device = torch.device(args.device)
    cfg = load_config(resolve_config(args.config[0]), [*args.set, f"train.batch_size={args.batch}"])
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    tuned = keep_freed_memory() if device.type == "cpu" and not args.no_malloc_tuning else False
    vgg = build_vgg(cfg)
    if vgg is not None:
        vgg = vgg.to(device, memory_format=torch.channels_last if tc.channels_last else torch.contiguous_format)
    models = build_models(cfg, device)
    wrap_for_training(models, cfg, World(device=device))
    precision = choose_precision(tc.mixed_precision, device)
    options = StepOptions(device_type=device.type, autocast=precision.dtype, scaler_g=precision.scaler_g,
                          scaler_d=precision.scaler_d)
    on_device = cfg.data.augment_on == "device"
    batch = recipe_batch(cfg, args.batch, device) if on_device else random_batch(cfg, args.batch, device)
    skipped = [0]

    def step(g: torch.nn.Module = models.g_step, d: torch.nn.Module = models.d_frozen,
             pair: torch.nn.Module = models.d_pair) -> None:
        if on_device:  # the triplets built in the step, as `sketchcolor train` does with data.augment_on=device
            from sketchcolor.data.device_triplets import build_triplets
            from sketchcolor.training.loop import _to

            side = cfg.model.image_size // cfg.model.feature_stride
            built = _to(build_triplets(batch, cfg.data, (side, side)), device, tc.channels_last)
        else:
            built = batch
        m = train_step(g, d, models.opt_g, models.opt_d, built, cfg.loss, vgg,
                       torch.Generator().manual_seed(0), tc.grad_clip, d_pair=pair, options=options)
        skipped[0] += int(m.get("skipped", 0))
        if models.ema is not None and not m.get("skipped"):  # as the training loop does after each update
            models.ema.update_parameters(models.generator)

    models.generator.train()
    models.discriminator.train()
    step()  # first call: allocator warm-up (and compilation with train.compile)
    # FLOPs counted on the same step run by the plain modules: a compiled module called under
    # FlopCounterMode (its global module hooks) runs eagerly from then on, and the timed steps
    # would not be the compiled ones (measured: every leaky_relu back in the profile)
    with FlopCounterMode(display=False) as fc:
        step(models.generator, models.discriminator, DiscriminatorPair(models.discriminator))
    flops = int(fc.get_total_flops())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_calls(step, args.warmup, args.repeats, device=device)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    prof = profile_step(step, device, args.top)
    median = statistics.median(times)
    return {"recipe": cfg.name, "sets": args.set, "batch": args.batch, "image_size": cfg.model.image_size,
            "loss": {k: getattr(cfg.loss, k) for k in ("lambda_rec", "lambda_tr", "lambda_adv", "lambda_perc",
                                                        "lambda_style", "lambda_warp")},
            "vgg_layers": list(cfg.loss.vgg_layers), "autocast": precision.name, "malloc_tuned": tuned,
            "flops_per_step": flops, "step_median_s": median, "step_best_s": min(times), "steps_timed": len(times),
            "img_per_s": args.batch / median, "gflops": flops / median / 1e9, "peak_memory_bytes": peak,
            "skipped_steps": skipped[0], "profile": prof}


# ----------------------------------------------------------------------------- driver
def resolve_config(name: str) -> Path:
    for cand in (Path(name), REPO / name, REPO / "configs" / name, REPO / "configs" / f"{name}.yaml"):
        if cand.is_file():
            return cand
    raise SystemExit(f"train_throughput: config {name!r} not found")


def _subprocess(argv: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        done = subprocess.run([sys.executable, __file__, *argv, "--worker-json", str(out)], cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"train_throughput: worker failed: {' '.join(argv)}")
        return json.loads(out.read_text())


def report(env: dict[str, Any], by_dtype: dict[str, dict[str, Any]], results: list[dict[str, Any]]) -> str:
    lines = [f"device: {env['device']} | torch {env['torch']} | load average {env['load_start']:.2f} -> {env['load_end']:.2f}"]
    for name, peaks in by_dtype.items():
        c, mm = peaks["conv"], peaks["matmul"]
        lines.append(f"{name}: best 3x3 conv kernel {c['gflops']:.1f} GFLOP/s (batch {c['batch']}, {c['channels']} -> "
                     f"{c['channels']} channels, {c['side']} px, {'channels_last' if c['channels_last'] else 'contiguous'}); "
                     f"matmul {mm['n']}^2 {mm['gflops']:.1f} GFLOP/s"
                     + (" (fp32: the higher of the measurements before and after the recipes)" if name == "fp32" else ""))
        if "conv_train" in peaks:
            t = peaks["conv_train"]
            lines.append(f"  the same 3x3 convolutions forward + backward (input and weight gradients, as a training step "
                         f"runs them): best {t['gflops']:.1f} GFLOP/s (batch {t['batch']}, {t['channels']} channels, "
                         f"{t['side']} px, {'channels_last' if t['channels_last'] else 'contiguous'}), "
                         f"{100 * t['gflops'] / c['gflops']:.0f}% of the forward kernel")
    lines += ["",
             "| recipe | variant | autocast | batch | px | step s (median) | img/s | GFLOP/step | GFLOP/s | % of best conv "
             "| % of best conv fwd+bwd | % of matmul | peak memory |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        peaks = by_dtype.get(r["autocast"], by_dtype["fp32"])
        conv, mm = peaks["conv"]["gflops"], peaks["matmul"]["gflops"]
        train = peaks.get("conv_train", {}).get("gflops")
        train_share = f"{100 * r['gflops'] / train:.0f}%" if train else "–"
        lines.append(f"| {r['recipe']} | {r['variant']} | {r['autocast']} | {r['batch']} | {r['image_size']} | "
                     f"{r['step_median_s']:.3f} | {r['img_per_s']:.2f} | {r['flops_per_step'] / 1e9:.1f} | "
                     f"{r['gflops']:.1f} | {100 * r['gflops'] / conv:.0f}% | "
                     f"{train_share} | {100 * r['gflops'] / mm:.0f}% | "
                     f"{r['peak_memory_bytes'] / 2**30:.2f} GiB |")
    for r in results:
        p = r["profile"]
        host = " (phases: host time, kernels asynchronous)" if env["device_type"] == "cuda" else ""
        lines += ["", f"profile of one step, {r['recipe']} / {r['variant']} ({p['op_total_s']:.2f} s in operators){host}: "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in p["phases_s"].items()),
                  "  by kind: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(p["categories"].items(), key=lambda kv: -kv[1])),
                  "  top operators: " + ", ".join(f"{t['op']} {100 * t['share']:.1f}% ({t['calls']})" for t in p["top"])]
    if any(r["skipped_steps"] for r in results):
        lines.append("! some timed steps skipped their update (non-finite loss): see the JSON")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", default=None, help="recipe (repeatable; default: default and paper)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override applied to every run")
    p.add_argument("--variant", action="append", default=None, metavar="NAME=KEY=VALUE,...",
                   help="a named set of overrides measured apart (repeatable; default: 'base=' alone); the item "
                        "no-malloc-tuning leaves glibc's malloc as it is for that variant")
    p.add_argument("--batch", type=int, default=4, help="global batch of the timed steps (default 4)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed steps per run (median reported)")
    p.add_argument("--top", type=int, default=8, help="operators listed per profile")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-malloc-tuning", action="store_true", help="leave glibc's malloc as it is (CPU)")
    p.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    p.add_argument("--worker-json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker_json:
        Path(args.worker_json).write_text(json.dumps(run_worker(args)))
        return 0
    device = torch.device(args.device)
    from sketchcolor.training.allocator import keep_freed_memory

    if device.type == "cpu" and not args.no_malloc_tuning:
        keep_freed_memory()  # the kernels are measured as the training step runs them
    env = {"device": device_name(device), "device_type": device.type, "torch": torch.__version__,
           "python": platform.python_version(),
           "argv": sys.argv, "load_start": os.getloadavg()[0]}
    log("measuring the machine's conv and matmul peaks")
    peaks = measure_peaks(device, torch.float32)
    variants = [v.split("=", 1) for v in (args.variant or ["base="])]
    results = []
    common = ["--batch", str(args.batch), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
              "--top", str(args.top), "--device", args.device] + (["--no-malloc-tuning"] if args.no_malloc_tuning else [])
    for recipe in args.config or ["default", "paper"]:
        for name, sets in variants:
            log(f"[{recipe} / {name or 'base'}] measuring")
            items = [x for x in sets.split(",") if x]
            flags = ["--no-malloc-tuning"] if "no-malloc-tuning" in items and "--no-malloc-tuning" not in common else []
            extra = [x for s in [*args.set, *items] if s != "no-malloc-tuning" for x in ("--set", s)]
            r = _subprocess(["--config", recipe, *extra, *common, *flags])
            r["variant"] = name or "base"
            results.append(r)
            log(f"[{recipe} / {r['variant']}] {r['step_median_s']:.3f} s/step, {r['gflops']:.1f} GFLOP/s")
    again = measure_peaks(device, torch.float32)
    for k in ("matmul", "conv", "conv_train"):
        if again[k]["gflops"] > peaks[k]["gflops"]:
            peaks[k] = again[k]
    by_dtype = {"fp32": peaks}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if any(r["autocast"] == name for r in results):  # autocast steps are compared with their dtype's kernels
            log(f"measuring the {name} peaks")
            by_dtype[name] = measure_peaks(device, dtype)
    env["load_end"] = os.getloadavg()[0]
    print(report(env, by_dtype, results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"env": env, "peaks": by_dtype, "peaks_again": again, "results": results},
                                              indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
