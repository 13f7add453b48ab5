"""Train a registry model on an NMED-T folder and export it to ONNX.

One call of :func:`train` does the whole run: read the windows (:class:`WindowDataset`), split them
(:func:`make_split`), fit the model's normalisation on training windows, then either solve it in
closed form (``linear``) or run Adam epochs with early stopping on the validation loss, saving a
checkpoint after every epoch. The run folder gets ``config.json`` (the :class:`TrainConfig`),
``checkpoint.pt`` (last epoch, for ``--resume``), ``best.pt`` (best validation epoch),
``metrics.json``, ``training_curve.png`` and ``model.onnx`` (the best weights).

The same code runs under ``torchrun --nproc_per_node N``: each process trains on its share of every
epoch's batches (DDP; gloo on the CPU, NCCL on GPUs), losses are summed across processes, and only
rank 0 writes files.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from eegmusic.stream.errors import ConfigError, ModelError
from eegmusic.stream.spec import PreprocessingSpec

logger = logging.getLogger(__name__)

LOSSES = ("mse", "l1")
RESUME_FREE_KEYS = ("epochs", "device", "progress", "patience")
"""Options that may change between a run and its ``--resume`` (everything else must match)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run folder).

    Parameters
    ----------
    data : str
        NMED-T folder.
    model : str
        Registry name (``linear``, ``cnn``, ``rcnn``, ``encdec``, ``transformer``, ``convnet``).
    split : str
        Split kind (``random``, ``block``, ``subject``, ``song``).
    out : str
        Run folder.
    epochs : int
        Maximum number of epochs (gradient models).
    batch_size : int
        Windows per batch (summed over processes under DDP).
    lr : float, optional
        Adam learning rate (default: the model's ``default_lr``).
    seed : int
        Seed of the split, the initial weights and the batch order.
    device : {"auto", "cpu", "cuda"}
    loss : {"mse", "l1"}
        Training loss on mel-dB.
    subject_conditioning : bool
        Give the model a subject embedding (input ``subject`` in the ONNX file).
    hop_s : float
        Hop between training windows in seconds.
    patience : int
        Early stopping: stop after this many epochs without a better validation loss.
    target_offset_s : float
        Target offset (see :class:`~offline_training.dataset.WindowDataset`).
    songs, subjects : list, optional
        Restrict the data (song ids; subject ids or 0-based indices).
    model_config : dict
        Hyper-parameter overrides passed to the model's constructor.
    stats_windows : int
        Training windows used to fit the normalisation statistics.
    progress : bool
        Show a tqdm bar per epoch.
    """

    data: str
    model: str = "cnn"
    split: str = "block"
    out: str = "runs/run"
    epochs: int = 20
    batch_size: int = 60
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    loss: str = "mse"
    subject_conditioning: bool = False
    hop_s: float = 1.0
    patience: int = 5
    target_offset_s: float = 0.0
    songs: list | None = None
    subjects: list | None = None
    model_config: dict = field(default_factory=dict)
    stats_windows: int = 2000
    progress: bool = True

    def check(self) -> None:
        """Raise :class:`ConfigError` for a bad value (one line naming it and the fix)."""
        from eegmusic.offline_training.models.registry import ALL_MODELS
        from eegmusic.offline_training.splits import SPLIT_KINDS

        if self.model not in ALL_MODELS:
            raise ConfigError(f"unknown model '{self.model}'; use one of {', '.join(ALL_MODELS)}")
        if self.split not in SPLIT_KINDS:
            raise ConfigError(f"unknown split '{self.split}'; use one of {', '.join(SPLIT_KINDS)}")
        if self.split == "all":
            raise ConfigError(
                "split 'all' has no training part (it is for eegmusic evaluate); use random, "
                "block, subject or song"
            )
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss '{self.loss}'; use one of {', '.join(LOSSES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"unknown device '{self.device}'; use auto, cpu or cuda")
        for name in ("epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})"
                )
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be positive (got {self.lr})")
        if not self.hop_s > 0:
            raise ConfigError(f"--hop must be positive (got {self.hop_s})")


# ---- distributed helpers -------------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_kind: str) -> _Dist:
    """Join the process group started by torchrun (WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return _Dist(
        rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0))
    )


def _all_sum(values: np.ndarray, dist_info: _Dist, device) -> np.ndarray:
    """Sum a float64 vector over processes."""
    if dist_info.world == 1:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def _resolve_device(kind: str):
    import torch

    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked but no CUDA GPU is visible to torch; use --device cpu or auto")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    return kind


# ---- batches ----------------------------------------------------------------------------------------
def _batches(dataset, rows: np.ndarray, batch_size: int, device, *, min_size: int = 1):
    """Yield (eeg, mel_db, subject) tensors on ``device`` for consecutive chunks of ``rows``."""
    import torch

    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo : lo + batch_size]
        if len(chunk) < min_size:
            continue
        eeg = torch.from_numpy(dataset.eeg(chunk)).to(device, non_blocking=True)
        mel = torch.from_numpy(dataset.mel(chunk)).to(device, non_blocking=True)
        subject = torch.from_numpy(dataset.index["subject"][chunk]).to(device)
        yield eeg, mel, subject


def _evaluate(model, dataset, rows, batch_size, device, loss_name, dist_info) -> dict:
    """Loss and MSE (dB²) of ``model`` on ``rows`` (sharded over processes, summed)."""
    import torch

    shard = rows[dist_info.rank :: dist_info.world]
    sums = np.zeros(3)  # loss sum, squared-error sum, n values
    model.eval()
    with torch.no_grad():
        for eeg, mel, subject in _batches(dataset, shard, batch_size, device):
            pred = model(eeg, subject)
            diff = pred - mel
            sums[0] += float(diff.abs().sum() if loss_name == "l1" else (diff * diff).sum())
            sums[1] += float((diff * diff).sum())
            sums[2] += diff.numel()
    sums = _all_sum(sums, dist_info, device)
    if sums[2] == 0:
        return {"loss": float("nan"), "mse": float("nan")}
    return {"loss": sums[0] / sums[2], "mse": sums[1] / sums[2]}


# ---- run folder ---------------------------------------------------------------------------------------
def _config_dict(config: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))


def _check_resume(config: TrainConfig, out: Path) -> None:
    saved_path = out / "config.json"
    if not saved_path.is_file() or not (out / "checkpoint.pt").is_file():
        raise ConfigError(
            f"--resume: {out} holds no checkpoint.pt/config.json; drop --resume to start a new run"
        )
    saved = json.loads(saved_path.read_text())
    if saved.get("model") != config.model:
        raise ModelError(
            f"--resume: checkpoint in {out} is from model '{saved.get('model')}', not '{config.model}'; "
            f"use --model {saved.get('model')} or another --out"
        )
    current = _config_dict(config)
    for key in current:
        if key in RESUME_FREE_KEYS:
            continue
        if saved.get(key) != current[key]:
            raise ConfigError(
                f"--resume: option '{key}' changed ({saved.get(key)!r} in {saved_path}, "
                f"now {current[key]!r}); resume with the run's options or start a new --out"
            )


def checkpoint_state(module, optimizer_state, config: TrainConfig, **progress) -> dict:
    """What every training loop saves in ``checkpoint.pt``: model, optimiser, progress, config, RNG.

    ``progress`` holds the loop's own fields (epoch, history, best_val, best_epoch, ...).
    """
    import torch

    return {
        "model": module.name,
        "model_config": module.get_config(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "optimizer": optimizer_state,
        **progress,
        "train_config": _config_dict(config),
        "torch_rng": torch.get_rng_state(),
    }


def _save_checkpoint(path: Path, state: dict) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _plot_curve(path: Path, history: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (dB²)" if "mse" in title else "loss (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_ridge(path: Path, val_mse: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    alphas = [float(a) for a in val_mse]
    ax.semilogx(alphas, list(val_mse.values()), "o-")
    ax.set_xlabel("relative ridge penalty")
    ax.set_ylabel("validation MSE (dB²)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---- the run ----------------------------------------------------------------------------------------
def train(config: TrainConfig, *, resume: bool = False) -> dict:
    """Train, checkpoint and export one model.

    Parameters
    ----------
    config : TrainConfig
    resume : bool
        Continue the run in ``config.out`` from its last checkpoint (options must not have changed,
        except epochs, device, patience, progress).

    Returns
    -------
    metrics : dict
        The content of ``metrics.json`` (history, best epoch, validation and test MSE in dB²,
        window counts, training throughput in windows/s, paths).

    Raises
    ------
    ConfigError
        Bad option, empty split part, existing run without ``--resume``, changed config on resume.
    ModelError
        ``--resume`` on a checkpoint of another model.
    DataFormatError
        Unreadable data or songs without stimulus audio.
    """
    import torch
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.export import build_metadata, export_onnx
    from eegmusic.offline_training.models.registry import build_model, read_checkpoint
    from eegmusic.offline_training.splits import make_split

    config.check()
    out = Path(config.out)
    if resume:
        _check_resume(config, out)
    elif (out / "checkpoint.pt").exists() or (out / "model.onnx").exists():
        raise ConfigError(
            f"{out} already holds a training run; pass --resume to continue it or another --out"
        )
    device_kind = _resolve_device(config.device)
    dist_info = _init_distributed(device_kind)
    device = torch.device(f"cuda:{dist_info.local_rank}" if device_kind == "cuda" else "cpu")
    if not dist_info.main:  # one process reports; the others only warn
        logging.getLogger("eegmusic.offline_training").setLevel(logging.WARNING)
    if device_kind == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(config.seed)

    dataset = WindowDataset(
        config.data,
        songs=config.songs,
        subjects=config.subjects,
        hop_s=config.hop_s,
        spec=PreprocessingSpec(),
        target_offset_s=config.target_offset_s,
    )
    split = make_split(dataset.index, config.split, seed=config.seed, hop_s=config.hop_s)
    if len(split.train) < 2 * dist_info.world:
        raise ConfigError(
            f"only {len(split.train)} training windows for {dist_info.world} processes; use more data"
        )
    logger.info(
        "split '%s': %d train, %d validation, %d test windows",
        config.split,
        len(split.train),
        len(split.val),
        len(split.test),
    )
    dataset.fill_mel_cache()

    model_kwargs = dict(config.model_config)
    model_kwargs.setdefault("n_chans", dataset.n_chans)  # the data's montage (125 for NMED-T)
    if config.subject_conditioning:
        model_kwargs["n_subjects"] = dataset.n_subjects
    if config.model == "linear":
        model_kwargs.setdefault("target_offset_s", config.target_offset_s)
    model = build_model(config.model, **model_kwargs)

    state = None
    if resume:
        state = read_checkpoint(out / "checkpoint.pt", model_name=config.model)
        model.load_state_dict(state["state_dict"])
    else:
        rng = np.random.default_rng(config.seed)
        sample = np.sort(
            rng.choice(split.train, size=min(config.stats_windows, len(split.train)), replace=False)
        )
        model.fit_stats(dataset.eeg(sample), dataset.mel(sample))
    model.to(device)
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(_config_dict(config), indent=2) + "\n")

    started = time.perf_counter()
    if hasattr(model, "fit_run"):  # a model with its own training loop (adversarial, ...)
        result = model.fit_run(dataset, split, config, dist_info, device, out, state)
    elif model.trained_by_gradient:
        result = _fit_gradient(model, dataset, split, config, dist_info, device, out, state)
    else:
        result = _fit_linear(model, dataset, split, config, dist_info, device)
    best_model = result["model"]

    val = _evaluate(best_model, dataset, split.val, config.batch_size, device, config.loss, dist_info)
    test = _evaluate(best_model, dataset, split.test, config.batch_size, device, config.loss, dist_info)
    metrics = {
        "model": config.model,
        "split": config.split,
        "loss": config.loss,
        "n_windows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "processes": dist_info.world,
        "device": device_kind,
        "val_mse": val["mse"],
        "test_mse": test["mse"],
        "val_loss": val["loss"],
        "seconds": time.perf_counter() - started,
        **{k: v for k, v in result.items() if k != "model"},
    }
    if dist_info.main:
        cpu_model = copy.deepcopy(best_model).cpu()
        _save_checkpoint(
            out / "best.pt",
            {
                "model": config.model,
                "model_config": cpu_model.get_config(),
                "state_dict": cpu_model.state_dict(),
                "train_config": _config_dict(config),
                "epoch": metrics.get("best_epoch", 0),
                "subjects": dataset.subjects,
            },
        )
        training = {
            "data": str(Path(config.data).resolve()),
            "songs": dataset.songs,
            "subjects": dataset.subjects,
            "split": config.split,
            "seed": config.seed,
            "epochs": metrics.get("epochs_run", 0),
            "hop_s": config.hop_s,
            "loss": config.loss,
            "best_epoch": metrics.get("best_epoch", 0),
        }
        metadata = build_metadata(
            cpu_model,
            spec=dataset.spec,
            target_offset_s=config.target_offset_s,
            subjects=dataset.subjects,
            training=training,
            evaluation={"val_mse": val["mse"], "test_mse": test["mse"]},
        )
        export_onnx(cpu_model, out / "model.onnx", metadata)
        title = f"{config.model} ({config.split} split, {config.loss})"
        if metrics.get("history"):
            _plot_curve(out / "training_curve.png", metrics["history"], title)
        elif "ridge" in metrics:
            _plot_ridge(out / "training_curve.png", metrics["ridge"]["val_mse"], title)
        metrics["paths"] = {
            name: str(out / name)
            for name in (
                "config.json",
                "checkpoint.pt",
                "best.pt",
                "metrics.json",
                "training_curve.png",
                "model.onnx",
            )
            if (out / name).exists() or name == "metrics.json"
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
    return metrics


def _fit_linear(model, dataset, split, config: TrainConfig, dist_info: _Dist, device) -> dict:
    """Closed-form ridge fit (statistics summed over processes)."""

    def reduce(stats: dict) -> dict:
        flat = np.concatenate([stats["xtx"].ravel(), stats["xty"].ravel(), [stats["yty"], stats["n"]]])
        flat = _all_sum(flat, dist_info, device)
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
        _batches(dataset, train_rows, 64, "cpu"),
        _batches(dataset, val_rows, 64, "cpu"),
        reduce=reduce if dist_info.world > 1 else None,
    )
    model.to(device)
    return {"model": model, "ridge": info, "epochs_run": 0, "best_epoch": 0, "history": []}


def _fit_gradient(
    model, dataset, split, config: TrainConfig, dist_info: _Dist, device, out: Path, state: dict | None
) -> dict:
    """Adam epochs with early stopping; checkpoint every epoch (rank 0)."""
    import torch
    from tqdm import tqdm

    loss_fn = torch.nn.functional.l1_loss if config.loss == "l1" else torch.nn.functional.mse_loss
    module = model
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    lr = config.lr if config.lr is not None else module.default_lr
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict] = []
    best_val, best_epoch, bad_epochs, start_epoch = math.inf, 0, 0, 1
    best_state = copy.deepcopy(module.state_dict())
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        history, best_val, best_epoch = state["history"], state["best_val"], state["best_epoch"]
        bad_epochs, start_epoch, best_state = state["bad_epochs"], state["epoch"] + 1, state["best_state"]
        if state.get("stopped_early"):
            start_epoch = config.epochs + 1
        torch.set_rng_state(state["torch_rng"])
    per_process = max(config.batch_size // dist_info.world, 1)
    throughput = []
    for epoch in range(start_epoch, config.epochs + 1):
        model.train()
        order = np.random.default_rng([config.seed, epoch]).permutation(split.train)
        order = order[: len(order) - len(order) % dist_info.world][dist_info.rank :: dist_info.world]
        n_batches = len(order) // per_process + (1 if len(order) % per_process >= 2 else 0)
        bar = tqdm(
            _batches(dataset, order, per_process, device, min_size=2),
            total=n_batches,
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            leave=False,
            disable=not (config.progress and dist_info.main),
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
        sums = _all_sum(sums, dist_info, device)
        val = _evaluate(module, dataset, split.val, config.batch_size, device, config.loss, dist_info)
        record = {
            "epoch": epoch,
            "train_loss": sums[0] / max(sums[1], 1),
            "val_loss": val["loss"],
            "val_mse": val["mse"],
            "seconds": seconds,
            "windows_per_s": sums[1] / max(seconds, 1e-9),
        }
        history.append(record)
        throughput.append(record["windows_per_s"])
        improved = val["loss"] < best_val
        if improved:
            best_val, best_epoch, bad_epochs = val["loss"], epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in module.state_dict().items()})
        else:
            bad_epochs += 1
        stopped = bad_epochs >= config.patience
        logger.info(
            "epoch %d: train loss %.3f, validation loss %.3f%s",
            epoch,
            record["train_loss"],
            val["loss"],
            " (best)" if improved else "",
        )
        if dist_info.main:
            _save_checkpoint(
                out / "checkpoint.pt",
                checkpoint_state(module, optimizer.state_dict(), config, epoch=epoch, history=history,
                                 best_val=best_val, best_epoch=best_epoch, bad_epochs=bad_epochs,
                                 best_state=best_state, stopped_early=stopped),
            )
        if stopped:
            logger.info("early stop after epoch %d (best epoch %d)", epoch, best_epoch)
            break
    module.load_state_dict(best_state)
    return {
        "model": module,
        "history": history,
        "best_epoch": best_epoch,
        "best_val_loss": best_val,
        "epochs_run": len(history),
        "windows_per_s": float(np.median(throughput)) if throughput else None,
    }
