"""decoder.features (numpy) against scipy and hand-computed values; torch_features equal to numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from eegmusic.decoder.features import periodogram, psd_frequencies, robust_scale, robust_stats, welch


@pytest.fixture
def eeg(rng):
    return rng.normal(0.0, 10.0, size=(3, 125, 125)) + 5.0


def test_periodogram_equals_scipy(eeg):
    _, expected = scipy.signal.periodogram(eeg, fs=125.0, window="boxcar", detrend="constant")
    got = periodogram(eeg, fs=125.0)
    assert got.shape == (3, 125, 63)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_welch_equals_scipy(eeg):
    _, expected = scipy.signal.welch(eeg, fs=125.0, nperseg=64, noverlap=32, nfft=125)
    got = welch(eeg, fs=125.0)
    assert got.shape == (3, 125, 63)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_psd_of_a_sine_peaks_at_its_frequency():
    t = np.arange(125) / 125.0
    sine = 3.0 * np.sin(2 * np.pi * 10.0 * t)
    freqs = psd_frequencies(125, fs=125.0)
    assert len(freqs) == 63 and freqs[10] == pytest.approx(10.0)
    for psd in (periodogram(sine), welch(sine)):
        assert int(np.argmax(psd)) == 10
    # Parseval: the one-sided periodogram integrates to the signal's variance (4.5 µV² for amplitude 3)
    assert periodogram(sine).sum() * (freqs[1] - freqs[0]) == pytest.approx(4.5, rel=1e-9)


def test_robust_scale_by_hand():
    eeg = np.array([[[0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 10.0, 10.0, 10.0, 1e6]]])
    median, iqr = robust_stats(eeg, axis=(0, 2))
    np.testing.assert_allclose(median, [2.0, 10.0])
    np.testing.assert_allclose(iqr, [2.0, 1.0])  # a zero IQR becomes 1
    scaled = robust_scale(eeg, median, iqr, clamp_sd=20.0)
    sd0 = 2.0 / 1.3489795003921634
    np.testing.assert_allclose(scaled[0, 0], (np.arange(5) - 2.0) / sd0, rtol=1e-6)
    assert scaled[0, 1, -1] == pytest.approx(20.0)  # 1e6 µV clamped at 20 SD
    assert scaled.dtype == np.float32


def test_torch_features_equal_numpy(eeg):
    torch = pytest.importorskip("torch")
    from eegmusic.offline_training.torch_features import Periodogram, RobustScale, Welch

    x = torch.tensor(eeg, dtype=torch.float32)
    for module, function in ((Periodogram(125, fs=125.0), periodogram), (Welch(125, fs=125.0), welch)):
        expected = function(eeg.astype(np.float32), fs=125.0)
        got = module(x).numpy()
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-4 * expected.max())
    median, iqr = robust_stats(eeg, axis=(0, 2))
    scale = RobustScale(125, clamp_sd=1.5)
    scale.set_stats(median, iqr)
    expected = robust_scale(eeg, median, iqr, clamp_sd=1.5)
    np.testing.assert_allclose(scale(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (np.abs(expected) == 1.5).any()  # the clamp is exercised
