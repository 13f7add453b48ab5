"""One interface over every dataset eegmusic reads: NMED-T folders, XDF sessions, MNE recordings.

A dataset is a set of *songs*: each song is EEG recorded while one stimulus played, with the
stimulus audio aligned to it. :func:`open_dataset` picks the reader from the path:

=====================================  ==================================================
path                                   reader
=====================================  ==================================================
folder with ``songNN_Imputed.mat``     :class:`replay.nmedt.NMEDTFolder` (NMED-T layout)
``.xdf`` / ``.xdfz`` file              :class:`replay.xdf_session.XDFSession` (calibrate)
folder of ``.xdf`` sessions            :class:`replay.xdf_session.XDFSessionFolder` (a listener each)
folder with ``dataset_description``    :class:`replay.mne_dataset.MNEDataset` (BIDS root)
``.fif .edf .bdf .vhdr .set`` file     :class:`replay.mne_dataset.MNEDataset` (one file)
=====================================  ==================================================

Every reader offers the same methods (:class:`EEGMusicDataset`), so ``train``, ``evaluate``,
``replay`` and ``info`` do not care where the data came from:

- ``song_ids`` (list of int) and ``load_song(song_id)`` returning a
  :class:`replay.nmedt.SongRecording`: EEG (n_chans, n_times, n_subjects) in µV at ``sfreq``, the
  channel labels and, when known, electrode positions;
- ``load_stimulus(song_id)``: the audio heard, mono float32 at 22050 Hz, **sample 0 heard at EEG
  sample 0** (zero-padded where the EEG starts before the sound);
- ``stimulus_path(song_id)`` and ``describe()`` (description lines and problems, for ``info``).

NMED-T songs hold every participant; the other readers (:class:`replay.plays.PlayDataset`) make
one song per stimulus event and participant (a track played twice is two songs), numbered 1, 2, ...
in recording order. They also offer ``music_of(song_id)``: which music a song hears (its audio
file's content digest) and from which second of it, so that the splits hold out seconds of music for
every play of it (``WindowDataset.music``); a reader without it has one song per piece of music.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
from eegmusic.replay.nmedt import SongRecording
from eegmusic.stream.errors import DataFormatError, missing, require_readable

logger = logging.getLogger(__name__)

MNE_EXTENSIONS = (".fif", ".edf", ".bdf", ".vhdr", ".set", ".gz")
XDF_EXTENSIONS = (".xdf", ".xdfz")


class EEGMusicDataset(Protocol):
    """What every dataset reader offers (see the module docstring)."""

    path: Path
    kind: str

    @property
    def song_ids(self) -> list[int]: ...

    def load_song(self, song_id: int) -> SongRecording: ...

    def stimulus_path(self, song_id: int) -> Path | None: ...

    def load_stimulus(self, song_id: int) -> np.ndarray: ...

    def stimulus_start_s(self, song_id: int) -> float:
        """The second of :meth:`stimulus_path`'s audio heard at the song's first EEG sample."""

    def describe(self) -> tuple[list[str], list[str]]: ...


def open_dataset(path) -> EEGMusicDataset:
    """Open any dataset eegmusic reads (see the module docstring for which reader a path gets).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dataset : EEGMusicDataset

    Raises
    ------
    DataFormatError
        Missing path, or a path no reader recognises (the message lists what is accepted).
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(
            f"{path}: {missing(path)}; pass an NMED-T folder, an XDF session, a BIDS root or an "
            "EEG file MNE reads (.fif, .edf, .bdf, .vhdr, .set)"
        )
    require_readable(path)
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.is_file() and path.suffix.lower() in XDF_EXTENSIONS:
        from eegmusic.replay.xdf_session import XDFSession

        return XDFSession(path)
    if path.is_file() and (path.suffix.lower() in MNE_EXTENSIONS or suffixes.endswith(".fif.gz")):
        from eegmusic.replay.mne_dataset import MNEDataset

        return MNEDataset(path)
    if path.is_dir() and (path / "dataset_description.json").is_file():
        from eegmusic.replay.mne_dataset import MNEDataset

        return MNEDataset(path)
    if path.is_dir():
        from eegmusic.replay.nmedt import NMEDTFolder

        names = [p.name for p in path.iterdir()]
        has_songs = any(n.startswith("song") and n.endswith(".mat") for n in names)
        if not has_songs and any(n.lower().endswith((".xdf", ".xdfz")) for n in names):
            from eegmusic.replay.xdf_session import XDFSessionFolder

            return XDFSessionFolder(path)
        return NMEDTFolder(path)
    raise DataFormatError(
        f"{path}: unknown kind of dataset (suffix {path.suffix or 'none'}); pass an NMED-T "
        "folder, an .xdf session, a BIDS root or a .fif/.edf/.bdf/.vhdr/.set file"
    )


def describe_dataset(path) -> tuple[list[str], list[str]]:
    """Description lines and problems of any dataset (``eegmusic info``)."""
    return open_dataset(path).describe()
