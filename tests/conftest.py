"""Shared test set-up: an isolated LSL session and sound sink per process, unique stream names, a seeded rng.

LSL is configured before anything imports pylsl: discovery stays on this machine
(``ResolveScope = machine``) and a per-run ``SessionID`` keeps concurrent test runs apart. Child
processes (replays in subprocesses) inherit the same configuration through ``LSLAPICFG``.
Each test process (each pytest-xdist worker) also plays into a PulseAudio null sink of its own
(``tests/fixtures/pulse.py``), so workers never hear each other.
Package-specific fixtures live in ``tests/fixtures/`` and are loaded as plugins below.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import uuid
from pathlib import Path

_SESSION = f"eegmusic-test-{uuid.uuid4().hex[:8]}"
_CFG = Path(tempfile.gettempdir()) / f"{_SESSION}.cfg"
_CFG.write_text(f"[lab]\nSessionID = {_SESSION}\n[multicast]\nResolveScope = machine\n")
os.environ["LSLAPICFG"] = str(_CFG)
atexit.register(_CFG.unlink, missing_ok=True)  # each process writes its own; none is left behind
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per worker: the workers share two cores by priority (pytest_runtest_setup)
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

REALTIME_MARKERS = ("audio", "gui", "lsl")
"""Tests with these markers keep real time (sound, Qt timers, LSL): under pytest-xdist they run one
after another in one worker (group ``realtime``), so that no two of them compete for the sound
server or for a core, and their timing bounds mean what they say."""

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest_plugins = [
    f"tests.fixtures.{name}"
    for name in ("data", "pulse")
    if (Path(__file__).parent / "fixtures" / f"{name}.py").exists()
]


def _is_realtime(item) -> bool:
    return any(item.get_closest_marker(name) for name in REALTIME_MARKERS)


def pytest_collection_modifyitems(config, items):
    """Put the real-time tests into one xdist group (effective with ``--dist loadgroup``)."""
    for item in items:
        if _is_realtime(item):
            item.add_marker(pytest.mark.xdist_group("realtime"))


REALTIME_NICE = -5
"""Nice value of a worker while it runs a real-time test (under xdist, as root)."""
CPU_NICE = 10
"""Nice value of a worker while it runs any other test: it takes what the real-time tests leave."""


def pytest_runtest_setup(item):
    """Under xdist, give the worker that runs the real-time tests precedence over the CPU-bound ones.

    The other workers train and export models flat out; a replay paced on the LSL clock or a decode
    feeding PulseAudio must not queue behind them for the scheduler, or their timing bounds measure
    the neighbours instead of the code. So a real-time test runs at nice -5 and every other test at
    nice 10: the CPU-bound workers fill the time the real-time tests spend waiting on the clock (about
    a third of the suite's wall time with two workers) and yield a core the moment one is wanted.
    Lowering a nice value needs root (as in CI here); elsewhere nothing changes, and the Makefile runs
    two workers instead of three. On Linux the nice value is per thread and inherited by the threads
    and processes this one starts afterwards (replays, decodes, the dashboard's decode process).
    """
    if not os.environ.get("PYTEST_XDIST_WORKER") or os.geteuid() != 0:
        return
    wanted = REALTIME_NICE if _is_realtime(item) else CPU_NICE
    if os.getpriority(os.PRIO_PROCESS, 0) != wanted:
        os.setpriority(os.PRIO_PROCESS, 0, wanted)


@pytest.fixture(scope="session", autouse=True)
def _process_sound_sink():
    """Route this process's sound to its own null sink for the whole session (see the pulse fixture)."""
    from tests.fixtures.pulse import route_process_sound

    unload = route_process_sound()
    yield
    if unload is not None:
        unload()


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (tiny models train faster, and timings stay comparable)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator (the same numbers in every run)."""
    return np.random.default_rng(20261121)


@pytest.fixture
def stream_name(request) -> str:
    """A unique LSL stream name (and source_id stem) for this test."""
    return f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
