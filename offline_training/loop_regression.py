"""The regression loops: Adam epochs on a mel loss (every model in ``MODELS`` but ``linear`` and
``ensemble``, which ``loop_ensemble`` mixes) and the closed-form ridge fit (``linear``).

:func:`fit_regression` runs under ``torchrun`` too: each process trains on its share of every epoch's
batches (DDP), and the epoch bookkeeping (best weights, patience, checkpoints, resume) is
:class:`~offline_training.loop.EpochLoop`'s.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import numpy as np
from eegmusic.offline_training.augment import parse_augment
from eegmusic.offline_training.distributed import DistInfo, all_sum
from eegmusic.offline_training.loop import EpochLoop, adam, batches, epoch_bar, evaluate_mel, weights

logger = logging.getLogger(__name__)


def band_pearson(pred, target, eps: float = 1e-8):
    """Pearson r of each mel band over every frame of a batch (batch, n_mels, n_frames) → (n_mels,).

    The frames of all windows of the batch are pooled per band, so the score rewards following the
    music over time and across seconds, as the dynamic r of the evaluation does; a constant
    prediction scores 0.
    """
    n_mels = pred.shape[1]
    p = pred.transpose(0, 1).reshape(n_mels, -1)
    t = target.transpose(0, 1).reshape(n_mels, -1)
    p = p - p.mean(dim=1, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    # eps inside the roots: a constant prediction (an untrained zero head) has a finite gradient
    return (p * t).sum(dim=1) / (((p * p).sum(dim=1) + eps).sqrt() * ((t * t).sum(dim=1) + eps).sqrt())


def recording_groups(dataset, rows):
    """One int label per row of ``rows``: its (song, listener) recording (a torch tensor, shape (n,))."""
    import torch

    return torch.from_numpy(dataset.index["song"][rows] * 100_000 + dataset.index["subject"][rows])


def centre_groups(values, group):
    """``values`` (n, n_mels, n_frames) minus each group's per-band mean (groups: (n,) int labels).

    Torch tensors; each (song, listener) recording centred on its own means, as the dynamic r of a
    block is (the ensemble's weights and its output rank are chosen by this criterion)."""
    import torch

    out = values.clone()
    for label in torch.unique(group):
        rows = group == label
        out[rows] -= values[rows].mean(dim=(0, 2), keepdim=True)
    return out


def pearson_loss(pred, target):
    """``1 - mean_band r`` (:func:`band_pearson`): blind to each band's scale and offset."""
    return 1.0 - band_pearson(pred, target).mean()


def mse_pearson_loss(pred, target):
    """MSE in units of each band's batch variance plus :func:`pearson_loss`.

    The MSE term keeps the output in mel-dB (a vocoder needs levels); the Pearson term weighs each
    band's following of the music equally, whatever its loudness and variance.
    """
    variance = target.var(dim=(0, 2), keepdim=True).detach().clamp_min(1e-3)
    return ((pred - target) ** 2 / variance).mean() + pearson_loss(pred, target)


LOSS_FUNCTIONS = {"mse": "mse_loss", "l1": "l1_loss", "pearson": pearson_loss,
                  "mse+pearson": mse_pearson_loss}
"""Loss names (``TrainConfig.loss``) → torch losses (a name is a function of ``torch.nn.functional``)."""


def loss_function(name: str):
    """The torch loss of a :class:`~offline_training.train.TrainConfig` ``loss`` name.

    See :data:`LOSS_FUNCTIONS`.
    """
    import torch

    loss = LOSS_FUNCTIONS[name]
    return getattr(torch.nn.functional, loss) if isinstance(loss, str) else loss


def validation_loss(model, dataset, rows, config, device, dist_info: DistInfo) -> dict:
    """Validation ``loss`` (the training loss), ``mse`` (dB²) and, when ``config.select_by`` is
    ``dynamic_r``, ``dynamic_r`` on ``rows``.

    MSE and L1 are sums over values (:func:`~offline_training.loop.evaluate_mel`); a Pearson loss is
    computed on all validation windows at once (its correlation is over every frame, not per batch).
    ``dynamic_r`` is the evaluation's criterion (:func:`validation_dynamic_r`).
    """
    import torch

    by_r = getattr(config, "select_by", "loss") == "dynamic_r"
    summed = config.loss in ("mse", "l1")
    out = evaluate_mel(model, dataset, rows, config.batch_size, device, config.loss if summed else "mse",
                       dist_info)
    if summed and not by_r:
        return out
    preds, targets = [], []
    model.eval()
    with torch.no_grad():
        for eeg, mel, subject in batches(dataset, rows, config.batch_size, device):
            preds.append(model(eeg, subject if model.subject_input else None).cpu())
            targets.append(mel.cpu())
    if not preds:
        return {"loss": float("nan"), "mse": out["mse"]} | ({"dynamic_r": float("nan")} if by_r else {})
    pred, target = torch.cat(preds), torch.cat(targets)
    if not summed:
        out["loss"] = float(loss_function(config.loss)(pred, target))
    if by_r:
        out["dynamic_r"] = validation_dynamic_r(pred, target, recording_groups(dataset, rows))
    return out


def validation_dynamic_r(pred, target, group) -> float:
    """Mean per-band Pearson r over the interior frames of windows, each (song, listener) recording
    centred on its own means: the dynamic r that :mod:`offline_training.metrics` scores.

    A pooled Pearson loss also rewards getting each recording's mean spectrum right (which song is
    playing), which dynamic r removes; choosing the epoch by this criterion keeps the weights that
    follow the music within a recording best.
    """
    from eegmusic.offline_training.scoring import INTERIOR_FRAMES

    pred = centre_groups(pred[:, :, INTERIOR_FRAMES], group)
    target = centre_groups(target[:, :, INTERIOR_FRAMES], group)
    return float(band_pearson(pred, target).mean())


def weight_average(module, decay: float):
    """An exponential moving average of ``module``'s weights and buffers over optimiser steps, or None.

    Polyak averaging: the average of the weights along the last stretch of training (a half-life of
    ``log 0.5 / log decay`` steps) is a smoother point than the last step's, so it varies less with the
    seed and the batch order. Buffers (batch-norm statistics) are averaged too, so the averaged model is
    consistent with its own weights. ``decay`` 0 turns it off.
    """
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=True)


@contextmanager
def averaged_weights(module, average):
    """Inside, ``module`` holds the averaged weights (when ``average`` is not None); after, its own again."""
    if average is None:
        yield
        return
    own = weights(module)
    module.load_state_dict(average.module.state_dict())
    try:
        yield
    finally:
        module.load_state_dict(own)


def fit_regression(model, dataset, split, config, dist_info: DistInfo, device, out, state) -> dict:
    """Adam epochs with early stopping on the validation loss; a checkpoint every epoch (rank 0).

    Parameters
    ----------
    model : MelDecoder
        With fitted statistics, on ``device``.
    dataset : WindowDataset
    split : Split
    config : TrainConfig
        Uses epochs, batch_size (summed over processes), lr (None: the model's ``default_lr``), loss,
        seed, patience, ``epoch_fraction`` (the share of the training windows each epoch visits),
        progress, ``select_by`` (the best epoch has the lowest validation loss, or the
        highest validation dynamic r: :func:`validation_dynamic_r`) and ``ema``: with a decay above 0,
        the validation scores, the best epoch's weights and the checkpoints are those of the weights'
        moving average (:func:`weight_average`; a resumed run continues training from them).
    dist_info : DistInfo
    device : torch.device
    out : Path
        Run folder.
    state : dict, optional
        The loaded ``checkpoint.pt`` on ``--resume``.

    Returns
    -------
    dict
        :meth:`EpochLoop.result`: ``model`` (best weights), ``history``, ``best_epoch``, ``best_val_loss``,
        ``epochs_run``, ``windows_per_s``.
    """
    import torch

    loss_fn = loss_function(config.loss)
    module = model
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    lr = config.lr if config.lr is not None else module.default_lr
    optimizer = adam(model.parameters(), lr)
    augment = parse_augment(getattr(config, "augment", ""))
    generator = torch.Generator().manual_seed(int(config.seed) * 1000 + dist_info.rank)
    loop = EpochLoop(module, config, out, phases=[("train", config.epochs)], main=dist_info.main, state=state)
    loop.load_optimizer(optimizer)
    average = weight_average(module, getattr(config, "ema", 0.0))
    per_process = max(config.batch_size // dist_info.world, 1)

    def criterion(val: dict) -> float:  # lower is better
        return 1.0 - val["dynamic_r"] if "dynamic_r" in val else val["loss"]

    if getattr(module, "skip_model", None) is not None and loop.starting:
        # the untrained network decodes as its skip model: an epoch must beat that to be kept
        start = validation_loss(module, dataset, split.val, config, device, dist_info)
        loop.score_start(criterion(start))
        logger.info("epoch 0 (the skip model alone): validation loss %.3f%s", start["loss"],
                    f", validation dynamic r {start['dynamic_r']:.3f}" if "dynamic_r" in start else "")
    for epoch in loop:
        model.train()
        order = np.random.default_rng([config.seed, epoch]).permutation(split.train)
        fraction = float(getattr(config, "epoch_fraction", 1.0))
        if fraction < 1.0:  # a fresh share each epoch (with a short hop: windows at every phase)
            order = order[: max(int(round(fraction * len(order))), 2 * dist_info.world)]
        order = order[: len(order) - len(order) % dist_info.world][dist_info.rank :: dist_info.world]
        n_batches = len(order) // per_process + (1 if len(order) % per_process >= 2 else 0)
        bar = epoch_bar(
            batches(dataset, order, per_process, device, min_size=2),
            total=n_batches,
            desc=f"epoch {epoch}/{config.epochs}",
            enabled=config.progress and dist_info.main,
        )
        sums = np.zeros(2)
        tic = time.perf_counter()
        for eeg, mel, subject in bar:
            if augment.active:
                eeg = augment(eeg, generator)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(eeg, subject if module.subject_input else None), mel)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(module)
            sums += (loss.item() * len(eeg), len(eeg))
            bar.set_postfix(loss=f"{sums[0] / sums[1]:.2f}")
        bar.close()
        seconds = time.perf_counter() - tic
        sums = all_sum(sums, dist_info, device)
        with averaged_weights(module, average):  # the average is what is validated and kept
            val = validation_loss(module, dataset, split.val, config, device, dist_info)
            record = {
                "epoch": epoch,
                "train_loss": sums[0] / max(sums[1], 1),
                "val_loss": val["loss"],
                "val_mse": val["mse"],
                "seconds": seconds,
                "windows": int(sums[1]),
                "windows_per_s": sums[1] / max(seconds, 1e-9),
            }
            if "dynamic_r" in val:
                record["val_dynamic_r"] = val["dynamic_r"]
            improved = loop.end_epoch(record, criterion(val), optimizer.state_dict())
        logger.info(
            "epoch %d: train loss %.3f, validation loss %.3f%s%s",
            epoch,
            record["train_loss"],
            val["loss"],
            f", validation dynamic r {val['dynamic_r']:.3f}" if "dynamic_r" in val else "",
            " (best)" if improved else "",
        )
    return loop.result()


def fit_closed_form(model, dataset, split, config, dist_info: DistInfo, device, out=None, state=None) -> dict:
    """Closed-form ridge fit of ``linear`` (statistics summed over processes).

    Parameters are those of :func:`fit_regression` (``out`` and ``state`` unused: the fit has no
    epochs to checkpoint).

    Returns
    -------
    dict
        ``model``, ``ridge`` (the fit's report: penalties tried, validation MSE per penalty, ...),
        ``epochs_run`` = 0, ``best_epoch`` = 0, ``history`` = [].
    """

    def reduce(stats: dict) -> dict:
        flat = np.concatenate([stats["xtx"].ravel(), stats["xty"].ravel(), [stats["yty"], stats["n"]]])
        flat = all_sum(flat, dist_info, device)
        n_xtx, n_xty = stats["xtx"].size, stats["xty"].size
        return {
            "xtx": flat[:n_xtx].reshape(stats["xtx"].shape),
            "xty": flat[n_xtx : n_xtx + n_xty].reshape(stats["xty"].shape),
            "yty": float(flat[-2]),
            "n": int(flat[-1]),
        }

    train_rows = split.train[dist_info.rank :: dist_info.world]
    val_rows = split.val[dist_info.rank :: dist_info.world]
    model.cpu()
    info = model.fit_closed_form(
        batches(dataset, train_rows, 64, "cpu"),
        batches(dataset, val_rows, 64, "cpu"),
        reduce=reduce if dist_info.world > 1 else None,
    )
    model.to(device)
    return {"model": model, "ridge": info, "epochs_run": 0, "best_epoch": 0, "history": []}
