"""``make test``'s scheduling (tests/conftest.py): under ``--dist load`` the real-time tests share one worker.

The real-time tests were once meant to run in one worker through an xdist group, and for many rounds
they did not (pytest 9 ignores the id suffix xdist 3.8's groups rely on) while the docs said they did.
This runs a small suite in two workers, as ``make test`` does, and reads which worker ran each test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lsl  # the inner suite runs real-time tests: it takes the real-time lane itself

ROOT = Path(__file__).resolve().parents[1]
REALTIME = [*(f"tests/faults/test_stream_faults.py::test_negative_or_endless_timeouts_never_hang[{t}]"
              for t in ("-1", "nan", "inf")),
            "tests/gui/test_panels.py::test_eeg_panel_highlights_flagged_channels"]
"""Four quick real-time tests of two files and two markers (``lsl``, ``gui``), first in the order given,
so that plain load scheduling would hand them out to both workers."""
OTHERS = [f"tests/offline_training/test_splits.py::test_parts_are_disjoint_and_non_empty[{s}]"
          for s in ("random", "block", "subject", "song")]
"""Four quick tests without a real-time marker."""


def test_load_scheduling_runs_every_real_time_test_in_one_worker():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST"))}  # the inner run is a controller
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "load", "-v", "-p", "no:cacheprovider",
         *REALTIME, *OTHERS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    # "[gw1] [ 50%] PASSED tests/...::test_x[-1]"
    ran = {test: worker for worker, test in re.findall(r"^\[(gw\d+)\] \[\s*\d+%\] PASSED (\S+)",
                                                       result.stdout, flags=re.M)}
    assert set(ran) == set(REALTIME + OTHERS), result.stdout[-3000:]
    workers = {ran[test] for test in REALTIME}
    assert len(workers) == 1, f"real-time tests ran in {sorted(workers)}: {[(t, ran[t]) for t in REALTIME]}"
    # and the other worker was not left idle: it ran tests without a real-time marker
    assert {ran[test] for test in OTHERS} - workers, f"every test ran in {workers}"


def _root_conftest(config):
    """tests/conftest.py as pytest loaded it (importing it again would start a second LSL session)."""
    return next(plugin for plugin in config.pluginmanager.get_plugins()
                if getattr(plugin, "__file__", "").endswith(os.path.join("tests", "conftest.py")))


def _needs_priorities():
    if not os.environ.get("PYTEST_XDIST_WORKER") or os.geteuid() != 0:
        pytest.skip("priorities are set only in xdist workers as root (make test, CI)")


def test_a_real_time_test_runs_at_the_real_time_priority(request):
    _needs_priorities()
    assert os.getpriority(os.PRIO_PROCESS, 0) == _root_conftest(request.config).REALTIME_NICE


@pytest.mark.untimed
def test_an_untimed_test_runs_beside_them_at_the_cpu_bound_priority(request):
    """Marked ``lsl`` (this module) and ``untimed``: it leaves the real-time lane and its priority."""
    conftest = _root_conftest(request.config)
    assert not conftest._is_realtime(request.node)
    _needs_priorities()
    assert os.getpriority(os.PRIO_PROCESS, 0) == conftest.CPU_NICE
