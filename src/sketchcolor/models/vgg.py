"""The one VGG builder: torchvision-compatible ``features`` stacks, their layer names, and frozen
trunks that return named activations (for the perceptual/style losses and feature metrics).

torchvision cannot be installed beside the CPU torch build we pin, so the VGG feature stack is
defined here with torchvision's layer indices (``features.N.weight``): weights saved by
torchvision load as they are. HED (:mod:`sketchcolor.models.hed`) builds its VGG16 from the same
function. Weights are never downloaded: :func:`load_vgg19` reads a local file named in the
config or by an environment variable, and a missing file is an error, never a random VGG.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from sketchcolor.errors import CheckpointError, MissingWeightsError

# torchvision's VGG "E" (VGG19) and "D" (VGG16) layer plans: channels, "M" = 2x2 max-pool.
VGG19_PLAN: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
VGG16_PLAN: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                     512, 512, 512, "M", 512, 512, 512, "M")
VGG_ENV = "SKETCHCOLOR_VGG19"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(plan: tuple[int | str, ...]) -> list[str]:
    """Name every module of the plan's ``features`` stack: conv1_1, relu1_1, ..., pool1, ..."""
    names, block, idx = [], 1, 1
    for item in plan:
        if item == "M":
            names.append(f"pool{block}")
            block, idx = block + 1, 1
        else:
            names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
            idx += 1
    return names


def vgg_features(plan: tuple[int | str, ...], depth: int | None = None, *, ceil_mode: bool = False,
                 inplace: bool = False) -> nn.Sequential:
    """The first ``depth`` modules (all when None) of a VGG ``features`` stack with torchvision's
    indices: 3x3 convolutions (padding 1) each followed by a ReLU, 2x2/2 max-pools at "M".

    ``ceil_mode=True`` gives Keras-style "same" pools (HED); torchvision's pools floor. The whole
    plan is built before it is cut, so the default initialisation draws the same random numbers
    whatever ``depth`` is."""
    mods: list[nn.Module] = []
    cin = 3
    for item in plan:
        if item == "M":
            mods.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
        else:
            mods += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=inplace)]
            cin = int(item)
    return nn.Sequential(*mods[:depth])


class Frozen(nn.Module):
    """A pretrained network that never trains: no gradients, always in eval mode."""

    def freeze(self) -> None:
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Frozen:  # noqa: ARG002 - always eval
        return super().train(False)


class VGGTrunk(Frozen):
    """A frozen VGG ``features`` stack returning the activations named in ``layers``.

    ``image [B, 3, H, W]`` in [-1, 1] RGB -> ``{name: [B, C_l, H_l, W_l]}``, names as in
    :func:`layer_names`. The stack is cut after the deepest requested layer. Subclasses say how
    the image is fed (:meth:`preprocess`) and may scale the activations (``FEATURE_SCALE``)."""

    FEATURE_SCALE = 1.0

    def __init__(self, layers: tuple[str, ...], plan: tuple[int | str, ...], ceil_mode: bool = False) -> None:
        super().__init__()
        names = layer_names(plan)
        last = max(names.index(n) for n in layers)
        self.features = vgg_features(plan, last + 1, ceil_mode=ceil_mode)
        self.names = names[: last + 1]
        self.layers = tuple(layers)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(image)
        out = {}
        for name, mod in zip(self.names, self.features):
            x = mod(x)
            if name in self.layers:
                out[name] = x / self.FEATURE_SCALE if self.FEATURE_SCALE != 1.0 else x
        return out


class VGGFeatures(VGGTrunk):
    """An ImageNet VGG trunk (VGG19 by default) fed as torchvision's VGGs were trained: ``[-1, 1]``
    -> ``[0, 1]`` standardised by the ImageNet mean and std. ``plan`` may be a small VGG-shaped
    plan for tests."""

    def __init__(self, layers: tuple[str, ...], plan: tuple[int | str, ...] = VGG19_PLAN) -> None:
        missing = [n for n in layers if n not in layer_names(plan)]
        if missing:
            raise ValueError(f"VGG plan has no layer(s) {missing}")
        super().__init__(layers, plan)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return ((image + 1.0) / 2.0 - self.mean) / self.std


def resolve_vgg_path(configured: str | None) -> Path | None:
    """The VGG weights file from the config, else from ``$SKETCHCOLOR_VGG19``, else None."""
    p = configured or os.environ.get(VGG_ENV)
    return Path(p).expanduser() if p else None


def load_vgg19(layers: tuple[str, ...], path: str | Path | None) -> VGGFeatures:
    """Build VGG19 features and load ImageNet weights in torchvision's key format.

    ``path`` is a ``.safetensors`` file or a torch file (loaded with ``weights_only=True``).
    """
    if path is None or not Path(path).is_file():
        where = f"{path}" if path else f"a file named by loss.vgg_weights or ${VGG_ENV}"
        raise MissingWeightsError(
            f"perceptual/style losses need ImageNet VGG19 weights (torchvision format, e.g. vgg19-dcbb9e9d.pth) "
            f"at {where}; put the file there or set loss.lambda_perc=0 and loss.lambda_style=0"
        )
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any decoding failure is one clear line
        raise CheckpointError(f"{path}: cannot read VGG weights ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: VGG weights file does not hold a state dict")
    vgg = VGGFeatures(layers)
    wanted = vgg.features.state_dict().keys()
    sub = {f"features.{k}": v for k, v in vgg.features.state_dict().items()}
    missing = [k for k in sub if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not VGG19 weights in torchvision format (missing {missing[0]})")
    try:
        vgg.features.load_state_dict({k: state[f"features.{k}"] for k in wanted})
    except RuntimeError as e:
        raise CheckpointError(f"{path}: VGG19 weights have the wrong shapes ({str(e).splitlines()[-1].strip()})") from None
    return vgg
