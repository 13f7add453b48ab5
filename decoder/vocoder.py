"""Streaming phase reconstruction: mel-dB frames in, 512 new audio samples out per frame.

The decoder emits one mel-dB frame every hop (512 samples at 22050 Hz). :class:`StreamingVocoder`
turns each frame into sound as it comes:

1. mel → linear magnitude through the precomputed pseudo-inverse of the mel basis, clipped at 0
   (on power, then square root, like librosa's ``mel_to_stft``);
2. phase by RTPGHI — real-time phase-gradient heap integration (Průša & Holighaus, "Phase vocoder
   done right", EUSIPCO 2017): the phase time derivative comes from the frequency derivative of the
   log-magnitude, the phase frequency derivative from its time derivative (centred with one frame of
   lookahead, or causal), for a Gaussian fitted to the Hann window (λ = γ = 0.25645·L²); phases are
   integrated from the largest coefficients outwards through a max-heap; coefficients below a
   relative tolerance get a (deterministic pseudo-) random phase;
3. windowed inverse FFT and overlap-add, in librosa's STFT convention (centre=True framing, periodic
   Hann, phase origin at the frame start — the frame-centred phase times (−1)^m for bin m).

A streaming Griffin-Lim baseline (a few fast-GL iterations over a short sliding block, committed
samples held fixed, as RTISI-LA does) is offered for comparison through the same interface.

Timing: the samples returned by call k cover stimulus time
``[(k - latency_frames)·512, (k - latency_frames + 1)·512)``, with
``latency_frames = lookahead + 2`` (two frames are inherent to overlap-adding 2048-sample windows
at hop 512).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numba
import numpy as np
from eegmusic.decoder.melspec import DB_FLOOR, HOP_LENGTH, N_FFT, N_MELS, mel_basis
from eegmusic.stream.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

N_BINS = N_FFT // 2 + 1
GAMMA = 0.25645 * N_FFT ** 2
"""λ of the Gaussian that best matches a Hann window of length N_FFT (samples²)."""

METHODS = ("rtpghi", "griffinlim")
DEFAULT_TOL = 1e-5
"""Coefficients below this fraction of the largest magnitude (current and previous frame) get a random
phase."""

_LOG_FLOOR = 1e-7
_OLA_GAIN = 1.5
"""Sum of squared periodic-Hann windows at hop N_FFT/4 (constant in steady state)."""


def _hann() -> np.ndarray:
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)


_WINDOW = _hann()
_BIN_SIGN = np.where(np.arange(N_BINS) % 2 == 0, 1.0, -1.0)
_BIN_ADVANCE = 2.0 * np.pi * HOP_LENGTH * np.arange(N_BINS) / N_FFT
"""Phase advance of each bin's centre frequency over one hop (rad)."""
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


@lru_cache(maxsize=1)
def mel_pinv() -> np.ndarray:
    """Pseudo-inverse of the mel basis (computed once).

    Returns
    -------
    pinv : ndarray, shape (N_FFT // 2 + 1, N_MELS), float64
    """
    pinv = np.linalg.pinv(mel_basis().astype(np.float64))
    pinv.setflags(write=False)
    return pinv


def mel_db_to_magnitude(mel_db: np.ndarray) -> np.ndarray:
    """Linear STFT magnitude from mel-dB through the clipped pseudo-inverse of the mel basis.

    Parameters
    ----------
    mel_db : ndarray, shape (N_MELS,) or (N_MELS, n_frames)

    Returns
    -------
    magnitude : ndarray, shape (N_FFT // 2 + 1,) or (N_FFT // 2 + 1, n_frames), float64
    """
    power = np.power(10.0, np.asarray(mel_db, dtype=np.float64) / 10.0)
    return np.sqrt(np.maximum(mel_pinv() @ power, 0.0))


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


class _RTPGHIState:
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


def _log_magnitude(magnitude: np.ndarray) -> np.ndarray:
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
    state = _RTPGHIState(lookahead, tol)
    logs = _log_magnitude(magnitude)
    n_frames = magnitude.shape[1]
    phase = np.empty_like(magnitude)
    for n in range(n_frames):
        logs_next = logs[:, n + 1] if (lookahead and n + 1 < n_frames) else None
        s_cur = np.ascontiguousarray(magnitude[:, n])
        phase[:, n] = state.frame(s_cur, np.ascontiguousarray(logs[:, n]),
                                  None if logs_next is None else np.ascontiguousarray(logs_next))
    return phase + np.pi * (np.arange(N_BINS) % 2)[:, None]


def _window_sum_square(n_frames: int) -> np.ndarray:
    """Sum of squared windows of ``n_frames`` centred frames, on output samples (length of istft)."""
    wss = np.zeros(HOP_LENGTH * (n_frames - 1) + N_FFT)
    for n in range(n_frames):
        wss[n * HOP_LENGTH:n * HOP_LENGTH + N_FFT] += _WINDOW ** 2
    return wss[N_FFT // 2:N_FFT // 2 + HOP_LENGTH * (n_frames - 1)]


def _correct_edges(audio: np.ndarray, n_frames: int) -> None:
    """Rescale the first and last N_FFT samples from the steady-state gain to the true window sum.

    Streaming overlap-add divides by the constant steady-state window sum; a signal that starts or
    ends at the first or last frame (a file) has fewer windows there. librosa's istft divides by the
    actual sum; this does the same, in place, touching only the two edges.
    """
    wss = _window_sum_square(n_frames)
    for part in (slice(0, min(N_FFT, audio.size)), slice(max(audio.size - N_FFT, 0), audio.size)):
        w = wss[part][: audio[part].size]
        gain = np.where(w > 1e-3, _OLA_GAIN / np.maximum(w, 1e-3), 1.0)
        audio[part] = audio[part] * gain


def overlap_add(stft: np.ndarray) -> np.ndarray:
    """Inverse STFT by windowed overlap-add in librosa's convention.

    Equals ``librosa.istft(stft, hop_length=512, n_fft=2048)``; computed as the streaming vocoder
    does (constant steady-state gain), then edge-corrected like :func:`vocode`.

    Parameters
    ----------
    stft : ndarray, shape (N_FFT // 2 + 1, n_frames), complex

    Returns
    -------
    audio : ndarray, shape (HOP_LENGTH * (n_frames - 1),), float64
    """
    n_frames = stft.shape[1]
    frames = _WINDOW[:, None] * np.fft.irfft(stft, n=N_FFT, axis=0)
    out = np.zeros(HOP_LENGTH * (n_frames - 1) + N_FFT)
    for n in range(n_frames):
        out[n * HOP_LENGTH:n * HOP_LENGTH + N_FFT] += frames[:, n]
    audio = out[N_FFT // 2:N_FFT // 2 + HOP_LENGTH * (n_frames - 1)] / _OLA_GAIN
    _correct_edges(audio, n_frames)
    return audio


def rtpghi_block(mel_db: np.ndarray, *, lookahead: int = 1, tol: float = DEFAULT_TOL) -> np.ndarray:
    """Vocode a whole mel-dB array at once with RTPGHI (offline reference of the streaming path).

    Parameters
    ----------
    mel_db : ndarray, shape (N_MELS, n_frames)

    Returns
    -------
    audio : ndarray, shape (HOP_LENGTH * (n_frames - 1),), float32
    """
    magnitude = mel_db_to_magnitude(_check_mel_array(mel_db))
    phase = rtpghi_phase(magnitude, lookahead=lookahead, tol=tol)
    return overlap_add(magnitude * np.exp(1j * phase)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Streaming Griffin-Lim baseline


class _GriffinLimState:
    """Fast Griffin-Lim over a sliding block of ``lookahead + 1`` frames; older samples are fixed."""

    def __init__(self, lookahead: int, n_iter: int, momentum: float) -> None:
        self.block = lookahead + 1
        self.n_iter = n_iter
        self.momentum = momentum
        self.region = (self.block - 1) * HOP_LENGTH + N_FFT
        # window sum-square over the block region, counting the three committed frames before it
        wss = np.zeros(self.region + 3 * HOP_LENGTH)
        for j in range(self.block + 3):
            wss[j * HOP_LENGTH:j * HOP_LENGTH + N_FFT] += _WINDOW ** 2
        self._wss = np.maximum(wss[3 * HOP_LENGTH:], 1e-3)
        self.reset()

    def reset(self) -> None:
        self.committed = np.zeros(self.region)
        self.magnitude = np.zeros((self.block, N_BINS))
        self.stft = np.zeros((self.block, N_BINS), dtype=np.complex128)
        self.previous = np.zeros((self.block, N_BINS), dtype=np.complex128)
        self.count = 0

    def _iterate(self) -> None:
        c = self.count
        for _ in range(self.n_iter):
            y = self.committed.copy()
            frames = _WINDOW * np.fft.irfft(self.stft[:c], n=N_FFT, axis=1)
            for j in range(c):
                y[j * HOP_LENGTH:j * HOP_LENGTH + N_FFT] += frames[j]
            y /= self._wss
            segments = np.stack([y[j * HOP_LENGTH:j * HOP_LENGTH + N_FFT] for j in range(c)])
            rebuilt = np.fft.rfft(_WINDOW * segments, axis=1)
            angles = rebuilt - (self.momentum / (1.0 + self.momentum)) * self.previous[:c]
            self.previous[:c] = rebuilt
            self.stft[:c] = self.magnitude[:c] * angles / np.maximum(np.abs(angles), 1e-16)

    def push(self, s: np.ndarray) -> np.ndarray | None:
        """Add a frame's magnitude; return the next HOP_LENGTH committed samples, or None."""
        c = self.count
        if c > 0:
            phase = np.angle(self.stft[c - 1]) + _BIN_ADVANCE
        else:
            phase = np.zeros(N_BINS)
        self.magnitude[c] = s
        self.stft[c] = s * np.exp(1j * phase)
        self.previous[c] = 0.0
        self.count = c + 1
        self._iterate()
        if self.count < self.block:
            return None
        return self._commit()

    def _commit(self) -> np.ndarray:
        self.committed[:N_FFT] += _WINDOW * np.fft.irfft(self.stft[0], n=N_FFT)
        out = self.committed[:HOP_LENGTH] / _OLA_GAIN
        self.committed[:-HOP_LENGTH] = self.committed[HOP_LENGTH:]
        self.committed[-HOP_LENGTH:] = 0.0
        for array in (self.magnitude, self.stft, self.previous):
            array[:-1] = array[1:]
        self.count -= 1
        return out

    def drain(self) -> list[np.ndarray]:
        """Commit every frame left in the block, then the rest of the overlap-add buffer."""
        chunks = []
        while self.count > 0:
            chunks.append(self._commit())
        tail = self.committed[:N_FFT - HOP_LENGTH] / _OLA_GAIN
        chunks.extend(tail.reshape(-1, HOP_LENGTH))
        return chunks


# ---------------------------------------------------------------------------------------------
# The streaming vocoder


def _check_mel_array(mel_db: np.ndarray) -> np.ndarray:
    mel_db = np.asarray(mel_db)
    if mel_db.ndim != 2 or mel_db.shape[0] != N_MELS:
        raise ModelError(f"mel-dB array has shape {mel_db.shape}; the vocoder needs ({N_MELS}, n_frames) "
                         f"(n_mels {N_MELS}, docs/design.md mel spec). Check the model's output.")
    return np.where(np.isfinite(mel_db), mel_db, DB_FLOOR)


class StreamingVocoder:
    """Mel-dB frames in, 512 new audio samples out per frame.

    Parameters
    ----------
    method : {"rtpghi", "griffinlim"}
        Phase reconstruction: RTPGHI (default) or the streaming Griffin-Lim baseline.
    lookahead : int or None
        Frames the vocoder waits for before synthesising a frame. RTPGHI: 0 (causal phase
        derivative) or 1 (centred, default). Griffin-Lim: frames iterated beyond the committed one
        (default 3).
    tol : float
        RTPGHI relative tolerance (random phase below ``tol`` × the largest magnitude).
    n_iter, momentum : int, float
        Griffin-Lim iterations per frame and fast-GL momentum.

    Attributes
    ----------
    latency_frames : int
        The samples of call k belong to frame ``k - latency_frames`` of stimulus time
        (``lookahead + 2``; multiply by 512/22050 for seconds).

    Examples
    --------
    >>> vocoder = StreamingVocoder()
    >>> chunk = vocoder.process(np.full(128, -40.0, dtype=np.float32))
    >>> chunk.shape, chunk.dtype
    ((512,), dtype('float32'))
    """

    def __init__(self, method: str = "rtpghi", lookahead: int | None = None, *, tol: float = DEFAULT_TOL,
                 n_iter: int = 8, momentum: float = 0.99) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown vocoder method {method!r}; use one of {', '.join(METHODS)}")
        if lookahead is None:
            lookahead = 1 if method == "rtpghi" else 3
        if method == "rtpghi" and lookahead not in (0, 1):
            raise ConfigError(f"RTPGHI lookahead must be 0 or 1 frame, got {lookahead!r}")
        if method == "griffinlim" and not (isinstance(lookahead, int) and 0 <= lookahead <= 16):
            raise ConfigError(f"Griffin-Lim lookahead must be 0..16 frames, got {lookahead!r}")
        self.method = method
        self.lookahead = int(lookahead)
        self.latency_frames = self.lookahead + 2
        self._pinv = mel_pinv()
        self._ola = np.zeros(N_FFT)
        self._fade_out = np.cos(0.5 * np.pi * (np.arange(HOP_LENGTH) + 0.5) / HOP_LENGTH) ** 2
        self.nonfinite_frames = 0
        self.frames = 0
        if method == "rtpghi":
            self._rtpghi = _RTPGHIState(self.lookahead, tol)
        else:
            self._gl = _GriffinLimState(self.lookahead, n_iter, momentum)
        self.reset()

    def reset(self) -> None:
        """Forget all phase and overlap-add state (call on a gap; see :meth:`fade_out`)."""
        self._ola[:] = 0.0
        self._pending: tuple[np.ndarray, np.ndarray] | None = None
        if self.method == "rtpghi":
            self._rtpghi.reset()
        else:
            self._gl.reset()

    def _magnitude(self, frame_db: np.ndarray) -> np.ndarray:
        frame_db = np.asarray(frame_db)
        if frame_db.shape != (N_MELS,):
            raise ModelError(f"mel frame has shape {frame_db.shape}; the vocoder needs ({N_MELS},) mel-dB "
                             f"values (n_mels {N_MELS}, docs/design.md). Check the model's output 'n_mels'.")
        if not np.all(np.isfinite(frame_db)):
            # a broken frame plays as silence rather than stopping the audio; counted
            self.nonfinite_frames += 1
            if self.nonfinite_frames == 1:
                log.warning("non-finite values in a mel frame; playing them as silence (counted)")
            frame_db = np.where(np.isfinite(frame_db), frame_db, DB_FLOOR)
        power = np.power(10.0, frame_db.astype(np.float64) / 10.0)
        return np.sqrt(np.maximum(self._pinv @ power, 0.0))

    def process(self, frame_db: np.ndarray) -> np.ndarray:
        """Take one mel-dB frame; return the next 512 audio samples.

        Parameters
        ----------
        frame_db : ndarray, shape (N_MELS,)
            One mel-dB frame (docs/design.md scale: reference 1.0, floor -80 dB). Non-finite values are
            played as silence and counted in ``nonfinite_frames``.

        Returns
        -------
        audio : ndarray, shape (HOP_LENGTH,), float32
            Samples of stimulus frame ``k - latency_frames`` (zeros while the lookahead fills).
        """
        s = self._magnitude(frame_db)
        self.frames += 1
        if self.method == "griffinlim":
            out = self._gl.push(s)
            return np.zeros(HOP_LENGTH, np.float32) if out is None else out.astype(np.float32)
        logs = _log_magnitude(s)
        if self.lookahead == 0:
            return self._synthesise(s, logs, None)
        if self._pending is None:
            self._pending = (s, logs)
            return np.zeros(HOP_LENGTH, dtype=np.float32)
        s_cur, logs_cur = self._pending
        self._pending = (s, logs)
        return self._synthesise(s_cur, logs_cur, logs)

    def _synthesise(self, s: np.ndarray, logs: np.ndarray, logs_next: np.ndarray | None) -> np.ndarray:
        phase = self._rtpghi.frame(s, logs, logs_next)
        spectrum = (s * _BIN_SIGN) * np.exp(1j * phase)
        self._ola += _WINDOW * np.fft.irfft(spectrum, n=N_FFT)
        return self._shift()

    def _shift(self) -> np.ndarray:
        out = (self._ola[:HOP_LENGTH] / _OLA_GAIN).astype(np.float32)
        self._ola[:-HOP_LENGTH] = self._ola[HOP_LENGTH:]
        self._ola[-HOP_LENGTH:] = 0.0
        return out

    def flush(self) -> np.ndarray:
        """Synthesise what the lookahead still holds and drain the overlap-add; then reset.

        Returns
        -------
        audio : ndarray, shape (HOP_LENGTH * k,), float32
            The rest of the signal (it decays to zero with the last window).
        """
        if self.method == "griffinlim":
            chunks = self._gl.drain()
        else:
            chunks = []
            if self._pending is not None:
                s_cur, logs_cur = self._pending
                self._pending = None
                chunks.append(self._synthesise(s_cur, logs_cur, None))
            while len(chunks) < 4 and np.any(self._ola):
                chunks.append(self._shift())
        self.reset()
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32)

    def fade_out(self) -> np.ndarray:
        """Close the sound at a gap: the next 512 samples faded to zero, then :meth:`reset`.

        Call it when frames stop coming (a gap starts); the caller plays the returned chunk. After a
        gap the overlap-add restarts from silence, whose first window is itself a fade-in, so no
        click is heard at either end.

        Returns
        -------
        audio : ndarray, shape (HOP_LENGTH,), float32
        """
        rest = self.flush()
        out = np.zeros(HOP_LENGTH, dtype=np.float32)
        n = min(HOP_LENGTH, rest.size)
        out[:n] = rest[:n] * self._fade_out[:n]
        return out


def vocode(mel_db: np.ndarray, *, method: str = "rtpghi", lookahead: int | None = None,
           length: int | None = None, progress: bool = False, **options) -> np.ndarray:
    """Vocode a whole mel-dB array frame by frame through :class:`StreamingVocoder`.

    The streaming latency is removed, so sample t of the result lines up with sample t of the audio
    the mel was computed from (:func:`decoder.melspec.mel_db`), and the first and last 2048 samples
    are rescaled to the true window sum (as ``librosa.istft`` does) because a file starts and ends
    there; everything between is the streaming output as is.

    Parameters
    ----------
    mel_db : ndarray, shape (N_MELS, n_frames)
    method, lookahead, options
        Passed to :class:`StreamingVocoder`.
    length : int, optional
        Samples to return (default ``HOP_LENGTH * (n_frames - 1)``, like ``librosa.istft``).
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    audio : ndarray, shape (length,), float32
    """
    mel_db = np.asarray(mel_db)
    if mel_db.ndim != 2 or mel_db.shape[0] != N_MELS:
        _check_mel_array(mel_db)
    vocoder = StreamingVocoder(method, lookahead, **options)
    n_frames = mel_db.shape[1]
    frames = range(n_frames)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="vocoding", unit="frame", leave=False)
    chunks = [vocoder.process(mel_db[:, n]) for n in frames]
    chunks.append(vocoder.flush())
    audio = np.concatenate(chunks)
    # output of call k starts at stimulus sample (k - latency_frames) * HOP_LENGTH
    start = vocoder.latency_frames * HOP_LENGTH
    if length is None:
        length = HOP_LENGTH * (n_frames - 1)
    audio = audio[start:start + length]
    if audio.size < length:
        audio = np.concatenate([audio, np.zeros(length - audio.size, dtype=np.float32)])
    _correct_edges(audio[:HOP_LENGTH * (n_frames - 1)], n_frames)
    return audio


# ---------------------------------------------------------------------------------------------
# Quality measures


def stft_magnitude(audio: np.ndarray) -> np.ndarray:
    """|STFT| in the design framing (n_fft 2048, hop 512, Hann, centre=True).

    Returns
    -------
    magnitude : ndarray, shape (N_FFT // 2 + 1, 1 + n_samples // HOP_LENGTH)
    """
    import librosa

    return np.abs(librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=N_FFT, hop_length=HOP_LENGTH))


def spectral_convergence(audio: np.ndarray, reference_magnitude: np.ndarray) -> float:
    """Spectral convergence of ``audio`` against a target magnitude, in dB (lower is better).

    ``20·log10(‖|STFT(audio)| − S‖_F / ‖S‖_F)``, frames compared over the common length.
    """
    magnitude = stft_magnitude(audio)
    n = min(magnitude.shape[1], reference_magnitude.shape[1])
    diff = np.linalg.norm(magnitude[:, :n] - reference_magnitude[:, :n])
    return float(20.0 * np.log10(diff / max(np.linalg.norm(reference_magnitude[:, :n]), 1e-20) + 1e-20))


def log_spectral_distance(audio: np.ndarray, reference_magnitude: np.ndarray, *, floor_db: float = -80.0
                          ) -> float:
    """Log-spectral distance in dB: per-frame RMS of the dB difference of power spectra, averaged.

    Powers are floored ``floor_db`` below the reference's peak, so silence does not dominate.
    """
    magnitude = stft_magnitude(audio)
    n = min(magnitude.shape[1], reference_magnitude.shape[1])
    ref = reference_magnitude[:, :n] ** 2
    est = magnitude[:, :n] ** 2
    floor = max(ref.max(), 1e-20) * 10.0 ** (floor_db / 10.0)
    diff = 10.0 * np.log10(np.maximum(est, floor)) - 10.0 * np.log10(np.maximum(ref, floor))
    return float(np.mean(np.sqrt(np.mean(diff ** 2, axis=0))))
