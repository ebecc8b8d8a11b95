"""Color consistency across a frame sequence (issue 13): each tracked region's color spread, with
and without the color book, against colorizing each frame alone, and the drift of ``--chain``.

For each test drawing (``examples/testset``: ``NAME_line.png`` + ``NAME_color.png``, held out
from training) a synthetic sequence of ``--frames`` frames is made by smooth TPS motion
(``sketchcolor.data.motion``); the drawing's own color picture is the reference. The regions of the
first frame (``segment_regions``; at least 0.3% of the picture, not the paper around the drawing)
are tracked by warping their masks, and their color in each frame's paint is the median Lab over
the mask. Reported, over all tracked regions of all drawings:

- spread: per region, the mean ΔE (CIE76) of its color in each frame to its mean color;
- drift: per region, the ΔE between its color in the last frame and in the first.

Methods: ``alone`` (``ColorizePipeline.colorize``, one frame at a time, the reference encoded
every time), ``batched`` (``colorize_frames``, the reference encoded once, batches of 8),
``book`` (batched with a color book), ``chain`` (frame t with the reference and colorized frame
t - 1), ``chain+book``.

    nice -n 5 .venv/bin/python bench/sequence_consistency.py --frames 24 --drawings 8
    nice -n 5 .venv/bin/python bench/sequence_consistency.py --frames 50 --drawings 4 --strip docs/sequence_strip.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sketchcolor.data.io import load_image, save_image, to_gray  # noqa: E402
from sketchcolor.data.motion import color_spread, make_sequence, tracked_colors  # noqa: E402
from sketchcolor.inference.color_book import ColorBook  # noqa: E402
from sketchcolor.inference.pipeline import ColorizePipeline  # noqa: E402
from sketchcolor.inference.render import outside_labels, segment_regions  # noqa: E402

METHODS = ("alone", "batched", "book", "chain", "chain+book")


def tracked_regions(line: np.ndarray, min_share: float = 0.003) -> tuple[np.ndarray, list[int]]:
    labels = segment_regions(line)
    outside = set(outside_labels(labels).tolist())
    area = np.bincount(labels.ravel())
    return labels, [r for r in range(1, len(area)) if r not in outside and area[r] >= min_share * labels.size]


def run_method(pipe: ColorizePipeline, method: str, frames: list[np.ndarray], color: np.ndarray,
               batch: int = 8) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """-> (paints, images) per frame."""
    if method == "alone":
        results = [pipe.colorize(f, color) for f in frames]
    else:
        refs = pipe.encode_references(color)
        book = ColorBook.from_references(refs.images) if method.endswith("book") else None
        results = []
        if method.startswith("chain"):
            prev = None
            for f in frames:
                r = refs if prev is None else refs.plus(pipe.encode_references(prev))
                res = pipe.colorize_frames([pipe.load_frame(f)], r, book=book)[0]
                results.append(res)
                prev = res.image
        else:
            for i in range(0, len(frames), batch):
                results += pipe.colorize_frames([pipe.load_frame(f) for f in frames[i:i + batch]], refs, book=book)
    return [r.color_layer[..., :3] for r in results], [r.image for r in results]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights" / "default"))
    p.add_argument("--testset", default=str(ROOT / "examples" / "testset"))
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--drawings", type=int, default=8, help="how many test drawings (in name order)")
    p.add_argument("--amplitude", type=float, default=0.06, help="motion amplitude (normalised units; the picture spans 2)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--strip", help="also write a picture strip: six frames of the drawing whose spread the book "
                                   "lowers most, rows alone / book / chain")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    pipe = ColorizePipeline.from_pretrained(args.weights, device="cpu")
    lines = sorted(Path(args.testset).glob("*_line.png"))[: args.drawings]
    spreads: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    drifts: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    strip_rows: dict[str, list[np.ndarray]] = {}
    best_gain, strip_name = -np.inf, ""
    start = time.perf_counter()
    n_regions = 0
    for k, path in enumerate(lines):
        line = to_gray(load_image(path))
        color = load_image(path.with_name(path.name.replace("_line", "_color")))
        labels, regions = tracked_regions(line)
        if not regions:
            continue
        seq = make_sequence(line, labels, regions, args.frames, amplitude=args.amplitude, seed=k)
        n_regions += len(regions)
        rows: dict[str, list[np.ndarray]] = {}
        for m in methods:
            paints, images = run_method(pipe, m, seq.frames, color)
            colors = tracked_colors(paints, seq.masks)
            ok = ~np.isnan(colors).any(axis=-1)  # [T, R]
            keep = ok.sum(axis=0) >= max(2, args.frames // 2)
            spreads[m].append(color_spread(colors[:, keep]))
            d = np.linalg.norm(colors[-1] - colors[0], axis=-1)[keep]  # NaN where lost in either
            drifts[m].append(d[~np.isnan(d)])
            rows[m] = images
        if args.strip and "alone" in methods and "book" in methods:
            gain = np.nanmean(spreads["alone"][-1]) - np.nanmean(spreads["book"][-1])
            if gain > best_gain:
                best_gain, strip_rows, strip_name = gain, rows, path.stem
        print(f"{path.stem}: {len(regions)} regions, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(f"\n{len(lines)} drawings x {args.frames} frames (TPS motion amplitude {args.amplitude}), "
          f"{n_regions} tracked regions; ΔE = CIE76 in Lab\n")
    print("| method | spread ΔE, mean | spread ΔE, p90 | drift ΔE (last vs first frame), mean | drift ΔE, p90 |")
    print("|---|---:|---:|---:|---:|")
    for m in methods:
        s = np.concatenate(spreads[m])
        d = np.concatenate(drifts[m])
        print(f"| {m} | {np.nanmean(s):.2f} | {np.nanpercentile(s, 90):.2f} | {np.mean(d):.2f} | {np.percentile(d, 90):.2f} |")
    if args.strip and strip_rows:
        show = [m for m in ("alone", "book", "chain") if m in strip_rows]
        idx = np.linspace(0, args.frames - 1, 6).round().astype(int)
        size = 128
        import cv2

        rows = [np.hstack([cv2.resize(strip_rows[m][i], (size, size), interpolation=cv2.INTER_AREA) for i in idx])
                for m in show]
        save_image(np.vstack(rows), args.strip)
        print(f"\nwrote {args.strip} ({strip_name}; rows: {', '.join(show)}; frames {', '.join(map(str, idx))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
