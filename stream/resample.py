"""Streaming rational resampling from a device rate to the model rate (125 Hz).

The resampler is a polyphase FIR filter: conceptually the input is upsampled by ``up`` (zeros
stuffed in), low-pass filtered (the anti-alias filter of :func:`scipy.signal.resample_poly`: Kaiser
window, beta 5, 10 zero crossings per side) and every ``down``-th sample is kept, output ``n`` sitting
at input position ``n * down / up``. It is causal: output ``n`` uses inputs up to
``floor(n * down / up)`` only, and is emitted as soon as that input arrives, so the filter's state is
simply the last few input samples. Applied to a whole recording (:func:`resample_recording`) or chunk
by chunk (:class:`StreamingResampler`), it gives the same samples. The linear-phase filter delays the
signal by :attr:`StreamingResampler.delay_s` (80 ms from 1000 Hz).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from eegmusic.stream.errors import StreamError
from eegmusic.stream.spec import MODEL_SFREQ
from scipy.signal import firwin

MAX_UP = 500
MAX_DOWN = 5000
MAX_SFREQ = MODEL_SFREQ * MAX_DOWN
"""The highest device rate resampling takes (625 kHz): a stream or a recording claiming more is refused."""
SUPPORTED_RATES_HINT = "use a device rate such as 1000, 500, 256, 250 or 125 Hz"

_BLOCK_VALUES = 1 << 21  # gathered values per block of outputs (bounds memory on whole recordings)


def resample_ratio(sfreq_in: float, sfreq_out: float = MODEL_SFREQ) -> tuple[int, int]:
    """Return ``(up, down)`` with ``sfreq_out = sfreq_in * up / down`` in lowest terms.

    Raises
    ------
    StreamError
        For an irregular (0) or non-finite rate, a rate below ``sfreq_out``, or a rate whose ratio to
        ``sfreq_out`` needs an impractically long filter (e.g. 512.37 Hz).
    """
    sfreq_in = float(sfreq_in)
    if not np.isfinite(sfreq_in) or sfreq_in <= 0:
        raise StreamError(
            f"stream rate {sfreq_in:g} Hz is irregular or invalid; the model needs a regularly sampled "
            f"stream ({SUPPORTED_RATES_HINT})"
        )
    if sfreq_in < sfreq_out:
        raise StreamError(
            f"stream rate {sfreq_in:g} Hz is below the model's {sfreq_out:g} Hz; {SUPPORTED_RATES_HINT}"
        )
    rate = Fraction(sfreq_in).limit_denominator(100)
    ratio = Fraction(sfreq_out).limit_denominator(100) / rate
    inexact = abs(float(rate) - sfreq_in) > 1e-6 * sfreq_in
    if inexact or ratio.numerator > MAX_UP or ratio.denominator > MAX_DOWN:
        raise StreamError(
            f"stream rate {sfreq_in:g} Hz cannot be resampled to {sfreq_out:g} Hz by a short polyphase "
            f"filter; {SUPPORTED_RATES_HINT}"
        )
    return ratio.numerator, ratio.denominator


def antialias_filter(up: int, down: int) -> np.ndarray:
    """FIR anti-alias filter at the upsampled rate (as :func:`scipy.signal.resample_poly` designs it).

    Returns
    -------
    taps : ndarray, shape (20 * max(up, down) + 1,)
        Gain ``up`` in the pass band, so the output keeps the input's amplitude.
    """
    max_rate = max(up, down)
    half_len = 10 * max_rate
    return firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up


class StreamingResampler:
    """Resample multichannel chunks from ``sfreq_in`` to ``sfreq_out`` with carried state.

    Parameters
    ----------
    sfreq_in : float
        Input rate in Hz.
    n_chans : int
        Number of channels.
    sfreq_out : float
        Output rate in Hz (the model rate by default).

    Examples
    --------
    >>> rs = StreamingResampler(1000.0, n_chans=2)
    >>> y, newest = rs.process(np.ones((2, 80)))
    >>> y.shape, newest[-1]
    ((2, 10), 72)
    """

    def __init__(self, sfreq_in: float, n_chans: int, sfreq_out: float = MODEL_SFREQ):
        self.sfreq_in = float(sfreq_in)
        self.sfreq_out = float(sfreq_out)
        self.n_chans = int(n_chans)
        self.up, self.down = resample_ratio(sfreq_in, sfreq_out)
        self.identity = self.up == 1 and self.down == 1
        if self.identity:
            self.taps = np.ones(1)
            self._phases = np.ones((1, 1))
        else:
            self.taps = antialias_filter(self.up, self.down)
            n_per_phase = -(-len(self.taps) // self.up)
            padded = np.zeros(n_per_phase * self.up)
            padded[:len(self.taps)] = self.taps
            # row p holds taps p, p + up, p + 2 up, ...: output n uses row (n * down) % up
            self._phases = padded.reshape(n_per_phase, self.up).T.copy()
        self.reset()

    @property
    def support(self) -> int:
        """How many of the newest input samples each output depends on."""
        return self._phases.shape[1]

    @property
    def delay_s(self) -> float:
        """Group delay of the anti-alias filter in seconds."""
        return (len(self.taps) - 1) / 2 / (self.up * self.sfreq_in)

    def reset(self) -> None:
        """Forget all input: the next sample is input 0, preceded by zeros."""
        self._history = np.zeros((self.n_chans, self.support - 1))
        self._n_in = 0
        self._n_out = 0

    def n_outputs(self, n_in: int) -> int:
        """Number of outputs emitted once ``n_in`` inputs have arrived."""
        return 0 if n_in <= 0 else -(-(n_in * self.up) // self.down)

    def process(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resample the next chunk.

        Parameters
        ----------
        chunk : ndarray, shape (n_chans, n)
            Next input samples (any real dtype; computed in float64).

        Returns
        -------
        out : ndarray, shape (n_chans, m), float64
            Every output whose newest input is in this chunk.
        newest : ndarray of int, shape (m,)
            For each output, the index in ``chunk`` of the newest input it depends on.
        """
        n = chunk.shape[1]
        if chunk.shape[0] != self.n_chans:
            raise ValueError(f"resampler has {self.n_chans} channels, got a chunk with {chunk.shape[0]}")
        if self.identity:
            self._n_in += n
            self._n_out += n
            return np.asarray(chunk, dtype=np.float64), np.arange(n)
        n_before = self._n_in
        self._n_in += n
        outputs = np.arange(self._n_out, self.n_outputs(self._n_in))
        self._n_out += outputs.size
        extended = np.concatenate([self._history, np.asarray(chunk, dtype=np.float64)], axis=1)
        self._history = extended[:, extended.shape[1] - (self.support - 1):].copy()
        newest_global = (outputs * self.down) // self.up
        newest = newest_global - n_before
        out = np.empty((self.n_chans, outputs.size))
        positions = newest + (self.support - 1)  # index in `extended`
        lags = np.arange(self.support)
        block = max(1, _BLOCK_VALUES // (self.n_chans * self.support))
        for start in range(0, outputs.size, block):
            stop = min(start + block, outputs.size)
            gathered = extended[:, positions[start:stop, None] - lags[None, :]]  # (chans, m, support)
            weights = self._phases[(outputs[start:stop] * self.down) % self.up]  # (m, support)
            out[:, start:stop] = np.einsum("cmk,mk->cm", gathered, weights)
        return out, newest


def resample_recording(eeg: np.ndarray, sfreq_in: float, sfreq_out: float = MODEL_SFREQ) -> np.ndarray:
    """Resample a whole recording: the same samples :class:`StreamingResampler` gives chunk by chunk.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
    sfreq_in, sfreq_out : float
        Rates in Hz.

    Returns
    -------
    eeg : ndarray, shape (n_chans, ceil(n_times * sfreq_out / sfreq_in)), float64
    """
    eeg = np.asarray(eeg)
    out, _ = StreamingResampler(sfreq_in, eeg.shape[0], sfreq_out).process(eeg)
    return out
