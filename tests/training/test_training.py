"""Training: save -> load identity, bitwise resume, and a real tiny run whose held-out L1 falls."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from sketchcolor.data.datasets import ImageFolder, TripletStream
from sketchcolor.models import Colorizer
from sketchcolor.models.serialization import load_artifact, save_artifact
from sketchcolor.training.checkpoint import list_checkpoints, load_trainer_state
from sketchcolor.training.loop import fit
from sketchcolor.training.validation import validate

# On top of the tiny test model (conftest's small_config), so each run takes seconds on 2 cores.
TRAIN = ["train.batch_size=4", "train.log_every=1", "train.image_every=1000"]


def test_save_load_gives_identical_outputs(tmp_path: Path, small_config) -> None:
    cfg = small_config(*TRAIN)
    torch.manual_seed(0)
    g = Colorizer(cfg.model).eval()
    s, r = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        before = g(s, r).image
    save_artifact(tmp_path / "m", g, cfg)
    g2, cfg2, _ = load_artifact(tmp_path / "m")
    assert cfg2 == cfg
    with torch.no_grad():
        after = g2(s, r).image
    assert torch.equal(before, after)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_resumed_run_equals_unbroken_run(tmp_path: Path, sample_photos: list[Path], small_config) -> None:
    data = sample_photos[0].parent
    common = [*TRAIN, "train.checkpoint_every=2"]
    unbroken = fit(small_config(*common, "train.steps=4"), data, tmp_path / "a", progress=False)
    fit(small_config(*common, "train.steps=2"), data, tmp_path / "b", progress=False)
    resumed = fit(small_config(*common, "train.steps=4"), data, tmp_path / "b", resume=True, progress=False)
    wa, wb = _weights(unbroken), _weights(resumed)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    da = load_trainer_state(list_checkpoints(tmp_path / "a" / "checkpoints")[-1])["discriminator"]
    db = load_trainer_state(list_checkpoints(tmp_path / "b" / "checkpoints")[-1])["discriminator"]
    for k in da:
        assert torch.equal(da[k], db[k]), k


def test_run_folder_with_checkpoints_needs_resume(tmp_path: Path, sample_photos: list[Path], small_config,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import json

    from sketchcolor.errors import SketchColorError

    cfg = small_config(*TRAIN, "train.steps=1")
    with caplog.at_level("WARNING"):  # --resume with nothing to resume starts afresh, and says so
        fit(cfg, sample_photos[0].parent, tmp_path / "r", resume=True, progress=False)
    assert f"--resume: no checkpoint in {tmp_path / 'r' / 'checkpoints'}; starting a new run there" in caplog.text
    # no validation: no best score, and summary.json stays strict JSON (no -Infinity)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert summary["best_score"] is None and summary["best_step"] == -1
    with pytest.raises(SketchColorError, match="--resume"):
        fit(cfg, sample_photos[0].parent, tmp_path / "r", progress=False)


def test_training_bounds_its_caches_and_shares_the_limit(tmp_path: Path, sample_photos: list[Path], small_config,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    from sketchcolor.errors import ConfigError
    from sketchcolor.models.complexity import estimate_memory

    cfg = small_config(*TRAIN, "train.steps=1")
    side = cfg.model.image_size
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    # room for the step and one decoded picture (RGB + XDoG) in this process's cache
    limit = estimate_memory(cfg, True) + int(1.6 * side * side * 4) + 8
    monkeypatch.setenv("SKETCHCOLOR_MAX_MEMORY", str(limit))
    with caplog.at_level("WARNING", logger="sketchcolor.training.loop"):
        fit(cfg, sample_photos[0].parent, tmp_path / "r", progress=False)
    assert "data.cache_images: this process keeps at most" in caplog.text
    # torchrun's processes on one machine share it: two of them at that limit do not fit
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"shared by 2 processes"):
        fit(cfg, sample_photos[0].parent, tmp_path / "r2", progress=False)
    assert not (tmp_path / "r2").exists()


def test_real_tiny_training_lowers_heldout_l1(tmp_path: Path, sample_photos: list[Path], small_config) -> None:
    """Train on real photos; L1 on triplets of photos the run never saw must fall."""
    held_out = [p for p in sample_photos if p.stem in ("chelsea", "coffee")]
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    for p in sample_photos:
        if p not in held_out:
            (train_dir / p.name).write_bytes(p.read_bytes())
    cfg = small_config(*TRAIN, "train.steps=200", "train.batch_size=8", "train.checkpoint_every=1000")
    grid = (cfg.model.image_size // cfg.model.feature_stride,) * 2
    val = TripletStream(ImageFolder(held_out, cfg.model.image_size, cfg.data), grid, seed=123, length=8)
    batches = list(DataLoader(val, batch_size=4))
    torch.manual_seed(cfg.train.seed)
    before = validate(Colorizer(cfg.model), batches, torch.device("cpu"), grid)["val_l1"]  # the run's own initial weights
    model_dir = fit(cfg, train_dir, tmp_path / "run", progress=False)
    after = validate(load_artifact(model_dir)[0], batches, torch.device("cpu"), grid)["val_l1"]
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / "run" / "samples").is_dir() and any((tmp_path / "run" / "logs").iterdir())


def test_resume_with_a_mismatched_trainer_state_is_one_clear_error(tmp_path: Path, sample_photos: list[Path],
                                                                   small_config) -> None:
    from sketchcolor.errors import CheckpointError

    cfg = small_config(*TRAIN, "train.steps=1")
    fit(cfg, sample_photos[0].parent, tmp_path / "r", progress=False)
    last = list_checkpoints(tmp_path / "r" / "checkpoints")[-1]
    state = load_trainer_state(last)
    key = next(iter(state["discriminator"]))
    state["discriminator"][key] = torch.zeros(3, 3)  # right keys, wrong shape
    torch.save(state, last / "trainer_state.pt")
    with pytest.raises(CheckpointError, match="does not match this model"):
        fit(small_config(*TRAIN, "train.steps=2"), sample_photos[0].parent, tmp_path / "r", resume=True, progress=False)


def test_grad_clip_bounds_the_update_norm(tiny_model_cfg) -> None:
    from sketchcolor.config import LossConfig
    from sketchcolor.models import PatchDiscriminator
    from sketchcolor.training.step import train_step

    def grad_norm_after_step(clip: float) -> float:
        torch.manual_seed(0)
        g, d = Colorizer(tiny_model_cfg), PatchDiscriminator(tiny_model_cfg)
        opt_g = torch.optim.SGD(g.parameters(), lr=0.0)  # lr 0: look at the gradients only
        opt_d = torch.optim.SGD(d.parameters(), lr=0.0)
        batch = {"sketch": torch.rand(2, 1, 32, 32) * 2 - 1, "reference": torch.rand(2, 3, 32, 32) * 2 - 1,
                 "target": torch.rand(2, 3, 32, 32) * 2 - 1, "correspondence": torch.arange(64).repeat(2, 1)}
        train_step(g, d, opt_g, opt_d, batch, LossConfig(lambda_rec=1000.0, lambda_perc=0, lambda_style=0), None,
                   torch.Generator().manual_seed(0), grad_clip=clip)
        return float(torch.sqrt(sum((p.grad ** 2).sum() for p in g.parameters() if p.grad is not None)))

    unclipped = grad_norm_after_step(0.0)
    assert unclipped > 1.0
    assert grad_norm_after_step(0.5) == pytest.approx(0.5, rel=1e-4)


def test_resume_takes_the_recipes_learning_rate(tmp_path: Path, sample_photos: list[Path], small_config) -> None:
    fit(small_config(*TRAIN, "train.steps=1"), sample_photos[0].parent, tmp_path / "r", progress=False)
    fit(small_config(*TRAIN, "train.steps=2", "train.lr_g=1.0e-5"), sample_photos[0].parent, tmp_path / "r",
        resume=True, progress=False)
    state = load_trainer_state(list_checkpoints(tmp_path / "r" / "checkpoints")[-1])
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-5)


def test_resume_takes_the_recipes_adam_betas(tmp_path: Path, sample_photos: list[Path], small_config) -> None:
    fit(small_config(*TRAIN, "train.steps=1"), sample_photos[0].parent, tmp_path / "r", progress=False)
    fit(small_config(*TRAIN, "train.steps=2", "train.beta2=0.99"), sample_photos[0].parent, tmp_path / "r",
        resume=True, progress=False)
    state = load_trainer_state(list_checkpoints(tmp_path / "r" / "checkpoints")[-1])
    for opt in ("opt_g", "opt_d"):
        assert tuple(state[opt]["param_groups"][0]["betas"]) == pytest.approx((0.5, 0.99)), opt


def test_ema_run_ships_the_average_and_resumes_exactly(tmp_path: Path, sample_photos: list[Path], small_config) -> None:
    data = sample_photos[0].parent
    common = [*TRAIN, "train.checkpoint_every=2", "train.ema_decay=0.9", "model.color_path=true", "loss.lambda_warp=5"]
    unbroken = fit(small_config(*common, "train.steps=4"), data, tmp_path / "a", progress=False)
    fit(small_config(*common, "train.steps=2"), data, tmp_path / "b", progress=False)
    resumed = fit(small_config(*common, "train.steps=4"), data, tmp_path / "b", resume=True, progress=False)
    wa, wb = _weights(unbroken), _weights(resumed)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    # the artifact is the EMA, not the live generator kept in the trainer state
    state = load_trainer_state(list_checkpoints(tmp_path / "a" / "checkpoints")[-1])
    assert any(not torch.equal(state["generator"][k], wa[k]) for k in wa if wa[k].is_floating_point())


def test_init_from_continues_the_step_count_and_records_history(tmp_path: Path, sample_photos: list[Path],
                                                                small_config) -> None:
    import json

    from sketchcolor.errors import CheckpointError

    data = sample_photos[0].parent
    first = fit(small_config(*TRAIN, "train.steps=2"), data, tmp_path / "a", progress=False)
    second = fit(small_config(*TRAIN, "train.steps=5"), data, tmp_path / "b", progress=False, init=first)
    meta = json.loads((second / "config.json").read_text())["meta"]
    assert meta["step"] == 5
    assert [h["steps"] for h in meta["history"]] == [2, 3]
    with pytest.raises(CheckpointError, match="same architecture"):
        fit(small_config(*TRAIN, "train.steps=5", "model.num_res_blocks=2"), data, tmp_path / "c",
            progress=False, init=first)


def test_init_from_can_switch_to_qk_attention_keeping_every_weight(tmp_path: Path, sample_photos: list[Path],
                                                                   small_config) -> None:
    import math

    from sketchcolor.errors import CheckpointError
    from sketchcolor.models.generator import Colorizer
    from sketchcolor.training.loop import Models, init_from

    data = sample_photos[0].parent
    first = fit(small_config(*TRAIN, "train.steps=2"), data, tmp_path / "a", progress=False)
    cfg = small_config(*TRAIN, "train.steps=3", "model.attention_norm=qk")
    torch.manual_seed(0)
    generator = Colorizer(cfg.model)
    init_from(first, cfg, Models(generator=generator, discriminator=None, ema=None, opt_g=None, opt_d=None))  # type: ignore[arg-type]
    saved = _weights(first)
    loaded = generator.state_dict()
    assert set(loaded) - set(saved) == {k for k in loaded if k.endswith("log_temperature")} != set()
    for k, v in saved.items():
        assert torch.equal(loaded[k], v), k
    t = next(v for k, v in loaded.items() if k.endswith("log_temperature"))
    assert float(t) == pytest.approx(min(0.5 * math.log(cfg.model.attention_dim), math.log(15.0)))
    # and back is refused: the qk model's temperature has nowhere to go
    qk = fit(cfg, data, tmp_path / "b", progress=False, init=first)
    with pytest.raises(CheckpointError, match="not change 'qk' to 'none'"):
        fit(small_config(*TRAIN, "train.steps=5"), data, tmp_path / "c", progress=False, init=qk)


def test_validation_keeps_the_best_weights(tmp_path: Path, sample_photos: list[Path], small_config) -> None:
    import json

    data = sample_photos[0].parent
    cfg = small_config(*TRAIN, "train.steps=4", "train.val_fraction=0.3", "train.val_every=2")
    model = fit(cfg, data, tmp_path / "r", progress=False)
    meta = json.loads((model / "config.json").read_text())["meta"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert meta["step"] == summary["best_step"] in (2, 4)
    assert set(meta["validation"]) >= {"val_l1", "val_corr_within_one"}
    assert (tmp_path / "r" / "best" / "model.safetensors").is_file()
    assert _weights(model).keys() == _weights(tmp_path / "r" / "best").keys()
    for k, v in _weights(model).items():
        assert torch.equal(v, _weights(tmp_path / "r" / "best")[k])
