"""Streaming rational resampling from a device rate to the model rate (125 Hz).

The resampler is a polyphase FIR filter: conceptually the input is upsampled by ``up`` (zeros
stuffed in), low-pass filtered (the anti-alias filter of :func:`scipy.signal.resample_poly`: Kaiser
window, beta 5, 10 zero crossings per side) and every ``down``-th sample is kept.

The filter is linear-phase and centred, so it has no phase lag of its own but needs the input up to
:attr:`StreamingResampler.delay_s` (10 model samples, 80 ms at 125 Hz, from any device rate) after
the instant it resamples. Output ``n`` holds the signal at input position ``n * down / up`` (the
instant ``n / 125`` s after the first input), exactly as :func:`scipy.signal.resample_poly` places it,
and is emitted once the input ``delay_s`` later has arrived: live, the delay shows as latency, never
as a shift of the EEG against time (the caller stamps output ``n`` with the instant it holds:
:meth:`StreamingResampler.held_lag_s`). The filter's state is the last few input samples; before the
first input it holds copies of the first sample (the recording's start held, not zeros). Applied to a
whole recording (:func:`resample_recording`, whose last ``delay_s`` of outputs come from holding the
last sample) or chunk by chunk (:class:`StreamingResampler`), it gives the same samples.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from eegmusic.stream.errors import StreamError
from eegmusic.stream.spec import MODEL_SFREQ

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
    from scipy.signal import firwin  # imported where used (stream.preprocess says why)

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
    >>> y, newest = rs.process(np.ones((2, 160)))
    >>> y.shape, int(newest[-1]), rs.delay_samples   # output 9 (input 72) needs input 72 + 80
    ((2, 10), 152, 10)
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
            self.delay_samples = 0
        else:
            self.taps = antialias_filter(self.up, self.down)
            n_per_phase = -(-len(self.taps) // self.up)
            padded = np.zeros(n_per_phase * self.up)
            padded[:len(self.taps)] = self.taps
            # row p holds taps p, p + up, p + 2 up, ...: output n uses row (n * down) % up
            self._phases = padded.reshape(n_per_phase, self.up).T.copy()
            # the filter's centre lags its newest tap by (len - 1) / 2 upsampled samples: a whole
            # number of outputs (10), since half the length is 10 * max(up, down) = 10 * down
            half_len = (len(self.taps) - 1) // 2
            self.delay_samples = half_len // self.down
            assert self.delay_samples * self.down == half_len
        self.reset()

    @property
    def support(self) -> int:
        """How many of the newest input samples each output depends on."""
        return self._phases.shape[1]

    @property
    def delay_s(self) -> float:
        """Group delay of the anti-alias filter in seconds: how long after the instant an output holds
        its newest input comes (``delay_samples / sfreq_out``; 0 at the identity rate)."""
        return self.delay_samples / self.sfreq_out

    def reset(self) -> None:
        """Forget all input: the next sample is input 0 (preceded by copies of itself)."""
        self._history = np.zeros((self.n_chans, self.support - 1))
        self._n_in = 0
        self._n_out = 0

    def n_outputs(self, n_in: int) -> int:
        """Number of outputs emitted once ``n_in`` inputs have arrived (``delay_samples`` fewer than
        the input spans: those wait for input yet to come)."""
        return max(0, -(-(n_in * self.up) // self.down) - self.delay_samples)

    def held_lag_s(self, newest: np.ndarray) -> np.ndarray:
        """Seconds from each output's newest input back to the instant whose signal it holds.

        Parameters
        ----------
        newest : ndarray of int, shape (m,)
            The outputs' newest inputs as indices since :meth:`reset` (``newest`` of :meth:`process`
            plus the inputs before that chunk).

        Returns
        -------
        lag_s : ndarray, shape (m,)
            ``delay_s`` less the fraction of an input period by which the instant falls after its
            newest input (none when ``sfreq_in`` is a multiple of ``sfreq_out``): the timestamp of the
            newest input minus this is the time of the EEG the output holds.
        """
        newest = np.asarray(newest, dtype=np.int64)
        if self.identity:
            return np.zeros(newest.shape)
        # distinct filter outputs have distinct newest inputs (down >= up): recover which one, m
        m = -(-(newest * self.up) // self.down)
        held = (m - self.delay_samples) * self.down   # the instant held, in upsampled samples
        return (newest * self.up - held) / (self.up * self.sfreq_in)

    def process(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resample the next chunk.

        Parameters
        ----------
        chunk : ndarray, shape (n_chans, n)
            Next input samples (any real dtype; computed in float64).

        Returns
        -------
        out : ndarray, shape (n_chans, m), float64
            Every output whose newest input is in this chunk; output ``n`` (since :meth:`reset`) holds
            the signal at input position ``n * down / up``.
        newest : ndarray of int, shape (m,)
            For each output, the index in ``chunk`` of the newest input it depends on (the input
            ``delay_s`` after the instant it holds, rounded down).
        """
        n = chunk.shape[1]
        if chunk.shape[0] != self.n_chans:
            raise ValueError(f"resampler has {self.n_chans} channels, got a chunk with {chunk.shape[0]}")
        if self.identity:
            self._n_in += n
            self._n_out += n
            return np.asarray(chunk, dtype=np.float64), np.arange(n)
        n_before = self._n_in
        if n_before == 0 and n:
            self._history[:] = np.asarray(chunk[:, :1], dtype=np.float64)  # hold the first sample
        self._n_in += n
        # output j is the filter's output j + delay_samples (centred on input j * down / up)
        outputs = np.arange(self._n_out, self.n_outputs(self._n_in)) + self.delay_samples
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
    """Resample a whole recording: the samples :class:`StreamingResampler` gives chunk by chunk, and
    the last ``delay_s`` of them, which live would wait for later input, from holding the last sample.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
    sfreq_in, sfreq_out : float
        Rates in Hz.

    Returns
    -------
    eeg : ndarray, shape (n_chans, ceil(n_times * sfreq_out / sfreq_in)), float64
        Sample ``i`` holds the recording at ``i / sfreq_out`` s: no lag at any rate.
    """
    eeg = np.asarray(eeg)
    resampler = StreamingResampler(sfreq_in, eeg.shape[0], sfreq_out)
    n_out = -(-(eeg.shape[1] * resampler.up) // resampler.down)
    out, _ = resampler.process(flush_padded(eeg, resampler))
    return out[:, :n_out]


def flush_padded(eeg: np.ndarray, resampler: StreamingResampler) -> np.ndarray:
    """``eeg`` followed by one filter support of copies of its last sample (the tail a live stream
    would still wait for). Held rather than zero: EEG channels carry offsets of up to millivolts, and
    a step to 0 would ring through the last ``delay_s`` of output; the held value continues a
    low-passed signal smoothly. Unchanged at the identity rate or when empty.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)

    Returns
    -------
    eeg : ndarray, shape (n_chans, n_times + support) (or ``eeg`` itself)
    """
    if resampler.identity or eeg.shape[1] == 0:
        return eeg
    return np.concatenate([eeg, np.repeat(eeg[:, -1:], resampler.support, axis=1)], axis=1)
