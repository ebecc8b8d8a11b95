"""Guarding a run folder: ``train --out`` never writes into a folder that is not a run of the
same config, and never beside another process writing the same run.

A run folder (see :mod:`sketchcolor.training.loop`) holds ``config.json`` (the resolved recipe),
``checkpoints/``, ``samples/``, ``logs/``, ``best/``, ``model/``, ``summary.json`` and the lock
file ``.lock``. ``train --out RUN`` accepts:

- a missing or empty folder (a fresh run);
- a folder whose ``config.json`` is a run of the *same config*: the ``model``, ``data`` and
  ``loss`` sections and the training settings that shape the weights are equal. What may differ
  is listed in :data:`MAY_CHANGE`: ``train.steps`` (to extend a run), the learning rates (the
  recipe's win on resume, so a run can lower them), D's R1 penalty (a stabiliser a run that starts
  to break can add), cadences, device, threads, the data
  loader's speed settings and the step's (autocast, channels_last, torch.compile). The number of
  processes (``torchrun --nproc_per_node``) is no config field and may change too. Whether it
  has checkpoints (then ``--resume`` is needed) is decided by :func:`sketchcolor.training.loop.fit`.

Anything else (a model folder, a run of another config, a folder of the user's files) is refused
with one line, with or without ``--resume``, and nothing in it is touched.

The lock is ``RUN/.lock``, an OS file lock (``filelock``: ``fcntl.flock`` on POSIX, released by
the kernel when the process dies, so a killed run never leaves a stale lock). A second process
fails at once instead of waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from filelock import FileLock, Timeout

from sketchcolor.atomic import leftover_pid
from sketchcolor.config import MAX_CONFIG_BYTES, Config, config_from_dict
from sketchcolor.errors import ConfigError, SketchColorError
from sketchcolor.jsonfile import read_json

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"

# Fields that may differ between a run's config.json and the recipe that continues it.
MAY_CHANGE: frozenset[str] = frozenset({
    "name",
    "train.steps", "train.lr_g", "train.lr_d", "train.beta1", "train.beta2", "train.grad_clip", "train.device", "train.threads",
    "train.log_every", "train.image_every", "train.checkpoint_every", "train.keep_checkpoints",
    "train.val_every", "train.max_bad_steps", "train.max_rewinds", "train.rewind_lr_factor", "train.break_factor", "train.rewind_fresh_d",
    "train.rewind_new_data",
    "data.num_workers", "data.cache_images", "data.augment_on",
    "train.mixed_precision", "train.channels_last", "train.compile",
    "loss.r1_gamma",
})


def config_differences(saved: Config, new: Config) -> list[str]:
    """Dotted names of the fields that differ and are not in :data:`MAY_CHANGE`."""
    out = []
    for section in ("model", "data", "loss", "train"):
        a, b = getattr(saved, section), getattr(new, section)
        out += [f"{section}.{f.name}" for f in fields(a)
                if getattr(a, f.name) != getattr(b, f.name) and f"{section}.{f.name}" not in MAY_CHANGE]
    return out


def _ignorable(name: str) -> bool:
    """The lock and the temporary leftovers of an atomic write: not content of their own."""
    return name == LOCK_NAME or leftover_pid(name) is not None


def _value(cfg: Config, dotted: str) -> object:
    section, key = dotted.split(".", 1)
    return getattr(getattr(cfg, section), key)


def check_run_folder(out_dir: Path, cfg: Config, resume: bool) -> None:
    """Refuse (SketchColorError, one line) an ``--out`` that is not missing, empty or a run of
    the same config as ``cfg``. Reads only."""
    hint = "choose another --out (a new or empty folder)"
    if out_dir.is_symlink() and not out_dir.exists():
        raise SketchColorError(f"{out_dir}: a broken symbolic link; {hint}")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise SketchColorError(f"{out_dir}: exists and is not a folder; {hint}")
    content = sorted(p.name for p in out_dir.iterdir() if not _ignorable(p.name))
    if not content:
        return
    what = "resume" if resume else "write a run into"
    path = out_dir / CONFIG_NAME
    if not path.is_file():
        shown = ", ".join(content[:3]) + (", ..." if len(content) > 3 else "")
        raise SketchColorError(f"{out_dir}: not a sketchcolor run folder (no {CONFIG_NAME}; it holds {shown}); "
                               f"refusing to {what} it; {hint}")
    try:
        raw = read_json(path, "run config", max_bytes=MAX_CONFIG_BYTES)
    except SketchColorError:
        raise SketchColorError(f"{out_dir}: {CONFIG_NAME} is not a run's config (unreadable); refusing to {what} it; "
                               f"{hint}") from None
    if isinstance(raw, dict) and "format_version" in raw and "config" in raw:
        raise SketchColorError(f"{out_dir}: is a model folder (an inference artifact), not a run folder; "
                               f"refusing to {what} it; {hint}")
    try:
        saved = config_from_dict(raw, complete=True)
    except ConfigError as e:
        raise SketchColorError(f"{out_dir}: {CONFIG_NAME} is not a run's config ({e}); refusing to {what} it; "
                               f"{hint}") from None
    diff = config_differences(saved, cfg)
    if diff:
        first = diff[0]
        more = f"; {len(diff) - 1} more field(s) differ" if len(diff) > 1 else ""
        raise SketchColorError(
            f"{out_dir}: a run of another config ({first} is {_value(saved, first)!r:.40} there, {_value(cfg, first)!r:.40} "
            f"here{more}); only train.steps, learning rates, cadences, device and threads may change within a run; "
            + ("resume with the run's own recipe" if resume else hint))


@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir/.lock`` for the block, creating ``out_dir`` if needed; another holder is one
    SketchColorError line at once. A folder created here and left empty (a run that failed before
    writing anything) is removed again."""
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out_dir / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SketchColorError(f"{out_dir}: another sketchcolor process is writing to this run "
                               f"(lock {out_dir / LOCK_NAME})") from None
    try:
        yield
    finally:
        if created and [p.name for p in out_dir.iterdir()] == [LOCK_NAME]:
            (out_dir / LOCK_NAME).unlink(missing_ok=True)
            lock.release()
            try:
                out_dir.rmdir()
            except OSError:
                pass
        else:
            lock.release()
