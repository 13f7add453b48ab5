"""The dashboard's status bar: is the stream connected, lost or stopped, and how long panels take.

:class:`StreamStatus` owns the two labels of the window's status bar and the one judgement behind
them: whether new EEG samples still arrive. The window hands it every polled snapshot
(:meth:`StreamStatus.observe`, then :meth:`StreamStatus.show`); when no new sample came for
:data:`LOST_AFTER_S` (or the stream stage says it is disconnected) the line turns red and says the
panels are frozen, waiting for the stream to return.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6 import QtWidgets

LOST_AFTER_S = 1.0
"""The status bar calls the stream lost when no new sample arrived for this long."""

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
        """Show a line of its own (stopped, starting, an error)."""
        self.health_label.setText(text)

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

    def lost(self, snapshot, now: float) -> bool:
        """Whether the stream is lost: the decode says disconnected, or no sample came for a while."""
        health = None if snapshot is None else snapshot.health
        if health is not None and not health.connected:
            return True
        return self.last_new_sample is not None and now - self.last_new_sample > LOST_AFTER_S

    def show(self, snapshot, stream: str | None, now: float, redraw_ms: Sequence[float]) -> None:
        """Say how the stream behind ``snapshot`` is doing, and the median panel update time."""
        health, counters, error = snapshot.health, snapshot.counters or {}, snapshot.error
        if not snapshot.running:
            text = f"pipeline stopped: {error}" if error else "pipeline stopped"
            colour = "#c01e1e"
        elif self.lost(snapshot, now):
            quiet = now - (self.last_new_sample or now)
            reconnects = counters.get("reconnects", 0 if health is None else health.reconnects)
            text = (f"✕ stream {stream!r} LOST — no data for {quiet:.1f} s; panels frozen, waiting for it to "
                    f"return (reconnects {reconnects})")
            colour = "#c01e1e"
        else:
            rate = float("nan") if health is None else health.effective_rate
            parts = [f"● stream {stream!r} connected", f"{rate:.1f} Hz" if np.isfinite(rate) else "rate —"]
            for key in COUNTERS_SHOWN:
                if key in counters:
                    parts.append(f"{key} {counters[key]}")
            text = " · ".join(parts)
            colour = "#1d7a1d" if not counters.get("drops") and not counters.get("gaps") else "#b06000"
        self.health_label.setText(text)
        self.health_label.setStyleSheet(f"color: {colour}")
        if len(redraw_ms):
            self.gui_label.setText(f"panel update {np.median(redraw_ms):.1f} ms")
