"""The machine-stall watchers: real processes, one per CPU; a stall is made by stopping one."""

from __future__ import annotations

import os
import signal
import time

import pytest
from eegmusic.benchmarks import machine_stalls
from eegmusic.benchmarks.machine_stalls import Stall, StallWatch, underruns_in_stalls


def test_a_watcher_held_stopped_reports_a_stall_of_that_length_on_its_cpu():
    with StallWatch() as watch:
        time.sleep(0.2)
        pid = watch.pids[0]
        os.kill(pid, signal.SIGSTOP)               # as a host that stops the virtual CPU would
        time.sleep(0.08)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.1)
    long = [stall for stall in watch.stalls if stall.duration_s >= 0.06]
    assert len(long) >= 1, watch.stalls
    first_cpu = sorted(os.sched_getaffinity(0))[0]
    assert any(stall.cpu == first_cpu and stall.duration_s == pytest.approx(0.08, abs=0.03) for stall in long)
    report = machine_stalls.summary(watch.stalls, 0.4, watch.realtime)
    assert report["count"] >= 1 and report["longest_ms"] >= 60.0


def test_a_terminals_ctrl_c_is_left_to_the_benchmark_and_the_watchers_still_report():
    """Ctrl-C in a terminal signals the whole process group: the watchers died of it without a report,
    and the benchmark's way out raised "a stall watcher exited with status -2" in place of the
    interrupt (bench then called the benchmark failed). They now ignore SIGINT and report on SIGTERM."""
    watch = StallWatch().start()
    for pid in watch.pids:
        os.kill(pid, signal.SIGINT)
    time.sleep(0.2)
    assert all(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in watch.pids)     # still watching
    assert isinstance(watch.stop(), list) and isinstance(watch.realtime, bool)


def test_underruns_count_as_the_machines_inside_a_stall_and_while_catching_up_after_it():
    stalls = [Stall(0, 10.0, 10.05), Stall(1, 20.0, 20.012)]      # the second is under REPORT_S
    catch_up = machine_stalls.CATCH_UP_S
    underruns = [9.99, 10.02, 10.05 + catch_up - 0.01, 10.05 + catch_up + 0.05, 20.005]
    assert underruns_in_stalls(underruns, stalls) == 2
    assert underruns_in_stalls([], stalls) == 0
    assert underruns_in_stalls(underruns, []) == 0
