"""The mel panel: the decoded mel spectrogram scrolling, and beside it the true one with the rolling r.

Colours are fixed mel-dB levels (−80 … +30 dB on the contract's scale, reference power 1: never
normalised), so a louder decoded frame looks louder. With a truth folder the pipeline also gives the
stimulus mel for the same frames and a rolling dynamic r (correlation of the frame-to-frame changes);
the panel keeps a history of r to draw it over time. Below it, the decoder's dynamic r over the whole
run stands beside the global-mean and song-mean baselines scored on the same frames (:mod:`decoder.scores`,
from the decode's summary), so a score never shows without what a constant spectrum reaches.
"""

from __future__ import annotations

import collections
import time

import numpy as np
import pyqtgraph as pg
from eegmusic.decoder.melspec import DB_FLOOR, FRAME_PERIOD_S
from eegmusic.decoder.scores import baseline_line, run_scores
from PySide6 import QtCore, QtWidgets

FRAME_RATE = 1.0 / FRAME_PERIOD_S
"""Mel frames per second (22050 / 512 ≈ 43.07)."""

MEL_LEVELS = (DB_FLOOR, 30.0)
"""Colour range in mel dB. Music goes above 0 dB (reference power 1): in the packaged tracks and the
simulated stimuli 7-10 % of cells do, the 99.9th percentile is 20-28 dB and the loudest 24-35 dB; a range
ending at 0 dB drew all of that as one flat white."""

R_HISTORY_S = 60.0
"""Seconds of dynamic-r history drawn."""


SHOWN_S = 10.0
"""Seconds of frames shown (the newest at t = 0)."""


def _mel_plot(title: str) -> tuple[pg.PlotWidget, pg.ImageItem]:
    plot = pg.PlotWidget(background="w", title=title)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setLabel("left", "mel band")
    plot.setLabel("bottom", "time (s)")
    plot.setXRange(-SHOWN_S, 0.0, padding=0.0)
    plot.setYRange(0.0, 128.0, padding=0.0)
    image = pg.ImageItem(axisOrder="row-major")
    image.setColorMap(pg.colormap.get("inferno"))
    image.setLevels(MEL_LEVELS)
    plot.addItem(image)
    return plot, image


class MelPanel(QtWidgets.QWidget):
    """Decoded mel (always), true mel and rolling dynamic r (when the pipeline has a truth)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.decoded_plot, self.decoded_image = _mel_plot("decoded mel")
        self.truth_plot, self.truth_image = _mel_plot("true mel (stimulus)")
        self.truth_plot.setXLink(self.decoded_plot)
        # one scale for both images (their levels are the same fixed MEL_LEVELS)
        self.colorbar = pg.ColorBarItem(values=MEL_LEVELS, colorMap=pg.colormap.get("inferno"),
                                        interactive=False, width=10, label="mel dB")
        self.colorbar.setImageItem([self.decoded_image, self.truth_image],
                                   insert_in=self.decoded_plot.getPlotItem())
        self.r_plot = pg.PlotWidget(background="w")
        self.r_plot.setMinimumHeight(90)
        self.r_plot.setLabel("left", "r")
        self.r_plot.setMenuEnabled(False)
        self.r_plot.hideButtons()
        self.r_plot.setMouseEnabled(x=False, y=False)
        self.r_plot.setYRange(-1.0, 1.0, padding=0.05)
        self.r_plot.setXRange(-R_HISTORY_S, 0.0, padding=0.0)
        self.r_plot.setLabel("bottom", "time (s)")
        self.r_plot.addLine(y=0.0, pen=pg.mkPen((150, 150, 150), style=QtCore.Qt.PenStyle.DashLine))
        self.r_curve = self.r_plot.plot(pen=pg.mkPen((20, 90, 200), width=2))
        self.r_label = QtWidgets.QLabel("dynamic r (rolling, decoded vs true): —")
        self.baseline_label = QtWidgets.QLabel(baseline_line(None))
        self.baseline_label.setWordWrap(True)   # a baseline's n/a carries its reason: the line can be long
        self.baseline_label.setToolTip("dynamic r over every frame scored so far; the baselines predict each "
                                       "frame from the mean mel window of the model's training part")
        self.scores: tuple[float | None, float | None, float | None] = (None, None, None)
        """The run's (decoder, global-mean, song-mean) dynamic r as last drawn (:func:`run_scores`)."""

        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.decoded_plot, 1)
        row.addWidget(self.truth_plot, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row, 3)
        layout.addWidget(self.r_label)
        layout.addWidget(self.baseline_label)
        layout.addWidget(self.r_plot, 1)

        self._r_times: collections.deque[float] = collections.deque(maxlen=4096)
        self._r_values: collections.deque[float] = collections.deque(maxlen=4096)
        self.has_truth = False
        self.n_updates = 0
        self.set_truth_visible(False)

    def set_truth_visible(self, visible: bool) -> None:
        """Show or hide the truth column and the r plot."""
        self.has_truth = visible
        for widget in (self.truth_plot, self.r_plot, self.r_label, self.baseline_label):
            widget.setVisible(visible)

    period_s = 0.0
    """Redraw whenever a new frame arrived (the :class:`gui.panel.Panel` contract)."""

    def redraw_key(self, view) -> tuple | None:
        """Changes with each decoded frame or window, or with the run's scores; None before the first mel."""
        snapshot = view.snapshot
        if snapshot.mel is None:
            return None
        scores = run_scores(view.summary)
        return snapshot.frame_index, view.counters.get("windows"), np.asarray(snapshot.mel).shape, scores

    def draw(self, view, now: float) -> None:
        """Draw the view's decoded and true mel, and the run's scores beside their baselines."""
        snapshot = view.snapshot
        self.update_mel(snapshot.mel, snapshot.truth_mel, snapshot.dynamic_r, now)
        self.update_scores(view.summary)

    def update_scores(self, summary) -> None:
        """Show the run's dynamic r beside the global-mean and song-mean baselines on the same frames.

        Parameters
        ----------
        summary : dict or None
            The decode's run summary (``dynamic_r_total``, ``baseline_dynamic_r_total``).
        """
        self.scores = run_scores(summary)
        self.baseline_label.setText(baseline_line(summary))

    def update_mel(self, mel: np.ndarray, truth_mel: np.ndarray | None = None,
                   dynamic_r: float | None = None, now: float | None = None) -> None:
        """Draw the newest decoded frames (and the truth beside them).

        Parameters
        ----------
        mel : ndarray, shape (128, n_frames)
            Recent decoded mel in dB, oldest frame first; the newest is drawn at t = 0.
        truth_mel : ndarray, shape (128, n_frames_truth), optional
            The stimulus mel of the same frames.
        dynamic_r : float, optional
            Current rolling dynamic r; appended to the history drawn below.
        now : float, optional
            Time stamp of this update in seconds (monotonic clock when None).
        """
        mel = np.asarray(mel)
        if mel.ndim == 2 and mel.shape[1] > 0:
            self._draw(self.decoded_image, mel)
        show_truth = truth_mel is not None and np.asarray(truth_mel).ndim == 2
        if show_truth != self.has_truth:
            self.set_truth_visible(show_truth)
        if show_truth and np.asarray(truth_mel).shape[1] > 0:
            self._draw(self.truth_image, np.asarray(truth_mel))
        if dynamic_r is not None and np.isfinite(dynamic_r):
            now = time.monotonic() if now is None else now
            self._r_times.append(now)
            self._r_values.append(float(dynamic_r))
            t = np.fromiter(self._r_times, dtype=float) - now
            keep = t >= -R_HISTORY_S
            self.r_curve.setData(t[keep], np.fromiter(self._r_values, dtype=float)[keep])
            self.r_label.setText(f"dynamic r (rolling, decoded vs true): {dynamic_r:+.3f}")
        self.n_updates += 1

    @staticmethod
    def _draw(image: pg.ImageItem, mel: np.ndarray) -> None:
        n_mels, n_frames = mel.shape
        image.setImage(mel, autoLevels=False, levels=MEL_LEVELS)
        duration = n_frames / FRAME_RATE
        image.setRect(QtCore.QRectF(-duration, 0.0, duration, n_mels))
