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
