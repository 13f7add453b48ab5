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
import contextlib
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
"""Tests with these markers keep real time (sound, Qt timers, LSL)..."""
UNTIMED_MARKER = "untimed"
"""...unless also marked ``untimed``: real streams, windows or sound, but nothing bounded in time (a refusal,
an error line, a signal's clean exit). Those run beside the real-time tests, as the CPU-bound ones do."""

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest_plugins = [
    f"tests.fixtures.{name}"
    for name in ("data", "disk", "pulse")
    if (Path(__file__).parent / "fixtures" / f"{name}.py").exists()
]


def _is_realtime(item) -> bool:
    return (any(item.get_closest_marker(name) for name in REALTIME_MARKERS)
            and item.get_closest_marker(UNTIMED_MARKER) is None)


def _realtime_lock_folder(controller_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"eegmusic-test-realtime-{controller_pid}"


REALTIME_IDS = "realtime-ids.txt"
"""File in the run's lock folder where each xdist worker lists the real-time tests it collected."""


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under xdist, each worker lists the real-time tests it collected, for the controller's scheduler
    (:func:`pytest_xdist_make_scheduler`): the controller sees test ids, never markers. Every worker
    collects the same tests, so each writes the same list, whole (written beside and renamed)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    folder = _realtime_lock_folder(os.getppid())
    folder.mkdir(exist_ok=True)
    part = folder / f"{REALTIME_IDS}.{os.getpid()}"
    part.write_text("".join(f"{item.nodeid}\n" for item in items if _is_realtime(item)))
    os.replace(part, folder / REALTIME_IDS)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist load`` (``make test``) with every real-time test in one work unit, run first.

    Under plain load scheduling the real-time tests came to both workers, and a worker that reached one
    while the other ran one waited for the lock (:func:`pytest_runtest_protocol`) with its core idle:
    in a full run the tests took 1,508 s of worker time (730 s of it real-time) in a 1,079-s suite, and
    the two workers stood idle for about 650 s between them. Here xdist's scope scheduling gets one
    scope, ``realtime``, for all of them (the largest scope, so it is handed out first) and one scope
    per test for the rest: one worker runs the real-time tests one after another from the start while
    the other runs the CPU-bound ones, and both share the rest at the end. Without the workers' list
    every test is its own scope, which is load scheduling again, and the lock still keeps the real-time
    tests one at a time. Unlike load scheduling, a worker that crashes in a real-time test hands the
    rest of the unit back with that test in it, at the end of the queue: the crash repeats in the next
    worker (xdist stops after 8 restarts) and the remaining real-time tests start late.
    """
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class RealtimeInOneWorker(LoadScopeScheduling):
        realtime: set[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.realtime is None:  # first called once every worker has collected
                listed = _realtime_lock_folder(os.getpid()) / REALTIME_IDS
                self.realtime = set(listed.read_text().splitlines()) if listed.is_file() else set()
            return "realtime" if nodeid in self.realtime else nodeid

    return RealtimeInOneWorker(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under xdist, a real-time test runs holding one lock file shared by the workers, so they run one
    at a time, as the design asks; a worker that reaches one while another runs waits for it to end.
    ``make test`` hands them all to one worker (:func:`pytest_xdist_make_scheduler`), so there the lock
    is the guarantee for other schedulings (``--dist loadfile``, ``worksteal``) and waits for nothing.

    They were meant to run one after another in one worker, an xdist group; but pytest 9 builds a
    test's id without the ``_nodeid`` that pytest-xdist 3.8 appends the group name to, so the group
    never took effect and two of them often ran at once. Two at once with three workers was tried: 4
    full runs passed, the fifth lost two real-time tests to the load (a 1-s decode that recorded no
    frame, a dashboard that read 11 snapshots where 20 were asked for).
    """
    if not (os.environ.get("PYTEST_XDIST_WORKER") and _is_realtime(item)):
        return (yield)
    import fcntl

    folder = _realtime_lock_folder(os.getppid())  # the xdist controller: one folder per suite run
    folder.mkdir(exist_ok=True)
    with open(folder / "realtime.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, after the test's teardown
        return (yield)


def pytest_unconfigure(config):
    """The controller of an xdist run removes the workers' lock file once they have all ended."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        import shutil

        shutil.rmtree(_realtime_lock_folder(os.getpid()), ignore_errors=True)


REALTIME_NICE = -5
"""Nice value of a worker while it runs a real-time test (under xdist, as root)."""
CPU_NICE = 10
"""Nice value of a worker while it runs any other test: it takes what the real-time tests leave."""


def pytest_runtest_setup(item):
    """Under xdist, give the workers' real-time tests precedence over the CPU-bound ones.

    The CPU-bound tests train and export models flat out; a replay paced on the LSL clock or a decode
    feeding PulseAudio must not queue behind them for the scheduler, or their timing bounds measure
    the neighbours instead of the code. So a real-time test runs at nice -5 and every other test at
    nice 10: the CPU-bound worker fills the time the real-time tests spend waiting on the clock and
    yields a core the moment one is wanted. Lowering a nice value needs root (as in CI here); elsewhere
    nothing changes. On Linux the nice value is per thread and inherited by the threads
    and processes a thread starts afterwards (replays, decodes, the dashboard's decode process), so
    every thread the worker already has is set too: one started during a real-time test and kept (a
    library's pool) would otherwise work at -5 through the CPU-bound tests that follow.
    """
    realtime = _is_realtime(item)
    if realtime:
        from tests.fixtures.pulse import reroute_if_lost

        if (why := reroute_if_lost()) is not None:
            item.add_report_section("setup", "pulseaudio", why)
    if not os.environ.get("PYTEST_XDIST_WORKER") or os.geteuid() != 0:
        return
    wanted = REALTIME_NICE if realtime else CPU_NICE
    for thread in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
            os.setpriority(os.PRIO_PROCESS, int(thread), wanted)


@pytest.fixture(scope="session", autouse=True)
def _process_sound_sink():
    """Route this process's sound to its own null sink for the whole session (see the pulse fixture)."""
    from tests.fixtures.pulse import route_process_sound

    unload = route_process_sound()
    yield
    if unload is not None:
        unload()


SHORT_COLLISION_WAIT_S = 0.25
"""How long LSL cases in :data:`SHORT_COLLISION_WAIT_FOLDERS` listen for a same-named twin of a stream
after its first answer (the resolver's real ``COLLISION_WAIT_S`` is 1 s)."""
SHORT_COLLISION_WAIT_FOLDERS = ("decoder", "faults", "gui", "replay")
"""Test folders whose LSL cases resolve streams of unique names in this process and are not about name
collisions (``tests/stream`` tests the resolver with its real wait)."""


@pytest.fixture
def real_collision_wait():
    """Ask for the resolver's real ``COLLISION_WAIT_S`` (the name-collision cases)."""


@pytest.fixture(autouse=True)
def _short_collision_wait(request, monkeypatch):
    """LSL cases of :data:`SHORT_COLLISION_WAIT_FOLDERS` listen 0.25 s for a same-named twin, not 1 s.

    A connect opens the stream found while it listens and waits for the listen to end, so the full 1-s
    window timed every in-process connect of these cases (a dashboard's decode, an in-process
    ``calibrate``, a fault case's resolve, a decoder test's ``LivePipeline``); commands in child processes
    keep the real wait. Cases about name collisions ask for ``real_collision_wait``; nothing else in the
    resolver changes.
    """
    if (request.node.get_closest_marker("lsl") is None or "real_collision_wait" in request.fixturenames
            or request.node.path.parent.name not in SHORT_COLLISION_WAIT_FOLDERS):
        return
    from eegmusic.stream import resolve

    monkeypatch.setattr(resolve, "COLLISION_WAIT_S", SHORT_COLLISION_WAIT_S)


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (tiny models train faster, and timings stay comparable)."""
    from tests.fixtures.threads import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator (the same numbers in every run)."""
    return np.random.default_rng(20261121)


@pytest.fixture
def stream_name(request) -> str:
    """A unique LSL stream name (and source_id stem) for this test."""
    return f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cli(capsys):
    """``cli(*argv) -> (status, out, err)``: ``eegmusic argv`` run in this process (any argument is
    str()-ed: paths pass as they are)."""
    from tests.faults.conftest import run_cli

    return lambda *argv: run_cli([str(a) for a in argv], capsys)
