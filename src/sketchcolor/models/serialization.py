"""The inference artifact: a folder holding ``config.json`` + ``model.safetensors``.

``config.json`` carries the format version, the package version, the whole recipe (the model
config rebuilds the network) and free-form ``meta`` (provenance, training step, validation
scores); it also records the SHA-256 of ``model.safetensors`` so that changed weight bytes are an
error, not silently other weights. The weights file's header is checked against the config
before the model is built. Nothing is ever unpickled.

Every write goes to a temporary folder that is renamed into place (:func:`sketchcolor.atomic.atomic_dir`),
so a kill during a save leaves the previous artifact intact; a failed write (full disk, no
permission) is one CheckpointError and replaces nothing. Training checkpoints
(:mod:`sketchcolor.training.checkpoint`) are this folder plus the trainer state.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from sketchcolor.atomic import atomic_dir
from sketchcolor.config import FORMAT_VERSION, MAX_CONFIG_BYTES, Config, config_from_dict
from sketchcolor.errors import CheckpointError, ConfigError
from sketchcolor.hashing import file_digest
from sketchcolor.jsonfile import parse_json, read_json
from sketchcolor.models.complexity import check_memory
from sketchcolor.models.generator import Colorizer
from sketchcolor.version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _write_failed(final: Path, e: OSError) -> CheckpointError:
    # The file named in ``e`` lies in the temporary folder, which is gone by now: name ``final``.
    reason = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e)).lower()
    return CheckpointError(f"{final}: could not be written: {reason}; nothing was replaced, earlier checkpoints are intact")


def write_folder(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_dir)`` then move ``tmp_dir`` to ``final`` (replacing it); an OSError is one
    CheckpointError that names ``final``, and nothing is replaced."""
    try:
        atomic_dir(final, write)
    except OSError as e:
        raise _write_failed(Path(final), e) from None


def _config_payload(cfg: Config, meta: dict[str, Any] | None, weights_sha256: str | None = None) -> str:
    payload = {"format_version": FORMAT_VERSION, "package_version": __version__, "config": cfg.to_dict(), "meta": meta or {}}
    if weights_sha256:
        payload["weights_sha256"] = weights_sha256
    return json.dumps(payload, indent=2, sort_keys=True)


def write_artifact_files(folder: Path, generator: nn.Module, cfg: Config, meta: dict[str, Any] | None) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` (not atomically: call it
    inside :func:`write_folder`)."""
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # never let a poisoned model replace a good one
        raise CheckpointError(f"{folder.parent}: refusing to save weights with NaN/inf values ({', '.join(bad[:3])})")
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "sketchcolor": __version__})
    (folder / CONFIG_NAME).write_text(_config_payload(cfg, meta, file_digest(folder / WEIGHTS_NAME)))


def save_artifact(folder: str | Path, generator: nn.Module, cfg: Config, meta: dict[str, Any] | None = None) -> Path:
    """Write the inference artifact: ``folder/config.json`` + ``folder/model.safetensors``."""
    folder = Path(folder)
    write_folder(folder, lambda tmp: write_artifact_files(tmp, generator, cfg, meta))
    return folder


def read_config(folder: str | Path) -> tuple[Config, dict[str, Any]]:
    """Parse ``folder/config.json`` -> (Config, meta), with a clear error for every failure."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: checkpoint folder not found")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a checkpoint folder holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    return config_from_json(read_json(path, "config", CheckpointError, MAX_CONFIG_BYTES), path)


def parse_config(text: str, path: str | Path) -> tuple[Config, dict[str, Any]]:
    """Parse the text of a ``config.json`` (read from ``path``, or a copy of one, e.g. an ONNX
    export's metadata) -> (Config, meta); every failure is one CheckpointError naming ``path``."""
    return config_from_json(parse_json(text, path, "config", CheckpointError, MAX_CONFIG_BYTES), path)


def config_from_json(raw: Any, path: str | Path) -> tuple[Config, dict[str, Any]]:
    """The parsed JSON of a ``config.json`` -> (Config, meta); a CheckpointError naming ``path``
    when it is not a complete config of a format this version reads."""
    if not isinstance(raw, dict) or "config" not in raw:
        raise CheckpointError(f"{path}: not a sketchcolor checkpoint config")
    version = raw.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: format_version {version!r} is not a valid version number")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version} is newer than this sketchcolor reads ({FORMAT_VERSION}); upgrade sketchcolor")
    try:
        # complete: a field missing from a saved model is an error, never a default that would
        # silently change what the weights compute
        cfg = config_from_dict(raw["config"], complete=True)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    meta = raw.get("meta") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: 'meta' must be a mapping, not a {type(meta).__name__}")
    return cfg, meta


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _header(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading the data."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated weights ({_one_line(e)})") from None


def _check_match(path: Path, found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: weights do not match config.json ({len(missing)} tensors the config needs are not "
                              f"in the file, e.g. {missing[:2]}; {len(extra)} in the file are not in the config, e.g. {extra[:2]})")
    for k, shape in found.items():
        if shape != expected[k]:
            raise CheckpointError(f"{path}: weights do not match config.json ({k} is {shape} in the file, "
                                  f"{expected[k]} by the config)")


def _verify_checksum(path: Path) -> None:
    """Compare ``path`` with the SHA-256 its folder's config.json recorded (when it recorded one)."""
    try:
        raw = read_json(path.parent / CONFIG_NAME, "config", CheckpointError, MAX_CONFIG_BYTES)
    except CheckpointError:
        return  # no or unreadable config: read_config reports that where a config is needed
    want = raw.get("weights_sha256") if isinstance(raw, dict) else None
    if isinstance(want, str) and file_digest(path) != want:
        raise CheckpointError(f"{path}: contents changed since it was saved (SHA-256 differs from {CONFIG_NAME}); the file is corrupt or was edited")


def load_weights(module: nn.Module, path: Path, fresh: frozenset[str] = frozenset()) -> None:
    """Load a safetensors file into ``module``; truncation, tampering (checksum in the sibling
    config.json), non-finite values and key/shape mismatches are errors. ``fresh`` names tensors
    of ``module`` the file may lack (they keep their initial values): parameters a model switch
    adds, such as the attention temperature of ``attention_norm=qk``, when training continues
    from weights saved without it."""
    path = Path(path)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = _header(path)
    _check_match(path, found, {k: s for k, s in expected.items() if k in found or k not in fresh})
    _verify_checksum(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated weights ({_one_line(e)})") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: weights hold NaN/inf values ({', '.join(bad[:3])})")
    module.load_state_dict(state, strict=not fresh)


def load_artifact(folder: str | Path) -> tuple[Colorizer, Config, dict[str, Any]]:
    """Rebuild the generator from ``folder`` -> (Colorizer in eval mode, Config, meta)."""
    cfg, meta = read_config(folder)
    path = Path(folder) / WEIGHTS_NAME
    # Check the file's tensor shapes against the config on the meta device first: a config edited
    # to other sizes is a clear error here instead of a huge allocation or a confusing mismatch.
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Colorizer(cfg.model).state_dict().items()}
    _check_match(path, _header(path), shapes)
    # image_size changes no weight: a config edited to 2048 px passes the check above and would
    # only fail when colorizing, after allocating tens of GB. Refused here, by the estimate.
    try:
        check_memory(cfg, training=False)
    except ConfigError as e:
        raise CheckpointError(f"{Path(folder) / CONFIG_NAME}: {e}") from None
    model = Colorizer(cfg.model)
    load_weights(model, path)
    return model.eval(), cfg, meta
