"""Stimulus audio of a dataset folder: find ``stimuli/songNN.<ext>`` and read it as mono float32.

Both the replay (which plays a dataset) and the live decoder (which scores decoded frames against the
true stimulus) need the song audio of an NMED-T-layout folder (docs/design.md, "NMED-T layout"). The
lookup lives here, at the bottom of the import graph, so neither has to import the other.

Example
-------
>>> stimuli = StimulusFolder("/data/nmedt", sfreq=22050)          # doctest: +SKIP
>>> stimuli.stimulus_path(21)                                       # doctest: +SKIP
PosixPath('/data/nmedt/stimuli/song21.wav')
>>> stimuli.load_stimulus(21).shape                                 # doctest: +SKIP
(5316608,)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from eegmusic.stream.errors import DataFormatError, detail, missing, require_readable, utf8

STIMULUS_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
"""Stimulus file types looked for, in this order, as ``stimuli/songNN<ext>``."""

SILENT_PEAK = 1e-4
"""Audio whose largest absolute sample is below this (full scale 1, so -80 dBFS) is silent: no spectrum to
learn, decode or vocode (about three steps of a 16-bit file; a float file of 1e-40 is denormal noise)."""

STORED_PEAK = 0.99
"""Peak that audio louder than full scale is scaled to before it is written (``simulate --music``'s excerpt,
``vocode``'s input): just inside what a 16-bit WAV holds."""

MAX_PEAK = 1e3
"""Largest absolute sample (full scale 1) read as audio: +60 dBFS. A float file may peak above full scale (a
mix at 1.5 is common), never a thousand times over: such samples are damaged, or integer values written as
float. Below it, a spectrum's power stays far inside float32 (one sample of 1e20 squared to inf, and every
feature and metric became NaN)."""


def within_full_scale(audio: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``audio`` scaled to peak at :data:`STORED_PEAK` where it peaks above full scale (as is otherwise).

    Returns
    -------
    audio : ndarray, float32
        The audio to use (a scaled copy, or ``audio`` itself).
    peak : float
        Its largest absolute sample before scaling.
    factor : float
        The gain applied (1.0: none); the caller says why it scaled, in its own words.
    """
    peak = float(np.max(np.abs(audio)))
    if not peak > 1.0:
        return audio, peak, 1.0
    factor = STORED_PEAK / peak
    return (audio * factor).astype(np.float32), peak, factor


def read_audio(path, *, sfreq: int, start_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Read an audio file (or a span of it) as mono float32, resampled to ``sfreq`` only if needed.

    A span is decoded from a little before its start to a little after its end, not from the whole
    file. The margin is wider than the resampling filter and starts on one of its phase boundaries, so
    the span holds exactly the samples that resampling the whole file and slicing it would give.

    Parameters
    ----------
    path : str or Path
        A wav, flac, ogg or mp3 file at any sample rate.
    sfreq : int
        Output rate in Hz.
    start_s : float
        Where the span starts in the file, in seconds.
    seconds : float, optional
        The span's length in seconds (default: to the end of the file). The caller checks that the
        file is long enough (:func:`eegmusic.replay.music.check_excerpt`); a span past the end is cut
        short.

    Returns
    -------
    audio : ndarray, shape (n_samples,), float32

    Raises
    ------
    DataFormatError
        If the file is missing, cannot be decoded, holds no samples, NaN/Inf, or samples far above full
        scale (:func:`check_peak`).
    """
    import soundfile

    path = check_audio_file(path)
    try:
        with decoder_notes_aside(path):   # mpg123 speaks while it opens (parses) a file
            file = soundfile.SoundFile(str(path))
        with file:
            file_sfreq, n_frames = int(file.samplerate), int(file.frames)
            problem = _rate_problem(path, file_sfreq)
            if problem:
                raise DataFormatError(problem)
            up, down, first, stop, keep = _span(file_sfreq, n_frames, int(sfreq), start_s, seconds)
            if first:
                file.seek(first)
            audio = file.read(max(0, stop - first), dtype="float32", always_2d=True)
    except DataFormatError:
        raise
    except Exception as error:  # libsndfile reads wav, flac, ogg and mp3
        raise DataFormatError(
            f"{path}: unreadable audio ({type(error).__name__}: {decoder_words(error, path)}); convert it to "
            "wav or flac"
        ) from error
    audio = downmix(audio)
    if audio.size == 0:
        raise DataFormatError(f"{path}: audio file holds no samples; replace it with the song's audio")
    _warn_if_truncated(path)
    if not np.all(np.isfinite(audio)):
        raise DataFormatError(_nonfinite_message(path, int(np.sum(~np.isfinite(audio)))))
    check_peak(audio, path)
    if up != down:
        from scipy.signal import resample_poly

        audio = resample_poly(audio, up, down).astype(np.float32)
    return audio[keep]


SHORT_SLACK_S = 1.0
"""A stimulus may be this much shorter than its EEG (trailing samples) without being short (training's
stimulus check, and ``info``)."""

AUDIO_RATES_HZ = (1000, 768000)
"""Sample rates :func:`read_audio` takes. A header damaged to say 1 Hz had the resampler ask for 36 GiB
(a MemoryError traceback, or from ``train`` advice to lower --batch-size)."""


def wav_truncation(path: str | Path) -> tuple[float, float] | None:
    """``(declared_s, held_s)`` of a WAV file whose data chunk declares more audio than the file holds; None
    for a whole WAV, a streamed one (size 0 or 0xFFFFFFFF: never filled in) and any other format.

    libsndfile reads such a file's samples up to its end without a word, so a cut-off copy or download was
    read as a shorter recording. Only the RIFF chunk headers are read.
    """
    import struct

    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        size, position, byte_rate = path.stat().st_size, 12, 0
        while position + 8 <= size:
            handle.seek(position)
            chunk, n_bytes = struct.unpack(f"{order}4sI", handle.read(8))
            if chunk == b"fmt " and n_bytes >= 12:
                byte_rate = struct.unpack(f"{order}I", handle.read(12)[8:12])[0]
            if chunk == b"data":
                held = size - position - 8
                if n_bytes in (0, 0xFFFFFFFF) or n_bytes <= held or not byte_rate:
                    return None
                return n_bytes / byte_rate, held / byte_rate
            position += 8 + n_bytes + (n_bytes & 1)
    return None


_TRUNCATION_SAID: set[tuple[str, int, int]] = set()
"""Files :func:`_warn_if_truncated` has warned of (path, size, mtime): once each, not on every read."""


def _warn_if_truncated(path: Path) -> None:
    """Warn once that a WAV file holds less audio than its header declares (:func:`wav_truncation`)."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key in _TRUNCATION_SAID or (cut := wav_truncation(path)) is None:
            return
    except OSError:   # read a moment ago: whatever changed since, the samples were read
        return
    _TRUNCATION_SAID.add(key)
    logger.warning("%s: its header declares %.2f s of audio but the file holds %.2f s (a cut-off copy or "
                   "download?); reading the %.2f s it holds: copy the whole file again if that is wrong",
                   path, cut[0], cut[1], cut[1])


def _rate_problem(path, rate: int) -> str | None:
    """Why a file's sample rate cannot be music's, in :func:`read_audio`'s words; None when it can."""
    low, high = AUDIO_RATES_HZ
    if low <= rate <= high:
        return None
    return (f"{path}: audio at {rate} Hz, which no recording uses (eegmusic reads {low}-{high} Hz): its "
            "header is damaged; replace the file or convert it (e.g. to 44100 Hz)")


def from_start(audio: np.ndarray, start_s: float, sfreq: float) -> np.ndarray:
    """``audio`` from second ``start_s`` on, as a copy: a negative start pads the front with silence.

    A play of a dataset hears its audio file from ``start_s`` at its first EEG sample (calibrate times a
    track's start, so the EEG may begin before the music); this puts audio sample 0 at that EEG sample.
    """
    start = int(round(float(start_s) * sfreq))
    if start >= 0:
        return audio[start:].copy()
    return np.concatenate([np.zeros(-start, dtype=audio.dtype), audio])


PAIRWISE_FROM = 8
"""Channels from which numpy's sum along an axis no longer adds left to right (its unrolled partial sums)."""


def downmix(frames: np.ndarray) -> np.ndarray:
    """Mono float32 of ``frames`` (shape (n_frames, n_channels)): the channels' mean, the same bits as
    ``frames.mean(axis=1)``.

    numpy reduces a short axis element by element: 0.18 s for a 5-minute stereo track at 44.1 kHz. Below
    :data:`PAIRWISE_FROM` channels it adds them left to right, as the loop here does column by column
    (0.03 s); from there on it sums in several partial sums, so the mean itself is taken.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.shape[1] >= PAIRWISE_FROM:
        with np.errstate(over="ignore"):   # channels near 3e38 sum to inf: read_audio refuses it as Inf
            return frames.mean(axis=1)
    mono = frames[:, 0].copy()
    with np.errstate(over="ignore"):
        for channel in range(1, frames.shape[1]):
            mono += frames[:, channel]
    mono /= np.float32(frames.shape[1])
    return mono


_RESAMPLE_MARGIN_S = 0.5
"""Decoded on each side of a span: far wider than ``resample_poly``'s filter (about 20 input samples)."""


def _span(file_sfreq: int, n_frames: int, sfreq: int, start_s: float, seconds: float | None):
    """The resampling ratio, the file frames to decode for a span, and the output samples to keep.

    ``resample_poly`` maps output sample ``j`` to input time ``j * down / up``; decoding from a frame
    that is a multiple of ``down`` keeps that grid, shifted by a whole number of output samples. At
    the same rate (``up == down == 1``) the margin is simply decoded and dropped.
    """
    from math import ceil, gcd

    g = gcd(sfreq, file_sfreq)
    up, down = sfreq // g, file_sfreq // g
    first_out = int(round(start_s * sfreq))
    end_out = None if seconds is None else int(round((start_s + seconds) * sfreq))
    margin = ceil(_RESAMPLE_MARGIN_S * file_sfreq / down)  # in blocks of `down` frames
    block = max(0, first_out // up - margin)
    stop = n_frames if end_out is None else min(n_frames, (-(-end_out // up) + margin) * down)
    shift = block * up  # output samples before the first one decoded
    keep = slice(first_out - shift, None if end_out is None else end_out - shift)
    return up, down, min(block * down, n_frames), stop, keep


class StimulusFolder:
    """The ``stimuli/`` sub-folder of a dataset folder.

    Parameters
    ----------
    path : str or Path
        The dataset folder (the one holding ``songNN_Imputed.mat`` and ``stimuli/``).
    sfreq : int
        Rate in Hz of the audio :meth:`load_stimulus` returns.
    """

    def __init__(self, path, *, sfreq: int) -> None:
        self.path = Path(path).expanduser()
        self.sfreq = int(sfreq)

    def stimulus_path(self, song_id: int) -> Path | None:
        """Return ``stimuli/songNN.<wav|flac|ogg|mp3>`` (first found), or None."""
        folder = self.path / "stimuli"
        for ext in STIMULUS_EXTENSIONS:
            candidate = folder / f"song{int(song_id)}{ext}"
            if candidate.is_file():
                return candidate
        return None

    def load_stimulus(self, song_id: int) -> np.ndarray:
        """Read a song's stimulus as mono float32 at :attr:`sfreq`.

        Returns
        -------
        audio : ndarray, shape (n_samples,), float32

        Raises
        ------
        DataFormatError
            If the stimulus file is missing, unreadable, or empty.
        """
        path = self.stimulus_path(song_id)
        if path is None:
            raise DataFormatError(
                f"{self.path / 'stimuli'}: no stimulus for song {int(song_id)}; put the audio there as "
                f"song{int(song_id)}.wav (or .flac/.ogg/.mp3, any sample rate)"
            )
        return read_audio(path, sfreq=self.sfreq)


logger = logging.getLogger(__name__)

_DECODER_NOTES = (b"Note: ", b"[src/libmpg123/")
"""How the lines libsndfile's mp3 decoder (mpg123) writes straight to the process's stderr begin."""


class _Aside:
    """Descriptor 2 set aside while any thread decodes an mp3: the first to enter points it at a temporary
    file, the last to leave puts it back (two threads each saving and restoring it would leave it on the
    first one's file)."""

    lock = threading.Lock()
    depth = 0
    saved: int | None = None
    capture = None


@contextlib.contextmanager
def decoder_notes_aside(path: str | Path) -> Iterator[None]:
    """Keep libsndfile's mp3 decoder from writing on the terminal while ``path`` is opened.

    mpg123 writes its notes on a damaged or non-mp3 file ("Note: Illegal Audio-MPEG-Header …", "Note:
    Trying to resync...") to file descriptor 2 itself, past Python, so a refused file printed three
    lines before the command's one-line error. For a ``.mp3`` file (libsndfile hands only those to
    mpg123; other files pass untouched) descriptor 2 goes to a temporary file for the duration; the
    decoder's lines are logged at DEBUG (``-v`` shows them), and anything else written meanwhile
    (another thread's log line) is written on to the real stderr afterwards, byte for byte.

    Descriptor 2 is the process's, so the callers hold it aside only while libsndfile opens (parses) a
    file, a few milliseconds, not while it decodes: a child process started in another thread meanwhile
    would keep the temporary file as its stderr. A glitch deep inside a good mp3 still prints its note.
    """
    if Path(path).suffix.lower() != ".mp3":
        yield
        return
    with _Aside.lock:
        if _Aside.depth == 0:
            _set_aside()
        _Aside.depth += 1
    try:
        yield
    finally:
        with _Aside.lock:
            _Aside.depth -= 1
            if _Aside.depth == 0 and _Aside.saved is not None:
                _put_back()


def _set_aside() -> None:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):   # no descriptor 2 to set aside: nothing would reach a terminal
        return
    try:
        capture = tempfile.TemporaryFile()
        os.dup2(capture.fileno(), 2)
    except OSError:   # no room for the file: the notes reach the terminal, as without this
        os.close(saved)
        return
    _Aside.saved, _Aside.capture = saved, capture


def _put_back() -> None:
    """Restore descriptor 2, log the decoder's lines written meanwhile and write the rest, byte for byte, to
    stderr."""
    saved, capture = _Aside.saved, _Aside.capture
    _Aside.saved = _Aside.capture = None
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    try:
        os.dup2(saved, 2)
    finally:
        os.close(saved)
        with capture:
            capture.seek(0)
            lines = capture.read().splitlines(keepends=True)
    notes = [line.strip().decode(errors="replace") for line in lines if line.startswith(_DECODER_NOTES)]
    others = b"".join(line for line in lines if not line.startswith(_DECODER_NOTES))
    if notes:
        logger.debug("audio decoder: %s", " ".join(notes))
    if others:
        os.write(2, others)


def decoder_words(error: BaseException, path: str | Path) -> str:
    """libsndfile's reason for a file it could not open, without its misleading part.

    For a regular file it cannot decode (random bytes, a cut-off mp3 header) libsndfile says "File does
    not exist or is not a regular file (possibly a pipe?)": said of a file that is there, it becomes
    what it means.
    """
    # the whole message: it quotes the path first, so detail's first 120 characters may cut the phrase off
    if "does not exist or is not a regular file" in str(error) and Path(path).is_file():
        return "libsndfile found no audio it can decode in it"
    return detail(error)


def check_audio_file(path: str | Path) -> Path:
    """Refuse a path that is no audio file to read, naming what it is instead; return it as a Path.

    Raises
    ------
    DataFormatError
        Missing, a folder (``dir.wav`` too), not a regular file (``/dev/null``, a pipe), or empty.
    AccessError
        A file this user may not read.
    """
    path = Path(path)
    if not path.exists():
        problem = f"audio file {missing(path)}; check the path"
    elif path.is_dir():
        problem = "is a folder, not an audio file; name a file in it"
    elif not path.is_file():
        problem = "is not a regular file (a device, pipe or socket); name an audio file"
    elif path.stat().st_size == 0:
        problem = "is empty (0 bytes); pass the audio file itself"
    else:
        check_name_opens(path)
        require_readable(path)   # else the decoder calls a file it may not open undecodable
        return path
    raise DataFormatError(f"{path}: {problem} (wav, flac, ogg or mp3)")


def check_name_opens(path: str | Path) -> None:
    """Refuse an audio file whose name libsndfile cannot open (it takes paths as UTF-8): such a file was
    reported as "cannot be decoded as audio", with a fix (another format) that could not help."""
    if not utf8(str(path)):
        raise DataFormatError(f"{path}: its name holds bytes that are not UTF-8 (from a system with another "
                              f"encoding), which the audio library cannot open; rename the file")


def check_peak(audio: np.ndarray, path: str | Path) -> float:
    """Refuse audio peaking above :data:`MAX_PEAK` in one line naming ``path``; return its peak.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
        Finite samples, full scale 1.
    path : str or Path
        The file they came from (named in the message).

    Raises
    ------
    DataFormatError
        A peak above :data:`MAX_PEAK`.
    """
    peak = float(np.max(np.abs(audio))) if np.size(audio) else 0.0
    if peak > MAX_PEAK:
        raise DataFormatError(_peak_message(path, peak))
    return peak


def _nonfinite_message(path: str | Path, count: int) -> str:
    return f"{path}: audio holds {count} NaN/Inf samples; export the audio again"


def _peak_message(path: str | Path, peak: float) -> str:
    return (f"{path}: audio peaks at {peak:.3g} times full scale (more than {MAX_PEAK:g}): damaged samples, "
            "or integer sample values stored as float; export the audio again with samples within ±1")


def is_silent(audio: np.ndarray) -> bool:
    """Whether audio is silent: empty, or no sample reaches :data:`SILENT_PEAK`.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
        Full scale 1.
    """
    return np.size(audio) == 0 or not float(np.max(np.abs(audio))) >= SILENT_PEAK


def sample_problem(path: str | Path) -> str | None:
    """What training would refuse in a file's samples, found without decoding it whole: a sample rate no
    recording uses (:data:`AUDIO_RATES_HZ`), NaN/Inf samples or a peak above :data:`MAX_PEAK` (as
    :func:`read_audio` does), or silence (as training's stimulus check does: no sample reaches
    :data:`SILENT_PEAK`), in their words; None for sound samples. Read in blocks at the file's own rate,
    mixed to mono as :func:`read_audio` mixes them.

    ``eegmusic info`` reads only the audio's header for its length, so a stimulus full of NaN, one of 1e30
    (integers stored as float) or one of zeros passed there while ``train`` refused it.
    """
    import soundfile

    with decoder_notes_aside(path):
        file = soundfile.SoundFile(str(path))
    with file:
        rate = _rate_problem(path, int(file.samplerate))
        if rate:
            return rate
        bad, peak = 0, 0.0
        for block in file.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
            mono = downmix(block)
            finite = np.isfinite(mono)
            bad += int(mono.size - np.count_nonzero(finite))
            if finite.any():
                peak = max(peak, float(np.max(np.abs(mono[finite]))))
    if bad:
        return _nonfinite_message(path, bad)
    if peak > MAX_PEAK:
        return _peak_message(path, peak)
    if not peak >= SILENT_PEAK:
        return (f"{path}: the audio is silent (no sample reaches {SILENT_PEAK:g} of full scale), and "
                "training refuses a silent stimulus; replace it with the music that was played")
    return None


def audio_inside(path: str, root: Path) -> Path | None:
    """``path`` with its links resolved, when it is an audio file (wav, flac, ogg, mp3) that really lies
    inside ``root``; else None. ``path`` comes from the network (a stream description, a marker): a link
    inside ``root`` to a file outside it is outside, as are ``..`` and anything that is no audio file."""
    try:
        real = Path(path).resolve(strict=True)
        base = Path(root).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):   # missing, a link loop, a NUL byte
        return None
    if real.suffix.lower() not in STIMULUS_EXTENSIONS or base not in real.parents or not real.is_file():
        return None
    return real
