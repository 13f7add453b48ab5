"""Reader of the NMED-T layout: ``songNN_Imputed.mat`` files and their stimuli.

A folder holds one MATLAB file per song (NN = 21…30, the songs' trigger codes) with ``dataNN``
(channels × time × participants, µV, float64), ``fs`` (125) and ``subsNN`` (participant ids), and
optionally ``stimuli/songNN.<wav|flac|ogg|mp3>`` at any sample rate. Files may be MATLAB v5 (read
with scipy) or v7.3 (HDF5, read with h5py; MATLAB stores those arrays with the axes reversed).

Raw recordings (129 channels at 1 kHz, ``songNN_raw.mat``, as written by ``eegmusic simulate --raw``)
are read with ``load_song(song_id, raw=True)``; a raw-looking array inside an ``_Imputed`` file is
reported as such.

Songs are loaded one at a time: a real file is hundreds of MB once decoded.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eegmusic.stream.errors import DataFormatError
from eegmusic.stream.spec import MODEL_CHANNELS, MODEL_SFREQ
from eegmusic.stream.stimulus import StimulusFolder
from eegmusic.stream.stimulus import read_audio as _read_audio

logger = logging.getLogger(__name__)

AUDIO_SFREQ = 22050
"""Rate in Hz of every stimulus returned by :meth:`NMEDTFolder.load_stimulus`."""

RAW_SFREQ = 1000.0
"""Rate in Hz of raw NMED-T recordings (and of ``simulate --raw``)."""

RAW_CHANNELS: tuple[str, ...] = tuple(f"E{i}" for i in range(1, 129)) + ("Cz",)
"""Channels of a raw recording: E1…E128 of the net, then Cz (E129, the recording reference)."""

_IMPUTED_RE = re.compile(r"^song(\d+)_Imputed\.mat$")
_RAW_RE = re.compile(r"^song(\d+)_raw\.mat$")


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


class NMEDTFolder:
    """A folder in the NMED-T layout (real or simulated).

    Parameters
    ----------
    path : str or Path
        Folder holding ``songNN_Imputed.mat`` (and/or ``songNN_raw.mat``) files and optionally
        ``stimuli/``.

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
                    table[int(match.group(1))] = child
        if not self._imputed and not self._raw:
            raise DataFormatError(
                f"{self.path}: no songNN_Imputed.mat files (empty or not an NMED-T folder); "
                "point to the NMED-T folder or make one with: eegmusic simulate --out DIR"
            )

    kind = "NMED-T folder"

    def __repr__(self) -> str:
        return f"NMEDTFolder({str(self.path)!r}, songs={self.song_ids})"

    def describe(self) -> tuple[list[str], list[str]]:
        """Description lines and problems (:func:`describe_folder`), the dataset interface's ``describe``."""
        return describe_folder(self.path)

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
        kind = "raw" if raw else "preprocessed"
        have = ", ".join(str(s) for s in sorted(table)) or "none"
        hint = ""
        if not raw and song_id in self._raw:
            hint = f"; it has only raw data ({self._raw[song_id].name}): load it with raw=True"
        raise DataFormatError(
            f"song {song_id} not in {self.path} ({kind} songs: {have}); pass one of those{hint}"
        )

    def load_song(self, song_id: int, *, raw: bool = False) -> SongRecording:
        """Read and check one song's EEG, all participants.

        Parameters
        ----------
        song_id : int
            Trigger code (21…30) of a song in this folder.
        raw : bool
            Read ``songNN_raw.mat`` (129 channels, any rate) instead of ``songNN_Imputed.mat``
            (125 channels at 125 Hz).

        Returns
        -------
        recording : SongRecording

        Raises
        ------
        DataFormatError
            Song not in the folder, unreadable or truncated file, missing ``dataNN``/``fs``, wrong
            axis order or channel count, NaN/Inf samples, or fs not 125 Hz (preprocessed files).
        """
        song_id = int(song_id)
        path = self.song_path(song_id, raw=raw)
        return read_song_file(path, song_id, raw=raw)

    def stimulus_path(self, song_id: int) -> Path | None:
        """Return ``stimuli/songNN.<wav|flac|ogg|mp3>`` (first found), or None."""
        return StimulusFolder(self.path, sfreq=AUDIO_SFREQ).stimulus_path(song_id)

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
        return StimulusFolder(self.path, sfreq=AUDIO_SFREQ).load_stimulus(song_id)


def read_audio(path, *, sfreq: int = AUDIO_SFREQ) -> np.ndarray:
    """Read an audio file as mono float32 at ``sfreq`` (:func:`stream.stimulus.read_audio`)."""
    return _read_audio(path, sfreq=sfreq)


# ---------------------------------------------------------------------------------------------
# MATLAB file reading


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(520)
    # v7.3 files are HDF5 with a 512-byte user block; plain HDF5 starts with the signature.
    return head[:8] == b"\x89HDF\r\n\x1a\n" or head[512:520] == b"\x89HDF\r\n\x1a\n"


def _read_mat_v5(path: Path, names: list[str]) -> dict:
    import scipy.io

    try:
        content = scipy.io.loadmat(str(path), variable_names=names)
    except Exception as error:
        raise DataFormatError(
            f"{path}: truncated or unreadable MATLAB file ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:120] if str(error) else 'no detail'}); re-download or re-create it"
        ) from error
    return {name: content[name] for name in names if name in content}


def _h5_value(handle, item):
    """Turn an h5py dataset written by MATLAB v7.3 into numpy (axes back in MATLAB order)."""
    import h5py

    matlab_class = item.attrs.get("MATLAB_class", b"")
    if isinstance(matlab_class, bytes):
        matlab_class = matlab_class.decode()
    value = item[()]
    if matlab_class == "cell" or (isinstance(value, np.ndarray) and value.dtype == h5py.ref_dtype):
        return np.array([_h5_value(handle, handle[ref]) for ref in np.ravel(value)], dtype=object)
    if matlab_class == "char":
        codes = np.asarray(value, dtype=np.uint32)
        return "".join(chr(c) for c in codes.T.ravel() if c)
    return np.asarray(value)


def _read_mat_v73(path: Path, names: list[str]) -> dict:
    import h5py

    out: dict = {}
    try:
        with h5py.File(path, "r") as handle:
            for name in names:
                if name in handle:
                    out[name] = _h5_value(handle, handle[name])
    except DataFormatError:
        raise
    except Exception as error:
        raise DataFormatError(
            f"{path}: truncated or unreadable MATLAB v7.3 (HDF5) file ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:120] if str(error) else 'no detail'}); re-download or re-create it"
        ) from error
    out["__hdf5__"] = True
    return out


def _subject_ids(value, n_subjects: int) -> list[str]:
    """Participant ids as strings from a numeric vector, char array or cell array."""
    if value is None:
        return [str(i) for i in range(1, n_subjects + 1)]
    if isinstance(value, str):
        return [value]
    flat = np.ravel(np.asarray(value, dtype=object))
    ids: list[str] = []
    for item in flat:
        while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
            item = item.ravel()[0]
        if isinstance(item, np.ndarray):
            item = item.ravel()[0] if item.size == 1 else "".join(str(v) for v in item.ravel())
        if isinstance(item, (float, np.floating)) and float(item).is_integer():
            item = int(item)
        ids.append(str(item).strip())
    return ids


def _orient(data: np.ndarray, n_chans: int, path: Path, var: str, hdf5: bool) -> np.ndarray:
    """Return ``data`` as (channels, time, participants), checked by its channel axis."""
    if hdf5 and data.ndim >= 2 and data.shape[-1] == n_chans and data.shape[0] != n_chans:
        data = data.T  # MATLAB v7.3 stores (participants, time, channels) as seen from HDF5
    if data.ndim == 2:
        data = data[:, :, None]  # MATLAB drops a trailing singleton participant axis
    if data.ndim != 3:
        raise DataFormatError(
            f"{path}: {var} has {data.ndim} dimensions {tuple(data.shape)}; expected channels × time × "
            f"participants ({n_chans}, n_times, n_subjects)"
        )
    if data.shape[0] != n_chans:
        if n_chans in data.shape[1:]:
            raise DataFormatError(
                f"{path}: {var} has shape {tuple(data.shape)}, wrong axis order; expected channels × time "
                f"× participants ({n_chans}, n_times, n_subjects): transpose it"
            )
        raise DataFormatError(
            f"{path}: {var} has {data.shape[0]} channels (shape {tuple(data.shape)}); expected {n_chans} "
            + ("(E1…E124, Cz)" if n_chans == len(MODEL_CHANNELS) else "(E1…E128, Cz)")
        )
    if data.shape[1] < data.shape[2]:
        raise DataFormatError(
            f"{path}: {var} has shape {tuple(data.shape)}: fewer time samples than participants, "
            f"wrong axis order; expected ({n_chans}, n_times, n_subjects)"
        )
    return data


def read_song_file(path, song_id: int, *, raw: bool = False) -> SongRecording:
    """Read and check one ``songNN_Imputed.mat`` (or ``songNN_raw.mat`` when ``raw``) file.

    Parameters
    ----------
    path : str or Path
    song_id : int
        NN: the file must hold ``dataNN``, ``fs`` and (optionally) ``subsNN``.
    raw : bool
        Expect 129 channels at any rate instead of 125 channels at 125 Hz.

    Returns
    -------
    recording : SongRecording

    Raises
    ------
    DataFormatError
        One line naming the file and the problem.
    """
    path = Path(path)
    song_id = int(song_id)
    data_var, subs_var = f"data{song_id}", f"subs{song_id}"
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; check the folder")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: empty file (0 bytes, truncated); re-download or re-create it")
    names = [data_var, "fs", subs_var]
    content = _read_mat_v73(path, names) if _is_hdf5(path) else _read_mat_v5(path, names)
    hdf5 = bool(content.get("__hdf5__", False))
    if data_var not in content:
        raise DataFormatError(
            f"{path}: no variable '{data_var}'; an NMED-T song file holds {data_var}, fs and {subs_var}"
        )
    if "fs" not in content:
        raise DataFormatError(f"{path}: no variable 'fs' (sampling rate); add fs = 125 to the file")
    try:
        sfreq = float(np.ravel(np.asarray(content["fs"], dtype=float))[0])
    except (TypeError, ValueError, IndexError) as error:
        raise DataFormatError(f"{path}: fs is not a number ({content['fs']!r}); set fs = 125") from error
    data = np.asarray(content[data_var])
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise DataFormatError(f"{path}: {data_var} is not real numbers (dtype {data.dtype}); expected "
                              "float64 µV")
    n_chans = len(RAW_CHANNELS) if raw else len(MODEL_CHANNELS)
    if not raw and len(RAW_CHANNELS) in data.shape and sfreq != MODEL_SFREQ:
        raise DataFormatError(
            f"{path}: {data_var} looks like raw data ({tuple(data.shape)} at fs {sfreq:g} Hz); a "
            f"songNN_Imputed.mat needs 125 channels at 125 Hz: name raw files songNN_raw.mat"
        )
    data = _orient(data, n_chans, path, data_var, hdf5)
    if not raw and sfreq != MODEL_SFREQ:
        raise DataFormatError(
            f"{path}: fs is {sfreq:g} Hz; preprocessed NMED-T must be 125 Hz: resample it to 125 Hz"
        )
    if not sfreq > 0:
        raise DataFormatError(f"{path}: fs is {sfreq:g} Hz; it must be positive")
    data = data.astype(np.float64, copy=False)  # MATLAB order: each participant is one block
    finite = np.isfinite(data)
    if not finite.all():
        n_bad = int(data.size - np.count_nonzero(finite))
        raise DataFormatError(
            f"{path}: {data_var} holds {n_bad} NaN/Inf values; impute them (NMED-T uses the mean of "
            "neighbouring electrodes) before use"
        )
    del finite
    subjects = _subject_ids(content.get(subs_var), data.shape[2])
    if len(subjects) != data.shape[2]:
        raise DataFormatError(
            f"{path}: {subs_var} lists {len(subjects)} participants but {data_var} has {data.shape[2]}; "
            "make them agree"
        )
    return SongRecording(
        song_id=song_id, info=song_info(song_id), data=data, sfreq=sfreq, subjects=subjects,
        channels=RAW_CHANNELS if raw else MODEL_CHANNELS, path=path,
    )


# ---------------------------------------------------------------------------------------------
# Folder description (eegmusic info)


def peek_song_file(path, song_id: int) -> tuple[tuple[int, ...], float | None]:
    """Shape of ``dataNN`` (MATLAB axis order) and ``fs`` of a song file, without reading the data.

    Parameters
    ----------
    path : str or Path
    song_id : int

    Returns
    -------
    shape : tuple of int
        ``dataNN``'s shape as MATLAB sees it (channels first for a well-formed file).
    fs : float or None
        None when the file has no ``fs``.

    Raises
    ------
    DataFormatError
        Unreadable file or no ``dataNN``.
    """
    path = Path(path)
    var = f"data{int(song_id)}"
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as handle:
                if var not in handle:
                    raise DataFormatError(f"{path}: no variable '{var}'")
                shape = tuple(int(v) for v in reversed(handle[var].shape))
                fs = float(np.ravel(handle["fs"][()])[0]) if "fs" in handle else None
            return shape, fs
        import scipy.io

        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(str(path))}
        if var not in shapes:
            raise DataFormatError(f"{path}: no variable '{var}'")
        fs = None
        if "fs" in shapes:
            fs = float(np.ravel(scipy.io.loadmat(str(path), variable_names=["fs"])["fs"])[0])
        return tuple(int(v) for v in shapes[var]), fs
    except DataFormatError:
        raise
    except Exception as error:
        raise DataFormatError(
            f"{path}: truncated or unreadable MATLAB file ({type(error).__name__}); "
            "re-download or re-create it"
        ) from error


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
    for child in sorted(folder.path.iterdir()):
        if child.suffix == ".mat" and not (_IMPUTED_RE.match(child.name) or _RAW_RE.match(child.name)):
            problems.append(f"{child}: not an NMED-T file name; expected songNN_Imputed.mat (NN = 21..30)")
    participants: dict[int, list[str]] = {}
    for song_id in sorted(set(folder._imputed) | set(folder._raw)):
        info = song_info(song_id)
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
                lines.append(
                    f"{head}: {rec.duration_s:.1f} s, {rec.n_subjects} participants "
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
            problems.append(f"{folder.path / 'stimuli'}: no stimulus for song {song_id}; add "
                            f"song{song_id}.wav (or .flac/.ogg/.mp3) to train or compare with audio")
            lines.append("  stimulus: missing")
            continue
        try:
            sound = soundfile.info(str(stimulus))
            stim_seconds = sound.frames / sound.samplerate
            lines.append(f"  stimulus: {stimulus.relative_to(folder.path)} ({stim_seconds:.1f} s at "
                         f"{sound.samplerate} Hz, {sound.channels} ch)")
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
            problems.append(f"{stimulus}: lasts {stim_seconds:.1f} s but the EEG of song {song_id} lasts "
                            f"{eeg_seconds:.1f} s; check that it is the right audio")
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
    return lines, problems
