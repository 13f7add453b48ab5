"""The dashboard panels fed with arrays built here (what a pipeline snapshot carries)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from eegmusic.stream.spec import MODEL_CHANNELS

pytestmark = pytest.mark.gui

LABELS = list(MODEL_CHANNELS)


# ---------------------------------------------------------------------------- pure functions


def test_the_mel_colours_reach_as_loud_as_music_goes(sim_dir):
    """The range ended at 0 dB while 7-10 % of music's mel cells lie above it (reference power 1): every
    loud cell drew as one flat white. Measured on the simulated stimuli (procedural or packaged music)."""
    import soundfile
    from eegmusic.decoder.melspec import mel_db
    from eegmusic.gui.mel_panel import MEL_LEVELS

    cells = np.concatenate([mel_db(soundfile.read(f, dtype="float32")[0]).ravel()
                            for f in sorted((sim_dir / "stimuli").glob("*.wav"))])
    assert (cells > 0.0).mean() > 0.01                     # music is louder than the old top
    assert (cells > MEL_LEVELS[1]).mean() < 1e-3, np.percentile(cells, [99, 99.9, 100])


def test_minmax_reduce_matches_brute_force(rng):
    from eegmusic.gui.eeg_panel import minmax_reduce, point_positions, reduction_plan

    eeg = rng.standard_normal((4, 1003)).astype(np.float32)
    per_bin, n_bins, head = reduction_plan(1003, 100)
    assert (per_bin, n_bins, head) == (11, 92, 2) and head + (n_bins - 1) * per_bin == 1003
    reduced = minmax_reduce(eeg, 100)
    edges = [0] + [head + per_bin * k for k in range(n_bins)]
    assert reduced.shape == (4, 2 * n_bins)
    for b in (0, 1, 50, n_bins - 1):
        chunk = eeg[:, edges[b]:edges[b + 1]]
        np.testing.assert_array_equal(reduced[:, 2 * b], chunk.min(axis=1))
        np.testing.assert_array_equal(reduced[:, 2 * b + 1], chunk.max(axis=1))
    positions = point_positions(1003, 100)
    assert positions.shape == (2 * n_bins,)
    assert positions[0] == 0.5 and positions[-1] == 1003 - 1 - (per_bin - 1) / 2


def test_minmax_reduce_reuses_buffer_and_keeps_short_input(rng):
    from eegmusic.gui.eeg_panel import minmax_reduce

    eeg = rng.standard_normal((3, 2000)).astype(np.float32)
    first = minmax_reduce(eeg, 50)
    second = minmax_reduce(eeg * 2, 50, out=first)
    assert second is first
    np.testing.assert_allclose(second, 2 * minmax_reduce(eeg, 50))
    short = eeg[:, :90]
    assert minmax_reduce(short, 50) is short


def test_minmax_reduce_propagates_nan(rng):
    from eegmusic.gui.eeg_panel import minmax_reduce

    eeg = rng.standard_normal((2, 1000))
    eeg[1, 500] = np.nan
    reduced = minmax_reduce(eeg, 100)
    assert np.isnan(reduced[1, 100:102]).all()
    assert np.isfinite(reduced[0]).all() and np.isnan(reduced[1]).sum() == 2


@pytest.mark.parametrize("n_bins", [0, -3])
def test_minmax_reduce_rejects_bad_bins(n_bins):
    from eegmusic.gui.eeg_panel import minmax_reduce

    with pytest.raises(ValueError, match="n_bins must be positive"):
        minmax_reduce(np.zeros((2, 100)), n_bins)


def test_detect_channel_flags(rng):
    from eegmusic.gui.eeg_panel import detect_channel_flags

    eeg = rng.standard_normal((5, 1000)) * 20
    eeg[1] = 3.0                       # flat (a constant offset is still flat)
    eeg[2, 10:20] = np.nan             # NaN run
    eeg[3, :100] = 5000.0              # railed for 10 % of the time
    eeg[4, 7] = 5000.0                 # one spike: not railed
    assert detect_channel_flags(eeg) == ["", "flat", "nan", "railed", ""]


def test_merge_flags_takes_pipeline_flags():
    from eegmusic.gui.eeg_panel import merge_flags

    detected = ["", "flat", "", ""]
    assert merge_flags(detected, [False, False, True, False], 4) == ["", "flat", "flagged", ""]
    assert merge_flags(detected, ["ok", "", "railed", "nan"], 4) == ["", "flat", "railed", "nan"]
    assert merge_flags(detected, None, 4) == detected


def test_band_power_finds_the_band_and_keeps_power():
    from eegmusic.gui.spectral_panel import BANDS, band_power

    t = np.arange(500) / 125.0
    eeg = np.stack([10 * np.sin(2 * np.pi * 10 * t), 10 * np.sin(2 * np.pi * 2 * t), np.full(500, np.nan)])
    power = band_power(eeg, 125.0)
    names = list(BANDS)
    assert power.shape == (3, 5)
    assert np.argmax(power[0]) == names.index("alpha")
    assert np.argmax(power[1]) == names.index("delta")
    np.testing.assert_allclose(power[0].sum(), 50.0, rtol=0.05)  # the sine's variance, A²/2
    assert np.isnan(power[2]).all()


def test_scalp_xy_places_electrodes():
    from eegmusic.gui.spectral_panel import scalp_xy

    labels = ("Cz", "E36", "E104", "E11", "E75", "X99")
    xy = scalp_xy(labels)
    np.testing.assert_allclose(xy[0], [0.0, 0.0], atol=0.02)      # vertex in the middle
    assert xy[1, 0] < -0.3 and xy[2, 0] > 0.3                     # C3 left, C4 right
    assert xy[3, 1] > 0.3 and xy[4, 1] < -0.3                     # Fz front, Oz back
    assert np.isnan(xy[5]).all()                                  # not on the net


# ---------------------------------------------------------------------------- widgets
def _eeg(rng, n_chans=125, seconds=10.0, sfreq=125.0):
    return (rng.standard_normal((n_chans, int(seconds * sfreq))) * 10).astype(np.float32)


def test_eeg_panel_draws_reduced_traces_that_move(qtbot, rng):
    from eegmusic.gui.eeg_panel import EEGPanel

    panel = EEGPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    panel.show()
    qtbot.waitExposed(panel)
    eeg = _eeg(rng, sfreq=1000.0)
    panel.update_eeg(eeg, 1000.0, LABELS)
    x1, y1 = (a.copy() for a in panel.trace_data())
    n_per_channel = x1.size // 125
    assert n_per_channel <= 2 * panel.n_bins() + 1
    assert n_per_channel <= panel.plot.width() * 1.1          # about one point per pixel
    assert np.nanmax(x1) <= 0.0 and np.nanmin(x1) >= -10.0
    eeg2 = np.roll(eeg, -500, axis=1)
    panel.update_eeg(eeg2, 1000.0, LABELS)
    x2, y2 = panel.trace_data()
    assert not np.allclose(np.nan_to_num(y1), np.nan_to_num(y2))
    # first channel drawn on the top row, last on the bottom
    rows = y2.reshape(125, -1)
    assert np.nanmean(rows[0]) == pytest.approx(124, abs=0.3)
    assert np.nanmean(rows[-1]) == pytest.approx(0, abs=0.3)
    assert panel.flag_curve.getData()[0] is None or panel.flag_curve.getData()[0].size == 0


def test_the_eeg_panel_says_how_many_microvolts_a_row_spans(qtbot):
    """The traces carried no µV scale: on the common scale a label now gives one row's span, and the
    drawn traces agree with it; per channel it says the row is its channel's own SD."""
    from eegmusic.gui.eeg_panel import EEGPanel

    panel = EEGPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    panel.show()
    qtbot.waitExposed(panel)
    t = np.arange(1250) / 125.0
    amplitude = np.where(np.arange(125) == 0, 40.0, 10.0)   # µV peak; channel 0 four times louder
    eeg = (amplitude[:, None] * np.sin(2 * np.pi * 3.0 * t)[None, :]).astype(np.float32)
    panel.update_eeg(eeg, 125.0, LABELS)
    assert panel.row_uv() is None and "SD of its channel" in panel.scale_label.text()
    # no new EEG after the change (a stopped run, a lost stream): the traces are redrawn all the same,
    # at the scale the label gives (they stayed as they were, under the new label)
    panel.scale_mode.setCurrentIndex(1)
    panel.gain.setValue(0.5)
    row_uv = panel.row_uv()
    assert panel.scale_label.text() == f"one row = {row_uv:.3g} µV"
    _, y = panel.trace_data()
    rows = y.reshape(125, -1)
    for channel in (0, 1):   # the drawn peak-to-peak, in rows, times the label's µV per row
        drawn = (np.nanmax(rows[channel]) - np.nanmin(rows[channel])) * row_uv
        assert drawn == pytest.approx(2 * amplitude[channel], rel=0.02)


def test_a_new_scale_while_stopped_redraws_the_same_eeg_the_same_way(qtbot):
    """A redraw at a new scale ran the whole update again, which moves the smoothed amplitude towards
    the last window's: toggling the scale while stopped changed a row's µV each time, on the same EEG."""
    from eegmusic.gui.eeg_panel import EEGPanel

    panel = EEGPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    t = np.arange(1250) / 125.0
    wave = np.sin(2 * np.pi * 3.0 * t)[None, :]
    panel.scale_mode.setCurrentIndex(1)
    panel.update_eeg((10.0 * np.ones((125, 1)) * wave).astype(np.float32), 125.0, LABELS)
    panel.update_eeg((40.0 * np.ones((125, 1)) * wave).astype(np.float32), 125.0, LABELS)  # louder
    label, (_, drawn), updates = panel.scale_label.text(), panel.trace_data(), panel.n_updates
    for _ in range(3):   # stopped: no new EEG between the changes
        panel.scale_mode.setCurrentIndex(0)
        panel.scale_mode.setCurrentIndex(1)
    assert panel.scale_label.text() == label
    np.testing.assert_array_equal(panel.trace_data()[1], drawn)
    assert panel.n_updates == updates   # a redraw is not new EEG
    panel.gain.setValue(2.0)   # a new gain still redraws, at the new scale
    assert panel.row_uv() == pytest.approx(float(label.split()[3]) / 2.0, rel=1e-2)


def test_eeg_panel_highlights_flagged_channels(qtbot, rng):
    from eegmusic.gui.eeg_panel import EEGPanel

    panel = EEGPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    eeg = _eeg(rng)
    eeg[3] = 0.0
    eeg[7, 100:300] = np.nan
    eeg[11] = 4000.0
    panel.update_eeg(eeg, 125.0, LABELS, flags=[i == 20 for i in range(125)])
    assert [i for i, r in enumerate(panel.reasons) if r] == [3, 7, 11, 20]
    assert panel.reasons[3] == "flat" and panel.reasons[7] == "nan" and panel.reasons[11] == "railed"
    _, bad_y = panel.flag_curve.getData()
    good_y = panel.trace_data()[1].reshape(125, -1)
    assert bad_y.size == 4 * good_y.shape[1] and np.isfinite(bad_y.reshape(4, -1)[:, :-1]).all()
    assert np.isnan(good_y[[3, 7, 11, 20]]).all() and np.isfinite(good_y[0, :-1]).all()
    assert "E4 flat" in panel.flag_label.text() and "E12 railed" in panel.flag_label.text()
    ticks = dict((text, pos) for pos, text in panel.plot.getAxis("left")._tickLevels[0])
    assert "E8 (nan)" in ticks
    panel.scale_mode.setCurrentIndex(1)   # common scale still draws
    panel.update_eeg(eeg, 125.0, LABELS)
    assert np.isfinite(panel.trace_data()[1]).any()


def test_eeg_panel_names_a_channel_the_inlet_has_no_measurement_from(qtbot, rng):
    """The inlet zeroes a channel without a measurement (NaN/Inf or beyond ±1 V): drawn alone it reads
    "flat", a quiet electrode; named in the stream's health (``bad_channels``) it reads "no measurement",
    a broken electrode or the sender's units, as the inlet's warning says."""
    from eegmusic.decoder.snapshot import PipelineSnapshot
    from eegmusic.gui.eeg_panel import NO_MEASUREMENT, EEGPanel
    from eegmusic.gui.panel import PanelView
    from eegmusic.stream.source import StreamHealth

    panel = EEGPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    eeg = _eeg(rng)
    eeg[3] = 0.0
    for bad, reason in (((), "flat"), (("E4",), NO_MEASUREMENT)):
        health = StreamHealth(effective_rate=125.0, n_samples=1250, gaps=0, dropped_windows=0, nan_runs=0,
                              reconnects=0, clock_offset=0.0, jitter_ms=0.5, connected=True, bad_channels=bad)
        snapshot = PipelineSnapshot(
            eeg=eeg, eeg_sfreq=125.0, labels=LABELS, channel_flags=np.zeros(125, bool),
            mel=np.zeros((128, 0), np.float32), truth_mel=None, dynamic_r=None, latency_ms={}, counters={},
            health=health, running=True, error=None)
        panel.draw(PanelView(snapshot=snapshot, eeg=eeg, eeg_key=(bad,), health=health), 0.0)
        assert [i for i, r in enumerate(panel.reasons) if r] == [3] and panel.reasons[3] == reason
        assert f"E4 {reason}" in panel.flag_label.text()
    panel.draw(PanelView(snapshot=snapshot, eeg=eeg, eeg_key=None, health=None), 0.0)   # no health yet
    assert panel.reasons[3] == "flat"


def test_spectral_panel_heatmap_and_scalp(qtbot, rng):
    from eegmusic.gui.spectral_panel import SpectralPanel

    panel = SpectralPanel()
    qtbot.addWidget(panel)
    t = np.arange(1250) / 125.0
    eeg = _eeg(rng) * 0.1
    eeg[0] += 50 * np.sin(2 * np.pi * 10 * t).astype(np.float32)
    panel.update_spectrum(eeg, 125.0, LABELS)
    image = panel.image.image
    assert image.shape == (125, 5)
    assert np.argmax(image[-1]) == 2                      # channel 0 is the bottom image row: alpha
    assert image[-1, 2] > np.nanmedian(image[:, 2]) + 10  # far above the others
    assert len(panel.spots.data) == 125
    panel.band.setCurrentText("beta")                     # redraw from the stored power
    assert len(panel.spots.data) == 125


def test_mel_panel_scrolls_and_shows_truth(qtbot, rng):
    from eegmusic.gui.mel_panel import MelPanel

    panel = MelPanel()
    qtbot.addWidget(panel)
    panel.show()
    mel = rng.uniform(-80, 0, (128, 200)).astype(np.float32)
    panel.update_mel(mel)
    assert not panel.has_truth and not panel.truth_plot.isVisible()
    first = panel.decoded_image.image.copy()
    np.testing.assert_array_equal(first, mel)
    assert tuple(panel.decoded_image.levels) == (-80.0, 30.0)   # fixed, never the data's own range
    truth = rng.uniform(-80, 0, (128, 200)).astype(np.float32)
    panel.update_mel(np.roll(mel, -10, axis=1), truth, 0.25, now=100.0)
    panel.update_mel(np.roll(mel, -20, axis=1), truth, 0.35, now=100.5)
    assert panel.has_truth and panel.truth_plot.isVisible()
    assert not np.array_equal(panel.decoded_image.image, first)
    x, y = panel.r_curve.getData()
    np.testing.assert_allclose(x, [-0.5, 0.0])
    np.testing.assert_allclose(y, [0.25, 0.35])
    # one number format for both r figures, as `eegmusic decode` prints them (no "+" on this one alone)
    assert panel.r_label.text() == "dynamic r, recent frames: 0.350"
    # a colour bar says what the colours mean, on the images' own fixed levels, drawn beside them
    assert tuple(panel.colorbar.levels()) == (-80.0, 30.0) and panel.colorbar.isVisible()
    assert panel.colorbar.getAxis("left").labelText == "mel dB"
    assert tuple(panel.truth_image.levels) == (-80.0, 30.0)


def test_stats_panel_shows_latency_and_counters(qtbot):
    from eegmusic.gui.stats_panel import StatsPanel
    from eegmusic.stream.source import StreamHealth

    health = StreamHealth(effective_rate=124.8, n_samples=1000, gaps=0, dropped_windows=0, nan_runs=0,
                          reconnects=1, clock_offset=0.0012, jitter_ms=0.5, connected=True)

    panel = StatsPanel()
    qtbot.addWidget(panel)
    latency = {"arrival_to_ready": {"p50": 1.234, "p95": 2.0, "p99": 3.0, "n": 10},
               "ready_to_inferred": {"p50": None, "p95": None, "p99": None, "n": 0}}
    counters = {"windows": 12, "drops": 0, "gaps": 2, "reconnects": 1, "underruns": 0}
    panel.update_stats(latency, counters, health)
    assert panel.latency.rowCount() == 2
    assert panel.latency.item(0, 0).text() == "1.2" and panel.latency.item(1, 2).text() == "—"
    assert panel.values["gaps"] == "2" and panel.values["rate (Hz)"] == "124.8"
    assert panel.values["clock offset (ms)"] == "1.20"
    panel.update_stats(latency, dict(counters, windows=13), health)
    assert panel.counter_labels["windows"].text() == "13"


def test_qt_binding_keeps_bool_refcounts(qtbot):
    """PySide6 6.12.0 drops a reference to True on every Python-side emit: the GUI would abort."""
    from PySide6 import QtCore

    class Emitter(QtCore.QObject):
        fired = QtCore.Signal()

    emitter = Emitter()
    emitter.fired.connect(lambda: None)
    before = sys.getrefcount(True)
    for _ in range(200):
        emitter.fired.emit()
    assert sys.getrefcount(True) >= before - 20
