"""Issue 14: `sketchcolor train` under torchrun (2 CPU processes, gloo) equals one process.

Tolerance: the two runs add the same float32 numbers in another order (two half-batch gradients
averaged by gloo instead of one mean over the batch; convolutions on one thread per process), and
Adam's first steps, about ``lr * sign(gradient)``, magnify those last-bit differences. One process
on 1 thread against the same process on 2 threads differs by a relative L2 of about 5e-5 of the
update after 3 steps of the tiny recipe (measured); 2 processes against 1 differ by the same
amount. Without the shard-aware triplet loss (each process drawing its own negatives and averaging
over its own valid cells) the difference was 0.33. The test allows 1e-3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from sketchcolor.config import load_config
from sketchcolor.models import Colorizer
from sketchcolor.training.checkpoint import list_checkpoints, load_trainer_state
from sketchcolor.training.loop import fit

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"
# configs/tiny.yaml for 3 steps of a global batch of 4, a checkpoint at the end.
SETTINGS = ["train.steps=3", "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=3",
            "train.image_every=1000"]
TOLERANCE = 1e-3  # relative L2 of the weight difference to the update the steps made (see above)


def _torchrun(data: Path, out: Path, nproc: int, *sets: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "sketchcolor.cli", "train", "--config", str(TINY), "--data", str(data), "--out", str(out), "-q"]
    for s in sets:
        cmd += ["--set", s]
    # faulthandler: a rank killed by a signal prints every thread's Python stack first. It showed
    # where the rare SIGABRT ("terminate called without an active exception", about one worker in
    # a hundred) happened: in the interpreter's teardown, no Python frame left; the workers now
    # skip it (training.distributed.end_process)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-8000:]
    # each worker leaves through distributed.end_process (os._exit): its last line still arrives
    assert done.stdout.count(f"wrote {out / 'model'}") == nproc, done.stdout[-2000:]


@pytest.fixture(scope="module", params=["paper_d", "r1", "device_triplets"])
def runs(request: pytest.FixtureRequest, sample_photos: list[Path],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same 3 steps in 2 processes (torchrun) and in 1 process (on 1 thread, as each of the 2);
    with the paper's D, and with D's R1 penalty on, whose gradient of a gradient must pass DDP's
    one forward / one backward as well; and with the triplets built in each process's step
    (data.augment_on=device), from its own share of the draws. The data holds one unreadable
    file, which the 3 global batches of 4 (one pass over the 12 files) reach in one process."""
    root = tmp_path_factory.mktemp("ddp")
    data = root / "data"
    data.mkdir()
    for p in sample_photos:
        shutil.copy(p, data / p.name)
    (data / "0_unreadable.png").write_bytes(b"\x89PNG not a picture")
    extra = {"paper_d": [], "r1": ["loss.r1_gamma=1.0"], "device_triplets": ["data.augment_on=device"]}
    settings = [*SETTINGS, *extra[request.param]]
    _torchrun(data, root / "two", 2, *settings)
    threads = torch.get_num_threads()
    try:
        fit(load_config(TINY, [*settings, "train.threads=1"]), data, root / "one", progress=False)
    finally:
        torch.set_num_threads(threads)
    return {"two": root / "two", "one": root / "one", "data": data, "settings": settings}


def _relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], start: dict[str, torch.Tensor]) -> float:
    diff = sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5
    moved = sum(float(((a[k] - start[k]) ** 2).sum()) for k in a) ** 0.5
    return diff / moved


def test_two_processes_train_the_weights_one_process_trains(runs: dict[str, Any]) -> None:
    cfg = load_config(TINY)
    torch.manual_seed(cfg.train.seed)
    start_g = Colorizer(cfg.model).state_dict()
    g1, g2 = (load_file(str(runs[k] / "model" / "model.safetensors")) for k in ("one", "two"))
    assert g1.keys() == g2.keys() == start_g.keys()  # no module. / _orig_mod. prefixes
    assert _relative_difference(g2, g1, start_g) < TOLERANCE
    s1, s2 = (load_trainer_state(list_checkpoints(runs[k] / "checkpoints")[-1]) for k in ("one", "two"))
    assert s1["discriminator"].keys() == s2["discriminator"].keys()
    from sketchcolor.models import PatchDiscriminator
    torch.manual_seed(cfg.train.seed)
    Colorizer(cfg.model)  # the loop builds G first, then D, from the same seed
    start_d = PatchDiscriminator(cfg.model).state_dict()
    assert _relative_difference(s2["discriminator"], s1["discriminator"], start_d) < TOLERANCE
    assert s2["step"] == s1["step"] == 3


def test_both_ranks_end_with_the_same_weights_and_the_artifact_says_how_it_was_trained(runs: dict[str, Any]) -> None:
    summary = json.loads((runs["two"] / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["rank_divergence"] == 0.0  # fingerprints of G and D on both ranks
    meta = json.loads((runs["two"] / "model" / "config.json").read_text())["meta"]
    # the unreadable file is counted whichever process met it
    assert meta["bad_files"] == json.loads((runs["one"] / "model" / "config.json").read_text())["meta"]["bad_files"] == 1
    assert meta["world_size"] == 2 and len(meta["devices"]) == 2 and meta["nodes"] == 1
    assert [h["world_size"] for h in meta["history"]] == [2]
    # rank 0 alone wrote: one log file, one set of checkpoints
    assert len(list((runs["two"] / "logs").iterdir())) == 1
    assert [p.name for p in list_checkpoints(runs["two"] / "checkpoints")] == ["step_00000003"]


def test_a_two_process_run_resumes_in_one_process(runs: dict[str, Any], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["two"], run)
    (run / ".lock").unlink(missing_ok=True)
    model = fit(load_config(TINY, [*runs["settings"], "train.steps=5"]), runs["data"], run, resume=True, progress=False)
    assert [p.name for p in list_checkpoints(run / "checkpoints")][-1] == "step_00000005"
    assert json.loads((run / "summary.json").read_text())["step"] == 5
    meta = json.loads((model / "config.json").read_text())["meta"]
    assert meta["step"] == 5 and [(h["steps"], h["world_size"]) for h in meta["history"]] == [(3, 2), (2, 1)]


def test_a_batch_that_does_not_split_is_one_error() -> None:
    from sketchcolor.errors import SketchColorError
    from sketchcolor.training.distributed import World, local_batch

    assert local_batch(World(rank=1, size=2), 8) == 4
    with pytest.raises(SketchColorError, match="train.batch_size 3 is not divisible by the 2 processes"):
        local_batch(World(rank=0, size=2), 3)


def test_the_ranks_batches_make_up_the_global_batch(tiny_model_cfg) -> None:
    """Rank r's k-th batch (DistributedSampler, in order) is rows r, r + N, ... of global batch k,
    and the triplet loss of the shards averages to the global batch's, same negatives included."""
    from torch.utils.data import DataLoader

    from sketchcolor.losses.triplet import BatchShard, triplet_loss
    from sketchcolor.training.distributed import World, shard_sampler

    stream = list(range(24))  # any dataset of the global stream's length: indices stand for examples
    global_batches = list(DataLoader(stream, batch_size=8))
    for rank in range(2):
        world = World(rank=rank, size=2)
        local = list(DataLoader(stream, batch_size=4, sampler=shard_sampler(world, stream)))
        for k, batch in enumerate(local):
            assert torch.equal(batch, global_batches[k][torch.arange(rank, 8, 2)])

    gen = torch.Generator().manual_seed(0)
    query, key = torch.randn(8, 16, 4, generator=gen), torch.randn(8, 16, 4, generator=gen)
    corr = torch.randint(-1, 16, (8, 16), generator=gen)
    corr[3] = -1  # rows with fewer valid cells: a mean per shard would weigh them wrongly
    whole = triplet_loss(query, key, corr, 1.0, torch.Generator().manual_seed(5), 2)
    valid = int((corr >= 0).sum())
    parts = [triplet_loss(query[rows], key[rows], corr[rows], 1.0, torch.Generator().manual_seed(5), 2,
                          BatchShard(rows, 8, valid)) for rows in (torch.arange(0, 8, 2), torch.arange(1, 8, 2))]
    assert torch.allclose((parts[0] + parts[1]) / 2, whole, rtol=1e-6)

    # a shard without any valid cell draws the same negatives as the others, so the generators
    # stay in step for the step's later draws; its share is 0 and the shares still average right
    corr[0::2] = -1
    valid = int((corr >= 0).sum())
    gens = [torch.Generator().manual_seed(5) for _ in range(3)]
    whole = triplet_loss(query, key, corr, 1.0, gens[2], 2)
    parts = [triplet_loss(query[rows], key[rows], corr[rows], 1.0, gen, 2, BatchShard(rows, 8, valid))
             for rows, gen in zip((torch.arange(0, 8, 2), torch.arange(1, 8, 2)), gens)]
    assert float(parts[0]) == 0.0 and torch.allclose((parts[0] + parts[1]) / 2, whole, rtol=1e-6)
    assert all(torch.equal(gen.get_state(), gens[2].get_state()) for gen in gens[:2])


def test_the_ema_lives_on_the_models_device() -> None:
    """AveragedModel makes its step counter on the CPU unless told the device: with G on a GPU the
    run's end (the weight fingerprint of G, D and the EMA, on every multi-process run) stacked
    tensors of two devices and failed. "meta" stands in for a GPU (the same device rule)."""
    from sketchcolor.training.distributed import _fingerprint
    from sketchcolor.training.loop import build_models

    device = torch.device("meta")
    models = build_models(load_config(TINY, ["train.ema_decay=0.9"]), device)
    assert models.ema is not None
    assert {t.device for t in [*models.ema.parameters(), *models.ema.buffers()]} == {device}
    prints = _fingerprint([models.generator, models.discriminator, models.ema], device)
    assert prints.device == device and prints.shape[1] == 3


def test_batch_norms_share_their_statistics_over_the_processes(tiny_model_cfg) -> None:
    """model.norm=batch: G's batch norms become SyncBatchNorm under several processes (the same
    parameters, buffers and state_dict keys, so the optimizer, the EMA and the checkpoints are
    unchanged); on CPUs, where SyncBatchNorm does not run, such a run is one error at the start."""
    from dataclasses import replace

    from sketchcolor.errors import SketchColorError
    from sketchcolor.training.distributed import World, batch_statistics, check_batch_norm

    g = Colorizer(replace(tiny_model_cfg, norm="batch"))
    params, keys = list(g.parameters()), list(g.state_dict())
    assert batch_statistics(World(), g) is g and not any(isinstance(m, torch.nn.SyncBatchNorm) for m in g.modules())
    two_gpus = World(rank=1, size=2, device=torch.device("cuda", 1))
    assert batch_statistics(two_gpus, g) is g
    norms = [m for m in g.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.SyncBatchNorm))]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    assert all(a is b for a, b in zip(g.parameters(), params, strict=True)) and list(g.state_dict()) == keys

    check_batch_norm(two_gpus, "batch")
    check_batch_norm(World(rank=0, size=2), "none")
    check_batch_norm(World(), "batch")
    with pytest.raises(SketchColorError, match="model.norm=batch in 2 CPU processes"):
        check_batch_norm(World(rank=0, size=2), "batch")


def test_a_refusal_the_processes_share_is_printed_once(sample_photos: list[Path], tmp_path: Path) -> None:
    """Every process refuses the same config; rank 0 alone prints it (N copies used to run
    together on one line), and the run fails with the CLI's status."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sketchcolor.cli",
           "train", "--config", str(TINY), "--data", str(sample_photos[0].parent), "--out", str(tmp_path / "run"), "-q",
           "--set", "train.batch_size=3"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          cwd=ROOT)
    assert done.returncode != 0
    assert done.stderr.count("error: train.batch_size 3 is not divisible by the 2 processes") == 1, done.stderr[-3000:]
    assert not (tmp_path / "run").exists()
