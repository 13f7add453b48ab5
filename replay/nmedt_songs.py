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


MANIFEST = "simulation.json"
"""File that marks a folder as written by ``eegmusic simulate`` (parameters, and whether it finished)."""

GENERATOR = "eegmusic simulate"
"""The manifest's ``generator``: only a folder that says so is ever cleared, or read as simulated."""


def simulation_manifest(folder) -> dict | None:
    """The ``simulation.json`` that ``eegmusic simulate`` wrote in ``folder``; None if absent or not ours."""
    import json

    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("generator") == GENERATOR else None


def unfinished_simulation(folder) -> str | None:
    """The problem line ``eegmusic info`` reports for a simulation killed midway, or None.

    ``simulate`` marks its manifest complete after the last file; SIGKILL leaves it unmarked, and
    nothing could remove what was written. Either layout (NMED-T files or XDF sessions) can be left so.
    """
    manifest = simulation_manifest(folder)
    if manifest is None or manifest.get("complete", True) is not False:
        return None
    return (f"{Path(folder) / MANIFEST}: the simulation that wrote this folder did not finish; run eegmusic "
            f"simulate --out {folder} --overwrite again")


def simulated_music(folder) -> dict[int, SongInfo]:
    """The songs of a dataset that ``eegmusic simulate --music`` made from the user's audio files.

    Such a dataset fills NMED-T's slots (21, 22, …) with other music: its songs are named after the
    files they were simulated from (``song 21 'Lava Lake'``, not NMED-T's 'First Fires'), tempo unknown.
    A folder whose ``simulation.json`` is missing, unreadable, from another generator or without
    ``--music`` files gives ``{}`` (NMED-T's own table applies), as does a manifest whose song and file
    lists disagree: the file is the user's to edit, and a title is not worth refusing a dataset for.

    Parameters
    ----------
    folder : str or Path
        A dataset folder.

    Returns
    -------
    songs : dict of int to SongInfo
    """
    manifest = simulation_manifest(folder)
    if manifest is None:
        return {}
    songs, files = manifest.get("songs"), manifest.get("audio_files")
    if not (isinstance(songs, list) and isinstance(files, list) and len(songs) == len(files)
            and all(type(s) is int for s in songs) and all(isinstance(f, str) and f for f in files)):
        return {}
    return {song: SongInfo(song, Path(file).stem, float("nan"))
            for song, file in zip(songs, files, strict=True)}


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


def excerpt_mismatch(data, later) -> str | None:
    """Why ``later`` is not a later excerpt of the songs and listeners of ``data``, or None.

    ``train --val-data`` validates on such an excerpt. Where both were written by ``eegmusic simulate``
    (their manifests say so; a recording, or the folder of an XDF session, is judged only then), the
    songs they share must be the same music, the listeners come from the same seed and cap, and the
    excerpts differ. A folder simulated from other music was taken silently and chose the epochs and the
    target lag on music unrelated to the training songs. Music is compared by file name; a generated
    song is its own stimulus file, ``songNN.wav``, so ``--music DATA/stimuli/song21.wav`` is song 21
    of a generated ``DATA``.

    Parameters
    ----------
    data, later : str or Path
        The training data and the validation excerpt (folders, or session files inside one).

    Returns
    -------
    str or None
        What differs, worded to follow "--val-data LATER ".
    """
    manifests = [simulation_manifest(path if Path(path).is_dir() else Path(path).parent)
                 for path in (data, later)]
    if None in manifests:
        return None
    music = [_music_by_song(manifest) for manifest in manifests]
    for song in sorted(set(music[0]) & set(music[1])):
        if music[0][song] != music[1][song]:
            return (f"was simulated from other music than --data (song {song}: {music[1][song]} against "
                    f"{music[0][song]})")
    for key, what in (("seed", "seed"), ("montage", "cap")):
        if manifests[0].get(key) != manifests[1].get(key):
            return (f"holds other listeners than --data (simulated with {what} {manifests[1].get(key)}, "
                    f"--data with {manifests[0].get(key)})")
    start = [manifest.get("music_start_s", "unknown") for manifest in manifests]
    start = [0.0 if value is None else value for value in start]  # generated songs start at 0
    if all(type(value) in (int, float) for value in start) and start[0] == start[1]:
        return f"is the same excerpt as --data (music from {start[0]:g} s in both)"
    return None


def _music_by_song(manifest: dict) -> dict[int, str]:
    """Song id → the name of the music it was simulated from (``songNN.wav`` for a generated song)."""
    songs, files = manifest.get("songs"), manifest.get("audio_files")
    if not isinstance(songs, list) or not all(type(song) is int for song in songs):
        return {}
    if not isinstance(files, list):
        return {song: f"song{song}.wav" for song in songs}
    return {song: Path(str(file)).name for song, file in zip(songs, files, strict=False)}
