"""Mel spectrograms exactly as the design contract fixes them.

22050 Hz mono audio, n_fft 2048, hop 512, 128 mel bands from 0 to 11025 Hz, power 2 (librosa's
defaults), converted to dB with the fixed reference 1.0 and clipped below at -80 dB. Never normalised
per window or per song: a decoder's output is comparable across windows and songs.

Training targets, live truth and the vocoder all use these functions, so the numbers agree.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np

AUDIO_SFREQ = 22050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
FMIN = 0.0
FMAX = 11025.0
DB_FLOOR = -80.0
AMIN = 1e-10
MEL_DB_CEILING = 60.0
"""Top of the mel-dB range a decoder's output is kept in (:func:`guard_mel_db`). No sound reaches it: audio
within [-1, 1] has at most 50.05 dB in any band (an STFT bin's magnitude is at most the periodic Hann
window's sum, 1024, and the largest mel filter sums to 0.0964), so this leaves 10 dB for a model's
overshoot. A frame beyond it is a fault (absurd EEG through a linear map gave ±3.9e28 dB, overflowing the
vocoder's power and the scores' sums)."""

MEL_DB_GUARD_FLOOR = DB_FLOOR - 120.0
"""Bottom of that range, -200 dB: far below the contract's floor, so a working model's output (a ridge
map reaches about -120 dB in silence) is never touched and its scores do not move, yet a broken one's
-1e28 dB is. Below :data:`DB_FLOOR` the vocoder hears silence either way."""

FRAMES_PER_WINDOW = 44
"""Frames of one 1-s window (22050 samples, centre=True framing at hop 512)."""

FRAME_PERIOD_S = HOP_LENGTH / AUDIO_SFREQ
"""Frame k of a stimulus is at k * FRAME_PERIOD_S seconds of stimulus time."""


def mel_spec_dict() -> dict:
    """Return the mel parameters as a JSON-ready dict (stored in model metadata)."""
    return {
        "sr": AUDIO_SFREQ, "n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": N_MELS,
        "fmin": FMIN, "fmax": FMAX, "power": 2.0, "center": True, "ref": 1.0,
        "amin": AMIN, "db_floor": DB_FLOOR, "frames_per_window": FRAMES_PER_WINDOW,
    }


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """Return the mel filter bank.

    Returns
    -------
    basis : ndarray, shape (N_MELS, N_FFT // 2 + 1), float32
    """
    basis = librosa.filters.mel(sr=AUDIO_SFREQ, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
    basis.setflags(write=False)
    return basis


def power_to_db(power: np.ndarray) -> np.ndarray:
    """Convert mel power to mel-dB: 10·log10(max(S, 1e-10)), reference 1.0, floor -80 dB."""
    db = 10.0 * np.log10(np.maximum(power, AMIN))
    return np.maximum(db, DB_FLOOR).astype(np.float32)


def db_to_power(mel_db: np.ndarray) -> np.ndarray:
    """Invert :func:`power_to_db` (values at the floor come back as 1e-8)."""
    return np.power(10.0, np.asarray(mel_db, dtype=np.float64) / 10.0)


def mel_power(audio: np.ndarray) -> np.ndarray:
    """Mel power spectrogram of a mono 22050-Hz signal.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)

    Returns
    -------
    power : ndarray, shape (N_MELS, 1 + n_samples // HOP_LENGTH)
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return librosa.feature.melspectrogram(
        y=audio, sr=AUDIO_SFREQ, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS,
        fmin=FMIN, fmax=FMAX, power=2.0, center=True,
    )


def mel_db(audio: np.ndarray) -> np.ndarray:
    """Mel-dB spectrogram of a mono 22050-Hz signal.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)

    Returns
    -------
    mel_db : ndarray, shape (N_MELS, 1 + n_samples // HOP_LENGTH), float32

    Examples
    --------
    >>> mel_db(np.zeros(22050)).shape
    (128, 44)
    """
    return power_to_db(mel_power(audio))


def window_mel_db(audio: np.ndarray, start_s: float) -> np.ndarray:
    """Mel-dB target of the 1-s stimulus segment starting at ``start_s``.

    The segment is cut from the whole song and framed on its own (centre=True), as EEG2Mel does;
    samples outside the song are zeros.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
        The whole stimulus at 22050 Hz.
    start_s : float
        Segment start in seconds of stimulus time.

    Returns
    -------
    mel_db : ndarray, shape (N_MELS, FRAMES_PER_WINDOW), float32
    """
    start = int(round(start_s * AUDIO_SFREQ))
    segment = np.zeros(AUDIO_SFREQ, dtype=np.float32)
    lo, hi = max(start, 0), min(start + AUDIO_SFREQ, len(audio))
    if hi > lo:
        segment[lo - start:hi - start] = audio[lo:hi]
    return mel_db(segment)


def guard_mel_db(output: np.ndarray) -> np.ndarray:
    """Clip a decoder's mel-dB output to [:data:`MEL_DB_GUARD_FLOOR`, :data:`MEL_DB_CEILING`] in place.

    The live path (``decoder.pipeline``) and the offline one (``offline_training.inference.run_model``:
    ``evaluate``, ``bench``) both apply it, so they score the same frames. NaN stays NaN: the vocoder
    plays such a frame as silence and counts it, the live scorer skips it.

    Parameters
    ----------
    output : ndarray, shape (..., n_mels, n_frames), float32

    Returns
    -------
    ndarray of bool, shape (..., n_frames), or None
        The frames that had a value outside the range (a fault: the live path counts them as
        ``frames_clipped``); None when no value was outside, the normal case, which costs two
        reductions and no array (the live path calls this every hop).
    """
    if output.max() <= MEL_DB_CEILING and output.min() >= MEL_DB_GUARD_FLOOR:   # NaN fails both
        return None
    outside = (output < MEL_DB_GUARD_FLOOR) | (output > MEL_DB_CEILING)   # False for NaN
    if not outside.any():
        return None   # NaN failed the reductions: played as silence and skipped elsewhere, not clipped
    np.clip(output, MEL_DB_GUARD_FLOOR, MEL_DB_CEILING, out=output)
    return outside.any(axis=-2)
