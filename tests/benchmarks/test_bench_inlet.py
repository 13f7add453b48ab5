"""``bench_inlet --quick``: our inlet and source beside mne-lsl's StreamLSL, all three measured."""

from __future__ import annotations

import pytest

pytest.importorskip("mne_lsl")

from eegmusic.benchmarks import bench_inlet, readme_tables  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402

READER = {"cpu_s_per_data_s": NUMBER, "completeness": NUMBER, "latency": {"p50_ms": NUMBER, "p99_ms": NUMBER,
                                                                           "n": int}}


@pytest.mark.lsl
def test_quick_run_measures_both_inlets_at_the_same_point():
    result = check(bench_inlet.run(quick=True, seconds=1.5), {   # --quick measures 3 s per reader
        "stream": {"channels": int, "rate_hz": NUMBER, "chunk_samples": int, "seconds": NUMBER},
        "ours_inlet": READER, "ours_source": READER, "mne_lsl": READER,
        "ratio_cpu_ours_over_mne": NUMBER, "ratio_cpu_source_over_mne": NUMBER,
        "ratio_latency_p50_ours_over_mne": NUMBER, "ratio_latency_p99_ours_over_mne": NUMBER,
        "goals": {"ratio_cpu_ours_over_mne_le_0.5": bool, "window_p99_le_2ms": bool},
    })
    assert {"cpu_ratio", "source_cpu_ratio", "latency_p50_ratio", "latency_p99_ratio"}.isdisjoint(result)
    assert result["stream"]["seconds"] == 1.5
    assert "mne_lsl_poll" not in result  # no consumer-side polling baseline any more
    for reader in ("ours_inlet", "mne_lsl"):  # both timed per chunk in their acquisition callback
        assert result[reader]["latency"]["n"] > 50 and result[reader]["completeness"] > 0.99
    # push of the window's newest stream sample -> window queued: the resampler's 80 ms is not in it (the
    # window's t_last is the time of the EEG it holds, 80 ms before that sample)
    assert result["ours_source"]["latency"]["p50_ms"] < 40, result["ours_source"]
    assert result["ratio_cpu_ours_over_mne"] == pytest.approx(
        result["ours_inlet"]["cpu_s_per_data_s"] / result["mne_lsl"]["cpu_s_per_data_s"], abs=1e-3)
    rows = readme_tables.rows_inlet(result)
    assert len(rows) == 3 and "mne-lsl" in rows[1][2]


@pytest.mark.lsl
def test_ctrl_c_stops_the_run_in_one_line_and_leaves_no_process(tmp_path):
    """Ctrl-C reached the outlet and reader processes too: each printed its own KeyboardInterrupt
    traceback (30 lines) above the one line saying the run was interrupted."""
    import psutil

    from tests.benchmarks.interrupted import interrupt_bench

    # the outlet, the resource tracker and a reader: Ctrl-C then reaches them all, as from a terminal
    err = interrupt_bench("inlet", tmp_path / "bench.json",
                          lambda pid: len(psutil.Process(pid).children()) >= 3, what="a reader process",
                          timeout_s=60)
    assert "Traceback" not in err, err


def test_a_ctrl_c_inside_the_start_block_arrives_when_it_ends_though_other_threads_run():
    """The block blocked Ctrl-C in this thread only: the kernel gave it to another thread, and Python raised
    KeyboardInterrupt inside the block all the same (once mid-``start()``: the child's EOFError traceback)."""
    import os
    import signal
    import threading
    import time

    from eegmusic.benchmarks.bench_inlet import _ctrl_c_blocked

    idle = threading.Thread(target=time.sleep, args=(2.0,), daemon=True)   # a thread that takes signals
    idle.start()
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    reached = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with _ctrl_c_blocked():
                os.kill(os.getpid(), signal.SIGINT)   # to the process, as a terminal's Ctrl-C comes
                for _ in range(20):
                    time.sleep(0.01)                  # Python runs: a pending handler would run here
                reached.append(True)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert reached     # the whole block ran; the Ctrl-C came after it
