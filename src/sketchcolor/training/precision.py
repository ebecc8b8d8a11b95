"""``train.mixed_precision`` -> the autocast dtype and, for fp16, the gradient scalers of G and D."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sketchcolor.errors import SketchColorError

INIT_SCALE = 2.0**10


@dataclass
class Precision:
    """``dtype`` of torch.autocast on ``device_type`` (None = fp32) and one GradScaler per
    optimizer (fp16 only: its range is too small for small gradients; bf16 has fp32's range)."""

    device_type: str
    dtype: torch.dtype | None = None
    scaler_g: torch.amp.GradScaler | None = None
    scaler_d: torch.amp.GradScaler | None = None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def state_dict(self) -> dict[str, Any]:
        """The scalers' state for the trainer state (plain numbers: loads with weights_only)."""
        out: dict[str, Any] = {}
        if self.scaler_g is not None and self.scaler_d is not None:
            out = {"scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict()}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the scalers when the checkpoint has them (a run may switch precision on resume)."""
        for key, scaler in (("scaler_g", self.scaler_g), ("scaler_d", self.scaler_d)):
            if scaler is not None and isinstance(state.get(key), dict) and state[key]:
                scaler.load_state_dict(state[key])


def native_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes in bfloat16 natively. ``torch.cuda.is_bf16_supported()``
    also says yes where bf16 is only emulated (V100, T4: sm 7.x), and asks about the current device,
    not necessarily this one."""
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def choose_precision(setting: str, device: torch.device) -> Precision:
    """``off`` -> fp32; ``bf16`` / ``fp16`` as named (fp16 with scalers); ``auto`` -> bf16 on a CUDA
    device that supports it, fp16 with scalers on an older one, fp32 on a CPU: there bf16 is fast
    only with AMX (measured 2.1x / 2.7x faster steps for default / paper on this AMX Xeon, README
    "Training at scale"), so a CPU run asks for it by name. fp16 on a CPU works but has no fast
    kernels (a step of the tiny recipe took over 100x longer)."""
    kind = device.type
    if setting == "auto":
        if kind == "cuda":
            setting = "bf16" if native_bf16(device) else "fp16"
        else:
            setting = "off"
    if setting == "off":
        return Precision(kind)
    if setting == "bf16":
        if kind == "cuda" and not native_bf16(device):
            raise SketchColorError(f"train.mixed_precision bf16: {torch.cuda.get_device_name(device)} does not support "
                                   f"bfloat16; use fp16 or auto")
        return Precision(kind, torch.bfloat16)
    if setting == "fp16":
        # a start scale of 2**10, not 2**16: the GAN's gradients are small and the first steps at 2**16
        # overflowed (skipped updates) on the tiny recipe
        return Precision(kind, torch.float16, torch.amp.GradScaler(kind, init_scale=INIT_SCALE),
                         torch.amp.GradScaler(kind, init_scale=INIT_SCALE))
    raise SketchColorError(f"train.mixed_precision {setting!r}: not one of off, auto, bf16, fp16")
