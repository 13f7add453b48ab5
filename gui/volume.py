"""Volume and mute for the dashboard: a gain applied in front of the pipeline's audio sink.

The live pipeline writes decoded audio to an :class:`~decoder.audio.AudioSink`. The dashboard
hands it a :class:`GainSink` around the real sound-device sink, so the volume slider and the mute box
act on the next samples written (heard after the sink's buffer, a few tens of ms), without touching
the pipeline or the audio callback.
"""

from __future__ import annotations

import numpy as np
from eegmusic.decoder.audio import AudioSink


class GainSink:
    """Scale samples by ``gain`` before the wrapped sink plays them (an :class:`~decoder.audio.AudioSink`).

    Parameters
    ----------
    sink : AudioSink
        The sink that plays the scaled samples; its queue, latency and counters are this one's.
    gain : float
        Linear gain, 0 (mute) … 1 (unchanged).
    """

    def __init__(self, sink: AudioSink, gain: float = 1.0):
        self.sink = sink
        self.gain = float(gain)

    def write(self, samples: np.ndarray, *, block: bool = True) -> int:
        """Play ``samples`` (float32, shape (n,)) scaled by the current gain; return how many were taken.

        ``block=False`` (the live pipeline's) is passed on: the wrapped sink drops what does not fit
        instead of waiting.
        """
        gain = self.gain  # read once: the GUI thread may change it meanwhile
        if gain != 1.0:
            samples = np.multiply(samples, np.float32(gain), dtype=np.float32)
        return self.sink.write(samples, block=block)

    @property
    def queued_s(self) -> float:
        """The wrapped sink's queued audio in seconds."""
        return self.sink.queued_s

    @property
    def output_latency_s(self) -> float:
        """The wrapped sink's output latency in seconds."""
        return self.sink.output_latency_s

    @property
    def plays_live(self) -> bool:
        """Whether the wrapped sink plays in real time."""
        return self.sink.plays_live

    def close(self) -> None:
        """Close the wrapped sink."""
        self.sink.close()

    def counters(self) -> dict[str, int]:
        """The wrapped sink's counters."""
        return self.sink.counters()
