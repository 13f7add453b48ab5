"""Processes and devices of a training run: torchrun's process group, sums over processes, the device.

A run started by ``torchrun --nproc_per_node N`` has ``WORLD_SIZE`` > 1 in its environment: each process
joins the group (gloo on the CPU, NCCL on GPUs) and :func:`all_sum` adds its partial sums to the others'.
A plain ``eegmusic train`` is one process and every helper here is then a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from eegmusic.stream.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run.

    Attributes
    ----------
    rank : int
        Global process index (0 writes files and reports).
    world : int
        Number of processes.
    local_rank : int
        Process index on this machine (its GPU index).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True for the process that writes the run folder."""
        return self.rank == 0


def torchrun_count(name: str, default: int) -> int:
    """torchrun's variable ``name`` (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) as a whole number ≥ 0, or
    ``default`` when unset.

    Raises
    ------
    ConfigError
        A value that is no count ("abc" was a ValueError traceback), or ``WORLD_SIZE`` above 1 without a
        ``RANK`` (torch's own traceback), both set by hand: torchrun sets them together.
    """
    value = os.environ.get(name)
    if value is None:
        if name == "RANK" and torchrun_count("WORLD_SIZE", 1) > 1:
            raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set without RANK; torchrun sets "
                              "both (torchrun --nproc_per_node N -m eegmusic train ...), or unset WORLD_SIZE")
        return default
    if not (value.strip().isascii() and value.strip().isdigit()):
        raise ConfigError(f"{name}={value[:40]!r} is no process count; torchrun sets it (torchrun "
                          f"--nproc_per_node N -m eegmusic train ...), or unset {name}")
    return int(value)


def launched_as_main() -> bool:
    """Whether this process writes the run folder, known before the group is joined: torchrun's
    ``RANK`` is 0 for one process, and a plain run has none (the :attr:`DistInfo.main` to come)."""
    return torchrun_count("RANK", 0) == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group started by torchrun (``WORLD_SIZE`` > 1), else describe a single process.

    Parameters
    ----------
    device_kind : {"cpu", "cuda"}
        Picks the backend: NCCL for CUDA, gloo for the CPU.
    """
    world = torchrun_count("WORLD_SIZE", 1)
    if world <= 1:
        return DistInfo()
    torchrun_count("RANK", 0)   # set with it, and a count
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(
        rank=dist.get_rank(), world=dist.get_world_size(), local_rank=torchrun_count("LOCAL_RANK", 0)
    )


def all_sum(values: np.ndarray, dist_info: DistInfo, device) -> np.ndarray:
    """Sum a float64 vector over processes (the vector itself in a single process).

    Parameters
    ----------
    values : ndarray, shape (n,)
    dist_info : DistInfo
    device : torch.device or str
        Where the collective runs (the run's device: NCCL needs CUDA tensors).
    """
    if dist_info.world == 1:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def from_main(value, dist_info: DistInfo):
    """Rank 0's ``value`` in every process (``value`` itself in a single process).

    A choice made from scores must be the same in every process, or one process takes a branch whose
    collectives the others never join and waits forever: the scores can differ in their last digits
    between processes (BatchNorm running statistics are not synchronised by DDP), so rank 0 chooses.
    ``value`` is any picklable object.
    """
    if dist_info.world == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def leave_distributed(dist_info: DistInfo) -> None:
    """Wait for every process, then leave the process group (no-op in a single process).

    Call it once a process's last collective is done. A process that exits still in the group tears
    gloo down from the interpreter's exit while the group's threads run, and aborts ("terminate called
    without an active exception", SIGABRT): torchrun then reports the run failed and stops the other
    processes, even though the work was done (seen in about one 2-process run in ten here).
    """
    if dist_info.world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def resolve_device(kind: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; refuse ``cuda`` without one.

    Raises
    ------
    ConfigError
        ``cuda`` asked on a machine where torch sees no CUDA GPU.
    """
    import torch

    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked but no CUDA GPU is visible to torch; use --device cpu or auto")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    return kind
