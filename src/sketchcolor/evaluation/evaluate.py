"""``sketchcolor evaluate``: the paper's protocol on a prepared test split, ours beside baselines.

Two settings, both seeded:

* **cross** (Table 1): each test sketch is colorized with the color image of a *different* test
  picture as reference. FID and KID (outputs vs the real test images, NVIDIA's Inception port,
  clean-fid resize), reference-color fidelity and line preservation.
* **self**: each test picture's own augmented self-reference (a() + TPS warp, as in training),
  so the target is known: L1, PSNR, SSIM, a VGG-feature distance on the loss network, and for
  attention models the correspondence accuracy of SCFT against the TPS ground truth.
* **responsiveness**: each test sketch with its own color picture as reference, and again with
  the reference's hues turned by 90, 180 and 270 degrees (Lab ab plane): the mean cos(turn of the
  output's hues - turn of the reference's). 1 follows the reference; about -1/3 ignores it.

Pictures are letterboxed to ``size`` (256 px: the drawings' native size) and every method
returns its output at that size (our pipeline renders at full resolution).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

import math

from sketchcolor.data.color import rotate_hue
from sketchcolor.data.grids import grid_from_rows
from sketchcolor.data.io import letterbox, load_image, save_image, to_tensor, to_uint8
from sketchcolor.data.sketch import extract_sketch
from sketchcolor.data.sources.manifest import read_manifest
from sketchcolor.errors import SketchColorError
from sketchcolor.evaluation.metrics import (
    CorrespondenceScores,
    color_distance,
    correspondence_accuracy,
    drawing_mask,
    line_preservation,
    lines_kept,
    masked_color_distance,
    paper_around_drawing,
    paper_painted,
    psnr,
    ssim,
    vgg_feature_distance,
)
from sketchcolor.evaluation.selfref import PROTOCOL, self_reference_cases
from sketchcolor.training.validation import RESPONSIVENESS_TURNS, has_hue, responsiveness

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class TestPicture:
    """uint8 at the model's size: sketch ``[S, S]`` (the artist's line art when the source has
    it, else XDoG) and color ``[S, S, 3]``."""

    id: str
    sketch: np.ndarray
    color: np.ndarray


def load_test_pictures(data_dir: str | Path, size: int, split: str = "test", limit: int | None = None) -> list[TestPicture]:
    """The pictures of ``split`` in a prepared data folder, letterboxed to ``size``; drawings without
    line art get an XDoG sketch with the evaluation's fixed settings (:data:`PROTOCOL`)."""
    root = Path(data_dir)
    rows = [r for r in read_manifest(root) if r.split == split][:limit]
    if len(rows) < 2:
        raise SketchColorError(f"{root}: split {split!r} has {len(rows)} picture(s); evaluation needs at least 2")
    pics = []
    for r in rows:
        color = letterbox(load_image(root / r.image), size)[0]
        # XDoG with the evaluation's fixed settings, as for the self-reference targets: the same
        # sketches for every model, whatever its recipe's data settings
        sketch = letterbox(load_image(root / r.sketch), size)[0][..., 0] if r.sketch else extract_sketch(color, PROTOCOL, force=True)
        pics.append(TestPicture(r.id, np.ascontiguousarray(sketch), color))
    return pics


def cross_partners(n: int, seed: int) -> np.ndarray:
    """For each of ``n`` pictures, another one (never itself), fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    offset = rng.integers(1, n, size=n)
    return (np.arange(n) + offset) % n


@dataclass
class MethodResult:
    cross: list[np.ndarray] = field(default_factory=list)
    self_: list[np.ndarray] = field(default_factory=list)
    corr: list[CorrespondenceScores] = field(default_factory=list)
    follow: list[float] = field(default_factory=list)  # responsiveness per picture with hues


def turned_references(color: np.ndarray) -> dict[float, np.ndarray]:
    """The color picture with its hues turned by each of :data:`RESPONSIVENESS_TURNS` degrees."""
    t = to_tensor(color)
    return {deg: to_uint8(rotate_hue(t, math.radians(deg))) for deg in RESPONSIVENESS_TURNS}


def evaluate(
    methods: dict[str, Method],
    pipe,
    pictures: list[TestPicture],
    seed: int = 0,
    fid: bool = True,
    vgg: torch.nn.Module | None = None,
    attention_of: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[dict[str, dict[str, Any]], dict[str, MethodResult], dict[str, Any]]:
    """Run every method in both settings -> (results table, raw outputs, meta).

    ``attention_of`` maps a method name to a ColorizePipeline whose SCFT attention is scored for
    correspondence accuracy on the self-reference pairs."""
    partners = cross_partners(len(pictures), seed)
    size = pictures[0].color.shape[0]
    cases = self_reference_cases([(p.sketch, p.color) for p in pictures], pipe, seed=seed, size=size)
    n = pipe.size // pipe.config.model.feature_stride
    hued = [i for i, p in enumerate(pictures) if has_hue(to_tensor(p.color))]
    turned = {i: turned_references(pictures[i].color) for i in hued}
    raw: dict[str, MethodResult] = {}
    timing: dict[str, float] = {}
    for name, method in methods.items():
        r = MethodResult()
        t0 = time.perf_counter()
        for i, p in enumerate(tqdm(pictures, desc=name, unit="img", disable=not progress, dynamic_ncols=True)):
            r.cross.append(method(p.sketch, pictures[partners[i]].color))
            r.self_.append(method(cases[i].sketch, cases[i].reference))
        timing[name] = (time.perf_counter() - t0) / (2 * len(pictures))
        for i in tqdm(hued, desc=f"{name} (hue turns)", unit="img", disable=not progress, dynamic_ncols=True):
            own = to_tensor(method(pictures[i].sketch, pictures[i].color))[None]
            outs = {deg: to_tensor(method(pictures[i].sketch, ref))[None] for deg, ref in turned[i].items()}
            r.follow += responsiveness(own, outs)
        if attention_of and name in attention_of:
            cp = attention_of[name]
            for c in cases:
                s, _ = cp.prepare_sketch(c.sketch)
                attn = cp.model(s, cp.prepare_reference(c.reference)).attention
                r.corr.append(correspondence_accuracy(attn.cpu(), torch.from_numpy(c.correspondence)[None], (n, n)))
        raw[name] = r

    results: dict[str, dict[str, Any]] = {}
    meta: dict[str, Any] = {"n_pictures": len(pictures), "n_responsiveness": len(hued), "seed": seed,
                            "image_size": size, "model_size": pipe.size,
                            "seconds_per_image": {k: round(v, 4) for k, v in timing.items()}}
    inception = None
    real_feats = None
    if fid:
        # imported late for speed: only FID needs it (it locates the Inception of the eval extra)
        from sketchcolor.evaluation.fid import InceptionFeatures, distribution_scores

        inception = InceptionFeatures(device=pipe.device)
        meta["inception"] = inception.describe()
        real_feats = inception([p.color for p in pictures])
    # once per picture, not once per method: the segmentation costs more than the scores
    paper = [paper_around_drawing(p.color, p.sketch) for p in pictures]
    drawing = [drawing_mask(p.color, p.sketch, m) for p, m in zip(pictures, paper)]
    for name, r in raw.items():
        row: dict[str, Any] = {}
        if inception is not None:
            scores = distribution_scores(real_feats, inception(r.cross), seed=seed)
            row["FID (cross) ↓"] = scores["fid"].as_dict()
            row["KID×1000 (cross) ↓"] = {k: (v * 1000 if isinstance(v, float) else v) for k, v in scores["kid"].as_dict().items()}
        row["color dist. (cross) ↓"] = float(np.mean([color_distance(o, pictures[partners[i]].color, pictures[i].sketch, seed=seed)
                                                      for i, o in enumerate(r.cross)]))
        row["color dist., drawing (cross) ↓"] = float(np.nanmean([
            masked_color_distance(o, drawing[i], pictures[partners[i]].color, drawing[partners[i]], seed=seed)
            for i, o in enumerate(r.cross)]))
        row["paper painted (cross) ↓"] = float(np.nanmean([paper_painted(o, m) for o, m in zip(r.cross, paper)]))
        # nanmean: a sketch with no line pixels (a blank XDoG of a flat drawing) has no score
        row["lines kept (cross) ↑"] = float(np.nanmean([lines_kept(o, p.sketch) for o, p in zip(r.cross, pictures)]))
        row["line contrast (cross) ↑"] = float(np.nanmean([line_preservation(o, p.sketch) for o, p in zip(r.cross, pictures)]))
        if r.follow:
            row["responsiveness ↑"] = float(np.mean(r.follow))
        row["L1 (self) ↓"] = float(np.mean([np.abs(o.astype(np.float64) - c.target).mean() / 255 for o, c in zip(r.self_, cases)]))
        row["PSNR (self) ↑"] = float(np.mean([psnr(o, c.target) for o, c in zip(r.self_, cases)]))
        row["SSIM (self) ↑"] = float(np.mean([ssim(o, c.target) for o, c in zip(r.self_, cases)]))
        if vgg is not None:
            with torch.no_grad():
                d = [float(vgg_feature_distance(vgg, to_tensor(o)[None], to_tensor(c.target)[None])[0]) for o, c in zip(r.self_, cases)]
            row["VGG16-HED dist. (self) ↓"] = float(np.mean(d))
        if r.corr:
            cs = CorrespondenceScores.combine(r.corr)
            row["corr. top-1 (self) ↑"] = cs.top1
            row["corr. ±1 cell (self) ↑"] = cs.within_one
            row["attn. mass ±1 (self) ↑"] = cs.neighbourhood_mass
        results[name] = row
    return results, raw, meta


def comparison_grid(pictures: list[TestPicture], raw: dict[str, MethodResult], pipe, seed: int, rows: int, out: Path,
                    show: int = 160) -> Path:
    """Rows (sketch | reference | each method's output): ``rows`` cross pairs, then ``rows`` self pairs."""
    partners = cross_partners(len(pictures), seed)
    cases = self_reference_cases([(p.sketch, p.color) for p in pictures[:rows]], pipe, seed=seed,
                                 size=pictures[0].color.shape[0])
    grid_rows = []
    for i in range(min(rows, len(pictures))):
        grid_rows.append([pictures[i].sketch, pictures[partners[i]].color] + [r.cross[i] for r in raw.values()])
    for i, c in enumerate(cases):
        grid_rows.append([c.sketch, c.reference] + [r.self_[i] for r in raw.values()])
    resized = [[letterbox(im, show)[0] for im in row] for row in grid_rows]
    save_image(grid_from_rows(resized), out)
    return out
