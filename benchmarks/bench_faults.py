"""Fault soak: an accelerated hour of live decoding with a stall, a loss and hostile markers every 5 minutes.

A simulated recording, repeated to ``stream_hours``, is pushed by an outlet in this process at
``speed`` times real time into the live pipeline (``--truth`` on, so the marker stream is read).
Every ``every_min`` minutes of stream time, three faults are injected in turn:

- hostile markers on ``<name>-markers`` (``song=21;t=1.2.3``, ``²``, 5000 characters);
- a stall: the outlet stays open and sends nothing for ``stall_s`` seconds of wall time;
- a loss: the outlet is destroyed and, ``loss_s`` later, a new one appears under the same
  source_id; pushing goes on once the inlet has reconnected.

Reported: samples pushed while an inlet was connected against samples the pipeline received after
draining (``samples_lost``), the stalls, losses and reconnects the pipeline counted, the bad markers
it counted and skipped, windows decoded, and resident memory over the run (``rss_over_time``: one
``{"t_s", "rss_mib"}`` sample every few seconds; its baseline is the first RSS sample, taken once the
pipeline runs: ``rss_growth_ratio_last_over_first`` must stay near 1).

The baseline of the losses is the same soak without faults, run first in the same process: an
accelerated stream overflows liblsl's inlet queue (``max_buflen`` seconds at the *nominal* rate)
whenever the acquisition thread is held up, so an accelerated soak loses samples on a loaded
machine with or without faults. The faults must add none: ``samples_lost_added_by_faults``.

Goal: the faults add no lost sample and memory stays flat (RSS last/first within
:data:`benchmarks.bench_soak.RSS_GROWTH_GOAL`); ``goals`` holds both limits and ``meets_goal`` the verdict.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from eegmusic.benchmarks.bench_runtime import _live_model
from eegmusic.benchmarks.bench_soak import _drain, _rss_mib, rss_figures, soak_stream, soak_verdict
from eegmusic.stream.atomic import temporary_directory

HOSTILE_MARKERS = ("song=21;t=1.2.3", "²", "x" * 5000)


class _FaultyDevice:
    """An EEG outlet (and its marker outlet) pushed by a thread, with faults on a schedule."""

    def __init__(self, name, samples, sfreq, labels, *, speed, every_s, stall_s, loss_s, reconnected=None):
        self.name, self.samples, self.sfreq, self.labels = name, samples, sfreq, labels
        self.speed, self.every_s, self.stall_s, self.loss_s = speed, every_s, stall_s, loss_s
        self.reconnected = reconnected  # () -> bool: the reader has reconnected and pulls again
        self.pushed = 0
        self.faults = {"hostile_markers": 0, "stalls": 0, "losses": 0}
        self.done = threading.Event()
        self._stop = threading.Event()
        self._outlet = self._open()
        import pylsl
        from eegmusic.stream.outlet import marker_stream_info

        self._markers = pylsl.StreamOutlet(marker_stream_info(f"{name}-markers", f"{name}-markers"))
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-faults-device")

    def _open(self):
        import pylsl
        from eegmusic.stream.outlet import eeg_stream_info

        return pylsl.StreamOutlet(eeg_stream_info(self.name, self.labels, self.sfreq, f"{self.name}-sid"))

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10.0)

    def _run(self):
        n_total = self.samples.shape[1]
        chunk = max(1, int(round(self.sfreq * self.speed * 0.02)))
        next_fault = self.every_s * self.sfreq
        next_second = 0
        t0 = time.monotonic()
        while self.pushed < n_total and not self._stop.is_set():
            if self.pushed >= next_fault:
                self._inject()
                next_fault += self.every_s * self.sfreq
                t0 = time.monotonic() - self.pushed / (self.sfreq * self.speed)
            due = min(n_total, int((time.monotonic() - t0) * self.sfreq * self.speed))
            if due > self.pushed:
                n = min(due - self.pushed, 4 * chunk)
                self._outlet.push_chunk(np.ascontiguousarray(self.samples[:, self.pushed:self.pushed + n].T))
                self.pushed += n
                while next_second * self.sfreq <= self.pushed:  # the replay's truth markers
                    self._markers.push_sample([f"song=21;t={next_second % 60:.3f}"])
                    next_second += 1
            time.sleep(0.01)
        self.done.set()

    def _inject(self):
        for text in HOSTILE_MARKERS:
            self._markers.push_sample([text])
        self.faults["hostile_markers"] += len(HOSTILE_MARKERS)
        time.sleep(self.stall_s)  # stall: outlet alive, nothing sent
        self.faults["stalls"] += 1
        self._outlet = None       # loss: the outlet goes away ...
        time.sleep(self.loss_s)
        self._outlet = self._open()  # ... and comes back under the same source_id
        self._outlet.wait_for_consumers(30.0)
        # At 1x, liblsl's inlet queue (10 s) holds what arrives while the reader finishes
        # reconnecting; accelerated, it holds 10 s / speed: so wait until the reader pulls again.
        deadline = time.monotonic() + 30.0
        while self.reconnected is not None and not self.reconnected() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.faults["losses"] += 1


def soak_with_faults(folder: Path, *, stream_hours: float, speed: float, every_min: float | None = 5.0,
                     stall_s: float = 1.5, loss_s: float = 1.0, model_name: str = "convnet") -> dict:
    """Run the fault soak (see the module docstring); return JSON-ready figures.

    ``every_min=None`` injects no fault: the baseline soak.
    """
    from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig

    data, recording, samples = soak_stream(folder / "faults-sim", stream_hours)
    model = _live_model(folder, model_name)
    name = f"bench-faults-{uuid.uuid4().hex[:8]}"
    config = PipelineConfig(stream_name=name, model_path=model, no_audio=True, lsl_out=False, device="cpu",
                            truth_dir=data, resolve_timeout_s=30.0)
    pipeline = LivePipeline(config)
    losses_before = [0]

    def reconnected() -> bool:
        health = pipeline.health()
        if health is None or health.state != "reconnected" or health.losses <= losses_before[0]:
            return False
        losses_before[0] = health.losses
        return True

    every_s = math.inf if every_min is None else every_min * 60.0
    device = _FaultyDevice(name, samples, recording.sfreq, list(recording.channels), speed=speed,
                           every_s=every_s, stall_s=stall_s, loss_s=loss_s, reconnected=reconnected)
    rss: list[tuple[float, float]] = []
    with pipeline:
        device.start()
        t_start = time.monotonic()
        while not device.done.wait(timeout=2.0):
            rss.append((round(time.monotonic() - t_start, 1), round(_rss_mib(), 1)))
        rss.append((round(time.monotonic() - t_start, 1), round(_rss_mib(), 1)))
        received, drain_s = _drain(pipeline, device.pushed)
        summary = pipeline.summary()
    device.stop()
    health = summary["stream_health"] or {}
    counters = summary["counters"]
    return {
        "stream_hours": stream_hours, "speed": speed, "every_min": every_min, "model": model_name,
        "load_avg": [round(v, 2) for v in os.getloadavg()],
        "faults_injected": device.faults,
        "samples_pushed": int(device.pushed), "samples_received": received, "drain_s": round(drain_s, 2),
        "samples_lost": int(device.pushed - received),
        "stalls_seen": health.get("stalls"), "losses_seen": health.get("losses"),
        "reconnects": counters["reconnects"], "bad_markers_counted": counters["bad_markers"],
        "windows_decoded": counters["windows"], "windows_flagged": counters["flagged_windows"],
        "error": summary["error"],
        **rss_figures(rss),
    }


def run(quick: bool) -> dict:
    """The fault soak beside the same soak without faults.

    Parameters
    ----------
    quick : bool
        A quarter hour of stream at 120x with faults every 5 minutes (2 rounds, at 5 and 10 min; about
        40 s with the baseline); otherwise a full hour at 30x (11 rounds; about 5 minutes with the
        baseline).
    """
    hours, speed = (0.25, 120.0) if quick else (1.0, 30.0)
    with temporary_directory("eegmusic-bench-faults-") as tmp:
        baseline = soak_with_faults(Path(tmp), stream_hours=hours, speed=speed, every_min=None)
        faults = soak_with_faults(Path(tmp), stream_hours=hours, speed=speed)
    faults["samples_lost_baseline_no_faults"] = baseline["samples_lost"]
    faults["samples_lost_added_by_faults"] = faults["samples_lost"] - baseline["samples_lost"]
    faults["rss_growth_ratio_last_over_first_without_faults"] = baseline["rss_growth_ratio_last_over_first"]
    goals, meets = soak_verdict(faults, lost="samples_lost_added_by_faults")
    return {"soak_with_faults": faults, "soak_without_faults": baseline, "goals": goals, "meets_goal": meets}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--full" not in sys.argv), indent=1))
