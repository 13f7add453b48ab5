"""Reader of the NMED-T layout: ``songNN_Imputed.mat`` files and their stimuli.

A folder holds one MATLAB file per song (NN = 21…30, the songs' trigger codes) with ``dataNN``
(channels × time × participants, µV, float64), ``fs`` (125) and ``subsNN`` (participant ids), and
optionally ``stimuli/songNN.<wav|flac|ogg|mp3>`` at any sample rate. Files may be MATLAB v5 (read
with scipy) or v7.3 (HDF5, read with h5py; MATLAB stores those arrays with the axes reversed).

``songNN_raw.mat`` (129 channels at 1 kHz) is the simulator's own raw layout, written by ``eegmusic
simulate --raw`` and read with ``load_song(song_id, raw=True)``; the command line reads only
``songNN_Imputed.mat``. NMED-T's own raw recordings (``PP_R_raw.mat`` per participant and session,
holding ``X``, ``DIN_1`` and ``fs``) are not read, and the release's other files
(``behavioralRatings.mat``, ``participantInfo.mat``, ``TapIt.zip`` …) may stay in the folder: ``info``
lists them as not used. A raw-looking array inside an ``_Imputed`` file is reported as such.

Songs are loaded one at a time: a real file is hundreds of MB once decoded. The song table and
:class:`SongRecording` are in :mod:`replay.nmedt_songs`, the reading of one MATLAB file in
:mod:`replay.nmedt_files`; this module is the folder.

Examples
--------
>>> folder = NMEDTFolder("/data/nmedt")                    # doctest: +SKIP
>>> rec = folder.load_song(21)                             # doctest: +SKIP
>>> rec.data.shape, rec.sfreq, rec.subjects[:2]            # doctest: +SKIP
((125, 33750, 20), 125.0, ['1', '2'])
>>> audio = folder.load_stimulus(21)                       # float32 at 22050 Hz   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from eegmusic.replay.manifest import simulated_music, unfinished_simulation
from eegmusic.replay.nmedt_files import peek_song_file, read_song_file
from eegmusic.replay.nmedt_songs import (
    AUDIO_SFREQ,
    RAW_CHANNELS,
    RAW_SFREQ,
    SONGS,
    SongInfo,
    SongRecording,
    song_by_title,
    song_info,
)
from eegmusic.stream.errors import DataFormatError
from eegmusic.stream.spec import MAX_ABS_UV
from eegmusic.stream.stimulus import (
    STIMULUS_EXTENSIONS,
    StimulusFolder,
    decoder_notes_aside,
    sample_problem,
)
from eegmusic.stream.stimulus import read_audio as _read_audio

logger = logging.getLogger(__name__)

__all__ = ["AUDIO_SFREQ", "RAW_CHANNELS", "RAW_SFREQ", "SONGS", "NMEDTFolder", "SongInfo", "SongRecording",
           "check_eeg_range", "describe_folder", "peek_song_file", "read_audio", "read_song_file",
           "song_info"]
"""The reader's public names; the song table and the file reader live in :mod:`replay.nmedt_songs`
and :mod:`replay.nmedt_files`."""

_IMPUTED_RE = re.compile(r"^song(\d+)_Imputed\.mat$")
_RAW_RE = re.compile(r"^song(\d+)_raw\.mat$")
_RELEASE_RAW_RE = re.compile(r"^\d+_\d+_raw\.mat$")
"""NMED-T's raw recordings, one per participant and session (``02_1_raw.mat``): not read."""
_RELEASE_FILES = frozenset(name.casefold() for name in (
    "behavioralRatings.mat", "participantInfo.mat", "TapIt.mat", "TapIt.zip", "NMED-T_README.pdf",
    "Code.zip"))
"""The release's files other than EEG (ratings, participants, tapping, docs): they may stay in the folder."""


class NMEDTFolder:
    """A folder in the NMED-T layout (real or simulated).

    Parameters
    ----------
    path : str or Path
        Folder holding ``songNN_Imputed.mat`` (and/or the simulator's ``songNN_raw.mat``) files and
        optionally ``stimuli/``.

    Raises
    ------
    DataFormatError
        If the folder is missing, not a folder, or holds no song file.
    """

    def __init__(self, path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataFormatError(
                f"{self.path}: folder not found; pass a folder with songNN_Imputed.mat files "
                "(make one with: eegmusic simulate --out DIR)"
            )
        if not self.path.is_dir():
            raise DataFormatError(f"{self.path}: not a folder; pass the folder that holds songNN_Imputed.mat")
        self._imputed: dict[int, Path] = {}
        self._raw: dict[int, Path] = {}
        for child in sorted(self.path.iterdir()):
            for pattern, table in ((_IMPUTED_RE, self._imputed), (_RAW_RE, self._raw)):
                match = pattern.match(child.name)
                if match and child.is_file():
                    song_id = int(match.group(1))
                    if song_id in table:   # song021 and song21: which one is meant cannot be guessed
                        raise DataFormatError(
                            f"{self.path}: {table[song_id].name} and {child.name} both hold song {song_id}; "
                            "remove or rename one of them"
                        )
                    table[song_id] = child
        if not self._imputed and not self._raw:
            release_raw = sorted(child.name for child in self.path.iterdir()
                                 if _RELEASE_RAW_RE.match(child.name))
            if release_raw:
                raise DataFormatError(
                    f"{self.path}: holds NMED-T raw recordings ({_compact_ids(release_raw)}: X and DIN_1 per "
                    "participant), which are not read; put the release's songNN_Imputed.mat files (the "
                    "cleaned EEG) in the folder"
                )
            raise DataFormatError(
                f"{self.path}: no songNN_Imputed.mat files (empty or not an NMED-T folder); "
                "point to the NMED-T folder or make one with: eegmusic simulate --out DIR"
            )
        self._music = simulated_music(self.path)

    kind = "NMED-T folder"

    def __repr__(self) -> str:
        return f"NMEDTFolder({str(self.path)!r}, songs={self.song_ids})"

    def describe(self) -> tuple[list[str], list[str]]:
        """Description lines and problems (:func:`describe_folder`), the dataset interface's ``describe``."""
        return describe_folder(self.path)

    def song_info(self, song_id: int) -> SongInfo:
        """A song's title and tempo: NMED-T's, or its audio file's name where ``simulate --music`` made it."""
        return self._music.get(int(song_id)) or song_info(song_id)

    @property
    def song_ids(self) -> list[int]:
        """Song ids with a preprocessed file, or with a raw one where there is no preprocessed one."""
        return sorted(self._imputed) if self._imputed else sorted(self._raw)

    def song_path(self, song_id: int, *, raw: bool = False) -> Path:
        """Return the file of a song (``songNN_Imputed.mat``, or ``songNN_raw.mat`` when ``raw``)."""
        song_id = int(song_id)
        table = self._raw if raw else self._imputed
        if song_id in table:
            return table[song_id]
        if not raw and song_id in self._raw:
            raise DataFormatError(
                f"song {song_id} in {self.path} has only raw data ({self._raw[song_id].name}, the layout "
                f"eegmusic simulate --raw writes), which the command line does not read: add "
                f"song{song_id}_Imputed.mat (125 channels at 125 Hz)"
            )
        kind = "raw" if raw else "preprocessed"
        have = ", ".join(str(s) for s in sorted(table)) or "none"
        raise DataFormatError(f"song {song_id} not in {self.path} ({kind} songs: {have}); pass one of those")

    def load_song(self, song_id: int, *, raw: bool = False) -> SongRecording:
        """Read and check one song's EEG, all participants.

        Parameters
        ----------
        song_id : int
            Trigger code (21…30) of a song in this folder.
        raw : bool
            Read the simulator's ``songNN_raw.mat`` (129 channels, any rate) instead of
            ``songNN_Imputed.mat`` (125 channels at 125 Hz).

        Returns
        -------
        recording : SongRecording

        Raises
        ------
        DataFormatError
            Song not in the folder, unreadable or truncated file, missing ``dataNN``/``fs``, wrong
            axis order or channel count, NaN/Inf samples or values beyond :data:`stream.spec.MAX_ABS_UV`,
            or fs not 125 Hz (preprocessed files).
        """
        song_id = int(song_id)
        path = self.song_path(song_id, raw=raw)
        recording = read_song_file(path, song_id, raw=raw, info=self.song_info(song_id))
        check_eeg_range(recording.data, f"{path}: data{song_id}")
        return recording

    def stimulus_path(self, song_id: int) -> Path | None:
        """Return ``stimuli/songNN.<wav|flac|ogg|mp3>`` (first found), or None."""
        return StimulusFolder(self.path, sfreq=AUDIO_SFREQ).stimulus_path(song_id)

    def stimulus_candidate(self, song_id: int) -> Path | None:
        """An audio file in ``stimuli/`` named by the song's title (:func:`song_by_title`), or None.

        It is not read: a stimulus has one name, ``songNN.<ext>``; this only lets a refusal name the rename.
        """
        folder = self.path / "stimuli"
        if not folder.is_dir():
            return None
        for child in sorted(folder.iterdir()):
            if child.suffix.lower() in STIMULUS_EXTENSIONS and song_by_title(child.stem) == int(song_id):
                return child
        return None

    def stimulus_start_s(self, song_id: int) -> float:
        """0: an NMED-T stimulus starts at its recording's first sample."""
        return 0.0

    def load_stimulus(self, song_id: int) -> np.ndarray:
        """Read a song's stimulus as mono float32 at 22050 Hz.

        Parameters
        ----------
        song_id : int

        Returns
        -------
        audio : ndarray, shape (n_samples,), float32, at :data:`AUDIO_SFREQ`

        Raises
        ------
        DataFormatError
            If the stimulus file is missing, unreadable, or empty.
        """
        if self.stimulus_path(song_id) is None and (candidate := self.stimulus_candidate(song_id)):
            raise DataFormatError(_rename_message(candidate, song_id))
        return StimulusFolder(self.path, sfreq=AUDIO_SFREQ).load_stimulus(song_id)


def _rename_message(candidate: Path, song_id: int) -> str:
    """One line: a title-named audio file, and the name it is read under."""
    return (f"{candidate}: named by song {int(song_id)}'s title, so not read; rename it "
            f"song{int(song_id)}{candidate.suffix.lower()}")


def check_eeg_range(eeg: np.ndarray, where: str) -> None:
    """Refuse EEG holding values beyond :data:`stream.spec.MAX_ABS_UV`, as NaN/Inf are refused.

    Such a value is finite but no measurement (a unit error or a damaged sample): E4 at 1e30 µV for
    2 s passed ``info``, and ``train`` then standardised by a spread of 1.5e29.

    Parameters
    ----------
    eeg : ndarray, µV (any shape)
        Finite samples.
    where : str
        What holds them, starting the message (``"<file>: data21"``).

    Raises
    ------
    DataFormatError
    """
    if eeg.size == 0 or (eeg.max() <= MAX_ABS_UV and eeg.min() >= -MAX_ABS_UV):   # no copy of a large array
        return
    beyond = np.abs(eeg) > MAX_ABS_UV
    count, largest = int(np.count_nonzero(beyond)), float(np.abs(eeg[beyond]).max())
    raise DataFormatError(
        f"{where} holds {count} values beyond ±{MAX_ABS_UV:g} µV (up to {largest:.3g}), no EEG measurement; "
        "fix the file's scaling, or set them to NaN and impute them before use")


def read_audio(path, *, sfreq: int = AUDIO_SFREQ) -> np.ndarray:
    """Read an audio file as mono float32 at ``sfreq`` (:func:`stream.stimulus.read_audio`)."""
    return _read_audio(path, sfreq=sfreq)


# ---------------------------------------------------------------------------------------------
# Folder description (eegmusic info)


def _compact_ids(ids: list[str]) -> str:
    return ", ".join(ids) if len(ids) <= 6 else f"{', '.join(ids[:3])}, …, {ids[-1]}"


def describe_folder(path) -> tuple[list[str], list[str]]:
    """Describe an NMED-T folder and collect every problem found (it does not stop at the first).

    Songs are read one at a time.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    lines : list of str
        Human-readable description: songs, durations, participants, channels, stimuli.
    problems : list of str
        One line per problem (empty when the folder is fine).

    Raises
    ------
    DataFormatError
        If the folder is missing or holds no song file at all.
    """
    import soundfile

    folder = NMEDTFolder(path)
    lines = [f"folder: {folder.path}"]
    problems: list[str] = []
    renames: set[Path] = set()   # title-named stimuli already named in a problem
    unfinished = unfinished_simulation(folder.path)
    if unfinished:
        problems.append(unfinished)
    release_files, release_raw = [], []
    for child in sorted(folder.path.iterdir()):
        if child.name.casefold() in _RELEASE_FILES:
            release_files.append(child.name)
        elif _RELEASE_RAW_RE.match(child.name):
            release_raw.append(child.name)
        elif child.suffix == ".mat" and not (_IMPUTED_RE.match(child.name) or _RAW_RE.match(child.name)):
            problems.append(f"{child}: not an NMED-T file name; expected songNN_Imputed.mat (NN = 21..30)")
    participants: dict[int, list[str]] = {}
    for song_id in sorted(set(folder._imputed) | set(folder._raw)):
        info = folder.song_info(song_id)
        head = f"song {song_id} '{info.title}'" + (f" {info.bpm:g} BPM" if np.isfinite(info.bpm) else "")
        if song_id not in SONGS:
            problems.append(f"{folder.path}: song {song_id} is not an NMED-T song (ids 21..30)")
        eeg_seconds = None
        if song_id in folder._imputed:
            try:
                rec = folder.load_song(song_id)
            except DataFormatError as error:
                problems.append(str(error))
                lines.append(f"{head}: {folder._imputed[song_id].name} unreadable (see problems)")
            else:
                eeg_seconds = rec.duration_s
                participants[song_id] = rec.subjects
                flat = rec.flat_problem(song_id)
                if flat:
                    problems.append(f"{folder._imputed[song_id]}: {flat}")
                who = f"{rec.n_subjects} participant{'s' * (rec.n_subjects != 1)}"
                lines.append(
                    f"{head}: {rec.duration_s:.1f} s, {who} "
                    f"({_compact_ids(rec.subjects)}), {len(rec.channels)} channels "
                    f"({rec.channels[0]}…{rec.channels[-2]}, {rec.channels[-1]}) at {rec.sfreq:g} Hz"
                )
                del rec
        if song_id in folder._raw:
            raw_path = folder._raw[song_id]
            try:
                shape, fs = peek_song_file(raw_path, song_id)
            except DataFormatError as error:
                problems.append(str(error))
            else:
                rate = f"{fs:g} Hz" if fs else "no fs"
                seconds = f", {shape[1] / fs:.1f} s" if fs and len(shape) > 1 else ""
                lines.append(f"{head}: raw {raw_path.name}: shape {shape} at {rate}{seconds}")
                if fs is None:
                    problems.append(f"{raw_path}: no variable 'fs' (sampling rate); add it")
                if not shape or shape[0] != len(RAW_CHANNELS):
                    problems.append(f"{raw_path}: raw data{song_id} has shape {shape}; expected 129 channels "
                                    "(E1…E128, Cz) × time × participants")
        stimulus = folder.stimulus_path(song_id)
        if stimulus is None:
            candidate = folder.stimulus_candidate(song_id)
            if candidate:
                renames.add(candidate)
                problems.append(_rename_message(candidate, song_id))
            else:
                problems.append(f"{folder.path / 'stimuli'}: no stimulus for song {song_id}; add "
                                f"song{song_id}.wav (or .flac/.ogg/.mp3) to train or compare with audio")
            lines.append("  stimulus: missing")
            continue
        try:
            with decoder_notes_aside(stimulus):
                sound = soundfile.info(str(stimulus))
            stim_seconds = sound.frames / sound.samplerate
            lines.append(f"  stimulus: {stimulus.relative_to(folder.path)} ({stim_seconds:.1f} s at "
                         f"{sound.samplerate} Hz, {sound.channels} ch)")
            bad = sample_problem(stimulus)
            if bad:
                problems.append(bad)
        except Exception as error:  # soundfile cannot always read mp3: decode it fully instead
            try:
                audio = read_audio(stimulus)
            except DataFormatError as audio_error:
                problems.append(str(audio_error))
                lines.append(f"  stimulus: {stimulus.relative_to(folder.path)} unreadable "
                             f"({type(error).__name__})")
                continue
            stim_seconds = audio.size / AUDIO_SFREQ
            lines.append(f"  stimulus: {stimulus.relative_to(folder.path)} ({stim_seconds:.1f} s)")
        if eeg_seconds is not None and abs(stim_seconds - eeg_seconds) > 1.0:
            problems.append(_length_mismatch(stimulus, song_id, stim_seconds, eeg_seconds))
    distinct = {tuple(ids) for ids in participants.values()}
    if len(distinct) > 1:
        lines.append("participants differ between songs")
    stimuli_dir = folder.path / "stimuli"
    if stimuli_dir.is_dir():
        known = set(folder._imputed) | set(folder._raw)
        for child in sorted(stimuli_dir.iterdir()):
            match = re.match(r"^song(\d+)\.[A-Za-z0-9]+$", child.name)
            if match and int(match.group(1)) not in known:
                problems.append(f"{child}: stimulus for song {match.group(1)}, which has no EEG file here")
            elif not match and child.suffix.lower() in STIMULUS_EXTENSIONS and child not in renames:
                lines.append(f"{child.relative_to(folder.path)}: no song matched by name; not used (a "
                             "stimulus is named songNN.<ext>, NN = the song's id)")
    if release_files:
        lines.append(f"release files not used: {', '.join(release_files)}")
    if release_raw:
        lines.append(f"release raw recordings not read (per participant; the songNN_Imputed.mat files are "
                     f"used): {_compact_ids(release_raw)}")
    return lines, problems


def _length_mismatch(stimulus: Path, song_id: int, stim_seconds: float, eeg_seconds: float) -> str:
    """One line on a stimulus whose length is not its EEG's, and what to do about it."""
    what = f"{stimulus}: lasts {stim_seconds:.1f} s but the EEG of song {song_id} lasts {eeg_seconds:.1f} s"
    if stim_seconds > eeg_seconds:
        return (f"{what}; the audio must start where the EEG starts (the song's first sample): a longer file "
                f"is cut to its first {eeg_seconds:.1f} s, so trim the intro if your version's differs")
    return (f"{what}; check that it is the right audio: it must start where the EEG starts (the song's first "
            "sample) and last as long")
