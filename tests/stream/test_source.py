"""EEGSource end to end against test outlets in subprocesses: faults, equality with offline, drops."""

from __future__ import annotations

import time

import numpy as np
import pylsl
import pytest
from eegmusic.stream.preprocess import StreamingPreprocessor, preprocess_recording
from eegmusic.stream.source import EEGSource, StreamHealth
from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec
from scipy.signal import butter, resample_poly, sosfiltfilt

from tests.fixtures.lsl_source import signal_value, stream_labels

pytestmark = pytest.mark.lsl


def _windows_until(source, condition, timeout=10.0):
    windows, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        window = source.next_window(timeout=0.2)
        if window is not None:
            windows.append(window)
            if condition(window):
                return windows
    raise AssertionError(f"condition not met within {timeout} s ({len(windows)} windows, {source.health()})")


def test_killed_source_restarted_with_same_source_id_resumes(lsl_source, stream_name):
    options = dict(name=stream_name, source_id=f"{stream_name}-sid", rate=125, labels="model",
                   index_channel=True)
    first = lsl_source(**options)
    with EEGSource(stream_name, resolve_timeout=10.0, queue_windows=64) as source:
        before = _windows_until(source, lambda w: w.sample_index >= 40)
        assert not any(w.flagged for w in before) and source.health().connected
        first.kill()
        gone = time.monotonic() + 0.6      # the loss is seen within 0.6 s (awaited, not slept out)
        while source.health().connected and time.monotonic() < gone:
            time.sleep(0.02)
        assert not source.health().connected
        lsl_source(**options, start_index=100_000)
        restarted = pylsl.local_clock()
        last = before[-1].sample_index
        after = _windows_until(source, lambda w: not w.flagged and w.sample_index > last + 130)
        resumed = [w for w in after if w.sample_index > before[-1].sample_index]
        assert resumed[0].t_ready - restarted < 2.0  # picked up within 2 s of the source returning
        assert any(w.flagged and "gap" in w.reason for w in resumed)  # windows across the gap are flagged
        health = source.health()
    assert isinstance(health, StreamHealth)
    assert health.reconnects == 1 and health.gaps == 1 and health.missing_samples > 50 and health.connected


def test_nan_burst_is_counted_and_its_windows_flagged(lsl_source, stream_name):
    lsl_source(name=stream_name, rate=250, labels="model", wait_consumer=True, nan="300:20")
    with EEGSource(stream_name, resolve_timeout=10.0, queue_windows=64) as source:
        windows = _windows_until(source, lambda w: w.sample_index >= 250)
        health = source.health()
    assert health.nan_runs == 1 and health.gaps == 0
    # stream samples [300, 320) at 250 Hz -> model samples 150..159; the 41-tap filter reaches 20
    # stream samples (10 model samples) either side of the instant a sample holds: it taints 140..169
    assert any(w.sample_index <= 160 and w.sample_index + 125 > 150 for w in windows)  # both kinds seen
    assert any(w.sample_index >= 170 or w.sample_index + 125 <= 140 for w in windows)
    for window in windows:
        touches = window.sample_index <= 160 and window.sample_index + 125 > 150
        far = window.sample_index >= 170 or window.sample_index + 125 <= 140
        if touches:
            assert window.flagged and window.reason == "nan"
        if far:
            assert not window.flagged
        assert np.isfinite(window.data).all()


def test_device_128ch_1khz_equals_offline_pipeline(lsl_source, stream_name):
    spec = PreprocessingSpec(highpass_hz=0.5, notch_hz=60.0, reference="average")
    lsl_source(name=stream_name, rate=1000, labels="device128", index_channel=True, wait_consumer=True,
               chunk=13)
    with EEGSource(stream_name, spec=spec, resolve_timeout=10.0, queue_windows=64) as source:
        windows = _windows_until(source, lambda w: w.sample_index >= 100)
        raw, _, _ = source.inlet.ring.latest(source.inlet.ring.n_written)
        online, labels = source.recent(30.0)
        health = source.health()
    assert health.gaps == 0 and health.nominal_rate == 1000 and health.delay_s == pytest.approx(0.08)
    index = raw[-1].astype(np.int64)
    np.testing.assert_array_equal(index, np.arange(index.size))  # every stream sample from the first
    recording = np.vstack([signal_value(index, 128, 1000.0), index[None].astype(np.float32)])
    offline = preprocess_recording(recording, 1000.0, stream_labels("device128", 0) + ["index"], spec)
    n = online.shape[1]
    assert labels == spec.channels and n >= 225 and offline.shape[1] >= n
    np.testing.assert_allclose(online, offline[:, :n], rtol=1e-5, atol=1e-5 * np.abs(offline).max())
    for window in windows:
        start = window.sample_index
        np.testing.assert_array_equal(window.data, online[:, start:start + 125])


@pytest.mark.parametrize("rate", [1000, 256])
def test_window_times_are_the_times_of_the_eeg_they_hold(rate, rng):
    """The resampler's filter delays the EEG by delay_s; each window is stamped with the time of the
    EEG it holds, not of the newest stream sample, and holds the 125-Hz EEG of that time."""
    native = sosfiltfilt(butter(6, 30.0, fs=125.0, output="sos"), rng.standard_normal((125, 125 * 4)) * 20,
                         axis=1)
    up, down = (8, 1) if rate == 1000 else (256, 125)
    device = resample_poly(native, up, down, axis=1)  # the same EEG, as a device at `rate` sends it
    source = EEGSource("never-resolved", spec=PreprocessingSpec(reference="none"), queue_windows=64)
    source.preprocessor = StreamingPreprocessor(rate, MODEL_CHANNELS, source.spec)  # no stream: fed directly
    t0 = 1000.25  # LSL time of the first stream sample
    stamps = t0 + np.arange(device.shape[1]) / rate
    flags = np.zeros(device.shape[1], dtype=np.uint8)
    for start in range(0, device.shape[1], 37):
        chunk = slice(start, start + 37)
        source._on_chunk(device[:, chunk].T, stamps[chunk], flags[chunk], t_arrival=stamps[chunk][-1])
    windows = []
    while (window := source.next_window(timeout=0)) is not None:
        windows.append(window)
    assert len(windows) > 20 and source.preprocessor.delay_s == pytest.approx(0.08)
    for window in windows:
        last = window.sample_index + 124
        assert window.t_last == pytest.approx(t0 + last / 125, abs=1e-9)   # the EEG it holds
        assert window.t_arrival - window.t_last >= 0.08 - 1e-9              # it came delay_s later
        if window.sample_index >= 10:
            block = native[:, window.sample_index:window.sample_index + 125]
            np.testing.assert_allclose(window.data, block, atol=1e-2 * np.abs(native).max())


@pytest.mark.parametrize("rate", [125, 1000])
def test_a_source_connected_before_it_starts_begins_with_the_newest_second(lsl_source, stream_name, rate):
    """A decode connects, checks the stream against its model and opens its outputs, then starts: every
    sample queued meanwhile was discarded, and its first window came a second after the start. Now the
    newest window's worth is kept (and at 1000 Hz the resampler's delay): the first window is ready at once,
    and holds the EEG sent before the start, up to the newest."""
    lsl_source(name=stream_name, rate=rate, labels="model")
    source = EEGSource(stream_name, resolve_timeout=10.0, queue_windows=64)
    source.connect()
    time.sleep(1.5)          # the caller's own set-up: more than a window's worth queues meanwhile
    started = pylsl.local_clock()
    source.start()
    try:
        first = source.next_window(timeout=5.0)
    finally:
        source.stop()
    assert first is not None and first.sample_index == 0 and not first.flagged
    assert first.t_ready - started < 0.3, first.t_ready - started    # not a second later
    # the EEG queued before the start, up to its newest (t_last: the time of the EEG the window holds)
    assert started - 0.3 < first.t_last < started, (started, first.t_last)


def test_slow_consumer_gets_a_bounded_queue_and_drops_are_counted(lsl_source, stream_name):
    lsl_source(name=stream_name, rate=125, labels="model")
    with EEGSource(stream_name, resolve_timeout=10.0, queue_windows=3) as source:
        _windows_until(source, lambda w: True)
        time.sleep(1.5)  # a consumer that stalls for 15 hops
        assert source.windower.pending() == 3
        queued = [source.next_window(0) for _ in range(3)]
        health = source.health()
    assert health.dropped_windows >= 8
    starts = [w.sample_index for w in queued]
    assert all(12 <= b - a <= 13 for a, b in zip(starts, starts[1:], strict=False))  # the newest, consecutive
    assert pylsl.local_clock() - queued[-1].t_ready < 1.0


def test_replayed_device_like_stream_equals_offline_pipeline(sim_dir, stream_name):
    from eegmusic.replay.device_like import device_like_eeg
    from eegmusic.replay.nmedt import NMEDTFolder
    from eegmusic.replay.song_player import Player

    spec = PreprocessingSpec(highpass_hz=0.5, reference="average")
    with Player(sim_dir, 21, 1, name=stream_name, device_like=1000, index_channel=True, markers=False,
                wait_for_consumer_s=10.0, check_clash=False):
        with EEGSource(stream_name, spec=spec, resolve_timeout=10.0, queue_windows=64) as source:
            _windows_until(source, lambda w: w.sample_index >= 100)
            raw, _, _ = source.inlet.ring.latest(source.inlet.ring.n_written)
            online, _ = source.recent(30.0)
            health = source.health()
    assert health.nominal_rate == 1000 and health.gaps == 0 and source.meta.labels[:2] == ("E1", "E2")
    eeg = NMEDTFolder(sim_dir).load_song(21).eeg(0)
    device, labels = device_like_eeg(eeg, 125.0, 1000.0)
    index = raw[-1].astype(np.int64)
    np.testing.assert_array_equal(index, np.arange(index.size))
    np.testing.assert_array_equal(raw[:-1], device[:, :index.size])
    offline = preprocess_recording(device[:, :index.size], 1000.0, labels, spec)
    assert online.shape[1] >= 225
    np.testing.assert_allclose(online, offline[:, :online.shape[1]], rtol=1e-5,
                               atol=1e-5 * np.abs(offline).max())
