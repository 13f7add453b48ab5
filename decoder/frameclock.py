"""Turn overlapping window predictions into one gap-free, duplicate-free stream of frames.

Every decoded window covers one second of stimulus time, and successive windows overlap by all but
one hop. The frame clock (docs/design.md) fixes which frames each hop emits: global frame ``k`` sits at
``k * 512 / 22050`` s of stimulus time. A window whose last sample has model-sample index ``n_end``
(exclusive) ends at EEG time ``T = n_end / 125`` s; its 44 frames are the frames of the stimulus
segment ``[T - 1 - lag, T - lag)`` (``lag`` = the model's ``audio_lag_s``), framed as in training, so
its frame ``j`` sits at audio sample ``S + 512 j`` with ``S = round((T - 1 - lag) * 22050)``.

:class:`FrameClock` emits, at each hop, exactly the global frames that became available since the
previous hop: those with ``512 k <= S + 512 * 43`` not emitted before. Each gets the value of the
window frame nearest in time (at most 256 audio samples, 11.6 ms, away), so a live frame is always
one of the model's output frames, bit for bit. All arithmetic is in integers, so no frame is
duplicated or lost to rounding whatever the hop (0.1 s is 4.31 frame periods).

Optional smoothing averages each frame over every window that covered it up to ``smooth_frames``
frames after it first appeared; it adds exactly ``smooth_frames * 512 / 22050`` s of latency.

:class:`SampleClock` does the same for waveform models on the audio-sample grid, joining successive
windows with a short raised-cosine crossfade (which adds the crossfade length to the latency). A
model whose waveform is at another rate (``output.sfreq``) has each window resampled to 22050 Hz
first (:func:`waveform_resampling`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from eegmusic.decoder.melspec import AUDIO_SFREQ, FRAME_PERIOD_S, FRAMES_PER_WINDOW, HOP_LENGTH
from eegmusic.stream.spec import MODEL_SFREQ, WINDOW_SAMPLES

DEFAULT_HOP_FRAMES = 1
"""Default hop in mel frames (23.2 ms, one frame of 512 / 22050 s): the lowest hop, which keeps up.

Measured with ``eegmusic bench latency`` through PulseAudio on the 2-core machine shared with three
training runs (load 9-10), real-time scheduling on (:mod:`decoder.realtime`), device latency 30 ms,
45 s per hop, adjacent runs: 1 frame p50/p95/p99 112/150/162 ms with 1 dropped window in 1982,
2 frames 132/157/194 ms (hop wait alone is 21 ms longer at 2 frames). Before real-time scheduling
the two-frame hop had the steadier tail (1 frame at load 8: p99 201 ms, 37 underruns, 12 dropped
windows). The windows end right after the frame they complete (the windower's grid is on the frame
clock). ``decoder/cli_decode.py``'s ``--hop`` default follows this value.
"""

HOP_TOLERANCE_S = 5e-4
"""A hop within this of a whole number of frames counts as that number (``--hop 0.0464`` is 2)."""


def hop_frames(hop_s: float) -> int:
    """The whole number of mel frames a hop spans.

    Parameters
    ----------
    hop_s : float
        Seconds between windows; a whole number of frames (23.2 ms each) up to 1 s, within
        :data:`HOP_TOLERANCE_S`.

    Returns
    -------
    int
        Frames per hop, 1 … 43.

    Raises
    ------
    ConfigError
        A hop below one frame, above the 1-s window, or not a whole number of frames; the message
        names the nearest valid hops.
    """
    from eegmusic.stream.errors import ConfigError

    n = round(hop_s / FRAME_PERIOD_S)
    limit = FRAMES_PER_WINDOW - 1
    if hop_s < FRAME_PERIOD_S - HOP_TOLERANCE_S:
        raise ConfigError(f"hop {hop_s:g} s is below one mel frame ({FRAME_PERIOD_S * 1e3:.1f} ms); pass "
                          f"--hop {FRAME_PERIOD_S:.4f} or a whole multiple of it")
    if hop_s > limit * FRAME_PERIOD_S + HOP_TOLERANCE_S:
        raise ConfigError(f"hop {hop_s:g} s is longer than the 1-s window allows; pass --hop up to "
                          f"{limit * FRAME_PERIOD_S:.4f} ({limit} frames)")
    if abs(hop_s - n * FRAME_PERIOD_S) > HOP_TOLERANCE_S:
        lower, upper = max(1, int(hop_s // FRAME_PERIOD_S)), min(limit, int(hop_s // FRAME_PERIOD_S) + 1)
        raise ConfigError(f"hop {hop_s:g} s is not a whole number of mel frames "
                          f"({FRAME_PERIOD_S * 1e3:.1f} ms each); pass --hop "
                          f"{lower * FRAME_PERIOD_S:.4f} ({lower} frame{'s' * (lower != 1)}) or "
                          f"{upper * FRAME_PERIOD_S:.4f} ({upper})")
    return n


def segment_start_sample(n_end: int, *, lag_s: float = 0.0, sfreq: float = MODEL_SFREQ,
                         window_samples: int = WINDOW_SAMPLES, audio_sfreq: int = AUDIO_SFREQ) -> int:
    """Audio-sample index where a window's stimulus segment starts.

    Parameters
    ----------
    n_end : int
        Model-sample index one past the window's last sample.
    lag_s : float
        The model's ``audio_lag_s`` in seconds.

    Returns
    -------
    int
        ``round((n_end - window_samples) / sfreq * audio_sfreq - lag_s * audio_sfreq)``, exact (the
        same rounding as ``decoder.melspec.window_mel_db`` applies to the training target).
    """
    rate = Fraction(sfreq).limit_denominator(10**6)
    lag = Fraction(lag_s).limit_denominator(10**6)
    return round((Fraction(int(n_end) - window_samples) / rate - lag) * audio_sfreq)


@dataclass
class FrameEmission:
    """Frames emitted by one hop.

    Attributes
    ----------
    k0 : int
        Global index of the first frame (frame ``k0 + i`` is at ``(k0 + i) * 512 / 22050`` s).
    frames : ndarray, shape (n_mels, n_new), float32
        The new frames in time order (``n_new`` may be 0).
    window_frame : ndarray, shape (n_new,), int
        For each new frame, the index (0..43) of the window frame it came from (without smoothing).
    skipped : int
        Frames that no window covered (a gap in the stream longer than the window), not emitted.
    """

    k0: int
    frames: np.ndarray
    window_frame: np.ndarray
    skipped: int = 0

    @property
    def n_frames(self) -> int:
        """Number of frames emitted."""
        return self.frames.shape[1]


class FrameClock:
    """Emit each global frame once, in order, from overlapping window predictions.

    Parameters
    ----------
    lag_s : float
        The model's ``audio_lag_s``: the window ending at EEG time T covers [T-1-lag, T-lag).
    n_mels, n_frames : int
        Shape of one window prediction.
    smooth_frames : int
        0: each frame comes from the first window that has it (lowest latency). D > 0: each frame is
        the mean over every window covering it, emitted D frames later (adds D * 512 / 22050 s).
    initial_frames : int
        Frames the first window (and the first after a gap) emits: its last ones. Emitting all 44
        would put a second of audio into the output buffer at once, a second of latency for good.
    sfreq : float
        Model EEG rate in Hz.
    window_samples : int
        Window length in model samples.

    Examples
    --------
    >>> clock = FrameClock()
    >>> first = clock.push(125, np.zeros((128, 44), np.float32))
    >>> second = clock.push(125 + 12, np.zeros((128, 44), np.float32))   # a 96-ms hop
    >>> first.n_frames, second.k0 == first.k0 + first.n_frames
    (1, True)
    """

    def __init__(self, *, lag_s: float = 0.0, n_mels: int = 128, n_frames: int = FRAMES_PER_WINDOW,
                 smooth_frames: int = 0, initial_frames: int = 1, sfreq: float = MODEL_SFREQ,
                 window_samples: int = WINDOW_SAMPLES):
        if smooth_frames < 0 or smooth_frames >= n_frames:
            raise ValueError(f"smooth_frames must be in 0..{n_frames - 1}, got {smooth_frames}")
        if not 1 <= initial_frames <= n_frames:
            raise ValueError(f"initial_frames must be in 1..{n_frames}, got {initial_frames}")
        self.lag_s = float(lag_s)
        self.n_mels = int(n_mels)
        self.n_frames = int(n_frames)
        self.smooth_frames = int(smooth_frames)
        self.initial_frames = int(initial_frames)
        self.sfreq = float(sfreq)
        self.window_samples = int(window_samples)
        self._capacity = 2 * self.n_frames + 4
        self._sum = np.zeros((self.n_mels, self._capacity), dtype=np.float64)
        self._count = np.zeros(self._capacity, dtype=np.int64)
        self.reset()

    @property
    def added_latency_s(self) -> float:
        """Latency added by smoothing, in seconds (0 without smoothing)."""
        return self.smooth_frames * HOP_LENGTH / AUDIO_SFREQ

    def reset(self) -> None:
        """Forget every frame (a new stream or a restart): the next window starts afresh."""
        self.next_k: int | None = None    # next global frame to emit
        self._filled_to = None            # accumulators hold frames [next_k, _filled_to]
        self.last_n_end: int | None = None
        self.frames_emitted = 0
        self.frames_skipped = 0
        self._sum[:] = 0.0
        self._count[:] = 0

    def window_span(self, n_end: int) -> tuple[int, int, int]:
        """Global frames covered by a window.

        Returns
        -------
        start : int
            Audio sample of the window's frame 0.
        k_lo, k_hi : int
            First and last global frame inside the window's frame span.
        """
        start = segment_start_sample(n_end, lag_s=self.lag_s, sfreq=self.sfreq,
                                     window_samples=self.window_samples)
        k_lo = -((-start) // HOP_LENGTH)
        k_hi = (start + HOP_LENGTH * (self.n_frames - 1)) // HOP_LENGTH
        return start, k_lo, k_hi

    def push(self, n_end: int, frames: np.ndarray) -> FrameEmission:
        """Take one window prediction; return the frames that are new since the last push.

        Parameters
        ----------
        n_end : int
            Model-sample index one past the window's last sample (``sample_index + 125``).
        frames : ndarray, shape (n_mels, n_frames)
            The window's mel-dB prediction.

        Returns
        -------
        FrameEmission
        """
        start, k_lo, k_hi = self.window_span(n_end)
        skipped = 0
        if self.last_n_end is not None and n_end < self.last_n_end:
            self.reset()                   # the stream went back: a restarted source
        if self.next_k is not None and k_lo > self.next_k:
            skipped = k_hi - self.initial_frames + 1 - self.next_k   # no window covered them
            self.next_k = None
        if self.next_k is None:
            self.next_k = k_hi - self.initial_frames + 1
            self._filled_to = self.next_k - 1
            self._count[:] = 0
        self.last_n_end = int(n_end)
        skipped = max(skipped, 0)
        self.frames_skipped += skipped

        # Accumulate this window into every pending frame it covers.
        first = max(k_lo, self.next_k)
        if k_hi >= first:
            if k_hi > self._filled_to:
                fresh = np.arange(self._filled_to + 1, k_hi + 1) % self._capacity
                self._sum[:, fresh] = 0.0
                self._count[fresh] = 0
                self._filled_to = k_hi
            ks = np.arange(first, k_hi + 1)
            j = np.minimum((HOP_LENGTH * ks - start + HOP_LENGTH // 2) // HOP_LENGTH, self.n_frames - 1)
            slots = ks % self._capacity
            self._sum[:, slots] += frames[:, j]
            self._count[slots] += 1

        # Emit what is complete.
        last = k_hi - self.smooth_frames
        k0 = self.next_k
        if last < k0:
            return FrameEmission(k0, np.zeros((self.n_mels, 0), np.float32), np.zeros(0, np.int64), skipped)
        ks = np.arange(k0, last + 1)
        slots = ks % self._capacity
        out = (self._sum[:, slots] / self._count[slots]).astype(np.float32)
        window_frame = (HOP_LENGTH * ks - start + HOP_LENGTH // 2) // HOP_LENGTH
        self.next_k = last + 1
        self.frames_emitted += len(ks)
        return FrameEmission(k0, out, window_frame, skipped)


MAX_WAVEFORM_RATIO = 1000
"""Largest numerator or denominator of the ratio 22050 / ``output.sfreq`` the live decoder resamples by:
its polyphase filter has ``20 * max(up, down) + 1`` taps (8821 for 16000 Hz, 441/320), about 0.3 ms a
1-s window; a rate that needs more (22049.3 Hz) is no rate a model is exported at."""


def waveform_resampling(output_sfreq: float) -> tuple[int, int]:
    """``(up, down)`` taking a waveform model's rate to 22050 Hz (``22050 = output_sfreq * up / down``).

    Raises
    ------
    ValueError
        A rate that is no short ratio of 22050 Hz (see :data:`MAX_WAVEFORM_RATIO`).
    """
    rate = Fraction(float(output_sfreq)).limit_denominator(100)
    ratio = Fraction(AUDIO_SFREQ) / rate if rate > 0 else Fraction(0)
    if (rate <= 0 or abs(float(rate) - output_sfreq) > 1e-6 * output_sfreq
            or ratio.numerator > MAX_WAVEFORM_RATIO or ratio.denominator > MAX_WAVEFORM_RATIO):
        raise ValueError(f"{output_sfreq:g} Hz is no short ratio of {AUDIO_SFREQ} Hz")
    return ratio.numerator, ratio.denominator


class SampleClock:
    """Join overlapping waveform windows into one continuous signal, each sample emitted once.

    A waveform model's window ending at EEG time T gives the audio of [T-1-lag, T-lag). Each push
    emits the samples new since the last push, minus a short tail kept back to crossfade (raised
    cosine) into the next window, so joins do not click. The held-back tail adds
    ``crossfade / audio_sfreq`` s of latency.

    Parameters
    ----------
    lag_s : float
        The model's ``audio_lag_s``.
    n_samples : int
        Samples per window output, at ``output_sfreq`` (22050 for 1 s at 22050 Hz).
    crossfade : int
        Samples crossfaded between successive windows (at 22050 Hz).
    initial_samples : int
        Samples the first window (and the first after a gap) emits: its newest ones.
    output_sfreq : float
        The model's waveform rate (``output.sfreq``). Another than 22050 Hz: each window is resampled
        to 22050 Hz (polyphase, :func:`waveform_resampling`) before it is joined; the filter's edge
        effect, about 10 input samples, lies at the window's end, inside the crossfaded tail.

    Attributes
    ----------
    n_samples : int
        Samples per window at 22050 Hz, after any resampling.
    """

    def __init__(self, *, lag_s: float = 0.0, n_samples: int = AUDIO_SFREQ, crossfade: int = 256,
                 initial_samples: int = 2205, sfreq: float = MODEL_SFREQ,
                 window_samples: int = WINDOW_SAMPLES, output_sfreq: float = AUDIO_SFREQ):
        self._resampling = None
        if abs(output_sfreq - AUDIO_SFREQ) > 1e-6:
            from eegmusic.stream.resample import antialias_filter

            up, down = waveform_resampling(output_sfreq)
            # designed once, not per window; resample_poly applies the gain ``up`` itself
            self._resampling = (up, down, antialias_filter(up, down) / up)
            n_samples = -(-int(n_samples) * up // down)                 # resample_poly's output length
        if not 0 < crossfade < n_samples // 2:
            raise ValueError(f"crossfade must be in 1..{n_samples // 2 - 1}, got {crossfade}")
        self.lag_s = float(lag_s)
        self.n_samples = int(n_samples)
        self.crossfade = int(crossfade)
        self.initial_samples = int(min(max(initial_samples, 1), n_samples - crossfade))
        self.sfreq = float(sfreq)
        self.window_samples = int(window_samples)
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(self.crossfade) + 0.5) / self.crossfade)
        self._fade_in = ramp.astype(np.float32)
        self._fade_out = (1.0 - ramp).astype(np.float32)
        self._tail = np.zeros(self.crossfade, dtype=np.float32)
        self.samples_skipped = 0
        """Samples never emitted where the windows stopped overlapping (the ones behind a stall, and the
        tail the last window held back), over the clock's life: the pipeline reads it as the run's total,
        so a reset keeps it (:class:`FrameClock` counts per stream; the pipeline sums its emissions')."""
        self.reset()

    @property
    def added_latency_s(self) -> float:
        """Latency added by the crossfade tail, in seconds."""
        return self.crossfade / AUDIO_SFREQ

    def reset(self) -> None:
        """Forget the past (new stream or restart)."""
        self.next_sample: int | None = None   # first sample not yet emitted (tail starts here)
        self.last_n_end: int | None = None

    def push(self, n_end: int, audio: np.ndarray) -> tuple[int, np.ndarray]:
        """Take one window's waveform; return ``(first_sample_index, new_samples)``.

        Parameters
        ----------
        n_end : int
            Model-sample index one past the window's last sample.
        audio : ndarray, shape (n_samples,)

        Returns
        -------
        first : int
            Audio-sample index (stimulus time * 22050) of the first returned sample.
        samples : ndarray, shape (n_new,), float32
        """
        if self._resampling is not None:
            from scipy.signal import resample_poly

            up, down, taps = self._resampling
            audio = resample_poly(audio, up, down, window=taps)
        audio = np.asarray(audio, dtype=np.float32)
        start = segment_start_sample(n_end, lag_s=self.lag_s, sfreq=self.sfreq,
                                     window_samples=self.window_samples)
        end = start + self.n_samples
        if self.last_n_end is not None and n_end < self.last_n_end:
            self.reset()
        self.last_n_end = int(n_end)
        skipped_from = None
        if self.next_sample is not None and start > self.next_sample:   # no overlap: join afresh
            skipped_from, self.next_sample = self.next_sample, None
        if self.next_sample is None:
            first = end - self.crossfade - self.initial_samples
            if skipped_from is not None:   # up to the first sample played again, as frames_skipped
                self.samples_skipped += first - skipped_from
            out = audio[first - start:end - start - self.crossfade].copy()
            self._tail[:] = audio[end - start - self.crossfade:]
            self.next_sample = end - self.crossfade
            return first, out
        first = self.next_sample
        new_next = end - self.crossfade
        if new_next <= first:
            return first, np.zeros(0, dtype=np.float32)
        lo = first - start
        out = audio[lo:new_next - start].copy()
        fade = min(self.crossfade, len(out))
        out[:fade] = self._tail[:fade] * self._fade_out[:fade] + out[:fade] * self._fade_in[:fade]
        self._tail[:] = audio[end - start - self.crossfade:]
        self.next_sample = new_next
        return first, out
