"""The LSL inlet against real outlets: exact samples, bad streams, timestamps, chunk size 1."""

from __future__ import annotations

import time

import numpy as np
import pylsl
import pytest
from eegmusic.stream.errors import StreamError
from eegmusic.stream.inlet import Inlet
from eegmusic.stream.ringbuffer import FLAG_GAP, FLAG_TIME
from eegmusic.stream.source import EEGSource
from eegmusic.stream.spec import PreprocessingSpec

from tests.fixtures.lsl_source import signal_value

pytestmark = pytest.mark.lsl


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _outlet(name, n_chans, rate, fmt=pylsl.cf_float32, labels=True):
    info = pylsl.StreamInfo(name, "EEG", n_chans, rate, fmt, f"{name}-sid")
    if labels:
        info.set_channel_labels([f"E{i}" for i in range(1, n_chans + 1)])
    # liblsl sizes an outlet's buffer for 360 s by default: seconds to set up at 1024 channels and 400 kHz
    return pylsl.StreamOutlet(info, max_buffered=1 if n_chans * rate > 1e6 else 360)


def test_ring_buffer_holds_the_exact_samples(lsl_source, stream_name):
    lsl_source(name=stream_name, source_id=f"{stream_name}-sid", rate=500, labels="device128",
               index_channel=True, wait_consumer=True, chunk=7)
    inlet = Inlet(stream_name, resolve_timeout=10.0)
    with inlet:
        assert inlet.meta.n_chans == 129 and inlet.meta.labels[-1] == "index" and inlet.meta.sfreq == 500
        _wait(lambda: inlet.ring.n_written >= 600)
        data, times, flags = inlet.ring.read(0, 600)
    index = data[-1].astype(np.int64)
    np.testing.assert_array_equal(index, np.arange(600))  # from the very first sample, none lost
    np.testing.assert_array_equal(data[:-1], signal_value(index, 128, 500.0))
    np.testing.assert_allclose(np.diff(times), 1 / 500, atol=1e-6)
    assert not flags.any() and inlet.gaps == 0 and inlet.nan_runs == 0 and inlet.n_samples >= 600
    assert not inlet.connected  # closed


@pytest.mark.untimed     # a refusal and its reason: nothing here is timed
@pytest.mark.parametrize(("n_chans", "rate", "fmt", "labels", "message"), [
    (125, 125.0, pylsl.cf_string, True, "carries string values"),
    (125, 0.0, pylsl.cf_float32, True, "irregular rate"),
    (64, 125.0, pylsl.cf_float32, True, r"has 64 channels and lacks 60 the model needs \(E65, E66"),
    (64, 125.0, pylsl.cf_float32, False, "has 64 channels and no channel labels"),
    (125, 100.0, pylsl.cf_float32, True, "rate 100 Hz is below the model's 125 Hz"),
    (125, 333.7, pylsl.cf_float32, True, "cannot be resampled"),
    # a rate no amplifier sends sized the inlet's buffers first: 11 GB, and no answer to --duration
    (125, 1e7, pylsl.cf_float32, True, "claims 1e\\+07 Hz, above the 625000 Hz .* nominal_srate"),
    # int8: the outlet buffers a quarter of float32 (1.6 GB zeroed took 14 s); the ring is float32 anyway
    (1024, 400000.0, pylsl.cf_int8, False, "needs 15.3 GiB to buffer 10 s, over the 2 GiB allowed"),
    (0, 125.0, pylsl.cf_float32, False, "has no channels"),   # was a ValueError traceback from the ring
])
def test_bad_streams_are_refused_with_a_reason(stream_name, n_chans, rate, fmt, labels, message):
    outlet = _outlet(stream_name, n_chans, rate, fmt, labels)
    source = EEGSource(stream_name, resolve_timeout=5.0)
    with pytest.raises(StreamError, match=message):
        source.start()
    assert not source.inlet.connected
    del source
    del outlet


def test_missing_stream_error_lists_visible_streams(stream_name):
    outlet = _outlet(stream_name, 4, 125.0)
    expected = rf"no LSL stream with name='nope-{stream_name}'.*visible:.*{stream_name}"
    with pytest.raises(StreamError, match=expected):
        Inlet(f"nope-{stream_name}", resolve_timeout=0.3).connect()
    del outlet


def _two_channels_read(stream_name):
    """A 2-channel 100-Hz outlet, and an inlet reading it (started, its consumer seen): (outlet, inlet)."""
    outlet = _outlet(stream_name, 2, 100.0)
    inlet = Inlet(stream_name, resolve_timeout=5.0)
    try:
        inlet.start()
        assert outlet.wait_for_consumers(5.0)
    except BaseException:
        inlet.stop()
        raise
    time.sleep(0.2)
    return outlet, inlet


def test_single_samples_and_backward_timestamps_are_counted_and_flagged(stream_name):
    outlet, inlet = _two_channels_read(stream_name)
    try:
        t0 = pylsl.local_clock()
        stamps = t0 + np.arange(30) * 0.01
        stamps[10] = stamps[9] - 0.005  # backwards
        stamps[20:] += 0.5  # a gap of 50 samples
        for k, stamp in enumerate(stamps):  # chunks of one sample
            outlet.push_sample([float(k), -float(k)], stamp)
        _wait(lambda: inlet.n_samples >= 30)
        data, times, flags = inlet.ring.read(0, 30)
    finally:
        inlet.stop()
    np.testing.assert_array_equal(data[0], np.arange(30))
    assert inlet.non_monotonic == 1 and flags[10] & FLAG_TIME
    assert inlet.gaps == 2 and flags[20] & FLAG_GAP  # the step after the backwards one is a gap too
    assert inlet.missing_samples >= 49
    del outlet


def test_dejitter_smooths_jittered_timestamps(stream_name):
    outlet = _outlet(stream_name, 2, 250.0)
    raw, smooth = Inlet(stream_name), Inlet(stream_name, dejitter=True)
    try:
        raw.start()
        smooth.start()
        assert outlet.wait_for_consumers(5.0)
        time.sleep(0.3)
        jitter = np.random.default_rng(0).normal(0, 0.002, 300)
        t0 = pylsl.local_clock()
        for k in range(300):
            outlet.push_sample([float(k), 0.0], t0 + k / 250 + jitter[k])
            if k % 10 == 9:
                time.sleep(0.03)
        _wait(lambda: raw.n_samples >= 300 and smooth.n_samples >= 300)
    finally:
        raw.stop()
        smooth.stop()
    assert raw.jitter_ms > 0.5 and raw.gaps > 0 and raw.non_monotonic > 0  # 2-ms jitter at a 4-ms period
    assert smooth.jitter_ms < 0.2 and smooth.gaps == 0 and smooth.non_monotonic == 0
    del outlet


def test_all_nan_channel_is_reported_and_flagged_never_passed_on(stream_name):
    info = pylsl.StreamInfo(stream_name, "EEG", 125, 125.0, pylsl.cf_float32, f"{stream_name}-sid")
    info.set_channel_labels([f"E{i}" for i in range(1, 125)] + ["Cz"])
    outlet = pylsl.StreamOutlet(info)
    # no re-reference, so the zero-filled dead channel is seen as it leaves the NaN guard
    source = EEGSource(stream_name, queue_windows=64, spec=PreprocessingSpec(reference="none"))
    try:
        source.start()
        assert outlet.wait_for_consumers(5.0)
        time.sleep(0.2)
        chunk = signal_value(np.arange(300), 125, 125.0).T.copy()
        chunk[:, 4] = np.nan  # E5 is dead
        t0 = pylsl.local_clock()
        for start in range(0, 300, 25):
            outlet.push_chunk(chunk[start:start + 25], t0 + (start + 24) / 125)
        _wait(lambda: source.health().n_samples >= 300)
        windows = []
        while (window := source.next_window(timeout=0.5)) is not None:
            windows.append(window)
        health = source.health()
    finally:
        source.stop()
    assert health.bad_channels == ("E5",) and health.nan_runs == 1 and health.gaps == 0
    assert health.bad_channel_seconds == {"E5": pytest.approx(2.4)}   # what the decode summary names
    assert len(windows) == 15 and all(w.flagged and w.reason == "nan" for w in windows)
    assert all(np.isfinite(w.data).all() and not w.data[4].any() for w in windows)
    del outlet


def test_values_beyond_the_physical_bound_are_flagged_like_nan_and_a_bad_channel_named_once(stream_name,
                                                                                             caplog):
    """A float64 stream sent 1e308 on E4 for 2 s: finite, so never flagged; the preprocessing's float32
    cast made it inf and the whole run's dynamic r NaN. A channel dead for a stretch that then recovered
    was never named anywhere (``bad_channels`` holds only the channels bad right now)."""
    from eegmusic.stream.ringbuffer import FLAG_NAN
    from eegmusic.stream.spec import MAX_ABS_UV

    info = pylsl.StreamInfo(stream_name, "EEG", 8, 125.0, pylsl.cf_double64, f"{stream_name}-sid")
    info.set_channel_labels([f"E{i}" for i in range(1, 9)])
    outlet = pylsl.StreamOutlet(info)
    inlet = Inlet(stream_name)
    data = np.zeros((500, 8))
    data[125:375, 3] = 1e308                # E4: 2 s beyond any amplifier's range
    data[0:250, 5] = np.nan                 # E6: dead for 2 s, then back
    data[400:450, 0] = -2 * MAX_ABS_UV      # E1: 0.4 s beyond the bound: flagged, not named
    data[450, 1] = MAX_ABS_UV               # E2: at the bound, a measurement
    try:
        with caplog.at_level("WARNING", logger="eegmusic.stream.inlet"):
            inlet.start()
            assert outlet.wait_for_consumers(5.0)
            t0 = pylsl.local_clock()
            for start in range(0, 500, 25):
                outlet.push_chunk(data[start:start + 25].tolist(), t0 + (start + 24) / 125)
            _wait(lambda: inlet.n_samples >= 500)
            raw, _, flags = inlet.ring.read(0, 500)
    finally:
        inlet.stop()
    bad = (flags & FLAG_NAN).astype(bool)
    assert np.isnan(raw[3, 125:375]).all() and raw[1, 450] == MAX_ABS_UV  # no measurement is NaN in the ring
    assert bad[0:375].all() and bad[400:450].all() and not bad[375:400].any() and not bad[450:].any()
    assert inlet.bad_channels() == ()                                    # none is bad now
    assert inlet.bad_channel_seconds() == {"E4": pytest.approx(2.0), "E6": pytest.approx(2.0)}
    warnings = [r.getMessage() for r in caplog.records if "check the electrode" in r.getMessage()]
    assert 1 <= len(warnings) <= 2, warnings                            # once per channel, not per chunk
    assert sum("E4" in w for w in warnings) == 1 and sum("E6" in w for w in warnings) == 1
    assert not any("E1," in w or "E1 " in w for w in warnings)
    del outlet


def test_source_returning_under_a_new_source_id_is_found_by_name(stream_name):
    def outlet_with(source_id, n_chans=2):
        info = pylsl.StreamInfo(stream_name, "EEG", n_chans, 100.0, pylsl.cf_float32, source_id)
        info.set_channel_labels([f"E{i}" for i in range(1, n_chans + 1)])
        return pylsl.StreamOutlet(info)

    outlet = outlet_with(f"{stream_name}-first")
    inlet = Inlet(stream_name)
    try:
        inlet.start()
        assert outlet.wait_for_consumers(5.0)
        outlet.push_chunk(np.zeros((5, 2), np.float32))
        _wait(lambda: inlet.n_samples >= 5)
        del outlet  # the source dies (the inlet sees the connection drop)
        _wait(lambda: not inlet.connected)
        impostor = outlet_with(f"{stream_name}-impostor", n_chans=3)  # same name, other channels
        time.sleep(1.0)
        assert inlet.reconnects == 0 and not inlet.connected
        outlet = outlet_with(f"{stream_name}-second")
        returned = time.monotonic()
        _wait(lambda: inlet.reconnects == 1, timeout=5.0)
        assert time.monotonic() - returned < 2.0
        assert outlet.wait_for_consumers(5.0)
        outlet.push_chunk(np.ones((5, 2), np.float32))
        _wait(lambda: inlet.n_samples >= 10)
    finally:
        inlet.stop()
    data, _, flags = inlet.ring.latest(10)
    assert data[0].tolist() == [0] * 5 + [1] * 5 and inlet.connected is False and inlet.error is None
    assert flags[5] & FLAG_GAP
    del outlet, impostor


def _replay_through_held_up_inlet(name: str, *, speed: float, n_samples: int, hold_s: float):
    """Replay ``n_samples`` of a 125-Hz stream at ``speed``x into an Inlet whose thread is held up.

    The acquisition thread sleeps ``hold_s`` in its first chunk, as a loaded machine or a slow callback
    would hold it; meanwhile the replay goes on at ``speed`` x 125 samples a second. Returns the sample
    indices the inlet passed on (from the index channel) and the inlet's sample and gap counts.
    """
    from eegmusic.replay.player import ArrayPlayer

    received: list[np.ndarray] = []

    def on_chunk(data, timestamps, flags, t_arrival):
        if not received:
            time.sleep(hold_s)
        received.append(data[:, -1].astype(np.int64))

    eeg = np.zeros((4, n_samples), np.float32)
    player = ArrayPlayer(eeg, 125.0, ["E1", "E2", "E3", "E4"], name=name, source_id=f"{name}-sid",
                         speed=speed, index_channel=True, wait_for_consumer_s=10.0, check_clash=False,
                         linger_s=30.0)
    with player:
        inlet = Inlet(name, resolve_timeout=10.0, on_chunk=on_chunk)
        with inlet:
            _wait(lambda: player.samples_sent >= n_samples, 30.0)  # the replay has sent its last sample
            seen, still_since = -1, time.monotonic()
            while inlet.n_samples < n_samples and time.monotonic() - still_since < 2.0:  # drain
                if inlet.n_samples != seen:
                    seen, still_since = inlet.n_samples, time.monotonic()
                time.sleep(0.05)
            counts = inlet.n_samples, inlet.gaps
    return np.concatenate(received), counts


def test_an_accelerated_replay_loses_no_sample_while_the_thread_is_held_up(stream_name, monkeypatch):
    """liblsl's queue holds a number of samples, not of nominal seconds: at 200x a 1-s hold-up keeps all.

    At 200x a 125-Hz stream arrives at 25 kHz. Sized in nominal seconds (60 s = 7 500 samples), the
    queue held 0.3 s of wall time, so the 1-s hold-up dropped samples; the control run with that old
    sizing shows the hold-up is long enough to drop them.
    """
    import eegmusic.stream.inlet as inlet_module

    n = 125 * 300  # 5 minutes of stream, 1.5 s of wall time at 200x
    indices, (n_received, gaps) = _replay_through_held_up_inlet(stream_name, speed=200.0, n_samples=n,
                                                                hold_s=1.0)
    np.testing.assert_array_equal(indices, np.arange(n))
    assert n_received == n and gaps == 0

    monkeypatch.setattr(inlet_module, "INLET_QUEUE_MIN_SAMPLES", 0)  # the old sizing: 60 nominal seconds
    indices, (n_received, gaps) = _replay_through_held_up_inlet(f"{stream_name}-old", speed=200.0,
                                                                n_samples=n, hold_s=1.0)
    assert n_received < n and gaps > 0


def test_non_finite_timestamps_are_time_errors_and_the_thread_goes_on(stream_name):
    """An infinite timestamp made the gap count int(inf) (OverflowError) and killed the acquisition thread."""
    outlet, inlet = _two_channels_read(stream_name)
    try:
        stamps = pylsl.local_clock() + np.arange(40) * 0.01
        stamps[10:20] = np.inf
        stamps[20:30] = np.nan
        for k in range(0, 40, 5):  # chunks of five samples
            outlet.push_chunk(np.zeros((5, 2), np.float32), list(stamps[k:k + 5]))
        _wait(lambda: inlet.n_samples >= 40 or inlet.error is not None)
        _, _, flags = inlet.ring.read(0, 40)
        assert inlet.error is None and inlet._thread.is_alive()
    finally:
        inlet.stop()
    assert all(flags[10:31] & FLAG_TIME) and not (flags[:10] & FLAG_TIME).any()
    assert inlet.gaps == 0 and inlet.missing_samples == 0       # out of the gap maths
    assert inlet.non_monotonic == 21                            # 20 non-finite, then the step back to finite
    del outlet


def test_an_unlabelled_stream_returning_labelled_in_another_order_is_refused(stream_name):
    """The first connection read 125 unlabelled channels in model order; a stream back with the same
    labels in another order was accepted and its channels mapped wrong."""
    from eegmusic.stream.spec import MODEL_CHANNELS

    def outlet_with(source_id, labels):
        info = pylsl.StreamInfo(stream_name, "EEG", 125, 100.0, pylsl.cf_float32, source_id)
        if labels is not None:
            info.set_channel_labels(list(labels))
        return pylsl.StreamOutlet(info)

    outlet = outlet_with(f"{stream_name}-first", None)
    inlet = Inlet(stream_name)
    try:
        inlet.start()
        assert inlet.meta.labels is None
        assert outlet.wait_for_consumers(5.0)
        del outlet
        _wait(lambda: not inlet.connected)
        shuffled = outlet_with(f"{stream_name}-shuffled", MODEL_CHANNELS[::-1])
        time.sleep(1.5)
        assert inlet.reconnects == 0 and not inlet.connected
        assert "does not match" in inlet.refused and "labels" in inlet.refused
        outlet = outlet_with(f"{stream_name}-second", MODEL_CHANNELS)   # the order it was read in
        _wait(lambda: inlet.reconnects == 1, timeout=5.0)
    finally:
        inlet.stop()
    del outlet, shuffled
