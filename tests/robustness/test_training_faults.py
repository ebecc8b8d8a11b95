"""Issue 4, training: NaN/inf steps are skipped, counted and stop the run after K in a row; a run
killed with SIGKILL resumes to bitwise the weights of an unbroken run; a save that dies or finds
the disk full leaves every earlier checkpoint intact."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save as safetensors_bytes

import sketchcolor.models.serialization as serialization
import sketchcolor.training.step as step_mod
from sketchcolor.cli import main
from sketchcolor.config import load_config
from sketchcolor.errors import CheckpointError, SketchColorError
from sketchcolor.models import Colorizer, PatchDiscriminator
from sketchcolor.models.serialization import load_artifact
from sketchcolor.training.checkpoint import checkpoint_step, list_checkpoints, load_trainer_state, save_checkpoint
from sketchcolor.training.loop import fit
from sketchcolor.training.step import train_step

# Training settings of these runs, on top of the tiny test model (conftest's small_overrides).
TRAIN = ["train.batch_size=2", "train.log_every=1", "train.image_every=1000", "train.threads=1",
         "train.keep_checkpoints=0"]


@pytest.fixture(scope="module")
def run_overrides(small_overrides: tuple[str, ...]) -> list[str]:
    """The tiny test model and :data:`TRAIN`, as dotted overrides of tiny.yaml."""
    return [*small_overrides, *TRAIN]


@pytest.fixture(scope="module")
def cfg_of(tiny_recipe: Path, run_overrides: list[str]):
    """``cfg_of(*extra)``: the config of these runs with the dotted overrides ``extra``."""
    return lambda *extra: load_config(tiny_recipe, [*run_overrides, *extra])


def _snapshot(*modules: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters only: D's spectral-norm power-iteration vectors move on every training forward."""
    return [t.detach().clone() for m in modules for t in m.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# ------------------------------------------------------------------ one step


@pytest.fixture
def parts(cfg_of):
    cfg = cfg_of()
    torch.manual_seed(0)
    g, d = Colorizer(cfg.model), PatchDiscriminator(cfg.model)
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    batch = {"sketch": torch.rand(2, 1, 32, 32) * 2 - 1, "reference": torch.rand(2, 3, 32, 32) * 2 - 1,
             "target": torch.rand(2, 3, 32, 32) * 2 - 1, "correspondence": torch.randint(-1, 64, (2, 64))}
    return g, d, opt_g, opt_d, batch, cfg.loss, gen


def _poison_total(value: float):
    real = step_mod.generator_terms

    def terms(*args, **kw):
        t = real(*args, **kw)
        t["total"] = t["total"] * value
        return t
    return terms


def test_good_step_updates_both(parts) -> None:
    g, d, opt_g, opt_d, batch, loss, gen = parts
    g0, d0 = _snapshot(g), _snapshot(d)
    m = train_step(g, d, opt_g, opt_d, batch, loss, None, gen)
    assert m["skipped"] == 0.0 and not _same(g0, _snapshot(g)) and not _same(d0, _snapshot(d))


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nonfinite_d_loss_skips_the_whole_step(parts, value: float, monkeypatch: pytest.MonkeyPatch) -> None:
    g, d, opt_g, opt_d, batch, loss, gen = parts
    real = step_mod.discriminator_terms
    monkeypatch.setattr(step_mod, "discriminator_terms", lambda *a, **k: {"d": real(*a, **k)["d"] * value})
    g0, d0 = _snapshot(g), _snapshot(d)
    m = train_step(g, d, opt_g, opt_d, batch, loss, None, gen)
    assert m["skipped"] == 1.0
    assert _same(g0, _snapshot(g)) and _same(d0, _snapshot(d))
    assert not opt_g.state and not opt_d.state  # Adam moments untouched too
    assert all(p.requires_grad for p in d.parameters())


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nonfinite_g_loss_skips_g(parts, value: float, monkeypatch: pytest.MonkeyPatch) -> None:
    g, d, opt_g, opt_d, batch, loss, gen = parts
    monkeypatch.setattr(step_mod, "generator_terms", _poison_total(value))
    g0 = _snapshot(g)
    m = train_step(g, d, opt_g, opt_d, batch, loss, None, gen)
    assert m["skipped"] == 1.0 and _same(g0, _snapshot(g)) and not opt_g.state
    assert all(p.requires_grad for p in d.parameters())


def test_nonfinite_gradient_with_finite_loss_skips_g(parts, monkeypatch: pytest.MonkeyPatch) -> None:
    g, d, opt_g, opt_d, batch, loss, gen = parts
    real = step_mod.generator_terms

    def terms(out, *args, **kw):
        t = real(out, *args, **kw)
        t["total"] = t["total"] + 0.0 * torch.sqrt(out.image.sum() * 0.0)  # d/dx sqrt at 0 = inf; 0 * inf = NaN
        return t
    monkeypatch.setattr(step_mod, "generator_terms", terms)
    g0 = _snapshot(g)
    m = train_step(g, d, opt_g, opt_d, batch, loss, None, gen)
    assert torch.isfinite(torch.tensor(m["total"])) and m["skipped"] == 1.0
    assert _same(g0, _snapshot(g)) and not opt_g.state


# ------------------------------------------------------------------ whole runs


def _bad_from(monkeypatch: pytest.MonkeyPatch, steps: set[int] | range) -> None:
    """Make G's loss NaN on the given (1-based) steps of the next run."""
    real = step_mod.generator_terms
    calls = {"n": 0}

    def terms(*args, **kw):
        calls["n"] += 1
        t = real(*args, **kw)
        if calls["n"] in steps:
            t["total"] = t["total"] * float("nan")
        return t
    monkeypatch.setattr(step_mod, "generator_terms", terms)


def test_nan_streak_stops_the_run_and_keeps_the_last_good_checkpoint(train_photos: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch, cfg_of) -> None:
    _bad_from(monkeypatch, range(3, 100))
    cfg = cfg_of("train.steps=20", "train.checkpoint_every=1", "train.max_bad_steps=3")
    run = tmp_path / "run"
    with pytest.raises(SketchColorError) as info:
        fit(cfg, train_photos, run, progress=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "stopped at step 5 after 3 steps in a row with a non-finite loss" in msg
    assert f"the last good checkpoint is {run / 'checkpoints' / 'step_00000002'}" in msg
    assert "train.max_bad_steps=3" in msg
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step_00000001", "step_00000002"]
    assert not (run / "model").exists()
    model, _, _ = load_artifact(run / "checkpoints" / "step_00000002")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert load_trainer_state(run / "checkpoints" / "step_00000002")["skipped"] == 0


def test_isolated_bad_step_is_counted_and_the_checkpoint_waits_for_a_good_step(
        train_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg_of) -> None:
    _bad_from(monkeypatch, {2})
    cfg = cfg_of("train.steps=4", "train.checkpoint_every=2", "train.max_bad_steps=2")
    run = tmp_path / "run"
    fit(cfg, train_photos, run, progress=False)
    # step 2's checkpoint was due while its update had been skipped: written after step 3 instead
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step_00000003", "step_00000004"]
    assert json.loads((run / "summary.json").read_text())["skipped_steps"] == 1
    state = load_trainer_state(run / "checkpoints" / "step_00000004")
    assert state["skipped"] == 1 and state["bad_streak"] == 0


def test_nan_losses_stop_the_cli_with_one_error_line(train_photos: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str], tiny_recipe: Path,
                                                     monkeypatch: pytest.MonkeyPatch, run_overrides: list[str]) -> None:
    # (a NaN loss weight, loss.lambda_rec=.nan, is now refused by the config's validation:
    # tests/test_config_limits.py; here every loss turns NaN instead)
    _bad_from(monkeypatch, range(1, 100))
    args = ["train", "--config", str(tiny_recipe), "--data", str(train_photos), "--out", str(tmp_path / "run"), "-q"]
    for s in [*run_overrides, "train.steps=10", "train.max_bad_steps=2"]:
        args += ["--set", s]
    assert main(args) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert len(err) == 1 and "stopped at step 2 after 2 steps in a row" in err[0], err
    assert "no checkpoint had been written yet" in err[0]


# ------------------------------------------------------------------ saves that die


def _tiny_model_and_state(cfg):
    torch.manual_seed(0)
    return Colorizer(cfg.model), cfg, {"step": 0, "elapsed": 0.0, "skipped": 0, "discriminator": {"w": torch.ones(3)},
                                       "opt_g": {}, "opt_d": {}, "rng_cpu": torch.get_rng_state()}


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _partial_save_file(exc: BaseException):
    def save_file(tensors, filename, metadata=None):
        data = safetensors_bytes(tensors, metadata)
        Path(filename).write_bytes(data[: len(data) // 2])  # half the file made it to disk
        raise exc
    return save_file


def _partial_torch_save(exc: BaseException):
    def save(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04" + b"\x00" * 100)
        raise exc
    return save


@pytest.mark.parametrize(("target", "exc", "message"), [
    ("save_file", RuntimeError("killed mid-write"), "killed mid-write"),
    ("save_file", OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    ("torch_save", OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    ("torch_save", PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
], ids=["weights_interrupted", "weights_disk_full", "state_disk_full", "state_permission"])
def test_failed_save_replaces_nothing(target: str, exc: BaseException, message: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, cfg_of) -> None:
    model, cfg, state = _tiny_model_and_state(cfg_of())
    root = tmp_path / "checkpoints"
    first = save_checkpoint(root, 1, model, cfg, {**state, "step": 1})
    before, listed = _tree(root), list_checkpoints(root)
    if target == "save_file":
        monkeypatch.setattr(serialization, "save_file", _partial_save_file(exc))
    else:
        monkeypatch.setattr(torch, "save", _partial_torch_save(exc))
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises((CheckpointError, type(exc))) as info:
        save_checkpoint(root, 2, model, cfg, {**state, "step": 2})
    assert message in str(info.value)
    if isinstance(exc, OSError):
        assert isinstance(info.value, CheckpointError) and "\n" not in str(info.value)
        assert "nothing was replaced, earlier checkpoints are intact" in str(info.value)
    assert _tree(root) == before and list_checkpoints(root) == listed == [first]
    assert [p.name for p in root.iterdir()] == ["step_00000001"]  # no temporary folder left either
    monkeypatch.undo()
    load_artifact(first)
    assert load_trainer_state(first)["step"] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_in_the_middle_of_a_save(tmp_path: Path, cfg_of) -> None:
    """A child process is killed (SIGKILL: no cleanup runs) halfway through writing the weights of
    step 2. Step 1 stays complete and listed; the half-written folder is never taken for a
    checkpoint and the next save removes it."""
    model, cfg, state = _tiny_model_and_state(cfg_of())
    root = tmp_path / "checkpoints"
    first = save_checkpoint(root, 1, model, cfg, {**state, "step": 1})
    before = _tree(root)
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            def dying_save_file(tensors, filename, metadata=None):
                data = safetensors_bytes(tensors, metadata)
                with open(filename, "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            serialization.save_file = dying_save_file
            save_checkpoint(root, 2, model, cfg, {**state, "step": 2})
        finally:
            os._exit(3)  # only reached if the kill did not happen
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("child did not finish")
        time.sleep(0.01)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    leftovers = [p.name for p in root.iterdir() if p.name != "step_00000001"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".step_00000002.tmp-")  # the half-written one
    assert list_checkpoints(root) == [first]
    assert {k: v for k, v in _tree(root).items() if k.startswith("step_")} == before
    load_artifact(first)
    load_trainer_state(first)
    save_checkpoint(root, 3, model, cfg, {**state, "step": 3})
    assert sorted(p.name for p in root.iterdir()) == ["step_00000001", "step_00000003"]


def test_full_disk_during_training_is_one_error_line(train_photos: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, tiny_recipe: Path,
                                                     run_overrides: list[str]) -> None:
    real = serialization.save_file
    calls = {"n": 0}

    def save_file(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint finds the disk full halfway
            _partial_save_file(OSError(errno.ENOSPC, "No space left on device", filename))(tensors, filename, metadata)
        return real(tensors, filename, metadata=metadata)
    monkeypatch.setattr(serialization, "save_file", save_file)
    run = tmp_path / "run"
    args = ["train", "--config", str(tiny_recipe), "--data", str(train_photos), "--out", str(run), "-q"]
    for s in [*run_overrides, "train.steps=3", "train.checkpoint_every=1"]:
        args += ["--set", s]
    assert main(args) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert err[0].startswith(f"error: {run / 'checkpoints' / 'step_00000002'}: could not be written: no space left on device")
    ckpts = run / "checkpoints"
    assert list_checkpoints(ckpts) == [ckpts / "step_00000001"]
    assert [p.name for p in ckpts.iterdir()] == ["step_00000001"]
    load_artifact(ckpts / "step_00000001")
    assert load_trainer_state(ckpts / "step_00000001")["step"] == 1
    assert not (run / "model").exists()


# ------------------------------------------------------------------ SIGKILL and resume


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_sigkill_at_a_random_step_then_resume_equals_unbroken_run(train_photos: Path, tmp_path: Path, tiny_recipe: Path,
                                                                  run_overrides: list[str]) -> None:
    steps = 14
    rng = random.Random(4)  # seeded: the same kill point on every run of the suite
    kill_after, extra_delay = rng.randint(2, 6), rng.uniform(0.0, 0.03)
    overrides = [*run_overrides, f"train.steps={steps}", "train.checkpoint_every=1", "train.seed=3"]
    args = ["train", "--config", str(tiny_recipe), "--data", str(train_photos), "-q"]
    for s in overrides:
        args += ["--set", s]

    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "sketchcolor.cli", *args, "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = run / "checkpoints" / f"step_{kill_after:08d}"
    deadline = time.monotonic() + 120
    try:
        while not target.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "training subprocess made no progress"
            time.sleep(0.002)
        time.sleep(extra_delay)  # a random moment after that checkpoint: mid-step or mid-save
        still_running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert still_running and proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run / "model").exists()
    done = list_checkpoints(run / "checkpoints")
    killed_at = int(done[-1].name.split("_")[1])
    assert kill_after <= killed_at < steps
    load_artifact(done[-1])  # the newest complete checkpoint is loadable as is

    assert main([*args, "--out", str(run), "--resume"]) == 0
    resumed = _weights(run / "model")
    unbroken_dir = fit(load_config(tiny_recipe, overrides), train_photos, tmp_path / "unbroken", progress=False)
    unbroken = _weights(unbroken_dir)
    assert resumed.keys() == unbroken.keys()
    for k in unbroken:
        assert torch.equal(resumed[k], unbroken[k]), k
    da = load_trainer_state(list_checkpoints(run / "checkpoints")[-1])
    db = load_trainer_state(list_checkpoints(tmp_path / "unbroken" / "checkpoints")[-1])
    assert da["step"] == db["step"] == steps
    for k in db["discriminator"]:
        assert torch.equal(da["discriminator"][k], db["discriminator"][k]), k
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # stale temp folders cleaned


# ------------------------------------------------------------------ going back after a divergence


def test_divergence_names_the_best_validated_checkpoint_and_the_run_goes_back_to_it(
        sample_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg_of) -> None:
    """Retention keeps the best validated step's checkpoint; the stop names it; --resume-step goes
    back to it and sets the newer checkpoints aside instead of deleting them."""
    _bad_from(monkeypatch, range(6, 100))
    common = ("train.checkpoint_every=1", "train.keep_checkpoints=2", "train.val_every=2", "train.val_fraction=0.3",
              "train.max_bad_steps=3")
    photos = sample_photos[0].parent  # enough pictures for a validation split
    run = tmp_path / "run"
    with pytest.raises(SketchColorError) as info:
        fit(cfg_of("train.steps=20", *common), photos, run, progress=False)
    best = json.loads((run / "best" / "config.json").read_text())["meta"]["step"]
    assert best in (2, 4)
    msg = str(info.value)
    assert f"the last good checkpoint is {run / 'checkpoints' / 'step_00000005'}" in msg
    assert f"the best validated one is step {best} (continue from it with --resume-step {best}" in msg
    kept = [p.name for p in list_checkpoints(run / "checkpoints")]
    assert kept == sorted({f"step_{best:08d}", "step_00000004", "step_00000005"})

    monkeypatch.undo()
    fit(cfg_of("train.steps=7", *common), photos, run, progress=False, resume_step=best)
    aside = sorted(p.name for p in (run / "checkpoints" / "abandoned").iterdir())
    assert aside == [n for n in kept if int(n[5:]) > best]
    last = list_checkpoints(run / "checkpoints")[-1]
    assert load_trainer_state(last)["step"] == 7
    # the resumed sitting started at the best step, not at the newest checkpoint (5)
    assert json.loads((last / "config.json").read_text())["meta"]["history"][-1]["steps"] == 7 - best
    assert json.loads((run / "summary.json").read_text())["step"] == 7


def test_resume_step_must_name_a_checkpoint(train_photos: Path, tmp_path: Path, cfg_of) -> None:
    run = tmp_path / "run"
    with pytest.raises(SketchColorError, match="--resume-step 1: the run folder has no checkpoints"):
        fit(cfg_of("train.steps=2"), train_photos, run, progress=False, resume_step=1)
    fit(cfg_of("train.steps=2", "train.checkpoint_every=1"), train_photos, run, progress=False)
    before = _tree(run / "checkpoints")
    with pytest.raises(SketchColorError, match=r"--resume-step 3: no checkpoint at that step \(it has steps 1, 2; checkpoints set aside"):
        fit(cfg_of("train.steps=4", "train.checkpoint_every=1"), train_photos, run, progress=False, resume_step=3)
    assert _tree(run / "checkpoints") == before


def test_going_back_sets_aside_newer_checkpoints_and_a_newer_best(tmp_path: Path, cfg_of) -> None:
    from sketchcolor.models.serialization import save_artifact
    from sketchcolor.training.loop import RunState, go_back

    model, cfg, state = _tiny_model_and_state(cfg_of())
    run = tmp_path / "run"
    for step in (1, 2, 3):
        save_checkpoint(run / "checkpoints", step, model, cfg, {**state, "step": step}, keep=0)
    save_artifact(run / "best", model, cfg, {"step": 3})
    (run / "checkpoints" / "abandoned").mkdir()
    (run / "checkpoints" / "abandoned" / "step_00000003").mkdir()  # an earlier branch reached step 3 too
    state = RunState(step=1, best_score=0.5, best_step=3)
    go_back(run, 1, state)
    assert (state.best_step, state.best_score) == (-1, float("-inf"))  # its best/ went with the branch
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step_00000001"]
    aside = run / "checkpoints" / "abandoned"
    assert sorted(p.name for p in aside.iterdir()) == ["best", "step_00000002", "step_00000003", "step_00000003.2"]
    assert (aside / "step_00000003.2" / "trainer_state.pt").is_file() and (aside / "best" / "model.safetensors").is_file()
    assert not (run / "best").exists()
    save_artifact(run / "best", model, cfg, {"step": 1})
    state = RunState(step=1, best_score=0.5, best_step=1)
    go_back(run, 1, state)  # a best of the kept branch stays
    assert (run / "best").is_dir() and (state.best_step, state.best_score) == (1, 0.5)


def test_retention_keeps_the_protected_step(tmp_path: Path, cfg_of) -> None:
    model, cfg, state = _tiny_model_and_state(cfg_of())
    root = tmp_path / "checkpoints"
    for step in range(1, 6):
        save_checkpoint(root, step, model, cfg, {**state, "step": step}, keep=2, protect=2)
    assert [p.name for p in list_checkpoints(root)] == ["step_00000002", "step_00000004", "step_00000005"]


# ------------------------------------------------------------------ going back (train.max_rewinds)

# with a validation split (sample_photos has enough pictures), validated and saved at every step
REWIND = ["train.checkpoint_every=1", "train.max_bad_steps=3", "train.max_rewinds=1", "train.val_fraction=0.3",
          "train.val_every=1"]


def test_a_broken_run_goes_back_to_its_best_checkpoint_at_lower_learning_rates(
        sample_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg_of,
        caplog: pytest.LogCaptureFixture) -> None:
    _bad_from(monkeypatch, range(5, 8))  # steps 5-7 of the first pass break; the replay after the rewind does not
    cfg = cfg_of("train.steps=8", *REWIND)
    run = tmp_path / "run"
    fit(cfg, sample_photos[0].parent, run, progress=False)
    state = load_trainer_state(run / "checkpoints" / "step_00000008")
    assert state["step"] == 8 and state["rewinds"] == 1 and state["lr_scale"] == 0.5
    assert state["skipped"] == 3  # the broken branch's skipped steps still count
    assert [g["lr"] for g in state["opt_g"]["param_groups"]] == [cfg.train.lr_g * 0.5]
    assert [g["lr"] for g in state["opt_d"]["param_groups"]] == [cfg.train.lr_d * 0.5]
    # back to the best validated step, the branch left behind (its checkpoints after that step,
    # written before the break) set aside, none deleted; the replay wrote steps back_to+1.. anew
    (back_to,) = [int(m.group(1)) for m in re.finditer(
        r"step 7: 3 steps in a row with a non-finite loss or gradient; back to step (\d+) with the learning rates "
        r"x 0.5 \(rewind 1 of 1\)", caplog.text)]
    assert 1 <= back_to <= 4
    # ... which is the best validated step that the last checkpoint before the break recorded
    step4 = [f for f in (run / "checkpoints" / "step_00000004", run / "checkpoints" / "abandoned" / "step_00000004")
             if f.is_dir()]
    assert load_trainer_state(step4[0])["best_step"] == back_to
    aside = run / "checkpoints" / "abandoned"
    assert (sorted(p.name for p in aside.iterdir()) if aside.exists() else []) == [
        f"step_{s:08d}" for s in range(back_to + 1, 5)]
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [f"step_{s:08d}" for s in range(1, 9)]
    meta = json.loads((run / "model" / "config.json").read_text())["meta"]
    assert meta["rewinds"] == 1 and meta["lr_scale"] == 0.5
    # a resumed run keeps the lowered rates
    fit(replace(cfg, train=replace(cfg.train, steps=9)), sample_photos[0].parent, run, resume=True, progress=False)
    state = load_trainer_state(run / "checkpoints" / "step_00000009")
    assert state["lr_scale"] == 0.5 and [g["lr"] for g in state["opt_g"]["param_groups"]] == [cfg.train.lr_g * 0.5]


def test_a_run_that_breaks_again_after_its_last_rewind_stops(
        sample_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg_of,
        caplog: pytest.LogCaptureFixture) -> None:
    _bad_from(monkeypatch, range(5, 100))
    run = tmp_path / "run"
    with pytest.raises(SketchColorError, match=r"after 3 steps in a row with a non-finite loss") as info:
        fit(cfg_of("train.steps=20", *REWIND), sample_photos[0].parent, run, progress=False)
    (back_to,) = [int(n) for n in re.findall(r"back to step (\d+) with the learning rates x 0.5 \(rewind 1 of 1\)",
                                              caplog.text)]
    assert f"stopped at step {back_to + 3} after 3 steps" in str(info.value) and "\n" not in str(info.value)


def test_a_jump_of_the_reconstruction_loss_sends_the_run_back_and_nothing_is_saved_while_it_looks_broken(
        sample_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg_of,
        caplog: pytest.LogCaptureFixture) -> None:
    real = step_mod.generator_terms
    calls = {"n": 0}

    def terms(*args, **kw):  # G's reconstruction term x20 on the 13th and 14th steps of the first pass
        calls["n"] += 1
        t = real(*args, **kw)
        if calls["n"] in (13, 14):
            t["rec"] = t["rec"] * 20.0
        return t
    monkeypatch.setattr(step_mod, "generator_terms", terms)
    run = tmp_path / "run"
    fit(cfg_of("train.steps=16", *REWIND), sample_photos[0].parent, run, progress=False)
    (back_to,) = [int(n) for n in re.findall(
        r"step 14: the reconstruction loss jumped to [0-9.]+, over 2.5x its recent median; back to step (\d+) "
        r"with the learning rates x 0.5 \(rewind 1 of 1\)", caplog.text)]
    # step 13 looked broken: neither validated nor saved, so the run went back to step 12 at the latest
    assert back_to <= 12
    aside = run / "checkpoints" / "abandoned"
    assert "step_00000013" not in (sorted(p.name for p in aside.iterdir()) if aside.exists() else [])
    state = load_trainer_state(run / "checkpoints" / "step_00000016")
    assert state["rewinds"] == 1 and state["lr_scale"] == 0.5 and len(state["rec_history"]) >= 10


def test_with_its_rewinds_spent_a_run_carries_on_and_saves_nothing_while_the_loss_is_up(
        sample_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg_of,
        caplog: pytest.LogCaptureFixture) -> None:
    real = step_mod.generator_terms
    calls = {"n": 0}

    def terms(*args, **kw):  # two jumps: the first spends the one rewind, the second comes after it
        calls["n"] += 1
        t = real(*args, **kw)
        if calls["n"] in (13, 14) or calls["n"] >= 24:
            t["rec"] = t["rec"] * 20.0
        return t
    monkeypatch.setattr(step_mod, "generator_terms", terms)
    run = tmp_path / "run"
    fit(cfg_of("train.steps=30", *REWIND), sample_photos[0].parent, run, progress=False)
    assert caplog.text.count("back to step") == 1  # one rewind, then the run went on to its end
    (back_to,) = [int(n) for n in re.findall(r"back to step (\d+)", caplog.text)]
    # after the rewind, calls 24.. are steps back_to + 10 .. (back_to <= 12: all before the end), with
    # the loss above the bar: no checkpoint from there to the end (the final step is always saved)
    saved = [checkpoint_step(c) for c in list_checkpoints(run / "checkpoints")]
    assert max(st for st in saved if st < 30) == back_to + 9 and 30 in saved
    assert json.loads((run / "summary.json").read_text())["step"] == 30


def test_a_rewind_can_start_d_afresh(
        sample_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg_of,
        caplog: pytest.LogCaptureFixture) -> None:
    """With train.rewind_fresh_d, G comes back from the checkpoint and D restarts: its optimizer
    has counted only the steps since the rewind, G's all of them."""
    _bad_from(monkeypatch, range(5, 8))
    cfg = cfg_of("train.steps=8", "train.rewind_fresh_d=true", *REWIND)
    run = tmp_path / "run"
    fit(cfg, sample_photos[0].parent, run, progress=False)
    (back_to,) = [int(m.group(1)) for m in re.finditer(r"back to step (\d+) with the learning rates x 0.5, D afresh",
                                                       caplog.text)]
    state = load_trainer_state(run / "checkpoints" / "step_00000008")
    assert state["rewinds"] == 1 and [g["lr"] for g in state["opt_d"]["param_groups"]] == [cfg.train.lr_d * 0.5]
    steps_g = {float(v["step"]) for v in state["opt_g"]["state"].values()}
    steps_d = {float(v["step"]) for v in state["opt_d"]["state"].values()}
    assert steps_d == {8.0 - back_to} and min(steps_g) > 8.0 - back_to


@pytest.mark.parametrize("new_data", [False, True])
def test_a_rewind_can_move_on_to_examples_the_run_has_not_seen(
        sample_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg_of, new_data: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    """With train.rewind_new_data the batches after a rewind come a stride further in the example
    stream (the same batches again without it), and a resume after the rewind keeps reading there."""
    import sketchcolor.training.loop as loop_mod

    real, reads = loop_mod._loader, []

    def loader(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        made = real(*args, **kw)
        reads.append(made.dataset.start)
        return made
    monkeypatch.setattr(loop_mod, "_loader", loader)
    _bad_from(monkeypatch, range(5, 8))
    sets = [f"train.rewind_new_data={str(new_data).lower()}", *REWIND]
    cfg = cfg_of("train.steps=8", *sets)
    run = tmp_path / "run"
    fit(cfg, sample_photos[0].parent, run, progress=False)
    (back_to,) = [int(m.group(1)) for m in re.finditer(r"back to step (\d+)", caplog.text)]
    assert ("examples it has not seen" in caplog.text) == new_data
    offset = loop_mod.REWIND_DATA_STRIDE if new_data else 0
    batch = cfg.train.batch_size
    assert reads == [0, offset + back_to * batch]
    fit(cfg_of("train.steps=9", *sets), sample_photos[0].parent, run, resume=True, progress=False)
    assert reads[-1] == offset + 8 * batch
