"""Checkpoints: the inference artifact (config.json + model.safetensors) and the trainer state.

Every write goes to a temporary folder that is renamed into place, so a kill during a save
leaves the previous checkpoint intact. Nothing is ever unpickled: weights are safetensors, the
trainer state loads with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from sketchcolor import __version__
from sketchcolor.config import FORMAT_VERSION, Config, config_from_dict
from sketchcolor.errors import CheckpointError, ConfigError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


def _atomic_dir(final: Path, write) -> None:
    """Call ``write(tmp_dir)`` then move ``tmp_dir`` to ``final`` (replacing it)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write(tmp)
        for f in tmp.iterdir():  # flush file contents before the rename makes them visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _config_payload(cfg: Config, meta: dict[str, Any] | None) -> str:
    return json.dumps(
        {"format_version": FORMAT_VERSION, "package_version": __version__, "config": cfg.to_dict(), "meta": meta or {}},
        indent=2, sort_keys=True,
    )


def _write_artifact(folder: Path, generator: nn.Module, cfg: Config, meta: dict[str, Any] | None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "sketchcolor": __version__})
    (folder / CONFIG_NAME).write_text(_config_payload(cfg, meta))


def save_artifact(folder: str | Path, generator: nn.Module, cfg: Config, meta: dict[str, Any] | None = None) -> Path:
    """Write the inference artifact: ``folder/config.json`` + ``folder/model.safetensors``."""
    folder = Path(folder)
    _atomic_dir(folder, lambda tmp: _write_artifact(tmp, generator, cfg, meta))
    return folder


def read_config(folder: str | Path) -> tuple[Config, dict[str, Any]]:
    """Parse ``folder/config.json`` -> (Config, meta), with a clear error for every failure."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a checkpoint folder holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict) or "config" not in raw:
        raise CheckpointError(f"{path}: not a sketchcolor checkpoint config")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version!r} is newer than this sketchcolor reads ({FORMAT_VERSION}); upgrade sketchcolor")
    try:
        cfg = config_from_dict(raw["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return cfg, raw.get("meta") or {}


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a safetensors file into ``module``; truncation and key/shape mismatches are errors."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing weights file")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated weights ({e})") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: weights do not match config.json (missing {missing[:2]}, unexpected {extra[:2]})")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(f"{path}: weights do not match config.json ({k}: {tuple(v.shape)} vs {tuple(expected[k].shape)})")
    module.load_state_dict(state)


def load_artifact(folder: str | Path) -> tuple[nn.Module, Config, dict[str, Any]]:
    """Rebuild the generator from ``folder`` -> (Colorizer in eval mode, Config, meta)."""
    from sketchcolor.models.generator import Colorizer

    cfg, meta = read_config(folder)
    model = Colorizer(cfg.model)
    load_weights(model, Path(folder) / WEIGHTS_NAME)
    return model.eval(), cfg, meta


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
        _write_artifact(tmp, generator, cfg, {**(meta or {}), "step": step})
        torch.save(trainer_state, tmp / STATE_NAME)

    _atomic_dir(folder, write)
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return folder


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
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, pickle with forbidden globals, ...
        raise CheckpointError(f"{path}: unreadable or unsafe trainer state ({type(e).__name__})") from None
