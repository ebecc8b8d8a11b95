"""Several processes, one run: ``torchrun`` -> a process group, each process its share of a batch.

``sketchcolor train`` started by ``torchrun --nproc_per_node N`` (which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) joins the process group here:
NCCL when the processes train on CUDA devices (process ``LOCAL_RANK`` on ``cuda:LOCAL_RANK``),
gloo on CPUs. Started any other way it is one process, as before. torch.distributed does the
work; this module only chooses the backend and device and wraps the few collectives the loop needs.

``train.batch_size`` is the *global* batch: every process takes ``batch_size / world_size``
examples of it (:func:`shard_sampler`), so a run gives the same batches whatever the number of
processes, and a checkpoint written by N processes resumes in M.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from sketchcolor.device import pick_device
from sketchcolor.errors import SaidElsewhere, SketchColorError
from sketchcolor.losses.triplet import BatchShard

log = logging.getLogger(__name__)

# A process that waits longer than this for the others (e.g. while rank 0 validates or writes a
# checkpoint) fails instead of hanging for ever.
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes; ``device`` it trains on; ``owned``
    when this module started the process group (and so ends it)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owned: bool = False

    @property
    def main(self) -> bool:
        """Rank 0 alone writes logs, pictures and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SketchColorError(f"environment variable {name}={raw[:20]!r} is not an integer") from None


def local_processes() -> int:
    """How many training processes share this machine (torchrun's ``LOCAL_WORLD_SIZE``; 1 alone)."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1))


def join(device_name: str) -> World:
    """The process group torchrun asked for (or the one already set up), else one process.

    ``device_name`` is ``train.device``: ``auto`` and ``cuda`` put process ``LOCAL_RANK`` on
    ``cuda:LOCAL_RANK`` (NCCL), ``cpu`` keeps every process on the CPU (gloo)."""
    size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return World(device=pick_device(device_name))
    if not dist.is_available():
        raise SketchColorError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = _env_int("LOCAL_RANK", 0)
    base = pick_device(device_name)
    if base.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SketchColorError(f"LOCAL_RANK {local_rank}: this machine has {torch.cuda.device_count()} CUDA "
                                   f"device(s); start at most that many processes per node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif base.type == "cpu":
        device, backend = base, "gloo"
    else:
        raise SketchColorError(f"train.device {device_name!r}: several processes train on cpu or cuda, not {base.type}")
    owned = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
        owned = True
    world = World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank, device=device, owned=owned)
    log.info("rank %d of %d on %s (%s)", world.rank, world.size, device, dist.get_backend())
    return world


# Set by :func:`leave` once it has ended a process group this process started (see :func:`end_process`).
_ENDED_GROUP = False


def leave(world: World) -> None:
    """End the process group if :func:`join` started it."""
    global _ENDED_GROUP
    if world.owned and dist.is_initialized():
        dist.destroy_process_group()
        _ENDED_GROUP = True


def end_process(code: int) -> None:
    """In a process that took part in a process group (a torchrun worker), exit now with ``code``,
    skipping the interpreter's teardown; elsewhere return.

    Why: about one gloo worker in a hundred aborted *after* its work was done ("terminate called
    without an active exception", SIGABRT, while no Python code ran any more: faulthandler showed
    the main thread with no Python frame), and torchrun then failed the whole run. A C++ thread
    of the distributed backend is torn down during the interpreter's finalization; the group was
    already destroyed and every file written and closed (checkpoints, TensorBoard events), so
    nothing is left to do but flush the streams, which this does before ``os._exit``."""
    if not _ENDED_GROUP:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)


def _flag_tensor(world: World, value: float) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float64, device=world.device)


def all_true(world: World, flag: bool) -> bool:
    """True when ``flag`` is True on every process (a collective: every process must call it)."""
    if not world.distributed:
        return flag
    t = _flag_tensor(world, 1.0 if flag else 0.0)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def any_of(world: World, flags: torch.Tensor) -> torch.Tensor:
    """Bool ``flags`` or-ed elementwise over the processes, on the CPU (a collective)."""
    if not world.distributed:
        return flags
    t = flags.to(world.device, torch.uint8)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.bool().cpu()


def check_all_ready(world: World, error: BaseException | None) -> None:
    """After the set-up each process did alone: re-raise this process's ``error``, or raise one
    line when another process failed, so that no process waits for ever for one that gave up.
    An error rank 0 reports too, and a non-zero rank's note that another one failed, come as
    :class:`~sketchcolor.errors.SaidElsewhere` (the CLI exits without printing them): N processes
    refusing the same config print one line, not N run together."""
    said: list[object] = [None if error is None else str(error)] * world.size  # each process's error
    if world.distributed:
        dist.all_gather_object(said, said[world.rank])
    if error is not None:
        if not world.main and said[0] == str(error):
            raise SaidElsewhere(str(error)) from error
        raise error
    failed = [r for r, m in enumerate(said) if m is not None]
    if failed:
        note = f"rank {world.rank}: another process of the run (rank {failed[0]}) failed to start (see its error)"
        raise SketchColorError(note) if world.main else SaidElsewhere(note)


def total(world: World, value: int) -> int:
    """The sum of ``value`` over the processes."""
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=world.device)
    dist.all_reduce(t)
    return int(t.item())


def mean_metrics(world: World, metrics: dict[str, float]) -> dict[str, float]:
    """Each scalar averaged over the processes (the keys are the same on every process)."""
    if not world.distributed or not metrics:
        return metrics
    keys = sorted(metrics)
    t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / world.size).tolist()))


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def local_batch(world: World, global_batch: int) -> int:
    """Examples per process: the global ``train.batch_size`` split evenly."""
    if global_batch % world.size:
        raise SketchColorError(f"train.batch_size {global_batch} is not divisible by the {world.size} processes; "
                               f"choose a batch size that is a multiple of the number of processes")
    return global_batch // world.size


def batch_statistics(world: World, module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with its batch norms (``model.norm=batch``) sharing their statistics over the
    processes (torch's SyncBatchNorm, in place: the same parameters and buffers, the same
    state_dict keys), so that N processes normalise over the global batch as one process does;
    each process would otherwise normalise over its own share, and their running statistics
    (and the EMA's) would drift apart. SyncBatchNorm runs on GPUs only: a CPU run with batch
    norms and several processes is refused at the start (:func:`check_batch_norm`)."""
    if not world.distributed:
        return module
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)


def check_batch_norm(world: World, norm: str) -> None:
    """One error when ``model.norm=batch`` would train in several CPU processes (see
    :func:`batch_statistics`)."""
    if world.distributed and norm == "batch" and world.device.type == "cpu":
        raise SketchColorError(
            f"model.norm=batch in {world.size} CPU processes: each would normalise over its own share of the batch "
            "(torch's SyncBatchNorm, which shares the statistics, runs on GPUs only); train it in one process or "
            "on GPUs, or use model.norm=none")


def shard_sampler(world: World, dataset: torch.utils.data.Dataset) -> DistributedSampler | None:
    """Rank ``r`` takes examples ``r, r + N, r + 2N, ...`` of the stream (torch's
    DistributedSampler, in order): with a local batch of ``B / N`` its k-th batch is its share of
    the k-th global batch, rows ``r, r + N, ...`` of it (:func:`batch_shard`)."""
    if not world.distributed:
        return None
    return DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=False, drop_last=False)


def batch_shard(world: World, global_batch: int, correspondence: torch.Tensor) -> BatchShard | None:
    """Which rows of the global batch this process holds and how many valid correspondences the
    whole global batch has (a collective), for the triplet loss; None in one process."""
    if not world.distributed:
        return None
    rows = torch.arange(world.rank, global_batch, world.size)
    return BatchShard(rows=rows, size=global_batch, valid=total(world, int((correspondence >= 0).sum())))


def describe_devices(world: World) -> tuple[list[str], int]:
    """(the device of every process in rank order, the number of machines) for config.json; a
    collective. Host names are compared, not recorded."""
    here = str(world.device)
    if world.device.type == "cuda":
        here += f" ({torch.cuda.get_device_name(world.device)})"
    else:
        here += f" ({platform.machine()}, {torch.get_num_threads()} threads)"
    if not world.distributed:
        return [here], 1
    found: list[object] = [None] * world.size
    dist.all_gather_object(found, (socket.gethostname(), here))
    return [str(d) for _, d in found], len({h for h, _ in found})  # type: ignore[misc]


@torch.no_grad()
def _fingerprint(modules: list[torch.nn.Module], device: torch.device) -> torch.Tensor:
    """Three float64 numbers per tensor (sum, sum of squares, a position-weighted sum) of every
    parameter and buffer, on ``device`` whatever device each tensor is on: equal weights give
    equal prints, and a change anywhere shows."""
    rows = []
    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            x = t.detach().to(device, torch.float64).flatten()
            w = torch.arange(x.numel(), device=x.device, dtype=torch.float64).remainder_(7.0)
            rows.append(torch.stack([x.sum(), (x * x).sum(), (x * w).sum()]))
    return torch.stack(rows) if rows else torch.zeros(0, 3, dtype=torch.float64, device=device)


def divergence(world: World, modules: list[torch.nn.Module]) -> float:
    """Largest difference between any process's weight fingerprint and rank 0's (0.0 when every
    process holds the same weights, as DDP should keep them; a collective)."""
    if not world.distributed:
        return 0.0
    mine = _fingerprint(modules, world.device)
    prints = [torch.empty_like(mine) for _ in range(world.size)]
    dist.all_gather(prints, mine)
    return max(float((p - prints[0]).abs().max()) if p.numel() else 0.0 for p in prints)
