"""Sliding 1-s windows over the model-rate ring buffer, one per hop, in a bounded queue.

Window ``k`` ends at model sample ``window_samples + floor(k * hop_s * sfreq)`` (a 0.1-s hop at
125 Hz alternates 12 and 13 samples, ten windows per second on average). With ``grid_offset`` the
windows end instead at the first sample at or after each point of a grid offset by that many
samples, ``window_samples + ceil(k * hop_s * sfreq + grid_offset)``: the decoder puts the grid on its
mel frames' times, so each window ends right after the frame it completes instead of up to a hop
later. Each window is a copy of
the ring buffer's samples with the timestamp of its last sample, the arrival time of the chunk that
completed it and the time it was made. Windows containing a flagged sample (a gap, a NaN run,
non-monotonic timestamps) are flagged with the reason, never passed off as normal. When the consumer
falls behind, the queue drops its oldest windows and counts them, so latency never grows.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

import numpy as np
from eegmusic.stream.ringbuffer import RingBuffer, flag_reason
from eegmusic.stream.spec import DEFAULT_HOP_S, MODEL_SFREQ, WINDOW_SAMPLES
from pylsl import local_clock


@dataclass
class Window:
    """One model input window.

    Attributes
    ----------
    data : ndarray, shape (n_chans, window_samples), float32
        Preprocessed samples at the model rate (the consumer's own copy).
    t_last : float
        LSL time (s) of the EEG the window's last sample holds: its newest stream sample's timestamp
        less the resampler's delay (:attr:`stream.source.StreamHealth.delay_s`; 0 at the model rate).
    t_arrival : float
        LSL clock (s) when the chunk completing the window arrived.
    t_ready : float
        LSL clock (s) when the window was made.
    sample_index : int
        Index of the window's first sample at the model rate since the stream started.
    flagged : bool
        True when the window touches a gap, a NaN/Inf run or non-monotonic timestamps.
    reason : str
        Why it is flagged (``"gap"``, ``"nan"``, ``"time"``, joined by ``+``), or ``""``.
    """

    data: np.ndarray
    t_last: float
    t_arrival: float
    t_ready: float
    sample_index: int
    flagged: bool = False
    reason: str = ""


class Windower:
    """Make windows from a ring buffer as samples arrive and queue them for one consumer.

    Parameters
    ----------
    ring : RingBuffer
        Model-rate samples (written by the acquisition thread).
    hop_s : float
        Time between successive windows in seconds.
    sfreq : float
        Model rate in Hz.
    window_samples : int
        Window length in samples.
    queue_windows : int
        Queue capacity; the oldest windows are dropped (and counted) beyond it.
    grid_offset : float, optional
        Align window ends to a grid offset by this many samples (rounding up; see the module
        docstring); None: the plain ``floor`` grid from 0.
    """

    def __init__(self, ring: RingBuffer, *, hop_s: float = DEFAULT_HOP_S, sfreq: float = MODEL_SFREQ,
                 window_samples: int = WINDOW_SAMPLES, queue_windows: int = 8,
                 grid_offset: float | None = None):
        if not hop_s > 0:
            raise ValueError(f"hop_s must be positive, got {hop_s}")
        if queue_windows < 1:
            raise ValueError(f"queue_windows must be at least 1, got {queue_windows}")
        if ring.capacity < window_samples:
            raise ValueError(
                f"ring buffer of {ring.capacity} samples cannot hold a {window_samples}-sample window"
            )
        self.ring = ring
        self.hop_samples = float(hop_s) * float(sfreq)
        self.window_samples = int(window_samples)
        self.grid_offset = None if grid_offset is None else float(grid_offset) % self.hop_samples
        self._queue: collections.deque[Window] = collections.deque()
        self._capacity = int(queue_windows)
        self._ready = threading.Condition()
        self.reset()

    def reset(self) -> None:
        """Start again at window 0 and zero the counters (the queue is emptied)."""
        with self._ready:
            self._queue.clear()
            self._next = 0
            self.n_windows = 0
            self.n_flagged = 0
            self.dropped = 0
            self.coalesced = 0

    def _window_end(self, k: int) -> int:
        if self.grid_offset is not None:
            return self.window_samples + int(np.ceil(k * self.hop_samples + self.grid_offset - 1e-9))
        return self.window_samples + int(np.floor(k * self.hop_samples + 1e-9))

    def update(self, t_arrival: float) -> int:
        """Queue every window the ring buffer now completes; return how many were made.

        Called by the writer after each write. A window this chunk completed but that is not kept
        (its samples already overwritten: the writer far ahead; or pushed out of the full queue by the
        chunk's later windows) is counted as ``coalesced`` when the chunk's newest window covers the
        frames it adds, those after the previous window's end (a late chunk at a short hop completes
        many windows at once: the source was late, not the consumer), else as ``dropped`` (its frames
        are lost). A window of an earlier chunk pushed out of the queue waited while the consumer was
        busy: dropped.
        """
        made = 0
        lost: list[int] = []   # for each window this chunk completed and did not keep: its frames' start
        frames_from: dict[int, int] = {}   # window start -> the previous window's end, this chunk's
        newest = None
        n_written = self.ring.n_written
        while self._window_end(self._next) <= n_written:
            end = self._window_end(self._next)
            previous_end = self._window_end(self._next - 1)
            self._next += 1
            start = end - self.window_samples
            try:
                data, times, flags = self.ring.read(start, self.window_samples)
            except IndexError:
                lost.append(previous_end)
                continue
            frames_from[start] = previous_end
            combined = int(np.bitwise_or.reduce(flags))
            window = Window(data=data, t_last=float(times[-1]), t_arrival=float(t_arrival),
                            t_ready=local_clock(), sample_index=start, flagged=combined != 0,
                            reason=flag_reason(combined))
            with self._ready:
                if len(self._queue) >= self._capacity:
                    oldest = self._queue.popleft()
                    if made >= self._capacity:  # the whole queue is this chunk's: so is its oldest
                        lost.append(frames_from[oldest.sample_index])
                    else:
                        self.dropped += 1
                self._queue.append(window)
                self.n_windows += 1
                self.n_flagged += window.flagged
                self._ready.notify()
            newest = start
            made += 1
        if lost:
            covered = 0 if newest is None else sum(newest <= frames_start for frames_start in lost)
            with self._ready:
                self.coalesced += covered
                self.dropped += len(lost) - covered
        return made

    def next_window(self, timeout: float | None = None) -> Window | None:
        """Take the oldest queued window, waiting up to ``timeout`` seconds; None if none came."""
        with self._ready:
            if not self._queue and not self._ready.wait_for(lambda: bool(self._queue), timeout):
                return None
            return self._queue.popleft()

    def pending(self) -> int:
        """Number of windows waiting in the queue."""
        with self._ready:
            return len(self._queue)
