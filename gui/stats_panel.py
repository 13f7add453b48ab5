"""The stats panel: latency per pipeline stage and the health counters.

A table of latency percentiles (ms) per stage, as the pipeline measures them (LSL clock stamps at
every stage), and a grid of counters: windows decoded, drops, gaps, reconnects, audio underruns and
the stream's measured rate and jitter. Cells are reused and only their text changes.
"""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

PERCENTILES = ("p50", "p95", "p99")

RIGHT = QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter

COUNTERS = ("windows", "drops", "gaps", "reconnects", "underruns")
"""Counters shown first, in this order; any others the pipeline reports follow."""

BAD_COUNTERS = frozenset({"drops", "gaps", "reconnects", "underruns", "dropped_windows", "nan_runs", "stalls",
                          "losses", "bad_markers"})
"""Counters that mean trouble when non-zero (drawn in red)."""


def format_ms(value) -> str:
    """Format a latency in ms for the table (``—`` when unknown)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(value):
        return "—"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def health_items(health) -> dict[str, str]:
    """Readable fields of a ``StreamHealth`` (or None) for the counter grid."""
    if health is None:
        return {}
    state = health.state  # connecting, connected, stalled, lost or reconnected (stream.inlet)
    items = {"stream": state if state in ("connected", "connecting") else f"{state} ({health.state_s:.0f} s)"}
    if math.isfinite(health.effective_rate):
        items["rate (Hz)"] = f"{health.effective_rate:.1f}"
    if math.isfinite(health.jitter_ms):
        items["jitter (ms)"] = f"{health.jitter_ms:.2f}"
    if math.isfinite(health.clock_offset):
        items["clock offset (ms)"] = f"{1000 * health.clock_offset:.2f}"
    items.update({"n samples": str(health.n_samples), "dropped windows": str(health.dropped_windows),
                  "nan runs": str(health.nan_runs)})
    interpolated = tuple(health.interpolated_channels)
    if interpolated:  # model channels the stream lacks, filled by spherical splines (--impute-missing)
        shown = ", ".join(interpolated[:4]) + (", …" if len(interpolated) > 4 else "")
        items["interpolated"] = f"{len(interpolated)}: {shown}"
    return items


class StatsPanel(QtWidgets.QWidget):
    """Latency table (stage × p50/p95/p99) and counter grid."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.latency = QtWidgets.QTableWidget(0, len(PERCENTILES))
        self.latency.setHorizontalHeaderLabels([f"{p} (ms)" for p in PERCENTILES])
        self.latency.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.latency.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.latency.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.latency.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.counter_grid = QtWidgets.QGridLayout()
        self.counter_labels: dict[str, QtWidgets.QLabel] = {}
        counters_box = QtWidgets.QGroupBox("counters")
        counters_box.setLayout(self.counter_grid)
        latency_box = QtWidgets.QGroupBox("latency per stage")
        box_layout = QtWidgets.QVBoxLayout(latency_box)
        box_layout.addWidget(self.latency)
        box_layout.addStretch(1)
        # the counters grow with every health figure: they scroll, so they never squeeze the mel panel
        counters_scroll = QtWidgets.QScrollArea()
        counters_scroll.setWidget(counters_box)
        counters_scroll.setWidgetResizable(True)
        # down only: a long value (the interpolated channels) wraps instead of widening the grid, which
        # pushed every value past the panel's right edge behind a sideways scroll bar
        counters_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.counters_scroll = counters_scroll
        counters_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(latency_box, 3)
        layout.addWidget(counters_scroll, 2)
        self._stages: tuple[str, ...] = ()
        self.values: dict[str, str] = {}
        self.n_updates = 0

    period_s = 0.5
    """Seconds between latency/counter table updates (the :class:`gui.panel.Panel` contract)."""

    def redraw_key(self, view) -> int:
        """Every poll (the figures move all the time); ``period_s`` sets the pace."""
        return view.tick

    def draw(self, view, now: float) -> None:
        """Show the view's latency and counters."""
        self.update_stats(view.snapshot.latency_ms, view.counters, view.health)

    def update_stats(self, latency_ms: dict | None, counters: dict | None, health=None) -> None:
        """Show the newest latency percentiles and counters.

        Parameters
        ----------
        latency_ms : dict stage -> dict(p50, p95, p99), in ms
        counters : dict name -> int
            windows, drops, gaps, reconnects, underruns (and any others).
        health : StreamHealth, optional
            Adds the measured rate, jitter and clock offset.
        """
        latency_ms = latency_ms or {}
        stages = tuple(latency_ms)
        if stages != self._stages:
            self.latency.setRowCount(len(stages))
            from eegmusic.decoder.latency import ESTIMATED_STAGES

            # stages from buffer sizes are estimates; `eegmusic bench latency` measures the sound
            self.latency.setVerticalHeaderLabels([f"{stage} (estimate)" if stage in ESTIMATED_STAGES
                                                  else stage for stage in stages])
            for row in range(len(stages)):
                for col in range(len(PERCENTILES)):
                    item = QtWidgets.QTableWidgetItem("—")
                    item.setTextAlignment(RIGHT)
                    self.latency.setItem(row, col, item)
            self._stages = stages
            # as tall as its rows: the space below stays free instead of an empty grid
            self.latency.resizeRowsToContents()
            rows = sum(self.latency.rowHeight(r) for r in range(len(stages)))
            self.latency.setFixedHeight(self.latency.horizontalHeader().sizeHint().height() + rows
                                        + 2 * self.latency.frameWidth())
        for row, stage in enumerate(stages):
            percentiles = latency_ms[stage] or {}
            for col, name in enumerate(PERCENTILES):
                text = format_ms(percentiles.get(name))
                item = self.latency.item(row, col)
                if item.text() != text:
                    item.setText(text)

        values: dict[str, str] = {}
        counters = dict(counters or {})
        for name in COUNTERS:
            if name in counters:
                values[name] = str(counters.pop(name))
        for name, value in counters.items():
            values[name] = str(value)
        values.update(health_items(health))
        for name, text in values.items():
            label = self.counter_labels.get(name)
            if label is None:
                row = len(self.counter_labels)
                self.counter_grid.addWidget(QtWidgets.QLabel(name), row, 0)
                label = QtWidgets.QLabel(text)
                label.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
                label.setWordWrap(True)
                self.counter_grid.addWidget(label, row, 1)
                self.counter_labels[name] = label
            if label.text() != text:
                label.setText(text)
                bad = name in BAD_COUNTERS and text not in ("0", "0.0")
                palette = label.palette()
                palette.setColor(QtGui.QPalette.ColorRole.WindowText,
                                 QtGui.QColor(200, 30, 30) if bad else self.palette().color(
                                     QtGui.QPalette.ColorRole.WindowText))
                label.setPalette(palette)
        self.values = values
        self.n_updates += 1
