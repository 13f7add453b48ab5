"""Training-speed benchmark: EEG2Mel CNN training throughput in windows/s, beside a baseline.

Measured: Adam steps of the full-size ``cnn`` (batch 60, the EEG2Mel setting) on synthetic windows,
with the batch gathered from an in-memory :class:`~offline_training.dataset.WindowDataset`-like array
(the same gather as training). Baseline, in the same run: the closed-form ``linear`` model's fit
throughput on the same windows (the cheapest trained model). Also reported: the extrapolated time of
one NMED-T-size epoch (54 000 windows; target < 60 s on 2 cores) and the ONNX-vs-torch parity of
every registry model (max abs difference in dB).

Run: ``python -m offline_training.bench_training`` or through ``eegmusic bench``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

NMEDT_EPOCH_WINDOWS = 54_000
TARGET_EPOCH_S = 60.0
BATCH = 60


def _timed_steps(step, n_steps: int, warmup: int = 1) -> np.ndarray:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(n_steps):
        tic = time.perf_counter()
        step()
        times.append(time.perf_counter() - tic)
    return np.asarray(times)


def _cnn_training(n_steps: int, rng: np.random.Generator) -> dict:
    import torch
    from eegmusic.offline_training.models.registry import build_model

    eeg_store = rng.normal(0.0, 20.0, (4 * BATCH, 125, 125)).astype(np.float32)
    mel_store = rng.normal(-40.0, 12.0, (4 * BATCH, 128, 44)).astype(np.float32)
    model = build_model("cnn")
    model.fit_stats(eeg_store[:BATCH], mel_store[:BATCH])
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1.5e-3)

    def step():
        rows = rng.choice(len(eeg_store), BATCH, replace=False)
        eeg, mel = torch.from_numpy(eeg_store[rows]), torch.from_numpy(mel_store[rows])
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(eeg), mel)
        loss.backward()
        optimizer.step()

    times = _timed_steps(step, n_steps)
    return {"median_s_per_batch": float(np.median(times)), "p99_s_per_batch": float(np.percentile(times, 99)),
            "windows_per_s": BATCH / float(np.median(times)), "n_batches": int(n_steps), "batch": BATCH}


def _linear_fit(n_steps: int, rng: np.random.Generator) -> dict:
    import torch
    from eegmusic.offline_training.models.registry import build_model

    model = build_model("linear")
    eeg = rng.normal(0.0, 20.0, (BATCH, 125, 125)).astype(np.float32)
    mel = rng.normal(-40.0, 12.0, (BATCH, 128, 44)).astype(np.float32)
    model.fit_stats(eeg, mel)
    batch = (torch.from_numpy(eeg), torch.from_numpy(mel), torch.zeros(BATCH, dtype=torch.long))

    def step():
        model.fit_closed_form([batch], None)

    times = _timed_steps(step, n_steps)
    return {"median_s_per_batch": float(np.median(times)), "p99_s_per_batch": float(np.percentile(times, 99)),
            "windows_per_s": BATCH / float(np.median(times)), "n_batches": int(n_steps), "batch": BATCH}


def _export_parity(rng: np.random.Generator) -> dict:
    import torch
    from eegmusic.offline_training.export import build_metadata, export_onnx, run_onnx
    from eegmusic.offline_training.models.registry import MODELS, build_model

    eeg = rng.normal(0.0, 20.0, (4, 125, 125)).astype(np.float32)
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in MODELS:
            torch.manual_seed(0)
            model = build_model(name)
            model.fit_stats(eeg, rng.normal(-40.0, 12.0, (4, 128, 44)))
            with torch.no_grad():
                for parameter in model.parameters():
                    if not parameter.abs().sum():
                        parameter.normal_(0.0, 0.02)
            model.eval()
            path = export_onnx(model, Path(folder) / f"{name}.onnx", build_metadata(model))
            with torch.no_grad():
                expected = model(torch.from_numpy(eeg)).numpy()
            out[name] = float(np.max(np.abs(run_onnx(path, eeg) - expected)))
    return out


def run(quick: bool = False) -> dict:
    """Measure CNN training throughput beside the linear baseline.

    Parameters
    ----------
    quick : bool
        Fewer timed batches (2 instead of 8).

    Returns
    -------
    results : dict
        JSON-ready: ``cnn_training`` and ``baseline_linear_fit`` (median/p99 s per batch of 60,
        windows/s), ``ratio`` (CNN windows/s over baseline windows/s), ``nmedt_epoch_s``
        (extrapolated 54k-window epoch), ``target_epoch_s``, ``meets_target``, ``torch_threads``,
        ``onnx_parity_max_abs_db`` per model.
    """
    import torch

    rng = np.random.default_rng(0)
    n_steps = 2 if quick else 8
    cnn = _cnn_training(n_steps, rng)
    baseline = _linear_fit(n_steps, rng)
    epoch_s = NMEDT_EPOCH_WINDOWS / cnn["windows_per_s"]
    return {
        "cnn_training": cnn,
        "baseline_linear_fit": baseline,
        "ratio": cnn["windows_per_s"] / baseline["windows_per_s"],
        "nmedt_epoch_windows": NMEDT_EPOCH_WINDOWS,
        "nmedt_epoch_s": epoch_s,
        "target_epoch_s": TARGET_EPOCH_S,
        "meets_target": bool(epoch_s < TARGET_EPOCH_S),
        "torch_threads": torch.get_num_threads(),
        "onnx_parity_max_abs_db": _export_parity(rng),
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
