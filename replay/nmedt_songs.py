"""The NMED-T songs, and one song's EEG recording as every dataset reader hands it out.

:data:`SONGS` names the ten songs by trigger code (21…30) with title and tempo; a
:class:`SongRecording` holds one song's EEG for all participants (channels × time × participants,
µV). The NMED-T folder reader (:mod:`replay.nmedt`), its file reader (:mod:`replay.nmedt_files`) and
the other datasets (:mod:`replay.dataset`) all return these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eegmusic.stream.errors import DataFormatError

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

        ``info`` lists it as a problem; ``train`` warns of the same channels and refuses the data when
        too many are flat (:mod:`offline_training.sanity`).
        """
        found = []
        for k in range(self.n_subjects):
            flags = flat_channels(self.eeg(k))
            if flags.all():
                found.append(f"{self.subjects[k]} all {flags.size} channels")
            elif flags.any():
                labels = [str(self.channels[i]) for i in np.flatnonzero(flags)]
                more = f" and {len(labels) - 5} more" if len(labels) > 5 else ""
                found.append(f"{self.subjects[k]} {', '.join(labels[:5])}{more}")
        if not found:
            return None
        return (f"song {song_id}: flat or all-zero EEG, no signal to learn from ({'; '.join(found)}); "
                "check the recording (train refuses data where over a quarter of the channels are flat)")


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
