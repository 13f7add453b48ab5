"""One definition: the offline function equals the streaming one applied chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.stream.errors import ConfigError, DataFormatError, StreamError
from eegmusic.stream.preprocess import StreamingPreprocessor, preprocess_recording
from eegmusic.stream.spec import DEVICE_CHANNELS_128, MODEL_CHANNELS, PreprocessingSpec
from hypothesis import given, settings
from hypothesis import strategies as st

SPECS = [
    PreprocessingSpec(),
    PreprocessingSpec(reference="average"),
    PreprocessingSpec(highpass_hz=0.5, notch_hz=60.0, reference="average"),
    PreprocessingSpec(highpass_hz=1.0),
]


def test_default_spec_returns_average_referenced_input_unchanged(rng):
    eeg = rng.standard_normal((125, 300)) * 30
    eeg -= eeg.mean(axis=0)  # NMED-T files are average-referenced
    out = preprocess_recording(eeg, 125.0, MODEL_CHANNELS, PreprocessingSpec())
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, eeg.astype(np.float32), atol=1e-4)
    out32 = preprocess_recording(eeg.astype(np.float32), 125.0, MODEL_CHANNELS)
    np.testing.assert_allclose(out32, eeg.astype(np.float32), atol=1e-4)
    untouched = rng.standard_normal((125, 300)) * 30
    out_none = preprocess_recording(untouched, 125.0, MODEL_CHANNELS, PreprocessingSpec(reference="none"))
    np.testing.assert_array_equal(out_none, untouched.astype(np.float32))


def _streamed(eeg, rate, labels, spec, sizes):
    pre = StreamingPreprocessor(rate, labels, spec)
    pieces, position, index = [], 0, 0
    while position < eeg.shape[1]:
        size = sizes[index % len(sizes)]
        out, _ = pre.process(eeg[:, position:position + size])
        assert out.dtype == np.float32
        pieces.append(out)
        position, index = position + size, index + 1
    return np.concatenate(pieces, axis=1)


@settings(max_examples=30, deadline=None)
@given(
    rate=st.sampled_from([1000, 500, 256, 250, 125]),
    spec_index=st.integers(0, len(SPECS) - 1),
    sizes=st.lists(st.integers(1, 97), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_streaming_equals_offline_for_any_chunking(rate, spec_index, sizes, seed):
    rng = np.random.default_rng(seed)
    labels = DEVICE_CHANNELS_128 if rate != 125 else MODEL_CHANNELS
    eeg = (rng.standard_normal((len(labels), int(0.8 * rate))) * 25).astype(np.float32)
    spec = SPECS[spec_index]
    offline = preprocess_recording(eeg, rate, labels, spec)
    online = _streamed(eeg, rate, labels, spec, sizes)
    assert offline.shape == (125, int(np.ceil(eeg.shape[1] * 125 / rate)))
    # live, the last delay_s of samples wait for input yet to come; the rest are the offline ones
    assert online.shape == (125, offline.shape[1] - (0 if rate == 125 else 10))
    np.testing.assert_allclose(online, offline[:, :online.shape[1]], rtol=1e-5,
                               atol=1e-5 * float(np.abs(offline).max()))


def test_chunks_of_one_sample(rng):
    eeg = rng.standard_normal((128, 400)).astype(np.float32)
    spec = SPECS[2]
    offline = preprocess_recording(eeg, 1000, DEVICE_CHANNELS_128, spec)
    online = _streamed(eeg, 1000, DEVICE_CHANNELS_128, spec, [1])
    np.testing.assert_allclose(online, offline[:, :online.shape[1]], rtol=1e-5, atol=1e-6)


def _band_limited_125(rng, n_chans: int, n_times: int) -> np.ndarray:
    """Smooth 125-Hz EEG-like noise (below 30 Hz), so that upsampling it loses nothing."""
    from scipy.signal import butter, sosfiltfilt

    white = rng.standard_normal((n_chans, n_times + 250)) * 20
    return sosfiltfilt(butter(6, 30.0, fs=125.0, output="sos"), white, axis=1)[:, 125:-125]


@pytest.mark.parametrize("rate", [250, 1000])
def test_device_rate_recording_preprocesses_to_its_125_hz_version_without_lag(rate, rng):
    from scipy.signal import resample_poly

    native = _band_limited_125(rng, len(MODEL_CHANNELS), 125 * 8)
    device = resample_poly(native, rate // 125, 1, axis=1)  # the same EEG, as a device at `rate` sends it
    spec = PreprocessingSpec(reference="none")
    ours = preprocess_recording(device, float(rate), MODEL_CHANNELS, spec)
    expected = preprocess_recording(native, 125.0, MODEL_CHANNELS, spec)
    assert ours.shape == expected.shape == native.shape
    # sample i holds the EEG of i / 125 s at every rate: the cross-correlation peaks at lag 0 ...
    lags = np.arange(-15, 16)
    middle = slice(20, -20)
    xcorr = [float(np.sum(ours[:, middle] * np.roll(expected, lag, axis=1)[:, middle])) for lag in lags]
    assert lags[int(np.argmax(xcorr))] == 0
    # ... and the values agree, at the ends too (the recording's edges are held, not zeroed)
    scale = float(np.abs(native).max())
    np.testing.assert_allclose(ours[:, middle], expected[:, middle], atol=5e-3 * scale)
    np.testing.assert_allclose(ours, expected, atol=0.1 * scale)


def test_filters_do_what_the_spec_says():
    t = np.arange(125 * 20) / 125
    eeg = np.tile(10 * np.sin(2 * np.pi * 60 * t) + 50.0 + np.sin(2 * np.pi * 8 * t), (125, 1))
    eeg[0] += 3.0  # average reference removes what all channels share
    out = preprocess_recording(eeg, 125.0, MODEL_CHANNELS, PreprocessingSpec(highpass_hz=0.5, notch_hz=60.0,
                                                                             reference="none"))
    tail = out[:, -125 * 5:]
    assert abs(tail.mean()) < 0.05  # DC removed by the high-pass
    spectrum = np.abs(np.fft.rfft(tail[1])) / tail.shape[1]
    freqs = np.fft.rfftfreq(tail.shape[1], 1 / 125)
    assert spectrum[np.argmin(abs(freqs - 60))] < 0.02 < spectrum[np.argmin(abs(freqs - 8))]
    referenced = preprocess_recording(eeg, 125.0, MODEL_CHANNELS, PreprocessingSpec(reference="average"))
    np.testing.assert_allclose(referenced.mean(axis=0), 0, atol=1e-4)


def test_non_finite_samples_become_zero_and_do_not_poison_state(rng):
    eeg = rng.standard_normal((128, 2000)).astype(np.float32)
    eeg[5, 100:300] = np.nan
    eeg[:, 700] = np.inf
    eeg[9] = np.nan  # an all-NaN channel
    out = preprocess_recording(eeg, 1000, DEVICE_CHANNELS_128, SPECS[2])
    assert np.isfinite(out).all()
    assert np.abs(out[:, -50:]).max() < 10


def test_absurdly_large_values_are_zeroed_and_do_not_poison_filter_state(rng):
    """A float64 1e308 is finite but no EEG (beyond MAX_ABS_UV): it must not leave the high-pass's
    state infinite, which would make every later sample NaN."""
    pre = StreamingPreprocessor(125.0, MODEL_CHANNELS, PreprocessingSpec(highpass_hz=1.0))
    bad = rng.standard_normal((125, 50))
    bad[3, 10] = 1e308
    bad[4, 20] = -1e300
    first, _ = pre.process(bad)
    assert np.isfinite(first).all()
    for _ in range(3):
        later, _ = pre.process(rng.standard_normal((125, 50)))
        assert np.isfinite(later).all() and np.abs(later).max() < 100


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"eeg": np.zeros((10, 50))}, DataFormatError, "shape \\(10, 50\\) but 125 labels"),
    ({"eeg": np.zeros(125), "labels": MODEL_CHANNELS}, DataFormatError, "n_chans, n_times"),
    ({"labels": ["X5" if c == "E5" else c for c in MODEL_CHANNELS]}, StreamError,
     r"lacks 1 the model needs \(E5\)"),
    ({"sfreq": 100.0}, StreamError, "below the model's 125 Hz"),
    ({"sfreq": 0.0}, StreamError, "irregular"),
    ({"spec": PreprocessingSpec(reference="median")}, ConfigError, "reference 'median'"),
    ({"spec": PreprocessingSpec(notch_hz=70.0)}, ConfigError, "notch 70.0 Hz"),
    ({"spec": PreprocessingSpec(highpass_hz=-1.0)}, ConfigError, "high-pass cut-off"),
])
def test_bad_input_raises(kwargs, error, message):
    call = {"eeg": np.zeros((125, 50)), "sfreq": 125.0, "labels": MODEL_CHANNELS, "spec": None, **kwargs}
    with pytest.raises(error, match=message):
        preprocess_recording(call["eeg"], call["sfreq"], call["labels"], call["spec"])


def test_streaming_chunk_with_wrong_channel_count_raises():
    pre = StreamingPreprocessor(125.0, MODEL_CHANNELS)
    with pytest.raises(DataFormatError, match="expected \\(125, n_times\\)"):
        pre.process(np.zeros((124, 3)))


def test_taint_reach_covers_fir_support_and_iir_settling():
    labels = DEVICE_CHANNELS_128
    assert StreamingPreprocessor(125.0, MODEL_CHANNELS).taint_samples == 1
    plain = StreamingPreprocessor(1000.0, labels)
    assert plain.taint_samples == plain.support == 161  # 161 taps at 1000 Hz (80 ms each side)
    filtered = StreamingPreprocessor(1000.0, labels, PreprocessingSpec(highpass_hz=0.5, notch_hz=60.0))
    assert filtered.settle_s == 2.0 and filtered.taint_samples == 161 + 2000
