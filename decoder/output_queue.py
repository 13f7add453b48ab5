"""The output side's queues: emissions from the decode thread, audio ahead of the sound device.

- :class:`EmissionQueue` carries decoded emissions from the decode thread to the output thread. It
  is bounded and drops its *oldest* item when full (counted), so a stalled output thread costs
  resolution, never growing latency.
- :class:`AdaptivePlayback` decides how each vocoded chunk goes to the sink: the cushion of audio
  kept ahead of the device follows the measured jitter of the supply (a high quantile of the last
  seconds plus a margin), topped up with silence when short and trimmed when long. So a stalled
  device (an idle PulseAudio null sink takes 1.4-2 s to start taking a new stream's samples: README,
  "Troubleshooting") leaves no standing delay, and the latency falls again when the jitter stops.
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
    (scheduling, model time, GIL). Before each chunk is written, the audio still queued in the sink
    says how early it came: the least queued over the last ``history_s`` seconds is the cushion
    that was never needed.

    - A chunk finding less than ``margin_s`` queued came later than the cushion covered: silence
      is written first, enough to cover the ``quantile`` of recent chunk lateness (a chunk's arrival
      interval beyond the audio the previous chunk brought), or this chunk's own lateness when
      larger, plus the margin. One short gap instead of an underrun at every late chunk.
    - When even the least queued since the level was last reset (at least ``settle_s``, at most
      ``history_s`` back) exceeds the margin by more than ``hysteresis_s``, the excess is trimmed
      from the next chunk's start (a skip of at most one chunk), so the latency falls within
      ``history_s`` once the jitter stops, the start-up cushion is gone after ``settle_s``, and a
      stalled device (an idle PulseAudio null sink starts a new stream 1.4-2 s late) leaves no standing delay.
    - A top-up is held: nothing is trimmed for ``hold_s`` after one. Late hops on a busy machine come
      every few seconds, not every hop; trimmed after the settle time, the cushion a late hop asked
      for was gone before the next one came (measured through PulseAudio at load 9: chunks 30-70 ms
      late every 5-20 s, each an underrun).

    A supply that falls behind (frames skipped) empties the queue without being jitter: it is
    padded once, never trimmed for.

    Parameters
    ----------
    rate : int
        Audio samples per second.
    initial_s : float
        Cushion written before the first chunk, before any lateness has been seen.
    margin_s : float
        Least audio to keep queued: the device callback's own granularity (a 128-sample block is
        5.8 ms at 22050 Hz) plus a little.
    quantile : float
        Quantile of recent chunk lateness a top-up covers.
    history_s : float
        Seconds over which lateness and the least queued audio are measured.
    settle_s : float
        Seconds the queued level is watched after a reset (start, a top-up, a backlog skipped)
        before any excess is trimmed.
    hysteresis_s : float
        Excess over the margin (seconds) tolerated before trimming.
    max_excess_s : float
        Queued audio beyond the target by more than this (a stalled device's backlog) is trimmed
        at once, without waiting for a whole history.
    max_jitter_s : float
        A chunk later than this is a gap in the supply (skipped frames, a stream that came back),
        not jitter: it is padded for but not counted in the lateness.
    hold_s : float
        Seconds after a top-up during which nothing is trimmed.
    cover_late_hop : bool
        A top-up covers at least the late chunk's own lateness (else only the ``quantile``).

    Examples
    --------
    >>> playback = AdaptivePlayback(rate=22050, initial_s=0.03)
    >>> playback.plan(1024, queued_s=0.0, now=10.0)      # first chunk: initial cushion + margin first
    (838, 0)
    """

    def __init__(self, *, rate: int, initial_s: float, margin_s: float = 0.008, quantile: float = 0.99,
                 history_s: float = 10.0, settle_s: float = 2.0, hysteresis_s: float = 0.01,
                 max_excess_s: float = 0.1, max_jitter_s: float = 0.5, hold_s: float = 10.0,
                 cover_late_hop: bool = True):
        self.rate = int(rate)
        self.initial_s = float(initial_s)
        self.margin_s = float(margin_s)
        self.quantile = float(quantile)
        self.history_s = float(history_s)
        self.settle_s = float(min(settle_s, history_s))
        self.hysteresis_s = float(hysteresis_s)
        self.max_excess_s = float(max_excess_s)
        self.max_jitter_s = float(max_jitter_s)
        self.hold_s = float(hold_s)
        self.cover_late_hop = bool(cover_late_hop)
        self._held_until = -np.inf                       # no trim before this (after a top-up)
        self._lateness: collections.deque[tuple[float, float]] = collections.deque()   # (time, s)
        self._queued: collections.deque[tuple[float, float]] = collections.deque()     # (time, s)
        self._last: tuple[float, int] | None = None      # (arrival, samples) of the previous chunk
        self._since: float | None = None                  # when the queued level was last reset
        self._draining = False                            # skipping a backlog down to the target
        self.target_s = self.initial_s
        self.padded = 0
        self.trimmed = 0

    def _forget(self, now: float) -> None:
        for window in (self._lateness, self._queued):
            while window and window[0][0] < now - self.history_s:
                window.popleft()

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
        after_gap = None                       # the first chunk: neither jitter nor a gap
        late = 0.0
        if self._last is not None:
            late = (now - self._last[0]) - self._last[1] / self.rate
            after_gap = bool(late > self.max_jitter_s)
            if not after_gap:
                self._lateness.append((now, max(late, 0.0)))
        self._last = (now, int(n_samples))
        self._forget(now)
        lateness = np.fromiter((v for _, v in self._lateness), float, len(self._lateness))
        cover = float(np.quantile(lateness, self.quantile)) if lateness.size else self.initial_s
        self.target_s = cover + self.margin_s
        pad = trim = 0
        if self._since is None:
            self._since = now
        if queued_s <= self.target_s:
            self._draining = False
        if queued_s < self.margin_s:
            # at least this chunk's own lateness: a rare late hop lies above any quantile of the rest
            cover_now = self.target_s
            if self.cover_late_hop and after_gap is False:
                cover_now = max(self.target_s, late + self.margin_s)
            pad = int(round((cover_now - queued_s) * self.rate))
            self._queued.clear()                  # the level moved up: measure it afresh
            self._since = now
            if after_gap is False:                # jitter, not a gap in the supply: hold the cushion
                self._held_until = now + self.hold_s
        elif queued_s > self.target_s + self.max_excess_s or (self._draining and queued_s > self.target_s):
            # a backlog (a stalled device): skip new audio until the sink has drained to the target
            self._draining = True
            trim = min(int(n_samples), int(round((queued_s - self.target_s) * self.rate)))
            self._queued.clear()
            self._since = now
        else:
            self._queued.append((now, queued_s))
            spare = min(v for _, v in self._queued) - self.margin_s
            if now - self._since >= self.settle_s and now >= self._held_until and spare > self.hysteresis_s:
                trim = min(int(n_samples), int(round(spare * self.rate)))
                # every level seen is now lower by what was trimmed; as the lows of the jitter age
                # out of the window, the rest is trimmed too
                shift = trim / self.rate
                self._queued = collections.deque((t, v - shift) for t, v in self._queued)
        self.padded += pad
        self.trimmed += trim
        return pad, trim
