"""Issue 14: the step's speed switches (autocast, channels_last) stay within a tolerance of fp32.

Stated tolerances, for one G+D step of the tiny test model on CPU with every loss on (perceptual
and style on a randomly initialised HED VGG16 trunk; loss terms relative to fp32, gradients as the
relative L2 norm of their difference):
- channels_last, fp32: the same arithmetic in another memory order: terms 1e-5, gradients 1e-4
  (measured 1e-7 and 3e-7);
- bf16 autocast (8 bits of mantissa in convolutions and matrix products): terms 1e-2, gradients
  5e-2 (measured 2.7e-3, on the perceptual term, and 1.1e-2);
- fp16 autocast with gradient scalers: the same bounds (measured 7e-5 and 1.4e-2).
Before the VGG terms were in this test they were computed in fp16 too, and the style term's Gram
matrices overflowed at the recipes' sizes (:func:`test_gram_matrices_are_fp32_under_autocast`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sketchcolor.config import LossConfig
from sketchcolor.losses.perceptual import gram
from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.models.hed import VGG16Trunk
from sketchcolor.training.checkpoint import list_checkpoints, load_trainer_state
from sketchcolor.training.loop import fit
from sketchcolor.training.precision import choose_precision
from sketchcolor.training.step import StepOptions, train_step

LIMITS = {"channels_last": (1e-5, 1e-4), "bf16": (1e-2, 5e-2), "fp16": (1e-2, 5e-2)}


def _one_step(model_cfg, setting: str, channels_last: bool) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """Terms and the gradients of G and D after one step (lr 0: only the gradients matter)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    g = Colorizer(model_cfg).to(memory_format=fmt)
    d = PatchDiscriminator(model_cfg).to(memory_format=fmt)
    opt_g, opt_d = torch.optim.SGD(g.parameters(), lr=0.0), torch.optim.SGD(d.parameters(), lr=0.0)
    gen = torch.Generator().manual_seed(0)
    s = model_cfg.image_size
    batch = {"sketch": torch.rand(2, 1, s, s, generator=gen) * 2 - 1, "reference": torch.rand(2, 3, s, s, generator=gen) * 2 - 1,
             "target": torch.rand(2, 3, s, s, generator=gen) * 2 - 1,
             "correspondence": torch.arange((s // model_cfg.feature_stride) ** 2).repeat(2, 1)}
    batch = {k: v.contiguous(memory_format=fmt) if v.dim() == 4 else v for k, v in batch.items()}
    p = choose_precision(setting, torch.device("cpu"))
    options = StepOptions(autocast=p.dtype, scaler_g=p.scaler_g, scaler_d=p.scaler_d)
    # every loss of Eq. 11 on, perceptual and style on a (randomly initialised) HED VGG16 trunk
    torch.manual_seed(2)
    vgg = VGG16Trunk(("relu1_1", "relu2_1")).to(memory_format=fmt)
    m = train_step(g, d, opt_g, opt_d, batch, LossConfig(), vgg, torch.Generator().manual_seed(1), options=options)
    assert m.pop("skipped") == 0.0
    grads = [torch.cat([q.grad.flatten() for q in net.parameters()]) for net in (g, d)]
    return m, grads[0], grads[1]


@pytest.mark.parametrize("variant", ["channels_last", "bf16", "fp16"])
def test_switches_stay_within_tolerance_of_fp32(tiny_model_cfg, variant: str) -> None:
    ref_terms, ref_g, ref_d = _one_step(tiny_model_cfg, "off", False)
    terms, grad_g, grad_d = _one_step(tiny_model_cfg, "off" if variant == "channels_last" else variant,
                                      variant == "channels_last")
    term_limit, grad_limit = LIMITS[variant]
    assert terms.keys() == ref_terms.keys()
    for k, v in terms.items():
        assert abs(v - ref_terms[k]) <= term_limit * max(abs(ref_terms[k]), 1e-6), (k, v, ref_terms[k])
    for got, ref in ((grad_g, ref_g), (grad_d, ref_d)):
        assert float((got - ref).norm() / ref.norm()) < grad_limit


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gram_matrices_are_fp32_under_autocast(dtype: torch.dtype) -> None:
    """The Gram product sums H*W squares before dividing: here about 8.7e4, beyond fp16's 65,504
    (as HED's relu1_1 at 128 px reaches), so fp16 gave inf and a skipped G step every time."""
    features = torch.rand(2, 4, 128, 128, generator=torch.Generator().manual_seed(0)) * 4
    with torch.autocast("cpu", dtype=dtype):
        got = gram(features)
    assert got.dtype == torch.float32 and bool(torch.isfinite(got).all())
    assert torch.equal(got, gram(features))


def test_mixed_precision_run_keeps_its_scalers_across_a_resume(tmp_path: Path, sample_photos: list[Path],
                                                                small_config) -> None:
    common = ["train.batch_size=2", "train.log_every=1", "train.image_every=1000", "train.checkpoint_every=1",
              "train.mixed_precision=fp16", "train.channels_last=true"]
    fit(small_config(*common, "train.steps=1"), sample_photos[0].parent, tmp_path / "r", progress=False)
    state = load_trainer_state(list_checkpoints(tmp_path / "r" / "checkpoints")[-1])
    assert state["scaler_g"]["scale"] > 0 and state["scaler_d"]["scale"] > 0
    fit(small_config(*common, "train.steps=2"), sample_photos[0].parent, tmp_path / "r", resume=True, progress=False)
    assert load_trainer_state(list_checkpoints(tmp_path / "r" / "checkpoints")[-1])["step"] == 2


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
def test_auto_precision_asks_for_native_bf16_on_the_gpu_it_trains_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a V100 or T4 (sm 7.x) torch.cuda.is_bf16_supported() says yes (bf16 emulated): auto must
    pick fp16 with scalers there, and bf16 by name must be refused. No GPU here: torch's two
    calls stand for one of each kind, and the device asked about is recorded."""
    import contextlib

    from sketchcolor.errors import SketchColorError
    asked: list[torch.device] = []

    def on(device: torch.device) -> contextlib.AbstractContextManager[None]:
        asked.append(device)
        return contextlib.nullcontext()

    monkeypatch.setattr(torch.cuda, "device", on)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    gpu = torch.device("cuda", 1)
    for native, expected in ((False, torch.float16), (True, torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: including_emulation or n)
        p = choose_precision("auto", gpu)
        assert p.dtype is expected and (p.scaler_g is not None) == (not native)
    assert asked and set(asked) == {gpu}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    with pytest.raises(SketchColorError, match="Tesla T4 does not support bfloat16; use fp16 or auto"):
        choose_precision("bf16", gpu)


def test_auto_precision_is_fp32_on_cpu() -> None:
    assert choose_precision("auto", torch.device("cpu")).dtype is None
    assert choose_precision("bf16", torch.device("cpu")).dtype is torch.bfloat16
    p = choose_precision("fp16", torch.device("cpu"))
    assert p.dtype is torch.float16 and p.scaler_g is not None and p.scaler_d is not None


def test_configs_saved_before_the_switches_still_load(tmp_path: Path) -> None:
    """A model folder written before train.mixed_precision/channels_last/compile existed (the
    shipped config.json without the three fields) loads with them off."""
    import json

    from sketchcolor.config import SPEED_FIELDS
    from sketchcolor.models.serialization import read_config

    raw = json.loads((Path(__file__).resolve().parents[2] / "weights" / "default" / "config.json").read_text())
    for field in SPEED_FIELDS:  # "train.mixed_precision", ...
        section, key = field.split(".")
        raw["config"][section].pop(key, None)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    cfg, _ = read_config(tmp_path)
    assert (cfg.train.mixed_precision, cfg.train.channels_last, cfg.train.compile) == ("off", False, False)
    assert cfg.data.augment_on == "workers"


@pytest.mark.slow  # inductor compiles C++ for the CPU: minutes on 2 cores
def test_compiled_run_matches_the_eager_run(tmp_path: Path, sample_photos: list[Path], small_config) -> None:
    from safetensors.torch import load_file

    common = ["train.batch_size=2", "train.log_every=1", "train.image_every=1000", "train.steps=2", "train.threads=1"]
    eager = fit(small_config(*common), sample_photos[0].parent, tmp_path / "eager", progress=False)
    compiled = fit(small_config(*common, "train.compile=true"), sample_photos[0].parent, tmp_path / "compiled",
                   progress=False)
    a, b = load_file(str(eager / "model.safetensors")), load_file(str(compiled / "model.safetensors"))
    assert a.keys() == b.keys()  # no _orig_mod. prefixes
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k


@pytest.mark.parametrize("recipe", ["default", "paper"])
def test_train_compile_traces_whole_graphs(recipe: str) -> None:
    """train.compile is only worth its compilation if G and D trace as one graph each: a graph break
    sends the function around it back to eager (an ``assert`` on a list did so for all of
    ``Colorizer.encode_reference``, and the switch bought nothing). ``fullgraph=True`` turns any
    break into an error; the "eager" backend traces without building kernels (seconds)."""
    from sketchcolor.config import load_config
    from sketchcolor.training.step import DiscriminatorPair

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs" / f"{recipe}.yaml", ["model.image_size=64"]).model
    torch.manual_seed(0)
    g, d = Colorizer(cfg), PatchDiscriminator(cfg)
    sketch, reference = torch.rand(2, 1, 64, 64), torch.rand(2, 3, 64, 64)
    eager = g(sketch, reference).image
    out = torch.compile(g, fullgraph=True, backend="eager")(sketch, reference)
    assert torch.equal(out.image, eager)
    out.image.mean().backward()
    pair = torch.compile(DiscriminatorPair(d), fullgraph=True, backend="eager")
    real, fake, penalty = pair(reference, out.image.detach(), sketch)
    assert penalty is None and real.shape == fake.shape
    frozen = torch.compile(d, fullgraph=True, backend="eager")  # G's adversarial term
    frozen(out.image.detach().requires_grad_(), sketch).mean().backward()


def test_the_switches_are_validated_and_a_bare_off_is_off(small_config) -> None:
    from sketchcolor.errors import ConfigError

    assert small_config("train.mixed_precision=off").train.mixed_precision == "off"  # YAML 1.1 reads off as false
    with pytest.raises(ConfigError, match="train.mixed_precision must be one of"):
        small_config("train.mixed_precision=bf17")
    with pytest.raises(ConfigError, match="train.channels_last must be true or false"):
        small_config("train.channels_last=3")
