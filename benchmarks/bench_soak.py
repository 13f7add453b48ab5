"""Soak and whole-song benchmarks of the live decoder.

``soak``: an accelerated hour. A simulated recording, repeated to one hour, is replayed at ``speed``
times real time (one hour of stream time in 3600 / speed seconds) and decoded by the live pipeline into
a null sink. Reported: samples sent by the replay against samples received by the inlet once it has
drained what was in flight (samples lost, never clamped), windows
decoded and dropped (the decoder cannot keep up with an accelerated stream, so drops are expected and
must be counted, not piled up), and the process's resident memory sampled over the run (it must stay
flat). The baseline is the first RSS sample, taken once the pipeline runs. The replay starts sending
once the pipeline has started (the samples queued while a decoder sets up are discarded by design when
it starts acquiring; counted as lost, they made 9 696 of a quick soak's "losses"). The same soak runs first
with the inlet's old queue, sized in nominal seconds only (``soak_nominal_queue``, the baseline for
the samples lost): at 120x its 60 nominal seconds last half a second of wall time.

``full_song``: offline decoding of every window of one simulated song (300 s, hop 0.1 s) with the
ONNX runtime in batches, against the song's duration (real-time factor) and against decoding the same
windows one at a time, as the live path does (both warmed alike: one batch and one window first; the
one-at-a-time rate is timed on up to 300 windows and scaled to the song).

torch is imported lazily, only to export the model under test (benchmarks may import training code).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from eegmusic.benchmarks.bench_runtime import _live_model
from eegmusic.stream.atomic import temporary_directory


def soak_stream(data: Path, stream_hours: float):
    """One simulated song of one listener, tiled to ``stream_hours`` of stream (the soaks' input).

    Returns
    -------
    data : Path
        The simulated folder (made on first use, reused after).
    recording : SongRecording
    samples : ndarray, shape (n_chans, n_samples), float32
    """
    from eegmusic.replay.nmedt import NMEDTFolder
    from eegmusic.replay.simulate import simulate

    if not data.exists():
        simulate(data, n_songs=1, n_subjects=1, seconds=60, seed=0, progress=False)
    recording = NMEDTFolder(data).load_song(21)
    one_pass = recording.eeg(0).astype(np.float32)
    n_total = int(round(stream_hours * 3600.0 * recording.sfreq))
    samples = np.tile(one_pass, (1, -(-n_total // one_pass.shape[1])))[:, :n_total]
    return data, recording, samples


def rss_over_time(rss: list[tuple[float, float]], n: int = 12) -> list[dict]:
    """About ``n`` of the ``(seconds since the start, RSS MiB)`` samples, as ``{"t_s", "rss_mib"}`` objects
    (bare pairs did not say which number was which, nor their units)."""
    return [{"t_s": t, "rss_mib": mib} for t, mib in rss[:: max(1, len(rss) // n)]]


def rss_figures(rss: list[tuple[float, float]]) -> dict:
    """A soak's resident memory from its ``(seconds since the start, RSS MiB)`` samples: first, max, last,
    last/first (``rss_growth_ratio_last_over_first``) and :func:`rss_over_time`."""
    values = np.array([mib for _, mib in rss])
    return {
        "rss_mib_first": float(values[0]), "rss_mib_max": float(values.max()),
        "rss_mib_last": float(values[-1]),
        "rss_growth_ratio_last_over_first": round(float(values[-1] / values[0]), 3),
        "rss_over_time": rss_over_time(rss),
    }


def _rss_mib() -> float:
    """Resident memory of this process in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(folder: Path, *, stream_hours: float, speed: float, model_name: str = "convnet",
         queue_min_samples: int | None = None) -> dict:
    """Decode ``stream_hours`` of replay at ``speed``x; samples lost (after draining), drops, RSS over time.

    The replay plays a 60-s simulated recording repeated to ``stream_hours`` (timestamps continuous) and
    then ends by itself, so the number of samples sent is final; the inlet is then given time to take
    everything in flight (until it has received all of them, or nothing new arrives for 2 s, 30 s at
    most), and only then is the count of received samples read. ``samples_lost`` = sent - received,
    as measured (never clamped: a negative value would mean a counting error and is reported as such).
    ``queue_min_samples`` replaces the inlet's queue floor (:data:`stream.inlet.INLET_QUEUE_MIN_SAMPLES`)
    for this run: 0 gives the old queue, sized in nominal seconds only.
    """
    from eegmusic.stream import inlet

    floor = inlet.INLET_QUEUE_MIN_SAMPLES
    if queue_min_samples is not None:
        inlet.INLET_QUEUE_MIN_SAMPLES = int(queue_min_samples)
    try:
        return _soak(folder, stream_hours=stream_hours, speed=speed, model_name=model_name)
    finally:
        inlet.INLET_QUEUE_MIN_SAMPLES = floor


def _soak(folder: Path, *, stream_hours: float, speed: float, model_name: str) -> dict:
    from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
    from eegmusic.replay.player import ArrayPlayer
    from eegmusic.stream.inlet import inlet_queue_s

    data, recording, samples = soak_stream(folder / "soak-sim", stream_hours)
    queue = inlet_queue_s(recording.sfreq)
    model = _live_model(folder, model_name)
    name = f"bench-soak-{uuid.uuid4().hex[:8]}"
    wall_s = stream_hours * 3600.0 / speed
    rss: list[tuple[float, float]] = []
    # the stream goes once the decoder reads it: what a source discards of its own set-up time (the
    # backlog queued between connecting and acquiring, by design) is not a loss of the soak
    go = threading.Event()
    player = ArrayPlayer(samples, recording.sfreq, list(recording.channels), name=name, source_id=name,
                         speed=speed, loop=False, markers=None, check_clash=False, wait_for_consumer_s=30.0,
                         release=go, linger_s=60.0)  # the outlet stays open while the inlet drains
    with player:
        config = PipelineConfig(stream_name=name, model_path=model, no_audio=True, lsl_out=False,
                                device="cpu", resolve_timeout_s=30.0)
        with LivePipeline(config) as pipeline:
            go.set()
            t_start = time.monotonic()
            while player.samples_sent < samples.shape[1] and time.monotonic() - t_start < wall_s + 60.0:
                rss.append((round(time.monotonic() - t_start, 1), round(_rss_mib(), 1)))
                player.wait(timeout=2.0)
            rss.append((round(time.monotonic() - t_start, 1), round(_rss_mib(), 1)))
            sent = player.samples_sent  # final: the replay has sent its last sample
            received, drain_s = _drain(pipeline, sent)
            summary = pipeline.summary()
    return {
        "stream_hours": stream_hours, "speed": speed, "wall_s": round(wall_s, 1), "model": model_name,
        "load_avg": [round(v, 2) for v in os.getloadavg()],
        "samples_sent": int(sent), "samples_received": received, "drain_s": round(drain_s, 2),
        "samples_lost": int(sent - received),
        "inlet_queue_samples": int(queue * recording.sfreq),
        "inlet_queue_wall_s": round(queue / speed, 2),
        "windows_decoded": summary["counters"]["windows"], "windows_dropped": summary["counters"]["drops"],
        "gaps": summary["counters"]["gaps"],
        **rss_figures(rss),
    }


def _drain(pipeline, sent: int, *, quiet_s: float = 2.0, limit_s: float = 30.0) -> tuple[int, float]:
    """Wait until the inlet has received ``sent`` samples, or nothing new for ``quiet_s``; (received, s)."""
    t0 = last_change = time.monotonic()
    received = pipeline.health().n_samples
    while received < sent and time.monotonic() - last_change < quiet_s and time.monotonic() - t0 < limit_s:
        time.sleep(0.05)
        now_received = pipeline.health().n_samples
        if now_received != received:
            received, last_change = now_received, time.monotonic()
    return int(received), time.monotonic() - t0


def full_song(folder: Path, *, seconds: float, model_name: str = "convnet") -> dict:
    """Offline decode of every 0.1-s hop of one song: batched vs one window at a time."""
    from eegmusic.decoder.runtime import DecoderRuntime
    from eegmusic.replay.nmedt import NMEDTFolder
    from eegmusic.replay.simulate import simulate
    from eegmusic.stream.preprocess import preprocess_recording
    from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec

    data = folder / "song-sim"
    if not data.exists():
        simulate(data, n_songs=1, n_subjects=1, seconds=seconds, seed=0, progress=False)
    eeg = preprocess_recording(NMEDTFolder(data).load_song(21).eeg(0), 125.0, MODEL_CHANNELS,
                               PreprocessingSpec())
    starts = np.arange(0, eeg.shape[1] - 125 + 1, 12.5).astype(int)   # hop 0.1 s
    windows = np.stack([eeg[:, s:s + 125] for s in starts])
    runtime = DecoderRuntime(_live_model(folder, model_name), device="cpu", intra_op_threads=1)
    runtime.predict_batch(windows[:256])  # the same warm-up for both ways: one batch and one window
    runtime.predict(windows[0])
    t0 = time.perf_counter()
    for chunk in np.array_split(windows, max(1, len(windows) // 256)):
        runtime.predict_batch(chunk)
    batched_s = time.perf_counter() - t0
    n_single = min(len(windows), 300)
    t0 = time.perf_counter()
    for window in windows[:n_single]:
        runtime.predict(window)
    single_s = (time.perf_counter() - t0) * len(windows) / n_single
    return {
        "model": model_name, "song_s": seconds, "windows": int(len(windows)),
        "batched_s": round(batched_s, 2), "one_at_a_time_s": round(single_s, 2),
        "real_time_factor_batched": round(batched_s / seconds, 4),
        "ratio_one_at_a_time_over_batched": round(single_s / batched_s, 2),
    }


RSS_GROWTH_GOAL = 1.05
"""Largest RSS last/first that counts as flat memory over a soak (the README's runs: 1.003-1.010); the fault
soak (:mod:`benchmarks.bench_faults`) holds to it too."""


def run(quick: bool) -> dict:
    """Accelerated-hour soak and whole-song offline decode (see the module docstring).

    Parameters
    ----------
    quick : bool
        A quarter hour of stream at 120x (twice: the old inlet queue, then today's) and a 60-s song
        (a check of the machinery, about a minute); otherwise a full hour at 30x (2 minutes, twice)
        and a 300-s song.
    """
    hours, speed = (0.25, 120.0) if quick else (1.0, 30.0)
    with temporary_directory("eegmusic-bench-soak-") as tmp:
        folder = Path(tmp)
        out = {
            "soak_nominal_queue": soak(folder, stream_hours=hours, speed=speed, queue_min_samples=0),
            "soak": soak(folder, stream_hours=hours, speed=speed),
            "full_song": full_song(folder, seconds=60.0 if quick else 300.0),
        }
    out["goals"], out["meets_goal"] = soak_verdict(out["soak"])
    return out


def soak_verdict(result: dict, lost: str = "samples_lost") -> tuple[dict, bool]:
    """The soak's goal, flat memory and no loss, and whether :func:`soak`'s ``result`` meets it.

    ``lost`` names the count held to 0: the fault soak holds ``samples_lost_added_by_faults`` to it.
    """
    goals = {f"{lost}_max": 0, "rss_growth_ratio_last_over_first_max": RSS_GROWTH_GOAL}
    meets = result[lost] <= 0 and result["rss_growth_ratio_last_over_first"] <= RSS_GROWTH_GOAL
    return goals, bool(meets)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--full" not in sys.argv), indent=1))
