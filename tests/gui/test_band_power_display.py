"""What the band-power and EEG panels show: the scalp map's own colour scale, electrodes without a value,
the span the band power is computed from, and no placeholder axes before the first EEG."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.stream.spec import MODEL_CHANNELS
from PySide6 import QtGui

pytestmark = [pytest.mark.gui, pytest.mark.untimed]   # widgets alone: nothing kept in real time

LABELS = list(MODEL_CHANNELS)
SFREQ = 125.0


def _eeg(seconds: float, gamma_uv: np.ndarray | None = None) -> np.ndarray:
    """Strong delta to beta rhythms on every channel, and a weak gamma rhythm of ``gamma_uv`` per channel."""
    rng = np.random.default_rng(7)
    t = np.arange(int(round(seconds * SFREQ))) / SFREQ
    strong = sum(50.0 * np.sin(2 * np.pi * f * t) for f in (2.0, 6.0, 10.0, 20.0))
    if gamma_uv is None:
        gamma_uv = np.linspace(0.1, 0.4, len(LABELS))
    gamma = gamma_uv[:, None] * np.sin(2 * np.pi * 40.0 * t)[None, :]
    return strong[None, :] + gamma + 0.001 * rng.standard_normal((len(LABELS), t.size))


def _palette_index(panel, brush) -> int:
    """Index of ``brush``'s colour in the scalp map's palette (-1: not a palette colour)."""
    rgb = brush.color().getRgb()[:3]
    from eegmusic.gui.spectral_panel import PALETTE_SIZE

    lut = [tuple(int(v) for v in c) for c in panel.colormap.getLookupTable(nPts=PALETTE_SIZE, alpha=False)]
    return lut.index(rgb) if rgb in lut else -1


def _tick_texts(axis) -> list[str]:
    """The tick labels ``axis`` draws now."""
    image = QtGui.QImage(10, 10, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [] if specs is None else [text for *_, text in specs[2]]


def test_the_scalp_map_spans_the_palette_for_a_band_far_below_the_others(qtbot):
    """One colour range for all bands (delta's dominated) painted nearly every gamma electrode the same
    dark colour; the scalp map now takes the chosen band's own range and states it on its colour bar."""
    from eegmusic.gui.spectral_panel import BANDS, PALETTE_SIZE, SpectralPanel

    panel = SpectralPanel()
    qtbot.addWidget(panel)
    panel.band.setCurrentText("gamma")
    panel.update_spectrum(_eeg(4.0), SFREQ, LABELS)
    gamma = panel.power_db[:, list(BANDS).index("gamma")]
    assert np.nanmax(gamma) < np.nanmin(panel.power_db[:, :4]) - 20   # far below every other band
    indices = [_palette_index(panel, brush) for brush in panel.spots.data["brush"]]
    assert min(indices) == 0 and max(indices) == PALETTE_SIZE - 1
    assert len(set(indices)) > PALETTE_SIZE // 2               # graded, not two colours
    low, high = panel.scalp_colorbar.levels()
    assert np.nanmin(gamma) - 1 < low < high < np.nanmax(gamma) + 1   # the bar states gamma's range
    assert panel.scalp_colorbar.isVisible()
    panel.band.setCurrentText("alpha")                                # another band: its own range
    assert panel.scalp_colorbar.levels()[0] > high


def test_an_electrode_without_band_power_is_grey_not_the_lowest_colour(qtbot):
    from eegmusic.gui.spectral_panel import NO_VALUE_COLOR, SpectralPanel

    panel = SpectralPanel()
    qtbot.addWidget(panel)
    eeg = _eeg(4.0)
    eeg[5] = np.nan
    panel.update_spectrum(eeg, SFREQ, LABELS)
    brushes = panel.spots.data["brush"]
    assert brushes[5].color().getRgb()[:3] == NO_VALUE_COLOR
    assert _palette_index(panel, brushes[5]) == -1
    assert all(_palette_index(panel, b) >= 0 for i, b in enumerate(brushes) if i != 5)


def test_band_power_waits_for_a_second_of_signal_and_states_its_span(qtbot):
    """0.6 s of signal was drawn (three bands from a fraction of a second, two empty) under the title
    "last 4 s"; now nothing is drawn under 1 s and the title gives the span actually used."""
    from eegmusic.gui.spectral_panel import SpectralPanel

    panel = SpectralPanel()
    qtbot.addWidget(panel)
    panel.update_spectrum(_eeg(0.6), SFREQ, LABELS)
    assert panel.n_updates == 0 and panel.image.image is None and len(panel.spots.data) == 0
    assert "waiting" in panel.title.text()
    panel.update_spectrum(_eeg(2.5), SFREQ, LABELS)
    assert panel.title.text() == "band power, last 2.5 s"
    assert np.isfinite(panel.power_db).all()                          # every band, delta included
    panel.update_spectrum(_eeg(10.0), SFREQ, LABELS)
    assert panel.title.text() == "band power, last 4.0 s"
    panel.update_spectrum(_eeg(0.5), SFREQ, LABELS)                   # a new stream: the old picture goes
    assert panel.image.image is None and len(panel.spots.data) == 0 and "waiting" in panel.title.text()
    assert not panel.colorbar.isVisible() and not panel.scalp_colorbar.isVisible()


def test_the_empty_panels_show_no_placeholder_axes(qtbot):
    """Before any EEG: the EEG axis drew 0-1 in 50 labels, the band-power axis read "channel (x0.001)"
    and its colour bar 0-1; the axes now wait for channels and the colour bars for power."""
    from eegmusic.gui.eeg_panel import EEGPanel
    from eegmusic.gui.spectral_panel import SpectralPanel

    eeg_panel, spectral = EEGPanel(), SpectralPanel()
    for panel in (eeg_panel, spectral):
        qtbot.addWidget(panel)
        panel.resize(700, 500)
        panel.show()
        qtbot.waitExposed(panel)
    eeg_axis, channel_axis = eeg_panel.plot.getAxis("left"), spectral.heatmap.getAxis("left")
    assert _tick_texts(eeg_axis) == [] and _tick_texts(channel_axis) == []
    assert "channel" in channel_axis.labelString() and "x0" not in channel_axis.labelString()
    assert not spectral.colorbar.isVisible() and not spectral.scalp_colorbar.isVisible()
    assert spectral.colorbar.axis.labelText == spectral.scalp_colorbar.axis.labelText == "dB re 1 µV²"

    eeg = _eeg(4.0)
    eeg_panel.update_eeg(eeg.astype(np.float32), SFREQ, LABELS)
    spectral.update_spectrum(eeg, SFREQ, LABELS)
    assert "E1" in _tick_texts(eeg_axis)
    qtbot.waitUntil(lambda: "E1" in _tick_texts(channel_axis), timeout=2000)   # after the view's autorange
    assert "x0" not in channel_axis.labelString()
    assert spectral.colorbar.isVisible()
