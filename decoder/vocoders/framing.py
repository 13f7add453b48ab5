"""The STFT framing every vocoder shares: librosa's convention at the design's mel spec.

n_fft 2048, hop 512, periodic Hann window, centre=True framing, phase origin at the frame start.
With a constant overlap-add gain of 1.5 (the sum of squared windows at hop n_fft/4) a streaming
overlap-add equals ``librosa.istft`` away from a file's first and last 2048 samples.
"""

from __future__ import annotations

import numpy as np
from eegmusic.decoder.melspec import HOP_LENGTH, N_FFT

N_BINS = N_FFT // 2 + 1
OLA_GAIN = 1.5
"""Sum of squared periodic-Hann windows at hop N_FFT/4 (constant in steady state)."""
TAIL_CHUNKS = (N_FFT - HOP_LENGTH) // HOP_LENGTH
"""Hops of overlap-add still sounding after the last frame (3)."""


def hann() -> np.ndarray:
    """Periodic Hann window of N_FFT samples (librosa's ``get_window('hann', N_FFT)``)."""
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)


WINDOW = hann()
WINDOW.setflags(write=False)
BIN_SIGN = np.where(np.arange(N_BINS) % 2 == 0, 1.0, -1.0)
"""librosa's (frame-start) phase equals the frame-centred phase times (−1)^m for bin m."""
BIN_SIGN.setflags(write=False)
BIN_ADVANCE = 2.0 * np.pi * HOP_LENGTH * np.arange(N_BINS) / N_FFT
"""Phase advance of each bin's centre frequency over one hop (rad)."""
BIN_ADVANCE.setflags(write=False)


class OverlapAdd:
    """Streaming windowed overlap-add: one frame's spectrum in, the next HOP_LENGTH samples out."""

    def __init__(self) -> None:
        self._buffer = np.zeros(N_FFT)

    def reset(self) -> None:
        """Forget every sample still overlapping."""
        self._buffer[:] = 0.0

    def add(self, spectrum: np.ndarray) -> np.ndarray:
        """Add one frame (librosa phase convention), return the next HOP_LENGTH finished samples.

        Parameters
        ----------
        spectrum : ndarray, shape (N_BINS,), complex

        Returns
        -------
        samples : ndarray, shape (HOP_LENGTH,), float64
        """
        self._buffer += WINDOW * np.fft.irfft(spectrum, n=N_FFT)
        return self.shift()

    def shift(self) -> np.ndarray:
        """Return the next HOP_LENGTH samples and advance (no new frame)."""
        out = self._buffer[:HOP_LENGTH] / OLA_GAIN
        self._buffer[:-HOP_LENGTH] = self._buffer[HOP_LENGTH:]
        self._buffer[-HOP_LENGTH:] = 0.0
        return out

    def tail(self) -> list[np.ndarray]:
        """The TAIL_CHUNKS hops still sounding after the last frame; then empty."""
        return [self.shift() for _ in range(TAIL_CHUNKS)]
