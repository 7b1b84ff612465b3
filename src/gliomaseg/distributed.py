"""Data-parallel training and sharded evaluation on ``torch.distributed``, launched by ``torchrun``.

Each process (rank) holds a replica of the network wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`, draws its own batches (its own random
generator) and averages gradients with the others after every step, so ``N`` ranks with a batch
of ``B / N`` each train like one process with a batch of ``B``. Decisions that must agree
(stop for the time budget, validation score, scheduler, early stopping) are taken once and
shared; files are written by rank 0 only. The backend is NCCL on CUDA devices, gloo otherwise.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` in each
process's environment (https://pytorch.org/docs/stable/elastic/run.html); without them the run
is one process and every function here is a no-op.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import GliomasegError
from .runtime import available_cores, resolve_device


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place in the run: global ``rank`` of ``world`` processes, ``local_rank``
    of ``local_world`` on this node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_environment(cls) -> "Ranks":
        """Read the variables ``torchrun`` sets; one process when they are absent."""
        env = os.environ
        world = int(env.get("WORLD_SIZE", 1))
        return cls(int(env.get("RANK", 0)), world, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", world)))

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def threads(self, configured: int) -> int:
        """Intra-op threads of this rank: ``configured``, or (0) this node's cores shared by its
        ranks, at least 1, so ranks do not oversubscribe the cores."""
        return configured or max(1, available_cores() // self.local_world)

    def seed(self, seed: int) -> int:
        """Seed of this rank's sample generator: ``seed`` on rank 0 (the same draws as one
        process), distinct for every other rank."""
        return seed + self.rank * 2**32

    def device(self, name: str) -> torch.device:
        """The configured device (see :func:`gliomaseg.runtime.resolve_device`); under several
        ranks, ``cuda``/``auto`` on a CUDA machine means this rank's GPU ``cuda:<local_rank>``.

        Raises:
            ConfigError: the device is not available.
        """
        device = resolve_device(name)
        if self.distributed and device.type == "cuda" and name in ("cuda", "auto"):
            device = resolve_device(f"cuda:{self.local_rank}")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def device_name(self, name: str | None) -> str | None:
        """``--device`` of an inference command: ``name`` in one process; under several ranks,
        this rank's device (:meth:`device`; CPU when ``None``), with the process group joined."""
        if not self.distributed:
            return name
        device = self.device(name or "cpu")
        self.start(device)
        return str(device)

    def start(self, device: torch.device) -> None:
        """Join the process group (NCCL on CUDA, else gloo) if several ranks and not yet joined."""
        if self.distributed and not dist.is_initialized():
            # the other ranks wait while rank 0 validates: allow that longer than the default 30 min
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=2))

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` as trained: wrapped in DistributedDataParallel under several ranks. Batch
        norms become SyncBatchNorm on CUDA (its kernels are CUDA-only; on the CPU each rank
        normalises its own batch). ``model`` itself must already be converted (see
        :meth:`sync_batchnorm`), as the optimizer holds its parameters."""
        if not self.distributed:
            return model
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def sync_batchnorm(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` with SyncBatchNorm in place of batch norms under several CUDA ranks (same
        state-dict keys, so weights load into either), else ``model``."""
        if self.distributed and device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable) on every rank."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, by rank, on every rank."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` holds on any rank (an all-reduce: every rank must call it)."""
        if not self.distributed:
            return flag
        tensor = torch.tensor([int(flag)], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def stop(self) -> None:
        """Leave the process group once every rank is done (rank 0 may still be writing)."""
        if self.distributed and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def processes(devices: int) -> Ranks | None:
    """This process's ranks for a command given ``--devices devices``; ``None`` once the
    command has run in ``devices`` processes launched from here (see :func:`launch`)."""
    if devices > 1 and "LOCAL_RANK" not in os.environ:  # not yet under a launcher: become one
        launch(devices, sys.argv[1:])
        return None
    return Ranks.from_environment()


def launch(devices: int, argv: list[str]) -> None:
    """Run ``gliomaseg <argv>`` in ``devices`` processes on this machine through
    ``torch.distributed.run`` (``torchrun --standalone --nproc-per-node devices``); each process
    sees the ``torchrun`` environment. Several nodes: call ``torchrun`` yourself (README).

    Raises:
        GliomasegError: a process failed (its own error line is printed above).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    try:
        main(["--standalone", f"--nproc-per-node={devices}", "-m", "gliomaseg", *argv])
    except ChildFailedError as exc:
        failed = ", ".join(f"rank {rank}" for rank in sorted(exc.failures))
        raise GliomasegError(f"the command failed on {failed} (see its error above)") from None
