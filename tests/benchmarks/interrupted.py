"""A benchmark run stopped by Ctrl-C as a terminal sends it (to its whole process group)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.processes import ended_within, wait_until

KEPT = '{"kept": true}\n'
"""What the ``--out`` file held before the run: an interrupted run must leave it as it was."""


def interrupt_bench(name: str, out: Path, ready: Callable[[int], bool], *, what: str, timeout_s: float,
                    settle_s: float = 0.0) -> str:
    """Run ``eegmusic bench NAME --quick --overwrite --out OUT`` over a kept file, press Ctrl-C once
    ``ready(pid)`` holds (and ``settle_s`` more), and check the run ended as an interrupted one: exit 130,
    its last line saying so, the file kept, every child process gone. Returns its standard error."""
    import time

    import psutil

    out.write_text(KEPT)
    process = subprocess.Popen(
        [sys.executable, "-m", "eegmusic", "-q", "bench", name, "--quick", "--overwrite", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: ready(process.pid), process, what=what, timeout_s=timeout_s)
        time.sleep(settle_s)
        children = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGINT)
        assert ended_within(process, 30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    err = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "eegmusic bench: interrupted", err
    assert out.read_text() == KEPT
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
    return err
