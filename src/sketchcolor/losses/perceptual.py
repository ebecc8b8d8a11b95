"""Perceptual (Eq. 9) and style (Eq. 10) losses on a frozen VGG trunk.

torchvision cannot be installed beside the CPU torch build we pin, so the VGG feature stack is
defined here with torchvision's layer indices (``features.N.weight``): weights saved by
torchvision load as they are. Weights are never downloaded: they come from a local file named in
the config or by an environment variable, and a missing file is an error, never a random VGG.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from sketchcolor.errors import CheckpointError, MissingWeightsError

# torchvision's VGG "E" (VGG19) and "D" (VGG16) layer plans: channels, "M" = 2x2 max-pool.
VGG19_PLAN: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
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


class VGGFeatures(nn.Module):
    """A frozen VGG ``features`` stack returning the activations named in ``layers``.

    ``image [B, 3, H, W]`` in [-1, 1] -> ``{name: [B, C_l, H_l, W_l]}``. The stack is cut after
    the deepest requested layer. ``plan`` may be a small VGG-shaped plan for tests.
    """

    def __init__(self, layers: tuple[str, ...], plan: tuple[int | str, ...] = VGG19_PLAN) -> None:
        super().__init__()
        names = layer_names(plan)
        missing = [n for n in layers if n not in names]
        if missing:
            raise ValueError(f"VGG plan has no layer(s) {missing}")
        last = max(names.index(n) for n in layers)
        mods: list[nn.Module] = []
        cin = 3
        for item in plan:
            if item == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(item)
        self.features = nn.Sequential(*mods[: last + 1])
        self.names = names[: last + 1]
        self.layers = tuple(layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:  # always frozen, always eval
        return super().train(False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = ((image + 1.0) / 2.0 - self.mean) / self.std
        out = {}
        for name, mod in zip(self.names, self.features):
            x = mod(x)
            if name in self.layers:
                out[name] = x
        return out


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
            from safetensors.torch import load_file

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


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by C*H*W: ``[B, C, H, W] -> [B, C, C]``."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def perceptual_and_style(
    vgg: VGGFeatures, output: torch.Tensor, target: torch.Tensor, want_style: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over layers of mean L1 between features (perceptual) and between Gram matrices (style)."""
    f_out = vgg(output)
    with torch.no_grad():
        f_tgt = vgg(target)
    perc = sum((f_out[n] - f_tgt[n]).abs().mean() for n in vgg.layers)
    style = sum((gram(f_out[n]) - gram(f_tgt[n])).abs().mean() for n in vgg.layers) if want_style else output.sum() * 0.0
    return perc, style  # type: ignore[return-value]
