"""Device choice, shared by training and inference."""

from __future__ import annotations

import re

import torch

from sketchcolor.errors import SketchColorError


def pick_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as torch
    spells them. A name torch does not know, or a device this machine lacks, is one
    SketchColorError line (not a traceback at the first ``.to(device)``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m = re.fullmatch(r"(cpu|mps|cuda)(?::(\d{1,3}))?", name) if isinstance(name, str) else None
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise SketchColorError(f"device {name!r:.40}: not one of auto, cpu, cuda, cuda:N, mps")
    if m.group(1) == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SketchColorError(f"device {name!r}: CUDA is not available on this machine (use auto or cpu)")
        if m.group(2) is not None and int(m.group(2)) >= count:
            raise SketchColorError(f"device {name!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    if m.group(1) == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SketchColorError(f"device {name!r}: MPS is not available on this machine (use auto or cpu)")
    return torch.device(name)
