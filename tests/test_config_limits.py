"""Issue 10, hostile configs: every field typed and bounded, saved configs complete, YAML and JSON
with size/depth/alias limits, the memory a config implies refused before allocation; each a
single ``error:`` line with exit status 2, never a traceback."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sketchcolor.data.io as sio
import sketchcolor.models.serialization as serialization
from sketchcolor.cli import main
from sketchcolor.config import Config, ModelConfig, config_from_dict, load_config, parse_amount
from sketchcolor.errors import CheckpointError, ConfigError, ImageError
from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.models.complexity import (check_memory, count_params, discriminator_params, estimate_memory,
                                           example_bytes, generator_params, memory_limit, picture_cache_limit,
                                           triplet_build_bytes, worker_bytes)
from sketchcolor.models.serialization import load_artifact, save_artifact

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> tuple[int, list[str], str]:
    """``main(argv)`` in this process -> (exit status, stderr lines, stdout)."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, err.getvalue().splitlines(), out.getvalue()


def _one_error(argv: list[str], expected: str) -> str:
    rc, err, _ = _run(argv)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), (rc, err)
    assert expected in err[0], err[0]
    assert len(err[0]) < 400, err[0]
    return err[0]


# ------------------------------------------------------------------ bounds, through `train --dry-run --set`

BAD_VALUES = [
    ("model.image_size=0", "model.image_size must be an integer in 1..8192, got 0"),
    ("model.image_size=-64", "model.image_size must be an integer in 1..8192, got -64"),
    ("model.image_size=100000", "model.image_size must be an integer in 1..8192"),
    ("model.image_size=8", "model.image_size 8 is too small for a discriminator with model.disc_layers=2 (needs at least 12)"),
    ("model.encoder_channels=[8,-8,16,16,32,32,64,64]", "model.encoder_channels entries must be an integer in 1..131072, got -8"),
    ("model.encoder_channels=[]", "model.encoder_channels must not be empty"),
    ("model.num_res_blocks=100000000", "model.num_res_blocks must be an integer in 0..256, got 100000000"),
    ("model.attention_dim=0", "model.attention_dim must be an integer in 1..131072, got 0"),
    ("model.disc_channels=-1", "model.disc_channels must be an integer in 1..131072"),
    ("model.disc_layers=0", "model.disc_layers must be an integer in 1..8"),
    ("train.steps=-5", "train.steps must be an integer in 1..10000000000, got -5"),
    ("train.steps=0", "train.steps must be an integer in 1..10000000000, got 0"),
    ("train.batch_size=0", "train.batch_size must be an integer in 1..4096, got 0"),
    ("train.lr_g=.nan", "train.lr_g must be a finite number in (0, 10], got nan"),
    ("train.lr_d=-1e-4", "train.lr_d must be a finite number in (0, 10], got -0.0001"),
    ("train.lr_g=0", "train.lr_g must be a finite number in (0, 10], got 0.0"),
    ("train.beta1=2", "train.beta1 must be a finite number in [0, 1), got 2.0"),
    ("train.beta2=1", "train.beta2 must be a finite number in [0, 1), got 1.0"),
    ("train.ema_decay=1.5", "train.ema_decay must be a finite number in [0, 1), got 1.5"),
    ("train.val_fraction=1", "train.val_fraction must be a finite number in [0, 1), got 1.0"),
    ("train.checkpoint_every=0", "train.checkpoint_every must be an integer in 1..10000000000, got 0"),
    ("train.log_every=0", "train.log_every must be an integer in 1..10000000000, got 0"),
    ("train.image_every=-1", "train.image_every must be an integer in 1..10000000000"),
    ("train.keep_checkpoints=-1", "train.keep_checkpoints must be an integer in 0..10000000000"),
    ("train.threads=-1", "train.threads must be an integer in 0..1024, got -1"),
    ("train.device=tpu", "train.device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ("train.device=cuda:x", "train.device must be auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
    ("train.grad_clip=.inf", "train.grad_clip must be a finite number in [0, 1e+09], got inf"),
    ("train.seed=-1", "train.seed must be an integer in 0..4294967295, got -1"),
    ("data.tps_grid=0", "data.tps_grid must be an integer in 2..32, got 0"),
    ("data.region_recolor=1.5", "data.region_recolor is a probability in [0, 1], got 1.5"),
    ("data.xdog_sigma=0", "data.xdog_sigma must be a finite number in (0, 32], got 0.0"),
    ("data.tps_scale=.nan", "data.tps_scale must be a finite number in [0, 2], got nan"),
    ("data.mirror=1.5", "data.mirror must be a finite number in [0, 1], got 1.5"),
    ("data.rotation=-5", "data.rotation must be a finite number in [0, 180], got -5.0"),
    ("data.chroma_range=[2,1]", "data.chroma_range must be two numbers 0 <= low <= high <= 10"),
    ("data.extensions=[png]", "data.extensions must be 1 to 64 file suffixes such as '.png'"),
    ("data.num_workers=-2", "data.num_workers must be an integer in 0..256"),
    ("loss.lambda_rec=.nan", "loss.lambda_rec must be a finite number in [0, 1e+06], got nan"),
    ("loss.lambda_adv=-1", "loss.lambda_adv must be a finite number in [0, 1e+06], got -1.0"),
    ("loss.triplet_negatives=0", "loss.triplet_negatives must be an integer in 1..1024"),
    ("loss.vgg_layers=[relu9_9]", "loss.vgg_layers must be 1 to 32 VGG layer names such as 'relu3_1'"),
    ("train.steps=[1", "override 'train.steps=[1': not valid YAML (expected ',' or ']', but got '<stream end>'"),
    ("train.steps=&a [1, *a]", "not valid YAML (aliases (*name) are not allowed at line 1, column 8)"),
    ("train.steps=abc", "train.steps must be an integer, got 'abc'"),
    ("train.nope=1", "override 'train.nope=1': unknown key 'train.nope'"),
    ("model=3", "section 'model' must be a mapping"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_is_one_error_line(override: str, message: str, tiny_recipe: Path) -> None:
    _one_error(["train", "--dry-run", "--config", str(tiny_recipe), "--set", override], message)


def test_generous_values_still_pass(tiny_recipe: Path) -> None:
    """The bounds leave room for real use: 1024 px, wide layers, long runs, cuda:N, lr 0.1."""
    cfg = load_config(tiny_recipe, ["model.image_size=1024", "model.num_res_blocks=64", "train.steps=10000000",
                                    "train.batch_size=256", "train.lr_g=0.1", "train.device=cuda:3", "train.threads=0",
                                    "train.keep_checkpoints=0", "train.val_every=0", "train.max_bad_steps=0",
                                    "data.tps_grid=2", "train.beta1=0", "loss.lambda_perc=0"])
    assert cfg.model.image_size == 1024 and cfg.train.device == "cuda:3"
    for recipe in ("tiny", "default", "paper"):
        load_config(ROOT / "configs" / f"{recipe}.yaml").validate()


def test_a_recipe_may_be_fixed_by_an_override(tmp_path: Path) -> None:
    """The recipe is validated after the overrides are applied, not before."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  steps: -5\n")
    with pytest.raises(ConfigError, match="train.steps"):
        load_config(recipe)
    assert load_config(recipe, ["train.steps=3"]).train.steps == 3


def test_dataclasses_built_in_python_are_checked_too(tiny_model_cfg: ModelConfig) -> None:
    with pytest.raises(ConfigError, match="model.image_size must be an integer in 1..8192, got -32"):
        Colorizer(dataclasses.replace(tiny_model_cfg, image_size=-32))
    with pytest.raises(ConfigError, match="train.batch_size"):
        Config(train=dataclasses.replace(Config().train, batch_size=0)).validate()


def test_unknown_device_at_use_is_one_line() -> None:
    from sketchcolor.device import pick_device

    with pytest.raises(Exception) as info:
        pick_device("tpu")
    assert "device 'tpu': not one of auto, cpu, cuda, cuda:N, mps" in str(info.value)
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="CUDA is not available on this machine"):
            pick_device("cuda")


# ------------------------------------------------------------------ YAML files


def _recipe(tmp_path: Path, text: str | bytes, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


BILLION_LAUGHS = """name: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("command", ["train", "info"])
def test_billion_laughs_is_refused_at_once(tmp_path: Path, command: str) -> None:
    p = _recipe(tmp_path, BILLION_LAUGHS)
    assert p.stat().st_size < 600
    t0 = time.perf_counter()
    args = [command, "--config", str(p)] + (["--data", str(tmp_path), "--out", str(tmp_path / "run")] if command == "train" else [])
    _one_error(args, f"{p}: not valid YAML (aliases (*name) are not allowed at line 2, column 8)")
    assert time.perf_counter() - t0 < 2
    assert not (tmp_path / "run").exists()


def test_name_alias_is_refused_too(tmp_path: Path) -> None:
    """`name: *x` (what made `str()` expand the laughs) is an alias like any other."""
    p = _recipe(tmp_path, "model: &m {image_size: 64}\nname: *m\n")
    _one_error(["train", "--dry-run", "--config", str(p)], "aliases (*name) are not allowed at line 2")


@pytest.mark.parametrize("depth", [33, 5000, 100_000])
def test_deep_yaml_nesting_is_one_line(tmp_path: Path, depth: int) -> None:
    p = _recipe(tmp_path, "name: " + "[" * depth + "]" * depth + "\n")
    _one_error(["train", "--dry-run", "--config", str(p)], "not valid YAML (nested deeper than 32 levels at line 1")


def test_block_style_deep_yaml_is_one_line(tmp_path: Path) -> None:
    text = "name:\n  " + "- " * 5000 + "1\n"  # block sequences nested 5,000 deep on one line
    _one_error(["train", "--dry-run", "--config", str(_recipe(tmp_path, text))], "nested deeper than 32 levels")


def test_non_utf8_yaml_is_one_line(tmp_path: Path) -> None:
    p = _recipe(tmp_path, b"name: caf\xe9\n")
    _one_error(["train", "--dry-run", "--config", str(p)], f"{p}: not UTF-8 text (byte 9)")


def test_huge_yaml_is_refused_before_reading(tmp_path: Path) -> None:
    p = _recipe(tmp_path, "# " + "x" * (1 << 20) + "\n")
    _one_error(["info", "--config", str(p)], f"{p}: 1,048,579 bytes is over the limit of 1,048,576 bytes for a recipe")


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2]", "a config must be a mapping"),
    ("model: [1]", "section 'model' must be a mapping"),
    ("model:\n  1: 2\n", "unknown key(s) in 'model': 1"),
    ("name: [a]", "name must be a string, got ['a']"),
    ("? [a]\n: 1\n", "not valid YAML (found unhashable key"),
    ("model: {image_size: !!python/object/apply:os.system [echo hi]}", "not valid YAML (could not determine a constructor"),
    ("model:\n  image_size: 64\n\tbad", "not valid YAML"),
    ("\x00", "not valid YAML"),
])
def test_odd_yaml_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    _one_error(["train", "--dry-run", "--config", str(_recipe(tmp_path, text))], message)


def test_anchors_without_aliases_are_fine(tmp_path: Path) -> None:
    p = _recipe(tmp_path, "name: &n tiny_copy\ntrain: &t {steps: 3}\n")
    assert load_config(p).train.steps == 3


# ------------------------------------------------------------------ saved configs (artifacts)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, small_config) -> Path:
    cfg = small_config()
    torch.manual_seed(0)
    return save_artifact(tmp_path_factory.mktemp("artifact") / "model", Colorizer(cfg.model).eval(), cfg)


def _edited(artifact: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(artifact, folder)
    raw = json.loads((folder / "config.json").read_text())
    change(raw)
    (folder / "config.json").write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return folder


@pytest.mark.parametrize("field", ["output", "image_size"])
def test_missing_model_field_in_an_artifact_is_an_error_naming_it(artifact: Path, tmp_path: Path, field: str) -> None:
    folder = _edited(artifact, tmp_path, lambda raw: raw["config"]["model"].pop(field))
    with pytest.raises(CheckpointError) as info:
        load_artifact(folder)
    assert str(info.value) == (f"{folder / 'config.json'}: model.{field} is missing: a saved model's config must give "
                               f"every field (no default is assumed)")


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: raw["config"].pop("loss"), "section 'loss' must be a mapping (it is missing)"),
    (lambda raw: raw["config"].pop("name"), "name is missing"),
    (lambda raw: [raw["config"]["train"].pop(k) for k in ("steps", "seed")], "train.steps is missing: a saved model's config must give every field (no default is assumed); 1 more missing"),
    (lambda raw: raw["config"]["model"].update(image_size=0), "model.image_size must be an integer in 1..8192, got 0"),
    (lambda raw: raw["config"]["model"].update(image_size=-32), "model.image_size must be an integer in 1..8192, got -32"),
    (lambda raw: raw["config"]["model"].update(encoder_channels=[4, -4, 8, 8, 16, 16]), "must be an integer in 1..131072, got -4"),
    (lambda raw: raw["config"]["model"].update(num_res_blocks=100_000_000), "model.num_res_blocks must be an integer in 0..256"),
    (lambda raw: raw.update(meta=[1]), "'meta' must be a mapping, not a list"),
])
def test_edited_artifact_config_is_one_error(artifact: Path, tmp_path: Path, change, message: str) -> None:
    folder = _edited(artifact, tmp_path, change)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_artifact(folder)
    assert time.perf_counter() - t0 < 2
    assert str(info.value).startswith(f"{folder / 'config.json'}: ") and message in str(info.value), str(info.value)


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_json_config_is_one_error(artifact: Path, tmp_path: Path, depth: int) -> None:
    folder = _edited(artifact, tmp_path, lambda raw: None)
    text = json.loads((folder / "config.json").read_text())
    text["config"]["name"] = "@@"
    (folder / "config.json").write_text(json.dumps(text).replace('"@@"', "[" * depth + "]" * depth))
    with pytest.raises(CheckpointError) as info:
        load_artifact(folder)
    assert ("not a valid config: not JSON (nested too deeply)" in str(info.value)
            or "the config is nested deeper than 32 levels" in str(info.value)), str(info.value)


def test_huge_json_config_is_refused_before_reading(artifact: Path, tmp_path: Path) -> None:
    folder = _edited(artifact, tmp_path, lambda raw: raw["meta"].update(pad="x" * (1 << 20)))
    with pytest.raises(CheckpointError, match="bytes is over the limit of 1,048,576 bytes for a config"):
        load_artifact(folder)


def test_artifact_edited_to_2048_px_is_refused_before_allocation(artifact: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """image_size changes no weight, so the weights still match; the memory estimate refuses it
    before the weights are read or the model is built."""
    folder = _edited(artifact, tmp_path, lambda raw: raw["config"]["model"].update(image_size=2048))
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "4G")

    def never(*args, **kw):
        raise AssertionError("weights were loaded")
    monkeypatch.setattr(serialization, "load_weights", never)
    with pytest.raises(CheckpointError) as info:
        load_artifact(folder)
    msg = str(info.value)
    assert msg.startswith(f"{folder / 'config.json'}: the config needs about ")
    assert "to colorize at model.image_size 2048" in msg and "over the limit of 4.0 GiB (SKETCHCOLOR_MAX_MEMORY)" in msg


def test_edited_artifact_through_colorize_is_one_line(artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _edited(artifact, tmp_path, lambda raw: raw["config"]["model"].update(image_size=2048))
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "4G")
    sketch = tmp_path / "s.png"
    from PIL import Image
    Image.new("RGB", (16, 16), "white").save(sketch)
    _one_error(["colorize", "--sketch", str(sketch), "--reference", str(sketch), "-o", str(tmp_path / "o.png"),
                "--weights", str(folder)], "to colorize at model.image_size 2048")
    assert not (tmp_path / "o.png").exists()


def test_recipes_may_leave_fields_out_but_complete_configs_may_not() -> None:
    assert config_from_dict({"model": {"image_size": 64}}).model.output == "tanh"
    full = Config().to_dict()
    assert config_from_dict(full, complete=True) == Config()
    del full["data"]["tps_grid"]
    with pytest.raises(ConfigError, match="data.tps_grid is missing"):
        config_from_dict(full, complete=True)


# ------------------------------------------------------------------ the memory estimate


@pytest.mark.parametrize("recipe", ["tiny", "default", "paper"])
@pytest.mark.parametrize("variant", [{}, {"norm": "batch"},
                                     {"fusion": "concat", "color_path": False, "attention_norm": "none"},
                                     {"color_path": True, "bottleneck_channels": None, "attention_dim": None},
                                     {"attention_norm": "qk"}])
def test_parameter_counts_match_the_built_models(recipe: str, variant: dict) -> None:
    m = dataclasses.replace(load_config(ROOT / "configs" / f"{recipe}.yaml").model, **variant)
    with torch.device("meta"):
        g, d = Colorizer(m), PatchDiscriminator(m)
    assert generator_params(m) == count_params(g)
    assert discriminator_params(m) == count_params(d)


def test_estimate_grows_with_size_and_batch(small_config) -> None:
    cfg = small_config()
    est = [estimate_memory(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, image_size=s)), True) for s in (32, 64, 128)]
    assert est[0] < est[1] < est[2]
    big = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=64))
    assert estimate_memory(big, True) > estimate_memory(cfg, True) > estimate_memory(cfg, False)
    # the case: the default model edited to 2048 px grew to 23.6 GB before the OOM killer
    default = load_config(ROOT / "configs" / "default.yaml", ["model.image_size=2048"])
    assert estimate_memory(default, False) > 23.6e9


@pytest.mark.parametrize(("text", "binary", "value"), [("64000000", False, 64_000_000), ("64_000_000", False, 64_000_000),
                                                       ("64M", False, 64_000_000), ("8G", True, 8 << 30),
                                                       ("8GiB", False, 8 << 30), ("1.5k", False, 1500)])
def test_parse_amount(text: str, binary: bool, value: int) -> None:
    assert parse_amount(text, binary=binary) == value


@pytest.mark.parametrize("text", ["", "abc", "-5", "0", "1Q", "nan", "inf", "1e400", "8 G B B"])
def test_parse_amount_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(text)


def test_memory_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "512M")
    assert memory_limit() == (512 << 20, "SKETCHCOLOR_MAX_MEMORY")
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "lots")
    with pytest.raises(ConfigError, match="SKETCHCOLOR_MAX_MEMORY='lots' is not an amount of memory"):
        memory_limit()
    monkeypatch.delenv("SKETCHCOLOR_MAX_MEMORY")
    limit, why = memory_limit()
    assert limit > 0 and why.startswith(("80% of", "a default"))


def test_train_over_the_memory_limit_is_refused_before_anything(tmp_path: Path, tiny_recipe: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "1G")
    t0 = time.perf_counter()
    _one_error(["train", "--config", str(tiny_recipe), "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "run"),
                "--set", "model.image_size=512", "--set", "train.batch_size=64"],
               "to train at model.image_size 512 with train.batch_size 64")
    assert time.perf_counter() - t0 < 3
    assert not (tmp_path / "run").exists()


def test_info_refuses_a_config_over_the_limit(tiny_recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "1G")
    _one_error(["info", "--config", str(tiny_recipe), "--set", "model.image_size=2048"],
               f"{tiny_recipe}: the config needs about ")
    rc, err, out = _run(["info", "--config", str(tiny_recipe), "--set", "model.image_size=32", "--set", "model.downsample_layers=[3,5]"])
    assert rc == 0 and "memory (estimate)" in out, err


def test_info_counts_the_discriminator_it_builds_and_refusals_name_it(tiny_recipe: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # info builds D beside G: a D of ~30 G parameters (hypothesis found it) was allocated, not refused
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "1G")
    line = _one_error(["info", "--config", str(tiny_recipe), "--set", "model.disc_channels=14766"],
                      f"{tiny_recipe}: the config needs about ")
    assert "to build G and D" in line and re.search(r" and D [\d,.]+ M parameters", line) and "lower model.disc_channels or" in line, line
    # training: D's weights, gradients and Adam's moments
    args = ["train", "--config", str(tiny_recipe), "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "run"),
            "--set", "model.disc_channels=4000"]
    line = _one_error(args, "the config needs about ")
    assert not (tmp_path / "run").exists()
    assert "to train at" in line and " and D " in line and "lower model.disc_channels, model.image_size or train.batch_size" in line, line
    # where the attention takes the memory, the message names the image size first
    line = _one_error(["info", "--config", str(tiny_recipe), "--set", "model.image_size=1024"], f"{tiny_recipe}: the config needs about ")
    assert "lower model.image_size or model.disc_channels" in line, line


def test_the_batch_wise_triplet_build_is_counted_where_it_is_the_larger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = ROOT / "configs" / "default.yaml"
    workers = load_config(default, ["model.image_size=256", "train.batch_size=8", "data.tps_grid=32"])
    device = load_config(default, ["model.image_size=256", "train.batch_size=8", "data.tps_grid=32", "data.augment_on=device"])
    # kornia's spline keeps ~6 [h w, K] floats an example: 1.36 GB measured at 256 px and grid 32
    assert 1.1 * 1358 * 2**20 * 8 < triplet_build_bytes(device) < 2.0 * 1358 * 2**20 * 8
    assert estimate_memory(device, True) > estimate_memory(workers, True) + 4 * 2**30
    # a feature stride of 2 warps a probe grid of 16x the pixels: measured 670 MiB for its warp alone
    # at 64 px, grid 16, batch 2
    fine = load_config(default, ["model.image_size=64", "model.downsample_layers=[3]", "data.tps_grid=16",
                                 "train.batch_size=2", "data.augment_on=device"])
    assert fine.model.feature_stride == 2 and triplet_build_bytes(fine) > 670 * 2**20
    # the recipe as shipped: the build is far smaller than the step's activations and changes nothing
    assert estimate_memory(load_config(default, ["data.augment_on=device"]), True) == estimate_memory(load_config(default), True)
    assert estimate_memory(device, False) == estimate_memory(workers, False)  # colorizing builds no triplets
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "8G")
    args = ["train", "--config", str(default), "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "run"),
            "--set", "model.image_size=256", "--set", "train.batch_size=8", "--set", "data.tps_grid=32"]
    rc, err, _ = _run(args)  # with the workers it fits (their triplets are one at a time, in their processes)
    assert "the config needs about" not in "\n".join(err), err
    line = _one_error([*args, "--set", "data.augment_on=device"], "the config needs about ")
    assert not (tmp_path / "run").exists()
    assert "data.tps_grid 32" in line and "lower data.tps_grid, train.batch_size or model.image_size, use data.augment_on workers" in line, line


def test_dataloader_workers_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = ROOT / "configs" / "default.yaml"
    big = ["model.image_size=256", "data.tps_grid=32"]
    one = worker_bytes(load_config(default, big))
    # a worker building one 256 px triplet at grid 32 peaked 1.45 GiB above its start (measured)
    assert 1.0 * 1.45 * 2**30 < one < 1.3 * 1.45 * 2**30
    assert worker_bytes(load_config(default, [*big, "data.augment_on=device"])) < one / 12  # they only draw
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "8G")
    cpu = torch.device("cpu")
    alone = load_config(default, big)
    assert check_memory(alone, True, cpu) == estimate_memory(alone, True)
    workers = load_config(default, [*big, "data.num_workers=4"])
    assert check_memory(load_config(default, [*big, "data.num_workers=1"]), True, cpu) == estimate_memory(alone, True) + one
    with pytest.raises(ConfigError) as info:  # on a CPU the workers share the memory with the step
        check_memory(workers, True, cpu)
    line = str(info.value)
    assert "and 4 DataLoader workers of about 1.6 GiB each (building triplets at data.tps_grid 32)" in line, line
    assert "lower data.num_workers, data.tps_grid or model.image_size" in line and len(line) < 400, line
    # on a GPU the step is checked against the GPU (SKETCHCOLOR_MAX_MEMORY), the workers against
    # the host (SKETCHCOLOR_MAX_HOST_MEMORY), shared by the machine's processes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # memory_limit reads no GPU here
    monkeypatch.setenv("SKETCHCOLOR_MAX_HOST_MEMORY", "8G")
    assert check_memory(workers, True, torch.device("cuda")) == estimate_memory(workers, True)
    for gpu_limit in ("8G", "70G"):  # raising the GPU's limit leaves the host's as it is
        monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", gpu_limit)
        with pytest.raises(ConfigError) as info:
            check_memory(workers, True, torch.device("cuda"), processes=2)
        line = str(info.value)
        assert line.startswith("the config's 4 DataLoader workers of about 1.6 GiB each (building triplets at data.tps_grid "
                               "32) and the training process need about 6.7 GiB of host memory"), line
        assert "over the limit of 4.0 GiB (SKETCHCOLOR_MAX_HOST_MEMORY, shared by 2 processes)" in line, line
        assert line.endswith("or set SKETCHCOLOR_MAX_HOST_MEMORY"), line
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "8G")
    monkeypatch.delenv("SKETCHCOLOR_MAX_HOST_MEMORY")
    # where the step alone is too big, the workers are named beside it
    with pytest.raises(ConfigError) as info:
        check_memory(load_config(default, ["model.image_size=256", "train.batch_size=64", "data.num_workers=4"]), True, cpu)
    assert "and 4 DataLoader workers of about" in str(info.value), info.value
    assert "lower model.image_size, train.batch_size or data.num_workers, or set" in str(info.value), info.value
    # building on the device, the workers only draw: their spline grid is not theirs to lower
    with pytest.raises(ConfigError) as info:
        check_memory(load_config(default, ["model.image_size=512", "data.augment_on=device", "data.num_workers=40",
                                           "train.batch_size=1"]), True, cpu)
    assert "lower data.num_workers or model.image_size, or set" in str(info.value), info.value
    # the device's build too big, and the workers would not fit either: augment_on workers is no way out
    with pytest.raises(ConfigError) as info:
        check_memory(load_config(default, [*big, "data.augment_on=device", "data.num_workers=4"]), True, cpu)
    line = str(info.value)
    assert "building its triplets at once with data.tps_grid 32" in line and "augment_on workers" not in line, line
    assert "lower data.tps_grid, train.batch_size, model.image_size or data.num_workers, or set" in line, line
    # the training command refuses before anything is written
    args = ["train", "--config", str(default), "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "run"),
            *[x for s in [*big, "data.num_workers=4"] for x in ("--set", s)]]
    _one_error(args, "4 DataLoader workers of about 1.6 GiB each")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sets", [[], ["data.augment_on=device"], ["loss.lambda_paper=0"], ["model.image_size=64"]])
def test_a_workers_batches_are_counted_by_the_examples_it_sends(sample_photos: list[Path], sets: list[str]) -> None:
    """example_bytes is what a DataLoader worker sends for one example (the triplet, or the draws
    with augment_on device; the paper term's region where it is on), and each worker counts
    WORKER_BATCHES of its process's share of the batch."""
    from sketchcolor.data.datasets import TripletStream, open_images

    cfg = load_config(ROOT / "configs" / "default.yaml", sets)
    m = cfg.model
    images = open_images(sample_photos[0].parent, m.image_size, cfg.data, "train")
    stream = TripletStream(images, (m.image_size // m.feature_stride,) * 2, 0, length=2,
                           around=cfg.loss.lambda_paper > 0, recipes=cfg.data.augment_on == "device")
    sent = sum(v.nbytes for v in stream[0].values())
    assert sent <= example_bytes(cfg) <= sent + 1024
    half = load_config(ROOT / "configs" / "default.yaml", [*sets, "train.batch_size=4"])
    assert worker_bytes(cfg) - worker_bytes(half) == int(4.5 * 8 * example_bytes(cfg)) - int(4.5 * 4 * example_bytes(cfg))


def test_picture_caches_share_what_the_limit_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "8G")
    default = ROOT / "configs" / "default.yaml"
    cpu = torch.device("cpu")
    alone = load_config(default)
    left = 8 * 2**30 - estimate_memory(alone, True)
    assert picture_cache_limit(alone, cpu) == int(left / 1.6)  # one cache, this process's
    four = load_config(default, ["data.num_workers=4"])
    assert picture_cache_limit(four, cpu) == int((left - 4 * worker_bytes(four)) / 4 / 1.6)  # one per worker
    assert picture_cache_limit(alone, cpu, processes=2) == int((4 * 2**30 - estimate_memory(alone, True)) / 1.6)
    # on a GPU the step's activations are not in the host's memory, whose limit is its own
    gpu = torch.device("cuda")
    monkeypatch.setenv("SKETCHCOLOR_MAX_HOST_MEMORY", "8G")
    assert picture_cache_limit(alone, gpu) == int((8 * 2**30 - (128 << 20)) / 1.6) > picture_cache_limit(alone, cpu)
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "70G")  # the GPU's limit: the caches stay within the host's
    assert picture_cache_limit(alone, gpu) == int((8 * 2**30 - (128 << 20)) / 1.6)
    monkeypatch.setenv("SKETCHCOLOR_MAX_HOST_MEMORY", "lots")
    with pytest.raises(ConfigError, match="SKETCHCOLOR_MAX_HOST_MEMORY='lots' is not an amount of memory"):
        picture_cache_limit(alone, gpu)
    monkeypatch.delenv("SKETCHCOLOR_MAX_HOST_MEMORY")
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "1G")
    assert picture_cache_limit(load_config(default, ["data.num_workers=30"]), cpu) == 0  # nothing left: no cache


def test_training_bounds_its_picture_cache(sample_photos: list[Path], monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from sketchcolor.config import DataConfig
    from sketchcolor.data.datasets import ImageFolder
    from sketchcolor.training.distributed import World
    from sketchcolor.training.loop import bound_cache

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)  # one training process on this machine
    cfg = load_config(ROOT / "configs" / "default.yaml", ["data.num_workers=2"])
    images = ImageFolder(sample_photos[:3], 128, DataConfig())
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "64G")
    with caplog.at_level("WARNING"):
        bound_cache(images, cfg, World())
    assert images.cache_limit == picture_cache_limit(cfg, torch.device("cpu")) and not caplog.records
    # a limit that leaves a little for the caches: bounded, and said
    step = estimate_memory(cfg, True) + 2 * worker_bytes(cfg)
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", str(step + int(2 * 1.6 * 128 * 128 * 4) + 8))
    with caplog.at_level("WARNING"):
        bound_cache(images, cfg, World())
    assert 128 * 128 * 4 <= images.cache_limit < 128 * 128 * 4 + 16  # one picture (RGB + XDoG) a worker
    assert "each of the 2 DataLoader workers keeps at most 64 KiB of decoded pictures, 33% of the 3 training" in caplog.text
    assert "(fewer data.num_workers keep more)" in caplog.text
    caplog.clear()
    alone = load_config(ROOT / "configs" / "default.yaml")  # without workers, this process holds the one cache
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", str(estimate_memory(alone, True) + int(1.6 * 128 * 128 * 4) + 8))
    with caplog.at_level("WARNING"):
        bound_cache(images, alone, World())
    assert "this process keeps at most 64 KiB" in caplog.text and "(SKETCHCOLOR_MAX_MEMORY sets the limit)" in caplog.text


def test_invalid_training_value_fails_before_the_first_step(tmp_path: Path, tiny_recipe: Path, sample_photos: list[Path],
                                                            small_overrides: tuple[str, ...]) -> None:
    """checkpoint_every 0 used to fail only after the first step (a ZeroDivisionError)."""
    args = ["train", "--config", str(tiny_recipe), "--data", str(sample_photos[0].parent), "--out", str(tmp_path / "run"), "-q"]
    for s in [*small_overrides, "train.steps=2", "train.checkpoint_every=0"]:
        args += ["--set", s]
    _one_error(args, "train.checkpoint_every must be an integer in 1..10000000000, got 0")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ SKETCHCOLOR_MAX_PIXELS


def test_invalid_pixel_limit_is_one_line_at_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sio, "MAX_PIXELS", sio._pixel_limit("64x"))
    import numpy as np

    with pytest.raises(ImageError) as info:
        sio.load_image(np.zeros((4, 4, 3), np.uint8))
    assert str(info.value) == "SKETCHCOLOR_MAX_PIXELS='64x' is not a pixel count (e.g. 64000000 or 64M)"
    assert sio._pixel_limit("64M") == 64_000_000 and sio._pixel_limit(None) == 64_000_000


def test_invalid_pixel_limit_does_not_break_the_import(tmp_path: Path) -> None:
    """Read at import, as before; an invalid value no longer raises there (a traceback before main())."""
    env = {**os.environ, "SKETCHCOLOR_MAX_PIXELS": "lots"}
    code = ("import sketchcolor.data.io as io, numpy as np\n"
            "try:\n    io.load_image(np.zeros((2, 2, 3), np.uint8))\nexcept io.ImageError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "SKETCHCOLOR_MAX_PIXELS='lots' is not a pixel count (e.g. 64000000 or 64M)", out


# ------------------------------------------------------------------ property test: no tracebacks

FIELDS = {section: [f.name for f in dataclasses.fields(type(getattr(Config(), section)))]
          for section in ("model", "data", "loss", "train")}
KEYS = st.one_of(
    st.sampled_from([f"{s}.{k}" for s, ks in FIELDS.items() for k in ks]),
    st.sampled_from(["model", "train", "name", "nope", "", ".", "model.", "train.steps.x", "model..image_size",
                     "data.extensions.0", "name.x", "=", " train.steps"]),
)
BAD_TEXT = st.sampled_from([
    "0", "-1", "-5", "1", "2", "3", "8", "1e400", "-1e400", ".nan", ".inf", "-.inf", "1e-300", "99999999999999999999999",
    "0x10", "0o7", "1_000", "true", "false", "null", "~", "", " ", "[", "[1", "]", "{", "{a: 1}", "[]", "[[[]]]",
    "[1, -2]", "[0.5]", "[a, b]", "'a'", '"', "*a", "&a 1", "&a [*a]", "!!python/object:os.system", "!!binary aGk=",
    "2001-01-01", "a: b: c", "- 1\n- 2", "é", "\x00", "\t", "cuda:99", "cpu", "mps", "tanh", "scft", "relu3_1",
    "[" * 40 + "]" * 40, "%YAML 1.1", "---", "...", "? a", "<<: {a: 1}",
])
VALUES = st.one_of(BAD_TEXT, st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.text(max_size=12))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_no_override_gives_a_traceback(tiny_recipe: Path, sets: list[tuple[str, str]]) -> None:
    argv = ["train", "--dry-run", "--config", str(tiny_recipe)]
    for key, value in sets:
        argv += ["--set", f"{key}={value}"]
    rc, err, out = _run(argv)
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        assert len(err) == 1 and err[0].startswith("error: ") and len(err[0]) < 600, err
    else:
        json.loads(out)


YAML_VALUES = st.one_of(BAD_TEXT.filter(lambda t: "\n" not in t), st.integers(-10**6, 10**6).map(str))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(KEYS, YAML_VALUES), min_size=1, max_size=3))
def test_no_recipe_gives_a_traceback_in_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_overrides: tuple[str, ...],
                                             sets: list[tuple[str, str]]) -> None:
    """A recipe written from the same grammar, fed to `info` (which builds the model when the
    recipe is valid: the tiny test model keeps that cheap; 1 GiB of memory at most)."""
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", "1G")
    base = load_config(ROOT / "configs" / "tiny.yaml", list(small_overrides)).to_dict()
    lines = [f"{section}:\n" + "".join(f"  {k}: {json.dumps(list(v) if isinstance(v, tuple) else v)}\n" for k, v in values.items())
             for section, values in base.items() if isinstance(values, dict)]
    text = "".join(lines)
    for key, value in sets:
        text += f"# {key}\n" if "." not in key.strip(".") else ""
        section, _, field = key.partition(".")
        if section in FIELDS and field in FIELDS[section]:
            text = text.replace(f"  {field}: ", f"  {field}: {value} #", 1) if f"\n{section}:" in "\n" + text else text
        else:
            text += f"{key}: {value}\n"
    recipe = tmp_path / "hyp.yaml"
    recipe.write_text(text)
    rc, err, out = _run(["info", "--config", str(recipe)])
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        assert len(err) == 1 and err[0].startswith("error: ") and len(err[0]) < 600, err
    else:
        assert "G parameters" in out


def test_a_config_saved_before_attention_norm_loads_as_the_paper_attention(artifact: Path, tmp_path: Path) -> None:
    # model.attention_norm came later; every model saved before it computes "none", so its absence
    # is read as "none" (the one model field allowed to be absent), and the same weights load
    folder = _edited(artifact, tmp_path, lambda raw: raw["config"]["model"].pop("attention_norm"))
    g, cfg, _ = load_artifact(folder)
    assert cfg.model.attention_norm == "none" and not g.scft.qk_norm


@pytest.mark.parametrize(("override", "message"), [
    ("model.attention_norm=layer", "model.attention_norm must be one of ['none', 'qk'], got 'layer'"),
])
def test_bad_attention_norm_is_one_line(override: str, message: str, tiny_recipe: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(tiny_recipe, [override])


def test_attention_norm_needs_scft(tiny_recipe: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("model.attention_norm needs the SCFT attention (model.fusion=scft)")):
        load_config(tiny_recipe, ["model.attention_norm=qk", "model.fusion=concat", "model.color_path=false"])


def test_a_qk_norm_model_saves_and_loads_identically(small_config, tmp_path: Path) -> None:
    cfg = small_config("model.attention_norm=qk")
    torch.manual_seed(0)
    g = Colorizer(cfg.model).eval()
    with torch.no_grad():
        g.scft.log_temperature.fill_(2.9)  # a learned value, not the initial one
    folder = save_artifact(tmp_path / "model", g, cfg)
    assert json.loads((folder / "config.json").read_text())["config"]["model"]["attention_norm"] == "qk"
    h, loaded, _ = load_artifact(folder)
    assert loaded.model.attention_norm == "qk" and h.scft.log_temperature.item() == pytest.approx(2.9)
    gen = torch.Generator().manual_seed(1)
    size = cfg.model.image_size
    sketch, reference = torch.rand(1, 1, size, size, generator=gen), torch.rand(1, 3, size, size, generator=gen)
    with torch.no_grad():
        assert torch.equal(g(sketch, reference).image, h(sketch, reference).image)
