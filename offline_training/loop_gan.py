"""Adversarial training of :class:`~offline_training.models.wavegan.WaveGAN` (HiFi-GAN recipe, small).

Each step updates the discriminators, then the generator:

- discriminators: least-squares GAN loss ``mean((D(real) - 1)²) + mean(D(fake)²)`` summed over the
  multi-period and multi-scale discriminators;
- generator: ``adv · mean((D(fake) - 1)²)`` + ``fm ·`` feature matching (L1 between the
  discriminators' layer features of real and generated audio) + ``stft ·`` multi-resolution STFT
  loss (spectral convergence + log-magnitude L1 at FFT sizes 512, 1024, 2048) + ``mel ·`` L1 between
  natural-log mel power spectrograms (the contract's mel, floor 1e-8).

The target of an EEG window is the stimulus audio segment that the window's mel target covers
(:class:`WindowAudio`), so the generator learns the same alignment as the mel decoders.

:func:`fit_gan` is what ``eegmusic train --arch wavegan`` runs (``WaveGAN.training_loop`` is
``"gan"``): epochs over the training windows, validation mel MSE (dB², on the mel of the generated audio,
as the other models) for early stopping, a checkpoint per epoch (both optimisers, for ``--resume``), the
best weights returned to :func:`offline_training.train.train`, which exports them. The epoch bookkeeping
is :class:`~offline_training.loop.EpochLoop`'s.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
from eegmusic.decoder import melspec
from eegmusic.offline_training.distributed import DistInfo
from eegmusic.offline_training.loop import EpochLoop, epoch_bar, evaluate_mel
from eegmusic.stream.errors import ConfigError
from eegmusic.stream.spec import MODEL_SFREQ

logger = logging.getLogger(__name__)

STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
"""(n_fft, hop) of the multi-resolution STFT loss."""

_LOG_FLOOR = 1e-8  # = the contract's -80 dB floor


class WindowAudio:
    """Stimulus audio segments of a :class:`~offline_training.dataset.WindowDataset`'s windows.

    The window of EEG samples [s, s+125) gets the 1-s stimulus segment starting at
    ``s / 125 - target_offset_s`` seconds (zeros outside the song): the segment whose mel-dB is the
    window's mel target.

    Parameters
    ----------
    dataset : WindowDataset
    """

    def __init__(self, dataset):
        self.dataset = dataset
        # any dataset: its stimulus is aligned to EEG sample 0
        self._audio = {int(song): dataset.stimulus(song) for song in dataset.song_keys}

    def __call__(self, rows) -> np.ndarray:
        """Audio of windows.

        Parameters
        ----------
        rows : array of int, shape (n,)
            Rows of the dataset's index.

        Returns
        -------
        audio : ndarray, shape (n, 22050), float32
        """
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        sr = melspec.AUDIO_SFREQ
        out = np.zeros((len(rows), sr), dtype=np.float32)
        entries = self.dataset.index[rows]
        for i, entry in enumerate(entries):
            audio = self._audio[int(entry["song"])]
            start = int(round((entry["start"] / MODEL_SFREQ - self.dataset.target_offset_s) * sr))
            lo, hi = max(start, 0), min(start + sr, len(audio))
            if hi > lo:
                out[i, lo - start : hi - start] = audio[lo:hi]
        return out


# ---- losses ----------------------------------------------------------------------------------------
def discriminator_loss(real_outputs, fake_outputs):
    """Least-squares discriminator loss summed over discriminators (scalar tensor)."""
    loss = 0.0
    for (real, _), (fake, _) in zip(real_outputs, fake_outputs, strict=True):
        loss = loss + ((real - 1.0) ** 2).mean() + (fake**2).mean()
    return loss


def adversarial_loss(fake_outputs):
    """Least-squares generator loss summed over discriminators (scalar tensor)."""
    loss = 0.0
    for fake, _ in fake_outputs:
        loss = loss + ((fake - 1.0) ** 2).mean()
    return loss


def feature_matching_loss(real_outputs, fake_outputs):
    """L1 between real and generated layer features, summed over layers and discriminators."""
    loss = 0.0
    for (_, real_features), (_, fake_features) in zip(real_outputs, fake_outputs, strict=True):
        for real, fake in zip(real_features, fake_features, strict=True):
            loss = loss + (real.detach() - fake).abs().mean()
    return loss


def stft_loss(fake, real, resolutions=STFT_RESOLUTIONS):
    """Multi-resolution STFT loss: mean over resolutions of spectral convergence + log-magnitude L1.

    Parameters
    ----------
    fake, real : Tensor, shape (batch, n_samples)
    """
    import torch

    total = 0.0
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=fake.device)
        mags = [
            torch.stft(x, n_fft, hop, window=window, return_complex=True).abs().clamp(min=1e-7)
            for x in (fake, real)
        ]
        convergence = torch.linalg.norm(mags[1] - mags[0]) / torch.linalg.norm(mags[1]).clamp(min=1e-7)
        log_l1 = (mags[1].log() - mags[0].log()).abs().mean()
        total = total + convergence + log_l1
    return total / len(resolutions)


def mel_loss(model, fake, real):
    """L1 between natural-log mel power spectrograms (the contract's mel)."""
    return (
        (
            model.mel.power(fake).clamp(min=_LOG_FLOOR).log()
            - model.mel.power(real).clamp(min=_LOG_FLOOR).log()
        )
        .abs()
        .mean()
    )


def train_step(model, opt_g, opt_d, eeg, audio, subject=None) -> dict:
    """One discriminator update, then one generator update.

    Parameters
    ----------
    model : WaveGAN
    opt_g, opt_d : torch.optim.Optimizer
        Over :meth:`WaveGAN.generator_parameters` and ``model.discriminator.parameters()``.
    eeg : Tensor, shape (batch, n_chans, n_times), µV
    audio : Tensor, shape (batch, n_samples)
        Target stimulus segments.
    subject : Tensor of int, shape (batch,), optional

    Returns
    -------
    dict
        ``d_loss`` (before its update), ``g_loss`` (total), ``g_adv``, ``g_fm``, ``g_stft``, ``g_mel``
        (floats, before the generator update).
    """
    model.train()
    fake = model.generate(eeg, subject if model.subject_input else None)

    opt_d.zero_grad(set_to_none=True)
    d_loss = discriminator_loss(model.discriminator(audio), model.discriminator(fake.detach()))
    d_loss.backward()
    opt_d.step()

    opt_g.zero_grad(set_to_none=True)
    real_outputs = model.discriminator(audio)
    fake_outputs = model.discriminator(fake)
    parts = {
        "g_adv": adversarial_loss(fake_outputs),
        "g_fm": feature_matching_loss(real_outputs, fake_outputs),
        "g_stft": stft_loss(fake, audio),
        "g_mel": mel_loss(model, fake, audio),
    }
    g_loss = (
        model.adv_weight * parts["g_adv"]
        + model.fm_weight * parts["g_fm"]
        + model.stft_weight * parts["g_stft"]
        + model.mel_weight * parts["g_mel"]
    )
    g_loss.backward()
    opt_g.step()
    # the discriminators received gradients from the generator step: drop them before the next D step
    opt_d.zero_grad(set_to_none=True)
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), **{k: v.item() for k, v in parts.items()}}


def make_optimizers(model, lr: float):
    """AdamW for generator and discriminators (HiFi-GAN betas 0.8, 0.99)."""
    import torch

    opt_g = torch.optim.AdamW(model.generator_parameters(), lr=lr, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(model.discriminator.parameters(), lr=lr, betas=(0.8, 0.99))
    return opt_g, opt_d


def fit_gan(
    model, dataset, split, config, dist_info: DistInfo, device, out: Path, state: dict | None
) -> dict:
    """Train a WaveGAN in the ``eegmusic train`` flow (its model's ``training_loop`` is ``"gan"``).

    Parameters
    ----------
    model : WaveGAN
        With fitted statistics, on ``device``.
    dataset : WindowDataset
    split : Split
    config : TrainConfig
        Uses epochs, batch_size, lr (None: the model's ``default_lr``), seed, patience, progress.
    dist_info, device, out, state
        As :func:`offline_training.loop_regression.fit_regression` receives them (``state``: the loaded
        ``checkpoint.pt`` on ``--resume``).

    Returns
    -------
    dict
        :meth:`EpochLoop.result`: ``model`` (best validation weights), ``history`` (per epoch:
        train_loss = generator loss, val_loss = validation mel MSE in dB², d_loss, g_adv, g_fm, g_stft,
        g_mel, seconds, windows_per_s), ``best_epoch``, ``best_val_loss``, ``epochs_run``,
        ``windows_per_s``.

    Raises
    ------
    ConfigError
        Under torchrun with more than one process (the GAN loop runs in one process).
    """
    import torch

    if dist_info.world > 1:
        raise ConfigError("wavegan trains in one process; run eegmusic train without torchrun")
    audio_of = WindowAudio(dataset)
    opt_g, opt_d = make_optimizers(model, config.lr if config.lr is not None else model.default_lr)
    loop = EpochLoop(model, config, out, phases=[("train", config.epochs)], state=state)
    loop.load_optimizer({"generator": opt_g, "discriminator": opt_d})
    for epoch in loop:
        order = np.random.default_rng([config.seed, epoch]).permutation(split.train)
        chunks = [order[lo : lo + config.batch_size] for lo in range(0, len(order), config.batch_size)]
        chunks = [c for c in chunks if len(c) >= 2]
        sums: dict[str, float] = {}
        n_windows = 0
        tic = time.perf_counter()
        bar = epoch_bar(
            chunks, total=len(chunks), desc=f"epoch {epoch}/{config.epochs}", enabled=config.progress
        )
        for rows in bar:
            eeg = torch.from_numpy(dataset.eeg(rows)).to(device)
            audio = torch.from_numpy(audio_of(rows)).to(device)
            subject = torch.from_numpy(dataset.index["subject"][rows]).to(device)
            losses = train_step(model, opt_g, opt_d, eeg, audio, subject)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value * len(rows)
            n_windows += len(rows)
            bar.set_postfix(g=f"{sums['g_loss'] / n_windows:.2f}", d=f"{sums['d_loss'] / n_windows:.2f}")
        bar.close()
        seconds = time.perf_counter() - tic
        val = evaluate_mel(model, dataset, split.val, config.batch_size, device, "mse", dist_info)
        means = {key: value / max(n_windows, 1) for key, value in sums.items()}
        record = {
            "epoch": epoch,
            "train_loss": means.get("g_loss", math.nan),
            "val_loss": val["mse"],
            "val_mse": val["mse"],
            **means,
            "seconds": seconds,
            "windows_per_s": n_windows / max(seconds, 1e-9),
        }
        improved = loop.end_epoch(
            record, val["mse"], {"generator": opt_g.state_dict(), "discriminator": opt_d.state_dict()}
        )
        logger.info(
            "epoch %d: generator loss %.3f, discriminator loss %.3f, validation mel MSE %.2f dB²%s",
            epoch,
            record["train_loss"],
            means.get("d_loss", math.nan),
            val["mse"],
            " (best)" if improved else "",
        )
    return loop.result()
