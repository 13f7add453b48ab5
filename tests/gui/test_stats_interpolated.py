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
