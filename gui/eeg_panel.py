"""The EEG panel: every channel stacked, the last 10 s scrolling, bad channels highlighted.

Drawing 128 channels at full resolution is too slow for software rendering (about 70 ms a frame at
5000 points per channel), so each channel is first reduced to about the pixel width of the plot as
(min, max) pairs per bin (:func:`minmax_reduce`): the envelope a full-resolution drawing would show,
at a fraction of the points. Good channels are drawn as a few curves of 16 rows each (rows separated
by NaN, ``connect="finite"``), flagged ones as one red curve over a red band; the buffers are reused
between redraws. Qt's draw call holds the GIL while it rasterises, so splitting the traces into
several calls lets the decoding threads run between them.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

WINDOW_S = 10.0
"""Seconds of signal shown."""

FLAT_UV = 0.05
"""A channel whose peak-to-peak range over the shown window is below this (µV) is flagged flat."""
NO_MEASUREMENT = "no measurement"
"""The reason shown for a channel the inlet reports bad (:meth:`stream.inlet.Inlet.bad_channels`)."""

RAIL_UV = 1000.0
"""Samples at or beyond this magnitude (µV) count as railed (amplifier saturation)."""

RAIL_FRACTION = 0.01
"""A channel with more than this fraction of railed bins is flagged railed."""

HEADER_LABEL_MIN_PX = 40
"""Least width of each header text (title, flagged channels, the row scale): shorter, it is cut."""

GROUP_CHANNELS = 16
"""Channels per drawn curve (one Qt draw call each)."""

GOOD_PEN = pg.mkPen((20, 20, 20), width=1)
FLAG_PEN = pg.mkPen((210, 30, 30), width=1)
FLAG_BRUSH = pg.mkBrush(255, 60, 60, 45)


def reduction_plan(n_times: int, n_bins: int) -> tuple[int, int, int]:
    """How :func:`minmax_reduce` splits ``n_times`` samples into at most ``n_bins`` bins.

    Every sample is used: the newest bins hold ``per_bin`` samples each, the oldest bin the rest.

    Returns
    -------
    per_bin : int
        Samples per bin (1 when the signal is left unreduced).
    n_out_bins : int
        Number of bins (``n_times`` when unreduced).
    head : int
        Samples in the oldest bin (1 … per_bin).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    if n_times <= 2 * n_bins:
        return 1, n_times, 1
    per_bin = -(-n_times // n_bins)
    n_out_bins = -(-n_times // per_bin)
    return per_bin, n_out_bins, n_times - (n_out_bins - 1) * per_bin


def point_positions(n_times: int, n_bins: int) -> np.ndarray:
    """Sample position (fractional index) of every point :func:`minmax_reduce` returns.

    Both points of a (min, max) pair sit at the centre of their bin.

    Returns
    -------
    positions : ndarray, shape (n_points,)
    """
    per_bin, n_out_bins, head = reduction_plan(n_times, n_bins)
    if per_bin == 1:
        return np.arange(n_times, dtype=np.float64)
    starts = np.concatenate([[0], head + per_bin * np.arange(n_out_bins - 1)])
    stops = np.concatenate([[head], head + per_bin * np.arange(1, n_out_bins)])
    return np.repeat((starts + stops - 1) / 2.0, 2)


def minmax_reduce(eeg: np.ndarray, n_bins: int, out: np.ndarray | None = None) -> np.ndarray:
    """Reduce each channel to at most ``n_bins`` (min, max) pairs, using every sample.

    When a channel has no more than ``2 * n_bins`` samples it is returned unreduced (a pair per bin
    would not draw fewer points). See :func:`reduction_plan` for the bins and
    :func:`point_positions` for where each point belongs in time.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
    n_bins : int
        Most bins per channel (about half the plot width in pixels).
    out : ndarray, shape (n_chans, 2 * n_out_bins), optional
        Buffer to write into (reused between redraws); allocated when None or of the wrong shape.

    Returns
    -------
    reduced : ndarray, shape (n_chans, 2 * n_out_bins) or (n_chans, n_times)
        Interleaved ``min, max, min, max, ...`` per bin, oldest first. NaN in a bin makes both of its
        values NaN.
    """
    n_chans, n_times = eeg.shape
    per_bin, n_out_bins, head = reduction_plan(n_times, n_bins)
    if per_bin == 1:
        return eeg
    if out is None or out.shape != (n_chans, 2 * n_out_bins) or out.dtype != eeg.dtype:
        out = np.empty((n_chans, 2 * n_out_bins), dtype=eeg.dtype)
    np.min(eeg[:, :head], axis=1, out=out[:, 0])
    np.max(eeg[:, :head], axis=1, out=out[:, 1])
    body = eeg[:, head:].reshape(n_chans, n_out_bins - 1, per_bin)
    lows, highs = out[:, 2::2], out[:, 3::2]
    # elementwise over the (few) samples of a bin: much faster than a reduction along a short axis
    np.copyto(lows, body[:, :, 0])
    np.copyto(highs, body[:, :, 0])
    for k in range(1, per_bin):
        np.minimum(lows, body[:, :, k], out=lows)
        np.maximum(highs, body[:, :, k], out=highs)
    return out


def detect_channel_flags(
    eeg: np.ndarray, *, flat_uv: float = FLAT_UV, rail_uv: float = RAIL_UV,
    rail_fraction: float = RAIL_FRACTION,
) -> list[str]:
    """Name what is wrong with each channel: ``"nan"``, ``"flat"``, ``"railed"`` or ``""`` (fine).

    Works on raw samples or on :func:`minmax_reduce` output alike (min/max keep NaN and extremes).

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
        Signal in µV.
    flat_uv : float
        Peak-to-peak range (µV) below which a channel is flat.
    rail_uv : float
        Magnitude (µV) at which a sample counts as railed.
    rail_fraction : float
        Fraction of railed samples above which the channel is railed.

    Returns
    -------
    reasons : list of str, one per channel
    """
    n_chans = eeg.shape[0]
    if eeg.shape[1] == 0:
        return [""] * n_chans
    has_nan = np.isnan(eeg).any(axis=1)
    with np.errstate(invalid="ignore"):
        ptp = np.nanmax(eeg, axis=1) - np.nanmin(eeg, axis=1) if not has_nan.all() else np.zeros(n_chans)
        railed = (np.abs(eeg) >= rail_uv).mean(axis=1) > rail_fraction
    reasons = []
    for i in range(n_chans):
        if has_nan[i]:
            reasons.append("nan")
        elif railed[i]:
            reasons.append("railed")
        elif ptp[i] < flat_uv:
            reasons.append("flat")
        else:
            reasons.append("")
    return reasons


def merge_flags(detected: list[str], given, n_chans: int) -> list[str]:
    """Combine the panel's own flags with the pipeline's ``channel_flags``.

    Parameters
    ----------
    detected : list of str
        From :func:`detect_channel_flags`.
    given : None, sequence of bool or str, or dict label -> reason
        The pipeline's flags; a true value or a non-empty string (other than ``"ok"``) flags a channel.
    n_chans : int

    Returns
    -------
    reasons : list of str, one per channel (``""`` when fine)
    """
    reasons = list(detected)
    if given is None or isinstance(given, dict):
        return reasons
    given = list(given)
    for i, flag in enumerate(given[:n_chans]):
        if reasons[i]:
            continue
        if isinstance(flag, str | bytes):
            text = flag.decode() if isinstance(flag, bytes) else flag
            if text and text.lower() not in ("ok", "good", "none"):
                reasons[i] = text
        elif bool(flag):
            reasons[i] = "flagged"
    return reasons


class EEGPanel(QtWidgets.QWidget):
    """All channels stacked, newest sample at the right edge, bad channels in red.

    Call :meth:`update_eeg` with the pipeline's recent signal; the panel keeps its buffers and redraws
    only what it is given (it never polls anything itself).
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, window_s: float = WINDOW_S):
        super().__init__(parent)
        self.window_s = float(window_s)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=True)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "time", units="s")
        left = self.plot.getAxis("left")
        left.setStyle(tickLength=0, textFillLimits=[(0, 1.0)])
        # channel names come with the first EEG; until then the default 0-1 axis drew 50 number labels
        left.setTicks([[], []])
        self.plot.setXRange(-self.window_s, 0.0, padding=0.0)
        self.bands = pg.BarGraphItem(x0=[], y0=[], width=[], height=[], brush=FLAG_BRUSH, pen=pg.mkPen(None))
        self.flag_curve = pg.PlotCurveItem(pen=FLAG_PEN, connect="finite")
        self.good_curves: list[pg.PlotCurveItem] = []
        for item in (self.bands, self.flag_curve):
            self.plot.addItem(item)

        self.scale_mode = QtWidgets.QComboBox()
        self.scale_mode.addItems(["per channel", "common"])
        self.scale_mode.setToolTip("per channel: each trace scaled to its own amplitude; "
                                   "common: one µV scale for all (relative amplitudes visible)")
        self.gain = QtWidgets.QDoubleSpinBox()
        self.gain.setRange(0.1, 20.0)
        self.gain.setSingleStep(0.25)
        self.gain.setValue(1.0)
        self.gain.setPrefix("gain ×")
        self.title = QtWidgets.QLabel("EEG")
        # what a row's height means: traces carry no µV axis of their own
        self.scale_label = QtWidgets.QLabel("")
        self.scale_label.setStyleSheet("color: #505050")
        # a new scale redraws the last EEG at once: stopped, or with the stream lost, nothing else would
        # (the label then disagreed with the traces)
        self.scale_mode.currentIndexChanged.connect(self._redraw)
        self.gain.valueChanged.connect(self._redraw)
        self.flag_label = QtWidgets.QLabel("")
        self.flag_label.setStyleSheet("color: #c01e1e")
        for label in (self.title, self.flag_label, self.scale_label):
            # the header's texts give way on a narrow window (their whole text is the tooltip): at their full
            # width they held the EEG column at 600 px and cut the right column's counters to "conne…"
            label.setMinimumWidth(HEADER_LABEL_MIN_PX)
        bar = QtWidgets.QHBoxLayout()
        for widget in (self.title, self.flag_label):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(self.scale_label)
        bar.addWidget(self.scale_mode)
        bar.addWidget(self.gain)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)

        self._reduced: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._x: np.ndarray | None = None
        self._x_key: tuple | None = None
        self._amplitude: np.ndarray | None = None
        self._common_spread: float | None = None
        # what the last update_eeg drew (its reduced EEG, flags and geometry), for a redraw at a new scale
        self._last_draw: tuple | None = None
        self._layout_key: tuple | None = None
        self.reasons: list[str] = []
        self.labels: tuple[str, ...] = ()
        self.n_updates = 0

    def n_bins(self) -> int:
        """Bins per channel: half the plot's width in pixels, so that a channel is ~1 point per pixel."""
        width = self.plot.getViewBox().width() if self.plot.isVisible() else 0
        if width < 50:
            width = max(self.plot.width() - 60, 400)
        return max(int(width) // 2, 100)

    period_s = 0.0
    """Redraw whenever new samples arrived (the :class:`gui.panel.Panel` contract)."""

    def redraw_key(self, view) -> tuple | None:
        """New EEG samples (:class:`gui.panel.PanelView`), or None without EEG."""
        return view.eeg_key

    def draw(self, view, now: float) -> None:
        """Draw the view's EEG; the channels the inlet reports without a measurement are named so."""
        snapshot = view.snapshot
        self.update_eeg(view.eeg, snapshot.eeg_sfreq, snapshot.labels, snapshot.channel_flags,
                        no_measurement=() if view.health is None else view.health.bad_channels)

    def update_eeg(self, eeg: np.ndarray, sfreq: float, labels, flags=None, no_measurement=()) -> None:
        """Draw the newest ``window_s`` seconds of ``eeg``.

        Parameters
        ----------
        eeg : ndarray, shape (n_chans, n_times)
            Recent signal in µV, oldest first; the last sample is drawn at t = 0.
        sfreq : float
            Sample rate of ``eeg`` in Hz.
        labels : sequence of str, length n_chans
        flags : optional
            The pipeline's ``channel_flags`` (see :func:`merge_flags`).
        no_measurement : collection of str
            Labels of channels the inlet has had no measurement from (NaN/Inf or beyond ±1 V) for over a
            second (``StreamHealth.bad_channels``). It zeroes them, so the panel alone would call them
            "flat" and send the user to a quiet electrode, not to a broken one or the sender's units.
        """
        eeg = np.asarray(eeg)
        if eeg.ndim != 2 or eeg.shape[0] == 0 or eeg.shape[1] < 2 or sfreq <= 0:
            return
        n_keep = min(eeg.shape[1], int(round(self.window_s * sfreq)))
        window = eeg[:, eeg.shape[1] - n_keep:]
        if window.dtype != np.float32:
            window = window.astype(np.float32)
        n_bins = self.n_bins()
        reduced = minmax_reduce(window, n_bins, out=self._reduced)
        if reduced is not window:
            self._reduced = reduced
        reasons = merge_flags(detect_channel_flags(reduced), flags, reduced.shape[0])
        if no_measurement:
            missing = set(no_measurement)
            reasons = [NO_MEASUREMENT if i < len(labels) and labels[i] in missing else reason
                       for i, reason in enumerate(reasons)]
        centre = self._levels(reduced)
        self._last_draw = (reduced, centre, reasons, n_keep, n_bins, sfreq)
        self._draw(*self._last_draw)
        self._update_layout(tuple(labels), reasons)
        self.n_updates += 1

    def trace_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) points of the good channels' traces as drawn (rows separated by NaN)."""
        parts = [curve.getData() for curve in self.good_curves]
        parts = [(x, y) for x, y in parts if x is not None and len(x)]
        if not parts:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    def _buffers(self, n_chans: int, n_points: int, n_keep: int, n_bins: int, sfreq: float):
        key = (n_chans, n_points, n_keep, n_bins, sfreq)
        if key != self._x_key:
            # x of every point (seconds before the newest sample), one NaN after each row
            t = (point_positions(n_keep, n_bins) - (n_keep - 1)) / sfreq
            row = np.append(t, np.nan).astype(np.float32)
            self._x = np.tile(row, GROUP_CHANNELS)
            self._y = np.empty((n_chans, n_points + 1), dtype=np.float32)
            self._x_key = key
            n_groups = -(-n_chans // GROUP_CHANNELS)
            while len(self.good_curves) < n_groups:
                curve = pg.PlotCurveItem(pen=GOOD_PEN, connect="finite")
                self.plot.addItem(curve)
                self.good_curves.append(curve)
            for curve in self.good_curves[n_groups:]:
                curve.setData([], [])
        self._y[:, -1] = np.nan
        return self._x, self._y

    def _levels(self, reduced: np.ndarray) -> np.ndarray:
        """Each channel's centre in new EEG (returned), and its drawn amplitude moved towards the new
        one, so traces do not pump from one update to the next. Only new EEG moves it: a redraw at a
        new scale keeps it, or toggling the scale while stopped would change what a row spans each time."""
        with np.errstate(invalid="ignore"):
            has_nan = np.isnan(reduced).any()
            centre = np.nanmean(reduced, axis=1) if has_nan else reduced.mean(axis=1)
            amplitude = np.nanstd(reduced, axis=1) if has_nan else reduced.std(axis=1)
        amplitude = np.nan_to_num(amplitude, nan=1.0)
        if self._amplitude is None or self._amplitude.shape != amplitude.shape:
            self._amplitude = amplitude.copy()
        else:
            self._amplitude += 0.2 * (amplitude - self._amplitude)
        self._common_spread = max(float(np.median(self._amplitude)), FLAT_UV)
        return np.nan_to_num(centre)

    def _draw(self, reduced: np.ndarray, centre: np.ndarray, reasons: list[str], n_keep: int, n_bins: int,
              sfreq: float):
        n_chans, n_points = reduced.shape
        x, y = self._buffers(n_chans, n_points, n_keep, n_bins, sfreq)
        body = y[:, :-1]
        if self.scale_mode.currentIndex() == 0:
            spread = np.maximum(self._amplitude, FLAT_UV)
        else:
            spread = np.full(n_chans, self._common_spread)
        # ±3 SD of a channel fills its row (height 1) at gain 1
        scale = (self.gain.value() * 0.5 / 3.0) / spread
        self._show_scale()
        offsets = np.arange(n_chans - 1, -1, -1, dtype=np.float32)
        np.subtract(reduced, centre[:, None], out=body)
        body *= scale[:, None].astype(np.float32)
        np.clip(body, -1.5, 1.5, out=body)
        body += offsets[:, None]

        flagged = np.fromiter((bool(r) for r in reasons), dtype=bool, count=n_chans)
        if flagged.any():
            bad_idx = np.flatnonzero(flagged)
            bad_y = y[bad_idx]  # a copy, taken before the rows are blanked for the good curves
            # a NaN channel is drawn as a flat line on its baseline, so that its row is not empty
            bad_body = bad_y[:, :-1]
            bad_body[...] = np.where(np.isfinite(bad_body), bad_body, offsets[bad_idx, None])
            self.flag_curve.setData(np.tile(x[:n_points + 1], bad_idx.size), bad_y.ravel(), connect="finite")
            body[bad_idx] = np.nan
        else:
            self.flag_curve.setData([], [])
        # several curves of GROUP_CHANNELS rows: Qt draws each in one call that holds the GIL, so
        # smaller calls let the decoding threads in between them
        row = n_points + 1
        for g, curve in enumerate(self.good_curves[:-(-n_chans // GROUP_CHANNELS)]):
            rows = y[g * GROUP_CHANNELS:(g + 1) * GROUP_CHANNELS]
            curve.setData(x[:rows.shape[0] * row], rows.reshape(-1), connect="finite")

    def row_uv(self) -> float | None:
        """µV spanned by one row's height on the common scale (None per channel, or before any EEG)."""
        if self.scale_mode.currentIndex() == 0 or self._common_spread is None:
            return None
        return 6.0 * self._common_spread / self.gain.value()

    def _redraw(self, *_) -> None:
        if self._last_draw is not None:
            self._draw(*self._last_draw)
        else:
            self._show_scale()

    @staticmethod
    def _set_header(label: QtWidgets.QLabel, text: str) -> None:
        """A header label's text, whole in its tooltip too: a narrow window cuts the label."""
        label.setText(text)
        label.setToolTip(text)

    def _show_scale(self, *_) -> None:
        row = self.row_uv()
        if row is not None:
            self._set_header(self.scale_label, f"one row = {row:.3g} µV")
        elif self.scale_mode.currentIndex() == 0:
            self._set_header(self.scale_label, f"one row = ±{3.0 / self.gain.value():.3g} SD of its channel")
        else:
            self._set_header(self.scale_label, "one row: its µV once EEG arrives")

    def _update_layout(self, labels: tuple[str, ...], reasons: list[str]) -> None:
        n_chans = len(reasons)
        height = max(self.plot.getViewBox().height(), 200.0)
        step = max(1, int(np.ceil(n_chans * 14.0 / height)))  # ~14 px per label
        key = (labels, tuple(reasons), step)
        if key == self._layout_key:
            return
        self._layout_key = key
        self.labels, self.reasons = labels, list(reasons)
        offsets = np.arange(n_chans - 1, -1, -1, dtype=float)
        names = list(labels) + [f"ch{i + 1}" for i in range(len(labels), n_chans)]
        flagged = [i for i, r in enumerate(reasons) if r]
        shown = sorted(set(range(0, n_chans, step)) | set(flagged))
        major = [(offsets[i], f"{names[i]} ({reasons[i]})" if reasons[i] else names[i]) for i in shown]
        self.plot.getAxis("left").setTicks([major, []])
        self.plot.setYRange(-0.7, n_chans - 0.3, padding=0.0)
        self.bands.setOpts(
            x0=np.full(len(flagged), -self.window_s), width=np.full(len(flagged), self.window_s),
            y0=offsets[flagged] - 0.5 if flagged else [], height=np.ones(len(flagged)),
        )
        if flagged:
            text = ", ".join(f"{names[i]} {reasons[i]}" for i in flagged[:6])
            more = f" (+{len(flagged) - 6} more)" if len(flagged) > 6 else ""
            self._set_header(self.flag_label, f"flagged: {text}{more}")
        else:
            self._set_header(self.flag_label, "")
        self._set_header(self.title, f"EEG — {n_chans} channels, last {self.window_s:g} s")

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt name)
        return QtCore.QSize(900, 700)
