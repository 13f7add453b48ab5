"""Benchmark: how soon samples flow again after an LSL source dies and comes back.

Each trial connects an :class:`~stream.inlet.Inlet` to a 2-channel, 100-Hz outlet, destroys the
outlet (the inlet sees the connection drop and starts reconnecting), waits a random 0.2-1.5 s, and
creates a new outlet under the same source_id that pushes a sample every 10 ms. Every other trial
first starts an impostor: a 3-channel stream of the same name, which the inlet must refuse.

Measured per trial, from the moment the new outlet exists: ``reconnect_s``, until the inlet holds a
sample of it. Baseline, in the same trial and started at the same moment: ``fresh_connect_s``, until
a new ``Inlet(source_id=...)`` started then holds one, which is what restarting the reader would
cost at best. Results are medians (and p90 / max of the reconnects), with their ratio; the goal is
the module promise of :mod:`stream.inlet`: every reconnect within 2 s.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import numpy as np

RATE = 100.0
GOAL_S = 2.0


def _outlet(name: str, source_id: str, n_chans: int = 2):
    import pylsl
    from eegmusic.stream.outlet import eeg_stream_info

    labels = [f"E{i}" for i in range(1, n_chans + 1)]
    return pylsl.StreamOutlet(eeg_stream_info(name, labels, RATE, source_id))


def _wait(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def _trial(rng: np.random.Generator, impostor: bool) -> tuple[float, float]:
    """One loss and return; (reconnect_s, fresh_connect_s), NaN for one that did not happen within 10 s."""
    from eegmusic.stream.inlet import Inlet

    name = f"eegmusic-reconnect-{uuid.uuid4().hex[:8]}"
    sid = f"{name}-sid"
    outlet = _outlet(name, sid)
    inlet = Inlet(name, resolve_timeout=10.0)
    fresh = Inlet(source_id=sid, resolve_timeout=10.0)
    others = []
    try:
        inlet.start()
        outlet.wait_for_consumers(5.0)
        outlet.push_sample([0.0, 0.0])
        if not _wait(lambda: inlet.n_samples >= 1, 5.0):
            raise RuntimeError("the inlet received nothing before the loss")
        del outlet  # the source dies
        if not _wait(lambda: not inlet.connected, 5.0):
            raise RuntimeError("the inlet did not notice the loss")
        if impostor:
            others.append(_outlet(name, f"{name}-impostor", n_chans=3))
        time.sleep(float(rng.uniform(0.2, 1.5)))
        n_before = inlet.n_samples
        outlet = _outlet(name, sid)
        returned = time.monotonic()
        starter = threading.Thread(target=fresh.start, daemon=True)
        starter.start()
        times = {}
        while len(times) < 2 and time.monotonic() - returned < 10.0:
            outlet.push_sample([1.0, 1.0])
            now = time.monotonic() - returned
            if "reconnect" not in times and inlet.n_samples > n_before:
                times["reconnect"] = now
            if "fresh" not in times and fresh.ring is not None and fresh.n_samples > 0:
                times["fresh"] = now
            time.sleep(1 / RATE)
        starter.join(timeout=10.0)
        return times.get("reconnect", float("nan")), times.get("fresh", float("nan"))
    finally:
        inlet.stop()
        fresh.stop()
        del others


def run(quick: bool, trials: int | None = None) -> dict:
    """Run the benchmark; return JSON-ready results (see the module docstring).

    Parameters
    ----------
    quick : bool
        6 trials instead of 30.
    trials : int, optional
        This many trials instead (at least 2: one of each kind; the test suite's size).
    """
    rng = np.random.default_rng(0)
    n = trials if trials is not None else 6 if quick else 30
    if n < 2:
        raise ValueError(f"trials must be at least 2 (one with an impostor), got {n}")
    trials = [_trial(rng, impostor=k % 2 == 1) for k in range(n)]
    reconnect = np.array([t[0] for t in trials])
    fresh = np.array([t[1] for t in trials])
    done = reconnect[np.isfinite(reconnect)]
    summary = {
        "trials": n, "with_impostor": n // 2, "missed": int(n - len(done)),
        "reconnect_s": None, "fresh_connect_s": None,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    if len(done):
        summary["reconnect_s"] = {"p50": round(float(np.median(done)), 3),
                                  "p90": round(float(np.quantile(done, 0.9)), 3),
                                  "max": round(float(done.max()), 3)}
    if np.isfinite(fresh).any():
        summary["fresh_connect_s"] = {"p50": round(float(np.nanmedian(fresh)), 3)}
    if summary["reconnect_s"] and summary["fresh_connect_s"]:
        ratio = summary["reconnect_s"]["p50"] / summary["fresh_connect_s"]["p50"]
        summary["reconnect_over_fresh_p50"] = round(ratio, 3)
    summary["goals"] = {f"every_reconnect_within_{GOAL_S:g}s": bool(len(done) == n and done.max() <= GOAL_S)}
    return summary


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--full" not in sys.argv), indent=2))
