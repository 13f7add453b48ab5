"""The LSL inlet against real outlets: exact samples, bad streams, timestamps, chunk size 1."""

from __future__ import annotations

import time

import numpy as np
import pylsl
import pytest

from stream.errors import StreamError
from stream.inlet import Inlet
from stream.ringbuffer import FLAG_GAP, FLAG_TIME
from stream.source import EEGSource
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
    return pylsl.StreamOutlet(info)


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


@pytest.mark.parametrize(("n_chans", "rate", "fmt", "labels", "message"), [
    (125, 125.0, pylsl.cf_string, True, "carries string values"),
    (125, 0.0, pylsl.cf_float32, True, "irregular rate"),
    (64, 125.0, pylsl.cf_float32, True, r"has 64 channels and lacks 60 the model needs \(E65, E66"),
    (64, 125.0, pylsl.cf_float32, False, "has 64 channels and no channel labels"),
    (125, 100.0, pylsl.cf_float32, True, "rate 100 Hz is below the model's 125 Hz"),
    (125, 333.7, pylsl.cf_float32, True, "cannot be resampled"),
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
    with pytest.raises(StreamError, match=rf"no LSL stream with name='nope-{stream_name}'.*visible:.*{stream_name}"):
        Inlet(f"nope-{stream_name}", resolve_timeout=0.3).connect()
    del outlet


def test_single_samples_and_backward_timestamps_are_counted_and_flagged(stream_name):
    outlet = _outlet(stream_name, 2, 100.0)
    inlet = Inlet(stream_name, resolve_timeout=5.0)
    try:
        inlet.start()
        assert outlet.wait_for_consumers(5.0)
        time.sleep(0.2)
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
