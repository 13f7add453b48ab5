"""The audio sink contract and the sinks that need no sound device: a WAV file, or nowhere.

Every sink takes float audio at 22050 Hz mono in chunks (``write``), and guarantees that what
reaches a device or file is finite and within [-1, 1]: anything else is sanitised (NaN/inf → 0,
beyond ±1 → clipped) and counted. The one exception is a float WAV opened with ``clip=False``: the
recording of what was decoded (``decode --record``) keeps samples beyond ±1, since the raw vocoder
output exceeds full scale before the player's limiter and a clipped recording would lose it.
``counters()`` reports ``written``, ``sanitised``, ``underruns`` and ``dropped`` samples or events,
``output_latency_s`` how long a written sample takes to be heard.

- :class:`AudioSink` is the contract the live pipeline and the dashboard's volume wrapper rely on;
- :class:`WavSink` writes a WAV file incrementally, header updated on every write, so the file is
  complete and readable even if the process is killed;
- :class:`NullSink` only counts (headless runs, benchmarks).

The sound-device sink is :class:`decoder.audio.SoundDeviceSink`; :mod:`decoder.audio` also
re-exports everything here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
from eegmusic.decoder.melspec import AUDIO_SFREQ
from eegmusic.stream.errors import AudioError

__all__ = ["AudioSink", "NullSink", "WavSink", "sanitise"]

log = logging.getLogger(__name__)

_SFC_SET_UPDATE_HEADER_AUTO = 0x1061
"""libsndfile command: rewrite the file header after every write (sndfile.h)."""


class AudioSink(Protocol):
    """Where the live pipeline writes decoded audio (22050 Hz mono float32)."""

    def write(self, samples: np.ndarray, *, block: bool = True) -> int:
        """Queue ``samples`` (shape (n_samples,)); return how many were accepted.

        With ``block=False`` the call never waits: what does not fit is dropped and counted.
        """

    @property
    def queued_s(self) -> float:
        """Seconds of audio written but not yet handed to the device (0 for files)."""

    @property
    def output_latency_s(self) -> float:
        """Seconds from handing a sample to the device until it is heard (0 for files)."""

    @property
    def plays_live(self) -> bool:
        """True when a device consumes the audio in real time (so a cushion ahead of it matters)."""

    def counters(self) -> dict[str, int]:
        """At least ``written``, ``sanitised``, ``underruns`` and ``dropped``."""

    def close(self) -> None:
        """Finish and release the output."""


def sanitise(samples: np.ndarray, *, clip: bool = True) -> tuple[np.ndarray, int]:
    """Return finite float32 samples within [-1, 1] and how many had to be changed.

    Parameters
    ----------
    samples : array_like, shape (n_samples,)
    clip : bool
        False: only non-finite samples are changed (samples beyond ±1 are kept).

    Returns
    -------
    clean : ndarray, shape (n_samples,), float32
        A new array (the input is never modified).
    n_changed : int
        Samples that were non-finite (set to 0) or beyond ±1 (clipped).
    """
    clean = np.array(samples, dtype=np.float32, copy=True).reshape(-1)
    finite = np.isfinite(clean)
    n_changed = int(clean.size - np.count_nonzero(finite))
    if n_changed:
        clean[~finite] = 0.0
    if not clip:
        return clean, n_changed
    over = np.abs(clean) > 1.0
    n_over = int(np.count_nonzero(over))
    if n_over:
        np.clip(clean, -1.0, 1.0, out=clean)
    return clean, n_changed + n_over


class _Sink:
    """Counters and sanitising shared by every sink."""

    def __init__(self, *, clip: bool = True) -> None:
        self._clip = clip
        self._written = 0
        self._sanitised = 0
        self._dropped = 0
        self._closed = False

    def _clean(self, samples: np.ndarray) -> np.ndarray:
        if self._closed:
            raise AudioError(f"{type(self).__name__} is closed; open a new sink to write more audio")
        clean, n_changed = sanitise(samples, clip=self._clip)
        if n_changed:
            if self._sanitised == 0:
                n_nonfinite = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
                log.warning("%s: %d audio samples sanitised (%d non-finite set to 0, %d beyond ±1 clipped; "
                            "the summary gives the total)", self.describe(), n_changed, n_nonfinite,
                            n_changed - n_nonfinite)
            self._sanitised += n_changed
        return clean

    def describe(self) -> str:
        """Where this sink's audio goes, for messages (the class name unless a sink says more)."""
        return type(self).__name__

    @property
    def queued_s(self) -> float:
        """Seconds of audio waiting ahead of newly written samples (none: written at once)."""
        return 0.0

    @property
    def output_latency_s(self) -> float:
        """Seconds from a write until the sample is heard (none for a file or nothing)."""
        return 0.0

    @property
    def plays_live(self) -> bool:
        """False: a file or nothing takes every sample at once."""
        return False

    def counters(self) -> dict[str, int]:
        """Samples ``written`` and ``sanitised``, ``underruns`` (callbacks short of data), ``dropped``
        samples (ring full)."""
        return {"written": self._written, "sanitised": self._sanitised, "underruns": 0,
                "dropped": self._dropped}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True


class NullSink(_Sink):
    """A sink that discards audio (after sanitising and counting it)."""

    def describe(self) -> str:
        """``decode --no-audio``'s sound, which nothing plays (the warning named the class, NullSink)."""
        return "decoded sound (played nowhere)"

    def write(self, samples: np.ndarray, *, block: bool = True) -> int:
        """Count ``samples`` (shape (n_samples,)); return how many were accepted (never waits)."""
        clean = self._clean(samples)
        self._written += clean.size
        return clean.size


def why_not_written(path: Path, error: BaseException) -> str:
    """Why a write failed, in words: libsndfile says only "System error." when the disk is full."""
    import shutil

    from eegmusic.stream.errors import detail

    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return f"{detail(error)}; the disk may be full"
    if free < 1 << 20:
        said = "libsndfile: " if type(error).__name__ == "LibsndfileError" else ""
        return f"the disk is full: {free // 1024} KiB free; {said}{detail(error)}"
    return detail(error)


class WavSink(_Sink):
    """Write audio to a WAV file as it comes; the file stays readable if the process is killed.

    Parameters
    ----------
    path : str or Path
        The WAV file to create (its folder must exist).
    samplerate : int
        Samples per second (default 22050).
    subtype : str
        libsndfile subtype, ``"PCM_16"`` (default, readable everywhere) or ``"FLOAT"``.
    clip : bool
        False keeps samples beyond ±1 as they come (only non-finite ones are sanitised); needs
        ``subtype="FLOAT"``, the one subtype that can store them.
    shown_as : str or Path, optional
        The name messages give the file: the output a temporary ``path`` is renamed to when its writer
        is done (default ``path``).
    part_kept : bool
        The caller renames a temporary ``path`` to ``shown_as`` also when a write fails (the demo keeps
        what was decoded), so a failed write's message says that what was written stays readable, as
        it does for a sink writing its file itself; without it the caller's removal is assumed (vocode).
    """

    def __init__(self, path: str | Path, *, samplerate: int = AUDIO_SFREQ, subtype: str = "PCM_16",
                 clip: bool = True, shown_as: str | Path | None = None, part_kept: bool = False) -> None:
        super().__init__(clip=clip)
        import soundfile

        if not clip and subtype != "FLOAT":
            raise AudioError(f"WAV subtype {subtype} cannot store samples beyond ±1; pass subtype='FLOAT' "
                             f"or clip=True")
        self.path = Path(path)
        self.shown = Path(shown_as) if shown_as is not None else self.path
        self._part_kept = part_kept or self.shown == self.path
        if not self.path.parent.is_dir():
            raise AudioError(f"cannot write WAV file {self.path}: folder {self.path.parent} does not exist; "
                             f"create it or choose another --wav path")
        try:
            self._file = soundfile.SoundFile(self.path, "w", samplerate=int(samplerate), channels=1,
                                             format="WAV", subtype=subtype)
        except (soundfile.LibsndfileError, OSError, ValueError, TypeError) as error:
            raise AudioError(f"cannot write WAV file {self.path}: {error}; choose a writable --wav path "
                             f"(samplerate {samplerate}, subtype {subtype})") from None
        self._update_header_always()

    def describe(self) -> str:
        return f"WAV file {self.shown}"

    def _update_header_always(self) -> None:
        # the header's lengths are rewritten after every write: a killed process leaves a valid file
        try:
            from soundfile import _ffi, _snd

            _snd.sf_command(self._file._file, _SFC_SET_UPDATE_HEADER_AUTO, _ffi.NULL, 1)
        except (ImportError, AttributeError):  # libsndfile readers still accept a stale length
            log.debug("soundfile without sf_command; the WAV header is written on close only")

    def write(self, samples: np.ndarray, *, block: bool = True) -> int:
        """Append ``samples`` (shape (n_samples,)) and flush them to disk; return how many.

        ``block`` is accepted for :class:`AudioSink`; a file write takes what it takes.
        """
        import soundfile

        clean = self._clean(samples)
        try:
            self._file.write(clean)
            self._file.flush()
        except (soundfile.LibsndfileError, OSError) as error:  # full disk, file system gone
            why = why_not_written(self.path, error)
            # true of the file itself, and of a temporary one (``shown_as``) its caller keeps (the demo);
            # vocode removes its temporary file on a failure
            kept = "; what was written before stays readable:" if self._part_kept else ";"
            raise AudioError(f"cannot write WAV file {self.shown} ({why}){kept} free space or choose another "
                             "path") from None
        self._written += clean.size
        return clean.size

    def close(self) -> None:
        if not self._closed:
            import soundfile

            try:
                self._file.close()
            except (soundfile.LibsndfileError, OSError) as error:
                log.warning("closing WAV file %s: %s (the disk may be full)", self.shown, error)
        super().close()
