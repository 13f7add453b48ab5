"""Write a simulated dataset in exactly the NMED-T layout.

For each song: ``songNN_Imputed.mat`` (MATLAB v5: ``dataNN`` 125 × time × participants float64 µV,
``fs`` = 125, ``subsNN`` participant ids as a cell array) and ``stimuli/songNN.wav`` (22050 Hz,
16-bit). With ``raw=True`` also ``songNN_raw.mat``: MATLAB v7.3 (HDF5) holding ``dataNN`` as
129 channels (E1…E128, Cz; referenced to Cz, so Cz is zero) × time × participants at ``fs`` = 1000
with 60 Hz line noise, the same brain activity the ``_Imputed`` file shows after average reference
and decimation to 125 Hz. The name keeps raw data from being mistaken for preprocessed data:
:class:`replay.nmedt.NMEDTFolder` reads it only with ``load_song(song_id, raw=True)``.

The music comes from :mod:`replay.music` (or the user's audio files), the EEG from
:mod:`replay.forward_model`. Each participant keeps the same traits in every song. Memory is bounded
by one song: songs are generated, written and freed one after the other; participants of a song run
in two threads (numpy's FFTs and products release the GIL).

``simulation.json`` beside the song files records the parameters and marks the folder as simulated:
a rerun into it replaces the previous songs, while a folder holding song files without it (real
data) is refused rather than overwritten.

Examples
--------
>>> simulate("/tmp/sim", n_songs=2, n_subjects=3, seconds=20)   # doctest: +SKIP
PosixPath('/tmp/sim')
"""

from __future__ import annotations

import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from eegmusic.replay import forward_model as fm
from eegmusic.replay.music import SFREQ as AUDIO_SFREQ
from eegmusic.replay.music import check_excerpt, generate_song, load_excerpt
from eegmusic.replay.nmedt import RAW_SFREQ, SONGS
from eegmusic.stream.errors import ConfigError, DataFormatError
from eegmusic.stream.spec import MODEL_SFREQ, N_CHANS

logger = logging.getLogger(__name__)

DEFAULT_SNR = 0.03
"""Default evoked share of the EEG variance (a few percent, as for cortical tracking of music)."""

SIMULATED_DURATIONS_S: dict[int, float] = {
    21: 280.0, 22: 292.0, 23: 285.0, 24: 271.0, 25: 298.0,
    26: 276.0, 27: 289.0, 28: 283.0, 29: 295.0, 30: 278.0,
}
"""Song lengths used when ``seconds`` is None (NMED-T songs last 271–298 s)."""

FIRST_SONG = 21
MAX_SONGS = len(SONGS)


def participant_ids(n_subjects: int) -> list[str]:
    """Participant ids written to ``subsNN``: ``S01``, ``S02``, …"""
    return [f"S{i:02d}" for i in range(1, n_subjects + 1)]


def _check_arguments(n_songs, n_subjects, seconds, snr, audio_files) -> None:
    if audio_files is not None:
        if not 1 <= len(audio_files) <= MAX_SONGS:
            raise ConfigError(
                f"--music takes 1 to {MAX_SONGS} files (NMED-T slots 21..30), got {len(audio_files)}"
            )
    elif not 1 <= int(n_songs) <= MAX_SONGS:
        raise ConfigError(f"--n-songs must be 1..{MAX_SONGS} (NMED-T songs 21..30), got {n_songs}")
    if int(n_subjects) < 1:
        raise ConfigError(f"--n-subjects must be at least 1, got {n_subjects}")
    if seconds is not None and not float(seconds) >= 2.0:
        raise ConfigError(f"--duration must be at least 2, got {seconds}")
    if snr is not None and not 0.0 < float(snr) < 1.0:
        raise ConfigError(f"--snr is the evoked share of variance and must be in (0, 1), got {snr}")


def _write_wav(path: Path, audio: np.ndarray) -> None:
    import soundfile

    tmp = path.with_name(path.name + ".part")
    soundfile.write(str(tmp), np.clip(audio, -1.0, 1.0), AUDIO_SFREQ, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _write_imputed(path: Path, song_id: int, data: np.ndarray, subjects: list[str]) -> None:
    import scipy.io

    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as handle:
        scipy.io.savemat(handle, {
            f"data{song_id}": data,
            "fs": np.array([[MODEL_SFREQ]]),
            f"subs{song_id}": np.array(subjects, dtype=object).reshape(1, -1),
        }, do_compression=False, oned_as="row")
    os.replace(tmp, path)


class _RawWriter:
    """Writes a MATLAB v7.3 (HDF5) ``songNN_raw.mat`` one participant at a time.

    MATLAB stores arrays column-major, so a MATLAB (129, n_times, n_subjects) array is the HDF5
    dataset (n_subjects, n_times, 129); a 512-byte header makes MATLAB recognise the file.
    """

    def __init__(self, path: Path, song_id: int, n_times: int, subjects: list[str]) -> None:
        import h5py

        self.path = path
        self.tmp = path.with_name(path.name + ".part")
        self.file = h5py.File(self.tmp, "w", userblock_size=512)
        self.data = self.file.create_dataset(
            f"data{song_id}", shape=(len(subjects), n_times, len(fm.NET_CHANNELS)), dtype="f8",
            chunks=(1, min(n_times, 65536), len(fm.NET_CHANNELS)),
        )
        self.data.attrs["MATLAB_class"] = np.bytes_("double")
        fs = self.file.create_dataset("fs", data=np.array([[RAW_SFREQ]]))
        fs.attrs["MATLAB_class"] = np.bytes_("double")
        refs = self.file.create_group("#refs#")
        ref_list = []
        for index, subject in enumerate(subjects):
            codes = np.array([[ord(c)] for c in subject], dtype=np.uint16)
            char = refs.create_dataset(f"s{index}", data=codes)
            char.attrs["MATLAB_class"] = np.bytes_("char")
            ref_list.append(char.ref)
        cell = self.file.create_dataset(f"subs{song_id}", data=np.array(ref_list, dtype=h5py.ref_dtype)
                                        .reshape(-1, 1), dtype=h5py.ref_dtype)
        cell.attrs["MATLAB_class"] = np.bytes_("cell")

    def write(self, subject_index: int, net_uv: np.ndarray) -> None:
        """Store one participant's (129, n_times) recording."""
        self.data[subject_index] = net_uv.T

    def close(self) -> None:
        """Finish the file and put the MATLAB header into its user block."""
        self.file.close()
        created = datetime.now(UTC).strftime("%a %b %d %H:%M:%S %Y")
        text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {created} HDF5 schema 1.00 ."
        header = text.encode("ascii").ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
        with open(self.tmp, "r+b") as handle:
            handle.write(header.ljust(512, b"\x00"))
        os.replace(self.tmp, self.path)


MANIFEST = "simulation.json"
"""File that marks a folder as written by :func:`simulate` (parameters, and whether it finished)."""

_SONG_FILE = re.compile(r"^song\d+_(Imputed|raw)\.mat(\.part)?$")


def _prepare_folder(out: Path, manifest: dict) -> None:
    """Create ``out`` or clear a previous simulation in it; never touch a folder of real data."""
    existing = sorted(p.name for p in out.iterdir() if _SONG_FILE.match(p.name)) if out.is_dir() else []
    if existing and not (out / MANIFEST).is_file():
        raise ConfigError(
            f"{out} holds NMED-T files not written by eegmusic simulate ({', '.join(existing[:3])}"
            f"{', …' if len(existing) > 3 else ''}); choose an empty or new --out folder"
        )
    try:
        (out / "stimuli").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot create {out / 'stimuli'} ({error.strerror}); pass a writable --out folder"
        ) from error
    if (out / MANIFEST).is_file():  # a previous simulation: its songs must not mix with the new ones
        for name in existing:
            (out / name).unlink()
        for wav in (out / "stimuli").glob("song*.wav"):
            wav.unlink()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))


@dataclass
class _SongJob:
    """What every participant's recording of one song shares."""

    song_id: int
    envelopes: np.ndarray    # (n_bands, n_sim) at sim_sfreq
    onsets: np.ndarray       # (n_sim,)
    sim_sfreq: float         # 125, or 1000 when raw files are written
    n_times: int             # samples at 125 Hz
    data: np.ndarray         # (125, n_times, n_subjects) output, filled in place
    raw_writer: _RawWriter | None
    noise_key: tuple = ()    # a later music excerpt gets its own background EEG (same participants)


def _record(song: _SongJob, participant: fm.Participant, index: int, *, seed: int, snr: float,
            head: fm.HeadModel) -> None:
    """Simulate one participant's recording of a song into ``song.data`` (and the raw file)."""
    from scipy.signal import resample_poly

    rng = np.random.default_rng([seed, song.song_id, index, 202, *song.noise_key])
    evoked, rest = fm.simulate_net(
        participant, song.envelopes, song.onsets, sfreq=song.sim_sfreq,
        snr=float(np.clip(snr * participant.gain, 1e-4, 0.95)), rng=rng, head=head,
    )
    net = rest
    net += evoked
    del evoked, rest
    if song.raw_writer is None:
        fm.average_reference(net, out=song.data[:, :, index])
        return
    recorded = net + fm.line_noise(participant, net.shape[1], song.sim_sfreq, rng)
    recorded -= recorded[-1]  # the amplifier records against Cz (E129)
    song.raw_writer.write(index, recorded)
    del recorded
    # the lab's path: low-pass and decimate 1000 -> 125 Hz, then average reference
    factor = int(round(song.sim_sfreq / MODEL_SFREQ))
    model = resample_poly(net[fm.MODEL_INDEX], 1, factor, axis=1)[:, :song.n_times]
    song.data[:, :, index] = model - model.mean(axis=0, keepdims=True)


def simulate(out_dir, *, n_songs: int = 10, n_subjects: int = 20, seconds: float | None = None,
             seed: int = 0, snr: float | None = None, audio_files=None, music_start_s: float = 0.0,
             raw: bool = False,
             progress: bool = True) -> Path:
    """Write a simulated NMED-T folder.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write (created if needed). A previous simulation there is replaced; a folder with
        song files not written by this function is refused (ConfigError).
    n_songs : int
        Number of generated songs, 1..10, numbered 21, 22, … (ignored when ``audio_files`` is given).
    n_subjects : int
        Participants per song.
    seconds : float, optional
        Length of every song in seconds; default: NMED-T-like lengths (271–298 s), or the full
        audio files.
    seed : int
        Same seed, same files.
    snr : float, optional
        Evoked share of the EEG variance (geometric mean over participants, whose gains vary);
        default :data:`DEFAULT_SNR`.
    audio_files : sequence of path, optional
        The user's own audio (wav, flac, ogg, mp3; any rate), one per song, in slots 21, 22, … (at
        most 10); mixed to mono and resampled to 22050 Hz; cut to ``seconds`` when given.
    music_start_s : float
        Where the excerpt of each audio file starts, in seconds (a later excerpt of the same tracks
        makes unseen test data for models trained on an earlier one).
    raw : bool
        Also write ``songNN_raw.mat`` (129 channels at 1000 Hz with line noise, MATLAB v7.3).
    progress : bool
        Show a progress bar (stderr).

    Returns
    -------
    out_dir : Path

    Raises
    ------
    ConfigError
        Bad counts, length or SNR, or an ``out_dir`` that holds real data or cannot be written.
    DataFormatError
        An audio file that is missing or unreadable.
    """
    from eegmusic.stream.progress import progress_bar

    _check_arguments(n_songs, n_subjects, seconds, snr, audio_files)
    snr = DEFAULT_SNR if snr is None else float(snr)
    out = Path(out_dir).expanduser()
    stimuli = out / "stimuli"
    audio_files = [Path(p) for p in audio_files] if audio_files is not None else None
    for path in audio_files or []:
        if not path.is_file():
            raise DataFormatError(f"{path}: audio file not found; check the --music paths")
        check_excerpt(path, start_s=music_start_s, seconds=seconds)  # before anything is written
    song_ids = [FIRST_SONG + i for i in range(len(audio_files) if audio_files else int(n_songs))]
    subjects = participant_ids(int(n_subjects))
    _prepare_folder(out, {
        "generator": "eegmusic simulate", "songs": song_ids, "subjects": subjects,
        "seconds": seconds, "seed": int(seed), "snr": snr, "raw": bool(raw),
        "audio_files": [str(p) for p in audio_files] if audio_files else None,
        "music_start_s": float(music_start_s) if audio_files else None, "complete": False,
    })
    head = fm.head_model()
    participants = [fm.draw_participant(np.random.default_rng([seed, index, 101]), head)
                    for index in range(len(subjects))]
    factor = int(RAW_SFREQ / MODEL_SFREQ)
    n_workers = max(1, min(2, os.cpu_count() or 1))
    sim_sfreq = RAW_SFREQ if raw else MODEL_SFREQ
    bar = progress_bar(total=len(song_ids) * len(subjects), desc="simulate", unit="recording",
               disable=not progress, leave=False)
    try:
        for song_index, song_id in enumerate(song_ids):
            if audio_files:
                audio = load_excerpt(audio_files[song_index], start_s=music_start_s, seconds=seconds)
            else:
                length = float(seconds) if seconds is not None else SIMULATED_DURATIONS_S[song_id]
                audio = generate_song(song_id, bpm=SONGS[song_id].bpm, seconds=length, seed=seed)
            n_times = int(len(audio) / AUDIO_SFREQ * MODEL_SFREQ)
            if n_times < MODEL_SFREQ:
                raise DataFormatError(f"{audio_files[song_index]}: audio shorter than 1 s; use a longer file")
            _write_wav(stimuli / f"song{song_id}.wav", audio)
            n_sim = n_times * factor if raw else n_times
            envelopes, onsets = fm.stimulus_features(audio, audio_sfreq=AUDIO_SFREQ, sfreq=sim_sfreq,
                                                     n_times=n_sim)
            del audio
            data = np.empty((N_CHANS, n_times, len(subjects)), order="F")
            raw_writer = (_RawWriter(out / f"song{song_id}_raw.mat", song_id, n_sim, subjects)
                          if raw else None)
            noise_key = (int(round(float(music_start_s) * 1000)),) if audio_files and music_start_s else ()
            song = _SongJob(song_id, envelopes, onsets, sim_sfreq, n_times, data, raw_writer, noise_key)
            # numpy's FFTs and products release the GIL: participants run on the cores in threads
            # (one at a time for raw output, whose recordings are 8x larger)
            workers = 1 if raw else n_workers
            with ThreadPoolExecutor(max_workers=workers) as pool:
                jobs = [pool.submit(_record, song, participant, index, seed=seed, snr=snr, head=head)
                        for index, participant in enumerate(participants)]
                for future in as_completed(jobs):
                    future.result()
                    bar.update(1)
            if raw_writer is not None:
                raw_writer.close()
            _write_imputed(out / f"song{song_id}_Imputed.mat", song_id, data, subjects)
            logger.debug("wrote song %d: %d participants × %.1f s", song_id, len(subjects),
                         n_times / MODEL_SFREQ)
            del data, song, envelopes, onsets
    finally:
        bar.close()
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["complete"] = True
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out
