"""``sketchcolor ablate``: Table 2 of the paper, the losses added one at a time.

Every row trains the same recipe with the same seed and step budget, only the loss weights
differ (a weight that a row leaves out is 0; the others keep the recipe's values), then is scored
by the same evaluation as ``sketchcolor evaluate`` (our model only).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sketchcolor.config import DEFAULT_VGG_LAYERS, Config
from sketchcolor.errors import SketchColorError
from sketchcolor.evaluation.evaluate import evaluate, load_test_pictures
from sketchcolor.inference.pipeline import ColorizePipeline
from sketchcolor.training.loop import build_vgg, fit

# (row name, loss terms switched on), cumulative as in the paper's Table 2.
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("L_rec", ("rec",)),
    ("+ L_adv", ("rec", "adv")),
    ("+ L_tr", ("rec", "adv", "tr")),
    ("+ L_perc", ("rec", "adv", "tr", "perc")),
    ("+ L_style", ("rec", "adv", "tr", "perc", "style")),
)


def row_config(cfg: Config, terms: tuple[str, ...], budget: int) -> Config:
    """``cfg`` with the weights of the terms not in ``terms`` set to 0 and ``budget`` steps."""
    weights = {f"lambda_{t}": getattr(cfg.loss, f"lambda_{t}") if t in terms else 0.0
               for t in ("rec", "adv", "tr", "perc", "style")}
    return replace(cfg, loss=replace(cfg.loss, **weights), train=replace(cfg.train, steps=budget))


def run_ablation(cfg: Config, data_dir: str | Path, out: str | Path, budget: int, split: str = "test",
                 limit: int | None = None, fid: bool = True, vgg: bool = True, progress: bool = True,
                 rows: tuple[tuple[str, tuple[str, ...]], ...] = ROWS) -> dict[str, dict[str, Any]]:
    """Train and score every row; resumes a row whose run folder already has checkpoints."""
    if budget < 1:
        raise SketchColorError("--budget must be at least 1 step")
    out = Path(out)
    vgg_net = None
    if vgg:
        vgg_net = build_vgg(replace(cfg, loss=replace(cfg.loss, lambda_perc=1.0, lambda_style=0.0,
                                                      vgg_layers=DEFAULT_VGG_LAYERS)))
    results: dict[str, dict[str, Any]] = {}
    pictures = None
    for name, terms in rows:
        folder = out / name.replace("+ ", "plus_").replace(" ", "_")
        model_dir = folder / "model"
        if not (model_dir / "config.json").is_file():
            fit(row_config(cfg, terms, budget), data_dir, folder, resume=True, progress=progress)
        pipe = ColorizePipeline.from_pretrained(model_dir)
        if pictures is None:
            pictures = load_test_pictures(data_dir, pipe.size, split, limit)
        row, _, _ = evaluate({name: lambda s, r, p=pipe: p(s, r)}, pipe, pictures, fid=fid, vgg=vgg_net,
                             attention_of={name: pipe}, progress=False)
        results[name] = row[name]
    return results
