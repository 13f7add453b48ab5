"""RTPGHI: real-time phase-gradient heap integration (Průša & Holighaus, "Phase vocoder done right",
EUSIPCO 2017).

The phase time derivative comes from the frequency derivative of the log-magnitude, the phase
frequency derivative from its time derivative (centred with one frame of look-ahead, or causal),
for a Gaussian fitted to the Hann window (λ = γ = 0.25645·L²); phases are integrated from the
largest coefficients outwards through a max-heap; coefficients below a relative tolerance get a
(deterministic pseudo-) random phase. The inner loop runs in numba without the GIL.

:class:`RTPGHI` is the streaming vocoder of this method; :class:`RTPGHIState` is the phase state
alone, which :mod:`decoder.vocoders.rtisi` uses to initialise its iterations.
"""

from __future__ import annotations

import numba
import numpy as np
from eegmusic.decoder.melspec import HOP_LENGTH, N_FFT
from eegmusic.decoder.vocoders.framing import BIN_SIGN, N_BINS, OverlapAdd

GAMMA = 0.25645 * N_FFT ** 2
"""λ of the Gaussian that best matches a Hann window of length N_FFT (samples²)."""
DEFAULT_TOL = 1e-5
"""Coefficients below this fraction of the largest magnitude (current and previous frame) get a random
phase."""
_LOG_FLOOR = 1e-7
# Phase derivatives of a Gaussian-window STFT in the frame-centred convention (x: time in samples,
# ω: frequency in cycles/sample, s: magnitude): ∂φ/∂x = 2πω + (1/λ)·∂log s/∂ω and
# ∂φ/∂ω = −λ·∂log s/∂x. Per hop a and per bin (1/M) with m the bin and n the frame:
#   time step      Δ_n φ = 2π·a·m/M + (a·M/λ)·∂log s/∂m
#   frequency step Δ_m φ = −(λ/(a·M))·∂log s/∂n
_BIN_STEP = 2.0 * np.pi * HOP_LENGTH / N_FFT
_TGRAD_SCALE = HOP_LENGTH * N_FFT / GAMMA
_FGRAD_SCALE = GAMMA / (HOP_LENGTH * N_FFT)
_FGRAD_LIMIT = 0.5 * np.pi
"""Largest frequency-direction phase step (rad/bin): an event N_FFT/4 from the window centre. Sharp
onsets from silence make the log-magnitude derivative unbounded; the model does not hold there."""

# ---------------------------------------------------------------------------------------------
# RTPGHI core (numba)


@numba.njit(cache=True, nogil=True, inline="always")
def _random_phase(frame_index, m):
    # splitmix64 of (frame, bin): a deterministic, allocation-free pseudo-random phase
    z = np.uint64(frame_index) * np.uint64(0x9E3779B97F4A7C15)
    z += np.uint64(m + 1) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (2.0 * np.pi / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def _heap_push(keys, vals, size, key, val):
    i = size
    keys[i] = key
    vals[i] = val
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] >= keys[i]:
            break
        keys[parent], keys[i] = keys[i], keys[parent]
        vals[parent], vals[i] = vals[i], vals[parent]
        i = parent
    return size + 1


@numba.njit(cache=True, nogil=True)
def _heap_pop(keys, vals, size):
    top = vals[0]
    size -= 1
    keys[0] = keys[size]
    vals[0] = vals[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and keys[left + 1] > keys[left]:
            child = left + 1
        if keys[i] >= keys[child]:
            break
        keys[i], keys[child] = keys[child], keys[i]
        vals[i], vals[child] = vals[child], vals[i]
        i = child
    return top, size


@numba.njit(cache=True, nogil=True)  # releases the GIL: the audio callback can run meanwhile
def _rtpghi_frame(s_prev, s_cur, logs_prev2, logs_prev, logs_cur, logs_next, phase_prev, tgrad_prev,
                  has_prev, lookahead, tol, frame_index, phase_out, tgrad_out, fgrad, heap_keys, heap_vals,
                  todo):
    """Integrate the phase of one frame from the previous one (frame-centred convention)."""
    n = s_cur.shape[0]
    # phase time derivative (per hop) from the frequency derivative of log-magnitude
    for m in range(n):
        if m == 0 or m == n - 1:
            dlog = 0.0
        else:
            dlog = 0.5 * (logs_cur[m + 1] - logs_cur[m - 1])
        tgrad_out[m] = _BIN_STEP * m + _TGRAD_SCALE * dlog
        # phase frequency derivative (per bin) from the time derivative of log-magnitude
        if lookahead:  # centred difference
            dlog = 0.5 * (logs_next[m] - logs_prev[m])
        else:
            # backward: the mean of the first-order difference (biased half a hop late) and the
            # second-order one (exact for a Gaussian's log profile, but overshooting at onsets)
            dlog = 1.25 * (logs_cur[m] - logs_prev[m]) - 0.25 * (logs_prev[m] - logs_prev2[m])
        # an event lies within the window's main lobe: bound the step (pi/2 per bin is +-N_FFT/4)
        fgrad[m] = min(max(-_FGRAD_SCALE * dlog, -_FGRAD_LIMIT), _FGRAD_LIMIT)
    max_s = 0.0
    for m in range(n):
        if s_cur[m] > max_s:
            max_s = s_cur[m]
        if has_prev and s_prev[m] > max_s:
            max_s = s_prev[m]
    abstol = tol * max_s
    n_todo = 0
    for m in range(n):
        if s_cur[m] > abstol:
            todo[m] = True
            n_todo += 1
        else:
            todo[m] = False
            phase_out[m] = _random_phase(frame_index, m)
    size = 0
    if has_prev:
        for m in range(n):
            if s_prev[m] > abstol and todo[m]:  # a predecessor that has a significant successor
                size = _heap_push(heap_keys, heap_vals, size, s_prev[m], m)
    while n_todo > 0:
        if size == 0:
            # an island with no significant predecessor: start at its largest coefficient
            best = -1
            best_s = -1.0
            for m in range(n):
                if todo[m] and s_cur[m] > best_s:
                    best_s = s_cur[m]
                    best = m
            if has_prev:
                phase_out[best] = phase_prev[best] + 0.5 * (tgrad_prev[best] + tgrad_out[best])
            else:
                phase_out[best] = 0.0
            todo[best] = False
            n_todo -= 1
            size = _heap_push(heap_keys, heap_vals, size, s_cur[best], best + n)
            continue
        val, size = _heap_pop(heap_keys, heap_vals, size)
        if val < n:
            m = val
            if todo[m]:
                phase_out[m] = phase_prev[m] + 0.5 * (tgrad_prev[m] + tgrad_out[m])
                todo[m] = False
                n_todo -= 1
                size = _heap_push(heap_keys, heap_vals, size, s_cur[m], m + n)
        else:
            m = val - n
            for k in (m + 1, m - 1):
                if 0 <= k < n and todo[k]:
                    if k > m:
                        phase_out[k] = phase_out[m] + 0.5 * (fgrad[m] + fgrad[k])
                    else:
                        phase_out[k] = phase_out[m] - 0.5 * (fgrad[m] + fgrad[k])
                    todo[k] = False
                    n_todo -= 1
                    size = _heap_push(heap_keys, heap_vals, size, s_cur[k], k + n)


class RTPGHIState:
    """Phase state of RTPGHI between frames (previous frame's magnitude, phase, time derivative)."""

    def __init__(self, lookahead: int, tol: float) -> None:
        self.lookahead = lookahead
        self.tol = tol
        self._heap_keys = np.empty(2 * N_BINS, dtype=np.float64)
        self._heap_vals = np.empty(2 * N_BINS, dtype=np.int64)
        self._todo = np.empty(N_BINS, dtype=np.bool_)
        self._fgrad = np.empty(N_BINS)
        self.s_prev = np.zeros(N_BINS)
        self.logs_prev = np.zeros(N_BINS)
        self.logs_prev2 = np.zeros(N_BINS)
        self.phase_prev = np.zeros(N_BINS)
        self.tgrad_prev = np.zeros(N_BINS)
        self.reset()

    def reset(self) -> None:
        self.has_prev = False
        self.has_prev2 = False
        self.frame_index = 0

    def frame(self, s_cur: np.ndarray, logs_cur: np.ndarray, logs_next: np.ndarray | None) -> np.ndarray:
        """Return the frame-centred phase of the next frame, shape (N_BINS,)."""
        # missing neighbours (after a reset, at the end) are replaced by the nearest frame we have
        if logs_next is None:
            logs_next = logs_cur
        if self.has_prev:
            logs_prev = self.logs_prev
        elif self.lookahead:  # linear extrapolation: the centred difference becomes a forward one
            logs_prev = 2.0 * logs_cur - logs_next
        else:
            logs_prev = logs_cur
        logs_prev2 = self.logs_prev2 if self.has_prev2 else logs_prev
        phase = np.empty(N_BINS)
        tgrad = np.empty(N_BINS)
        _rtpghi_frame(self.s_prev, s_cur, logs_prev2, logs_prev, logs_cur, logs_next, self.phase_prev,
                      self.tgrad_prev, self.has_prev, self.lookahead, self.tol, self.frame_index, phase,
                      tgrad, self._fgrad, self._heap_keys, self._heap_vals, self._todo)
        self.has_prev2 = self.has_prev
        self.logs_prev2 = self.logs_prev
        self.s_prev, self.logs_prev, self.phase_prev, self.tgrad_prev = s_cur, logs_cur, phase, tgrad
        self.has_prev = True
        self.frame_index += 1
        return phase

    def replace_previous_phase(self, phase: np.ndarray) -> None:
        """Continue from ``phase`` (frame-centred, shape (N_BINS,)) instead of the last one integrated.

        An iterative method that refined the previous frame's phase hands it back here, so the next
        frame is integrated from the refined phase rather than the first guess.
        """
        if self.has_prev:
            self.phase_prev = phase


def log_magnitude(magnitude: np.ndarray) -> np.ndarray:
    """Natural log of a magnitude, floored at 1e-7 (RTPGHI's log-magnitude)."""
    return np.log(magnitude + _LOG_FLOOR)


def rtpghi_phase(magnitude: np.ndarray, *, lookahead: int = 1, tol: float = DEFAULT_TOL) -> np.ndarray:
    """RTPGHI phase of a whole magnitude spectrogram (the block version of the streaming algorithm).

    Parameters
    ----------
    magnitude : ndarray, shape (N_FFT // 2 + 1, n_frames)
        Linear STFT magnitude (librosa framing: n_fft 2048, hop 512, Hann, centre=True).
    lookahead : {0, 1}
        Frames of lookahead for the phase frequency derivative (1: centred, 0: causal).
    tol : float
        Relative tolerance below which a coefficient gets a random phase.

    Returns
    -------
    phase : ndarray, shape (N_FFT // 2 + 1, n_frames)
        Phase in librosa's convention (``magnitude * exp(1j * phase)`` is a librosa STFT).
    """
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if magnitude.ndim != 2 or magnitude.shape[0] != N_BINS:
        raise ValueError(f"magnitude must have shape ({N_BINS}, n_frames), got {magnitude.shape}")
    state = RTPGHIState(lookahead, tol)
    logs = log_magnitude(magnitude)
    n_frames = magnitude.shape[1]
    phase = np.empty_like(magnitude)
    for n in range(n_frames):
        logs_next = logs[:, n + 1] if (lookahead and n + 1 < n_frames) else None
        s_cur = np.ascontiguousarray(magnitude[:, n])
        phase[:, n] = state.frame(s_cur, np.ascontiguousarray(logs[:, n]),
                                  None if logs_next is None else np.ascontiguousarray(logs_next))
    return phase + np.pi * (np.arange(N_BINS) % 2)[:, None]


class RTPGHI:
    """Streaming RTPGHI vocoder: one frame's magnitude in, the next HOP_LENGTH samples out.

    Parameters
    ----------
    lookahead : {0, 1}
        Frames of look-ahead for the phase frequency derivative (1: centred, 0: causal).
    tol : float
        Relative tolerance below which a coefficient gets a random phase.
    synthesis : {"hann", "early"}
        The overlap-add's synthesis window (:mod:`decoder.vocoders.framing`).
    """

    def __init__(self, lookahead: int = 1, *, tol: float = DEFAULT_TOL, synthesis: str = "hann") -> None:
        self.lookahead = int(lookahead)
        self._state = RTPGHIState(self.lookahead, tol)
        self._ola = OverlapAdd(synthesis)
        self.reset()

    def reset(self) -> None:
        """Forget the phase, the overlap-add and the frame waiting for its successor."""
        self._state.reset()
        self._ola.reset()
        self._pending: tuple[np.ndarray, np.ndarray] | None = None

    def push(self, magnitude: np.ndarray) -> np.ndarray | None:
        """Take one frame's magnitude (N_BINS,); return HOP_LENGTH samples, or None while filling."""
        logs = log_magnitude(magnitude)
        if self.lookahead == 0:
            return self._synthesise(magnitude, logs, None)
        if self._pending is None:
            self._pending = (magnitude, logs)
            return None
        s_cur, logs_cur = self._pending
        self._pending = (magnitude, logs)
        return self._synthesise(s_cur, logs_cur, logs)

    def _synthesise(self, s: np.ndarray, logs: np.ndarray, logs_next: np.ndarray | None) -> np.ndarray:
        phase = self._state.frame(s, logs, logs_next)
        return self._ola.add((s * BIN_SIGN) * np.exp(1j * phase))

    def drain(self) -> list[np.ndarray]:
        """Synthesise the frame the look-ahead still holds, then the overlap-add tail."""
        chunks = []
        if self._pending is not None:
            s_cur, logs_cur = self._pending
            self._pending = None
            chunks.append(self._synthesise(s_cur, logs_cur, None))
        return chunks + self._ola.tail()
