"""Benchmark: decoder compute per window on onnxruntime vs torch eager, and hop -> audio latency.

Part 1, for every registry model (``offline_training.models.registry.MODELS``, default
hyper-parameters, untrained weights: compute time does not depend on the weights): one window
(batch 1) through

* :class:`decoder.runtime.DecoderRuntime` on the CPU with 1 and with 2 intra-op threads (the live
  path: preallocated, I/O-bound buffers), and with 1 thread through plain ``session.run`` (to check
  that I/O binding is the faster path on the CPU too), and
* the same model in torch eager mode (``torch.no_grad``, 1 thread), the baseline, in the same run.

Reported per model: p50 and p99 in ms of each, and the ratio torch / onnxruntime (> 1: onnxruntime is
faster). Goal: CNN p99 <= 2 ms and >= 5x faster than torch eager. Also each model's export time
(``export_s``), and for a model with LSTMs (``rcnn``, ``encdec``) the same model exported again through
torch's own LSTM path (``export_onnx(..., lstm_op=False)``, the baseline of
:mod:`offline_training.onnx_lstm`): its time, the ratio of the two, and that file's compute at 1 thread.

Part 2: a live replay of a simulated recording (in this process, real time) decoded by
:class:`decoder.pipeline.LivePipeline` into a null audio sink, once with the CNN and once with the
light ``linear`` model (which isolates the pipeline's own overhead from model compute); reported:
latency per stage, and the goal figure "hop -> audio buffer" p99 (last sample's arrival -> samples
handed to the audio buffer, goal <= 15 ms), beside the hop itself (a window is made every hop).

torch is imported lazily inside this benchmark only (the live path never imports it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from eegmusic.stream.atomic import temporary_directory

log = logging.getLogger(__name__)


def _timings(fn, n: int, warmup: int = 20) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out * 1e3


def _stats(ms: np.ndarray) -> dict:
    p50, p99 = np.percentile(ms, [50, 99])
    return {"p50_ms": round(float(p50), 4), "p99_ms": round(float(p99), 4)}


def bench_models(quick: bool, folder: Path) -> dict:
    """Per-window compute of every registry model: onnxruntime 1 and 2 threads vs torch eager."""
    import torch
    from eegmusic.decoder.runtime import DecoderRuntime
    from eegmusic.offline_training.export import build_metadata, export_onnx
    from eegmusic.offline_training.models.registry import MODELS, build_model

    n = 200 if quick else 2000
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results = {}
    rng = np.random.default_rng(0)
    window = (rng.standard_normal((125, 125)) * 20).astype(np.float32)
    try:
        for name in MODELS:
            try:
                torch.manual_seed(0)
                model = build_model(name).eval()
                # random weights: untrained, several models output zeros (a zero output layer, a ridge
                # not yet fitted), and their ONNX-vs-torch difference compared zeros with zeros
                with torch.no_grad():
                    for parameter in model.parameters():
                        parameter.add_(0.05 * torch.randn_like(parameter))
                started = time.perf_counter()
                path = export_onnx(model, folder / f"{name}.onnx", build_metadata(model))
                export_s = time.perf_counter() - started
                x = torch.from_numpy(window[None])
                with torch.no_grad():
                    eager = _timings(lambda: model(x), n)  # noqa: B023 (called at once)
                    reference = model(x).numpy()[0]
                row = {"params": int(sum(p.numel() for p in model.parameters())), "n": n,
                       "torch_eager_1t": _stats(eager),
                       # what the ONNX-vs-torch difference is read against: the output's own spread
                       "output_sd_db": round(float(np.std(reference)), 4),
                       "export_s": round(export_s, 2)}
                if any(isinstance(module, torch.nn.LSTM) for module in model.modules()):
                    row.update(_torch_lstm_export(model, folder / f"{name}-torch-lstm.onnx", export_s,
                                                  window, n))
                for threads in (1, 2):
                    runtime = DecoderRuntime(path, device="cpu", intra_op_threads=threads)
                    ort_ms = _timings(lambda: runtime.predict(window), n)  # noqa: B023
                    row[f"ort_cpu_{threads}t"] = _stats(ort_ms)
                    row[f"ratio_torch_over_ort_{threads}t_p50"] = round(float(
                        np.median(eager) / np.median(ort_ms)), 2)
                    row[f"max_abs_diff_db_{threads}t"] = float(np.max(np.abs(runtime.predict(window)
                                                                             - reference)))
                plain = DecoderRuntime(path, device="cpu", intra_op_threads=1, iobinding=False)
                row["ort_cpu_1t_plain_run"] = _stats(_timings(lambda: plain.predict(window), n))  # noqa: B023
                results[name] = row
            except Exception as error:  # one model failing must not hide the others
                log.exception("bench of model %s failed", name)
                results[name] = {"failed": f"{type(error).__name__}: {error}"}
    finally:
        torch.set_num_threads(torch_threads)
    return results


def _torch_lstm_export(model, path: Path, export_s: float, window: np.ndarray, n: int) -> dict:
    """A model with LSTMs exported again through torch's own LSTM path (the baseline of
    :mod:`offline_training.onnx_lstm`): its export time, ratio to ours, and that file's compute."""
    from eegmusic.decoder.runtime import DecoderRuntime
    from eegmusic.offline_training.export import build_metadata, export_onnx

    started = time.perf_counter()
    export_onnx(model, path, build_metadata(model), lstm_op=False)
    baseline_s = time.perf_counter() - started
    runtime = DecoderRuntime(path, device="cpu", intra_op_threads=1)
    return {"export_s_torch_lstm": round(baseline_s, 2),
            "ratio_export_torch_lstm_over_ours": round(baseline_s / export_s, 2),
            "ort_cpu_1t_torch_lstm_file": _stats(_timings(lambda: runtime.predict(window), n))}


def bench_live(quick: bool, folder: Path, model_name: str = "cnn") -> dict:
    """Hop -> audio buffer latency of a live replay decoded into a null sink."""
    import uuid

    from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
    from eegmusic.replay.simulate import simulate
    from eegmusic.replay.song_player import Player

    seconds = 12.0 if quick else 40.0
    data = folder / "sim"
    if not data.exists():
        simulate(data, n_songs=1, n_subjects=1, seconds=seconds + 4, seed=0, progress=False)
    model = _live_model(folder, model_name)
    name = f"bench-live-{uuid.uuid4().hex[:8]}"
    with Player(data, 21, 1, name=name, source_id=name, check_clash=False):
        config = PipelineConfig(stream_name=name, model_path=model, no_audio=True, lsl_out=True, device="cpu")
        with LivePipeline(config) as pipeline:
            time.sleep(seconds)
            summary = pipeline.summary()
    latency = summary["latency_ms"]
    hop_ms = config.hop_s * 1e3
    p99 = latency["arrival_to_buffered"]["p99"]
    return {"model": Path(model).stem, "seconds": seconds, "hop_ms": hop_ms, "latency_ms": latency,
            "hop_to_audio_buffer_p99_ms": p99,
            "ratio_hop_over_latency_p99": round(hop_ms / p99, 2) if p99 else None,
            "counters": summary["counters"], "goal_p99_ms": 15.0}


def _live_model(folder: Path, model_name: str) -> Path:
    """A registry model exported with default hyper-parameters."""
    import torch
    from eegmusic.offline_training.export import build_metadata, export_onnx
    from eegmusic.offline_training.models.registry import build_model

    path = folder / f"{model_name}.onnx"
    if not path.exists():
        torch.manual_seed(0)
        model = build_model(model_name).eval()
        export_onnx(model, path, build_metadata(model))
    return path


def run(quick: bool) -> dict:
    """Run both parts; return JSON-ready results (see module docstring)."""
    with temporary_directory("eegmusic-bench-runtime-") as tmp:
        folder = Path(tmp)
        models = bench_models(quick, folder)
        live = bench_live(quick, folder, "cnn")
        live_light = bench_live(quick, folder, "linear")
    cnn = models.get("cnn", {})
    return {
        "models": models,
        "live": live,
        "live_linear": live_light,
        "goals": {
            "cnn_ort_1t_p99_ms": cnn.get("ort_cpu_1t", {}).get("p99_ms"),
            "cnn_ort_1t_p99_le_2ms": (cnn.get("ort_cpu_1t", {}).get("p99_ms") or 1e9) <= 2.0,
            "cnn_ratio_torch_over_ort_1t_p50": cnn.get("ratio_torch_over_ort_1t_p50"),
            "cnn_ratio_torch_over_ort_1t_p50_ge_5": (cnn.get("ratio_torch_over_ort_1t_p50") or 0) >= 5.0,
            "hop_to_audio_buffer_p99_ms": live["hop_to_audio_buffer_p99_ms"],
            "hop_to_audio_buffer_p99_le_15ms": (live["hop_to_audio_buffer_p99_ms"] or 1e9) <= 15.0,
            "hop_to_audio_buffer_linear_p99_ms": live_light["hop_to_audio_buffer_p99_ms"],
        },
    }


if __name__ == "__main__":
    import json
    import sys

    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
