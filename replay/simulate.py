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
by one song (plus the user's music excerpts, decoded up front so that a bad file is refused before
anything is written): songs are generated, written and freed one after the other; participants of a
song run in two threads (numpy's FFTs and products release the GIL). A run whose estimated memory or
disk need exceeds what the machine has is refused before it starts.

``simulation.json`` beside the song files records the parameters and marks the folder as simulated:
a rerun into it deletes the previous dataset's files (and only those), while a non-empty folder
without it, or with other files beside the dataset, is refused rather than overwritten. A run that
fails removes what it wrote.

Examples
--------
>>> simulate("/tmp/sim", n_songs=2, n_subjects=3, seconds=20)   # doctest: +SKIP
PosixPath('/tmp/sim')
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from eegmusic.replay import forward_model as fm
from eegmusic.replay.manifest import GENERATOR, MANIFEST, simulation_manifest
from eegmusic.replay.music import SFREQ as AUDIO_SFREQ
from eegmusic.replay.music import check_excerpt, generate_song, load_excerpt
from eegmusic.replay.nmedt import RAW_SFREQ, SONGS
from eegmusic.stream.atomic import (
    FREE_SPACE,
    check_writable,
    disk_errors,
    is_within,
    nearest_existing,
    output_lock,
    process_status,
    write_probe,
)
from eegmusic.stream.errors import ConfigError, DataFormatError, OutputError
from eegmusic.stream.spec import MODEL_SFREQ, N_CHANS
from eegmusic.stream.stimulus import SILENT_PEAK, STORED_PEAK, check_audio_file, within_full_scale

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


# The files a simulated dataset consists of, in either layout (NMED-T, or --montage sessions), and
# the ".part" files a killed run leaves. Nothing else in a folder is ever deleted.
_DATASET_FILE = re.compile(r"^(simulation\.json|song\d+_(Imputed|raw)\.mat(\.part)?|song\d+\.wav(\.part)?"
                           r"|S\d+\.xdf)$")
_STIMULUS_FILE = re.compile(r"^song\d+\.wav(\.part)?$")


def _listing(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", …" if len(names) > 3 else "")


def earlier_dataset(out: Path) -> list[Path]:
    """The files of an earlier simulation in ``out`` (to be replaced); refuse any other content.

    Parameters
    ----------
    out : Path
        The ``--out`` folder (it may not exist yet).

    Returns
    -------
    files : list of Path
        Files to delete before writing: those of the earlier dataset (none for a new or empty folder).

    Raises
    ------
    ConfigError
        ``out`` holds files and is not a simulated dataset (no ``simulation.json`` written by
        :func:`simulate`), or holds files that are not part of the dataset (user files are never deleted).
    """
    if not out.is_dir() or not any(out.iterdir()):
        return []
    if simulation_manifest(out) is None:
        names = sorted(p.name for p in out.iterdir())
        if MANIFEST in names:   # ours by name, unreadable as ours: never taken for a simulation to delete
            raise ConfigError(f"--out folder {out} holds a {MANIFEST} that is not readable as eegmusic "
                              "simulate's (damaged, or another program's), so --overwrite cannot tell its "
                              f"files ({_listing(names)}) from yours and replaces none; choose another --out "
                              "folder, or delete that folder yourself")
        raise ConfigError(f"--out folder {out} holds files not written by eegmusic simulate "
                          f"({_listing(names)}), which --overwrite never replaces; choose another --out "
                          "folder (a new or empty one)")
    files, others = [], []
    for path in sorted(out.iterdir()):
        if path.is_file() and not path.is_symlink() and _DATASET_FILE.match(path.name):
            files.append(path)
        elif path.name == "stimuli" and path.is_dir() and not path.is_symlink():
            for wav in sorted(path.iterdir()):
                if wav.is_file() and not wav.is_symlink() and _STIMULUS_FILE.match(wav.name):
                    files.append(wav)
                else:
                    others.append(f"stimuli/{wav.name}")
        else:
            others.append(path.name)
    if others:
        raise ConfigError(f"{out} holds files that are not part of the earlier simulation "
                          f"({_listing(others)}); move them out or choose another --out folder (they are "
                          "never deleted)")
    return files


def prepare_folder(out: Path, old_files: list[Path], manifest: dict, *, stimuli: bool) -> Path | None:
    """Delete the earlier dataset's files, create ``out`` (and ``stimuli/``), write the manifest.

    Call :func:`earlier_dataset` and every other check first: this is the first write.

    Returns
    -------
    created : Path or None
        The outermost folder this call created (``out`` or a missing parent of it), so that a failed
        run may remove it whole; None when ``out`` existed.
    """
    # every folder to delete from is tried first: a read-only stimuli/ failed the run after the song
    # files beside it were deleted, and the line did not say so
    for folder in sorted({path.parent for path in old_files}):
        error = write_probe(folder)
        if error is not None:
            raise OutputError(f"cannot replace the earlier simulation in {out}: files in {folder} cannot be "
                              f"deleted ({error.strerror or error}); nothing was deleted: make that folder "
                              "writable or choose another --out folder")
    created = None
    if not out.exists():
        created = out.absolute()
        while not created.parent.exists():
            created = created.parent
    try:
        # the manifest last: a deletion refused midway (an immutable file) leaves a folder that is still
        # recognised as a simulation, so the rerun with --overwrite can finish the job
        for path in sorted(old_files, key=lambda path: path.name == MANIFEST):
            path.unlink(missing_ok=True)
        if (out / "stimuli").is_dir() and not stimuli and not any((out / "stimuli").iterdir()):
            (out / "stimuli").rmdir()  # an NMED-T dataset replaced by XDF sessions
        (out / "stimuli" if stimuli else out).mkdir(parents=True, exist_ok=True)
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    except OSError as error:
        raise OutputError(f"cannot write {out} ({error.strerror or error}); pass a writable --out folder "
                          "with free space") from error
    return created


def _remove_partial(out: Path, created: Path | None) -> None:
    """Remove what a failed run wrote: the folders it created, else only the dataset files."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    # a folder that existed before is kept; after prepare_folder it holds only this run's files
    for path in [*out.glob("*"), *out.glob("stimuli/*")]:
        if path.is_file() and _DATASET_FILE.match(path.name):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (out / "stimuli").rmdir()


@contextlib.contextmanager
def writing_dataset(out: Path, created: Path | None, *, replaced: bool = False) -> Iterator[None]:
    """Run the writing phase; on any failure (Ctrl-C too) remove what it wrote, then re-raise.

    Running out of memory or disk becomes one line (:class:`ConfigError`, :class:`OutputError`).
    ``replaced``: :func:`prepare_folder` deleted an earlier dataset first (``--overwrite``, so that a
    dataset as large as the disk can be replaced); a failure then leaves neither, and says so.
    """
    gone = " (the earlier dataset there was deleted first, --overwrite: run again to write one)" \
        if replaced else ""
    try:
        with disk_errors(out, tail=f"nothing this run wrote is kept{gone}; {FREE_SPACE}"):   # removed below
            yield
    except MemoryError:
        _remove_partial(out, created)
        raise ConfigError(f"ran out of memory while simulating into {out} (nothing kept{gone}); lower {LOWER}"
                          ) from None
    except BaseException as error:
        _remove_partial(out, created)
        if replaced and isinstance(error, KeyboardInterrupt):   # the other failures say it in their line
            logger.warning("stopped: %s holds no dataset now%s", out, gone)
        raise


def refuse_music_inside(out: Path, audio_files) -> None:
    """An input is never its own output: refuse ``--music`` files inside the folder being written."""
    for path in audio_files or []:
        if is_within(path, out):
            raise OutputError(f"--music {path} lies inside --out {out}, which this run replaces; move the "
                              "music out of it or choose another --out folder")


def available_memory() -> int:
    """Bytes this process can allocate now without swapping (:func:`check_resources`)."""
    # MemAvailable, not the physical total: a run that only fits by pushing others into swap would
    # crawl for hours. An address-space limit (ulimit -v) caps it too.
    available = None
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as meminfo:
            line = next(line for line in meminfo if line.startswith("MemAvailable:"))
        available = int(line.split()[1]) * 1024
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        import resource
    except ImportError:  # not on Windows
        return available
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return available
    # the limit counts the address space already taken too: about 1 GB once torch is imported
    return max(0, min(available, limit - _address_space_used()))


def _address_space_used() -> int:
    """Bytes of address space this process has mapped (VmSize, in KiB there), 0 where unknown."""
    with contextlib.suppress(TypeError, ValueError):
        return int(process_status("VmSize")) * 1024
    return 0


def byte_size(n_bytes: float) -> str:
    """``1.5 GiB``, ``12 MiB``, ``2.0 TiB``: a disk or memory size that never reads 0.0 (a nearly full
    disk once read "needs 0.0 GiB, has 0.0 GiB")."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    if n_bytes >= 2**20:
        return f"{n_bytes / 2**20:.0f} MiB"
    return f"{n_bytes / 2**10:.0f} KiB"


def check_resources(out: Path, *, memory: float, disk: float, freed: int, lower: str) -> None:
    """Refuse a run whose estimated memory or disk need exceeds what the machine has, before writing.

    Parameters
    ----------
    out : Path
        The folder to write (its nearest existing ancestor gives the disk).
    memory, disk : float
        Estimated peak memory and size of the dataset, in bytes.
    freed : int
        Bytes of the earlier dataset that the run deletes first.
    lower : str
        The options that make the run smaller, for the message.
    """
    have = available_memory()
    if memory > have:
        raise ConfigError(f"this simulation needs about {byte_size(memory)} of memory, {byte_size(have)} "
                          f"available; lower {lower}")
    folder = nearest_existing(out)
    free = shutil.disk_usage(folder).free + freed
    if disk > free:
        raise ConfigError(f"this simulation writes about {byte_size(disk)}, {byte_size(free)} free on the "
                          f"disk of {folder}; lower {lower}, or choose another --out")


# Peak memory, measured with ru_maxrss on 1-6 participants x 2-180 s songs (within ~10 %): the
# interpreter and head model, the songs' audio, each song's simulation working set, and the song's
# (125, n_times, n_subjects) float64 array (twice: savemat copies it).
_BASE_BYTES = 150e6
_WORK_BYTES_PER_S = {False: 1.2e6, True: 6.4e6}   # raw: 129 channels simulated at 1000 Hz
_SUBJECT_BYTES_PER_S = 0.25e6


def _needs(song_seconds: list[float], n_subjects: int, raw: bool, music: bool) -> tuple[float, float]:
    """Estimated (peak memory, dataset size) in bytes of an NMED-T simulation."""
    longest, total = max(song_seconds), sum(song_seconds)
    memory = (_BASE_BYTES + (total * AUDIO_SFREQ * 4 if music else 0)
              + longest * (_WORK_BYTES_PER_S[raw] + n_subjects * _SUBJECT_BYTES_PER_S))
    disk = total * (N_CHANS * MODEL_SFREQ * 8 * n_subjects + 2 * AUDIO_SFREQ)
    if raw:
        disk += total * len(fm.NET_CHANNELS) * RAW_SFREQ * 8 * n_subjects
    return memory, disk


LOWER = "--n-subjects, --duration or the number of songs"
"""What makes a simulation smaller (for the messages of :func:`check_resources`)."""


def music_excerpts(audio_files, *, start_s: float, seconds: float | None) -> list[float]:
    """Check every ``--music`` file (exists, is audio, holds the excerpt); return excerpt lengths in s."""
    lengths = []
    for path in audio_files:
        check_audio_file(path)
        length_s = check_excerpt(path, start_s=start_s, seconds=seconds)
        lengths.append(float(seconds) if seconds is not None else length_s - float(start_s))
    return lengths


def plan_dataset(out: Path, song_ids: list[int], audio_files: list[Path] | None, *, music_start_s: float,
                 seconds: float | None, needs, lower: str) -> tuple[list[Path], list[np.ndarray] | None]:
    """Every check before the first write of a simulation (either layout).

    The music files (present, audio, long enough), ``out`` (new, empty, or an earlier simulation and
    nothing else), memory and disk (``needs(song_seconds) -> (memory, disk)`` in bytes), then the
    music's samples: each excerpt is decoded up front, so that a file holding NaN or undecodable
    frames is refused before ``out`` is touched.

    Returns
    -------
    old_files : list of Path
        The earlier dataset's files, for :func:`prepare_folder`.
    music : list of ndarray, shape (n_samples,), or None
        The decoded excerpts at 22050 Hz (None without ``audio_files``).
    """
    if audio_files:
        lengths = music_excerpts(audio_files, start_s=music_start_s, seconds=seconds)
        refuse_music_inside(out, audio_files)
    else:
        lengths = [float(seconds) if seconds is not None else SIMULATED_DURATIONS_S[s] for s in song_ids]
    old_files = earlier_dataset(out)
    check_writable(out)
    memory, disk = needs(lengths)
    check_resources(out, memory=memory, disk=disk, freed=sum(p.stat().st_size for p in old_files),
                    lower=lower)
    if not audio_files:
        return old_files, None
    return old_files, [_fit_to_wav(path, load_excerpt(path, start_s=music_start_s, seconds=seconds))
                       for path in audio_files]


def _fit_to_wav(path: Path, audio: np.ndarray) -> np.ndarray:
    """The excerpt as the stimulus WAV will hold it: silence refused, a peak above full scale scaled down.

    The stimulus is stored as 16-bit PCM; clipping a louder excerpt there (a float file peaking at 1.5
    lost 23 % of its samples to ±1) left a stimulus other than the one the EEG was simulated from. Scaling
    both keeps them one sound. Silence is judged by the threshold ``train`` and ``evaluate`` use
    (:data:`stream.stimulus.SILENT_PEAK`) on the stored 16 bits: a dataset they would refuse is not written.

    Raises
    ------
    DataFormatError
        The excerpt is silent.
    """
    peak = float(np.max(np.abs(audio)))
    if not peak >= SILENT_PEAK + 2.0**-15:   # a 16-bit step of margin: stored, it still reaches SILENT_PEAK
        raise DataFormatError(f"--music {path} is silent (no sample reaches {SILENT_PEAK:g} of full scale) "
                              "in the excerpt simulated; pass music with sound")
    audio, peak, factor = within_full_scale(audio)
    if factor != 1.0:
        logger.warning("--music %s peaks at %.3g times full scale, louder than a 16-bit WAV holds: scaled by "
                       "%.3g (to peak at %g) for the stimulus and the EEG alike", path, peak, factor,
                       STORED_PEAK)
    return audio


def mark_complete(out: Path) -> None:
    """Set ``complete`` in the manifest: the dataset is whole."""
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["complete"] = True
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
        Folder to write (created if needed). The files of a previous simulation there are replaced;
        a non-empty folder that is not one, or one that also holds other files, is refused
        (ConfigError). If the run fails, what it wrote is removed (the folder too if it created it).
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
        Bad counts, length or SNR, an ``out_dir`` that holds other files, or a run larger than the
        memory or disk at hand.
    DataFormatError
        An audio file that is missing, unreadable, holds NaN/Inf, or is shorter than the excerpt.
    OutputError
        An audio file inside ``out_dir``, or an ``out_dir`` that cannot be written.
    """
    _check_arguments(n_songs, n_subjects, seconds, snr, audio_files)
    snr = DEFAULT_SNR if snr is None else float(snr)
    out = Path(out_dir).expanduser()
    audio_files = [Path(p) for p in audio_files] if audio_files is not None else None
    song_ids = [FIRST_SONG + i for i in range(len(audio_files) if audio_files else int(n_songs))]
    subjects = participant_ids(int(n_subjects))
    # one simulate at a time into a folder, from the check of what it holds to the last file (a second
    # run with --overwrite deleted the first one's files as it wrote them)
    with output_lock(out, "simulate"):
        old_files, music = plan_dataset(
            out, song_ids, audio_files, music_start_s=music_start_s, seconds=seconds,
            needs=lambda lengths: _needs(lengths, len(subjects), bool(raw), bool(audio_files)),
            lower=LOWER + (" or drop --raw" if raw else ""),
        )
        created = prepare_folder(out, old_files, {
            "generator": GENERATOR, "songs": song_ids, "subjects": subjects,
            "seconds": seconds, "seed": int(seed), "snr": snr, "raw": bool(raw),
            "audio_files": [str(p) for p in audio_files] if audio_files else None,
            "music_start_s": float(music_start_s) if audio_files else None, "complete": False,
        }, stimuli=True)
        with writing_dataset(out, created, replaced=bool(old_files)):
            _write_songs(out, song_ids, subjects, music, seconds=seconds, seed=seed, snr=snr,
                         music_start_s=music_start_s if audio_files else 0.0, raw=raw, progress=progress)
            mark_complete(out)
    return out


def _signals_to_main_thread() -> None:
    """Block SIGINT and SIGTERM in a worker thread, so the kernel hands them to the main thread.

    Python runs signal handlers in the main thread only. A signal the kernel gave to a busy worker
    waited until the main thread next ran Python code, and once, under load, a SIGTERM sent mid-run
    never stopped the simulation at all (it finished and exited 0). Delivered to the main thread, the
    signal interrupts its wait on the workers at once: the run stops and removes what it wrote.
    """
    import signal

    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _write_songs(out: Path, song_ids: list[int], subjects: list[str], music: list[np.ndarray] | None, *,
                 seconds, seed: int, snr: float, music_start_s: float, raw: bool, progress: bool) -> None:
    """Simulate and write every song of :func:`simulate`, one after the other."""
    from eegmusic.stream.progress import progress_bar

    stimuli = out / "stimuli"
    head = fm.head_model()
    participants = [fm.draw_participant(np.random.default_rng([seed, index, 101]), head)
                    for index in range(len(subjects))]
    factor = int(RAW_SFREQ / MODEL_SFREQ)
    n_workers = max(1, min(2, os.cpu_count() or 1))
    sim_sfreq = RAW_SFREQ if raw else MODEL_SFREQ
    bar = progress_bar(total=len(song_ids) * len(subjects), desc="simulate", unit="recording",
               disable=not progress, leave=False)
    with bar:  # on an error, no final progress line before its one-line message
        for song_index, song_id in enumerate(song_ids):
            if music:
                audio = music[song_index]
                music[song_index] = None  # freed once simulated
            else:
                length = float(seconds) if seconds is not None else SIMULATED_DURATIONS_S[song_id]
                audio = generate_song(song_id, bpm=SONGS[song_id].bpm, seconds=length, seed=seed)
            n_times = int(len(audio) / AUDIO_SFREQ * MODEL_SFREQ)
            _write_wav(stimuli / f"song{song_id}.wav", audio)
            n_sim = n_times * factor if raw else n_times
            envelopes, onsets = fm.stimulus_features(audio, audio_sfreq=AUDIO_SFREQ, sfreq=sim_sfreq,
                                                     n_times=n_sim)
            del audio
            data = np.empty((N_CHANS, n_times, len(subjects)), order="F")
            raw_writer = (_RawWriter(out / f"song{song_id}_raw.mat", song_id, n_sim, subjects)
                          if raw else None)
            noise_key = (int(round(float(music_start_s) * 1000)),) if music_start_s else ()
            song = _SongJob(song_id, envelopes, onsets, sim_sfreq, n_times, data, raw_writer, noise_key)
            # numpy's FFTs and products release the GIL: participants run on the cores in threads
            # (one at a time for raw output, whose recordings are 8x larger)
            workers = 1 if raw else n_workers
            with ThreadPoolExecutor(max_workers=workers, initializer=_signals_to_main_thread) as pool:
                jobs = [pool.submit(_record, song, participant, index, seed=seed, snr=snr, head=head)
                        for index, participant in enumerate(participants)]
                try:
                    for future in as_completed(jobs):
                        future.result()
                        bar.update(1)
                except BaseException:
                    # a stop (Ctrl-C, SIGTERM) or a failure: the pool's exit waits for the recordings
                    # under way only, not for those not begun (a SIGTERM took up to 2.3 s to stop so)
                    for job in jobs:
                        job.cancel()
                    raise
            if raw_writer is not None:
                raw_writer.close()
            _write_imputed(out / f"song{song_id}_Imputed.mat", song_id, data, subjects)
            logger.debug("wrote song %d: %d participants × %.1f s", song_id, len(subjects),
                         n_times / MODEL_SFREQ)
            del data, song, envelopes, onsets
