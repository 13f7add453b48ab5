"""Benchmark: our inlet against mne-lsl's ``StreamLSL`` on the same 128-channel, 1-kHz stream.

One run starts one outlet process (128 EEG channels plus a sample-index channel at 1000 Hz, pushed
every 10 ms and stamped with the LSL clock at push time) and three consumer processes reading it at
the same time:

- ``ours_inlet``: :class:`stream.inlet.Inlet` alone (pull into the ring buffer), reading a 1-s window
  from the ring every 0.1 s as a decoder would;
- ``ours_source``: :class:`stream.source.EEGSource`, the whole live path (channel mapping, resampling
  1000 → 125 Hz, windows every 0.1 s);
- ``mne_lsl``: ``mne_lsl.stream.StreamLSL`` (acquisition every 1 ms, its default), polled every 1 ms
  for new samples (its API has no notification) and read as a 1-s window every 0.1 s.

Each consumer measures, over the same stretch of the stream: process CPU time per second of data,
completeness (distinct sample indices received / expected) and availability latency, the LSL clock
when new samples became readable minus the push timestamp of the newest of them (for ``ours_source``:
window ready minus the timestamp of its newest stream sample). Results are medians and p99s with the
ratio to mne-lsl. The machine's load average is reported because other processes skew every figure.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid

N_EEG = 128
RATE = 1000.0
CHUNK = 10
WARMUP_S = 1.0


def _push(name: str, seconds: float, ready) -> None:
    """Outlet process: 128 EEG channels + an index channel, CHUNK samples every CHUNK ms."""
    import numpy as np
    import pylsl

    info = pylsl.StreamInfo(name, "EEG", N_EEG + 1, RATE, pylsl.cf_float32, f"{name}-sid")
    info.set_channel_labels([f"E{i}" for i in range(1, N_EEG + 1)] + ["index"])
    outlet = pylsl.StreamOutlet(info)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((int(RATE), N_EEG + 1)).astype(np.float32) * 10
    ready.set()
    t0 = pylsl.local_clock()
    index = 0
    while index < seconds * RATE:
        delay = t0 + (index + CHUNK) / RATE - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        chunk = noise[index % int(RATE) // CHUNK * CHUNK:][:CHUNK].copy()
        chunk[:, -1] = np.arange(index, index + CHUNK)
        outlet.push_chunk(chunk, pylsl.local_clock())
        index += CHUNK
    del outlet


def _summary(values) -> dict:
    import numpy as np

    values = np.asarray(values, dtype=np.float64) * 1000.0
    if values.size == 0:
        return {"p50_ms": None, "p99_ms": None, "n": 0}
    return {"p50_ms": round(float(np.percentile(values, 50)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3), "n": int(values.size)}


class _Seen:
    """Sample indices (from the index channel) and latencies seen inside the measured stretch."""

    def __init__(self, seconds: float):
        import numpy as np

        self.indices = np.zeros(int((seconds + WARMUP_S + 5) * RATE), dtype=np.int64)
        self.n = 0
        self.latencies: list[float] = []
        self.t0 = self.t1 = float("inf")

    def add(self, index_channel, newest_stamp: float, now: float) -> None:
        if self.t0 <= now <= self.t1:
            k = min(len(index_channel), self.indices.size - self.n)
            self.indices[self.n:self.n + k] = index_channel[:k]
            self.n += k
            self.latencies.append(now - newest_stamp)

    def completeness(self) -> float:
        import numpy as np

        seen = np.unique(self.indices[:self.n])
        return 0.0 if seen.size == 0 else round(float(seen.size / (seen[-1] - seen[0] + 1)), 5)


def _consume(kind: str, name: str, seconds: float, results) -> None:
    """Consumer process: measure one reader over ``seconds`` of stream after a warm-up."""
    import logging

    import pylsl

    logging.disable(logging.WARNING)
    seen = _Seen(seconds)
    try:
        if kind == "mne_lsl":
            from mne_lsl.stream import StreamLSL
            from mne_lsl.utils.logs import set_log_level

            set_log_level("ERROR")
            stream = StreamLSL(bufsize=2.0, name=name).connect(acquisition_delay=0.001, timeout=10)
            start = pylsl.local_clock()
            seen.t0, seen.t1 = start + WARMUP_S, start + WARMUP_S + seconds
            cpu0 = next_read = None
            while (now := pylsl.local_clock()) < seen.t1:
                if cpu0 is None and now >= seen.t0:
                    cpu0 = time.process_time()
                n_new = stream.n_new_samples
                if n_new:
                    data, stamps = stream.get_data(winsize=min(n_new, 2000) / RATE)
                    seen.add(data[-1], stamps[-1], pylsl.local_clock())
                if next_read is None or now >= next_read:
                    stream.get_data(winsize=1.0)  # a decoder's 1-s window (this resets n_new_samples)
                    next_read = now + 0.1
                time.sleep(0.001)
            cpu1 = time.process_time()
            stream.disconnect()
        elif kind == "ours_inlet":
            from stream.inlet import Inlet

            def on_chunk(data, timestamps, flags, t_arrival):
                seen.add(data[:, -1], timestamps[-1], pylsl.local_clock())

            inlet = Inlet(name, buffer_s=2.0, on_chunk=on_chunk, resolve_timeout=10)
            inlet.start()
            start = pylsl.local_clock()
            seen.t0, seen.t1 = start + WARMUP_S, start + WARMUP_S + seconds
            time.sleep(WARMUP_S)
            cpu0 = time.process_time()
            while pylsl.local_clock() < seen.t1:
                inlet.ring.latest(int(RATE))  # a decoder's 1-s window
                time.sleep(0.1)
            cpu1 = time.process_time()
            inlet.stop()
        else:
            from stream.source import EEGSource

            source = EEGSource(name, queue_windows=64, recent_s=2.0, resolve_timeout=10)
            source.start()
            handler = source.inlet.on_chunk

            def on_chunk(data, timestamps, flags, t_arrival):
                handler(data, timestamps, flags, t_arrival)
                now = pylsl.local_clock()
                if seen.t0 <= now <= seen.t1:
                    k = min(len(data), seen.indices.size - seen.n)
                    seen.indices[seen.n:seen.n + k] = data[:k, -1]
                    seen.n += k

            source.inlet.on_chunk = on_chunk
            start = pylsl.local_clock()
            seen.t0, seen.t1 = start + WARMUP_S, start + WARMUP_S + seconds
            time.sleep(WARMUP_S)
            while source.next_window(0) is not None:
                pass
            cpu0 = time.process_time()
            while pylsl.local_clock() < seen.t1:
                item = source.next_window(timeout=0.2)
                if item is not None:
                    seen.latencies.append(item.t_ready - item.t_last)
            cpu1 = time.process_time()
            source.stop()
        results.put((kind, {"cpu_s_per_data_s": round((cpu1 - cpu0) / seconds, 4),
                            "completeness": seen.completeness(), "latency": _summary(seen.latencies)}))
    except Exception as error:  # report, don't hang the parent
        results.put((kind, {"error": f"{type(error).__name__}: {error}"}))


def run(quick: bool) -> dict:
    """Run the benchmark; return JSON-ready results (see the module docstring).

    Parameters
    ----------
    quick : bool
        3 s of measured stream instead of 10 s.
    """
    seconds = 3.0 if quick else 10.0
    name = f"eegmusic-bench-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    ready, results = context.Event(), context.Queue()
    pusher = context.Process(target=_push, args=(name, seconds + WARMUP_S + 8, ready), daemon=True)
    pusher.start()
    ready.wait(30)
    kinds = ("ours_inlet", "ours_source", "mne_lsl")
    consumers = [context.Process(target=_consume, args=(kind, name, seconds, results), daemon=True)
                 for kind in kinds]
    for consumer in consumers:
        consumer.start()
    measured = {}
    deadline = time.monotonic() + seconds + WARMUP_S + 60
    while len(measured) < len(kinds) and time.monotonic() < deadline:
        try:
            kind, result = results.get(timeout=1.0)
        except Exception:  # queue.Empty
            continue
        measured[kind] = result
    for process in (*consumers, pusher):
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    ours, theirs, source = (measured.get(k, {"error": "no result"}) for k in kinds)
    out = {
        "stream": {"channels": N_EEG + 1, "rate_hz": RATE, "chunk_samples": CHUNK, "seconds": seconds},
        "load_average": [round(v, 2) for v in os.getloadavg()], "cpu_count": os.cpu_count(),
        "ours_inlet": ours, "ours_source": source, "mne_lsl": theirs,
    }
    try:
        out["cpu_ratio"] = round(ours["cpu_s_per_data_s"] / theirs["cpu_s_per_data_s"], 3)
        out["source_cpu_ratio"] = round(source["cpu_s_per_data_s"] / theirs["cpu_s_per_data_s"], 3)
        out["latency_p99_ratio"] = round(ours["latency"]["p99_ms"] / theirs["latency"]["p99_ms"], 3)
        out["latency_p50_ratio"] = round(ours["latency"]["p50_ms"] / theirs["latency"]["p50_ms"], 3)
        out["goals"] = {"cpu_ratio_le_0.5": out["cpu_ratio"] <= 0.5,
                        "window_p99_le_2ms": source["latency"]["p99_ms"] <= 2.0}
    except (KeyError, TypeError, ZeroDivisionError):
        out["goals"] = None  # a consumer failed; its entry says why
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--full" not in sys.argv), indent=2))
