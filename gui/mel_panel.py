"""The mel panel: the decoded mel spectrogram scrolling, and beside it the true one with the rolling r.

Colours are fixed mel-dB levels (−80 … +30 dB on the contract's scale, reference power 1: never
normalised), so a louder decoded frame looks louder. With a truth folder the pipeline also gives the
stimulus mel for the same frames and a rolling dynamic r (correlation of the frame-to-frame changes);
the panel keeps a history of r to draw it over time. The two figures are worded as ``eegmusic decode``
words them: the rolling r over the "last 10 s" (the truth's ``dynamic_r_window_s``) and the decoder's
r over the "whole run", which stands beside the global-mean and song-mean baselines scored on the same
frames (:mod:`decoder.scores`, from the decode's summary), so a score never shows without what a constant
spectrum reaches. While the stream is stalled or lost the figures say they are frozen. A waveform model
has no mel: the panel says so instead of drawing empty axes.
"""

from __future__ import annotations

import collections
import math
import time

import numpy as np
import pyqtgraph as pg
from eegmusic.decoder.melspec import DB_FLOOR, FRAME_PERIOD_S
from eegmusic.decoder.scores import baseline_line, format_r, recent_words, run_scores
from PySide6 import QtCore, QtWidgets

FRAME_RATE = 1.0 / FRAME_PERIOD_S
"""Mel frames per second (22050 / 512 ≈ 43.07)."""

MEL_LEVELS = (DB_FLOOR, 30.0)
"""Colour range in mel dB. Music goes above 0 dB (reference power 1): in the packaged tracks and the
simulated stimuli 7-10 % of cells do, the 99.9th percentile is 20-28 dB and the loudest 24-35 dB; a range
ending at 0 dB drew all of that as one flat white."""

R_HISTORY_S = 60.0
"""Seconds of dynamic-r history drawn."""

R_HISTORY_MIN_S = 10.0
"""Least seconds the r history's time axis spans. Until :data:`R_HISTORY_S` of history is recorded, the axis
spans the history there is, rounded up to whole seconds, so the line fills the plot from the start (in a
run's first minute it was a sliver at the right of an empty 60-s axis)."""


SHOWN_S = 10.0
"""Seconds of frames shown (the newest at t = 0)."""

PLOT_MARGINS = (2, 2, 12, 2)
"""Left, top, right and bottom margins of the plots in pixels: the time axes end at 0 s on the window's
right edge, where the "0" label was cut in half."""

MEL_MIN_HEIGHT = 150
"""Least height of a mel plot in pixels: on a short window the other panels give way first (the plots
shrank to 20 px, their tick labels on top of each other and no image to see)."""

R_PLOT_MIN_HEIGHT = 100
"""Least height of the r history in pixels, with three labelled ticks: at 90 px with five, its tick labels
touched and the top one was cut off."""

R_TICKS = [[(-1.0, "-1"), (0.0, "0"), (1.0, "1")], [(-0.5, ""), (0.5, "")]]
"""The r axis's ticks: labelled at -1, 0 and 1, unlabelled halfway (five labels did not fit)."""

FROZEN_STYLE = "color: #808080"
"""The r figures' colour while the stream is stalled or lost: they no longer change."""

RUN_LINE_TIP = ("dynamic r over every frame scored so far, beside a control and two baselines scored on the "
                "same frames: the control is the decoder's frames against the stimulus half its song away; "
                "the baselines predict each frame from the mean mel window of the model's training part")
"""The whole-run line's tooltip, above that line in ``decode``'s own words (the label shows short words)."""

NO_MEL_TEXT = ("This model outputs audio directly: there is no mel spectrogram to show, and no --truth "
               "scoring (the dynamic r compares mel frames; it needs a mel model).")
"""What the mel panel says for a waveform model (output kind ``audio``)."""


def _mel_plot(title: str) -> tuple[pg.PlotWidget, pg.ImageItem]:
    plot = pg.PlotWidget(background="w", title=title)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.setLabel("left", "mel band")
    plot.setLabel("bottom", "time (s)")
    plot.setXRange(-SHOWN_S, 0.0, padding=0.0)
    plot.setYRange(0.0, 128.0, padding=0.0)
    plot.getPlotItem().layout.setContentsMargins(*PLOT_MARGINS)
    plot.setMinimumHeight(MEL_MIN_HEIGHT)
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
        self.r_plot.getPlotItem().layout.setContentsMargins(*PLOT_MARGINS)
        self.r_plot.setMinimumHeight(R_PLOT_MIN_HEIGHT)
        self.r_plot.getAxis("left").setTicks(R_TICKS)
        self.r_plot.setMenuEnabled(False)
        self.r_plot.hideButtons()
        self.r_plot.setMouseEnabled(x=False, y=False)
        self.r_plot.setYRange(-1.0, 1.0, padding=0.05)
        self.r_span_s = R_HISTORY_MIN_S
        """Seconds the r history's time axis spans now (:data:`R_HISTORY_MIN_S` … :data:`R_HISTORY_S`)."""
        self.r_plot.setXRange(-self.r_span_s, 0.0, padding=0.0)
        self.r_plot.setLabel("bottom", "time (s)")
        self.r_plot.addLine(y=0.0, pen=pg.mkPen((150, 150, 150), style=QtCore.Qt.PenStyle.DashLine))
        self.r_curve = self.r_plot.plot(pen=pg.mkPen((20, 90, 200), width=2))
        self.r_label = QtWidgets.QLabel()
        self.r_label.setToolTip("dynamic r: correlation of the frame-to-frame changes of the decoded and "
                                "the true mel, over the newest frames scored")
        self.baseline_label = QtWidgets.QLabel()
        self.baseline_label.setWordWrap(True)   # a baseline's n/a carries its reason: the line can be long
        self.baseline_label.setToolTip(RUN_LINE_TIP)
        self.no_mel_label = QtWidgets.QLabel(NO_MEL_TEXT)
        self.no_mel_label.setWordWrap(True)
        self.no_mel_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.no_mel_label.setVisible(False)
        self.scores: tuple[float | None, float | None, float | None] = (None, None, None)
        """The run's (decoder, global-mean, song-mean) dynamic r as last drawn (:func:`run_scores`)."""
        self.dynamic_r: float | None = None
        """The newest rolling dynamic r drawn, or None before the first."""
        self.shifted_r: float | None = None
        """Its shifted-stimulus control over the same frames (None where there is none)."""
        self.r_window_s: float | None = None
        """Seconds of frames the rolling r spans (the summary's ``truth.dynamic_r_window_s``), or None before
        the first summary."""
        self.silence: str | None = None
        """``"stalled"`` or ``"lost"`` while the stream sends nothing (the figures are frozen), else None."""
        self._summary: dict = {}

        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.decoded_plot, 1)
        row.addWidget(self.truth_plot, 1)
        row.addWidget(self.no_mel_label, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row, 3)
        layout.addWidget(self.r_label)
        layout.addWidget(self.baseline_label)
        layout.addWidget(self.r_plot, 1)

        self._r_times: collections.deque[float] = collections.deque(maxlen=4096)
        self._r_values: collections.deque[float] = collections.deque(maxlen=4096)
        self._r_since: float | None = None   # when the history's first r was drawn (the deque forgets it)
        self.has_truth = False
        self.n_updates = 0
        self.set_truth_visible(False)
        self.r_plot.setLabel("left", "dynamic r")
        self._write_labels()

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt name)
        """The layout's least size, with the wrapped run line as tall as its lines at the panel's width: the
        layout counts it as one line, and a splitter that gave the panel no more than that drew the r label
        over the mel plots' time axis."""
        hint = super().minimumSizeHint()
        label = self.baseline_label
        if not label.isHidden():
            wrapped = label.heightForWidth(self.width())
            hint.setHeight(hint.height() + max(0, wrapped - label.minimumSizeHint().height()))
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.updateGeometry()   # another width wraps the run line onto another number of lines

    def set_truth_visible(self, visible: bool) -> None:
        """Show or hide the truth column and the r plot (never beside a waveform model's "no mel" text: a
        truth kept to play the stimulus, ``--listen true``, gave an empty true mel and r plot there)."""
        visible = visible and not self.no_mel_label.isVisibleTo(self)
        self.has_truth = visible
        for widget in (self.truth_plot, self.r_plot, self.r_label, self.baseline_label):
            widget.setVisible(visible)

    def new_run(self) -> None:
        """Forget the last decode's rolling r and its history: a decode started again in the same window
        (maybe another model or stream) begins its own, instead of drawing on after the last one's line."""
        self._r_times.clear()
        self._r_values.clear()
        self._r_since = None
        self.r_curve.setData([], [])
        self._span_r_history(0.0)
        self.dynamic_r = self.shifted_r = None
        self.show_frozen(None)
        self.update_scores(None)   # the whole run's line too: until this run's first summary, nothing

    def show_model_output(self, output_kind: str | None) -> None:
        """Say so in place of the plots when the model outputs audio directly (``output_kind`` ``audio``):
        an empty "decoded mel" plot with no true mel beside it, and no word why, looked broken."""
        waveform = output_kind == "audio"
        self.no_mel_label.setVisible(waveform)
        self.decoded_plot.setVisible(not waveform)
        if waveform:
            self.set_truth_visible(False)

    period_s = 0.0
    """Redraw whenever a new frame arrived (the :class:`gui.panel.Panel` contract)."""

    def redraw_key(self, view) -> tuple | None:
        """Changes with each decoded frame or window, with the run's scores, or when the stream stops or
        comes back; None before the first mel."""
        snapshot = view.snapshot
        if snapshot.mel is None:
            return None
        scores = run_scores(view.summary)
        return (snapshot.frame_index, view.counters.get("windows"), np.asarray(snapshot.mel).shape, scores,
                view.silence)

    def draw(self, view, now: float) -> None:
        """Draw the view's decoded and true mel, and the run's scores beside their baselines."""
        snapshot = view.snapshot
        # a frozen r is no new point of its history: drawn again, it drew a flat line up to now
        dynamic_r = None if view.silence else snapshot.dynamic_r
        self.update_mel(snapshot.mel, snapshot.truth_mel, dynamic_r, now,
                        shifted_r=None if view.silence else snapshot.shifted_dynamic_r)
        self.update_scores(view.summary)
        self.show_frozen(view.silence)

    def update_scores(self, summary) -> None:
        """Show the run's dynamic r beside the global-mean and song-mean baselines on the same frames.

        Parameters
        ----------
        summary : dict or None
            The decode's run summary (``dynamic_r_total``, ``baseline_dynamic_r_total``, and
            ``truth.dynamic_r_window_s``: the rolling r's window).
        """
        self._summary = dict(summary or {})
        self.scores = run_scores(self._summary)
        window_s = (self._summary.get("truth") or {}).get("dynamic_r_window_s")
        if window_s and window_s != self.r_window_s:
            self.r_window_s = float(window_s)
            self.r_plot.setLabel("left", f"r ({self.r_window_s:.0f} s)")   # fits the plot's least height
        self._write_labels()

    def show_frozen(self, silence: str | None) -> None:
        """Mark the r figures and the mel plots as frozen while the stream is ``"stalled"`` or ``"lost"``
        (they looked live, in black, for as long as no sample came); None: live again."""
        if silence == self.silence:
            return
        self.silence = silence
        frozen = " — frozen" if silence else ""   # short: the labels below say why
        self.decoded_plot.setTitle(f"decoded mel{frozen}")
        self.truth_plot.setTitle(f"true mel (stimulus){frozen}")
        for label in (self.r_label, self.baseline_label):
            label.setStyleSheet(FROZEN_STYLE if silence else "")
        self._write_labels()

    def _frozen_words(self) -> str:
        return f" — frozen: stream {self.silence}" if self.silence else ""

    def _write_labels(self) -> None:
        """The rolling r over its window and the whole run's r beside its baselines, worded as decode does."""
        window = "recent frames" if self.r_window_s is None else f"last {self.r_window_s:.0f} s"
        recent = "—" if self.dynamic_r is None else format_r(self.dynamic_r)
        frozen = self._frozen_words()
        control = "" if self.dynamic_r is None else recent_words(self.shifted_r, short=True)
        self.r_label.setText(f"dynamic r, {window}: {recent}{control}{frozen}")
        run_line = baseline_line(self._summary, short=True)   # the whole line, as decode prints it: on hover
        if self.baseline_label.text() != run_line + frozen:
            self.baseline_label.setText(run_line + frozen)
            self.baseline_label.setToolTip(f"{RUN_LINE_TIP}\n\n{baseline_line(self._summary)}{frozen}")
            self.updateGeometry()   # it may wrap onto another number of lines

    def update_mel(self, mel: np.ndarray, truth_mel: np.ndarray | None = None,
                   dynamic_r: float | None = None, now: float | None = None, *,
                   shifted_r: float | None = None) -> None:
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
        shifted_r : float, optional
            The shifted-stimulus control over the same frames as ``dynamic_r``, shown beside it.
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
            if self._r_since is None:
                self._r_since = now
            self._r_times.append(now)
            self._r_values.append(float(dynamic_r))
            t = np.fromiter(self._r_times, dtype=float) - now
            keep = t >= -R_HISTORY_S
            self.r_curve.setData(t[keep], np.fromiter(self._r_values, dtype=float)[keep])
            self._span_r_history(now - self._r_since)
            self.dynamic_r = float(dynamic_r)
            self.shifted_r = shifted_r
            self._write_labels()
        self.n_updates += 1

    def _span_r_history(self, recorded_s: float) -> None:
        """Let the r history's time axis span ``recorded_s`` seconds of history, rounded up to whole seconds,
        within :data:`R_HISTORY_MIN_S` … :data:`R_HISTORY_S`; the axis is set only when that changes."""
        span_s = min(R_HISTORY_S, max(R_HISTORY_MIN_S, float(math.ceil(recorded_s))))
        if span_s != self.r_span_s:
            self.r_span_s = span_s
            self.r_plot.setXRange(-span_s, 0.0, padding=0.0)

    @staticmethod
    def _draw(image: pg.ImageItem, mel: np.ndarray) -> None:
        n_mels, n_frames = mel.shape
        image.setImage(mel, autoLevels=False, levels=MEL_LEVELS)
        duration = n_frames / FRAME_RATE
        image.setRect(QtCore.QRectF(-duration, 0.0, duration, n_mels))
