"""How close a resynthesis is to its source: spectral convergence, log-spectral distances.

A vocoder fed a mel cannot recover the linear magnitude the mel was made from (the mel → linear
step alone caps linear spectral convergence near −7 dB for every method), so vocoders are judged
where their input lives: :func:`mel_log_spectral_distance` compares the mel of the resynthesis with
the source mel. :func:`multi_resolution_stft_distance` compares with the source audio at three STFT
sizes, so no single framing (the one the vocoder was fitted on) decides.
"""

from __future__ import annotations

import numpy as np
from eegmusic.decoder.melspec import HOP_LENGTH, N_FFT, mel_db

MEL_LSD_RANGE_DB = 80.0
"""Mel levels more than this below the source's loudest mel bin count as silence (both sides)."""
MR_STFT_SIZES = (512, 1024, 2048)
"""FFT sizes of the multi-resolution distance (hop a quarter of each)."""


def stft_magnitude(audio: np.ndarray) -> np.ndarray:
    """|STFT| in the design framing (n_fft 2048, hop 512, Hann, centre=True).

    Returns
    -------
    magnitude : ndarray, shape (N_FFT // 2 + 1, 1 + n_samples // HOP_LENGTH)
    """
    import librosa

    return np.abs(librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=N_FFT, hop_length=HOP_LENGTH))


def spectral_convergence(audio: np.ndarray, reference_magnitude: np.ndarray) -> float:
    """Spectral convergence of ``audio`` against a target magnitude, in dB (lower is better).

    ``20·log10(‖|STFT(audio)| − S‖_F / ‖S‖_F)``, frames compared over the common length.
    """
    magnitude = stft_magnitude(audio)
    n = min(magnitude.shape[1], reference_magnitude.shape[1])
    diff = np.linalg.norm(magnitude[:, :n] - reference_magnitude[:, :n])
    return float(20.0 * np.log10(diff / max(np.linalg.norm(reference_magnitude[:, :n]), 1e-20) + 1e-20))


def log_spectral_distance(audio: np.ndarray, reference_magnitude: np.ndarray, *, floor_db: float = -80.0
                          ) -> float:
    """Log-spectral distance in dB: per-frame RMS of the dB difference of power spectra, averaged.

    Powers are floored ``floor_db`` below the reference's peak, so silence does not dominate.
    """
    magnitude = stft_magnitude(audio)
    n = min(magnitude.shape[1], reference_magnitude.shape[1])
    ref = reference_magnitude[:, :n] ** 2
    est = magnitude[:, :n] ** 2
    floor = max(ref.max(), 1e-20) * 10.0 ** (floor_db / 10.0)
    diff = 10.0 * np.log10(np.maximum(est, floor)) - 10.0 * np.log10(np.maximum(ref, floor))
    return float(np.mean(np.sqrt(np.mean(diff ** 2, axis=0))))


def mel_log_spectral_distance(audio: np.ndarray, reference_mel_db: np.ndarray) -> float:
    """Mel log-spectral distance in dB: the mel-dB of ``audio`` against a source mel-dB (lower is better).

    Per frame the RMS over the 128 mel bands of the dB difference, averaged over frames; both sides
    are floored :data:`MEL_LSD_RANGE_DB` below the source's loudest bin.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
        The resynthesis at 22050 Hz, aligned with the source.
    reference_mel_db : ndarray, shape (N_MELS, n_frames)
        The mel-dB the vocoder was given.
    """
    ours = mel_db(np.asarray(audio, dtype=np.float32)).astype(np.float64)
    n = min(ours.shape[1], reference_mel_db.shape[1])
    reference = np.asarray(reference_mel_db[:, :n], dtype=np.float64)
    floor = reference.max() - MEL_LSD_RANGE_DB
    diff = np.maximum(ours[:, :n], floor) - np.maximum(reference, floor)
    return float(np.mean(np.sqrt(np.mean(diff ** 2, axis=0))))


def multi_resolution_stft_distance(audio: np.ndarray, reference: np.ndarray) -> float:
    """Multi-resolution STFT log distance to the source audio (lower is better).

    For each FFT size in :data:`MR_STFT_SIZES` (hop a quarter of it, Hann), the mean absolute
    difference of natural-log magnitudes, ``|log(|X| + ε) − log(|Y| + ε)|`` with ε 1e-5 of the
    source's peak magnitude; averaged over the sizes.

    Parameters
    ----------
    audio, reference : ndarray, shape (n_samples,)
        Resynthesis and source at the same rate, aligned (compared over the common length).
    """
    import librosa

    n = min(audio.size, reference.size)
    distances = []
    for n_fft in MR_STFT_SIZES:
        ours, theirs = (np.abs(librosa.stft(np.asarray(x[:n], dtype=np.float32), n_fft=n_fft,
                                            hop_length=n_fft // 4)) for x in (audio, reference))
        eps = 1e-5 * max(float(theirs.max()), 1e-20)
        distances.append(float(np.mean(np.abs(np.log(ours + eps) - np.log(theirs + eps)))))
    return float(np.mean(distances))
