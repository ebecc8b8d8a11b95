"""Train / validation / test splits from a stable hash: the same on every machine and every run.

Both a plain image folder (:func:`split_files`, by each file's relative path) and a prepared data
folder's manifest (:func:`split_for`, by a drawing's base id, so that variants of one drawing never
straddle two splits) split with :func:`stable_fraction`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def stable_fraction(key: str) -> float:
    """A number in [0, 1) from a stable hash of ``key`` (same on every machine and run)."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64


def split_files(files: list[Path], root: Path, val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Train/validation split by a stable hash of the path relative to ``root``."""
    train, val = [], []
    for f in files:
        (val if stable_fraction(f.relative_to(root).as_posix()) < val_fraction else train).append(f)
    return train, val


def split_for(source: str, base_id: str, val: float = 0.05, test: float = 0.05) -> str:
    """train / val / test (about 90/5/5) from a stable hash of ``source:base_id``."""
    f = stable_fraction(f"{source}:{base_id}")
    return "test" if f < test else "val" if f < test + val else "train"
