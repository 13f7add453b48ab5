"""The output side's queues: emissions from the decode thread, audio ahead of the sound device.

- :class:`EmissionQueue` carries decoded emissions from the decode thread to the output thread. It
  is bounded and drops its *oldest* item when full (counted), so a stalled output thread costs
  resolution, never growing latency.
- :class:`PlaybackBound` decides whether newly vocoded audio is handed to the sink, given how much
  audio already waits there. When the device stalls (PulseAudio takes about a second to start a new
  stream) audio piles up and would stay a standing delay for the rest of the run: past the bound,
  new audio is dropped (and counted by the caller) until the device has drained to the target.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

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


class PlaybackBound:
    """Keep the audio waiting in the sink between a target and a bound (hysteresis).

    Parameters
    ----------
    target_s : float
        Audio (seconds) normally waiting in the sink after a write: one hop plus the prebuffer.
    margin_s : float
        Extra waiting audio tolerated for hop jitter before new audio is dropped.
    """

    def __init__(self, target_s: float, margin_s: float):
        self.target_s = float(target_s)
        self.margin_s = float(margin_s)
        self.draining = False

    @property
    def bound_s(self) -> float:
        """Waiting audio (seconds) beyond which new audio is dropped."""
        return self.target_s + self.margin_s

    def admit(self, queued_s: float) -> bool:
        """Whether audio may be written now that ``queued_s`` seconds wait in the sink.

        Past :attr:`bound_s` it refuses, and keeps refusing until the sink has drained to
        :attr:`target_s`.
        """
        if queued_s > self.bound_s:
            self.draining = True
        elif queued_s <= self.target_s:
            self.draining = False
        return not self.draining
