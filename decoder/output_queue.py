"""The output side's queues: emissions from the decode thread, audio ahead of the sound device.

- :class:`EmissionQueue` carries decoded emissions from the decode thread to the output thread. It
  is bounded and drops its *oldest* item when full (counted), so a stalled output thread costs
  resolution, never growing latency.
- :class:`AdaptivePlayback` decides how each vocoded chunk goes to the sink: the cushion of audio
  kept ahead of the device follows the measured jitter of the supply (a high quantile of the last
  seconds plus a margin), topped up with silence when short and trimmed when long. So a stalled
  device (PulseAudio takes about a second to start a new stream) leaves no standing delay, and the
  latency falls again when the jitter stops.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

import numpy as np

Item = TypeVar("Item")


class EmissionQueue(Generic[Item]):
    """A bounded FIFO that drops its oldest item when full, counting drops.

    Parameters
    ----------
    maxlen : int
        Items kept at most.
    """

    def __init__(self, maxlen: int):
        self._items: collections.deque = collections.deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: Item) -> None:
        """Append ``item``; when full, the oldest item is dropped and counted."""
        with self._cond:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> Item | None:
        """The oldest item, waiting up to ``timeout`` s; None when none came."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None


class AdaptivePlayback:
    """Hold just enough audio ahead of the device to ride out the measured supply jitter.

    The decoder hands audio to the sink in chunks, one per hop, that arrive late by varying amounts
    (scheduling, model time, GIL). With ``W`` samples supplied before a chunk arriving at time
    ``t``, its *slack* ``t - W / rate`` is constant for a perfectly regular supply and grows by
    exactly the lateness of a chunk. Over the last ``history_s`` seconds:

    - jitter = slack - min(slack); the target cushion is its ``quantile`` plus ``margin_s``;
    - the cushion in hand is the audio queued in the sink plus the chunk's own lateness (the level
      the queue would have if this chunk had come as early as the earliest one);
    - a cushion short of the target by more than ``hysteresis_s`` is topped up with silence before
      the chunk (one short gap instead of an underrun at every late chunk); one above it by more
      than ``hysteresis_s`` is trimmed from the chunk's start (a skip of at most one chunk), so the
      latency falls within ``history_s`` once the jitter stops.

    Parameters
    ----------
    rate : int
        Audio samples per second.
    initial_s : float
        Target cushion in seconds until ``min_history`` chunks have been seen.
    margin_s : float
        Added to the jitter quantile (covers the device callback's own granularity).
    quantile : float
        Quantile of the recent jitter the cushion covers.
    history_s : float
        Seconds of chunk arrivals the jitter is measured over.
    hysteresis_s : float
        Dead band around the target (seconds) inside which nothing is padded or trimmed.
    max_jitter_s : float
        A slack jump beyond this (skipped frames, a restarted stream) starts the history afresh.
    min_history : int
        Chunks seen before the measured target replaces ``initial_s``.

    Examples
    --------
    >>> playback = AdaptivePlayback(rate=22050, initial_s=0.03)
    >>> playback.plan(1024, queued_s=0.0, now=10.0)      # first chunk: pad up to the initial target
    (662, 0)
    """

    def __init__(self, *, rate: int, initial_s: float, margin_s: float = 0.015, quantile: float = 0.99,
                 history_s: float = 10.0, hysteresis_s: float = 0.01, max_jitter_s: float = 0.5,
                 min_history: int = 20):
        self.rate = int(rate)
        self.initial_s = float(initial_s)
        self.margin_s = float(margin_s)
        self.quantile = float(quantile)
        self.history_s = float(history_s)
        self.hysteresis_s = float(hysteresis_s)
        self.max_jitter_s = float(max_jitter_s)
        self.min_history = int(min_history)
        self._arrivals: collections.deque[tuple[float, float]] = collections.deque()   # (time, slack)
        self._supplied = 0
        self.target_s = self.initial_s
        self.padded = 0
        self.trimmed = 0

    def plan(self, n_samples: int, queued_s: float, now: float) -> tuple[int, int]:
        """Decide how a chunk of ``n_samples`` arriving at ``now`` goes to the sink.

        Parameters
        ----------
        n_samples : int
            Samples in the chunk.
        queued_s : float
            Seconds of audio waiting in the sink now.
        now : float
            Arrival time in seconds (any monotonic clock).

        Returns
        -------
        pad : int
            Samples of silence to write before the chunk.
        trim : int
            Samples to drop from the chunk's start (at most ``n_samples``).
        """
        slack = now - self._supplied / self.rate
        self._supplied += int(n_samples)
        arrivals = self._arrivals
        if arrivals and slack - min(s for _, s in arrivals) > self.max_jitter_s:
            arrivals.clear()       # a gap in the supply, not jitter
        arrivals.append((now, slack))
        while arrivals[0][0] < now - self.history_s:
            arrivals.popleft()
        slacks = np.fromiter((s for _, s in arrivals), float, len(arrivals))
        jitter = slacks - slacks.min()
        if len(arrivals) >= self.min_history:
            self.target_s = float(np.quantile(jitter, self.quantile)) + self.margin_s
        else:
            self.target_s = max(self.initial_s, float(jitter.max()) + self.margin_s)
        cushion = queued_s + jitter[-1]
        pad = trim = 0
        if cushion < self.target_s - self.hysteresis_s:
            pad = int(round((self.target_s - cushion) * self.rate))
        elif cushion > self.target_s + self.hysteresis_s:
            trim = min(int(n_samples), int(round((cushion - self.target_s) * self.rate)))
        self.padded += pad
        self.trimmed += trim
        return pad, trim


