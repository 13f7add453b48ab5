"""Training and sampling of the EEG-conditioned mel diffusion decoder (``models/diffusion.py``).

``eegmusic train --model diffusion`` runs :func:`fit_diffusion` (through the model's ``fit_run`` hook):

1. **Prior** (``prior_epochs`` epochs, default ``--epochs``): the denoiser learns to denoise the
   standardised mel windows of the *training part only* (each distinct song segment once: every
   subject heard the same audio), unconditionally — the stand-in for AudioLDM2's pretraining. The
   test part's audio is never seen, so the prior cannot leak held-out music into the evaluation.
2. **Adapter** (``--epochs`` epochs): the prior is frozen (``requires_grad`` off, its weights are
   checked unchanged) and the ControlNet-style adapter (plus the optional subject embedding) learns
   the same denoising loss on (EEG window, mel window) pairs.

Each phase keeps its best weights by a deterministic validation loss (denoising MSE on the validation part
with noise and timesteps drawn from a fixed seed) and stops early after ``--patience`` epochs without
improvement. A checkpoint is written after every epoch (phase, optimiser, history) for ``--resume``.
After training, :func:`offline_training.train.train` scores the model's :meth:`forward` (the fixed
DDIM sampler) in mel-dB and exports it to ONNX.

:func:`sample_mel` samples with any number of DDIM steps and any seed, for experiments and the
benchmark.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path

import numpy as np
from eegmusic.stream.errors import ConfigError

logger = logging.getLogger(__name__)

VAL_SEED = 12345
"""Seed of the validation loss's noise and timesteps (the same draw every epoch)."""


def denoising_loss(model, mel_db, control=None, *, generator=None):
    """Denoising MSE (v- or ε-prediction) of the prior, optionally steered by the adapter, on mel windows.

    Parameters
    ----------
    model : Diffusion
    mel_db : Tensor, shape (batch, n_mels, n_frames)
        True mel-dB windows.
    control : list of Tensor, optional
        :meth:`Diffusion.control` output for the same windows (None: unconditional).
    generator : torch.Generator, optional
        Source of timesteps and noise (CPU); None uses the global generator.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    import torch

    x0 = model.standardise(mel_db)
    batch = x0.shape[0]
    t = torch.randint(0, model.n_train_steps, (batch,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    a = model.alphas_cumprod[t][:, None, None, None]
    x_t = torch.sqrt(a) * x0 + torch.sqrt(1 - a) * noise
    return torch.nn.functional.mse_loss(model.prior(x_t, t, control), model.training_target(x0, noise, a))


def sample_mel(
    model, eeg=None, subject=None, *, steps: int = 10, seed: int = 0, batch: int = 1
) -> np.ndarray:
    """DDIM-sample mel-dB windows with a chosen number of steps and seed.

    Parameters
    ----------
    model : Diffusion
    eeg : ndarray, shape (n, n_chans, n_times), optional
        EEG windows in µV; None samples the unconditional prior (``batch`` windows).
    subject : ndarray of int, shape (n,), optional
    steps : int
        DDIM steps.
    seed : int
        Seed of the start noise: the same seed gives the same windows.
    batch : int
        Windows when ``eeg`` is None.

    Returns
    -------
    mel_db : ndarray, shape (n, n_mels, n_frames), float32
    """
    import torch

    model.eval()
    device = model.noise.device
    eeg_t = None if eeg is None else torch.as_tensor(np.asarray(eeg, dtype=np.float32), device=device)
    subject_t = (
        None if subject is None else torch.as_tensor(np.asarray(subject, dtype=np.int64), device=device)
    )
    with torch.no_grad():
        mel = model.sample(eeg_t, subject_t, batch=batch, steps=steps, seed=seed)
    return mel.cpu().numpy().astype(np.float32)


def distinct_segments(index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The first row of each distinct (song, start) among ``rows``: each audio segment once."""
    if len(rows) == 0:
        return rows
    keys = np.stack([index["song"][rows], index["start"][rows]], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(rows[first])


def _validation_loss(model, dataset, rows, batch_size, device, conditional: bool) -> float:
    """Deterministic denoising MSE over ``rows`` (fixed noise and timesteps)."""
    import torch

    if len(rows) == 0:
        return math.nan
    generator = torch.Generator().manual_seed(VAL_SEED)
    total, n = 0.0, 0
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(rows), batch_size):
            chunk = rows[lo : lo + batch_size]
            mel = torch.from_numpy(dataset.mel(chunk)).to(device)
            control = None
            if conditional:
                eeg = torch.from_numpy(dataset.eeg(chunk)).to(device)
                subject = torch.from_numpy(dataset.index["subject"][chunk]).to(device)
                control = model.control(eeg, subject)
            total += float(denoising_loss(model, mel, control, generator=generator)) * len(chunk)
            n += len(chunk)
    return total / n


def fit_diffusion(model, dataset, split, config, dist_info, device, out: Path, state: dict | None) -> dict:
    """Train prior then adapter in the ``eegmusic train`` flow (the model's ``fit_run`` hook).

    Parameters
    ----------
    model : Diffusion
        With fitted statistics, on ``device``.
    dataset : WindowDataset
    split : Split
    config : TrainConfig
        Uses epochs, batch_size, lr (None: the model's ``default_lr``), seed, patience, progress.
    dist_info, device, out, state
        As :func:`offline_training.train._fit_gradient` receives them.

    Returns
    -------
    dict
        ``model`` (best adapter on the trained prior), ``history`` (per epoch: phase, train_loss,
        val_loss = validation denoising MSE, seconds, windows_per_s), ``best_epoch``, ``best_val_loss``,
        ``epochs_run``, ``prior_epochs``, ``windows_per_s``.

    Raises
    ------
    ConfigError
        Under torchrun with more than one process.
    """
    import torch
    from eegmusic.offline_training.train import _save_checkpoint, checkpoint_state
    from tqdm import tqdm

    if dist_info.world > 1:
        raise ConfigError("diffusion trains in one process; run eegmusic train without torchrun")
    prior_epochs = model.prior_epochs or config.epochs
    total_epochs = prior_epochs + config.epochs
    prior_rows = {
        "train": distinct_segments(dataset.index, split.train),
        "val": distinct_segments(dataset.index, split.val),
    }
    history: list[dict] = []
    start_epoch, phase_state = 1, None
    if state is not None:
        history, start_epoch, phase_state = state["history"], state["epoch"] + 1, state["phase"]
        torch.set_rng_state(state["torch_rng"])
    optimizer, phase, prior_before = None, None, None
    best = {"val": math.inf, "epoch": 0, "bad": 0, "state": None}
    for epoch in range(start_epoch, total_epochs + 1):
        now = "prior" if epoch <= prior_epochs else "adapter"
        if now != phase:
            phase = now
            if now == "adapter":
                if phase_state is None or phase_state["name"] != "adapter":
                    _load_best(model, best)
                    best = {"val": math.inf, "epoch": 0, "bad": 0, "state": None}
                model.prior.requires_grad_(False)
                params = list(model.adapter.parameters())
            else:
                model.prior.requires_grad_(True)
                params = list(model.prior.parameters())
            optimizer = torch.optim.Adam(params, lr=config.lr if config.lr is not None else model.default_lr)
            if phase_state is not None and phase_state["name"] == now:
                optimizer.load_state_dict(phase_state["optimizer"])
                best = dict(phase_state["best"])
            phase_state = None
            prior_before = (
                [p.detach().clone() for p in model.prior.parameters()] if now == "adapter" else None
            )
        if best["bad"] >= config.patience:  # this phase stopped early: skip its remaining epochs
            continue
        rows = prior_rows["train"] if phase == "prior" else split.train
        order = np.random.default_rng([config.seed, epoch]).permutation(rows)
        chunks = [order[lo : lo + config.batch_size] for lo in range(0, len(order), config.batch_size)]
        chunks = [c for c in chunks if len(c) >= 2]
        model.train()
        loss_sum, n_windows, tic = 0.0, 0, time.perf_counter()
        bar = tqdm(
            chunks,
            desc=f"{phase} epoch {epoch}/{total_epochs}",
            unit="batch",
            leave=False,
            disable=not config.progress,
        )
        for chunk in bar:
            mel = torch.from_numpy(dataset.mel(chunk)).to(device)
            control = None
            if phase == "adapter":
                eeg = torch.from_numpy(dataset.eeg(chunk)).to(device)
                subject = torch.from_numpy(dataset.index["subject"][chunk]).to(device)
                control = model.control(eeg, subject)
            optimizer.zero_grad(set_to_none=True)
            loss = denoising_loss(model, mel, control)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(chunk)
            n_windows += len(chunk)
            bar.set_postfix(loss=f"{loss_sum / n_windows:.3f}")
        bar.close()
        seconds = time.perf_counter() - tic
        val_rows = prior_rows["val"] if phase == "prior" else split.val
        val = _validation_loss(model, dataset, val_rows, config.batch_size, device, phase == "adapter")
        record = {
            "epoch": epoch,
            "phase": phase,
            "train_loss": loss_sum / max(n_windows, 1),
            "val_loss": val,
            "seconds": seconds,
            "windows_per_s": n_windows / max(seconds, 1e-9),
        }
        history.append(record)
        improved = not math.isnan(val) and val < best["val"] or best["state"] is None
        if improved:
            best.update(
                val=val,
                epoch=epoch,
                bad=0,
                state=copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()}),
            )
        else:
            best["bad"] += 1
        logger.info(
            "%s epoch %d: train denoising MSE %.4f, validation denoising MSE %.4f%s",
            phase,
            epoch,
            record["train_loss"],
            val,
            " (best)" if improved else "",
        )
        _save_checkpoint(
            out / "checkpoint.pt",
            checkpoint_state(model, optimizer.state_dict(), config, epoch=epoch, history=history,
                             phase={"name": phase, "optimizer": optimizer.state_dict(), "best": best},
                             best_val=best["val"], best_epoch=best["epoch"]),
        )
        if best["bad"] >= config.patience:
            logger.info("%s phase: early stop after epoch %d (best epoch %d)", phase, epoch, best["epoch"])
    _load_best(model, best)
    prior_after = [p.detach() for p in model.prior.parameters()]
    if prior_before is not None and not all(
        torch.equal(a, b) for a, b in zip(prior_before, prior_after, strict=True)
    ):
        raise RuntimeError("the frozen prior changed during adapter training")
    model.prior.requires_grad_(True)
    adapter_epochs = [h for h in history if h["phase"] == "adapter"]
    throughput = [h["windows_per_s"] for h in adapter_epochs]
    return {
        "model": model,
        "history": history,
        "best_epoch": best["epoch"],
        "best_val_loss": best["val"],
        "epochs_run": len(history),
        "prior_epochs": prior_epochs,
        "windows_per_s": float(np.median(throughput)) if throughput else None,
    }


def _load_best(model, best: dict) -> None:
    if best.get("state") is not None:
        model.load_state_dict(best["state"])
