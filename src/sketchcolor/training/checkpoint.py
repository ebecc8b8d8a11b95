"""Training checkpoints: ``root/step_XXXXXXXX/`` folders holding the inference artifact
(:mod:`sketchcolor.models.serialization`: ``config.json`` + ``model.safetensors``) and the trainer
state (``trainer_state.pt``: discriminator, optimizers, step, RNG), written atomically together.

The trainer state loads with ``weights_only=True``: nothing in it is ever unpickled as code. A
process killed mid-save leaves a hidden temporary folder that is never listed as a checkpoint and
is removed by the next save once that process is gone.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sketchcolor.atomic import remove_dead_leftovers
from sketchcolor.config import Config
from sketchcolor.errors import CheckpointError
from sketchcolor.models.serialization import write_artifact_files, write_folder

STATE_NAME = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{8})$")
ABANDONED = "abandoned"  # checkpoints of a branch a run was resumed from before (set_aside_after)
_STATE_KEYS = {"step": int, "discriminator": dict, "opt_g": dict, "opt_d": dict, "rng_cpu": torch.Tensor}


def save_checkpoint(
    root: str | Path,
    step: int,
    generator: nn.Module,
    cfg: Config,
    trainer_state: dict[str, Any],
    keep: int = 3,
    meta: dict[str, Any] | None = None,
    protect: int | None = None,
) -> Path:
    """Write ``root/step_XXXXXXXX/`` (artifact + trainer state) atomically; keep the newest
    ``keep`` and the one at step ``protect`` (the best validated step: the place to go back to
    when a run diverges later)."""
    folder = Path(root) / step_folder_name(step)

    def write(tmp: Path) -> None:
        write_artifact_files(tmp, generator, cfg, {**(meta or {}), "step": step})
        torch.save(trainer_state, tmp / STATE_NAME)

    write_folder(folder, write)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        if protect is None or old.name != step_folder_name(protect):
            shutil.rmtree(old, ignore_errors=True)
    _remove_stale(Path(root))
    return folder


def _remove_stale(root: Path) -> None:
    """Delete temporary folders that a process killed mid-save left behind; never those of a
    process still running (a run folder has one writer, held by its lock, but a leftover's owner
    is checked all the same)."""
    remove_dead_leftovers(root)


def step_folder_name(step: int) -> str:
    """``1500`` -> ``"step_00001500"``."""
    return f"step_{step:08d}"


def checkpoint_step(folder: Path) -> int:
    """The step of a checkpoint folder from its name (``step_00001500`` -> 1500)."""
    match = _STEP_DIR.match(folder.name)
    if match is None:
        raise CheckpointError(f"{folder}: not a checkpoint folder name (step_XXXXXXXX)")
    return int(match.group(1))


def set_aside_after(root: str | Path, step: int) -> list[Path]:
    """Move the checkpoints of ``root`` newer than ``step`` into ``root/abandoned/`` (renamed,
    never deleted: a run resumed from an earlier step must not find them as its newest, and they
    may still be wanted). Returns their new paths."""
    root = Path(root)
    moved = []
    for folder in list_checkpoints(root):
        if checkpoint_step(folder) > step:
            moved.append(move_aside(folder, root / ABANDONED))
    return moved


def move_aside(folder: Path, into: Path, name: str | None = None) -> Path:
    """Rename ``folder`` into ``into`` as ``name`` (default its own) or, when taken (a second
    abandoned branch that reached the same step), ``name.2``, ``name.3``, ..."""
    into.mkdir(exist_ok=True)
    name = name or folder.name
    target, n = into / name, 1
    while target.exists():
        n += 1
        target = into / f"{name}.{n}"
    folder.rename(target)
    return target


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first (temporary folders ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / STATE_NAME).is_file()]
    return sorted(found, key=lambda p: p.name)


def load_trainer_state(folder: str | Path) -> dict[str, Any]:
    """Read ``folder/trainer_state.pt`` with ``weights_only=True`` (no arbitrary objects)."""
    path = Path(folder) / STATE_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing trainer state")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, pickle with forbidden globals, ...
        raise CheckpointError(f"{path}: unreadable or unsafe trainer state ({type(e).__name__}); nothing in it was run") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a trainer state (a {type(state).__name__}, not a dict)")
    for key, kind in _STATE_KEYS.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"{path}: not a trainer state ({key!r} is missing or not of type {kind.__name__})")
    return state
