"""The NMED-T songs, and one song's EEG recording as every dataset reader hands it out.

:data:`SONGS` names the ten songs by trigger code (21…30) with title and tempo; a
:class:`SongRecording` holds one song's EEG for all participants (channels × time × participants,
µV). The NMED-T folder reader (:mod:`replay.nmedt`), its file reader (:mod:`replay.nmedt_files`) and
the other datasets (:mod:`replay.dataset`) all return these.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eegmusic.stream.errors import DataFormatError

logger = logging.getLogger(__name__)

AUDIO_SFREQ = 22050
"""Rate in Hz of every stimulus returned by :meth:`replay.nmedt.NMEDTFolder.load_stimulus`."""

RAW_SFREQ = 1000.0
"""Rate in Hz of raw NMED-T recordings (and of ``simulate --raw``)."""

RAW_CHANNELS: tuple[str, ...] = tuple(f"E{i}" for i in range(1, 129)) + ("Cz",)
"""Channels of a raw recording: E1…E128 of the net, then Cz (E129, the recording reference)."""


@dataclass(frozen=True)
class SongInfo:
    """One NMED-T song.

    Parameters
    ----------
    song_id : int
        The song's trigger code (21…30), the NN of its file names.
    title : str
    bpm : float
        Tempo in beats per minute.
    """

    song_id: int
    title: str
    bpm: float


SONGS: dict[int, SongInfo] = {
    info.song_id: info
    for info in (
        SongInfo(21, "First Fires", 55.97),
        SongInfo(22, "Oino", 69.44),
        SongInfo(23, "Tiptoes", 74.26),
        SongInfo(24, "Careless Love", 82.42),
        SongInfo(25, "Lebanese Blonde", 91.46),
        SongInfo(26, "Canopée", 96.15),
        SongInfo(27, "Doing Yoga", 108.70),
        SongInfo(28, "Until the Sun Needs to Rise", 120.00),
        SongInfo(29, "Silent Shout", 128.21),
        SongInfo(30, "The Last Thing You Should Do", 150.00),
    )
}
"""The ten NMED-T songs by trigger code (titles and tempos from the dataset's description)."""


def song_info(song_id: int) -> SongInfo:
    """Return the :class:`SongInfo` of a song id (an unknown id gets a generic title, bpm NaN)."""
    return SONGS.get(int(song_id), SongInfo(int(song_id), f"song {int(song_id)}", float("nan")))


def _title_key(text: str) -> str:
    """``text`` without case, accents, spaces or punctuation: "Canopée" and "canopee" are one key."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c)).casefold()


_TITLE_KEYS = {_title_key(info.title): song_id for song_id, info in SONGS.items()}
_LEADING_NUMBER = re.compile(r"^(\d+)[ _.-]+")


def song_by_title(stem: str) -> int | None:
    """The id of the NMED-T song whose title a file name (without extension) spells, else None.

    The release ships no audio, so users name their copies; ``FirstFires``, ``21_First Fires`` and
    ``21 first-fires`` all give 21. A match is never read as the stimulus (that is ``songNN.<ext>``
    only); it lets a message name the rename. A leading number that is not the title's id
    ("22_FirstFires") matches nothing: which of the two is meant cannot be told.
    """
    number = _LEADING_NUMBER.match(stem)
    song_id = _TITLE_KEYS.get(_title_key(stem[number.end():] if number else stem))
    if song_id is None or (number and int(number.group(1)) != song_id):
        return None
    return song_id


@dataclass
class SongRecording:
    """One song's EEG, all participants.

    Attributes
    ----------
    song_id : int
    info : SongInfo
    data : ndarray, shape (n_chans, n_times, n_subjects), float64
        EEG in µV; n_chans is 125 (129 for raw recordings).
    sfreq : float
        Sampling rate in Hz (125; 1000 for raw recordings).
    subjects : list of str
        Participant ids, one per subject axis entry.
    channels : tuple of str
        Channel labels (:data:`stream.spec.MODEL_CHANNELS`, or :data:`RAW_CHANNELS` for raw).
    path : Path
        The file it was read from.
    positions : ndarray, shape (n_chans, 3), or None
        Electrode positions in metres (head coordinates) when the file states them; None means
        "look the labels up in a standard montage".
    """

    song_id: int
    info: SongInfo
    data: np.ndarray
    sfreq: float
    subjects: list[str]
    channels: tuple[str, ...]
    path: Path
    positions: np.ndarray | None = None

    @property
    def n_times(self) -> int:
        """Number of samples per channel."""
        return int(self.data.shape[1])

    @property
    def n_subjects(self) -> int:
        """Number of participants."""
        return int(self.data.shape[2])

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.n_times / self.sfreq

    def eeg(self, subject_index: int) -> np.ndarray:
        """Return one participant's EEG.

        Parameters
        ----------
        subject_index : int
            0-based index into :attr:`subjects`.

        Returns
        -------
        eeg : ndarray, shape (n_chans, n_times), float64, µV
        """
        if not 0 <= subject_index < self.n_subjects:
            raise DataFormatError(
                f"{self.path}: subject index {subject_index} out of range; it has {self.n_subjects} "
                f"participants (0-based index 0..{self.n_subjects - 1})"
            )
        return self.data[:, :, subject_index]

    def flat_problem(self, song_id: int) -> str | None:
        """One line naming the participants' flat or all-zero channels (:func:`flat_channels`), or None.

        ``info`` lists it as a problem; ``train`` reports the same channels in the same words
        (:class:`FlatReport`) and refuses the data when too many are flat.
        """
        report = FlatReport()
        for k in range(self.n_subjects):
            report.add(str(self.subjects[k]), self.eeg(k), self.channels)
        if not report.flat:
            return None
        return (f"song {song_id}: flat or all-zero EEG, no signal to learn from "
                f"({report.describe(limit=len(report.flat))}); check the recording (train refuses data where "
                f"over {100 * MAX_FLAGGED_SHARE:.0f} % of the channels are flat)")


FLAT_STD_UV = 1e-3
"""A channel whose standard deviation is below this (µV), or that is not finite, is flat."""


def flat_channels(eeg: np.ndarray) -> np.ndarray:
    """Which channels are flat.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
        One recording, µV.

    Returns
    -------
    flat : ndarray of bool, shape (n_chans,)
    """
    import warnings

    eeg = np.asarray(eeg)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN channel: its spread is NaN, flat
        spread = np.nanstd(eeg.astype(np.float64, copy=False), axis=1)
    return ~np.isfinite(spread) | (spread < FLAT_STD_UV)


MAX_FLAGGED_SHARE = 0.25
"""Largest share of flat (recording, channel) pairs a dataset may have; above it, training refuses."""


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
