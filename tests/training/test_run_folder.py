"""Issue 10, run folders: `train --out` refuses a folder that is not a run of the same config (with
or without --resume) and touches nothing in it; a second writer on the same run fails at once on
the lock; temporary folders are removed only once their process is gone."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sketchcolor.atomic import remove_dead_leftovers
from sketchcolor.cli import main
from sketchcolor.errors import SketchColorError
from sketchcolor.models import Colorizer
from sketchcolor.models.serialization import load_artifact, save_artifact
from sketchcolor.training.checkpoint import list_checkpoints, save_checkpoint
from sketchcolor.training.loop import fit
from sketchcolor.training.run_folder import MAY_CHANGE, check_run_folder, config_differences

TRAIN = ["train.batch_size=2", "train.log_every=1", "train.image_every=1000", "train.threads=1"]


@pytest.fixture
def photos(tmp_path: Path, sample_photos: list[Path]) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for p in sample_photos[:2]:
        (d / p.name).write_bytes(p.read_bytes())
    return d


@pytest.fixture
def argv(tiny_recipe: Path, small_overrides: tuple[str, ...], photos: Path):
    """``argv(out, *extra_sets, resume=False)``: a `train` command line of the tiny test model."""
    def make(out: Path, *extra: str, resume: bool = False) -> list[str]:
        args = ["train", "--config", str(tiny_recipe), "--data", str(photos), "--out", str(out), "-q"]
        for s in [*small_overrides, *TRAIN, "train.steps=1", *extra]:
            args += ["--set", s]
        return args + (["--resume"] if resume else [])
    return make


def _tree(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (and each subfolder's name)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _one_error(capsys: pytest.CaptureFixture[str], rc: int, expected: str) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), (rc, err)
    assert expected in err[0], err[0]
    return err[0]


@pytest.fixture
def model_folder(tmp_path: Path, small_config) -> Path:
    cfg = small_config()
    torch.manual_seed(0)
    return save_artifact(tmp_path / "weights_copy", Colorizer(cfg.model).eval(), cfg)


# ------------------------------------------------------------------ what --out may be


@pytest.mark.parametrize("resume", [False, True])
def test_train_out_onto_a_model_folder_is_refused_and_the_folder_kept(model_folder: Path, argv, resume: bool,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree(model_folder)
    _one_error(capsys, main(argv(model_folder, resume=resume)),
               f"{model_folder}: is a model folder (an inference artifact), not a run folder; refusing to "
               f"{'resume' if resume else 'write a run into'} it; choose another --out (a new or empty folder)")
    assert _tree(model_folder) == before
    load_artifact(model_folder)


@pytest.mark.parametrize("resume", [False, True])
def test_train_out_onto_a_folder_of_other_files_is_refused(tmp_path: Path, argv, resume: bool,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "sub" / "a.png").write_bytes(b"x")
    before = _tree(folder)
    _one_error(capsys, main(argv(folder, resume=resume)),
               f"{folder}: not a sketchcolor run folder (no config.json; it holds notes.txt, sub)")
    assert _tree(folder) == before


def test_train_out_onto_a_file_is_refused(tmp_path: Path, argv, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "out.txt"
    f.write_text("keep")
    _one_error(capsys, main(argv(f)), f"{f}: exists and is not a folder")
    assert f.read_text() == "keep"


def test_a_config_json_that_is_not_a_run_config_is_refused(tmp_path: Path, argv, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.json").write_text('{"some": "other tool"}')
    _one_error(capsys, main(argv(folder)), "config.json is not a run's config (unknown config section(s): some)")
    assert [p.name for p in folder.iterdir()] == ["config.json"]


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_of_another_config_is_refused(tmp_path: Path, argv, small_config, resume: bool,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(small_config(*TRAIN, "model.num_res_blocks=2").to_json())
    (run / "logs").mkdir()
    before = _tree(run)
    msg = _one_error(capsys, main(argv(run, resume=resume)),
                     f"{run}: a run of another config (model.num_res_blocks is 2 there, 1 here)")
    assert msg.endswith("resume with the run's own recipe" if resume else "choose another --out (a new or empty folder)")
    assert _tree(run) == before


def test_missing_and_empty_folders_are_fine(tmp_path: Path, small_config) -> None:
    cfg = small_config()
    check_run_folder(tmp_path / "missing", cfg, resume=False)
    (tmp_path / "empty").mkdir()
    check_run_folder(tmp_path / "empty", cfg, resume=True)
    (tmp_path / "empty" / ".lock").write_text("")  # a lock file alone is not content
    check_run_folder(tmp_path / "empty", cfg, resume=False)


def test_what_may_change_between_runs(small_config, tmp_path: Path) -> None:
    cfg = small_config()
    same = small_config("train.steps=99", "train.lr_g=1e-5", "train.checkpoint_every=7", "train.device=cpu",
                        "train.threads=1", "data.num_workers=2")
    assert config_differences(cfg, same) == []
    assert config_differences(cfg, small_config("train.batch_size=4", "train.seed=1", "loss.lambda_rec=1")) == [
        "loss.lambda_rec", "train.batch_size", "train.seed"]
    with pytest.raises(SketchColorError, match=r"\(loss.lambda_rec is 30.0 there, 1.0 here; 2 more field\(s\) differ\)"):
        (tmp_path / "config.json").write_text(cfg.to_json())
        check_run_folder(tmp_path, small_config("train.batch_size=4", "train.seed=1", "loss.lambda_rec=1"), resume=True)
    assert "train.steps" in MAY_CHANGE and "train.batch_size" not in MAY_CHANGE


def test_a_run_is_extended_with_more_steps_and_refused_without_resume(tmp_path: Path, argv,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(argv(run, "train.checkpoint_every=1")) == 0
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step_00000001"]
    capsys.readouterr()
    # the same config, without --resume: the existing message (the folder already has checkpoints)
    _one_error(capsys, main(argv(run, "train.steps=2")), "run folder already has checkpoints; pass --resume")
    # train.steps (and cadences) may change on --resume: the run goes on
    assert main(argv(run, "train.steps=2", "train.checkpoint_every=1", resume=True)) == 0
    assert [p.name for p in list_checkpoints(run / "checkpoints")][-1] == "step_00000002"
    assert load_artifact(run / "model")[2]["step"] == 2
    assert (run / ".lock").exists() and not [p for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_a_failed_start_leaves_no_empty_folder_behind(tmp_path: Path, argv) -> None:
    run = tmp_path / "run"
    args = argv(run)
    args[args.index("--data") + 1] = str(tmp_path / "no_such_data")
    assert main(args) == 2
    assert not run.exists()


# ------------------------------------------------------------------ one writer per run


def test_a_second_train_on_the_same_out_fails_at_once_on_the_lock(tmp_path: Path, argv,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "sketchcolor.cli", *argv(run, "train.steps=100000", "train.checkpoint_every=100000")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "config.json").is_file():  # written once the first run holds the lock
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.1)
        config_before = (run / "config.json").read_bytes()
        for resume in (False, True):
            t0 = time.perf_counter()
            rc = main(argv(run, "train.steps=100000", "train.checkpoint_every=100000", resume=resume))
            assert time.perf_counter() - t0 < 3  # at once, not after waiting or building anything
            _one_error(capsys, rc, f"error: {run}: another sketchcolor process is writing to this run (lock {run / '.lock'})")
        assert first.poll() is None and (run / "config.json").read_bytes() == config_before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        first.stderr.close()
    # the kernel released the killed process's lock: the run can be taken up again
    assert main(argv(run, resume=True)) == 0


def test_the_lock_holds_within_one_process_too(tmp_path: Path, small_config, photos: Path) -> None:
    from sketchcolor.training.run_folder import run_lock

    run = tmp_path / "run"
    with run_lock(run):
        with pytest.raises(SketchColorError, match="another sketchcolor process is writing to this run"):
            fit(small_config(*TRAIN, "train.steps=1"), photos, run, progress=False)
    assert not run.exists()  # created by the lock, nothing written: removed again


# ------------------------------------------------------------------ temporary folders


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_leftovers_are_removed_only_once_their_process_is_gone(tmp_path: Path, small_config) -> None:
    cfg = small_config()
    root = tmp_path / "checkpoints"
    root.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = root / f".step_00000001.tmp-{sleeper.pid}-0123abcd"  # another process, mid-save
        own = root / f".step_00000001.tmp-{os.getpid()}-89abcdef"  # this process's own: only its writer removes it
        dead = root / f".step_00000001.tmp-{_dead_pid()}-deadbeef"  # a process killed mid-save
        old_style = root / f".step_00000001.old-{_dead_pid()}"  # named as earlier versions did
        dead_file = root / f".x.json.{_dead_pid()}.0a0b0c0d.tmp"
        for p in (live, own, dead, old_style):
            p.mkdir()
            (p / "model.safetensors").write_bytes(b"half")
        dead_file.write_text("half")
        torch.manual_seed(0)
        save_checkpoint(root, 2, Colorizer(cfg.model), cfg, {"step": 2}, keep=3)
        names = sorted(p.name for p in root.iterdir())
        assert names == sorted([live.name, own.name, "step_00000002"]), names
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sorted(p.name for p in remove_dead_leftovers(root)) == [live.name]


def test_temporary_folder_names_are_unique_per_call(tmp_path: Path) -> None:
    from sketchcolor.atomic import atomic_dir

    seen = []
    for _ in range(3):
        atomic_dir(tmp_path / "m", lambda tmp: seen.append(tmp.name) or (tmp / "f").write_text("x"))
    assert len(set(seen)) == 3 and all(n.startswith(f".m.tmp-{os.getpid()}-") for n in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
