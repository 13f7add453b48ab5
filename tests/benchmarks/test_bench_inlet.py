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
    import os
    import signal
    import subprocess
    import sys

    import psutil

    from tests.fixtures.processes import ended_within, wait_until

    out = tmp_path / "bench.json"
    out.write_text('{"kept": true}\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "eegmusic", "-q", "bench", "inlet", "--quick", "--overwrite",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        parent = psutil.Process(process.pid)
        # the outlet, the resource tracker and a reader: Ctrl-C then reaches them all, as from a terminal
        wait_until(lambda: len(parent.children()) >= 3, process, what="a reader process", timeout_s=60)
        children = parent.children(recursive=True)
        os.killpg(process.pid, signal.SIGINT)
        assert ended_within(process, 30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    err = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "eegmusic bench: interrupted", err
    assert out.read_text() == '{"kept": true}\n'
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive


def test_the_inlet_rows_read_the_ratios_named_ours_over_mne():
    def reader(cpu, p50, p99):
        return {"cpu_s_per_data_s": cpu, "latency": {"p50_ms": p50, "p99_ms": p99}}
    result = {"stream": {"channels": 128, "rate_hz": 1000.0},
              "ours_inlet": reader(0.02, 0.5, 1.0), "ours_source": reader(0.03, 1.0, 1.5),
              "mne_lsl": reader(0.1, 0.9, 2.0), "ratio_cpu_ours_over_mne": 0.2,
              "ratio_latency_p50_ours_over_mne": 0.556,
              "goals": {"ratio_cpu_ours_over_mne_le_0.5": True, "window_p99_le_2ms": False}}
    cpu, latency, window = readme_tables.rows_inlet(result)
    assert cpu[3] == "0.2×" and cpu[4] == "≤ 0.5× — met"
    assert latency[3] == "0.556× at p50"
    assert window[4] == "≤ 2 ms p99 — **not met**"
