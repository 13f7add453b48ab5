"""Recording that survives a crash: decoded frames and audio appended to files valid after every append.

:class:`FrameRecorder` writes what ``eegmusic decode --record DIR`` keeps; :func:`read_frames` reads
it back (also after the decoder was killed mid-write).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
from eegmusic.decoder.audio import WavSink
from eegmusic.decoder.melspec import FRAME_PERIOD_S, MEL_DB_CEILING, MEL_DB_GUARD_FLOOR, N_MELS
from eegmusic.decoder.sinks import why_not_written
from eegmusic.stream.errors import ConfigError, DataFormatError, OutputError, read_json

MAX_FRAME_INDEX = 1 << 40
"""Frame indices a recording may hold: 0 up to this, exclusive (800 years of frames)."""

FRAMES_FILE = "mel_db.f32"
FRAME_INDEX_FILE = "frame_index.i64"
FRAME_SOURCE_FILE = "frame_source.f64"
FRAMES_SIDECAR = "mel_db.json"
AUDIO_FILE = "decoded.wav"
RECORDING_FILES = (FRAMES_FILE, FRAME_INDEX_FILE, FRAME_SOURCE_FILE, FRAMES_SIDECAR, AUDIO_FILE)
"""Every file a recording folder holds."""

_LAYOUT = {"n_mels": N_MELS, "dtype": "<f4", "index_dtype": "<i8", "frames_file": FRAMES_FILE,
           "index_file": FRAME_INDEX_FILE, "source_file": FRAME_SOURCE_FILE}
"""How the raw files are laid out: written into ``mel_db.json`` and checked when it is read back."""


def check_record_dir(folder: str | Path) -> None:
    """Refuse a record folder that already holds a recording (``decode --record`` checks it up front).

    Raises
    ------
    ConfigError
        ``folder`` holds one of the recording's files; recordings are never overwritten.
    """
    folder = Path(folder)
    for name in (FRAMES_FILE, FRAME_INDEX_FILE, FRAME_SOURCE_FILE, AUDIO_FILE):
        if (folder / name).exists():
            raise ConfigError(f"record folder {folder} already holds {name}; pass a new "
                              f"--record DIR (recordings are never overwritten)")


def recording_file(path: str | Path) -> Path | None:
    """The recording's file that ``path`` is (links followed), where its folder holds a recording; else
    None. ``decode --wav/--json`` refuse such a path even with ``--overwrite``."""
    import os

    target = Path(os.path.realpath(path))
    if target.name not in RECORDING_FILES:
        return None
    held = [name for name in RECORDING_FILES if name != target.name and (target.parent / name).exists()]
    return target if held else None


class FrameRecorder:
    """Append decoded frames to raw files that are valid after every append.

    Files in ``folder``: ``mel_db.f32`` (float32 little-endian, frame after frame, 128 values each),
    ``frame_index.i64`` (int64 global frame index of each frame, stimulus time = k * 512 / 22050 s),
    ``frame_source.f64`` (float64 rows ``n_end, j, t_last``: the window each frame came from, by the
    model-sample index one past its end, the frame's index in that window's output and the LSL time
    of the window's last sample), ``mel_db.json`` (how to read them), and ``decoded.wav`` (the
    audio). :func:`read_frames` reads them back, dropping a partly written last frame.
    """

    def __init__(self, folder: str | Path, *, sidecar: dict, audio: bool = True):
        self.folder = Path(folder)
        check_record_dir(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create record folder {self.folder} ({error.strerror}); pass a "
                              f"writable --record DIR") from error
        # created exclusively, the frames file first: of two decodes that passed check_record_dir
        # together, only one gets the folder (appending, both interleaved their frames in one file)
        try:
            self._frames = open(self.folder / FRAMES_FILE, "xb")  # noqa: SIM115
        except FileExistsError:
            check_record_dir(self.folder)  # names the file and the fix
            raise
        self._index = open(self.folder / FRAME_INDEX_FILE, "xb")  # noqa: SIM115
        self._source = open(self.folder / FRAME_SOURCE_FILE, "xb")  # noqa: SIM115
        meta = {"format": "raw float32 little-endian, frame-major", **_LAYOUT,
                "source_columns": ["n_end", "window_frame", "t_last"],
                "units": {  # a reader of the raw files needs nothing else (docs/design.md, the contract)
                    "frames": "mel dB: 10*log10(mel power), reference power 1, floored at -80 dB",
                    "index": "frame k covers k * frame_period_s of stimulus time on the decode's own EEG "
                             "time axis (0 at its first sample), not from the song's start",
                    "n_end": "model-rate EEG sample index (exclusive) where the frame's window ends",
                    "window_frame": "column 0-43 of the model's 44-frame window the frame came from",
                    "t_last": "LSL clock (s) of the window's last EEG sample"},
                "frame_period_s": FRAME_PERIOD_S, "audio_file": AUDIO_FILE if audio else None, **sidecar}
        try:
            (self.folder / FRAMES_SIDECAR).write_text(json.dumps(meta, indent=1))
        except OSError as error:   # a full disk at the start: nothing recorded yet
            sidecar_path = self.folder / FRAMES_SIDECAR
            raise OutputError(f"cannot write {sidecar_path} ({why_not_written(sidecar_path, error)}); free "
                              "space or pass another --record DIR") from error
        # float samples as decoded, peaks beyond full scale included (the player's limiter comes after);
        # the header is rewritten after every write (crash-safe)
        self.wav = WavSink(self.folder / AUDIO_FILE, subtype="FLOAT", clip=False) if audio else None
        self.n_frames = 0

    def append_frames(self, k0: int, frames: np.ndarray, window_frame: np.ndarray, n_end: int,
                      t_last: float) -> None:
        """Append frames ``k0 .. k0 + n - 1`` (frames: shape (128, n)) and where they came from."""
        n = frames.shape[1]
        if n == 0:
            return
        source = np.empty((n, 3), dtype="<f8")
        source[:, 0] = n_end
        source[:, 1] = window_frame
        source[:, 2] = t_last
        try:
            self._frames.write(np.ascontiguousarray(frames.T, dtype="<f4").tobytes())
            self._index.write(np.arange(k0, k0 + n, dtype="<i8").tobytes())
            self._source.write(source.tobytes())
            for f in (self._frames, self._index, self._source):
                f.flush()
        except OSError as error:   # a full disk, a file system gone: what was written stays readable
            # (read_frames reads the frames whole in all three files; a part-written one is left out)
            why = why_not_written(self.folder / FRAMES_FILE, error)
            raise OutputError(f"cannot write the recording {self.folder} ({why}); its {self.n_frames} frames "
                              f"recorded before stay readable (eegmusic vocode {self.folder}): free space or "
                              "pass another --record DIR") from error
        self.n_frames += n

    def append_audio(self, samples: np.ndarray) -> None:
        """Append decoded audio samples."""
        if self.wav is not None:
            self.wav.write(samples)

    def close(self) -> None:
        """Close every file.

        Every append flushes, so only a write that already failed (and said so) can leave bytes
        buffered: closing after it does not raise again for the same full disk.
        """
        for f in (self._frames, self._index, self._source):
            with contextlib.suppress(OSError):
                f.close()
        if self.wav is not None:
            self.wav.close()


def read_frames(folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a recording made with ``--record``.

    Returns
    -------
    frame_index : ndarray, shape (n,), int64
        Global frame index of each frame.
    mel_db : ndarray, shape (128, n), float32
    source : ndarray, shape (n, 3), float64
        ``n_end, window_frame, t_last`` of the window each frame came from.
    """
    folder = Path(folder)
    if not (folder / FRAMES_FILE).exists():
        raise DataFormatError(f"{folder} holds no {FRAMES_FILE}; pass a folder written by "
                              f"`eegmusic decode --record`")
    frames = np.fromfile(folder / FRAMES_FILE, dtype="<f4")
    index = np.fromfile(folder / FRAME_INDEX_FILE, dtype="<i8")
    source = np.fromfile(folder / FRAME_SOURCE_FILE, dtype="<f8")
    n = min(len(frames) // N_MELS, len(index), len(source) // 3)
    return (index[:n].astype(np.int64), frames[: n * N_MELS].reshape(n, N_MELS).T.astype(np.float32),
            source[: 3 * n].reshape(n, 3).astype(np.float64))


def read_recorded_mel(path: str | Path) -> tuple[Path, np.ndarray, np.ndarray, dict]:
    """Read a recording's mel frames, named by its folder or its ``mel_db.f32``, as ``mel_db.json`` says.

    The sidecar must describe what :func:`read_frames` reads (128 float32 mel-dB values a frame, int64
    frame indices, 512 / 22050 s a frame) and a mel model's output; a waveform model's recording holds
    no frames (its sound is ``decoded.wav``).

    Returns
    -------
    folder : Path
        The recording folder.
    frame_index : ndarray, shape (n,), int64
        Global frame index of each frame, in recorded order (n >= 1).
    mel_db : ndarray, shape (128, n), float32
    meta : dict
        The sidecar ``mel_db.json``.

    Raises
    ------
    DataFormatError
        No recording there, frames without their sidecar, a sidecar unreadable or describing another
        layout, or no frames.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    sidecar = folder / FRAMES_SIDECAR
    whole = f"pass the whole folder `eegmusic decode --record DIR` wrote, {FRAMES_SIDECAR} included"
    if not path.exists():
        raise DataFormatError(f"{path}: not found; check the path, or {whole}")
    if not sidecar.is_file():
        if path.is_dir() and not (folder / FRAMES_FILE).exists():
            raise DataFormatError(f"{path}: is a folder, not a decode recording (no {FRAMES_SIDECAR} in it); "
                                  f"pass a folder written by `eegmusic decode --record DIR`")
        raise DataFormatError(f"{path if path.is_file() else folder / FRAMES_FILE}: raw mel frames without "
                              f"their {FRAMES_SIDECAR} beside them (their shape and units); {whole}")
    try:
        meta = read_json(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataFormatError(f"{sidecar}: unreadable ({type(error).__name__}); {whole}") from error
    if not isinstance(meta, dict):
        raise DataFormatError(f"{sidecar}: holds no JSON object; {whole}")
    if path.is_file() and path.name not in (FRAMES_FILE, FRAMES_SIDECAR):
        raise DataFormatError(f"{path}: is not the frames file of recording {folder} ({FRAMES_FILE}); "
                              f"pass the folder {folder}")
    kind = meta.get("output_kind", "mel_db")
    if kind != "mel_db":
        raise DataFormatError(f"recording {folder} holds no mel frames: its model outputs {kind} (the sound "
                              f"is {folder / AUDIO_FILE}); pass a mel model's recording")
    for key, value in _LAYOUT.items():
        if key in meta and meta[key] != value:
            raise DataFormatError(f"{sidecar}: {key} is {meta[key]!r}; this eegmusic reads recordings with "
                                  f"{key} {value!r} (`eegmusic decode --record` of this version)")
    period = meta.get("frame_period_s", FRAME_PERIOD_S)
    # "not <=": NaN compares False both ways and passed as a period (a fuzzing helper's case)
    if not isinstance(period, int | float) or not abs(period - FRAME_PERIOD_S) <= 1e-9:
        raise DataFormatError(f"{sidecar}: frame_period_s is {period!r}; this eegmusic reads recordings of "
                              f"{FRAME_PERIOD_S:.6f} s frames (512 samples at 22050 Hz)")
    for name in (FRAMES_FILE, FRAME_INDEX_FILE, FRAME_SOURCE_FILE):
        if not (folder / name).is_file():
            raise DataFormatError(f"recording {folder} lacks {name}; {whole}")
    frame_index, mel, _ = read_frames(folder)
    if not frame_index.size:
        raise DataFormatError(f"recording {folder} holds no mel frames (the decode stopped before its first "
                              f"frame); record a longer decode")
    # a decode counts frames from 0, 43 a second: 2**40 of them would be 800 years of decoding
    bad = np.flatnonzero((frame_index < 0) | (frame_index >= MAX_FRAME_INDEX))
    if bad.size:
        raise DataFormatError(f"{folder / FRAME_INDEX_FILE}: frame {bad[0]} has index {frame_index[bad[0]]}, "
                              f"which no decode writes (0 to {MAX_FRAME_INDEX - 1}): the file is damaged; "
                              f"{whole}")
    # decode keeps every frame in [-200, 60] dB (melspec.guard_mel_db): beyond is damage, and 3e38 dB
    # overflowed the vocoder's power
    beyond = (mel < MEL_DB_GUARD_FLOOR) | (mel > MEL_DB_CEILING)   # False for NaN
    outside = np.flatnonzero(beyond.any(axis=0))
    if outside.size:
        value = mel[beyond[:, outside[0]], outside[0]][0]
        raise DataFormatError(f"{folder / FRAMES_FILE}: frame {outside[0]} holds {float(value):g} dB, which "
                              f"no decode writes ({MEL_DB_GUARD_FLOOR:g} to {MEL_DB_CEILING:g} dB): the file "
                              f"is damaged; {whole}")
    if not np.isfinite(mel).all(axis=0).any():
        raise DataFormatError(f"recording {folder} holds no finite mel frame (every frame has NaN or Inf: "
                              "its model's output, played as silence); check the model with `eegmusic "
                              "evaluate` and record again")
    return folder, frame_index, mel, meta
