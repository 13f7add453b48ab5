"""Streaming phase reconstruction: mel-dB frames in, 512 new audio samples out per frame.

The decoder emits one mel-dB frame every hop (512 samples at 22050 Hz). :class:`StreamingVocoder`
turns each frame into sound as it comes:

1. mel → linear magnitude: a mel-consistent non-negative fit (``magnitude="nnls"``, default) or the
   clipped pseudo-inverse of the mel basis (``"pinv"``), :mod:`decoder.vocoders.magnitude`;
2. phase and overlap-add by a registered vocoder (:mod:`decoder.vocoders`): ``rtisi`` (default,
   RTPGHI refined by fast Griffin-Lim over a sliding block), ``rtpghi`` or the ``griffinlim``
   baseline, all in librosa's STFT convention (centre=True framing, periodic Hann, phase origin at
   the frame start).

Timing: the samples returned by call k cover stimulus time
``[(k - latency_frames)·512, (k - latency_frames + 1)·512)``, with
``latency_frames = lookahead + 2`` for the Hann synthesis window (two frames are inherent to
overlap-adding 2048-sample windows at hop 512) and ``lookahead + 1`` for the ``"early"`` one
(:mod:`decoder.vocoders.framing`), the default.
"""

from __future__ import annotations

import logging

import numpy as np
from eegmusic.decoder.melspec import DB_FLOOR, HOP_LENGTH, N_FFT, N_MELS
from eegmusic.decoder.vocoders import DEFAULT_VOCODER, VOCODERS, PhaseReconstruction
from eegmusic.decoder.vocoders.framing import (
    N_BINS,
    OLA_GAIN,
    SYNTHESES,
    WINDOW,
    synthesis_delay_frames,
    synthesis_gain,
    synthesis_window,
)
from eegmusic.decoder.vocoders.magnitude import (
    NNLSMagnitude,
    mel_db_to_magnitude,
    mel_db_to_magnitude_nnls,
    mel_db_to_power,
    mel_pinv,
)
from eegmusic.decoder.vocoders.quality import (
    log_spectral_distance,
    mel_log_spectral_distance,
    multi_resolution_stft_distance,
    spectral_convergence,
    stft_magnitude,
)
from eegmusic.decoder.vocoders.rtpghi import DEFAULT_TOL, rtpghi_phase
from eegmusic.stream.errors import ConfigError, ModelError

__all__ = [
    "DEFAULT_SYNTHESIS", "DEFAULT_TOL", "DEFAULT_VOCODER", "MAGNITUDES", "METHODS", "N_BINS",
    "StreamingVocoder",
    "log_spectral_distance", "mel_db_to_magnitude", "mel_db_to_magnitude_nnls", "mel_log_spectral_distance",
    "mel_pinv", "multi_resolution_stft_distance", "overlap_add", "rtpghi_block", "rtpghi_phase",
    "spectral_convergence", "stft_magnitude", "vocode",
]

log = logging.getLogger(__name__)

METHODS = tuple(VOCODERS)
"""Registered vocoder names, the default first."""
MAGNITUDES = ("nnls", "pinv")
"""How a mel frame becomes a linear magnitude."""
DEFAULT_SYNTHESIS = "early"
"""The streaming vocoders' synthesis window unless told (:data:`decoder.vocoders.framing.SYNTHESES`)."""


def _window_sum_square(n_frames: int, synthesis: str = "hann") -> np.ndarray:
    """Sum of analysis × synthesis windows of ``n_frames`` centred frames, on output samples (length
    of istft)."""
    product = WINDOW * synthesis_window(synthesis)
    wss = np.zeros(HOP_LENGTH * (n_frames - 1) + N_FFT)
    for n in range(n_frames):
        wss[n * HOP_LENGTH:n * HOP_LENGTH + N_FFT] += product
    return wss[N_FFT // 2:N_FFT // 2 + HOP_LENGTH * (n_frames - 1)]


def _correct_edges(audio: np.ndarray, n_frames: int, synthesis: str = "hann") -> None:
    """Rescale the first and last N_FFT samples from the steady-state gain to the true window sum.

    Streaming overlap-add divides by the steady-state window sum; a signal that starts or ends at
    the first or last frame (a file) has fewer windows there. librosa's istft divides by the actual
    sum; this does the same, in place, touching only the two edges.
    """
    wss = _window_sum_square(n_frames, synthesis)
    steady = OLA_GAIN if synthesis == "hann" else np.resize(synthesis_gain(synthesis), wss.size)
    steady = np.broadcast_to(steady, wss.shape)
    for part in (slice(0, min(N_FFT, audio.size)), slice(max(audio.size - N_FFT, 0), audio.size)):
        w = wss[part][: audio[part].size]
        gain = np.where(w > 1e-3, steady[part][: w.size] / np.maximum(w, 1e-3), 1.0)
        audio[part] = audio[part] * gain


def overlap_add(stft: np.ndarray, synthesis: str = "hann") -> np.ndarray:
    """Inverse STFT by windowed overlap-add in librosa's convention.

    With ``synthesis="hann"`` it equals ``librosa.istft(stft, hop_length=512, n_fft=2048)``;
    computed as the streaming vocoder does (steady-state gain), then edge-corrected like
    :func:`vocode`.

    Parameters
    ----------
    stft : ndarray, shape (N_FFT // 2 + 1, n_frames), complex
    synthesis : {"hann", "early"}
        The synthesis window (:mod:`decoder.vocoders.framing`).

    Returns
    -------
    audio : ndarray, shape (HOP_LENGTH * (n_frames - 1),), float64
    """
    n_frames = stft.shape[1]
    frames = synthesis_window(synthesis)[:, None] * np.fft.irfft(stft, n=N_FFT, axis=0)
    out = np.zeros(HOP_LENGTH * (n_frames - 1) + N_FFT)
    for n in range(n_frames):
        out[n * HOP_LENGTH:n * HOP_LENGTH + N_FFT] += frames[:, n]
    audio = out[N_FFT // 2:N_FFT // 2 + HOP_LENGTH * (n_frames - 1)]
    audio = audio / (OLA_GAIN if synthesis == "hann" else np.resize(synthesis_gain(synthesis), audio.size))
    _correct_edges(audio, n_frames, synthesis)
    return audio


def _check_mel_array(mel_db: np.ndarray) -> np.ndarray:
    mel_db = np.asarray(mel_db)
    if mel_db.ndim != 2 or mel_db.shape[0] != N_MELS:
        raise ModelError(f"mel-dB array has shape {mel_db.shape}; the vocoder needs ({N_MELS}, n_frames) "
                         f"(n_mels {N_MELS}, docs/design.md mel spec). Check the model's output.")
    return np.where(np.isfinite(mel_db), mel_db, DB_FLOOR)


def rtpghi_block(mel_db: np.ndarray, *, lookahead: int = 1, tol: float = DEFAULT_TOL,
                 magnitude: str = "nnls", synthesis: str = "hann") -> np.ndarray:
    """Vocode a whole mel-dB array at once with RTPGHI (offline reference of the streaming path).

    Parameters
    ----------
    mel_db : ndarray, shape (N_MELS, n_frames)
    magnitude : {"nnls", "pinv"}
        Mel → linear magnitude, as in :class:`StreamingVocoder`.
    synthesis : {"hann", "early"}
        The synthesis window, as in :class:`StreamingVocoder`.

    Returns
    -------
    audio : ndarray, shape (HOP_LENGTH * (n_frames - 1),), float32
    """
    mel_db = _check_mel_array(mel_db)
    linear = mel_db_to_magnitude_nnls(mel_db) if magnitude == "nnls" else mel_db_to_magnitude(mel_db)
    phase = rtpghi_phase(linear, lookahead=lookahead, tol=tol)
    return overlap_add(linear * np.exp(1j * phase), synthesis).astype(np.float32)


class StreamingVocoder:
    """Mel-dB frames in, 512 new audio samples out per frame.

    Parameters
    ----------
    method : str
        A registered vocoder (:data:`decoder.vocoders.VOCODERS`): ``"rtisi"`` (default), ``"rtpghi"``
        or ``"griffinlim"``.
    lookahead : int or None
        Frames the vocoder waits for before synthesising a frame (None: the method's default;
        rtisi 0–2, default 1; rtpghi 0–1, default 1; griffinlim 0–16, default 3).
    magnitude : {"nnls", "pinv"}
        Mel → linear magnitude: mel-consistent non-negative fit (default) or clipped pseudo-inverse.
    synthesis : {"early", "hann"} or None
        The overlap-add's synthesis window (:mod:`decoder.vocoders.framing`): ``"early"`` plays each
        frame one frame (23.2 ms) sooner than ``"hann"`` (``librosa.istft``'s). None: ``"early"``
        where the method offers it (every registered one does), else ``"hann"``.
    **options
        Passed to the method (``tol`` for rtpghi and rtisi; ``n_iter``, ``momentum`` for
        griffinlim and rtisi).

    Attributes
    ----------
    latency_frames : int
        The samples of call k belong to frame ``k - latency_frames`` of stimulus time
        (``lookahead + 1`` with ``"early"``, ``lookahead + 2`` with ``"hann"``; multiply by
        512/22050 for seconds).

    Examples
    --------
    >>> vocoder = StreamingVocoder()
    >>> chunk = vocoder.process(np.full(128, -40.0, dtype=np.float32))
    >>> chunk.shape, chunk.dtype
    ((512,), dtype('float32'))
    """

    def __init__(self, method: str = DEFAULT_VOCODER, lookahead: int | None = None, *,
                 magnitude: str = "nnls", synthesis: str | None = None, **options) -> None:
        spec = VOCODERS.get(method)
        if spec is None:
            raise ConfigError(f"unknown vocoder method {method!r}; use one of {', '.join(METHODS)}")
        if lookahead is None:
            lookahead = spec.default_lookahead
        if lookahead not in spec.lookaheads:
            allowed = (f"{spec.lookaheads[0]} or {spec.lookaheads[1]}" if len(spec.lookaheads) == 2
                       else f"{spec.lookaheads[0]}..{spec.lookaheads[-1]}")
            raise ConfigError(f"--lookahead of the {method} vocoder must be {allowed} frames, "
                              f"got {lookahead!r}")
        if magnitude not in MAGNITUDES:
            raise ConfigError(f"unknown magnitude estimate {magnitude!r}; use one of {', '.join(MAGNITUDES)}")
        if synthesis is None:
            synthesis = DEFAULT_SYNTHESIS if DEFAULT_SYNTHESIS in spec.syntheses else spec.syntheses[0]
        if synthesis not in SYNTHESES or synthesis not in spec.syntheses:
            raise ConfigError(f"vocoder {method!r} has no synthesis window {synthesis!r}; use one of "
                              f"{', '.join(spec.syntheses)}")
        try:
            self._engine: PhaseReconstruction = spec.build(int(lookahead), synthesis=synthesis, **options)
        except TypeError as error:
            raise ConfigError(f"vocoder {method!r} does not take these options ({error}); "
                              "see StreamingVocoder's documentation") from None
        self.method = method
        self.magnitude = magnitude
        self.lookahead = int(lookahead)
        self.synthesis = synthesis
        self.latency_frames = self.lookahead + synthesis_delay_frames(synthesis)
        self._nnls = NNLSMagnitude() if magnitude == "nnls" else None
        self._pinv = mel_pinv()
        self._fade_out = np.cos(0.5 * np.pi * (np.arange(HOP_LENGTH) + 0.5) / HOP_LENGTH) ** 2
        self.nonfinite_frames = 0
        self.frames = 0
        self.reset()

    def reset(self) -> None:
        """Forget all phase and overlap-add state (the live output stage calls it at a gap; the restart's
        first window fades in from silence)."""
        self._engine.reset()

    def warm_up(self, n_frames: int = 8) -> None:
        """Run a few random frames through (numba compiles, FFT plans), then :meth:`reset`.

        Call it before audio starts, so the first live frames are not the slow ones.
        """
        rng = np.random.default_rng(0)
        for frame in rng.uniform(-70.0, -20.0, (n_frames, N_MELS)).astype(np.float32):
            self.process(frame)
        self.reset()
        self.frames = 0

    def _magnitude(self, frame_db: np.ndarray) -> np.ndarray:
        frame_db = np.asarray(frame_db)
        if frame_db.shape != (N_MELS,):
            raise ModelError(f"mel frame has shape {frame_db.shape}; the vocoder needs ({N_MELS},) mel-dB "
                             f"values (n_mels {N_MELS}, docs/design.md). Check the model's output 'n_mels'.")
        if not np.all(np.isfinite(frame_db)):
            # a broken frame plays as silence rather than stopping the audio; counted
            self.nonfinite_frames += 1
            if self.nonfinite_frames == 1:
                log.warning("non-finite values in a mel frame; playing them as silence (counted: "
                            "nonfinite_frames)")
            frame_db = np.where(np.isfinite(frame_db), frame_db, DB_FLOOR)
        power = mel_db_to_power(frame_db)
        if self._nnls is not None:
            return self._nnls(power)
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
        out = self._engine.push(s)
        return np.zeros(HOP_LENGTH, np.float32) if out is None else out.astype(np.float32)

    def flush(self) -> np.ndarray:
        """Synthesise what the lookahead still holds and drain the overlap-add; then reset.

        Returns
        -------
        audio : ndarray, shape (HOP_LENGTH * k,), float32
            The rest of the signal (it decays to zero with the last window).
        """
        chunks = self._engine.drain()
        self.reset()
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32)

    def fade_out(self) -> np.ndarray:
        """Close the sound at a gap: the next 512 samples faded to zero, then :meth:`reset`.

        For a caller that can give a gap's first hop to the fade and plays the returned chunk there;
        after it the overlap-add restarts from silence, whose first window is itself a fade-in, so no
        click is heard at either end. The live output stage does not call it: it resets and keeps its
        timeline, and the sound device's output falls to silence where it runs dry and rises where it
        resumes (:data:`decoder.audio.EDGE_RAMP_SAMPLES`).

        Returns
        -------
        audio : ndarray, shape (HOP_LENGTH,), float32
        """
        rest = self.flush()
        out = np.zeros(HOP_LENGTH, dtype=np.float32)
        n = min(HOP_LENGTH, rest.size)
        out[:n] = rest[:n] * self._fade_out[:n]
        return out


def vocode(mel_db: np.ndarray, *, method: str = DEFAULT_VOCODER, lookahead: int | None = None,
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
        Passed to :class:`StreamingVocoder` (``magnitude`` among the options).
    length : int, optional
        Samples to return (default ``HOP_LENGTH * (n_frames - 1)``, like ``librosa.istft``).
    progress : bool
        Show a progress bar on stderr (:func:`eegmusic.stream.progress.progress_bar`).

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
        from eegmusic.stream.progress import progress_bar

        frames = progress_bar(frames, desc="vocoding", unit="frame", leave=False)
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
    _correct_edges(audio[:HOP_LENGTH * (n_frames - 1)], n_frames, vocoder.synthesis)
    return audio
