"""The dashboard's status bar: is the stream connected, stalled, lost or stopped, and how long panels take.

:class:`StreamStatus` owns the two labels of the window's status bar and the one judgement behind
them: whether new EEG samples still arrive. The window hands it every polled snapshot
(:meth:`StreamStatus.observe`, then :meth:`StreamStatus.show`). It speaks the inlet's own words
(:mod:`stream.inlet`): ``stalled`` while samples stop coming on a connection that is still open,
``lost`` once the connection is gone; a decode that publishes no new sample for :data:`QUIET_AFTER_S`
while its inlet still says connected counts as stalled. Either way the line says the panels are frozen,
waiting for the stream to return.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from eegmusic.stream.inlet import LOST, STALLED
from PySide6 import QtWidgets

QUIET_AFTER_S = 1.0
"""Seconds without a new sample after which the panels count as frozen, whatever the inlet says (a decode
in another process that stopped publishing)."""

NEUTRAL = ""
"""The status line's style sheet outside a decode: the palette's own text colour."""

COUNTERS_SHOWN = ("windows", "drops", "gaps", "reconnects", "underruns")
"""Counters the status line names, in this order, when the decode reports them."""


def snapshot_key(eeg, health) -> tuple:
    """A cheap fingerprint that changes when new samples arrived."""
    n_samples = None if health is None else health.n_samples
    if eeg is None:
        return (n_samples,)
    eeg = np.asarray(eeg)
    last = eeg[:, -1].tobytes() if eeg.ndim == 2 and eeg.shape[1] else b""
    return (n_samples, eeg.shape, last)


class StreamStatus:
    """The status bar's stream line (left) and panel update time (right).

    Parameters
    ----------
    status_bar : QtWidgets.QStatusBar
        The window's status bar; the labels are added to it.
    """

    def __init__(self, status_bar: QtWidgets.QStatusBar):
        self.health_label = QtWidgets.QLabel("")
        self.gui_label = QtWidgets.QLabel("")
        status_bar.addWidget(self.health_label, 1)
        status_bar.addPermanentWidget(self.gui_label)
        self._eeg_key = None
        self.last_new_sample: float | None = None
        """Monotonic time (s) the newest EEG sample was first seen, or None before a decode."""

    def reset(self, now: float) -> None:
        """Follow a decode that starts at ``now`` (monotonic seconds)."""
        self._eeg_key = None
        self.last_new_sample = now

    def show_text(self, text: str) -> None:
        """Show a line of its own (stopped, starting, an error), in the plain text colour: the colour of the
        last stream state (green, red) stayed on "stopped"."""
        self.health_label.setText(text)
        self._colour(NEUTRAL)

    def _colour(self, style: str) -> None:
        """Give the stream line the style sheet ``style``, only when it changes: setting one restyles the
        label (about 20 µs), and the line is shown on every poll."""
        if self.health_label.styleSheet() != style:
            self.health_label.setStyleSheet(style)

    def observe(self, eeg, health, now: float) -> tuple | None:
        """Note whether ``eeg`` holds new samples; return its fingerprint, None when there is none to show.

        Parameters
        ----------
        eeg : ndarray, shape (n_chans, n_times), or None
            The snapshot's recent EEG.
        health : StreamHealth or None
        now : float
            The poll's monotonic time in seconds.
        """
        has_eeg = eeg is not None and np.asarray(eeg).ndim == 2 and np.asarray(eeg).shape[1] > 1
        key = snapshot_key(eeg, health)
        if has_eeg and key != self._eeg_key:
            self._eeg_key = key
            self.last_new_sample = now
        return key if has_eeg else None

    def silence(self, snapshot, now: float) -> str | None:
        """Why no new samples come, in the inlet's words: ``"lost"``, ``"stalled"``, or None while they do.

        ``lost``: the decode says disconnected or its inlet says lost. ``stalled``: its inlet says so, or no
        new sample reached the dashboard for :data:`QUIET_AFTER_S` while it says connected.
        """
        health = None if snapshot is None else snapshot.health
        if health is not None and (not health.connected or health.state == LOST):
            return LOST
        if health is not None and health.state == STALLED:
            return STALLED
        quiet = self.last_new_sample is not None and now - self.last_new_sample > QUIET_AFTER_S
        return STALLED if quiet else None

    def lost(self, snapshot, now: float) -> bool:
        """Whether no new samples come (stalled or lost): the panels are frozen."""
        return self.silence(snapshot, now) is not None

    def show(self, snapshot, stream: str | None, now: float, redraw_ms: Sequence[float]) -> None:
        """Say how the stream behind ``snapshot`` is doing, and the median panel update time."""
        health, counters, error = snapshot.health, snapshot.counters or {}, snapshot.error
        silence = self.silence(snapshot, now)
        if not snapshot.running:
            text = f"pipeline stopped: {error}" if error else "pipeline stopped"
            colour = "#c01e1e"
        elif silence is not None:
            quiet = 0.0 if self.last_new_sample is None else now - self.last_new_sample
            reconnects = counters.get("reconnects", 0 if health is None else health.reconnects)
            if silence == LOST and health.ended:   # a replay's end, no failure
                text = (f"■ stream {stream!r} ended (its replay finished) — no data for {quiet:.1f} s; "
                        f"panels frozen, waiting for a replay of that name (reconnects {reconnects})")
                colour = "#505050"
            else:
                mark = "✕" if silence == LOST else "◌"
                text = (f"{mark} stream {stream!r} {silence} — no data for {quiet:.1f} s; panels frozen, "
                        f"waiting for it to return (reconnects {reconnects})")
                colour = "#c01e1e" if silence == LOST else "#b06000"
        else:
            rate = float("nan") if health is None else health.effective_rate
            parts = [f"● stream {stream!r} connected", f"{rate:.1f} Hz" if np.isfinite(rate) else "rate —"]
            for key in COUNTERS_SHOWN:
                if key in counters:
                    parts.append(f"{key} {counters[key]}")
            text = " · ".join(parts)
            colour = "#1d7a1d" if not counters.get("drops") and not counters.get("gaps") else "#b06000"
        self.health_label.setText(text)
        self._colour(f"color: {colour}")
        if len(redraw_ms):
            self.gui_label.setText(f"panel update {np.median(redraw_ms):.1f} ms")
