"""Benchmark of phase reconstruction: streaming RTPGHI and Griffin-Lim against offline Griffin-Lim.

On the same mel of the same music-like excerpt, in one run: RTPGHI with lookahead 0 and 1 and the
streaming Griffin-Lim baseline, against ``librosa.griffinlim(n_iter=32)`` offline from the same
clipped pseudo-inverse magnitude (the baseline). For each: spectral convergence and log-spectral
distance against the original audio's |STFT| and against the magnitude the mel implies, time per
second of audio, per-frame cost (median and p99 of ``process``), real-time factor, and ViSQOL (audio
mode) when ``visqol-python`` is installed. RTPGHI is also measured from the true linear magnitude.

Goals (issue 6): RTF <= 0.02, spectral convergence within 1 dB of offline GL-32, <= 0.3 ms/frame.
"""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)


def music_excerpt(seconds: float = 4.0, *, seed: int = 0, sfreq: int = 22050, offset_s: float = 0.3,
                  snare: float = 0.12) -> np.ndarray:
    """A music-like test signal: four-chord progression with harmonics, kick, snare and hi-hat.

    Parameters
    ----------
    seconds : float
        Duration.
    seed : int
        Seeds the partials' phases and the drum noise.
    offset_s : float
        Silence before the first beat (a real excerpt does not start on a frame boundary).
    snare : float
        Snare (noise) amplitude.

    Returns
    -------
    audio : ndarray, shape (round(seconds * sfreq),), float32, peak 0.8
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sfreq))
    t = np.arange(n) / sfreq
    out = np.zeros(n)
    beat = 60.0 / 120.0
    chords = [[220.0, 277.18, 329.63], [196.0, 246.94, 293.66], [174.61, 220.0, 261.63],
              [164.81, 207.65, 246.94]]
    for i, start in enumerate(np.arange(offset_s, seconds, 2 * beat)):
        inside = (t >= start) & (t < start + 2 * beat)
        tt = t[inside] - start
        envelope = np.exp(-1.5 * tt) * np.minimum(tt / 0.01, 1.0)
        for f0 in chords[i % 4]:
            for harmonic in range(1, 6):
                out[inside] += 0.08 / harmonic * envelope * np.sin(
                    2 * np.pi * f0 * harmonic * tt + rng.uniform(0, 2 * np.pi))
    for k, start in enumerate(np.arange(offset_s, seconds, beat / 2)):
        i0 = int(start * sfreq)
        if k % 4 == 0:  # kick: a falling sine
            m = min(n - i0, int(0.25 * sfreq))
            tt = np.arange(m) / sfreq
            out[i0:i0 + m] += 0.5 * np.exp(-18 * tt) * np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * tt)) * tt)
        if k % 4 == 2:  # snare: decaying noise
            m = min(n - i0, int(0.18 * sfreq))
            out[i0:i0 + m] += snare * np.exp(-25 * np.arange(m) / sfreq) * rng.standard_normal(m)
        m = min(n - i0, int(0.04 * sfreq))  # hi-hat: short high-passed noise
        out[i0:i0 + m] += 0.06 * np.exp(-90 * np.arange(m) / sfreq) * np.diff(rng.standard_normal(m + 1))
    return (0.8 * out / max(np.abs(out).max(), 1e-9)).astype(np.float32)


def _visqol(reference: np.ndarray, degraded: np.ndarray, sfreq: int) -> float | None:
    """ViSQOL MOS (audio mode, 48 kHz) or None when visqol-python is not installed or fails."""
    try:
        import visqol  # noqa: F401
    except ImportError:
        return None
    try:
        import librosa
        from visqol import VisqolApi

        ref = librosa.resample(reference.astype(np.float64), orig_sr=sfreq, target_sr=48000)
        deg = librosa.resample(degraded.astype(np.float64), orig_sr=sfreq, target_sr=48000)
        api = VisqolApi()
        api.create(mode="audio")
        return float(api.measure_from_arrays(ref, deg, 48000).moslqo)
    except Exception as error:  # an optional metric never breaks the benchmark
        log.warning("ViSQOL failed: %s", error)
        return None


def _frame_times(mel_db: np.ndarray, method: str, lookahead: int | None) -> np.ndarray:
    from eegmusic.decoder.vocoder import StreamingVocoder

    vocoder = StreamingVocoder(method, lookahead)
    vocoder.process(mel_db[:, 0])  # compile / warm up
    times = np.empty(mel_db.shape[1])
    for n in range(mel_db.shape[1]):
        t0 = time.perf_counter()
        vocoder.process(mel_db[:, n])
        times[n] = time.perf_counter() - t0
    return times


def run(quick: bool = False) -> dict:
    """Run the benchmark; return JSON-ready results.

    Parameters
    ----------
    quick : bool
        4 s of audio instead of 15 s.

    Returns
    -------
    results : dict
        ``methods`` → per method: ``sc_db``, ``lsd_db`` (against the original), ``sc_mel_db``
        (against the magnitude implied by the mel), ``s_per_audio_s``, ``rtf``, ``frame_ms``
        {median, p99}, ``visqol``; ``baseline`` (the offline GL-32 name) and ``ratio`` per method
        (time ratio to the baseline, and SC difference in dB).
    """
    import librosa
    from eegmusic.decoder.melspec import AUDIO_SFREQ, HOP_LENGTH, N_FFT, mel_db
    from eegmusic.decoder.vocoder import (
        log_spectral_distance,
        mel_db_to_magnitude,
        overlap_add,
        rtpghi_phase,
        spectral_convergence,
        stft_magnitude,
        vocode,
    )

    seconds = 4.0 if quick else 15.0
    audio = music_excerpt(seconds)
    true_magnitude = stft_magnitude(audio)
    mel = mel_db(audio)
    magnitude = mel_db_to_magnitude(mel)
    duration = audio.size / AUDIO_SFREQ

    def score(out: np.ndarray, elapsed: float, times: np.ndarray | None) -> dict:
        result = {
            "sc_db": spectral_convergence(out, true_magnitude),
            "lsd_db": log_spectral_distance(out, true_magnitude),
            "sc_mel_db": spectral_convergence(out, magnitude),
            "s_per_audio_s": elapsed / duration,
            "rtf": elapsed / duration,
            "visqol": _visqol(audio, out, AUDIO_SFREQ),
        }
        if times is not None:
            result["frame_ms"] = {"median": float(1e3 * np.median(times)),
                                  "p99": float(1e3 * np.percentile(times, 99))}
            # the load of a shared machine inflates the mean; the median frame is the steady cost
            result["rtf_median_frame"] = float(np.median(times) * AUDIO_SFREQ / HOP_LENGTH)
        return result

    methods: dict[str, dict] = {}
    t0 = time.perf_counter()
    offline = librosa.griffinlim(magnitude.astype(np.float32), n_iter=32, hop_length=HOP_LENGTH,
                                 n_fft=N_FFT, random_state=0, length=audio.size)
    methods["librosa_gl32_offline"] = score(offline, time.perf_counter() - t0, None)
    vocode(mel[:, :8], lookahead=1)  # compile numba once, outside the timings
    for name, method, lookahead in (("rtpghi_la1", "rtpghi", 1), ("rtpghi_la0", "rtpghi", 0),
                                    ("griffinlim_stream", "griffinlim", None)):
        t0 = time.perf_counter()
        out = vocode(mel, method=method, lookahead=lookahead, length=audio.size)
        elapsed = time.perf_counter() - t0
        methods[name] = score(out, elapsed, _frame_times(mel, method, lookahead))
    for lookahead in (1, 0):
        phase = rtpghi_phase(true_magnitude, lookahead=lookahead)
        out = overlap_add(true_magnitude * np.exp(1j * phase))
        methods[f"rtpghi_la{lookahead}_true_magnitude"] = {
            "sc_db": spectral_convergence(out, true_magnitude),
            "lsd_db": log_spectral_distance(out, true_magnitude)}
    out = librosa.griffinlim(true_magnitude, n_iter=32, hop_length=HOP_LENGTH, n_fft=N_FFT, random_state=0,
                             length=audio.size)
    methods["librosa_gl32_true_magnitude"] = {"sc_db": spectral_convergence(out, true_magnitude),
                                              "lsd_db": log_spectral_distance(out, true_magnitude)}
    baseline = methods["librosa_gl32_offline"]
    ratio = {name: {"time": result["s_per_audio_s"] / baseline["s_per_audio_s"],
                    "sc_minus_baseline_db": result["sc_db"] - baseline["sc_db"]}
             for name, result in methods.items() if "s_per_audio_s" in result and result is not baseline}
    return {
        "audio_s": duration,
        "signal": "music_excerpt (chords, kick, snare, hi-hat)",
        "mel_to_linear_sc_db": float(20 * np.log10(np.linalg.norm(magnitude - true_magnitude)
                                                   / np.linalg.norm(true_magnitude))),
        "methods": methods,
        "baseline": "librosa_gl32_offline",
        "ratio": ratio,
        "goals": {"rtf": 0.02, "frame_ms": 0.3, "sc_within_db_of_gl32": 1.0},
        "visqol_available": methods["rtpghi_la1"]["visqol"] is not None,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
