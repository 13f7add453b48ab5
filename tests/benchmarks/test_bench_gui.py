"""``bench_gui --quick``: EEG panel redraw beside full-resolution setData; decode latency with/without it."""

from __future__ import annotations

import pytest

pytest.importorskip("pyqtgraph")

from eegmusic.benchmarks import bench_gui, readme_tables  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402

REDRAW = {"median_ms": NUMBER, "p99_ms": NUMBER, "baseline_median_ms": NUMBER, "ratio": NUMBER}


@pytest.mark.gui
@pytest.mark.slow  # redraws at two rates and three 8-s decode runs: a few minutes on a busy machine
def test_quick_run_times_redraws_and_their_baseline():
    result = check(
        bench_gui.run(quick=True),
        {"eeg_redraw_125hz": REDRAW, "eeg_redraw_1000hz": REDRAW, "decode_latency_gui": dict},
    )
    for key in ("eeg_redraw_125hz", "eeg_redraw_1000hz"):
        assert result[key]["ratio"] == pytest.approx(
            result[key]["baseline_median_ms"] / result[key]["median_ms"], rel=0.02
        )
    assert len(readme_tables.rows_gui(result)) == 3


@pytest.mark.gui
@pytest.mark.lsl
@pytest.mark.slow  # the two redraw timings run first: about 30 s
def test_ctrl_c_with_the_dashboard_open_stops_the_run(tmp_path):
    """Ctrl-C raised its KeyboardInterrupt inside a Qt paint event, where Qt printed and dropped it: the
    run went on, the decode processes (Ctrl-C reached them too) were gone, the decode latency came out
    "skipped", and the run ended "ok", exit 0, over the --out file kept with --overwrite."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from tests.fixtures.processes import ended_within, wait_until

    out = tmp_path / "bench.json"
    out.write_text('{"kept": true}\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "eegmusic", "-q", "bench", "gui", "--quick", "--overwrite", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    decodes = set()

    def dashboard_attached() -> bool:  # the second decode process: the dashboard's event loop runs
        for child in psutil.Process(process.pid).children():
            try:
                if " decode " in " ".join(child.cmdline()):
                    decodes.add(child.pid)
            except psutil.NoSuchProcess:
                pass
        return len(decodes) >= 2

    try:
        wait_until(dashboard_attached, process, what="the attached dashboard's run", timeout_s=150)
        time.sleep(3.0)
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
    assert out.read_text() == '{"kept": true}\n'
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
