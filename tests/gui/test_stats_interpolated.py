"""The dashboard's counters name the channels interpolated with --impute-missing."""

from __future__ import annotations

import pytest
from eegmusic.stream.source import StreamHealth

pytestmark = pytest.mark.gui
pytest.importorskip("PySide6")


def _health(interpolated) -> StreamHealth:
    return StreamHealth(effective_rate=250.0, n_samples=1000, gaps=0, dropped_windows=0, nan_runs=0,
                        reconnects=0, clock_offset=0.0, jitter_ms=0.1, connected=True,
                        interpolated_channels=tuple(interpolated))


def test_interpolated_channels_in_the_counter_grid(qtbot):
    from eegmusic.gui.stats_panel import StatsPanel, health_items

    assert "interpolated" not in health_items(_health(()))
    assert health_items(_health(("AF3", "C4", "Oz")))["interpolated"] == "3: AF3, C4, Oz"
    many = [f"E{i}" for i in range(1, 125)]
    assert health_items(_health(many))["interpolated"] == "124: E1, E2, E3, E4, …"
    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.update_stats({}, {"windows": 3}, _health(("AF3", "C4", "Oz")))
    assert panel.counter_labels["interpolated"].text() == "3: AF3, C4, Oz"


def test_a_long_value_wraps_inside_the_panel_instead_of_pushing_the_values_out(qtbot):
    """With --impute-missing the counters' values ran past the panel's right edge (a sideways scroll bar,
    every number cut off): the long interpolated line set the grid's width."""
    from eegmusic.gui.stats_panel import StatsPanel

    panel = StatsPanel()
    qtbot.addWidget(panel)
    panel.resize(520, 300)
    panel.show()
    qtbot.waitExposed(panel)
    panel.update_stats({}, {"windows": 263, "callback_realtime": 1}, _health([f"E{i}" for i in range(1, 6)]))
    qtbot.wait(50)
    viewport = panel.counters_scroll.viewport()
    label = panel.counter_labels["windows"]
    right = label.mapTo(viewport, label.rect().topRight()).x()
    assert right <= viewport.width(), (right, viewport.width())
    assert panel.counters_scroll.widget().width() <= viewport.width()
