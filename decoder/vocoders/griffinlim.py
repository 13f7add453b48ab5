"""Streaming Griffin-Lim over a short sliding block of frames (RTISI-LA's frame of work).

The newest ``lookahead + 1`` frames form a block. Each new frame gets a first phase guess, then
``n_iter`` fast Griffin-Lim iterations (Perraudin, Balazs & Søndergaard 2013: the projection plus
momentum times its change) run over the block, with the samples of frames already committed held
fixed; then the oldest frame of the block is committed and its samples played. :class:`SlidingBlock`
is that machinery with the first guess left to a subclass; :class:`GriffinLim` is the plain baseline,
whose first guess advances the previous frame's phase by each bin's centre frequency.
The arithmetic between the FFTs runs in numba without the GIL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numba
import numpy as np
from eegmusic.decoder.melspec import HOP_LENGTH, N_FFT
from eegmusic.decoder.vocoders.framing import (
    BIN_ADVANCE,
    N_BINS,
    OLA_GAIN,
    TAIL_CHUNKS,
    WINDOW,
    OverlapAdd,
)

_COMMITTED_BEFORE = 3
"""Committed frames that still overlap the block's first frame (N_FFT / HOP_LENGTH - 1)."""


@numba.njit(cache=True, nogil=True)
def _block_segments(frames, committed, inv_wss, window, hop, segments):
    """Overlap-add the block's frames onto the committed samples, normalise, re-window each frame."""
    n_frames, length = frames.shape
    y = committed.copy()
    for j in range(n_frames):
        base = j * hop
        for i in range(length):
            y[base + i] += window[i] * frames[j, i]
    for i in range(y.shape[0]):
        y[i] *= inv_wss[i]
    for j in range(n_frames):
        base = j * hop
        for i in range(length):
            segments[j, i] = window[i] * y[base + i]


@numba.njit(cache=True, nogil=True)
def _project(rebuilt, magnitude, previous, stft, momentum):
    """Fast-GL step: keep the rebuilt phase at the target magnitude, add momentum times its change.

    Real arithmetic on the parts (one square root and one division per bin): numba's complex
    ``abs`` and complex division made this step a quarter of rtisi's per-frame cost.
    """
    n_frames, n_bins = rebuilt.shape
    for j in range(n_frames):
        for k in range(n_bins):
            z = rebuilt[j, k]
            re = z.real
            im = z.imag
            a2 = re * re + im * im
            m = magnitude[j, k]
            if a2 > 1e-32:
                scale = m / np.sqrt(a2)
                p_re = scale * re
                p_im = scale * im
            else:
                p_re = m
                p_im = 0.0
            q = previous[j, k]
            stft[j, k] = complex(p_re + momentum * (p_re - q.real), p_im + momentum * (p_im - q.imag))
            previous[j, k] = complex(p_re, p_im)


class SlidingBlock(ABC):
    """Fast Griffin-Lim over a sliding block of ``lookahead + 1`` frames; older samples are fixed.

    Parameters
    ----------
    lookahead : int
        Frames iterated beyond the one committed next (0…16).
    n_iter : int
        Iterations each time a frame arrives.
    momentum : float
        Fast Griffin-Lim momentum (0: plain Griffin-Lim).
    synthesis : {"hann", "early"}
        The window committed frames are played with (:mod:`decoder.vocoders.framing`); the
        iterations always hold the Hann overlap-add of the committed frames fixed. ``"early"`` plays
        each frame's samples one frame sooner (push k returns frame ``k - lookahead - 1``'s samples
        instead of ``k - lookahead - 2``'s).
    """

    def __init__(self, lookahead: int, n_iter: int, momentum: float, synthesis: str = "hann") -> None:
        self._early = None if synthesis == "hann" else OverlapAdd(synthesis)
        self.synthesis = synthesis
        self.lookahead = int(lookahead)
        self.block = self.lookahead + 1
        self.n_iter = int(n_iter)
        self.momentum = float(momentum)
        self.region = (self.block - 1) * HOP_LENGTH + N_FFT
        # window sum-square over the block region, counting the committed frames before it
        wss = np.zeros(self.region + _COMMITTED_BEFORE * HOP_LENGTH)
        for j in range(self.block + _COMMITTED_BEFORE):
            wss[j * HOP_LENGTH:j * HOP_LENGTH + N_FFT] += WINDOW ** 2
        self._inv_wss = 1.0 / np.maximum(wss[_COMMITTED_BEFORE * HOP_LENGTH:], 1e-3)
        self._window = np.ascontiguousarray(WINDOW)
        self._segments = np.empty((self.block, N_FFT))
        self.committed = np.zeros(self.region)
        self.magnitude = np.zeros((self.block, N_BINS))
        self.stft = np.zeros((self.block, N_BINS), dtype=np.complex128)
        self.previous = np.zeros((self.block, N_BINS), dtype=np.complex128)
        self.count = 0

    def reset(self) -> None:
        """Forget the block and every committed sample still overlapping."""
        self.committed[:] = 0.0
        self.stft[:] = 0.0
        self.count = 0
        if self._early is not None:
            self._early.reset()

    @abstractmethod
    def first_guess(self, magnitude: np.ndarray) -> np.ndarray:
        """Phase (librosa convention, shape (N_BINS,)) of the newest frame before any iteration.

        Called before the frame enters the block: ``self.stft[self.count - 1]`` is the frame before.
        """

    def push(self, magnitude: np.ndarray) -> np.ndarray | None:
        """Take one frame's magnitude (N_BINS,); return HOP_LENGTH samples, or None while filling."""
        c = self.count
        phase = self.first_guess(magnitude)
        self.magnitude[c] = magnitude
        self.stft[c] = magnitude * np.exp(1j * phase)
        self.count = c + 1
        self._iterate()
        if self.count < self.block:
            return None
        return self._commit()

    def _iterate(self) -> None:
        c = self.count
        stft, previous, magnitude, segments = self.stft[:c], self.previous[:c], self.magnitude[:c], \
            self._segments[:c]
        previous[:] = stft
        for _ in range(self.n_iter):
            frames = np.fft.irfft(stft, n=N_FFT, axis=1)
            _block_segments(frames, self.committed, self._inv_wss, self._window, HOP_LENGTH, segments)
            _project(np.fft.rfft(segments, axis=1), magnitude, previous, stft, self.momentum)
        if self.n_iter:
            stft[:] = previous  # the last projection: the target magnitude exactly

    def _commit(self) -> np.ndarray:
        self.committed[:N_FFT] += WINDOW * np.fft.irfft(self.stft[0], n=N_FFT)
        out = self.committed[:HOP_LENGTH] / OLA_GAIN
        if self._early is not None:
            out = self._early.add(self.stft[0])
        self.committed[:-HOP_LENGTH] = self.committed[HOP_LENGTH:]
        self.committed[-HOP_LENGTH:] = 0.0
        for array in (self.magnitude, self.stft, self.previous):
            array[:-1] = array[1:]
        self.count -= 1
        return out

    def drain(self) -> list[np.ndarray]:
        """Commit every frame left in the block, then the overlap-add tail."""
        chunks = []
        while self.count > 0:
            chunks.append(self._commit())
        if self._early is not None:
            return chunks + self._early.tail()
        for _ in range(TAIL_CHUNKS):
            chunks.append(self.committed[:HOP_LENGTH] / OLA_GAIN)
            self.committed[:-HOP_LENGTH] = self.committed[HOP_LENGTH:]
            self.committed[-HOP_LENGTH:] = 0.0
        return chunks


class GriffinLim(SlidingBlock):
    """The streaming Griffin-Lim baseline: first guess = previous phase advanced by each bin's frequency.

    Parameters
    ----------
    lookahead : int
        Frames iterated beyond the committed one (default 3).
    n_iter, momentum : int, float
        Iterations per frame and fast-GL momentum.
    synthesis : {"hann", "early"}
        See :class:`SlidingBlock`.
    """

    def __init__(self, lookahead: int = 3, *, n_iter: int = 8, momentum: float = 0.99,
                 synthesis: str = "hann") -> None:
        super().__init__(lookahead, n_iter, momentum, synthesis)

    def first_guess(self, magnitude: np.ndarray) -> np.ndarray:
        if self.count == 0:
            return np.zeros(N_BINS)
        return np.angle(self.stft[self.count - 1]) + BIN_ADVANCE
