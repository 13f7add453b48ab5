"""The stats panel: latency per pipeline stage and the health counters.

A table of latency percentiles (ms) per stage, as the pipeline measures them (LSL clock stamps at
every stage), and a grid of counters: the stream's state, measured rate and jitter first, then windows
decoded, drops, gaps, reconnects, audio underruns and the rest. Cells are reused and only their text
changes. Rows and counters read in words (:data:`STAGE_LABELS`, :data:`COUNTER_LABELS`); their tooltips
name the key each has in the decode's summary (``decode --json``), which keeps the identifiers. Each
stage's row also says what it spans (the stamps of :mod:`decoder.latency`); the first, ``audio_to_eeg``,
is stimulus time, not processing, as ``eegmusic decode`` says. A decode without sound hides the stages
that end at the sound device, which it never measures.
"""

from __future__ import annotations

import math

from eegmusic.decoder.latency import ESTIMATED_STAGES, STAGES, STAMP_WORDS, STIMULUS_TIME_NOTE
from eegmusic.decoder.melspec import AUDIO_SFREQ
from PySide6 import QtCore, QtGui, QtWidgets

PERCENTILES = ("p50", "p95", "p99")

RIGHT = QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter

LATENCY_MIN_ROWS = 3
"""Rows of the latency table that stay in sight however short the window: the rest scroll."""

HEALTH_FIRST = ("stream", "rate (Hz)", "jitter (ms)")
"""Stream health figures shown at the top of the counter grid: below the counters they were out of sight,
under the fold of its scroll area, when the stream was lost."""

COUNTERS = ("windows", "drops", "gaps", "reconnects", "underruns")
"""Counters shown after :data:`HEALTH_FIRST`, in this order; any others the pipeline reports follow, then
the rest of the stream's health."""

DEVICE_STAGES = tuple(stage for stage in STAGES if stage.endswith(("_to_queued", "_to_dac")))
"""Stages that end at the sound device: never measured by a decode without sound (hidden then)."""

ESTIMATE_NOTE = ("An estimate: the audio queued in the sink plus the device's reported latency, not measured "
                 "(`eegmusic bench latency` measures EEG sample -> audible sample)")
"""Why a stage of :data:`decoder.latency.ESTIMATED_STAGES` reads "(estimate)"."""

STAGE_LABELS = {
    "audio_to_eeg": "stimulus → EEG",
    "eeg_to_arrival": "EEG → arrival",
    "arrival_to_ready": "arrival → window",
    "ready_to_inferred": "window → inferred",
    "inferred_to_vocoded": "inferred → vocoded",
    "vocoded_to_buffered": "vocoded → buffered",
    "buffered_to_queued": "buffered → device",
    "queued_to_dac": "device → DAC",
    "buffered_to_dac": "buffered → DAC",
    "arrival_to_buffered": "arrival → buffered (total)",
    "arrival_to_dac": "arrival → DAC (total)",
    "audio_to_dac": "stimulus → DAC (total)",
}
"""What the latency table's rows read, stage by stage (:data:`decoder.latency.STAGES`; the stamps' words
are :data:`decoder.latency.STAMP_WORDS`): a stage without one reads as its key with spaces."""

COUNTER_LABELS = {
    "bad_markers": "bad markers",
    "device_underflows": "device underflows",
    "device_restarts": "device restarts",
    "callback_realtime": "real-time callback",
    "frames_skipped": "frames skipped",
    "listen_true_missing": "true audio missing",
    "flagged_windows": "flagged windows",
    "drops_decoder": "drops: decoder",
    "drops_stream": "drops: stream",
    "drops_output_queue": "drops: output",
    "windows_coalesced": "windows coalesced",
    "windows_caught_up": "windows caught up",
    "vocoder_resets": "vocoder resets",
    "frames_clipped": "frames clipped",
    "nonfinite_frames": "non-finite frames",
    "time_jumps": "time jumps",
    "missing_samples": "missing samples",
    "non_monotonic": "stamps backwards",
    "audio_written": "audio written",
    "audio_dropped": "audio dropped",
    "audio_sanitised": "audio sanitised",
    "audio_limited": "audio limited",
    "audio_dropped_late": "audio skipped late",
    "audio_padded": "audio padded",
    "audio_silence_gaps": "silence gaps",
    "audio_silence": "audio silence",
}
"""What the counter grid reads for the pipeline's counters (``LivePipeline.counters``) whose key is no
word: any other counter reads as its key with spaces, so a new one still shows. Short, about as wide as
the keys were: the grid is as wide as its longest name, and a wider one pushed the values out of sight."""

AUDIO_SAMPLE_COUNTERS = frozenset({"audio_written", "audio_dropped", "audio_sanitised", "audio_dropped_late",
                                   "audio_padded", "audio_silence", "samples_skipped",
                                   "listen_true_missing", "audio_limited"})
"""Counters of audio samples, not events: their tooltip gives the unit."""

BAD_COUNTERS = frozenset({"drops", "gaps", "reconnects", "underruns", "dropped windows", "nan runs", "stalls",
                          "losses", "bad_markers"})
"""Rows of the counter grid that mean trouble when non-zero (drawn in red), by their key in
:func:`counter_values`: the stream's health figures by their words (:func:`health_items`)."""


def format_ms(value) -> str:
    """Format a latency in ms for the table (``—`` when unknown)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(value):
        return "—"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def stage_words(stage: str) -> str:
    """A latency stage in words (:data:`STAGE_LABELS`), else its key with spaces."""
    return STAGE_LABELS.get(stage, stage.replace("_", " "))


def stage_label(stage: str) -> str:
    """What a latency stage's row reads: its words, and "estimate" where it is one."""
    label = stage_words(stage)
    if stage not in ESTIMATED_STAGES:
        return label
    # stages from buffer sizes are estimates; `eegmusic bench latency` measures the sound
    return f"{label[:-1]}, estimate)" if label.endswith(")") else f"{label} (estimate)"


def counter_label(name: str) -> str:
    """What a counter's row reads: its words (:data:`COUNTER_LABELS`), else its key with spaces."""
    return COUNTER_LABELS.get(name, name.replace("_", " "))


def counter_tooltip(name: str) -> str:
    """A counter's key in the decode's summary, and its unit where it counts audio samples."""
    unit = f"audio samples ({AUDIO_SFREQ} a second); " if name in AUDIO_SAMPLE_COUNTERS else ""
    return f"{unit}summary key: counters.{name}"


def stage_tooltip(stage: str, summary=None) -> str:
    """What a latency stage spans, in words, and its key in the decode's summary, for its row's tooltip.

    Parameters
    ----------
    stage : str
        A stage of :data:`decoder.latency.STAGES` (``"<stamp>_to_<stamp>"``).
    summary : dict, optional
        The decode's run summary: its ``vocoder_latency_ms`` and ``smoothing_latency_ms`` give the
        figures of ``audio_to_eeg``'s note, as ``decode`` prints them.
    """
    start, _, end = stage.partition("_to_")
    tip = f"{stage_words(stage)}: from {STAMP_WORDS.get(start, start)} to {STAMP_WORDS.get(end, end)}"
    if stage == "audio_to_eeg":
        summary = summary or {}
        vocoder, smoothing = summary.get("vocoder_latency_ms"), summary.get("smoothing_latency_ms", 0.0)
        delays = ({"vocoder": "", "smoothing": ""} if vocoder is None else
                  {"vocoder": f" {vocoder:.1f} ms", "smoothing": f" {smoothing:.1f} ms"})
        tip = (f"{STIMULUS_TIME_NOTE.format(**delays)}. It spans {STAMP_WORDS['audio']} to "
               f"{STAMP_WORDS['eeg']}; the stages below it are processing")
    tip += f" (summary key: latency_ms.{stage})"
    if stage in ESTIMATED_STAGES:
        tip += f". {ESTIMATE_NOTE}"
    return tip


def counter_values(counters: dict | None, health) -> dict[str, str]:
    """The counter grid's rows in order: the stream's state, rate and jitter (:data:`HEALTH_FIRST`), the
    counters of :data:`COUNTERS`, any other counter, then the rest of the stream's health."""
    counters = dict(counters or {})
    health_values = health_items(health)
    values = {name: health_values.pop(name) for name in HEALTH_FIRST if name in health_values}
    values.update({name: str(counters.pop(name)) for name in COUNTERS if name in counters})
    values.update({name: str(value) for name, value in counters.items()})
    values.update(health_values)
    return values


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
        self.latency.setHorizontalHeaderLabels(list(PERCENTILES))   # in ms, as the box's title says
        self.latency.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.latency.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.latency.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.latency.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.counter_grid = QtWidgets.QGridLayout()
        self.counter_labels: dict[str, QtWidgets.QLabel] = {}
        """Counter name -> the label showing its value."""
        self._name_labels: dict[str, QtWidgets.QLabel] = {}
        counters_box = QtWidgets.QGroupBox("counters")
        counters_box.setLayout(self.counter_grid)
        latency_box = QtWidgets.QGroupBox("latency per stage (ms)")
        latency_box.setToolTip("per stage, on the LSL clock; hover a stage for what it spans")
        box_layout = QtWidgets.QVBoxLayout(latency_box)
        box_layout.addWidget(self.latency, 1)   # as tall as its rows where there is room (its maximum)
        box_layout.addStretch(0)                 # then the space below stays free, not an empty grid
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
        self._tipped_delay: float | None = None   # the vocoder delay audio_to_eeg's tooltip names
        self.silent = False
        """The decode plays no sound: the rows of :data:`DEVICE_STAGES` are hidden."""
        self.values: dict[str, str] = {}
        self.n_updates = 0
        self._set_stages(STAGES)   # every row from the start: the window sizes the panel to them

    period_s = 0.5
    """Seconds between latency/counter table updates (the :class:`gui.panel.Panel` contract)."""

    def redraw_key(self, view) -> int:
        """Every poll (the figures move all the time); ``period_s`` sets the pace."""
        return view.tick

    def draw(self, view, now: float) -> None:
        """Show the view's latency and counters."""
        self.update_stats(view.snapshot.latency_ms, view.counters, view.health, view.summary)

    def _set_stages(self, stages: tuple[str, ...], summary=None) -> None:
        """One row per stage, each "—" until measured, with what it spans as its tooltip."""
        self.latency.setRowCount(len(stages))
        self.latency.setVerticalHeaderLabels([stage_label(stage) for stage in stages])
        for row, stage in enumerate(stages):
            for col in range(len(PERCENTILES)):
                item = QtWidgets.QTableWidgetItem("—")
                item.setTextAlignment(RIGHT)
                self.latency.setItem(row, col, item)
            self._tip_row(row, stage_tooltip(stage, summary))
        self._stages = stages
        self._tipped_delay = (summary or {}).get("vocoder_latency_ms")
        self.latency.resizeRowsToContents()
        self._show_rows()

    def _tip_row(self, row: int, tip: str) -> None:
        """``tip`` on a stage's row: its header and each of its cells."""
        self.latency.verticalHeaderItem(row).setToolTip(tip)
        for col in range(len(PERCENTILES)):
            self.latency.item(row, col).setToolTip(tip)

    def wanted_height(self) -> int:
        """The panel's height with every shown latency row in sight (the window gives it that where it
        can)."""
        box = self.latency.parentWidget()
        return box.sizeHint().height() - self.latency.sizeHint().height() + self.latency.maximumHeight()

    def set_silent(self, silent: bool) -> None:
        """Hide the stages that end at the sound device when the decode plays no sound (``--no-audio``):
        they stayed "—" for the whole run."""
        self.silent = bool(silent)
        self._show_rows()

    def _show_rows(self) -> None:
        """Hide the silent decode's device stages; the table is as tall as its shown rows at most, and
        scrolls when the window is too short (its fixed height squeezed the mel plots to a sliver)."""
        rows = 0
        for row, stage in enumerate(self._stages):
            hidden = self.silent and stage in DEVICE_STAGES
            self.latency.setRowHidden(row, hidden)
            rows += 0 if hidden else self.latency.rowHeight(row)
        header = self.latency.horizontalHeader().sizeHint().height() + 2 * self.latency.frameWidth()
        self.latency.setMaximumHeight(header + rows)
        self.latency.setMinimumHeight(header + min(rows, LATENCY_MIN_ROWS * self.latency.verticalHeader()
                                                   .defaultSectionSize()))

    def update_stats(self, latency_ms: dict | None, counters: dict | None, health=None, summary=None) -> None:
        """Show the newest latency percentiles and counters.

        Parameters
        ----------
        latency_ms : dict stage -> dict(p50, p95, p99), in ms
        counters : dict name -> int
            windows, drops, gaps, reconnects, underruns (and any others).
        health : StreamHealth, optional
            Adds the stream's state, measured rate, jitter and clock offset (first in the grid).
        summary : dict, optional
            The decode's run summary: the vocoder and smoothing delays ``audio_to_eeg``'s tooltip names.
        """
        latency_ms = latency_ms or {}
        stages = tuple(latency_ms)
        summary = summary or {}
        if stages and stages != self._stages:   # none yet (a decode starting): the rows stay, at "—"
            self._set_stages(stages, summary)
        delay = summary.get("vocoder_latency_ms")
        if delay != self._tipped_delay and "audio_to_eeg" in self._stages:   # the figures come with a summary
            self._tip_row(self._stages.index("audio_to_eeg"), stage_tooltip("audio_to_eeg", summary))
            self._tipped_delay = delay
        for row, stage in enumerate(stages):
            percentiles = latency_ms[stage] or {}
            for col, name in enumerate(PERCENTILES):
                text = format_ms(percentiles.get(name))
                item = self.latency.item(row, col)
                if item.text() != text:
                    item.setText(text)

        values = counter_values(counters, health)
        new_names = [name for name in values if name not in self.counter_labels]
        for name in new_names:
            name_label = self._name_labels[name] = QtWidgets.QLabel(counter_label(name))
            value_label = self.counter_labels[name] = QtWidgets.QLabel(values[name])
            value_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
            value_label.setWordWrap(True)
            if counters and name in counters:   # the stream's health is no counter of the summary
                for label in (name_label, value_label):
                    label.setToolTip(counter_tooltip(name))
        if new_names:   # a figure that comes later (the stream's health) still takes its place in the order
            self._lay_out_counters(values)
        for name, text in values.items():
            label = self.counter_labels[name]
            if label.text() != text or name in new_names:
                label.setText(text)
                bad = name in BAD_COUNTERS and text not in ("0", "0.0")
                palette = label.palette()
                palette.setColor(QtGui.QPalette.ColorRole.WindowText,
                                 QtGui.QColor(200, 30, 30) if bad else self.palette().color(
                                     QtGui.QPalette.ColorRole.WindowText))
                label.setPalette(palette)
        self.values = values
        self.n_updates += 1

    def _lay_out_counters(self, values: dict[str, str]) -> None:
        """Put every counter's row in the grid in the order of ``values``; those no longer reported last."""
        order = list(values) + [name for name in self.counter_labels if name not in values]
        for row, name in enumerate(order):
            self.counter_grid.addWidget(self._name_labels[name], row, 0)
            self.counter_grid.addWidget(self.counter_labels[name], row, 1)
