"""Benchmark of the streaming vocoders, side by side on the same mel of real music, in one run.

Every registered vocoder (:mod:`decoder.vocoders`) at its useful look-aheads, and the two
mel → magnitude estimates, against offline ``librosa.griffinlim(n_iter=32)`` from the same
magnitude (the baseline; also from the clipped pseudo-inverse, the baseline issue 15 quoted). For
each: mel log-spectral distance of the resynthesis against the source mel (the measure a vocoder
fed a mel can be held to), multi-resolution STFT distance and spectral convergence against the
source audio, per-frame cost (``frame_ms``: median and p99 of ``process``; for the offline baseline,
which synthesises the whole spectrogram in one call and has no per-frame times, ``frame_ms`` holds only
``mean``, its run divided by its frames), and ViSQOL (audio mode) in the full run when
``visqol-python`` is installed.
Every method, the baselines included, runs once on a short slice before it is timed (numba
compiled, FFT plans and caches warm).

The music: the first packaged track of :mod:`replay.music_sources` (Debian ``singularity-music``,
CC BY-SA 3.0), 20 s from 30 s in (5 s in ``--quick``). Without that package the procedural
:func:`music_excerpt` stands in, and the results say so.

Goals (issue 15): default vocoder within 0.2 dB mel LSD of offline GL-32, look-ahead <= 2 frames,
<= 1 ms per frame on one core.
"""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)

REAL_MUSIC_OFFSET_S = 30.0
"""Where the excerpt starts in the packaged track (past any intro silence)."""


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


def real_music(seconds: float) -> tuple[np.ndarray, dict]:
    """An excerpt of packaged real music at 22050 Hz, or the procedural excerpt when none is installed.

    Returns
    -------
    audio : ndarray, shape (n_samples,), float32
    source : dict
        Where it came from (path, title, author, licence, offset) or why the stand-in was used.
    """
    import librosa
    import soundfile
    from eegmusic.decoder.melspec import AUDIO_SFREQ
    from eegmusic.replay.music_sources import describe, packaged_tracks
    from eegmusic.stream.errors import DataFormatError

    try:
        path = packaged_tracks(1)[0]
    except DataFormatError as error:
        log.warning("no real music installed (%s); using the procedural excerpt", error)
        return music_excerpt(seconds), {"real": False, "signal": "music_excerpt (procedural)",
                                        "why": str(error)}
    with soundfile.SoundFile(path) as file:
        file.seek(int(REAL_MUSIC_OFFSET_S * file.samplerate))
        audio = file.read(int(seconds * file.samplerate), dtype="float32", always_2d=True).mean(axis=1)
        sfreq = file.samplerate
    audio = librosa.resample(audio, orig_sr=sfreq, target_sr=AUDIO_SFREQ).astype(np.float32)
    track = describe(path)
    return audio, {"real": True, "path": str(path), "title": track.title if track else path.stem,
                   "author": track.author if track else None, "licence": track.licence if track else None,
                   "offset_s": REAL_MUSIC_OFFSET_S}


STREAMING = (
    # name, vocoder, look-ahead, magnitude, synthesis window
    ("rtisi_la1", "rtisi", 1, "nnls", "early"),
    ("rtisi_la2", "rtisi", 2, "nnls", "early"),
    ("rtisi_la0", "rtisi", 0, "nnls", "early"),
    ("rtisi_la1_hann", "rtisi", 1, "nnls", "hann"),
    ("rtisi_la2_hann", "rtisi", 2, "nnls", "hann"),
    ("rtpghi_la1", "rtpghi", 1, "nnls", "early"),
    ("griffinlim_la3", "griffinlim", 3, "nnls", "early"),
    ("griffinlim_la1", "griffinlim", 1, "nnls", "early"),
    ("rtpghi_la1_pinv", "rtpghi", 1, "pinv", "hann"),
    ("griffinlim_la3_pinv", "griffinlim", 3, "pinv", "hann"),
)
"""The streaming configurations compared. ``*_hann`` play with librosa's synthesis window (a frame
later than ``early``); ``*_pinv`` are the previous defaults (before issue 15)."""


def configurations() -> tuple[tuple[str, str, int, str, str], ...]:
    """:data:`STREAMING`, and every other registered vocoder at its default look-ahead.

    A vocoder registered after this table was written (README, "Extending") is scored beside the
    others from the NNLS magnitude, with the early synthesis window where it offers one.
    """
    from eegmusic.decoder.vocoders import VOCODERS

    listed = {vocoder for _, vocoder, *_ in STREAMING}
    return STREAMING + tuple(
        (f"{spec.name}_la{spec.default_lookahead}", spec.name, spec.default_lookahead, "nnls",
         "early" if "early" in spec.syntheses else "hann")
        for spec in VOCODERS.values() if spec.name not in listed)

DEFAULT = "rtisi_la1"
BASELINE = "gl32_offline_nnls"


def _stream(mel_db: np.ndarray, vocoder: str, lookahead: int, magnitude: str, length: int,
            synthesis: str = "early") -> tuple[np.ndarray, np.ndarray]:
    """Vocode ``mel_db`` frame by frame, timing each ``process``; return (aligned audio, times in s)."""
    from eegmusic.decoder.melspec import HOP_LENGTH
    from eegmusic.decoder.vocoder import StreamingVocoder, _correct_edges

    warm = StreamingVocoder(vocoder, lookahead, magnitude=magnitude, synthesis=synthesis)
    for n in range(min(16, mel_db.shape[1])):  # compile and warm exactly like the timed run
        warm.process(mel_db[:, n])
    streaming = StreamingVocoder(vocoder, lookahead, magnitude=magnitude, synthesis=synthesis)
    n_frames = mel_db.shape[1]
    times = np.empty(n_frames)
    chunks = []
    for n in range(n_frames):
        frame = mel_db[:, n]
        t0 = time.perf_counter()
        chunks.append(streaming.process(frame))
        times[n] = time.perf_counter() - t0
    chunks.append(streaming.flush())
    start = streaming.latency_frames * HOP_LENGTH
    audio = np.concatenate(chunks)[start:start + length]
    audio = np.concatenate([audio, np.zeros(max(0, length - audio.size), np.float32)])
    _correct_edges(audio[:HOP_LENGTH * (n_frames - 1)], n_frames, synthesis)
    return audio, times


def _offline_gl32(magnitude: np.ndarray, length: int) -> tuple[np.ndarray, float]:
    """librosa Griffin-Lim, 32 iterations, after a warm run on a short slice; (audio, seconds)."""
    import librosa
    from eegmusic.decoder.melspec import HOP_LENGTH, N_FFT

    options = {"n_iter": 32, "hop_length": HOP_LENGTH, "n_fft": N_FFT, "random_state": 0}
    librosa.griffinlim(magnitude[:, :16].astype(np.float32), **options)  # warm, like the streaming ones
    t0 = time.perf_counter()
    audio = librosa.griffinlim(magnitude.astype(np.float32), length=length, **options)
    return audio, time.perf_counter() - t0


PER_TRACK = (("rtisi_la1", 1, "early"), ("rtisi_la2", 2, "early"), ("rtisi_la1_hann", 1, "hann"))
"""The rtisi settings scored on every track: the default, one frame more look-ahead, librosa's window."""


def per_track(n_tracks: int, seconds: float) -> list[dict]:
    """Mel LSD of rtisi settings (:data:`PER_TRACK`) against offline GL-32 (same NNLS magnitude) per track.

    One excerpt per packaged track (``seconds`` from :data:`REAL_MUSIC_OFFSET_S`), so the verdict on
    the 0.2-dB goal does not rest on one piece of music. ``difference_db`` is the default's. Empty
    when the tracks are not installed.
    """
    import librosa
    import soundfile
    from eegmusic.decoder.melspec import AUDIO_SFREQ, mel_db
    from eegmusic.decoder.vocoder import mel_db_to_magnitude_nnls, mel_log_spectral_distance
    from eegmusic.replay.music_sources import packaged_tracks
    from eegmusic.stream.errors import DataFormatError

    try:
        paths = packaged_tracks(n_tracks)
    except DataFormatError as error:
        log.warning("per-track comparison skipped: %s", error)
        return []
    rows = []
    for path in paths:
        with soundfile.SoundFile(path) as file:
            file.seek(int(REAL_MUSIC_OFFSET_S * file.samplerate))
            audio = file.read(int(seconds * file.samplerate), dtype="float32", always_2d=True).mean(axis=1)
            audio = librosa.resample(audio, orig_sr=file.samplerate, target_sr=AUDIO_SFREQ)
        mel = mel_db(audio)
        offline, _ = _offline_gl32(mel_db_to_magnitude_nnls(mel), audio.size)
        row = {"track": path.stem, "gl32_offline_nnls": mel_log_spectral_distance(offline, mel)}
        for name, lookahead, synthesis in PER_TRACK:
            ours, times = _stream(mel, "rtisi", lookahead, "nnls", audio.size, synthesis)
            row[name] = mel_log_spectral_distance(ours, mel)
            row[f"{name}_minus_gl32_db"] = row[name] - row["gl32_offline_nnls"]
            row[f"{name}_frame_ms"] = float(1e3 * np.median(times))
        row["difference_db"] = row[f"{DEFAULT}_minus_gl32_db"]
        rows.append(row)
    return rows


def per_track_goals(rows: list[dict], goals: dict) -> dict:
    """Per :data:`PER_TRACK` setting: whether it meets issue 15's vocoder goals on every track.

    Returns
    -------
    dict
        setting -> ``worst_minus_gl32_db`` (largest mel-LSD excess over GL-32 across tracks),
        ``frame_ms`` (largest per-track median), ``lookahead`` and ``meets`` (all three goals).
        Empty when no track was scored.
    """
    if not rows:
        return {}
    out = {}
    for name, lookahead, _ in PER_TRACK:
        worst = max(row[f"{name}_minus_gl32_db"] for row in rows)
        frame_ms = max(row[f"{name}_frame_ms"] for row in rows)
        out[name] = {"worst_minus_gl32_db": worst, "frame_ms": frame_ms, "lookahead": lookahead,
                     "meets": worst <= goals["mel_lsd_within_db_of_gl32"] and frame_ms <= goals["frame_ms"]
                     and lookahead <= goals["lookahead_frames"]}
    return out


def _frame_ms_text(frame_ms: dict) -> str:
    """A method's ms per frame for the table: the median, or the offline baseline's mean, marked so."""
    return f"{frame_ms['median']:.3f}" if "median" in frame_ms else f"{frame_ms['mean']:.3f} (mean)"


def table(results: dict) -> str:
    """The results as a markdown table (one row per method, best mel LSD first)."""
    rows = sorted(results["methods"].items(), key=lambda item: item[1]["mel_lsd_db"])
    lines = ["| vocoder | look-ahead | synthesis | latency (frames) | magnitude | mel LSD (dB) | MR-STFT | "
             "SC (dB) | ms/frame (median; offline: mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        latency = "-" if r["latency_frames"] is None else r["latency_frames"]
        lines.append(f"| {name} | {r['lookahead']} | {r['synthesis']} | {latency} | {r['magnitude']} | "
                     f"{r['mel_lsd_db']:.2f} | {r['mr_stft']:.3f} | {r['sc_db']:.2f} | "
                     f"{_frame_ms_text(r['frame_ms'])} |")
    return "\n".join(lines)


def run(quick: bool = False) -> dict:
    """Run the benchmark; return JSON-ready results.

    Parameters
    ----------
    quick : bool
        5 s of music instead of 20 s, and no ViSQOL.

    Returns
    -------
    results : dict
        ``signal`` (the music's source and licence), ``methods`` → per method: ``vocoder``,
        ``lookahead``, ``magnitude``, ``mel_lsd_db``, ``mr_stft``, ``sc_db`` (against the source
        |STFT|), ``frame_ms`` {median, p99} (offline GL-32: {mean}), ``s_per_audio_s``, ``visqol``;
        ``baseline`` (offline GL-32 from the NNLS magnitude: its name and scores), ``vs_baseline`` per
        method (``mel_lsd_minus_baseline_db``, ``ratio_time_ours_over_baseline``: its seconds per
        audio second over the baseline's), ``goals`` with whether the default meets them,
        ``per_track`` (full run: the default against offline GL-32 on 15 s of each of four tracks)
        and ``table`` (markdown).
    """
    from eegmusic.decoder.melspec import AUDIO_SFREQ, mel_db
    from eegmusic.decoder.vocoder import (
        mel_db_to_magnitude,
        mel_db_to_magnitude_nnls,
        mel_log_spectral_distance,
        multi_resolution_stft_distance,
        spectral_convergence,
        stft_magnitude,
    )
    from eegmusic.decoder.vocoders.framing import synthesis_delay_frames

    seconds = 5.0 if quick else 20.0
    audio, source = real_music(seconds)
    mel = mel_db(audio)
    n_frames = mel.shape[1]
    duration = audio.size / AUDIO_SFREQ
    true_magnitude = stft_magnitude(audio)

    def score(out: np.ndarray, elapsed_s: float, frame_ms: dict, **about) -> dict:
        return {**about, "mel_lsd_db": mel_log_spectral_distance(out, mel),
                "mr_stft": multi_resolution_stft_distance(out, audio),
                "sc_db": spectral_convergence(out, true_magnitude),
                "frame_ms": frame_ms, "s_per_audio_s": elapsed_s / duration,
                "visqol": None if quick else _visqol(audio, out, AUDIO_SFREQ)}

    methods: dict[str, dict] = {}
    for name, vocoder, lookahead, magnitude, synthesis in configurations():
        out, times = _stream(mel, vocoder, lookahead, magnitude, audio.size, synthesis)
        frame_ms = {"median": float(1e3 * np.median(times)), "p99": float(1e3 * np.percentile(times, 99))}
        methods[name] = score(out, float(times.sum()), frame_ms, vocoder=vocoder, lookahead=lookahead,
                              magnitude=magnitude, synthesis=synthesis,
                              latency_frames=lookahead + synthesis_delay_frames(synthesis))
    for magnitude, linear in (("nnls", mel_db_to_magnitude_nnls(mel)), ("pinv", mel_db_to_magnitude(mel))):
        out, elapsed = _offline_gl32(linear, audio.size)
        per_frame = 1e3 * elapsed / n_frames  # the whole spectrogram at once: a mean, no per-frame spread
        methods[f"gl32_offline_{magnitude}"] = score(
            out, elapsed, {"mean": per_frame}, vocoder="librosa griffinlim n_iter 32",
            lookahead="whole file", magnitude=magnitude, synthesis="hann", latency_frames=None)
    baseline = methods[BASELINE]
    vs_baseline = {name: {"mel_lsd_minus_baseline_db": r["mel_lsd_db"] - baseline["mel_lsd_db"],
                          "ratio_time_ours_over_baseline": r["s_per_audio_s"] / baseline["s_per_audio_s"]}
                   for name, r in methods.items() if name != BASELINE}
    default = methods[DEFAULT]
    goals = {"mel_lsd_within_db_of_gl32": 0.2, "lookahead_frames": 2, "frame_ms": 1.0}
    results = {
        "audio_s": duration,
        "signal": source,
        "methods": methods,
        "default": DEFAULT,
        "baseline": {"name": BASELINE, **{key: baseline[key] for key in ("mel_lsd_db", "mr_stft", "sc_db",
                                                                           "s_per_audio_s")}},
        "vs_baseline": vs_baseline,
        "goals": goals,
        "default_meets": {
            "mel_lsd": vs_baseline[DEFAULT]["mel_lsd_minus_baseline_db"]
            <= goals["mel_lsd_within_db_of_gl32"],
            "lookahead": default["lookahead"] <= goals["lookahead_frames"],
            "frame_ms": default["frame_ms"]["median"] <= goals["frame_ms"],
        },
    }
    results["per_track"] = [] if quick else per_track(4, 15.0)
    results["per_track_goals"] = per_track_goals(results["per_track"], goals)
    results["table"] = table(results)
    return results


if __name__ == "__main__":
    import json
    import sys

    results = run(quick="--quick" in sys.argv)
    print(results["table"])
    print(json.dumps(results, indent=2))
