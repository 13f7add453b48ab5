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

import logging
import threading

import pylsl
from eegmusic.stream.resolve import excluding, find_streams, predicate, resolve_matching
from eegmusic.stream.untrusted import REPLAY_END
from pylsl.util import LostError

__all__ = ["REPLAY_END", "MarkerInlet"]

logger = logging.getLogger(__name__)

FOLLOW_TRY_S = 1.0
"""How long each look for the next marker stream waits (they follow one another, until :meth:`close`)."""


def _connect(info: pylsl.StreamInfo, timeout: float) -> pylsl.StreamInlet | None:
    """An inlet on ``info``, connected and with a first clock estimate; None if it does not answer."""
    inlet = pylsl.StreamInlet(info, processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize)
    try:
        inlet.open_stream(timeout=timeout)    # connect now, not on the consumer's first pull
        inlet.time_correction(timeout=timeout)
    except (pylsl.TimeoutError, LostError):
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
    """

    def __init__(self, inlet: pylsl.StreamInlet, name: str, uid: str):
        self.name = name
        self._inlet: pylsl.StreamInlet | None = inlet
        self._ended = {uid}                   # outlets read to their end, and the one read now
        self._next: pylsl.StreamInlet | None = None   # found by the follower thread, taken by pull
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @classmethod
    def open(cls, name: str, *, timeout: float = 2.0, quiet: bool = False) -> MarkerInlet | None:
        """Find the ``Markers`` stream called ``name`` and connect to it now.

        Returns None (and logs why, as a debug line when ``quiet``) when no such stream answers within
        ``timeout`` seconds: markers are optional for every consumer.
        """
        level = logging.DEBUG if quiet else logging.WARNING
        found = find_streams(name=name, stype="Markers", timeout=timeout)
        if not found:
            logger.log(level, "no marker stream '%s'", name)
            return None
        inlet = _connect(found[0], timeout)
        if inlet is None:
            logger.log(level, "marker stream '%s' did not answer", name)
            return None
        return cls(inlet, name, found[0].uid())

    @property
    def ended(self) -> bool:
        """The stream said :data:`REPLAY_END` and no next one has been found yet."""
        return self._inlet is None and self._next is None

    def pull(self) -> list[tuple[str, float]]:
        """Every marker waiting now, oldest first: (text, LSL timestamp on this machine's clock).

        Up to and with :data:`REPLAY_END`, after which the stream is closed; the next replay's markers
        come once it is found.
        """
        if self._inlet is None:
            with self._lock:
                self._inlet, self._next = self._next, None
            if self._inlet is None:
                return []
        out = []
        while True:
            sample, timestamp = self._inlet.pull_sample(timeout=0.0)
            if sample is None:
                return out
            out.append((str(sample[0]), float(timestamp)))
            if out[-1][0] == REPLAY_END:
                self._inlet.close_stream()   # before the outlet goes, so that liblsl has nothing to report
                self._inlet = None
                logger.debug("marker stream '%s' ended; looking for the next", self.name)
                threading.Thread(target=self._follow, daemon=True, name="eegmusic-markers-next").start()
                return out

    def _follow(self) -> None:
        """Find and connect the next stream of this name whose outlet is new; hand it to :meth:`pull`."""
        xpath = predicate(name=self.name, stype="Markers")

        def matches(info: pylsl.StreamInfo) -> bool:
            return info.name() == self.name and info.type() == "Markers"

        while not self._closed.is_set():
            with self._lock:
                ended = set(self._ended)
            for info in resolve_matching(excluding(xpath, ended), matches, timeout=FOLLOW_TRY_S):
                if info.uid() in ended or self._closed.is_set():
                    continue
                inlet = _connect(info, 2.0)
                if inlet is not None:
                    with self._lock:
                        self._ended.add(info.uid())
                        self._next = inlet
                    logger.debug("following the next marker stream '%s'", self.name)
                    return

    def close(self) -> None:
        """Stop looking for a next stream and drop the connection."""
        self._closed.set()
        with self._lock:
            self._inlet = self._next = None
