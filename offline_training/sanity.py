"""Data sanity on load: flat or all-zero EEG, silent or short stimuli, reported before any training.

A recording that is all zeros, a channel that never moves, a silent WAV or a stimulus much shorter
than its EEG all train "fine" and give a meaningless model. :class:`FlatReport` collects flat
channels per recording while a dataset loads; :meth:`FlatReport.check` refuses the data when the
flagged share is above :data:`MAX_FLAGGED_SHARE` and otherwise logs what was found.
:func:`check_stimulus` refuses a silent stimulus, and one shorter than its EEG unless the user
allows it (``--allow-short-stimulus``: the rest of the targets are then silence).
"""

from __future__ import annotations

import logging

import numpy as np
from eegmusic.replay.nmedt_songs import (  # noqa: F401  (re-exported for the check's callers)
    FLAT_STD_UV,
    MAX_FLAGGED_SHARE,
    FlatReport,
    flat_channels,
)
from eegmusic.stream.errors import DataFormatError
from eegmusic.stream.stimulus import SHORT_SLACK_S, SILENT_PEAK

logger = logging.getLogger(__name__)

def check_stimulus(audio: np.ndarray, *, song: int, folder, eeg_s: float, allow_short: bool) -> None:
    """Refuse a silent stimulus, and one shorter than its EEG unless ``allow_short``.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
        The stimulus at 22050 Hz.
    eeg_s : float
        Length of the song's EEG in seconds.

    Raises
    ------
    DataFormatError
    """
    from eegmusic.decoder.melspec import AUDIO_SFREQ

    audio = np.asarray(audio)
    if not np.isfinite(audio).all():
        raise DataFormatError(f"stimulus of song {song} in {folder} holds NaN or Inf samples; re-export the "
                              "audio")
    if audio.size == 0 or float(np.max(np.abs(audio))) < SILENT_PEAK:
        raise DataFormatError(f"stimulus of song {song} in {folder} is silent; put the song's audio in "
                              f"stimuli/song{song}.wav")
    stimulus_s = audio.size / AUDIO_SFREQ
    if stimulus_s + SHORT_SLACK_S < eeg_s:
        if not allow_short:
            raise DataFormatError(
                f"stimulus of song {song} in {folder} lasts {stimulus_s:.1f} s but its EEG {eeg_s:.1f} s; "
                "use the whole song, or pass --allow-short-stimulus to take silence as the target after "
                "its end")
        logger.warning("stimulus of song %d lasts %.1f s, its EEG %.1f s: targets after the end are silence "
                       "(--allow-short-stimulus)", song, stimulus_s, eeg_s)
