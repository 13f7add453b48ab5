"""A marker inlet: string events of a ``Markers`` stream with clock-corrected LSL timestamps.

The live decoder reads the replay's ``<eeg name>-markers`` stream through it (which stimulus second
plays when). Pulling never waits: the caller polls between its own work.

A replay's last marker is :data:`REPLAY_END`, sent before its outlets go. The inlet closes its stream
when it reads it: liblsl prints "ERR| Stream transmission broke off" when an outlet goes under a
connected inlet, which a decode that followed a replay to its end printed every time. A thread then
looks for the next marker stream of the same name (a replay started again; never the ended one, by
liblsl's id of the outlet), and the next :meth:`MarkerInlet.pull` reads from it.

Example
-------
>>> markers = MarkerInlet.open("eegmusic-replay-s21-p1-markers", timeout=2.0)  # doctest: +SKIP
>>> markers.pull() if markers else []                                         # doctest: +SKIP
[('song=21;t=0.000', 81234.501)]
"""

from __future__ import annotations

import collections
import logging
import threading

import pylsl
from eegmusic.stream.resolve import ENDED_KEPT, excluding, find_streams, predicate, resolve_matching
from eegmusic.stream.untrusted import REPLAY_END
from pylsl.util import LostError
from pylsl.util import TimeoutError as LSLTimeoutError

__all__ = ["REPLAY_END", "MarkerInlet"]

logger = logging.getLogger(__name__)

FOLLOW_TRY_S = 1.0
"""How long each look for the next marker stream waits (they follow one another, until :meth:`close`)."""

FOLLOW_LISTING_S = 0.25
"""Each look's full listing after a query that found nothing (so that :meth:`MarkerInlet.close` is seen
within about a second and a quarter)."""


def _connect(info: pylsl.StreamInfo, timeout: float) -> pylsl.StreamInlet | None:
    """An inlet on ``info``, connected and with a first clock estimate; None if it does not answer.

    liblsl's own recovery is off: it moved the inlet quietly onto a restarted outlet of the same source
    id, whose id the inlet then did not know to leave out when that one ended. A lost stream is this
    class's to follow (:meth:`MarkerInlet.pull`).
    """
    inlet = pylsl.StreamInlet(info, recover=False,
                              processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize)
    try:
        inlet.open_stream(timeout=timeout)    # connect now, not on the consumer's first pull
        inlet.time_correction(timeout=timeout)
    except (LSLTimeoutError, LostError):
        return None
    return inlet


class MarkerInlet:
    """One followed marker stream.

    Parameters
    ----------
    inlet : pylsl.StreamInlet
        An open inlet with clock synchronisation (use :meth:`open`).
    name : str
        The stream's name: for logs, and to find the next stream after :data:`REPLAY_END`.
    uid : str
        liblsl's id of the outlet ``inlet`` reads.
    source_id : str
        The stream's source id: the next stream of the same source id is preferred, as the EEG inlet
        prefers its own.
    """

    def __init__(self, inlet: pylsl.StreamInlet, name: str, uid: str, source_id: str = ""):
        self.name = name
        self.source_id = source_id
        self._inlet: pylsl.StreamInlet | None = inlet
        self._uid = uid
        # outlets read to their end, newest last: each is gone within its replay's linger, so a few suffice
        self._ended: collections.deque[str] = collections.deque(maxlen=ENDED_KEPT)
        self._next: tuple[pylsl.StreamInlet, str] | None = None   # found by the follower, taken by pull
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @classmethod
    def open(cls, name: str, *, source_id: str | None = None, timeout: float = 2.0,
             quiet: bool = False) -> MarkerInlet | None:
        """Find the ``Markers`` stream called ``name`` and connect to it now.

        ``source_id`` (a replay's EEG source id plus ``-markers``) picks the stream of that source when two
        of one name answer: two replays of one name (the second one's source id made unique) each end on
        their own. Returns None (and logs why, as a debug line when ``quiet``) when no such stream answers
        within ``timeout`` seconds: markers are optional for every consumer.
        """
        level = logging.DEBUG if quiet else logging.WARNING
        found = find_streams(name=name, stype="Markers", timeout=timeout)
        found.sort(key=lambda info: info.source_id() != source_id)   # the same source first
        if not found:
            logger.log(level, "no marker stream '%s'", name)
            return None
        inlet = _connect(found[0], timeout)
        if inlet is None:
            logger.log(level, "marker stream '%s' did not answer", name)
            return None
        return cls(inlet, name, found[0].uid(), found[0].source_id())

    @property
    def ended(self) -> bool:
        """The stream ended (:data:`REPLAY_END`, or lost) and no next one has been found yet."""
        return self._inlet is None and self._next is None

    def pull(self) -> list[tuple[str, float]]:
        """Every marker waiting now, oldest first: (text, LSL timestamp on this machine's clock).

        Up to and with :data:`REPLAY_END`, after which the stream is closed; a lost stream (a replay
        killed) ends the same way, without the marker. The next replay's markers come once it is found.
        """
        if self._inlet is None:
            with self._lock:
                self._inlet, self._uid = self._next if self._next is not None else (None, self._uid)
                self._next = None
        inlet = self._inlet   # once: close() may clear it from another thread meanwhile
        if inlet is None:
            return []
        out = []
        while True:
            try:
                sample, timestamp = inlet.pull_sample(timeout=0.0)
            except (LostError, LSLTimeoutError):
                self._end(inlet, "lost")
                return out
            if sample is None:
                return out
            out.append((str(sample[0]), float(timestamp)))
            if out[-1][0] == REPLAY_END:
                self._end(inlet, "ended")
                return out

    def _end(self, inlet: pylsl.StreamInlet, how: str) -> None:
        """Close the stream (before its outlet goes, so that liblsl has nothing to report), and look for
        the next one, never this outlet again."""
        inlet.close_stream()
        self._inlet = None
        with self._lock:
            self._ended.append(self._uid)
        logger.debug("marker stream '%s' %s; looking for the next", self.name, how)
        threading.Thread(target=self._follow, daemon=True, name="eegmusic-markers-next").start()

    def _follow(self) -> None:
        """Find and connect the next stream of this name whose outlet is new; hand it to :meth:`pull`."""
        xpath = predicate(name=self.name, stype="Markers")

        def matches(info: pylsl.StreamInfo) -> bool:
            return info.name() == self.name and info.type() == "Markers"

        while not self._closed.is_set():
            with self._lock:
                ended = set(self._ended)
            found = resolve_matching(excluding(xpath, ended), matches, timeout=FOLLOW_TRY_S,
                                     listing_s=FOLLOW_LISTING_S)
            found.sort(key=lambda info: info.source_id() != self.source_id)
            for info in found:
                if info.uid() in ended or self._closed.is_set():
                    continue
                inlet = _connect(info, FOLLOW_TRY_S)
                if inlet is None:
                    continue
                with self._lock:
                    if self._closed.is_set():   # closed while connecting: nobody takes it
                        return
                    self._next = (inlet, info.uid())
                logger.debug("following the next marker stream '%s'", self.name)
                return

    def close(self) -> None:
        """Stop looking for a next stream and drop the connection (a follower ends within a second)."""
        self._closed.set()
        with self._lock:
            self._inlet = self._next = None
