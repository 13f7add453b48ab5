"""Benchmark: our inlet against mne-lsl's ``StreamLSL`` on the same 128-channel, 1-kHz stream.

One run starts one outlet process (128 EEG channels plus a sample-index channel at 1000 Hz, pushed
every 8 ms and stamped with the LSL clock at push time) and three consumer processes reading it in
turn, each reading a 1-s window every 0.1 s as a decoder does:

- ``ours_inlet``: :class:`stream.inlet.Inlet` alone (pull into the ring buffer);
- ``ours_source``: :class:`stream.source.EEGSource`, the whole live path (channel mapping, resampling
  1000 → 125 Hz, windows queued every 0.1 s);
- ``mne_lsl``: ``mne_lsl.stream.StreamLSL`` (acquisition every 1 ms, its default): the baseline
  for CPU time and latency, the same workload as ``ours_inlet``.

Each consumer measures, over its own stretch of the same stream: CPU time per second of data,
completeness (distinct sample indices in its windows / expected) and availability latency: the LSL
clock when new samples became readable minus the push time of the chunk holding the newest of them
(for ``ours_source``: window ready minus the push time of the window's newest stream sample). Both
inlets are timed at the same point, in their own acquisition thread, by the per-chunk callback each
library offers: ``Inlet(on_chunk=...)`` for ours, ``StreamLSL.add_callback`` for mne-lsl (called on
each acquired chunk just before it is written to its buffer); no consumer-side polling sleep is in
either figure. A
reader may see part of a chunk before the rest: liblsl back-fills the stamps of a chunk's earlier
samples, so the push time is the stamp of the chunk's last sample, worked out from the index
channel. Results are medians and p99s with the ratio to mne-lsl. The machine's load average is
reported because other processes skew every figure, latency most.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
import uuid

N_EEG = 128
RATE = 1000.0
CHUNK = 8
WARMUP_S = 1.0


def _push(name: str, ready, stop) -> None:
    """Outlet process: 128 EEG channels + an index channel, CHUNK samples every CHUNK ms, until stopped.

    Chunks end at sample indices that are multiples of CHUNK (the first chunk is sample 0 alone), so
    with CHUNK = 8 each 125-Hz output's newest input is the last sample of a chunk, whose timestamp is
    the push time.
    """
    import numpy as np
    import pylsl

    info = pylsl.StreamInfo(name, "EEG", N_EEG + 1, RATE, pylsl.cf_float32, f"{name}-sid")
    info.set_channel_labels([f"E{i}" for i in range(1, N_EEG + 1)] + ["index"])
    outlet = pylsl.StreamOutlet(info)
    noise = np.random.default_rng(0).standard_normal((int(RATE) + CHUNK, N_EEG + 1)).astype(np.float32) * 10
    ready.set()
    t0 = pylsl.local_clock()
    index = 0
    while not stop.is_set():
        size = 1 if index == 0 else CHUNK
        delay = t0 + (index + size - 1) / RATE - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        offset = index % int(RATE)
        chunk = noise[offset:offset + size].copy()
        chunk[:, -1] = np.arange(index, index + size)
        outlet.push_chunk(chunk, pylsl.local_clock())
        index += size
    del outlet


def _pushed_at(stamp: float, index: float) -> float:
    """Push time of the chunk holding sample ``index`` stamped ``stamp`` (liblsl back-fills stamps)."""
    return stamp + (-int(index) % CHUNK) / RATE


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

        self.indices = np.zeros(int((seconds + WARMUP_S + 5) * RATE * 1.2), dtype=np.int64)
        self.n = 0
        self.latencies: list[float] = []
        self.t0 = self.t1 = float("inf")

    def inside(self, now: float) -> bool:
        return self.t0 <= now <= self.t1

    def add_indices(self, index_channel) -> None:
        k = min(len(index_channel), self.indices.size - self.n)
        self.indices[self.n:self.n + k] = index_channel[:k]
        self.n += k

    def completeness(self) -> float:
        import numpy as np

        seen = np.unique(self.indices[:self.n])
        return 0.0 if seen.size == 0 else round(float(seen.size / (seen[-1] - seen[0] + 1)), 5)


def _connect_mne_lsl(name: str):
    from mne_lsl.stream import StreamLSL
    from mne_lsl.utils.logs import set_log_level

    set_log_level("ERROR")
    attempts = 10  # liblsl's by-property resolver now and then misses a stream on a loaded machine
    for attempt in range(attempts):
        try:
            return StreamLSL(bufsize=2.0, name=name).connect(acquisition_delay=0.001, timeout=2)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    return None


def _consume(kind: str, name: str, seconds: float, results) -> None:
    """Consumer process: measure one reader over ``seconds`` of stream after a warm-up.

    Every consumer reads a 1-s window every 0.1 s (as a decoder does); completeness comes from the
    index channel of those windows. Latency: ``ours_inlet`` stamps each chunk in its acquisition
    callback (``on_chunk``), ``mne_lsl`` likewise in its acquisition callback (``add_callback``), and
    ``ours_source`` each window when it is queued.
    """
    import logging

    import numpy as np
    import pylsl

    logging.disable(logging.WARNING)
    seen = _Seen(seconds)
    read_window = lambda: None  # noqa: E731 - set per kind below
    stop = lambda: None  # noqa: E731
    try:
        if kind == "mne_lsl":
            stream = _connect_mne_lsl(name)

            def on_acquired(data, timestamps, info):
                now = pylsl.local_clock()
                if seen.inside(now):
                    seen.latencies.append(now - _pushed_at(timestamps[-1], data[-1, -1]))
                return data, timestamps

            stream.add_callback(on_acquired)

            def read_window():
                data, _ = stream.get_data(winsize=1.0)
                return data[-1]

            stop = stream.disconnect
        elif kind == "ours_inlet":
            from eegmusic.stream.inlet import Inlet

            def on_chunk(data, timestamps, flags, t_arrival):
                now = pylsl.local_clock()
                if seen.inside(now):
                    seen.latencies.append(now - _pushed_at(timestamps[-1], data[-1, -1]))

            inlet = Inlet(name, buffer_s=2.0, on_chunk=on_chunk, resolve_timeout=10)
            inlet.start()

            def read_window():
                return inlet.ring.latest(int(RATE))[0][-1]

            stop = inlet.stop
        else:
            from eegmusic.stream.source import EEGSource

            source = EEGSource(name, queue_windows=64, recent_s=2.0, resolve_timeout=10)
            source.start()

            def read_window():
                return source.inlet.ring.latest(int(RATE))[0][-1]

            stop = source.stop
        start = pylsl.local_clock()
        seen.t0, seen.t1 = start + WARMUP_S, start + WARMUP_S + seconds
        cpu0 = None
        next_read = start
        while (now := pylsl.local_clock()) < seen.t1:
            if cpu0 is None and now >= seen.t0:
                cpu0 = time.process_time()
            if now >= next_read:
                index_channel = read_window()
                if seen.inside(now):
                    seen.add_indices(index_channel)
                next_read += 0.1
            if kind == "ours_source":
                window = source.next_window(timeout=max(0.0, min(next_read, seen.t1) - now))
                if window is not None and seen.inside(window.t_ready):
                    raw, stamps, _ = source.inlet.ring.latest(int(RATE))  # find the window's newest sample
                    # t_last is the time of the EEG the window holds: its newest stream sample came the
                    # resampler's delay later (80 ms at 1000 Hz), and that sample is the one compared
                    newest_t = window.t_last + source.preprocessor.delay_s
                    found = min(np.searchsorted(stamps, newest_t - 0.5 / RATE), len(stamps) - 1)
                    seen.latencies.append(window.t_ready - _pushed_at(stamps[found], raw[-1, found]))
            else:
                time.sleep(max(0.0, min(next_read, seen.t1) - now))
        cpu1 = time.process_time()
        stop()
        results.put((kind, {"cpu_s_per_data_s": round((cpu1 - cpu0) / seconds, 4),
                            "completeness": seen.completeness(), "latency": _summary(seen.latencies)}))
    except Exception as error:  # report, don't hang the parent
        results.put((kind, {"error": f"{type(error).__name__}: {error}"}))


@contextlib.contextmanager
def _ctrl_c_blocked():
    """Start processes inside this block: they begin with Ctrl-C blocked, and keep it so.

    A terminal sends Ctrl-C to every process of the group; the outlet and the readers each printed a
    ``KeyboardInterrupt`` traceback. This process alone takes it (a Ctrl-C pressed inside the block
    arrives when it ends) and stops them: the outlet by its event, a reader by a kill.

    Blocking the signal in this thread does not hold it back: the kernel hands a Ctrl-C to another thread
    of the process (numpy's BLAS threads), and Python then raised ``KeyboardInterrupt`` here all the same,
    once mid-``start()`` before the child had read what it needs, which printed its ``EOFError``
    traceback. So the block also takes Ctrl-C with a handler that notes it, and raises it again after
    (not :func:`stream.cli.stop_signals`'s :class:`~stream.cli.StopRequest`: that handler counts the stop
    begun, and the Ctrl-C raised after the block would then be ignored as its repeat).
    """
    pressed = []
    main = threading.current_thread() is threading.main_thread()   # the only thread that may set a handler
    handler = signal.signal(signal.SIGINT, lambda *_: pressed.append(True)) if main else None
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})   # what the children inherit
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if main:
            signal.signal(signal.SIGINT, handler if handler is not None else signal.default_int_handler)
        if pressed:
            signal.raise_signal(signal.SIGINT)   # as if pressed now: the handler the run set takes it


def run(quick: bool, seconds: float | None = None) -> dict:
    """Run the benchmark; return JSON-ready results (see the module docstring).

    Parameters
    ----------
    quick : bool
        3 s of measured stream per consumer instead of 10 s.
    seconds : float, optional
        This many instead (the test suite's size: 1.5 s).
    """
    seconds = seconds if seconds is not None else 3.0 if quick else 10.0
    name = f"eegmusic-bench-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    pusher = context.Process(target=_push, args=(name, ready, stop), daemon=True)
    # mne-lsl first: its by-property resolve has no fallback, and liblsl's discovery answers get
    # less reliable on this kind of loaded machine once other readers have come and gone
    kinds = ("mne_lsl", "ours_inlet", "ours_source")
    measured = {}
    consumer = None
    try:   # a Ctrl-C pressed while the outlet starts arrives as the block ends: inside the try
        with _ctrl_c_blocked():
            pusher.start()
        ready.wait(30)
        for kind in kinds:  # one after another: two cores cannot run four readers fairly at once
            consumer = context.Process(target=_consume, args=(kind, name, seconds, results), daemon=True)
            with _ctrl_c_blocked():
                consumer.start()
            try:
                measured[kind] = results.get(timeout=seconds + WARMUP_S + 60)[1]
            except Exception as error:  # queue.Empty: a consumer that hung
                measured[kind] = {"error": f"no result ({type(error).__name__})"}
            consumer.join(timeout=10)
            if consumer.is_alive():
                consumer.kill()
    finally:
        if consumer is not None and consumer.is_alive():  # Ctrl-C while it read: it has Ctrl-C blocked
            consumer.kill()
            consumer.join(timeout=5)
        stop.set()
        if pusher.pid is not None:   # started
            pusher.join(timeout=5)
            if pusher.is_alive():
                pusher.kill()
    theirs, ours, source = (measured[k] for k in kinds)
    out = {
        "stream": {"channels": N_EEG + 1, "rate_hz": RATE, "chunk_samples": CHUNK, "seconds": seconds},
        "load_average": [round(v, 2) for v in os.getloadavg()], "cpu_count": os.cpu_count(),
        "ours_inlet": ours, "ours_source": source, "mne_lsl": theirs,
    }
    try:
        out["ratio_cpu_ours_over_mne"] = round(ours["cpu_s_per_data_s"] / theirs["cpu_s_per_data_s"], 3)
        out["ratio_cpu_source_over_mne"] = round(source["cpu_s_per_data_s"] / theirs["cpu_s_per_data_s"], 3)
        out["ratio_latency_p50_ours_over_mne"] = round(
            ours["latency"]["p50_ms"] / theirs["latency"]["p50_ms"], 3)
        out["ratio_latency_p99_ours_over_mne"] = round(
            ours["latency"]["p99_ms"] / theirs["latency"]["p99_ms"], 3)
        out["goals"] = {"ratio_cpu_ours_over_mne_le_0.5": out["ratio_cpu_ours_over_mne"] <= 0.5,
                        "window_p99_le_2ms": source["latency"]["p99_ms"] <= 2.0}
    except (KeyError, TypeError, ZeroDivisionError):
        out["goals"] = None  # a consumer failed; its entry says why
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--full" not in sys.argv), indent=2))
