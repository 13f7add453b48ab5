"""SIGTERM stops every command as Ctrl-C does (``stream.cli.main``): cleanup runs, exit 130.

Python's default SIGTERM ends a process without running any ``finally``: a training run could leave a
40-MB temporary checkpoint beside ``checkpoint.pt``, a benchmark its temporary folder, the demo its
replay child. Per-command cases live beside each command's tests (``test_hostile_cli.py`` simulate,
``tests/benchmarks/test_cli_bench.py``, ``tests/gui/test_demo.py``, ``tests/gui/test_app.py``); this
file checks the rule on ``train``.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.fixtures.processes import wait_until


def test_sigterm_stops_training_as_ctrl_c_keeping_the_last_checkpoint(sim_dir, tmp_path):
    pytest.importorskip("torch")
    from eegmusic.offline_training.models.registry import read_checkpoint

    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "eegmusic", "train", "--data", str(sim_dir), "--arch", "cnn", "--epochs",
         "200", "--out", str(out), "--no-progress", "--target-offset", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until((out / "checkpoint.pt").exists, child, what="first checkpoint", timeout_s=120)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "eegmusic train: interrupted"
    names = sorted(path.name for path in out.iterdir())
    run_files = {"config.json", "checkpoint.pt", "best.pt", "training_curve.png"}
    assert set(names) <= run_files, names  # no temporary checkpoint left beside them
    assert read_checkpoint(out / "checkpoint.pt", model_name="cnn")["epoch"] >= 1  # epochs count from 1



@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_after_the_command_finished_keeps_its_status_without_a_traceback(signum):
    """A Ctrl-C that arrived while a finished ``train`` was exiting raised KeyboardInterrupt in a finalizer
    (a traceback, exit 0), or killed it (-2; SIGTERM always -15), its work complete. Here the command's
    status is decided (3) and the signal comes during the exit: the process ends at once with that
    status, nothing printed. A real process and real signals; the command is a stand-in returning 3."""
    script = (
        "import os, signal, sys, time\n"
        "from eegmusic.stream import cli\n"
        "cli.main = lambda argv=None: 3\n"
        "cli.run()\n"
        f"os.kill(os.getpid(), {int(signum)})\n"
        "time.sleep(10)\n"
        "sys.exit(99)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (3, ""), done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("argv", [["info", "no-such-dataset"], ["-v", "info", "no-such-dataset"],
                                  ["no-such"]], ids=["command", "after an option", "no command"])
def test_a_stop_before_the_command_starts_is_interrupted_not_a_traceback(signum, argv):
    """A stop in the first 0.2 s of any command, while its parser was built, printed a KeyboardInterrupt
    traceback (Ctrl-C) or ended the process silently with status -15 (SIGTERM). Here a real signal
    arrives at that moment (the parser's build sends it to its own process), SIGINT inherited ignored as
    pytest-xdist's workers pass it on (a background job's too); the command ends as a later stop ends
    it, named where the command line names one."""
    script = (
        "import os, sys\n"
        "from eegmusic.stream import cli\n"
        "build = cli.build_parser\n"
        "def interrupted_build():\n"
        f"    os.kill(os.getpid(), {int(signum)})\n"
        "    return build()\n"
        "cli.build_parser = interrupted_build\n"
        f"sys.argv = ['eegmusic', *{argv!r}]\n"
        "sys.exit(cli.run())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    named = " info" if "info" in argv else ""
    assert (done.returncode, done.stderr) == (130, f"eegmusic{named}: interrupted\n"), done.stderr
