"""The regression loops: Adam epochs on a mel loss (every model in ``MODELS`` but ``linear``) and the
closed-form ridge fit (``linear``).

:func:`fit_regression` runs under ``torchrun`` too: each process trains on its share of every epoch's
batches (DDP), and the epoch bookkeeping (best weights, patience, checkpoints, resume) is
:class:`~offline_training.loop.EpochLoop`'s.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from eegmusic.offline_training.distributed import DistInfo, all_sum
from eegmusic.offline_training.loop import EpochLoop, batches, epoch_bar, evaluate_mel

logger = logging.getLogger(__name__)


def loss_function(name: str):
    """The torch loss of a :class:`~offline_training.train.TrainConfig` ``loss`` name (``mse``, ``l1``)."""
    import torch

    return torch.nn.functional.l1_loss if name == "l1" else torch.nn.functional.mse_loss


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
        seed, patience, progress.
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
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loop = EpochLoop(module, config, out, phases=[("train", config.epochs)], main=dist_info.main, state=state)
    loop.load_optimizer(optimizer)
    per_process = max(config.batch_size // dist_info.world, 1)
    for epoch in loop:
        model.train()
        order = np.random.default_rng([config.seed, epoch]).permutation(split.train)
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
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(eeg, subject if module.subject_input else None), mel)
            loss.backward()
            optimizer.step()
            sums += (loss.item() * len(eeg), len(eeg))
            bar.set_postfix(loss=f"{sums[0] / sums[1]:.2f}")
        bar.close()
        seconds = time.perf_counter() - tic
        sums = all_sum(sums, dist_info, device)
        val = evaluate_mel(module, dataset, split.val, config.batch_size, device, config.loss, dist_info)
        record = {
            "epoch": epoch,
            "train_loss": sums[0] / max(sums[1], 1),
            "val_loss": val["loss"],
            "val_mse": val["mse"],
            "seconds": seconds,
            "windows_per_s": sums[1] / max(seconds, 1e-9),
        }
        improved = loop.end_epoch(record, val["loss"], optimizer.state_dict())
        logger.info(
            "epoch %d: train loss %.3f, validation loss %.3f%s",
            epoch,
            record["train_loss"],
            val["loss"],
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
