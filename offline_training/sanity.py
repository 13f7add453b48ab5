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
from dataclasses import dataclass, field

import numpy as np
from eegmusic.replay.nmedt_songs import FLAT_STD_UV, flat_channels  # noqa: F401  (re-exported for the check's callers)
from eegmusic.stream.errors import DataFormatError
from eegmusic.stream.stimulus import SILENT_PEAK

logger = logging.getLogger(__name__)

MAX_FLAGGED_SHARE = 0.25
"""Largest share of flat (recording, channel) pairs a dataset may have; above it, training refuses."""


SHORT_SLACK_S = 1.0
"""A stimulus may be this much shorter than its EEG (trailing samples) without being short."""


@dataclass
class FlatReport:
    """Flat channels found per recording while a dataset loads."""

    n_pairs: int = 0
    """(recording, channel) pairs seen."""
    flat: dict[str, list[str]] = field(default_factory=dict)
    """Recording name → labels of its flat channels."""

    n_chans: dict[str, int] = field(default_factory=dict)
    """Recording name → its number of channels (to tell "all channels" from many)."""

    def add(self, name: str, eeg: np.ndarray, labels) -> None:
        """Check one recording (``eeg`` shape (n_chans, n_times)) and remember its flat channels."""
        self.add_flags(name, flat_channels(eeg), labels)

    def add_flags(self, name: str, flags: np.ndarray, labels) -> None:
        """Remember one recording's flat channels, ``flags`` from :func:`flat_channels` (n_chans,)."""
        flags = np.asarray(flags, dtype=bool)
        self.n_pairs += len(flags)
        if flags.any():
            self.flat[name] = [str(labels[i]) for i in np.flatnonzero(flags)]
            self.n_chans[name] = len(flags)

    @property
    def n_flat(self) -> int:
        """Flat (recording, channel) pairs."""
        return sum(len(labels) for labels in self.flat.values())

    def describe(self, limit: int = 3, shown: int = 5) -> str:
        """One line: the flat recordings and channels, the first few named."""
        parts = []
        for name, labels in list(self.flat.items())[:limit]:
            n_chans = self.n_chans.get(name, len(labels))
            if len(labels) == n_chans:
                listed = "all channels"
            elif len(labels) > shown:
                listed = f"{', '.join(labels[:shown])} and {len(labels) - shown} more of {n_chans} channels"
            else:
                listed = ", ".join(labels)
            parts.append(f"{name}: {listed}")
        more = f"; {len(self.flat) - limit} more recordings" if len(self.flat) > limit else ""
        return "; ".join(parts) + more

    def check(self, folder, *, max_share: float = MAX_FLAGGED_SHARE) -> None:
        """Log the flat channels; raise :class:`DataFormatError` when their share exceeds ``max_share``."""
        if not self.flat:
            return
        share = self.n_flat / max(self.n_pairs, 1)
        message = (f"{folder}: {self.n_flat} of {self.n_pairs} recording channels ({100 * share:.0f} %) are "
                   f"flat or all-zero ({self.describe()})")
        if share > max_share:
            raise DataFormatError(f"{message}; over {100 * max_share:.0f} % is not EEG to learn from: fix or "
                                  "drop those recordings (--subjects, --songs)")
        logger.warning("%s; training goes on", message)


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
