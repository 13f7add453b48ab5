"""Processes and devices of a training run: torchrun's process group, sums over processes, the device.

A run started by ``torchrun --nproc_per_node N`` has ``WORLD_SIZE`` > 1 in its environment: each process
joins the group (gloo on the CPU, NCCL on GPUs) and :func:`all_sum` adds its partial sums to the others'.
A plain ``eegmusic train`` is one process and every helper here is then a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
from eegmusic.stream.errors import ConfigError, detail


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
    rank = torchrun_count("RANK", 0)   # set with it, and a count
    if rank >= world:   # torch waited for a process numbered past the run's end
        raise ConfigError(f"RANK={rank} is not below WORLD_SIZE={world}; torchrun numbers the processes "
                          "0 to WORLD_SIZE-1 (torchrun --nproc_per_node N -m eegmusic train ...), or unset "
                          "WORLD_SIZE")
    import torch.distributed as dist

    if not dist.is_initialized():
        _join_group("nccl" if device_kind == "cuda" else "gloo", world, rank)
    return DistInfo(
        rank=dist.get_rank(), world=dist.get_world_size(), local_rank=torchrun_count("LOCAL_RANK", 0)
    )


GROUP_WAIT_SAY_S = 10.0
"""After this long waiting for the run's other processes, one line says what the process waits for."""


def _join_group(backend: str, world: int, rank: int) -> None:
    """``torch.distributed.init_process_group`` in a helper thread, the main thread free for signals.

    A process waits there until every other process of the run has joined: seconds under torchrun, but
    with torchrun's variables set by hand (``WORLD_SIZE=2 RANK=0 MASTER_ADDR=... MASTER_PORT=...``) and
    no other process, 30 minutes (torch's default timeout), in C++ code, where Python runs no signal
    handler: Ctrl-C and SIGTERM did nothing and only SIGKILL ended it, without a word. Here the main
    thread waits on the helper in short joins, so a stop ends the command as anywhere else
    (``eegmusic: interrupted``); the helper is a daemon thread, left in torch's wait as the process ends.
    After :data:`GROUP_WAIT_SAY_S` a warning names what it waits for. What torch's env:// rendezvous
    refuses (no ``MASTER_ADDR``, a ``MASTER_PORT`` in use, a wait past its timeout) is one line.

    Raises
    ------
    ConfigError
        A missing ``MASTER_ADDR``/``MASTER_PORT``, an address torch cannot use, or the other processes
        not joining within torch's timeout.
    """
    import threading

    import torch.distributed as dist

    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name, "").strip():
            raise ConfigError(f"WORLD_SIZE={world} is set without {name}; torchrun sets it (torchrun "
                              "--nproc_per_node N -m eegmusic train ...), or unset WORLD_SIZE")
    port = os.environ["MASTER_PORT"].strip()
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):  # "abc": torch's ValueError
        raise ConfigError(f"MASTER_PORT={os.environ['MASTER_PORT'][:40]!r} is no TCP port (1-65535); "
                          "torchrun sets it, or unset WORLD_SIZE")
    failure: list[BaseException] = []
    given_up = threading.Event()

    def join() -> None:
        try:
            dist.init_process_group(backend=backend)
        except BaseException as error:  # noqa: BLE001 (handed to the main thread, which raises it)
            failure.append(error)
            return
        if given_up.is_set():   # joined as the main thread stopped: a process that exits in the group
            with contextlib.suppress(Exception):   # aborts (leave_distributed says why)
                dist.destroy_process_group()

    helper = threading.Thread(target=join, name="eegmusic-join-group", daemon=True)
    helper.start()
    said = False
    started = time.monotonic()
    try:
        while helper.is_alive():
            helper.join(0.2)
            if not said and helper.is_alive() and time.monotonic() - started >= GROUP_WAIT_SAY_S:
                address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
                # under torchrun the others were started with this one: one is slow, or failed
                fix = ("another may be slow to start or may have failed (see torchrun's output)"
                       if os.environ.get("TORCHELASTIC_RUN_ID") else "start them with torchrun")
                logging.getLogger(__name__).warning(
                    "process %d of %d is waiting for the run's other processes at %s (WORLD_SIZE=%d); %s, "
                    "or stop this one with Ctrl-C", rank, world, address, world, fix)
                said = True
    except BaseException:
        given_up.set()
        raise
    if failure:
        error = failure[0]
        if isinstance(error, ValueError | dist.DistError):
            raise ConfigError(f"process {rank} of {world} could not join the run's other processes "
                              f"({detail(error, 300)}); start the run with torchrun --nproc_per_node N -m "
                              "eegmusic train ..., or unset WORLD_SIZE") from error
        raise error


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
