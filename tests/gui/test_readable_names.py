"""The dashboard reads in words, not code identifiers, and its r history fills its plot from the start.

The latency table's rows read ``audio_to_eeg`` … ``arrival_to_buffered`` and the counters ``bad_markers``,
``device_underflows``: the keys of ``decode --json``, which the tooltips now name. The r history spanned
60 s from the first second, its line a sliver at the right of an empty axis for a run's first minute.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.untimed]   # widgets alone: nothing kept in real time

IDENTIFIER = re.compile(r"[a-z]+_[a-z_]+")
"""A code identifier with an underscore, as ``audio_to_eeg`` or ``bad_markers``."""


def _stats_panel(qtbot, counters: dict):
    from eegmusic.decoder.latency import STAGES
    from eegmusic.gui.stats_panel import StatsPanel

    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.update_stats({stage: {"p50": 1.0, "p95": 2.0, "p99": 3.0} for stage in STAGES}, counters, None)
    return panel


def _counter_rows(panel) -> list[tuple[str, str]]:
    """(shown name, its tooltip) of every row of the counter grid, in order."""
    grid = panel.counter_grid
    return [(grid.itemAtPosition(row, 0).widget().text(), grid.itemAtPosition(row, 0).widget().toolTip())
            for row in range(grid.rowCount()) if grid.itemAtPosition(row, 0) is not None]


def test_latency_rows_read_in_words_and_their_tooltips_name_the_summary_key(qtbot):
    from eegmusic.decoder.latency import STAGES

    panel = _stats_panel(qtbot, {})
    labels = [panel.latency.verticalHeaderItem(row).text() for row in range(panel.latency.rowCount())]
    assert labels[:7] == ["stimulus → EEG", "EEG → arrival", "arrival → window", "window → inferred",
                          "inferred → vocoded", "vocoded → buffered", "buffered → device (estimate)"], labels
    assert labels[STAGES.index("arrival_to_buffered")] == "arrival → buffered (total)"
    assert labels[STAGES.index("arrival_to_dac")] == "arrival → DAC (total, estimate)"
    assert not [label for label in labels if IDENTIFIER.search(label)], labels
    for row, stage in enumerate(STAGES):
        tip = panel.latency.verticalHeaderItem(row).toolTip()
        assert f"summary key: latency_ms.{stage}" in tip, tip
        assert panel.latency.item(row, 0).toolTip() == tip   # the row's cells say the same
    # what the row spans is still said beside the key
    tip = panel.latency.verticalHeaderItem(STAGES.index("ready_to_inferred")).toolTip()
    assert "from the stream stage made the window to the model's output in host memory" in tip, tip


def test_counters_read_in_words_and_their_tooltips_name_the_summary_key(qtbot):
    from eegmusic.decoder.pipeline import LivePipeline
    from eegmusic.decoder.pipeline_config import PipelineConfig

    counters = LivePipeline(PipelineConfig(stream_name="cap-1", model_path="model.onnx")).counters()
    panel = _stats_panel(qtbot, counters)
    rows = dict(_counter_rows(panel))
    assert len(rows) == len(counters)
    assert not [name for name in rows if IDENTIFIER.search(name)], list(rows)
    assert {"bad markers", "device underflows", "device restarts", "windows", "drops"} <= set(rows)
    for name in counters:
        label = panel.counter_labels[name]
        assert f"summary key: counters.{name}" in label.toolTip(), (name, label.toolTip())
    assert panel.counter_labels["audio_written"].toolTip().startswith("audio samples (22050 a second)")


def test_a_counter_without_words_still_shows(qtbot):
    """A counter the pipeline reports later (or a decode of another version) must not break the grid."""
    panel = _stats_panel(qtbot, {"windows": 3, "brand_new_counter": 7})
    rows = dict(_counter_rows(panel))
    assert rows["brand new counter"] == "summary key: counters.brand_new_counter"
    assert panel.counter_labels["brand_new_counter"].text() == "7"


def test_a_latency_stage_without_words_still_shows(qtbot):
    from eegmusic.gui.stats_panel import StatsPanel

    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.update_stats({"arrival_to_ready": {"p50": 1.0}, "ready_to_published": {"p50": 2.0}}, {}, None)
    assert panel.latency.verticalHeaderItem(1).text() == "ready to published"
    assert "summary key: latency_ms.ready_to_published" in panel.latency.verticalHeaderItem(1).toolTip()
    assert panel.latency.item(1, 0).text() == "2.0"


def _r_axis_span(panel) -> float:
    low, high = panel.r_plot.getViewBox().viewRange()[0]
    assert high == pytest.approx(0.0)
    return high - low


def test_the_r_history_spans_what_is_recorded_until_its_60_s(qtbot):
    """In a run's first minute the line was a sliver at the right of an empty 60-s axis."""
    from eegmusic.gui.mel_panel import R_HISTORY_S, MelPanel

    panel = MelPanel()
    qtbot.addWidget(panel)
    mel = np.zeros((128, 10), np.float32)
    for i in range(7):   # 3 s of history, a point every half second
        panel.update_mel(mel, mel, 0.2, now=100.0 + 0.5 * i)
    assert _r_axis_span(panel) == pytest.approx(10.0)   # the least span, so the line fills a third of it
    for i in range(7, 51):   # 25 s
        panel.update_mel(mel, mel, 0.2, now=100.0 + 0.5 * i)
    assert _r_axis_span(panel) == pytest.approx(25.0)
    x, _ = panel.r_curve.getData()
    assert x[0] == pytest.approx(-25.0)   # the line starts at the axis's left end
    for i in range(51, 201):   # 100 s: the history's 60 s, as before
        panel.update_mel(mel, mel, 0.2, now=100.0 + 0.5 * i)
    assert _r_axis_span(panel) == pytest.approx(R_HISTORY_S) == 60.0
    x, _ = panel.r_curve.getData()
    assert x[0] >= -R_HISTORY_S


def test_a_new_run_starts_its_own_r_history_and_whole_run_line(qtbot):
    """A decode started again in the same window drew on after the stopped one's line, and its whole-run
    figures stood until the new run's first summary."""
    from eegmusic.gui.mel_panel import R_HISTORY_MIN_S, MelPanel

    panel = MelPanel()
    qtbot.addWidget(panel)
    mel = np.zeros((128, 10), np.float32)
    for i in range(61):   # 30 s of the stopped run
        panel.update_mel(mel, mel, 0.2, now=100.0 + 0.5 * i)
    panel.update_scores({"dynamic_r_total": 0.321, "baseline_dynamic_r_total": {}})
    panel.show_frozen("lost")
    assert "0.321" in panel.baseline_label.text() and _r_axis_span(panel) == pytest.approx(30.0)
    panel.new_run()
    x, _ = panel.r_curve.getData()
    assert x is None or not len(x)
    assert _r_axis_span(panel) == pytest.approx(R_HISTORY_MIN_S)
    assert panel.dynamic_r is None and panel.r_label.text().endswith(": —"), panel.r_label.text()
    assert "0.321" not in panel.baseline_label.text() and "frozen" not in panel.baseline_label.text()


def test_the_streams_dropped_windows_and_nan_runs_are_drawn_red_when_not_zero(qtbot):
    """Trouble reads red: the stream's dropped windows and NaN runs were listed under their attribute names
    (``dropped_windows``), which no row of the grid carries, so they stayed black whatever their count."""
    from eegmusic.gui.stats_panel import StatsPanel
    from eegmusic.stream.source import StreamHealth
    from PySide6 import QtGui

    def health(bad: int) -> StreamHealth:
        return StreamHealth(effective_rate=124.8, n_samples=1000, gaps=0, dropped_windows=bad, nan_runs=bad,
                            reconnects=0, clock_offset=0.0, jitter_ms=0.5, connected=True, state="connected",
                            state_s=3.0)

    def colour(panel, name):
        return panel.counter_labels[name].palette().color(QtGui.QPalette.ColorRole.WindowText).getRgb()[:3]

    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.update_stats({}, {"windows": 10, "drops": 0}, health(0))
    black = colour(panel, "windows")
    assert colour(panel, "dropped windows") == colour(panel, "nan runs") == black
    panel.update_stats({}, {"windows": 11, "drops": 0}, health(2))
    assert colour(panel, "dropped windows") == colour(panel, "nan runs") == (200, 30, 30)
    assert colour(panel, "windows") == black and colour(panel, "drops") == black
