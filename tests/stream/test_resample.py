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
    # the offline function is the causal polyphase filter: scipy's upfirdn, truncated
    resampler = StreamingResampler(rate, 4)
    reference = upfirdn(resampler.taps, eeg, resampler.up, resampler.down, axis=1)[:, :whole.shape[1]]
    np.testing.assert_allclose(whole, reference, rtol=1e-10, atol=1e-12)
    pieces, position = [], 0
    for size in rng.integers(1, 50, size=eeg.shape[1]):
        if position >= eeg.shape[1]:
            break
        out, newest = resampler.process(eeg[:, position:position + size])
        assert np.all((newest >= 0) & (newest < min(size, eeg.shape[1] - position)))
        pieces.append(out)
        position += size
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


@pytest.mark.parametrize("rate", [1000, 256])
def test_passband_sinusoid_matches_resample_poly(rate):
    t = np.arange(6 * rate) / rate
    eeg = np.sin(2 * np.pi * 7.0 * t)[None]
    resampler = StreamingResampler(rate, 1)
    ours = resample_recording(eeg, rate)[0]
    delay_samples = int(round(resampler.delay_s * 125))
    assert delay_samples == 10  # 80 ms at 125 Hz
    theirs = resample_poly(eeg[0], resampler.up, resampler.down)
    # ours is scipy's zero-phase result delayed by the filter's group delay
    np.testing.assert_allclose(ours[delay_samples + 100:], theirs[100:len(ours) - delay_samples], atol=2e-3)


def test_identity_rate_passes_samples_through(rng):
    eeg = rng.standard_normal((3, 40))
    out, newest = StreamingResampler(125, 3).process(eeg)
    np.testing.assert_array_equal(out, eeg)
    assert newest.tolist() == list(range(40))
