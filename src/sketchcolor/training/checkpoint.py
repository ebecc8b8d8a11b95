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
_STATE_KEYS = {"step": int, "discriminator": dict, "opt_g": dict, "opt_d": dict, "rng_cpu": torch.Tensor}


def save_checkpoint(
    root: str | Path,
    step: int,
    generator: nn.Module,
    cfg: Config,
    trainer_state: dict[str, Any],
    keep: int = 3,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/step_XXXXXXXX/`` (artifact + trainer state) atomically; keep the newest ``keep``."""
    folder = Path(root) / f"step_{step:08d}"

    def write(tmp: Path) -> None:
        write_artifact_files(tmp, generator, cfg, {**(meta or {}), "step": step})
        torch.save(trainer_state, tmp / STATE_NAME)

    write_folder(folder, write)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    _remove_stale(Path(root))
    return folder


def _remove_stale(root: Path) -> None:
    """Delete temporary folders that a process killed mid-save left behind; never those of a
    process still running (a run folder has one writer, held by its lock, but a leftover's owner
    is checked all the same)."""
    remove_dead_leftovers(root)


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
