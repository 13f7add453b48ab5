"""Benchmark: replay pacing (jitter, drift) of :class:`replay.player.ArrayPlayer` vs mne-lsl ``PlayerLSL``.

Both players play the same random data, one after the other in the same run, and one reader thread
(a pylsl inlet, the same code for both) pulls every chunk as it arrives and notes the LSL time of
arrival beside the timestamp of the chunk's last sample (its schedule: both players stamp samples
with their scheduled time).

Part 1, jitter, at 125 channels / 125 Hz and 128 channels / 1 kHz, chunks of 10 ms (1 sample at
125 Hz: a chunk every 8 ms; 10 samples at 1 kHz): per chunk, the lateness ``arrival - schedule``.
A player may push ahead of or behind its stamps by a constant (mne-lsl pushes one chunk early), so
the jitter is the spread around the median: ``|lateness - median(lateness)|``, p50 and p99 in ms,
plus the inter-arrival jitter ``|Δarrival - chunk period|``. Goal: p99 <= 1 ms.

Part 2, drift after an accelerated hour: one hour of 125-channel data at 125 Hz (a 60-s recording
looped 60 times), played ``speed`` times faster (PlayerLSL has no speed: it gets the same samples
declared at ``125 * speed`` Hz). Reported: how much later the last 5 % of chunks arrive than the
first 5 % (``drift_ms``, goal 0: lateness never accumulates), the wall-clock rate error, and the
timestamp rate error, in parts per million.

Both players get the same start: the player starts pushing at once (neither waits for a consumer:
PlayerLSL cannot), then the same reader is started, resolves the stream and connects; the first 5 %
of chunks (connection set-up) are left out of every statistic, for both alike.

The figures include the reader's wake-up (both players alike) and whatever else the machine runs:
``load_avg`` is recorded with the results.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid

import numpy as np

logger = logging.getLogger(__name__)

CHUNK_MS = 10.0


class _Reader(threading.Thread):
    """Pull every chunk of one stream; keep (arrival, last timestamp, n samples) per chunk."""

    def __init__(self, name: str, n_chans: int, max_samples: int, *, stop_after_s: float) -> None:
        super().__init__(name=f"bench-reader-{name}", daemon=True)
        self.stream_name = name
        self.n_chans = n_chans
        self.max_samples = max_samples
        self.stop_after_s = stop_after_s
        self.arrival: list[float] = []
        self.last_stamp: list[float] = []
        self.n_samples: list[int] = []
        self.first_stamp: float | None = None
        self.connected = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        import pylsl

        try:
            infos = pylsl.resolve_byprop("name", self.stream_name, 1, 10.0)
            if not infos:
                self.error = f"stream {self.stream_name} not found"
                return
            fmt = infos[0].channel_format()
            dtype = np.float64 if fmt == pylsl.cf_double64 else np.float32
            buffer = np.empty((self.max_samples, self.n_chans), dtype=dtype)
            inlet = pylsl.StreamInlet(infos[0], max_buflen=30, recover=False)
            inlet.open_stream(10.0)
            self.connected.set()
            end = None
            while end is None or pylsl.local_clock() < end:
                try:
                    _, stamps = inlet.pull_chunk(timeout=0.2, max_samples=self.max_samples,
                                                 dest_obj=buffer, min_samples=1, as_numpy=True)
                except pylsl.util.LostError:
                    break
                if len(stamps):
                    now = pylsl.local_clock()
                    if end is None:
                        end = now + self.stop_after_s
                        self.first_stamp = float(stamps[0])
                    self.arrival.append(now)
                    self.last_stamp.append(float(stamps[-1]))
                    self.n_samples.append(len(stamps))
            del inlet
        except Exception as error:  # reported in the results, not raised from a thread
            self.error = f"{type(error).__name__}: {error}"
            self.connected.set()


def _spread_ms(values: np.ndarray) -> dict:
    spread = np.abs(values - np.median(values)) * 1e3
    return {"p50_ms": round(float(np.percentile(spread, 50)), 4),
            "p99_ms": round(float(np.percentile(spread, 99)), 4)}


def _jitter_stats(reader: _Reader, chunk_s: float) -> dict:
    arrival = np.array(reader.arrival)
    lateness = arrival - np.array(reader.last_stamp)
    if len(arrival) < 10:
        return {"error": reader.error or f"only {len(arrival)} chunks received"}
    skip = max(1, len(arrival) // 20)  # the first chunks include connection set-up
    lateness, arrival = lateness[skip:], arrival[skip:]
    intervals = np.abs(np.diff(arrival) - chunk_s) * 1e3
    return {
        "jitter": _spread_ms(lateness),
        "lateness_p50_ms": round(float(np.median(lateness) * 1e3), 4),
        "interval_jitter": {"p50_ms": round(float(np.percentile(intervals, 50)), 4),
                            "p99_ms": round(float(np.percentile(intervals, 99)), 4)},
        "n_chunks": int(len(lateness)),
    }


def _rounded(value: float, digits: int) -> float:
    """``round``, but a figure below the last digit shown is 0.0, not -0.0 (printed "-0")."""
    return round(value, digits) + 0.0


def _drift_stats(reader: _Reader, sfreq: float, speed: float) -> dict:
    rate = sfreq * speed
    arrival = np.array(reader.arrival)
    if len(arrival) < 40:
        return {"error": reader.error or f"only {len(arrival)} chunks received"}
    last = np.array(reader.last_stamp)
    counts = np.array(reader.n_samples)
    lateness = arrival - last
    # steady state only: skip the first 5 % (connection set-up, any backlog sent on connect)
    edge = max(5, len(arrival) // 20)
    n_steady = int(counts[edge + 1 :].sum())
    stamp_rate = n_steady / (last[-1] - last[edge])
    wall_rate = n_steady / (arrival[-1] - arrival[edge])
    drift_s = float(np.median(lateness[-edge:]) - np.median(lateness[edge : 2 * edge]))
    return {
        "drift_ms": _rounded(drift_s * 1e3, 4),
        "wall_rate_error_ppm": _rounded(float((wall_rate / rate - 1) * 1e6), 1),
        "timestamp_rate_error_ppm": _rounded(float((stamp_rate / rate - 1) * 1e6), 3),
        "data_hours_received": round(int(counts.sum()) / sfreq / 3600, 4),
        "n_samples": int(counts.sum()),
    }


def _play_ours(data, sfreq, name, seconds, *, speed=1.0, loop=False, chunk_ms=CHUNK_MS) -> _Reader:
    from eegmusic.replay.player import ArrayPlayer

    labels = [f"E{i}" for i in range(1, data.shape[0] + 1)]
    # no wait for a consumer: PlayerLSL cannot wait, so neither does ours (same start for both)
    player = ArrayPlayer(data, sfreq, labels, name=name, speed=speed, loop=loop, chunk_ms=chunk_ms,
                         markers=None, wait_for_consumer_s=0.0, check_clash=False)
    reader = _Reader(name, data.shape[0], max(8192, player.chunk_samples * 8), stop_after_s=seconds)
    with player:
        reader.start()
        reader.join(seconds + 20.0)
    return reader


def _play_mne(data, sfreq, name, seconds, *, chunk_samples, n_repeat=np.inf, speed=1.0) -> _Reader:
    import mne
    from mne_lsl.player import PlayerLSL

    labels = [f"E{i}" for i in range(1, data.shape[0] + 1)]
    info = mne.create_info(labels, sfreq * speed, "eeg", verbose=False)
    raw = mne.io.RawArray(data * 1e-6, info, verbose=False)
    player = PlayerLSL(raw, chunk_size=chunk_samples, n_repeat=n_repeat, name=name,
                       source_id=f"{name}-mne")
    reader = _Reader(name, data.shape[0], max(8192, chunk_samples * 8), stop_after_s=seconds)
    player.start()
    try:
        reader.start()
        reader.join(seconds + 20.0)
    finally:
        if player.running:  # a player with a finite n_repeat stops by itself
            player.stop()
    return reader


def _ratio(ours: dict, theirs: dict) -> float | None:
    try:
        return round(theirs["jitter"]["p99_ms"] / max(ours["jitter"]["p99_ms"], 1e-6), 3)
    except (KeyError, TypeError):
        return None


JITTER_GOAL_MS = 1.0
"""Replay jitter goal: p99 of the spread around the median lateness (module docstring)."""


def run(quick: bool, seconds: float | None = None) -> dict:
    """Run the benchmark; return JSON-ready results (see the module docstring).

    Parameters
    ----------
    quick : bool
        3 s per jitter run instead of 20, and the hour of data at 360x instead of 120x (10 s).
    seconds : float, optional
        Seconds per jitter run instead (the test suite's size: 1 s).
    """
    import mne

    mne.set_log_level("WARNING")
    rng = np.random.default_rng(0)
    tag = uuid.uuid4().hex[:6]
    seconds = seconds if seconds is not None else 3.0 if quick else 20.0
    results: dict = {"load_avg_before": [round(v, 2) for v in os.getloadavg()], "chunk_ms": CHUNK_MS,
                     "seconds_per_run": seconds, "jitter": {}, "drift_accelerated_hour": {}}
    for n_chans, sfreq in ((125, 125.0), (128, 1000.0)):
        data = rng.standard_normal((n_chans, int(sfreq * (seconds + 5)))) * 10
        chunk_samples = max(1, round(CHUNK_MS * sfreq / 1000))
        chunk_s = chunk_samples / sfreq
        ours = _jitter_stats(_play_ours(data, sfreq, f"bench-ours-{tag}-{n_chans}", seconds, loop=True),
                             chunk_s)
        theirs = _jitter_stats(_play_mne(data, sfreq, f"bench-mne-{tag}-{n_chans}", seconds,
                                         chunk_samples=chunk_samples), chunk_s)
        results["jitter"][f"{n_chans}ch_{sfreq:g}Hz"] = {
            "eegmusic": ours, "mne_lsl_PlayerLSL": theirs, "ratio_p99_mne_over_ours": _ratio(ours, theirs),
            # the goal beside the figure, so a miss is marked (an 8.8-ms p99 on a busy machine went unsaid)
            "goal_p99_ms": JITTER_GOAL_MS,
            "meets_goal": None if "jitter" not in ours else ours["jitter"]["p99_ms"] <= JITTER_GOAL_MS,
        }
    # an hour of data, accelerated
    sfreq, recording_s = 125.0, 60.0
    speed = 360.0 if quick else 120.0
    wall_s = 3600.0 / speed
    data = rng.standard_normal((125, int(sfreq * recording_s))) * 10
    rate = sfreq * speed
    # a chunk coprime with the recording's length (closest to 10 ms): no chunk of the hour ends exactly
    # at the end of a pass, which PlayerLSL mishandles (its next chunk then carries the whole pass again)
    target = round(CHUNK_MS * rate / 1000)
    coprime = [c for c in range(max(1, target // 2), 2 * target + 2) if math.gcd(c, data.shape[1]) == 1]
    chunk_samples = min(coprime, key=lambda c: abs(c - target))
    chunk_ms = chunk_samples / rate * 1000
    ours = _drift_stats(_play_ours(data, sfreq, f"bench-drift-ours-{tag}", wall_s, speed=speed, loop=True,
                                   chunk_ms=chunk_ms), sfreq, speed)
    mne_reader = _play_mne(data, sfreq, f"bench-drift-mne-{tag}", wall_s, chunk_samples=chunk_samples,
                           n_repeat=int(3600 / recording_s), speed=speed)
    theirs = _drift_stats(mne_reader, sfreq, speed)
    results["drift_accelerated_hour"] = {"speed": speed, "wall_s": wall_s, "chunk_samples": chunk_samples,
                                         "eegmusic": ours,
                                         "mne_lsl_PlayerLSL": theirs}
    results["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
    return results


if __name__ == "__main__":
    import json
    import sys

    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
