"""Volume and mute for the dashboard: a gain applied in front of the pipeline's audio sink.

The live pipeline writes decoded audio to a sink (``write``/``close``/``counters``). The dashboard
hands it a :class:`GainSink` around the real sound-device sink, so the volume slider and the mute box
act on the next samples written (heard after the sink's buffer, a few tens of ms), without touching
the pipeline or the audio callback.
"""

from __future__ import annotations

import numpy as np


class GainSink:
    """Scale samples by ``gain`` before the wrapped sink plays them.

    Parameters
    ----------
    sink : object
        An audio sink with ``write(samples)``, ``close()`` and ``counters()``; every other attribute
        (``output_latency_s``, queue sizes) is read through from it.
    gain : float
        Linear gain, 0 (mute) … 1 (unchanged).
    """

    def __init__(self, sink, gain: float = 1.0):
        self.sink = sink
        self.gain = float(gain)

    def write(self, samples: np.ndarray):
        """Play ``samples`` (float32, shape (n,)) scaled by the current gain; returns what the sink does."""
        gain = self.gain  # read once: the GUI thread may change it meanwhile
        if gain != 1.0:
            samples = np.multiply(samples, np.float32(gain), dtype=np.float32)
        return self.sink.write(samples)

    def close(self) -> None:
        """Close the wrapped sink."""
        self.sink.close()

    def counters(self) -> dict:
        """The wrapped sink's counters."""
        return self.sink.counters()

    def __getattr__(self, name: str):
        if name == "sink":  # not set yet (half-built object): no recursion
            raise AttributeError(name)
        return getattr(self.sink, name)
