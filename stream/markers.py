"""A marker inlet: string events of a ``Markers`` stream with clock-corrected LSL timestamps.

The live decoder reads the replay's ``<eeg name>-markers`` stream through it (which stimulus second
plays when). Pulling never waits: the caller polls between its own work.

Example
-------
>>> markers = MarkerInlet.open("eegmusic-replay-s21-p1-markers", timeout=2.0)  # doctest: +SKIP
>>> markers.pull() if markers else []                                         # doctest: +SKIP
[('song=21;t=0.000', 81234.501)]
"""

from __future__ import annotations

import logging

import pylsl
from eegmusic.stream.resolve import find_streams

logger = logging.getLogger(__name__)


class MarkerInlet:
    """One connected marker stream.

    Parameters
    ----------
    inlet : pylsl.StreamInlet
        An open inlet with clock synchronisation (use :meth:`open`).
    name : str
        The stream's name, for logs.
    """

    def __init__(self, inlet: pylsl.StreamInlet, name: str):
        self._inlet = inlet
        self.name = name

    @classmethod
    def open(cls, name: str, *, timeout: float = 2.0) -> MarkerInlet | None:
        """Find the ``Markers`` stream called ``name`` and connect to it now.

        Returns None (and logs why) when no such stream answers within ``timeout`` seconds: markers
        are optional for every consumer.
        """
        found = find_streams(name=name, stype="Markers", timeout=timeout)
        if not found:
            logger.warning("no marker stream '%s'", name)
            return None
        inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize)
        try:
            inlet.open_stream(timeout=timeout)    # connect now, not on the consumer's first pull
            inlet.time_correction(timeout=timeout)
        except pylsl.TimeoutError:
            logger.warning("marker stream '%s' did not answer", name)
            return None
        return cls(inlet, name)

    def pull(self) -> list[tuple[str, float]]:
        """Every marker waiting now, oldest first: (text, LSL timestamp on this machine's clock)."""
        out = []
        while True:
            sample, timestamp = self._inlet.pull_sample(timeout=0.0)
            if sample is None:
                return out
            out.append((str(sample[0]), float(timestamp)))
