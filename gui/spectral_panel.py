"""The spectral panel: band power of every channel as a heatmap, and one band as a scalp map.

Band power is Welch's PSD (1-s Hann segments, half overlap) of the last few seconds, integrated over
each band, shown in dB re 1 µV². The scalp map places each electrode at its GSN-HydroCel position
(``stream/montage.py``) seen from above (azimuthal equidistant projection around the vertex). The
heatmap shares one colour scale across bands (so bands compare); the scalp map has its own, the chosen
band's range, because one band's spread across the head is small next to the differences between bands.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import pyqtgraph as pg
from eegmusic.stream.montage import canonical_label, electrode_positions
from PySide6 import QtCore, QtWidgets
from scipy.signal import welch

log = logging.getLogger(__name__)

BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}
"""EEG bands in Hz, lower edge included, upper excluded (gamma stops below the mains frequency)."""

SPECTRUM_S = 4.0
"""Seconds of signal the band power is computed from."""

MIN_SPECTRUM_S = 1.0
"""Fewest seconds of signal for a band power: one Welch segment (1 Hz resolution, so delta is covered)."""

COLORMAP = "viridis"

PALETTE_SIZE = 32
"""Colours of the scalp map (band power is quantised to this many levels)."""

NO_VALUE_COLOR = (200, 200, 200)
"""Scalp-map fill of an electrode without a band power (NaN): grey, outside the palette."""

POWER_LABEL = "dB re 1 µV²"
"""Unit on the band-power colour bars (power is shown as 10·log10 of µV²)."""


def band_power(
    eeg: np.ndarray, sfreq: float, bands: dict[str, tuple[float, float]] = BANDS, *,
    seconds: float = SPECTRUM_S,
) -> np.ndarray:
    """Power of each channel in each band from the newest ``seconds`` of signal.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
        Signal in µV, oldest first.
    sfreq : float
        Sample rate in Hz.
    bands : dict name -> (low_hz, high_hz)
    seconds : float
        Length of the analysed stretch (the newest samples).

    Returns
    -------
    power : ndarray, shape (n_chans, n_bands)
        Band power in µV² (the PSD integrated over the band); NaN for a channel containing NaN, for a
        band above the Nyquist frequency, and everywhere when there is less than ``MIN_SPECTRUM_S`` of
        signal (a shorter segment would not resolve the low bands).
    """
    n_keep = min(eeg.shape[1], int(round(seconds * sfreq)))
    segment = eeg[:, eeg.shape[1] - n_keep:]
    nperseg = int(round(MIN_SPECTRUM_S * sfreq))
    power = np.full((eeg.shape[0], len(bands)), np.nan)
    if n_keep < nperseg or nperseg < 8:
        return power
    freqs, psd = welch(segment, fs=sfreq, nperseg=nperseg, axis=-1)
    df = freqs[1] - freqs[0]
    for j, (low, high) in enumerate(bands.values()):
        in_band = (freqs >= low) & (freqs < high)
        if in_band.any():
            power[:, j] = psd[:, in_band].sum(axis=1) * df
    return power


def color_levels(values: np.ndarray) -> np.ndarray | None:
    """The colour range for ``values``: their 2nd to 98th percentile, at least 1 dB wide.

    Returns
    -------
    levels : ndarray, shape (2,), or None when no value is finite
    """
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    levels = np.percentile(finite, [2.0, 98.0])
    if levels[1] - levels[0] < 1.0:
        levels = levels + np.array([-0.5, 0.5])
    return levels


def _smoothed(old: np.ndarray | None, new: np.ndarray | None) -> np.ndarray | None:
    """Move colour levels towards the new ones, so colours mean the same from one update to the next."""
    if new is None:
        return old
    return new if old is None else old + 0.3 * (new - old)


@lru_cache(maxsize=1)
def _head_centre() -> np.ndarray:
    """Centre of the sphere best fitting the whole net (least squares: |p|² = 2 p·c + r² − |c|²)."""
    pos = electrode_positions([f"E{i}" for i in range(1, 130)])
    design = np.column_stack([2 * pos, np.ones(len(pos))])
    solution, *_ = np.linalg.lstsq(design, (pos**2).sum(axis=1), rcond=None)
    return solution[:3]


@lru_cache(maxsize=8)
def scalp_xy(labels: tuple[str, ...]) -> np.ndarray:
    """Electrode positions seen from above, unit radius at the ear line.

    Parameters
    ----------
    labels : tuple of str
        Channel labels: the GSN net's (``E1``…``E129``, ``Cz``), or, with MNE installed, those of any
        standard montage (10-20/10-05 names, BioSemi ``A1``…).

    Returns
    -------
    xy : ndarray, shape (n_chans, 2)
        x to the right ear, y to the nose; NaN for labels no montage has.
    """
    known = []
    for label in labels:
        try:
            electrode_positions([canonical_label(label)])
            known.append(True)
        except KeyError:
            known.append(False)
    xy = np.full((len(labels), 2), np.nan)
    if not any(ok and canonical_label(label) != "Cz" for label, ok in zip(labels, known, strict=True)):
        return _standard_xy(labels)  # no E-numbered electrode: a 10-20/10-05 or other montage
    pos = electrode_positions([canonical_label(lb) for lb, ok in zip(labels, known, strict=True) if ok])
    xy[np.asarray(known)] = _azimuthal(pos - _head_centre())
    return xy


def _azimuthal(centred: np.ndarray) -> np.ndarray:
    """Azimuthal equidistant projection around +z of sphere-centred positions (unit at the equator)."""
    radius = np.linalg.norm(centred, axis=1)
    polar = np.arccos(np.clip(centred[:, 2] / radius, -1.0, 1.0))  # 0 at the vertex
    azimuth = np.arctan2(centred[:, 1], centred[:, 0])
    return np.column_stack([np.cos(azimuth), np.sin(azimuth)]) * (polar / (np.pi / 2))[:, None]


def _standard_xy(labels: tuple[str, ...]) -> np.ndarray:
    """:func:`scalp_xy` for labels of other montages (head frame via MNE; NaN without MNE)."""
    from eegmusic.stream.errors import EEGMusicError
    from eegmusic.stream.interpolation import fit_sphere
    from eegmusic.stream.montage import head_positions, resolve_montage_name

    try:
        pos = head_positions(labels, strict=False)
        reference = head_positions(["Fp1", "Fp2", "O1", "O2", "T7", "T8", "Cz", "Fz", "Pz", "C3", "C4",
                                    "F7", "F8", "P7", "P8"], montage=resolve_montage_name("standard_1005"))
    except EEGMusicError:  # MNE missing: only the GSN net can be placed
        return np.full((len(labels), 2), np.nan)
    centre, _ = fit_sphere(reference)
    pole = (reference[6] - centre) / np.linalg.norm(reference[6] - centre)   # Cz straight up
    right = np.cross([0.0, 1.0, 0.0], pole)
    right /= np.linalg.norm(right)
    rotation = np.stack([right, np.cross(pole, right), pole])
    xy = np.full((len(labels), 2), np.nan)
    known = np.all(np.isfinite(pos), axis=1)
    if known.any():
        xy[known] = _azimuthal((pos[known] - centre) @ rotation.T)
    return xy


def _labelled_colorbar(colormap, *, width: int) -> pg.ColorBarItem:
    """A fixed colour bar with the power unit beside its values (on the bar's own, unvalued side the
    label was drawn over the colours)."""
    bar = pg.ColorBarItem(colorMap=colormap, interactive=False, width=width)
    bar.axis.setLabel(POWER_LABEL)
    bar.axis.setWidth(None)   # wide enough for values and label
    return bar


class SpectralPanel(QtWidgets.QWidget):
    """Heatmap of band power (channels × bands) and a scalp map of one chosen band."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.colormap = pg.colormap.get(COLORMAP)
        self.heatmap = pg.PlotWidget(background="w")
        self.heatmap.setMenuEnabled(False)
        self.heatmap.setMouseEnabled(x=False, y=False)
        self.heatmap.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(self.colormap)
        self.heatmap.addItem(self.image)
        bottom = self.heatmap.getAxis("bottom")
        bottom.setTicks([[(j + 0.5, name) for j, name in enumerate(BANDS)], []])
        left = self.heatmap.getAxis("left")
        left.enableAutoSIPrefix(False)   # channel numbers: "(x0.001)" on an empty plot meant nothing
        left.setLabel("channel")
        self.colorbar = _labelled_colorbar(self.colormap, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.heatmap.getPlotItem())

        self.band = QtWidgets.QComboBox()
        self.band.addItems(list(BANDS))
        self.band.setCurrentText("alpha")
        self.scalp = pg.PlotWidget(background="w")
        self.scalp.setMenuEnabled(False)
        self.scalp.setMouseEnabled(x=False, y=False)
        self.scalp.hideButtons()
        self.scalp.setAspectLocked(True)
        self.scalp.hideAxis("left")
        self.scalp.hideAxis("bottom")
        self.scalp.setToolTip("colours: the chosen band's own range (its colour bar); grey: no value "
                              "(a channel without signal, or a band above the Nyquist frequency)")
        outline = np.linspace(0, 2 * np.pi, 100)
        # the unit circle is the ear line; the lowest electrodes of the net lie outside it
        head = pg.PlotCurveItem(np.cos(outline), np.sin(outline), pen=pg.mkPen((90, 90, 90)))
        nose = pg.PlotCurveItem([-0.12, 0.0, 0.12], [0.99, 1.14, 0.99], pen=pg.mkPen((90, 90, 90)))
        self.spots = pg.ScatterPlotItem(size=9, pen=pg.mkPen((60, 60, 60), width=0.5))
        for item in (head, nose, self.spots):
            self.scalp.addItem(item)
        self.scalp.setRange(xRange=(-1.65, 1.65), yRange=(-1.65, 1.65), padding=0.0)
        self.scalp_colorbar = _labelled_colorbar(self.colormap, width=10)
        self.scalp.getPlotItem().layout.addItem(self.scalp_colorbar, 2, 5)   # right of the map

        self.title = QtWidgets.QLabel()
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(QtWidgets.QLabel("scalp map, own colour scale:"))
        top.addWidget(self.band)
        plots = QtWidgets.QHBoxLayout()
        plots.addWidget(self.heatmap, 3)
        plots.addWidget(self.scalp, 2)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(plots, 1)
        self.band.currentIndexChanged.connect(self._draw_scalp)

        self._palette = [pg.mkBrush(c) for c in self.colormap.getLookupTable(nPts=PALETTE_SIZE, alpha=False)]
        self._no_value = pg.mkBrush(NO_VALUE_COLOR)
        self.n_updates = 0
        self.clear()

    def clear(self) -> None:
        """Back to the empty state: no band power, no colour scales, the title waiting for signal."""
        self.power_db: np.ndarray | None = None
        self.labels: tuple[str, ...] = ()
        self._levels: np.ndarray | None = None
        # each band's own smoothed colour levels (low, high), for the scalp map
        self._band_levels: list[np.ndarray | None] = [None] * len(BANDS)
        self._ticks_for: tuple | None = None
        self._scalp_for: tuple[str, ...] | None = None
        self.image.clear()
        self.spots.clear()
        self.heatmap.getAxis("left").setTicks([[], []])   # no channel ticks before there are channels
        self.colorbar.hide()        # pyqtgraph's default 0-1 range would read as a power
        self.scalp_colorbar.hide()
        self.title.setText(f"band power: waiting for {MIN_SPECTRUM_S:g} s of signal")

    period_s = 1.0
    """Seconds between band-power updates (the :class:`gui.panel.Panel` contract)."""

    def redraw_key(self, view) -> tuple | None:
        """New EEG samples (:class:`gui.panel.PanelView`), or None without EEG."""
        return view.eeg_key

    def draw(self, view, now: float) -> None:
        """Recompute band power from the view's EEG."""
        self.update_spectrum(view.eeg, view.snapshot.eeg_sfreq, view.snapshot.labels)

    def update_spectrum(self, eeg: np.ndarray, sfreq: float, labels) -> None:
        """Recompute band power from the newest samples of ``eeg`` and redraw.

        With less than ``MIN_SPECTRUM_S`` of signal the panel is emptied (:meth:`clear`): such a short
        recent signal means a new stream, so what is drawn belongs to an earlier one.

        Parameters
        ----------
        eeg : ndarray, shape (n_chans, n_times)
            Recent signal in µV.
        sfreq : float
            Its sample rate in Hz.
        labels : sequence of str, length n_chans
        """
        eeg = np.asarray(eeg, dtype=np.float64)
        if eeg.ndim != 2 or sfreq <= 0:
            return
        span_s = min(eeg.shape[1] / sfreq, SPECTRUM_S)
        if span_s < MIN_SPECTRUM_S:
            if self.power_db is not None:
                self.clear()
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            power_db = 10.0 * np.log10(band_power(eeg, sfreq))
        power_db[~np.isfinite(power_db)] = np.nan
        self.power_db = power_db
        self.labels = tuple(labels)
        n_chans = power_db.shape[0]
        self._levels = _smoothed(self._levels, color_levels(power_db))
        self._band_levels = [_smoothed(old, color_levels(power_db[:, j]))
                             for j, old in enumerate(self._band_levels)]
        if self._levels is not None:
            self.colorbar.setLevels(tuple(self._levels))
            self.colorbar.show()
        # row-major image: rows = channels (first channel on top), columns = bands
        self.image.setImage(power_db[::-1], autoLevels=False,
                            levels=tuple(self._levels) if self._levels is not None else (0.0, 1.0))
        self.image.setRect(QtCore.QRectF(0.0, 0.0, power_db.shape[1], n_chans))
        height = max(self.heatmap.getViewBox().height(), 60.0)
        step = max(1, int(np.ceil(n_chans * 14.0 / height)))  # ~14 px per label
        if self._ticks_for != (self.labels, step):
            self.heatmap.getAxis("left").setTicks(
                [[(n_chans - i - 0.5, self.labels[i] if i < len(self.labels) else str(i + 1))
                  for i in range(0, n_chans, step)], []])
            self._ticks_for = (self.labels, step)
        self._draw_scalp()
        self.title.setText(f"band power, last {span_s:.1f} s")
        self.n_updates += 1

    def _draw_scalp(self) -> None:
        if self.power_db is None:
            return
        band = self.band.currentIndex()
        levels = self._band_levels[band]
        xy = scalp_xy(self.labels)
        shown = np.isfinite(xy[:, 0])
        values = self.power_db[shown, band]
        brushes = [self._no_value] * len(values)
        if levels is not None:
            low, high = levels
            scaled = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
            # a fixed palette: the scatter item renders each distinct brush once and caches it
            for i in np.flatnonzero(np.isfinite(scaled)):
                brushes[i] = self._palette[int(np.rint(scaled[i] * (len(self._palette) - 1)))]
            self.scalp_colorbar.setLevels(tuple(levels))
            self.scalp_colorbar.show()
        else:
            self.scalp_colorbar.hide()    # no value in this band: no range to state
        if self._scalp_for != self.labels:
            self.spots.setData(xy[shown, 0], xy[shown, 1], brush=brushes)
            self._scalp_for = self.labels
        else:
            self.spots.setBrush(brushes)
