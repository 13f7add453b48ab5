"""NMED-T's EEG presented as the 128-channel GSN-HydroCel amplifier it was recorded with.

``eegmusic replay --device-like 1000`` sends a song the way the lab's amplifier would have: 128
channels E1..E128 against the Cz reference, at the amplifier's rate. NMED-T lacks the four face
electrodes, so :func:`face_channel_weights` estimates them from their nearest scalp electrodes, and
:func:`device_like_eeg` re-references and upsamples. A model trained on the 125-Hz files reads this
stream unchanged (its preprocessing re-references to the average and resamples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from eegmusic.stream.errors import ConfigError
from eegmusic.stream.spec import DEVICE_CHANNELS_128, MODEL_CHANNELS

FACE_CHANNELS = ("E125", "E126", "E127", "E128")
"""GSN-HydroCel face electrodes, absent from NMED-T; a device-like replay fills them."""


def face_channel_weights(labels: Sequence[str], face: Sequence[str] = FACE_CHANNELS, *, k: int = 3):
    """Inverse-distance weights that estimate face electrodes from their nearest scalp ones.

    Parameters
    ----------
    labels : sequence of str, length n_chans
        Electrodes that were recorded (e.g. E1..E124).
    face : sequence of str, length n_face
        Electrodes to estimate.
    k : int
        Number of nearest recorded electrodes per face electrode.

    Returns
    -------
    weights : ndarray, shape (n_face, n_chans)
        Each row sums to 1 and has ``k`` non-zero entries; ``weights @ eeg`` gives the face signals.
    """
    from eegmusic.stream.montage import electrode_positions

    recorded = electrode_positions(labels)
    targets = electrode_positions(face)
    dist = np.linalg.norm(targets[:, None, :] - recorded[None, :, :], axis=-1)
    weights = np.zeros((len(face), len(labels)))
    for row, d in enumerate(dist):
        nearest = np.argsort(d)[:k]
        w = 1.0 / np.maximum(d[nearest], 1e-6)
        weights[row, nearest] = w / w.sum()
    return weights


def device_like_eeg(
    eeg: np.ndarray, sfreq: float, device_sfreq: float, labels: Sequence[str] = MODEL_CHANNELS, *,
    progress: bool = False,
):
    """Present model-order EEG as a 128-channel GSN-HydroCel amplifier at a higher rate.

    The amplifier's labels are E1..E128; Cz (E129) is its reference and is not sent, so every channel
    is re-referenced to Cz as such an amplifier records it: E1..E124 carry the dataset's samples minus
    its Cz. The face electrodes E125..E128, absent from NMED-T, are filled with an inverse-distance
    mean of their 3 nearest scalp electrodes (:func:`face_channel_weights`), so they look like
    plausible EEG. Every channel is then upsampled with ``scipy.signal.resample_poly`` (e.g. 8/1 for
    125 -> 1000 Hz). A model whose preprocessing spec re-references to the average (the default)
    therefore sees the same input from this stream as from the 125-Hz file.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
        EEG in microvolts, rows labelled by ``labels`` (must include E1..E124).
    sfreq : float
        Rate of ``eeg`` in Hz.
    device_sfreq : float
        Amplifier rate in Hz (at least ``sfreq``, a simple ratio to it). The result must fit in memory
        (:func:`check_memory`).
    labels : sequence of str
        Row labels of ``eeg``.
    progress : bool
        Show a progress bar (stderr) while upsampling.

    Returns
    -------
    device_eeg : ndarray, shape (128, n_times * device_sfreq / sfreq), float32
    device_labels : tuple of str
        ``DEVICE_CHANNELS_128``.
    """
    from scipy.signal import resample_poly

    try:
        device_sfreq = float(device_sfreq)
    except (TypeError, ValueError):
        raise ConfigError(f"--device-like {device_sfreq!r} is not a rate; pass e.g. 1000") from None
    if not (math.isfinite(device_sfreq) and device_sfreq > 0):
        raise ConfigError(f"--device-like rate must be > 0 Hz (got {device_sfreq}); pass e.g. 1000")
    if device_sfreq < sfreq:  # an amplifier records faster than the dataset; below it no decoder reads it
        raise ConfigError(f"--device-like {device_sfreq:g} Hz is below the data's {sfreq:g} Hz: a "
                          f"device-like replay upsamples; pass a rate of at least {sfreq:g} Hz, e.g. 1000")
    ratio = Fraction(device_sfreq / sfreq).limit_denominator(1000)
    if abs(float(ratio) * sfreq - device_sfreq) > 1e-6 * device_sfreq:
        raise ConfigError(
            f"--device-like {device_sfreq:g} Hz is not a simple ratio of {sfreq:g} Hz; pass e.g. 1000"
        )
    index = {label: row for row, label in enumerate(labels)}
    scalp = [f"E{i}" for i in range(1, 125)]
    missing = [label for label in [*scalp, "Cz"] if label not in index]
    if missing:
        raise ConfigError(f"device-like replay needs E1..E124 and Cz; the data lacks "
                          f"{', '.join(missing[:5])}")
    n_out = np.shape(eeg)[1] * ratio.numerator // ratio.denominator
    check_memory(n_out, device_sfreq, np.shape(eeg)[1] / sfreq)
    eeg = np.asarray(eeg, dtype=np.float64)
    scalp_eeg = eeg[[index[label] for label in scalp]] - eeg[index["Cz"]]
    face_eeg = face_channel_weights(scalp) @ scalp_eeg
    full = np.concatenate([scalp_eeg, face_eeg])
    out = np.empty((len(DEVICE_CHANNELS_128), n_out), dtype=np.float32)
    from eegmusic.stream.progress import progress_bar

    rows = progress_bar(range(full.shape[0]), desc=f"upsampling to {device_sfreq:g} Hz", unit="ch",
                        disable=not progress, leave=False)
    for row in rows:  # row by row keeps the float64 temporaries small
        up = resample_poly(full[row], ratio.numerator, ratio.denominator)
        out[row] = up[: out.shape[1]]
    return out, DEVICE_CHANNELS_128


def check_memory(n_times: int, device_sfreq: float, duration_s: float) -> None:
    """Refuse, before allocating, a device-like stream of ``n_times`` samples that would not fit in memory.

    The replay holds the 128 channels of float32 twice (the upsampled array and the player's sample-major
    copy, :class:`replay.player.ArrayPlayer`), plus two float64 rows of ``resample_poly`` at a time.
    Without this check ``--device-like 100000`` on a 60-s song ended in a MemoryError's traceback or the
    OOM killer.

    Parameters
    ----------
    n_times : int
        Samples per channel at ``device_sfreq``.
    device_sfreq : float
        The amplifier rate in Hz (for the message).
    duration_s : float
        Length of the song in seconds (for the message).

    Raises
    ------
    ConfigError
        The estimate exceeds the memory available now (:func:`replay.simulate.available_memory`).
    """
    from eegmusic.replay.simulate import available_memory, byte_size

    need = 2 * len(DEVICE_CHANNELS_128) * n_times * 4 + 2 * n_times * 8
    have = available_memory()
    if need > have:
        raise ConfigError(f"--device-like {device_sfreq:g} Hz turns this {duration_s:.0f}-s song into "
                          f"{len(DEVICE_CHANNELS_128)} channels x {n_times:,} samples, about "
                          f"{byte_size(need)} of memory, {byte_size(have)} available; pass a lower rate, "
                          "e.g. 1000")
