"""Machine stalls: times the machine itself ran nothing of ours, set beside the decoder's underruns.

Why
    An underrun (the decoder's ring empty when the device asks) has two kinds of cause: ours (a
    thread too slow or waiting on a lock) and the machine's (a CPU that stops running the process
    at all, as a virtual machine's CPU does while its host runs something else). A real-time
    decoder can only be blamed for the first. On this 2-core virtual machine a process at
    ``SCHED_FIFO`` priority 50 that did nothing but sleep 1 ms at a time was woken up to 71 ms late
    (5 minutes, one such process pinned to each CPU, under load: 60 and 46 wake-ups over 20 ms), and
    97.6 ms late in a 10-minute run; nothing in the guest outranks it but the kernel, so those are
    the machine's stalls. With nothing else running, a minute gave 2-3 stalls of 20 ms or more;
    with two nice-19 spin loops keeping both virtual CPUs busy, none (waking an idle virtual CPU is
    up to the host).

How
    :class:`StallWatch` starts one watcher process per CPU this process may run on, pinned to that
    CPU at ``SCHED_FIFO`` priority :data:`WATCH_PRIORITY`, above every role of
    :data:`decoder.realtime.PRIORITIES` (so a busy decoder thread cannot delay it; it costs the
    decoder a few microseconds per millisecond). Where real-time scheduling is refused it watches at
    normal priority and ``realtime`` says so: its stalls then include ordinary scheduling delays.
    Each watcher sleeps :data:`TICK_S` at a time and notes every wake-up more than
    :data:`RECORD_S` after the previous one, on ``CLOCK_MONOTONIC`` (``time.monotonic`` in every
    process). :func:`underruns_in_stalls` counts the underruns that fell inside a stall or within
    :data:`CATCH_UP_S` after it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

TICK_S = 0.001
"""How long a watcher sleeps each time."""

RECORD_S = 0.010
"""A wake-up this much later than the previous one is noted as a stall."""

REPORT_S = 0.020
"""Stalls at least this long are counted in :func:`summary` (a 1-frame hop is 23 ms)."""

CATCH_UP_S = 0.1
"""After a stall, how long an underrun is still counted as its consequence: the decoder's threads
catch up on the hops that came due meanwhile, about four hops at the default."""

WATCH_PRIORITY = 50
"""``SCHED_FIFO`` priority of the watchers: above the decoder's roles (9-12)."""


@dataclass(frozen=True)
class Stall:
    """A span in which one CPU ran none of the watcher's wake-ups."""

    cpu: int
    start: float
    """``time.monotonic()`` of the wake-up before the stall, seconds."""
    end: float
    """``time.monotonic()`` of the late wake-up, seconds."""

    @property
    def duration_s(self) -> float:
        return self.end - self.start


class StallWatch:
    """Watch every CPU for stalls while a measurement runs (a context manager).

    Attributes
    ----------
    stalls : list of Stall
        Filled by :meth:`stop`.
    realtime : bool
        Whether every watcher ran at ``SCHED_FIFO`` (set by :meth:`stop`).
    """

    def __init__(self) -> None:
        self.stalls: list[Stall] = []
        self.realtime = False
        self._watchers: list[subprocess.Popen] = []

    def start(self) -> StallWatch:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [-1]
        for cpu in cpus:
            self._watchers.append(subprocess.Popen(
                [sys.executable, "-m", "eegmusic.benchmarks.machine_stalls", "--cpu", str(cpu)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        for watcher in self._watchers:          # each prints one line once it watches
            watcher.stdout.readline()
        return self

    @property
    def pids(self) -> list[int]:
        """The running watchers' process ids, in CPU order."""
        return [watcher.pid for watcher in self._watchers]

    def stop(self) -> list[Stall]:
        """Stop the watchers; return (and keep in :attr:`stalls`) what they saw."""
        realtime = []
        for watcher in self._watchers:
            watcher.send_signal(signal.SIGTERM)
        for watcher in self._watchers:
            out, _ = watcher.communicate(timeout=10.0)
            lines = out.strip().splitlines()
            if not lines or not lines[-1].startswith("{"):
                raise RuntimeError(f"a stall watcher exited with status {watcher.returncode} and no report; "
                                   f"run `python -m eegmusic.benchmarks.machine_stalls --cpu 0` to see why")
            report = json.loads(lines[-1])
            realtime.append(report["realtime"])
            self.stalls.extend(Stall(report["cpu"], start, end) for start, end in report["stalls"])
        self._watchers = []
        self.stalls.sort(key=lambda stall: stall.start)
        self.realtime = bool(realtime) and all(realtime)
        return self.stalls

    def __enter__(self) -> StallWatch:
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._watchers:
            self.stop()


def underruns_in_stalls(underrun_times: list[float] | np.ndarray, stalls: list[Stall],
                        min_stall_s: float = REPORT_S) -> int:
    """How many underruns fell inside a stall of at least ``min_stall_s`` or :data:`CATCH_UP_S` after it.

    Parameters
    ----------
    underrun_times : array-like of float
        ``time.monotonic()`` of each underrun.
    stalls : list of Stall
    """
    times = np.asarray(underrun_times, float)
    explained = np.zeros(times.shape, bool)
    for stall in stalls:
        if stall.duration_s >= min_stall_s:
            explained |= (times >= stall.start) & (times <= stall.end + CATCH_UP_S)
    return int(explained.sum())


def summary(stalls: list[Stall], seconds: float, realtime: bool) -> dict:
    """JSON-ready: stalls of at least :data:`REPORT_S` (count, per minute, longest, p50), per CPU too."""
    long = [stall for stall in stalls if stall.duration_s >= REPORT_S]
    durations = np.array([stall.duration_s for stall in long]) * 1e3
    return {
        "over_ms": REPORT_S * 1e3,
        "count": len(long),
        "per_minute": round(60.0 * len(long) / seconds, 2) if seconds > 0 else None,
        "longest_ms": round(float(durations.max()), 1) if long else 0.0,
        "p50_ms": round(float(np.median(durations)), 1) if long else None,
        "per_cpu": {str(cpu): sum(stall.cpu == cpu for stall in long)
                    for cpu in sorted({stall.cpu for stall in stalls})},
        "watchers_realtime": realtime,
    }


def _watch(cpu: int) -> None:
    """A watcher's loop: until SIGTERM, note late wake-ups; then print them as one JSON line."""
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(WATCH_PRIORITY))
        realtime = True
    except (OSError, AttributeError):
        realtime = False
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    # a terminal's Ctrl-C reaches the whole process group: it is for the benchmark, which stops its
    # watchers with SIGTERM on the way out (a watcher killed by it left no report, and the interrupt
    # was reported as a failed benchmark); a watcher whose benchmark died outright stops by itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    stalls = []
    print("watching", flush=True)
    last = time.monotonic()
    ticks = 0
    while not stopping:
        time.sleep(TICK_S)
        now = time.monotonic()
        if now - last > RECORD_S:
            stalls.append((last, now))
        last = now
        ticks += 1
        if ticks % 1000 == 0 and os.getppid() != parent:
            break
    print(json.dumps({"cpu": cpu, "realtime": realtime, "stalls": stalls}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Watch one CPU for stalls until SIGTERM (see StallWatch).")
    parser.add_argument("--cpu", type=int, required=True, help="CPU to pin to (-1: none)")
    _watch(parser.parse_args().cpu)
