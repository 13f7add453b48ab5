"""Training and sampling of the EEG-conditioned mel diffusion decoder (``models/diffusion.py``).

``eegmusic train --arch diffusion`` runs :func:`fit_diffusion` (``Diffusion.training_loop`` is
``"diffusion"``), two phases of one :class:`~offline_training.loop.EpochLoop`:

1. **Prior** (``prior_epochs`` epochs, default ``--epochs`` of the run's start: ``--resume`` with a
   larger ``--epochs`` gives the further epochs to the adapter): the denoiser learns to denoise the
   standardised mel windows of the *training part only* (each distinct song segment once: every
   subject heard the same audio), unconditionally — the stand-in for AudioLDM2's pretraining. On the
   ``block`` and ``song`` splits the test part's audio is never seen, so the prior cannot leak held-out
   music into the evaluation; on the ``subject`` and ``random`` splits the test windows' music is
   training music (every listener heard it), as for every other model on those splits.
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

import logging
import math
import time
from pathlib import Path

import numpy as np
from eegmusic.offline_training.distributed import DistInfo
from eegmusic.offline_training.loop import EpochLoop, epoch_bar
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


def fit_diffusion(
    model, dataset, split, config, dist_info: DistInfo, device, out: Path, state: dict | None
) -> dict:
    """Train prior then adapter in the ``eegmusic train`` flow (the model's ``training_loop`` is
    ``"diffusion"``).

    Parameters
    ----------
    model : Diffusion
        With fitted statistics, on ``device``.
    dataset : WindowDataset
    split : Split
    config : TrainConfig
        Uses epochs, batch_size, lr (None: the model's ``default_lr``), seed, patience, progress.
    dist_info, device, out, state
        As :func:`offline_training.loop_regression.fit_regression` receives them.

    Returns
    -------
    dict
        :meth:`EpochLoop.result` (``model``: best adapter on the best prior; ``history`` per epoch:
        phase, train_loss, val_loss = validation denoising MSE, seconds, windows_per_s; ``best_epoch``
        and ``best_val_loss`` of the adapter phase; ``windows_per_s`` of adapter epochs) plus
        ``prior_epochs``.

    Raises
    ------
    ConfigError
        Under torchrun with more than one process.
    """
    import torch

    if dist_info.world > 1:
        raise ConfigError("diffusion trains in one process; run eegmusic train without torchrun")
    prior_epochs = model.prior_epochs or config.epochs
    if state is not None:
        # --epochs may grow on --resume: the run's prior phase keeps its length (recomputed from the new
        # --epochs it trained the prior again after the adapter); the further epochs are the adapter's
        prior_epochs = int(state.get("prior_epochs") or model.prior_epochs or state["train_config"]["epochs"])
    total_epochs = prior_epochs + config.epochs
    prior_rows = {
        "train": distinct_segments(dataset.index, split.train),
        "val": distinct_segments(dataset.index, split.val),
    }
    loop = EpochLoop(
        model, config, out, phases=[("prior", prior_epochs), ("adapter", config.epochs)], state=state,
        keep_initial=False, saved={"prior_epochs": prior_epochs},
    )
    optimizer, prior_before = None, None
    for epoch in loop:
        phase = loop.phase
        if loop.phase_started:
            model.prior.requires_grad_(phase == "prior")
            params = list((model.prior if phase == "prior" else model.adapter).parameters())
            optimizer = torch.optim.Adam(params, lr=config.lr if config.lr is not None else model.default_lr)
            loop.load_optimizer(optimizer)
            prior_before = (
                [p.detach().clone() for p in model.prior.parameters()] if phase == "adapter" else None
            )
        rows = prior_rows["train"] if phase == "prior" else split.train
        order = np.random.default_rng([config.seed, epoch]).permutation(rows)
        chunks = [order[lo : lo + config.batch_size] for lo in range(0, len(order), config.batch_size)]
        chunks = [c for c in chunks if len(c) >= 2]
        model.train()
        loss_sum, n_windows, tic = 0.0, 0, time.perf_counter()
        bar = epoch_bar(
            chunks, total=len(chunks), desc=f"{phase} epoch {epoch}/{total_epochs}", enabled=config.progress
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
        improved = loop.end_epoch(record, val, optimizer.state_dict())
        logger.info(
            "%s epoch %d: train denoising MSE %.4f, validation denoising MSE %.4f%s",
            phase,
            epoch,
            record["train_loss"],
            val,
            " (best)" if improved else "",
        )
    result = loop.result(throughput_phase="adapter")
    prior_after = [p.detach() for p in model.prior.parameters()]
    if prior_before is not None and not all(
        torch.equal(a, b) for a, b in zip(prior_before, prior_after, strict=True)
    ):
        raise RuntimeError("the frozen prior changed during adapter training")
    model.prior.requires_grad_(True)
    return {**result, "prior_epochs": prior_epochs}
