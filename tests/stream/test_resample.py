"""Streaming resampling to 125 Hz: rates, equality with the offline function, accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.stream.errors import StreamError
from eegmusic.stream.resample import StreamingResampler, resample_ratio, resample_recording
from scipy.signal import resample_poly, upfirdn


@pytest.mark.parametrize(("rate", "expected"), [(1000, (1, 8)), (500, (1, 4)), (256, (125, 256)),
                                                (250, (1, 2)), (125, (1, 1)), (512, (125, 512))])
def test_ratio(rate, expected):
    assert resample_ratio(rate) == expected


@pytest.mark.parametrize(("rate", "message"), [
    (0.0, "irregular"), (float("nan"), "irregular"), (100.0, "below the model's 125 Hz"),
    (512.37, "cannot be resampled"),
])
def test_unmappable_rates_raise(rate, message):
    with pytest.raises(StreamError, match=message):
        resample_ratio(rate)


@pytest.mark.parametrize("rate", [1000, 500, 256, 250])
def test_chunks_equal_whole_recording(rate, rng):
    eeg = rng.standard_normal((4, 3 * rate))
    whole = resample_recording(eeg, rate)
    assert whole.shape == (4, int(np.ceil(eeg.shape[1] * 125 / rate)))
    # the offline function is the polyphase filter advanced by its delay, the recording's edges held:
    # scipy's upfirdn over the edge-padded recording, cut where output 0 sits at input 0
    resampler = StreamingResampler(rate, 4)
    assert resampler.delay_samples == 10
    lead = resampler.down * -(-resampler.support // resampler.down)  # whole output periods of history
    padded = np.pad(eeg, ((0, 0), (lead, resampler.support)), mode="edge")
    first = lead * resampler.up // resampler.down + resampler.delay_samples
    reference = upfirdn(resampler.taps, padded, resampler.up, resampler.down, axis=1)
    np.testing.assert_allclose(whole, reference[:, first:first + whole.shape[1]], rtol=1e-10, atol=1e-12)
    # live: the same samples, each once the input delay_s after its instant has arrived
    pieces, position = [], 0
    for size in rng.integers(1, 50, size=eeg.shape[1]):
        if position >= eeg.shape[1]:
            break
        out, newest = resampler.process(eeg[:, position:position + size])
        assert np.all((newest >= 0) & (newest < min(size, eeg.shape[1] - position)))
        pieces.append(out)
        position += size
    live = np.concatenate(pieces, axis=1)
    assert live.shape[1] == whole.shape[1] - resampler.delay_samples  # the tail needs input yet to come
    np.testing.assert_allclose(live, whole[:, :live.shape[1]], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rate", [1000, 256])
def test_passband_sinusoid_matches_resample_poly_without_lag(rate):
    t = np.arange(6 * rate) / rate
    eeg = np.sin(2 * np.pi * 7.0 * t)[None]
    resampler = StreamingResampler(rate, 1)
    ours = resample_recording(eeg, rate)[0]
    assert round(resampler.delay_s * 125) == resampler.delay_samples == 10  # 80 ms at 125 Hz
    theirs = resample_poly(eeg[0], resampler.up, resampler.down)
    # output i holds the signal at i / 125 s, as scipy's zero-phase result does: no lag left
    np.testing.assert_allclose(ours[20:-20], theirs[20:len(ours) - 20], atol=2e-3)


@pytest.mark.parametrize("rate", [1000, 256])
def test_live_output_is_labelled_with_the_instant_it_holds(rate, rng):
    resampler = StreamingResampler(rate, 1)
    n_in = 0
    for size in (3, 500, 1, 77, 1024):
        out, newest = resampler.process(rng.standard_normal((1, size)))
        held = resampler.held_lag_s(newest + n_in)  # seconds from the newest input back to the instant
        n_in += size
        n_out = resampler.n_outputs(n_in)
        instants = (newest + n_in - size) / rate - held  # on the input's time axis
        np.testing.assert_allclose(instants, np.arange(n_out - out.shape[1], n_out) / 125, atol=1e-9)
        assert np.all(held >= resampler.delay_s - 1 / rate - 1e-12) and np.all(held <= resampler.delay_s)


def test_identity_rate_passes_samples_through(rng):
    eeg = rng.standard_normal((3, 40))
    out, newest = StreamingResampler(125, 3).process(eeg)
    np.testing.assert_array_equal(out, eeg)
    assert newest.tolist() == list(range(40))
