"""The progress helper: a tqdm bar on a terminal, whole lines every few seconds in a log."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest
from eegmusic.stream import progress
from eegmusic.stream.progress import LineProgress, progress_bar


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_gives_lines_not_a_bar():
    assert isinstance(progress_bar(range(3), stream=io.StringIO()), LineProgress)


def test_a_terminal_gives_tqdm():
    from tqdm import tqdm

    bar = progress_bar(range(3), stream=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()


def test_quiet_is_one_commands_not_the_processes(tmp_path):
    """``main(["-q", …])`` left every later bar of the process off: a test that ran it in a worker made
    ``test_a_terminal_gives_tqdm`` fail there."""
    from eegmusic.stream.cli import main

    assert main(["-q", "simulate", "--out", str(tmp_path / "sim"), "--n-songs", "1", "--n-subjects", "1",
                 "--duration", "2"]) == 0
    bar = progress_bar(range(3), stream=Terminal())
    assert not bar.disable
    bar.close()
    progress.set_enabled(False)   # a script that turned them off keeps them off
    try:
        assert main(["-q", "simulate", "--out", str(tmp_path / "again"), "--n-songs", "1", "--n-subjects",
                     "1", "--duration", "2"]) == 0
        assert progress_bar(range(3), stream=Terminal()).disable
    finally:
        progress.set_enabled(True)


def test_quiet_disables_every_bar():
    progress.set_enabled(False)
    try:
        bar = progress_bar(range(3), stream=Terminal())
        assert isinstance(bar, LineProgress) and bar.disable
    finally:
        progress.set_enabled(True)


def test_one_line_per_interval_and_one_at_the_end(caplog):
    clock = FakeClock()
    bar = LineProgress(total=100, desc="simulate", unit="recording", interval_s=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="eegmusic.stream.progress"):
        for _ in range(100):  # 100 steps over 20 s: a line at 5, 10 and 15 s, then the last one
            clock.now += 0.2
            bar.update(1)
        bar.set_postfix(loss="1.25")
        bar.close()
        bar.close()  # idempotent
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines   # the 100 % line once: it was said at 20 s and again as "(done)"
    assert lines[0].startswith("simulate: 25/100 recording (25 %), 5 recording/s, 5 s, 15 s left")
    assert lines[-1] == "simulate: 100/100 recording (100 %), 5 recording/s, 20 s, loss=1.25 (done)"
    assert sum("(100 %)" in line for line in lines) == 1
    assert all("\r" not in line for line in lines)


def test_iterating_counts_and_closes(caplog):
    with caplog.at_level(logging.INFO, logger="eegmusic.stream.progress"):
        items = list(LineProgress(iter("abc"), desc="x", unit="ch"))
    assert items == ["a", "b", "c"]
    assert [r.getMessage() for r in caplog.records][-1].startswith("x: 3 ch, ")


def test_work_that_fails_ends_without_a_done_line(caplog):
    """A "(done)" line came before train's one-line error about a stimulus it could not read."""
    def failing():
        yield 1
        raise ValueError("unreadable")

    with caplog.at_level(logging.INFO, logger="eegmusic.stream.progress"):
        with pytest.raises(ValueError):
            list(LineProgress(failing(), desc="target offset", interval_s=60.0))
        with pytest.raises(ValueError), LineProgress(total=3, desc="simulate", interval_s=60.0) as bar:
            bar.update(1)
            raise ValueError("disk full")
        with pytest.raises(ValueError):  # the error in the caller's loop body: target_lag's case
            for _ in LineProgress(range(7), desc="target offset", interval_s=60.0):
                raise ValueError("unreadable stimulus")
        for _ in LineProgress(range(5), desc="stopped early", interval_s=60.0):
            break  # short of its total too: indistinguishable from the error above, so no line either
        for _ in LineProgress(iter(range(5)), desc="no total", interval_s=60.0):
            break
        with LineProgress(total=1, desc="finished", interval_s=60.0) as bar:
            bar.update(1)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["no total", "finished"]


def test_disabled_logs_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="eegmusic.stream.progress"):
        for _ in LineProgress(range(5), disable=True, interval_s=0.0):
            pass
    assert caplog.records == []


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_in_a_log_file_writes_no_carriage_returns(tmp_path, quiet):
    """`eegmusic simulate` with stderr redirected to a file: whole lines, no tqdm redraws; -q: none."""
    argv = [sys.executable, "-m", "eegmusic", "simulate", "--out", str(tmp_path / "sim"), "--n-songs", "1",
            "--n-subjects", "2", "--duration", "3"]
    if quiet:
        argv.append("-q")  # after the command: -v/-q go anywhere
    with open(tmp_path / "log.txt", "w") as log:
        subprocess.run(argv, stderr=log, stdout=subprocess.DEVNULL, check=True, timeout=120)
    text = (tmp_path / "log.txt").read_text()
    assert "\r" not in text
    lines = [line for line in text.splitlines() if "simulate: " in line]
    if quiet:
        assert lines == []
    else:
        assert lines and lines[-1].endswith("(done)") and "2/2 recording" in lines[-1]
