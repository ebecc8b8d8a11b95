"""Parameter counts and FLOPs (counted by ``torch.utils.flop_counter``) of G and D."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from sketchcolor.config import Config, ModelConfig, parse_amount
from sketchcolor.data.tps import CELL_PAIR_BYTES, PROBE_DENSITY, SEARCH_CHUNK_BYTES
from sketchcolor.errors import ConfigError
from sketchcolor.models.discriminator import PatchDiscriminator
from sketchcolor.models.generator import Colorizer
from sketchcolor.models.vgg import VGG16_PLAN, VGG19_PLAN, layer_names


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def forward_flops(cfg: ModelConfig, generator: Colorizer | None = None) -> int:
    """FLOPs (2 x multiply-adds) of one G forward on one ``image_size`` pair."""
    g = generator if generator is not None else Colorizer(cfg)
    s = cfg.image_size
    with FlopCounterMode(display=False) as fc:
        g(torch.zeros(1, 1, s, s), torch.zeros(1, 3, s, s))
    return int(fc.get_total_flops())


def describe(cfg: ModelConfig) -> list[str]:
    """Human-readable lines: parameters of G (and its parts) and D, and forward FLOPs."""
    g, d = Colorizer(cfg), PatchDiscriminator(cfg)
    n = cfg.image_size // cfg.feature_stride
    parts = {"encoders": count_params(g.sketch_encoder) + count_params(g.reference_encoder),
             "fusion": count_params(g.scft if cfg.fusion == "scft" else g.concat), "res_blocks": count_params(g.bottleneck) + count_params(g.res_blocks),
             "decoder": count_params(g.decoder) + count_params(g.to_rgb)}
    lines = [f"image size        {cfg.image_size} px, feature grid {n} x {n}, k = {cfg.feature_channels}",
             f"G parameters      {count_params(g) / 1e6:.2f} M  (" + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in parts.items()) + ")",
             f"D parameters      {count_params(d) / 1e6:.2f} M",
             f"G forward FLOPs   {forward_flops(cfg, g) / 1e9:.2f} GFLOP per {cfg.image_size} px image"]
    return lines


# ----------------------------------------------------------------------------- memory estimate
# Counted from the config alone, without building anything: a config edited to 2048 px or to
# 100,000 channels is refused before a byte is allocated. Every tensor is float32 (4 bytes).
# Calibrated against the peak resident memory of real runs on CPU (one forward of the tiny,
# default and paper models at 64-512 px; training steps at 64-256 px, batch 1-16): the estimate
# lies between 1.0x and 1.6x of what was measured, higher for large pictures, where the
# attention's hw_s x hw_r matrix dominates. tests/test_config_limits.py checks the parameter
# counts against built models.

FLOAT = 4
MEMORY_ENV = "SKETCHCOLOR_MAX_MEMORY"
# on a GPU run, the host's own limit (DataLoader workers, picture caches, the training process):
# MEMORY_ENV bounds the GPU there, and raising it past the GPU check must not free the host's
HOST_MEMORY_ENV = "SKETCHCOLOR_MAX_HOST_MEMORY"
OVERHEAD = 128 << 20  # autograd, thread pools and allocator slack of a training process (measured ~60-100 MiB)
# batches of examples a DataLoader worker accounts for: its peak resident memory grew by 2.3-2.5
# batches while it assembled them (the examples, and the collated copy it writes into shared
# memory; 1 worker at 128 px, batches of 32 and 128: +35 and +146 MiB for batches of 15 and
# 58 MiB), and its prefetch_factor (2) finished batches wait in shared memory (/dev/shm grew
# by 3 batches, with the main process holding one)
WORKER_BATCHES = 4.5
# the pages a forked DataLoader worker writes besides its triplet and cache: 25 MiB private at its
# start, 40-50 MiB with its first triplets at 128 px (measured)
WORKER_OVERHEAD = 64 << 20
# what a cached picture costs a worker against its arrays' bytes: 127 KiB of private memory an
# entry for 89 KiB of arrays on average at 128 px (1.43x; 2 workers over 4,800 examples of
# data/drawings: the allocator's fragmentation between the triplets' temporaries), with a margin
CACHE_SLACK = 1.6


def _conv(cin: int, cout: int, k: int, bias: bool) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def _conv_act(cin: int, cout: int, norm: str) -> int:
    """Parameters of blocks.ConvAct: a 3x3 conv (bias without norm), BatchNorm's scale and shift."""
    return _conv(cin, cout, 3, norm == "none") + (2 * cout if norm == "batch" else 0)


def generator_params(cfg: ModelConfig) -> int:
    """Parameters of :class:`Colorizer` ``cfg`` describes, counted without building it."""
    k, norm = cfg.feature_channels, cfg.norm
    total = 0
    for cin0 in (1, 3):  # E_s and E_r
        cin = cin0
        for c in cfg.encoder_channels:
            total += _conv_act(cin, c, norm)
            cin = c
    if cfg.fusion == "scft":
        d = cfg.attention_dim or k
        total += 2 * (k * d + d) + k * k + k + (1 if cfg.attention_norm == "qk" else 0)  # + the temperature
    else:
        total += _conv(2 * k, k, 1, True)
    width = cfg.bottleneck_channels or k
    if cfg.bottleneck_channels:
        total += _conv(k, width, 1, True)
    total += cfg.num_res_blocks * (_conv_act(width, width, norm) + _conv(width, width, 3, norm == "none")
                                   + (2 * width if norm == "batch" else 0))
    cin = width
    for d_layer in reversed(cfg.downsample_layers):
        cskip = cfg.encoder_channels[d_layer - 2]
        total += _conv_act(cin, cskip, norm) + _conv_act(2 * cskip, cskip, norm)
        cin = cskip
    if cfg.color_path:
        total += _conv_act(cin + 3, cin, norm)
    return total + _conv(cin, 3, 3, True)


def discriminator_params(cfg: ModelConfig) -> int:
    """Parameters of :class:`PatchDiscriminator` ``cfg`` describes, counted without building it."""
    c = cfg.disc_channels
    total, cin = _conv(4, c, 4, True), c
    for n in range(1, cfg.disc_layers):
        cout = c * min(2**n, 8)
        total, cin = total + _conv(cin, cout, 4, True), cout
    cout = c * min(2**cfg.disc_layers, 8)
    return total + _conv(cin, cout, 4, True) + _conv(cout, 1, 4, True)


def _generator_activations(cfg: ModelConfig, per_layer: int) -> tuple[int, int]:
    """Elements of G's intermediate tensors for one sample at ``cfg.image_size``: (all but the
    attention, the attention's ``hw_s * hw_r``). ``per_layer`` tensors per conv layer (conv
    output, activation, norm)."""
    s = cfg.image_size
    total, side, enc = 0, s, []
    for i, c in enumerate(cfg.encoder_channels, start=1):
        side = side // 2 if i in cfg.downsample_layers else side
        enc.append((c, side))
    total += 2 * per_layer * sum(c * side * side for c, side in enc)  # E_s and E_r
    k, hw = cfg.feature_channels, (s // cfg.feature_stride) ** 2
    total += 4 * k * hw  # V_s, V_r: pooled levels and their concatenation
    if cfg.fusion == "scft":
        total += 2 * (cfg.attention_dim or k) * hw + 4 * k * hw  # queries, keys; values, transfer, fused
    else:
        total += 4 * k * hw
    width = cfg.bottleneck_channels or k
    total += width * hw + cfg.num_res_blocks * (per_layer + 2) * width * hw
    cin, side = width, s // cfg.feature_stride
    for d_layer in reversed(cfg.downsample_layers):
        cskip, side = cfg.encoder_channels[d_layer - 2], side * 2
        total += (cin + (2 * per_layer + 2) * cskip) * side * side  # upsampled, reduced, concatenated, fused
        cin = cskip
    if cfg.color_path:
        total += (2 * cin + 6 + per_layer * cin) * s * s
    total += 4 * 3 * s * s + 4 * s * s  # output and its activation; the input pair
    return total, hw * hw


def _discriminator_activations(cfg: ModelConfig) -> int:
    side, c, total = cfg.image_size, cfg.disc_channels, 4 * cfg.image_size**2
    for n in range(cfg.disc_layers):
        side //= 2
        total += 2 * c * min(2**n, 8) * side * side
    return total + 2 * c * min(2**cfg.disc_layers, 8) * side * side + side * side


def _vgg(cfg: Config) -> tuple[int, int]:
    """(parameters, activation elements per image) of the perceptual/style trunk; (0, 0) when off."""
    loss = cfg.loss
    if not (loss.lambda_perc or loss.lambda_style):
        return 0, 0
    plan = VGG19_PLAN if loss.vgg_network == "vgg19" else VGG16_PLAN
    names = layer_names(plan)
    last = max((names.index(n) for n in loss.vgg_layers if n in names), default=len(names) - 1)
    params = acts = 0
    side, cin, i = cfg.model.image_size, 3, 0
    for item in plan:
        if i > last:
            break
        if item == "M":
            side, i = side // 2, i + 1
            acts += cin * side * side
        else:
            params += _conv(cin, int(item), 3, True)
            acts += 2 * int(item) * side * side
            cin, i = int(item), i + 2
    return params, acts


def _picture_planes_bytes(cfg: Config) -> int:
    """The Lab recoloring and the warp of one example: about 24 float pictures (72 planes)."""
    return FLOAT * 24 * 3 * cfg.model.image_size * cfg.model.image_size


def triplet_bytes(cfg: Config) -> int:
    """Bytes building one triplet holds at its peak (a() and the TPS warp, on one example): kornia's
    thin-plate spline keeps about six ``[points, K]`` float tensors (``K = data.tps_grid ** 2``
    control points; the points are the pixels, then the probe grid where it differs, 16x the
    pixels at a feature stride of 2), the Lab recoloring and the warp about 24 float pictures (72
    planes)."""
    m, d = cfg.model, cfg.data
    pixels = m.image_size * m.image_size
    probes = (m.image_size // m.feature_stride * PROBE_DENSITY) ** 2
    # the two warps run one after the other: the larger point set is the peak
    return FLOAT * 6 * max(pixels, probes) * d.tps_grid ** 2 + _picture_planes_bytes(cfg)


def triplet_build_bytes(cfg: Config) -> int:
    """Bytes the batch-wise build of a batch of triplets holds at its peak (``data.augment_on:
    device``, :func:`sketchcolor.data.device_triplets.build_triplets`), before the step's forward
    pass: :func:`triplet_bytes` an example, and the correspondence search on a GPU its pairs of
    probes and window cells, in blocks of about :data:`~sketchcolor.data.tps.SEARCH_CHUNK_BYTES`.
    Peaks measured on CPU (growth of the resident memory, batch 8): 9 MiB an example at 128 px and
    grid 4 (k-d tree; 12 with the "cells" search), 340 MiB at grid 32, 41 MiB at 256 px and grid 4
    ("cells"), 1,358 MiB (1.33 GiB) at 256 px and grid 32 (batch 4); this counts 1.2-2.0x that."""
    m = cfg.model
    probes = (m.image_size // m.feature_stride * PROBE_DENSITY) ** 2
    side = math.floor(2 * cfg.data.correspondence_tolerance) + 2
    search = min(cfg.train.batch_size * CELL_PAIR_BYTES * probes * side * side, SEARCH_CHUNK_BYTES)
    return cfg.train.batch_size * triplet_bytes(cfg) + search


def example_bytes(cfg: Config) -> int:
    """Bytes of one training example as a DataLoader worker sends it: the triplet's sketch,
    reference and target (float32 planes) and correspondence, or with ``data.augment_on: device``
    the sketch, picture and flat-color regions with a() and s()'s draws; the region around the
    drawing where the paper term is on (checked against the examples of ``data/drawings``)."""
    m = cfg.model
    pixels = m.image_size * m.image_size
    around = pixels if cfg.loss.lambda_paper > 0 else 0
    if cfg.data.augment_on == "device":
        return FLOAT * 4 * pixels + pixels + around + 1024
    return FLOAT * 7 * pixels + 8 * (m.image_size // m.feature_stride) ** 2 + around


def worker_bytes(cfg: Config) -> int:
    """Bytes one DataLoader worker (``data.num_workers``) adds to the machine's memory, its picture
    cache aside (:func:`picture_cache_limit`): the pages of the forked process it writes, the
    triplet it builds (:func:`triplet_bytes`; with ``data.augment_on: device`` only the draws and
    the flat-color regions, counted as the 72 planes), and the batches of ``train.batch_size``
    (this process's share) it assembles and has waiting (:data:`WORKER_BATCHES`). Measured (2
    workers, private memory and peak resident growth of each, ``data.cache_images`` off): 40-50
    MiB at the default 128 px, grid 4; a peak of about 1.45 GiB at 256 px, grid 32 (1.58 GiB
    counted, with the batches 1.64)."""
    batches = int(WORKER_BATCHES * cfg.train.batch_size * example_bytes(cfg))
    built = _picture_planes_bytes(cfg) if cfg.data.augment_on == "device" else triplet_bytes(cfg)
    return WORKER_OVERHEAD + built + batches


def estimate_memory(cfg: Config, training: bool) -> int:
    """Bytes one process needs, by the config alone: to colorize one picture (``training`` False:
    G's weights and one forward pass) or to train (G, D, the EMA, Adam's two moments, gradients,
    and the activations a batch keeps for the backward pass: G, D on real and fake, the VGG
    trunk on output and target)."""
    m = cfg.model
    g = generator_params(m)
    if not training:
        acts, attention = _generator_activations(m, per_layer=1)
        return OVERHEAD // 4 + FLOAT * (g + acts + 2 * attention)
    acts, attention = _generator_activations(m, per_layer=3 if m.norm == "batch" else 2)
    vgg_params, vgg_acts = _vgg(cfg)
    d = discriminator_params(m)
    # weights, gradients, Adam's two moments and its temporaries; the EMA's copy
    params = g * (6 if cfg.train.ema_decay > 0 else 5) + 5 * d + vgg_params
    per_sample = 2 * (acts + 3 * attention) + 3 * _discriminator_activations(m) + 2 * vgg_acts
    batch = FLOAT * cfg.train.batch_size * per_sample
    if cfg.data.augment_on == "device":  # its temporaries are gone before the forward pass: the larger counts
        batch = max(batch, triplet_build_bytes(cfg))
    return OVERHEAD + FLOAT * params + batch


def _physical_memory() -> tuple[int | None, str]:
    """(bytes, what) of the memory this process may use: the machine's RAM, or its container's
    cgroup limit when that is lower; None where neither can be read."""
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    what = "physical memory"
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = int(Path(path).read_text().strip())
        except (OSError, ValueError):
            continue
        if total is None or limit < total:
            total, what = limit, "the container's memory limit"
        break
    return total, what


def _env_amount(name: str) -> int | None:
    """The amount of memory in environment variable ``name`` (``8G``, ``512M``, bytes), None when unset."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    try:
        return parse_amount(raw, binary=True)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} is not an amount of memory (e.g. 8G or 8589934592)") from None


def memory_limit(device: torch.device | None = None) -> tuple[int, str]:
    """(bytes, how it was chosen) of the memory the model runs in: ``$SKETCHCOLOR_MAX_MEMORY``
    (``8G``, ``512M``, bytes), else 80% of a CUDA device's memory when training there, else 80%
    of the physical memory (or of a container's limit); 16 GiB where none can be read."""
    amount = _env_amount(MEMORY_ENV)
    if amount is not None:
        return amount, MEMORY_ENV
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(device).total_memory
        return int(0.8 * total), f"80% of {torch.cuda.get_device_name(device)}'s memory"
    return _host_default()


def host_memory_env(device: torch.device | None = None) -> str:
    """The variable that bounds the host's memory when the model runs on ``device``: on a CPU
    ``$SKETCHCOLOR_MAX_MEMORY``; on a GPU, whose limit that sets, ``$SKETCHCOLOR_MAX_HOST_MEMORY``."""
    return HOST_MEMORY_ENV if device is not None and device.type == "cuda" else MEMORY_ENV


def host_limit(device: torch.device | None = None) -> tuple[int, str]:
    """(bytes, how it was chosen) of the host's memory when the model runs on ``device``: the
    :func:`host_memory_env` variable, else 80% of the physical memory (on a CPU the same as
    :func:`memory_limit`)."""
    env = host_memory_env(device)
    amount = _env_amount(env)
    return (amount, env) if amount is not None else _host_default()


def _host_default() -> tuple[int, str]:
    total, what = _physical_memory()
    if total is None:
        return 16 << 30, "a default of 16 GiB"
    return int(0.8 * total), f"80% of {what}"


def workers_bytes(cfg: Config) -> int:
    """Bytes the config's ``data.num_workers`` DataLoader workers add (:func:`worker_bytes` each),
    their picture caches aside (those are sized to what is left: :func:`picture_cache_limit`)."""
    return cfg.data.num_workers * worker_bytes(cfg)


def _workers_phrase(cfg: Config) -> str:
    n, d = cfg.data.num_workers, cfg.data
    built = f" (building triplets at data.tps_grid {d.tps_grid})" if d.augment_on == "workers" else ""
    each = " each" if n > 1 else ""
    return f"{n} DataLoader worker{'s' if n > 1 else ''} of about {format_bytes(worker_bytes(cfg))}{each}{built}"


def _workers_lower(cfg: Config) -> str:
    """What shrinks the workers: their triplet's spline grid only where they build triplets."""
    return "data.num_workers, data.tps_grid or model.image_size," if cfg.data.augment_on == "workers" else \
        "data.num_workers or model.image_size,"


def host_share(processes: int, device: torch.device | None = None) -> tuple[int, str]:
    """(bytes, how it was chosen): this process's share of the host's :func:`host_limit` (the
    model on ``device``) when ``processes`` training processes (torchrun's on this machine) share it."""
    limit, why = host_limit(device)
    if processes > 1:
        return limit // processes, f"{why}, shared by {processes} processes"
    return limit, why


def picture_cache_limit(cfg: Config, device: torch.device, processes: int = 1) -> int:
    """Bytes of decoded pictures (the arrays' bytes; :data:`CACHE_SLACK` times that counted) each
    process that caches them may keep (``data.cache_images``): each DataLoader worker, or the
    training process itself without workers, holds its own cache, and a whole data set at 256 px
    (about 360 KiB of arrays a picture) can outgrow the memory many times over. What the host's
    memory limit leaves after ``processes`` training processes on this machine
    (``LOCAL_WORLD_SIZE``), each with its step (on a GPU only :data:`OVERHEAD`; the CUDA
    runtime's own host memory is not counted, unmeasured) and its workers, shared among the
    caches; 0 when nothing is left."""
    host, _ = host_share(processes, device)
    step = estimate_memory(cfg, True) if device.type != "cuda" else OVERHEAD
    free = host - step - workers_bytes(cfg)
    return max(0, int(free / max(1, cfg.data.num_workers) / CACHE_SLACK))


def format_bytes(n: int) -> str:
    """``n`` bytes for a message: GiB from 1 GiB, MiB from 1 MiB, else KiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n >> 10} KiB"


def check_memory(cfg: Config, training: bool, device: torch.device | None = None, where: str = "",
                 discriminator: bool = False, processes: int = 1) -> int:
    """Refuse (ConfigError, one line) a config whose :func:`estimate_memory` is over
    :func:`memory_limit`, before anything is allocated; returns the estimate. Training counts its
    DataLoader workers too (:func:`workers_bytes`): beside the step on a CPU, against the host's
    memory on a GPU, where ``processes`` training processes (torchrun's on this machine) share it.
    ``discriminator``:
    D's weights are built too, beside a colorizing G (``sketchcolor info``; training counts them
    already)."""
    need = estimate_memory(cfg, training)
    if discriminator and not training:
        need += FLOAT * discriminator_params(cfg.model)
    on_host = device is None or device.type != "cuda"
    limit, why = host_share(processes, device) if training and on_host else memory_limit(device)
    workers = workers_bytes(cfg) if training else 0
    counted = workers if on_host else 0  # the workers share a CPU's memory with the step
    need += counted
    if workers and not on_host:  # training on a GPU: the workers and this process against the host's memory
        host, host_why = host_share(processes, device)
        if workers + OVERHEAD > host:
            raise ConfigError(f"{where + ': ' if where else ''}the config's {_workers_phrase(cfg)} and the training "
                              f"process need about {format_bytes(workers + OVERHEAD)} of host memory, over the limit of "
                              f"{format_bytes(host)} ({host_why}); lower {_workers_lower(cfg)} or set {host_memory_env(device)}")
    if need > limit:
        m = cfg.model
        hw = (m.image_size // m.feature_stride) ** 2
        with_d = discriminator and not training
        what = (f"to train at model.image_size {m.image_size} with train.batch_size {cfg.train.batch_size}" if training
                else f"to build G and D and run G once at model.image_size {m.image_size}" if with_d
                else f"to colorize at model.image_size {m.image_size}")
        lower = "model.image_size or train.batch_size," if training else "model.image_size"
        d_part = ""
        # D's weights (with their gradients and Adam's moments when training) can be what is too
        # big: then D is named, and model.disc_channels first
        d_weights = FLOAT * discriminator_params(m) * (5 if training else 1)
        if with_d or (training and 2 * d_weights > need - counted):
            d_part = f" and D {discriminator_params(m) / 1e6:,.2f} M"
            if 2 * d_weights > need - counted:
                lower = "model.disc_channels, model.image_size or train.batch_size," if training else \
                    "model.disc_channels or model.image_size,"
            else:
                lower = "model.image_size or model.disc_channels,"
        with_workers = replace(cfg, data=replace(cfg.data, augment_on="workers"))
        if counted:
            what += f" and {_workers_phrase(cfg)}"
            lower = lower.rstrip(",").replace(" or ", ", ") + " or data.num_workers,"
        if counted and need - counted <= limit:  # the step alone would fit: the workers are what is too big
            lower = _workers_lower(cfg)
        elif (training and cfg.data.augment_on == "device"
              and estimate_memory(cfg, True) > estimate_memory(with_workers, True)):
            # the batch-wise triplet build is the larger part: kornia's spline grows with tps_grid²
            what += f", building its triplets at once with data.tps_grid {cfg.data.tps_grid}"
            if estimate_memory(with_workers, True) + (workers_bytes(with_workers) if on_host else 0) <= limit:
                lower = "data.tps_grid, train.batch_size or model.image_size, use data.augment_on workers,"
            else:  # the workers would not fit either (they too build a triplet each)
                lower = "data.tps_grid, train.batch_size, model.image_size or data.num_workers," if counted else \
                    "data.tps_grid, train.batch_size or model.image_size,"
        raise ConfigError(f"{where + ': ' if where else ''}the config needs about {format_bytes(need)} {what} "
                          f"(G {generator_params(m) / 1e6:.1f} M{d_part} parameters, attention over {hw:,} x {hw:,} "
                          f"cells), over the limit of {format_bytes(limit)} ({why}); lower {lower} or set {MEMORY_ENV}")
    return need
