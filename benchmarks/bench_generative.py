"""Generative-decoder speed: wavegan decode time per window (ONNX, CPU) and diffusion time per 1-s segment.

Measured (default, untrained-but-fitted models of the registry; speed does not depend on training):

- ``wavegan``: one 1-s window → 22050 samples through onnxruntime on the CPU with one thread (as the
  live decoder runs a model), median and p99 over repeated calls; it keeps up with the live hop when
  the p99 is under ``hop_s`` (0.1 s: a new window every 100 ms). Baseline in the same run: the
  regression ``convnet`` (mel output, then still to be vocoded) in the same session setup; ratio =
  wavegan / convnet.
- ``diffusion``: DDIM sampling of one 1-s mel window in torch (one thread) for several step counts,
  and the exported ONNX graph (its fixed ``sample_steps`` unrolled). Baseline: the one-step sampler;
  ratio = time / one-step time (≈ the number of steps when the adapter's share is small).

Run: ``eegmusic bench --only bench_generative`` (or ``python -m eegmusic.benchmarks.bench_generative``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from eegmusic.stream.atomic import temporary_directory

logger = logging.getLogger(__name__)

HOP_S = 0.1
"""The live decoder's default hop: a window must decode in less than this to keep up."""


def _timed(call, n: int, warmup: int = 2) -> np.ndarray:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(n):
        tic = time.perf_counter()
        call()
        times.append(time.perf_counter() - tic)
    return np.asarray(times)


def _fitted(name: str, rng: np.random.Generator, **config):
    import torch
    from eegmusic.offline_training.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(name, **config)
    model.fit_stats(rng.normal(0.0, 20.0, (8, 125, 125)), rng.normal(-40.0, 12.0, (8, 128, 44)))
    return model.eval()


def _onnx_session(model, folder: Path):
    import onnxruntime
    from eegmusic.offline_training.export import build_metadata, export_onnx

    path = export_onnx(model, folder / f"{model.name}.onnx", build_metadata(model))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _stats(times: np.ndarray) -> dict:
    return {
        "median_s": float(np.median(times)),
        "p99_s": float(np.percentile(times, 99)),
        "n": int(len(times)),
    }


def run(quick: bool = False) -> dict:
    """Measure; return JSON-ready results.

    Parameters
    ----------
    quick : bool
        Fewer repetitions and step counts (a smoke run).

    Returns
    -------
    dict
        ``wavegan``: ``decode_per_window`` (median_s, p99_s), ``baseline_convnet`` (same),
        ``ratio_ours_over_baseline`` (wavegan / convnet median), ``hop_s``, ``keeps_up``,
        ``realtime_factor`` (hop / median); ``diffusion``: ``by_steps`` {steps: {median_s, p99_s,
        ratio_over_one_step}}, ``baseline_one_step``,
        ``onnx_exported`` (steps, median_s, p99_s).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n_calls = 10 if quick else 50
    eeg = rng.normal(0.0, 20.0, (1, 125, 125)).astype(np.float32)
    results: dict = {}
    try:
        with temporary_directory("eegmusic-bench-generative-") as tmp:
            folder = Path(tmp)
            wavegan = _onnx_session(_fitted("wavegan", rng), folder)
            convnet = _onnx_session(_fitted("convnet", rng), folder)
            wave_times = _timed(lambda: wavegan.run(["audio"], {"eeg": eeg}), n_calls)
            base_times = _timed(lambda: convnet.run(["mel_db"], {"eeg": eeg}), n_calls)
            wave, base = _stats(wave_times), _stats(base_times)
            results["wavegan"] = {
                "decode_per_window": wave,
                "baseline_convnet": base,
                "ratio_ours_over_baseline": wave["median_s"] / base["median_s"],
                "hop_s": HOP_S,
                "keeps_up": bool(wave["p99_s"] < HOP_S),
                "realtime_factor": HOP_S / wave["median_s"],
            }

            diffusion = _fitted("diffusion", rng)
            eeg_t = torch.from_numpy(eeg)
            steps_list = (1, 5, 10) if quick else (1, 5, 10, 25, 50)
            n_sample = 3 if quick else 10
            by_steps = {}
            for steps in steps_list:
                times = _timed(lambda s=steps: diffusion.sample(eeg_t, steps=s, seed=0), n_sample, warmup=1)
                by_steps[str(steps)] = _stats(times)
            one = by_steps["1"]["median_s"]
            for entry in by_steps.values():
                entry["ratio_over_one_step"] = entry["median_s"] / one
            session = _onnx_session(diffusion, folder)
            onnx_times = _timed(lambda: session.run(["mel_db"], {"eeg": eeg}), n_sample, warmup=1)
            results["diffusion"] = {
                "by_steps": by_steps,
                "baseline_one_step": by_steps["1"],
                "onnx_exported": {"steps": diffusion.sample_steps, **_stats(onnx_times)},
                "segment_s": 1.0,
            }
    finally:
        torch.set_num_threads(threads)
    logger.info("generative benchmark: %s", json.dumps(results))
    return results


if __name__ == "__main__":
    print(json.dumps(run(quick=False), indent=2))
