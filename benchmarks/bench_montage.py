"""Benchmark: cost of filling missing channels by spherical splines in the live path.

The live path maps every stream chunk onto the model's channels (:class:`stream.channels.ChannelMap`)
before resampling. With channels missing, that map is a gather plus one matrix product with the
precomputed spline matrix. Measured per window, i.e. on the stream samples that arrive between two
windows at the default 0.1-s hop, for three caps:

- ``biosemi64_3_missing``: 61 of 64 BioSemi channels at 512 Hz into a BioSemi-64 model;
- ``cap8_into_nmedt``: an 8-channel 10-20 cap at 250 Hz into the 125-channel NMED-T layout
  (124 channels interpolated);
- ``gsn128_12_missing``: a 128-channel GSN amplifier at 1000 Hz lacking 12 channels (the default
  tolerance of an NMED-T model).

Baseline, measured in the same run on the same chunk: the plain channel copy (the same stream and
model, nothing missing, channels reordered). Figures are medians (and p99) in milliseconds, with the
ratio to the baseline; the goal is ≤ 0.1 ms per window. The one-off cost of building the matrix when
the stream is opened is reported beside them.
"""

from __future__ import annotations

import time

import numpy as np

HOP_S = 0.1
GOAL_MS = 0.1


def _median_ms(apply, chunk: np.ndarray, repeats: int) -> tuple[float, float]:
    for _ in range(20):  # warm caches
        apply(chunk)
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter_ns()
        apply(chunk)
        times[i] = time.perf_counter_ns() - t0
    return float(np.median(times) / 1e6), float(np.percentile(times, 99) / 1e6)


def _case(stream_labels, model_labels, sfreq: float, repeats: int, rng) -> dict:
    from eegmusic.stream.channels import channel_map

    t0 = time.perf_counter()
    mapping = channel_map(stream_labels, model_labels, impute_missing=True)
    build_ms = (time.perf_counter() - t0) * 1000.0
    baseline_stream = list(reversed(model_labels))  # every model channel present, in another order
    copy = channel_map(baseline_stream, model_labels)
    n = int(round(HOP_S * sfreq))
    chunk = rng.standard_normal((len(stream_labels), n))
    full_chunk = rng.standard_normal((len(baseline_stream), n))
    p50, p99 = _median_ms(mapping.apply, chunk, repeats)
    base50, base99 = _median_ms(copy.apply, full_chunk, repeats)
    return {
        "stream_channels": len(stream_labels), "model_channels": len(model_labels),
        "interpolated": len(mapping.interpolated), "samples_per_window": n, "stream_sfreq": sfreq,
        "interpolate_ms": {"p50": round(p50, 4), "p99": round(p99, 4)},
        "baseline_copy_ms": {"p50": round(base50, 4), "p99": round(base99, 4)},
        "ratio_to_copy": round(p50 / base50, 2) if base50 > 0 else None,
        "matrix_build_ms": round(build_ms, 2),
        "meets_goal": p50 <= GOAL_MS,
    }


def run(quick: bool = False) -> dict:
    """Run the benchmark; return JSON-ready results.

    Parameters
    ----------
    quick : bool
        2000 repetitions per measurement instead of 20000.

    Returns
    -------
    results : dict
        ``cases`` → per cap: ``interpolate_ms`` and ``baseline_copy_ms`` {p50, p99} per window,
        ``ratio_to_copy``, ``matrix_build_ms``, ``meets_goal`` (p50 ≤ ``goal_ms``); ``goal_ms``.
    """
    from eegmusic.stream.montage import montage_labels
    from eegmusic.stream.spec import MODEL_CHANNELS

    rng = np.random.default_rng(0)
    repeats = 2000 if quick else 20000
    biosemi = montage_labels("biosemi64")
    gsn128 = tuple(f"E{i}" for i in range(1, 129))
    missing12 = {f"E{i}" for i in (3, 9, 17, 22, 36, 55, 62, 75, 89, 100, 110, 118)}
    cases = {
        "biosemi64_3_missing": _case([lb for lb in biosemi if lb not in ("AF3", "C4", "Oz")], biosemi,
                                     512.0, repeats, rng),
        "cap8_into_nmedt": _case(["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "Cz"], MODEL_CHANNELS,
                                 250.0, repeats, rng),
        "gsn128_12_missing": _case([lb for lb in gsn128 if lb not in missing12], MODEL_CHANNELS,
                                   1000.0, repeats, rng),
    }
    return {"goal_ms": GOAL_MS, "hop_s": HOP_S, "repeats": repeats, "cases": cases}


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1))
