"""EEG features shared by training and the live path: PSDs and robust scaling.

Plain functions over numpy arrays. The torch versions that run inside exported models
(``offline_training/torch_features.py``) compute the same numbers; a test holds them equal.

- :func:`periodogram`: one-sided power spectral density of each channel's 1-s window
  (125 samples at 125 Hz → 63 bins, 0…62 Hz), boxcar window, mean removed (scipy's defaults).
- :func:`welch`: Welch PSD on the same 63-bin grid (Hann segments of 64 samples, 50 % overlap,
  each zero-padded to 125 points).
- :func:`robust_stats` / :func:`robust_scale`: per-channel median/IQR scaling with clamping, as the
  latent-diffusion paper preprocesses raw EEG.
"""

from __future__ import annotations

import numpy as np

IQR_PER_SD = 1.3489795003921634
"""Interquartile range of a standard normal distribution: IQR / IQR_PER_SD estimates the SD."""

WELCH_NPERSEG = 64
"""Default Welch segment length in samples."""


def n_bins(n_times: int) -> int:
    """Number of one-sided frequency bins of an ``n_times``-point DFT (125 → 63)."""
    return n_times // 2 + 1


def psd_frequencies(n_times: int = 125, *, fs: float = 125.0) -> np.ndarray:
    """Bin frequencies in Hz of :func:`periodogram` and :func:`welch`, shape (n_times // 2 + 1,)."""
    return np.fft.rfftfreq(n_times, d=1.0 / fs)


def _one_sided_scale(n_times: int, fs: float, window: np.ndarray) -> np.ndarray:
    """Density scaling per bin: 1/(fs·Σw²), doubled except DC (and Nyquist for even lengths)."""
    scale = np.full(n_bins(n_times), 2.0 / (fs * np.sum(window**2)))
    scale[0] /= 2.0
    if n_times % 2 == 0:
        scale[-1] /= 2.0
    return scale


def periodogram(eeg: np.ndarray, *, fs: float = 125.0) -> np.ndarray:
    """One-sided periodogram (power spectral density) along the last axis.

    Equals ``scipy.signal.periodogram(eeg, fs, window="boxcar", detrend="constant")``.

    Parameters
    ----------
    eeg : ndarray, shape (..., n_times)
        Signal in µV, e.g. (n_chans, 125) or (n_windows, n_chans, 125).
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    psd : ndarray, shape (..., n_times // 2 + 1), float64
        Power spectral density in µV²/Hz; 63 bins for 125 samples.

    Examples
    --------
    >>> periodogram(np.zeros((125, 125))).shape
    (125, 63)
    """
    eeg = np.asarray(eeg, dtype=np.float64)
    n_times = eeg.shape[-1]
    centred = eeg - eeg.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    return power * _one_sided_scale(n_times, fs, np.ones(n_times))


def welch(eeg: np.ndarray, *, fs: float = 125.0, nperseg: int = WELCH_NPERSEG) -> np.ndarray:
    """Welch PSD on the periodogram's frequency grid along the last axis.

    Hann segments of ``nperseg`` samples with 50 % overlap, each mean-removed and zero-padded to
    ``n_times`` points, so that the bins match :func:`periodogram` (63 bins for 125 samples). Equals
    ``scipy.signal.welch(eeg, fs, nperseg=nperseg, noverlap=nperseg // 2, nfft=n_times)``.

    Parameters
    ----------
    eeg : ndarray, shape (..., n_times)
        Signal in µV.
    fs : float
        Sampling rate in Hz.
    nperseg : int
        Segment length in samples (at most ``n_times``).

    Returns
    -------
    psd : ndarray, shape (..., n_times // 2 + 1), float64
        Power spectral density in µV²/Hz.
    """
    eeg = np.asarray(eeg, dtype=np.float64)
    n_times = eeg.shape[-1]
    nperseg = min(nperseg, n_times)
    starts = welch_segment_starts(n_times, nperseg)
    window = welch_window(nperseg)
    segments = np.stack([eeg[..., s : s + nperseg] for s in starts], axis=-2)
    segments = (segments - segments.mean(axis=-1, keepdims=True)) * window
    spectrum = np.fft.rfft(segments, n=n_times, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).mean(axis=-2)
    return power * _one_sided_scale(n_times, fs, window)


def welch_segment_starts(n_times: int, nperseg: int = WELCH_NPERSEG) -> list[int]:
    """First sample of each Welch segment (hop ``nperseg // 2``; the tail that does not fit is unused)."""
    nperseg = min(nperseg, n_times)
    step = max(nperseg - nperseg // 2, 1)
    return list(range(0, n_times - nperseg + 1, step))


def welch_window(nperseg: int = WELCH_NPERSEG) -> np.ndarray:
    """The periodic Hann window of length ``nperseg`` (scipy's ``get_window("hann", nperseg)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nperseg) / nperseg)


def robust_stats(eeg: np.ndarray, *, axis: int | tuple[int, ...] = -1) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel median and interquartile range for :func:`robust_scale`.

    Parameters
    ----------
    eeg : ndarray
        Training EEG in µV, e.g. (n_windows, n_chans, n_times) with ``axis=(0, 2)``.
    axis : int or tuple of int
        Axes reduced over (everything but the channel axis).

    Returns
    -------
    median, iqr : ndarray, float32
        Shaped like ``eeg`` with ``axis`` removed, e.g. (n_chans,). A zero IQR (flat channel) is
        replaced by 1 so that scaling never divides by zero.
    """
    eeg = np.asarray(eeg, dtype=np.float64)
    q25, median, q75 = np.percentile(eeg, [25.0, 50.0, 75.0], axis=axis)
    iqr = q75 - q25
    iqr = np.where(iqr > 0, iqr, 1.0)
    return median.astype(np.float32), iqr.astype(np.float32)


def robust_scale(eeg: np.ndarray, median: np.ndarray, iqr: np.ndarray, clamp_sd: float = 20.0) -> np.ndarray:
    """Centre by the median, scale by the IQR-estimated SD, clamp at ±``clamp_sd``.

    ``z = clip((eeg - median) / (iqr / 1.349), -clamp_sd, clamp_sd)``: for Gaussian data z is in
    standard deviations, so the clamp is at ``clamp_sd`` SD.

    Parameters
    ----------
    eeg : ndarray, shape (..., n_chans, n_times)
        EEG in µV.
    median, iqr : ndarray, shape (n_chans,)
        From :func:`robust_stats` on training data, in µV.
    clamp_sd : float
        Clamp level in standard deviations.

    Returns
    -------
    scaled : ndarray, shape (..., n_chans, n_times), float32
    """
    eeg = np.asarray(eeg, dtype=np.float32)
    median = np.asarray(median, dtype=np.float32)[:, None]
    sd = np.asarray(iqr, dtype=np.float32)[:, None] / np.float32(IQR_PER_SD)
    scaled = (eeg - median) / sd
    return np.clip(scaled, -clamp_sd, clamp_sd).astype(np.float32)
