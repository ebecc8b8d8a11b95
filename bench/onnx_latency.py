#!/usr/bin/env python
"""Latency of the generator on the CPU: PyTorch against ONNX Runtime (issue 13, part 4).

For the shipped default weights (128 px) and the same architecture at 256 px (random weights:
timing only), batch 1 and 16: the median wall time of one forward call after warm-up, for

- torch: ``Colorizer(sketch, reference)`` in eval mode under ``torch.inference_mode()``;
- onnxruntime: ``OnnxColorizer(sketch, reference)`` on the file ``sketchcolor export --format onnx``
  writes (CPUExecutionProvider), the call ColorizePipeline makes, numpy/torch conversions included.

Both get the same random inputs and the same number of intra-op threads (torch's default unless
``--threads``). Prints a Markdown table, the CPU, the thread counts, the versions and the load
average (a busy machine slows both backends; compare them within one run).

    .venv/bin/python bench/onnx_latency.py [--runs 10] [--warmup 2] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sketchcolor.inference.onnx_backend import OnnxColorizer
from sketchcolor.models.generator import Colorizer
from sketchcolor.models.onnx_export import export_artifact
from sketchcolor.models.serialization import load_artifact, save_artifact
from sketchcolor.shipped import shipped_path

# run as a script, so bench/ is on sys.path: one CPU-name reader and logger for the benches
from bench_speed import cpu_model, log  # noqa: E402


def median_ms(fn: Callable[[], Any], warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def models(tmp: Path) -> list[tuple[str, Path]]:
    """(label, artifact folder): the shipped default weights, and the same architecture at 256 px."""
    default = shipped_path("weights/default")
    _, cfg, _ = load_artifact(default)
    big = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, image_size=256))
    torch.manual_seed(0)
    random256 = save_artifact(tmp / "random256", Colorizer(big.model).eval(), big, {"note": "random weights, timing only"})
    return [("default weights", default), ("default architecture, random weights", random256)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="timed calls per cell (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before each cell")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--threads", type=int, help="intra-op threads for both backends (default: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    import onnxruntime  # the `onnx` extra

    rows = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for label, folder in models(Path(tmp)):
            model, cfg, _ = load_artifact(folder)
            size = cfg.model.image_size
            log(f"{size} px ({label}): exporting to ONNX")
            onnx_model = OnnxColorizer(export_artifact(folder, Path(tmp) / f"{size}.onnx"), threads=threads)
            for batch in args.batches:
                gen = torch.Generator().manual_seed(batch)
                sketch = torch.rand(batch, 1, size, size, generator=gen) * 2 - 1
                reference = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
                with torch.inference_mode():
                    diff = (model(sketch, reference).image - onnx_model(sketch, reference).image).abs().max().item()

                    def run_torch() -> None:
                        model(sketch, reference)

                    log(f"{size} px, batch {batch}: torch")
                    t_torch = median_ms(run_torch, args.warmup, args.runs)
                log(f"{size} px, batch {batch}: onnxruntime")
                t_ort = median_ms(lambda: onnx_model(sketch, reference), args.warmup, args.runs)
                rows.append((size, label, batch, t_torch, t_ort, diff))
    load_end = os.getloadavg()

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores); torch {torch.__version__} with {threads} intra-op "
          f"threads; onnxruntime {onnxruntime.__version__} (CPUExecutionProvider) with {threads} intra-op threads")
    print(f"median of {args.runs} calls after {args.warmup} warm-up calls; load average {load_start[0]:.2f} at the "
          f"start, {load_end[0]:.2f} at the end")
    print()
    print("| px | weights | batch | torch ms/call | onnxruntime ms/call | torch ms/img | onnxruntime ms/img | torch / onnxruntime | max abs diff (image) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for size, label, batch, t_torch, t_ort, diff in rows:
        print(f"| {size} | {label} | {batch} | {t_torch:.1f} | {t_ort:.1f} | {t_torch / batch:.1f} | {t_ort / batch:.1f} | "
              f"{t_torch / t_ort:.2f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
