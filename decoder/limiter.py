"""Listening comfort: slow automatic gain, then a look-ahead-free peak limiter, on the played sound.

Decoded music comes out at whatever level the model predicts: quiet for a while, then a burst well
over full scale. :class:`OutputLevel` makes it comfortable without adding delay:

1. **Automatic gain (slow).** The loudness is the mean power over the last few seconds (a one-pole
   average, time constant ``agc_time_s``); the gain moves it towards ``target_dbfs``, bounded to
   ``+max_boost_db`` / ``-max_cut_db``, and holds while the sound is below ``gate_dbfs`` (silence is
   never pumped up to the target). It changes along a linear ramp inside each block, so it never
   steps.
2. **Peak limiter (no look-ahead).** An envelope that follows each peak at once (instant attack)
   and falls back exponentially (``release_s``); the gain is ``ceiling / envelope`` wherever the
   envelope is above the ceiling. Because the envelope is never below the sample's own magnitude,
   no output sample exceeds the ceiling, whatever comes in; because the gain only scales samples,
   the output never jumps more from one sample to the next than a full-scale sine of the same
   content would (tests/decoder/test_limiter.py bounds it).

The loop runs in numba without the GIL and allocates only the output block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from eegmusic.decoder.audio import EDGE_RISE
from eegmusic.stream.errors import ConfigError

_GAIN_GLIDE_S = 0.5
"""Time constant with which the automatic gain follows what the loudness average asks for (s)."""


@dataclass(frozen=True)
class LevelSettings:
    """How loud, how fast.

    Attributes
    ----------
    target_dbfs : float
        Loudness the automatic gain aims at (RMS, dB re full scale).
    ceiling_dbfs : float
        No output sample exceeds this peak (dB re full scale, < 0).
    release_s : float
        Limiter release time constant (s).
    agc_time_s : float
        Time constant of the loudness average the automatic gain follows (s).
    max_boost_db, max_cut_db : float
        Bounds of the automatic gain.
    gate_dbfs : float
        Below this loudness the automatic gain holds still.
    agc : bool
        Whether the automatic gain runs at all (the limiter always does).
    """

    target_dbfs: float = -20.0
    ceiling_dbfs: float = -1.0
    release_s: float = 0.15
    agc_time_s: float = 3.0
    max_boost_db: float = 12.0
    max_cut_db: float = 30.0
    gate_dbfs: float = -55.0
    agc: bool = True

    def check(self) -> None:
        """Raise ConfigError on settings that cannot work."""
        if not self.ceiling_dbfs < 0.0:
            raise ConfigError(f"limiter ceiling {self.ceiling_dbfs} dBFS must be below 0 dBFS; pass e.g. -1")
        if not self.target_dbfs < self.ceiling_dbfs:
            raise ConfigError(f"loudness target {self.target_dbfs} dBFS must be below the ceiling "
                              f"{self.ceiling_dbfs} dBFS; pass e.g. -20")
        for name in ("release_s", "agc_time_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0 s, got {getattr(self, name)}")
        if self.max_boost_db < 0 or self.max_cut_db < 0:
            raise ConfigError("max_boost_db and max_cut_db are magnitudes in dB (>= 0)")


@numba.njit(cache=True, nogil=True)
def _limit(samples, out, gain_start, gain_end, envelope, release, ceiling):
    """Ramp the gain, then limit; return (final envelope, samples whose gain was reduced, input peak)."""
    n = samples.shape[0]
    limited = 0
    peak = 0.0
    step = (gain_end - gain_start) / n if n else 0.0
    for i in range(n):
        x = samples[i] * (gain_start + step * (i + 1))
        a = abs(x)
        if a > peak:
            peak = a
        envelope *= release
        if a > envelope:
            envelope = a
        if envelope > ceiling:
            out[i] = x * (ceiling / envelope)
            limited += 1
        else:
            out[i] = x
    return envelope, limited, peak


class OutputLevel:
    """Automatic gain and peak limiter over consecutive blocks of one mono stream.

    Parameters
    ----------
    sfreq : float
        Sample rate (Hz).
    settings : LevelSettings, optional

    Attributes
    ----------
    gain_db : float
        The automatic gain now (dB).
    limited_samples : int
        Samples whose level the limiter reduced (counted, never clipped).
    peak_in : float
        Largest magnitude that came in (after the automatic gain).

    Examples
    --------
    >>> level = OutputLevel(22050)
    >>> out = level.process(np.full(512, 3.0, dtype=np.float32))
    >>> float(np.abs(out).max()) <= 10 ** (-1 / 20)
    True
    """

    def __init__(self, sfreq: float, settings: LevelSettings | None = None) -> None:
        self.settings = settings or LevelSettings()
        self.settings.check()
        self.sfreq = float(sfreq)
        s = self.settings
        self._ceiling = 10.0 ** (s.ceiling_dbfs / 20.0)
        self._release = float(np.exp(-1.0 / (s.release_s * self.sfreq)))
        self._target_power = 10.0 ** (s.target_dbfs / 10.0)
        self._gate_power = 10.0 ** (s.gate_dbfs / 10.0)
        self._min_gain = 10.0 ** (-s.max_cut_db / 20.0)
        self._max_gain = 10.0 ** (s.max_boost_db / 20.0)
        self.reset()
        # compiled (or loaded from numba's cache, 0.3-0.4 s) here, before the sound device starts: at the
        # first block it delayed the first sound by that much, behind a device already running
        _limit(np.zeros(1), np.empty(1, np.float32), 1.0, 1.0, 0.0, self._release, self._ceiling)

    def reset(self) -> None:
        """Back to unity gain, no envelope, no loudness history (counters stay)."""
        self._gain = 1.0
        self._envelope = 0.0
        self._power = None
        self.limited_samples = getattr(self, "limited_samples", 0)
        self.peak_in = getattr(self, "peak_in", 0.0)

    @property
    def gain_db(self) -> float:
        return float(20.0 * np.log10(self._gain))

    def _next_gain(self, samples: np.ndarray) -> float:
        if not self.settings.agc or samples.size == 0:
            return self._gain
        block_power = float(np.mean(np.square(samples, dtype=np.float64)))
        if self._power is None:
            self._power = block_power
        else:
            weight = float(np.exp(-samples.size / (self.settings.agc_time_s * self.sfreq)))
            self._power = weight * self._power + (1.0 - weight) * block_power
        if self._power < self._gate_power:
            return self._gain  # silence or near it: hold, never pump the noise floor up
        wanted = float(np.sqrt(self._target_power / self._power))
        wanted = min(max(wanted, self._min_gain), self._max_gain)
        # glide there (the loudness average is already slow; this only rounds off its first steps)
        weight = float(np.exp(-samples.size / (_GAIN_GLIDE_S * self.sfreq)))
        return weight * self._gain + (1.0 - weight) * wanted

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Level one block.

        Parameters
        ----------
        samples : ndarray, shape (n,)
            The next samples of the stream (any float dtype; non-finite values play as 0).

        Returns
        -------
        out : ndarray, shape (n,), float32
            The same samples, gain-adjusted and limited: ``|out| <= 10**(ceiling_dbfs / 20)``.
        """
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(x)):
            x = np.where(np.isfinite(x), x, 0.0)
        gain = self._next_gain(x)
        out = np.empty(x.size, dtype=np.float32)
        self._envelope, limited, peak = _limit(x, out, self._gain, gain, self._envelope, self._release,
                                               self._ceiling)
        self._gain = gain
        self.limited_samples += int(limited)
        self.peak_in = max(self.peak_in, float(peak))
        return out

    def counters(self) -> dict:
        """What the level stage did: ``limited_samples``, ``peak_in_dbfs``, ``gain_db``."""
        return {"limited_samples": self.limited_samples,
                "peak_in_dbfs": round(float(20.0 * np.log10(max(self.peak_in, 1e-12))), 2),
                "gain_db": round(self.gain_db, 2)}


def _volume(gain: float) -> np.float32:
    """A listener's volume as the factor applied: within 0…1."""
    return np.float32(min(max(float(gain), 0.0), 1.0))


class LevelledSink:
    """An audio sink that levels (:class:`OutputLevel`) and scales by a volume before the wrapped one plays.

    The order is automatic gain, limiter, then ``gain`` (the listener's volume, 0…1, 0 = mute), so
    the volume never pushes a sample past the ceiling. ``gain`` is a plain attribute: a dashboard
    thread or a snapshot publisher sets it, the output thread reads it once per block (no lock).

    Parameters
    ----------
    sink : decoder.audio.AudioSink
        Where the levelled samples go.
    level : OutputLevel, optional
        The level stage (default: :class:`OutputLevel` at 22050 Hz with default settings).
    gain : float
        Initial volume.
    """

    def __init__(self, sink, level: OutputLevel | None = None, gain: float = 1.0) -> None:
        from eegmusic.decoder.melspec import AUDIO_SFREQ

        self.sink = sink
        self.level = level if level is not None else OutputLevel(AUDIO_SFREQ)
        self.gain = float(gain)
        self._played_gain = _volume(self.gain)   # the volume the last block ended at

    def write(self, samples: np.ndarray, *, block: bool = True) -> int:
        """Level, scale and play ``samples`` (shape (n,)); return what the wrapped sink accepted.

        A new volume is reached over the block's first :data:`decoder.audio.EDGE_RAMP_SAMPLES` samples
        (2.9 ms): applied at once, a mute or a slider's step cut the sound by a step, a click.
        """
        gain = _volume(self.gain)  # read once: another thread may change it meanwhile
        out = self.level.process(samples)
        was, self._played_gain = self._played_gain, gain
        if gain != was:
            k = min(len(out), len(EDGE_RISE))
            out[:k] *= was + (gain - was) * EDGE_RISE[:k]
            out[k:] *= gain
        elif gain != 1.0:
            out *= gain
        return self.sink.write(out, block=block)

    @property
    def queued_s(self) -> float:
        return self.sink.queued_s

    @property
    def output_latency_s(self) -> float:
        return self.sink.output_latency_s

    @property
    def plays_live(self) -> bool:
        return self.sink.plays_live

    def counters(self) -> dict[str, int]:
        """The wrapped sink's counters plus ``limited_samples``."""
        return {**self.sink.counters(), "limited_samples": self.level.limited_samples}

    def close(self) -> None:
        self.sink.close()
