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
ratio to the baseline; the goal is a median (p50) of ≤ 0.1 ms per window. The one-off cost of
building the matrix when the stream is opened is reported beside them.

``accuracy``: what the interpolation is worth, on simulated EEG (the forward model of
:mod:`replay.forward_model`, 20 s of one listener at 125 Hz on the GSN net, average reference).
Two cases: ``dense``, the 12 channels of ``gsn128_12_missing`` removed; ``sparse``, only 32 channels
of the net kept (spread over the scalp) and the other 93 filled. The missing channels are filled by
the spherical spline, by the mean of the neighbours within 4.5 cm or else the 3 nearest (the
previous imputation, NMED-T's own), and by zeros; each is scored against the true signals as the
median correlation and the median relative RMS error over the filled channels.
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
        "ratio_interpolate_over_copy_p50": round(p50 / base50, 2) if base50 > 0 else None,
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
        ``ratio_interpolate_over_copy_p50``, ``matrix_build_ms``, ``meets_goal`` (p50 ≤ ``goal_ms``);
        ``goal_ms``.
    """
    from eegmusic.stream.montage import montage_labels
    from eegmusic.stream.spec import MODEL_CHANNELS

    rng = np.random.default_rng(0)
    repeats = 2000 if quick else 20000
    biosemi = montage_labels("biosemi64")
    gsn128 = tuple(f"E{i}" for i in range(1, 129))
    cases = {
        "biosemi64_3_missing": _case([lb for lb in biosemi if lb not in ("AF3", "C4", "Oz")], biosemi,
                                     512.0, repeats, rng),
        "cap8_into_nmedt": _case(["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "Cz"], MODEL_CHANNELS,
                                 250.0, repeats, rng),
        "gsn128_12_missing": _case([lb for lb in gsn128 if lb not in MISSING_12], MODEL_CHANNELS,
                                   1000.0, repeats, rng),
    }
    return {"goal_ms": GOAL_MS, "hop_s": HOP_S, "repeats": repeats, "cases": cases,
            "accuracy": {"dense": _accuracy(sorted(MISSING_12, key=lambda label: int(label[1:]))),
                         "sparse": _accuracy(_sparse_missing(32))}}


def _sparse_missing(n_kept: int) -> list[str]:
    """Model channels not among ``n_kept`` spread over the net by farthest-point sampling."""
    from eegmusic.stream.montage import head_positions
    from eegmusic.stream.spec import MODEL_CHANNELS

    positions = head_positions(MODEL_CHANNELS)
    chosen = [MODEL_CHANNELS.index("Cz")]
    distance = np.linalg.norm(positions - positions[chosen[0]], axis=1)
    while len(chosen) < n_kept:
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(positions - positions[chosen[-1]], axis=1))
    return [label for i, label in enumerate(MODEL_CHANNELS) if i not in set(chosen)]


MISSING_12 = {f"E{i}" for i in (3, 9, 17, 22, 36, 55, 62, 75, 89, 100, 110, 118)}


def _accuracy(missing: list[str]) -> dict:
    """Spline against neighbour mean and zeros on simulated EEG (see the module docstring)."""
    from eegmusic.replay import forward_model as fm
    from eegmusic.replay.music import SFREQ as AUDIO_SFREQ
    from eegmusic.replay.music import generate_song
    from eegmusic.stream.channels import channel_map
    from eegmusic.stream.montage import head_positions
    from eegmusic.stream.spec import MODEL_CHANNELS

    sfreq, seconds = 125.0, 20.0
    audio = generate_song(21, bpm=100.0, seconds=seconds, seed=0)
    n_times = int(seconds * sfreq)
    envelopes, onsets = fm.stimulus_features(audio, audio_sfreq=AUDIO_SFREQ, sfreq=sfreq, n_times=n_times)
    head = fm.head_model()
    participant = fm.draw_participant(np.random.default_rng(1), head)
    evoked, rest = fm.simulate_net(participant, envelopes, onsets, sfreq=sfreq, snr=0.1,
                                   rng=np.random.default_rng(2), head=head)
    truth = fm.average_reference(evoked + rest)           # (125, n): model channels, average reference
    rows = [MODEL_CHANNELS.index(label) for label in missing]
    kept = [label for label in MODEL_CHANNELS if label not in missing]
    stream = truth[[MODEL_CHANNELS.index(label) for label in kept]]
    spline = channel_map(kept, MODEL_CHANNELS, impute_missing=True).apply(stream)[rows]
    positions = head_positions(MODEL_CHANNELS)
    kept_rows = [MODEL_CHANNELS.index(label) for label in kept]
    neighbour = np.empty_like(spline)
    for i, row in enumerate(rows):
        distance = np.linalg.norm(positions[kept_rows] - positions[row], axis=1)
        near = np.flatnonzero(distance < 0.045)
        neighbour[i] = stream[near if near.size else np.argsort(distance)[:3]].mean(axis=0)

    def score(estimate: np.ndarray) -> dict:
        target = truth[rows]
        r = [float(np.corrcoef(e, t)[0, 1]) if np.std(e) > 0 else 0.0
             for e, t in zip(estimate, target, strict=True)]
        rel = np.sqrt(np.mean((estimate - target) ** 2, axis=1) / np.mean(target ** 2, axis=1))
        return {"median_r": round(float(np.median(r)), 3), "median_rel_rmse": round(float(np.median(rel)), 3)}

    return {"n_missing": len(missing), "seconds": seconds, "spline": score(spline),
            "neighbour_mean": score(neighbour), "zeros": score(np.zeros_like(spline))}


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1))
