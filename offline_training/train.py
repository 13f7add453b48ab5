"""Train a registry model on an NMED-T folder and export it to ONNX.

One call of :func:`train` does the whole run: read the windows (:class:`WindowDataset`), split them
(:func:`make_split`), fit the model's normalisation on training windows, then run the training loop
the model names (``training_loop``, looked up in :data:`TRAINING_LOOPS`): the closed-form ridge solve
(``linear``), or Adam epochs with early stopping on the validation loss (regression, adversarial,
diffusion), whose bookkeeping — best epoch, patience, a checkpoint after every epoch, resume — is the
one skeleton :class:`~offline_training.loop.EpochLoop`. The run folder gets ``config.json`` (the
:class:`TrainConfig`), ``checkpoint.pt`` (last epoch, for ``--resume``), ``best.pt`` (best validation
epoch), ``metrics.json``, ``training_curve.png`` and ``model.onnx`` (the best weights).

The same code runs under ``torchrun --nproc_per_node N``: each process trains on its share of every
epoch's batches (DDP; gloo on the CPU, NCCL on GPUs), losses are summed across processes, and only
rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import logging
import math
import numbers
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np
from eegmusic.offline_training.distributed import (
    init_distributed,
    leave_distributed,
    resolve_device,
    torchrun_count,
)
from eegmusic.offline_training.loop import config_dict, evaluate_mel, save_checkpoint
from eegmusic.stream.atomic import is_within, write_text
from eegmusic.stream.errors import ConfigError, ModelError, detail, read_json
from eegmusic.stream.spec import PreprocessingSpec

logger = logging.getLogger(__name__)

LOSSES = ("mse", "l1", "pearson", "mse+pearson")
OFFSET_MODELS = ("linear", "sourcenet", "ensemble")
"""Models that place their frames by the target offset they are built with (``target_offset_s``)."""
SUBJECT_SPLITS = ("subject", "subject-block")
"""Split kinds whose validation and test listeners are not in the training part: a subject embedding
(linear: an intercept per listener) has no trained row for them. ``eegmusic train`` refuses
``--subject-conditioning`` with these (its validation, ``evaluate`` and ``decode`` would feed them their
untrained rows); the library API allows it for a caller that decodes them otherwise
(``benchmarks/bench_quality.py`` decodes them as the mean trained listener)."""
RESUME_FREE_KEYS = ("epochs", "device", "progress", "patience", "allow_short_stimulus",
                    "target_offset_fallback_s", "unseen_song_check")
"""Options that may change between a run and its ``--resume`` (everything else must match)."""
UNRESUMABLE_LOOPS = {"closed_form": "is fitted in one closed-form step",
                     "ensemble": "trains its members one after the other"}
"""Training loops that write no ``checkpoint.pt`` (``--resume`` is refused), and why."""
TRAINING_RUN_FILES = ("config.json", "checkpoint.pt", "best.pt", "training_curve.png", "model.onnx")
"""Files of a run folder that only ``train`` writes (``metrics.json`` is ``evaluate``'s output too)."""
EVALUATE_FILES = ("metrics.json", "metrics.md", "reconstruction.png", "reconstruction.wav", "target.wav")
"""The files ``eegmusic evaluate`` writes into its ``--out`` (``metrics.json`` is a run's output too)."""
WEIGHT_FILES = ("checkpoint.pt", "best.pt", "model.onnx")
"""The files of a run folder that hold weights: a new run in that folder would overwrite them."""
SET_BY_TRAIN = {
    "n_chans": "the data's channel count",
    "n_times": "the 1-s window",
    "sfreq": "the model rate",
    "n_mels": "the mel target",
    "n_frames": "the mel target",
    "n_subjects": "--subject-conditioning",
    "target_offset_s": "--target-offset",
}
"""Constructor keywords of the model contract that ``train`` sets itself (refused in --arch-config)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run folder).

    Parameters
    ----------
    data : str
        NMED-T folder.
    model : str, optional
        Registry name (``linear``, ``cnn``, ``rcnn``, ``encdec``, ``transformer``, ``convnet``). None
        (the default): ``cnn``, or with ``init`` the pretrained model's architecture; a name given with
        ``init`` must be that architecture (:func:`train` refuses another before reading any data).
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
    loss : {"mse", "l1", "pearson", "mse+pearson"}
        Training loss on mel-dB (``pearson``: 1 − per-band Pearson r over the batch's frames;
        ``mse+pearson``: MSE in units of band variance plus that; :mod:`offline_training.loop_regression`).
    augment : str
        Augmentation of training windows, e.g. ``"shift=2,dropout=0.1,scale=0.2"``
        (:mod:`offline_training.augment`; empty: none).
    ema : float
        Decay of a moving average of the weights over optimiser steps (0: none); the average is
        validated and kept (:func:`offline_training.loop_regression.weight_average`). Gradient
        regression models only.
    select_by : {"loss", "dynamic_r"}
        What picks the best epoch (and early stopping) on the validation part: the training loss, or
        the dynamic r of :func:`offline_training.loop_regression.validation_dynamic_r` (each recording
        centred on its own means, interior frames). Gradient regression models only.
    subject_conditioning : bool
        Give the model a subject embedding (input ``subject`` in the ONNX file).
    hop_s : float
        Hop between training windows in seconds.
    epoch_fraction : float
        Share of the training windows each Adam epoch visits, drawn afresh every epoch (1: all). With a
        short hop (``hop_s`` 0.1, fraction 0.1) an epoch costs what it costs at a 1-s hop, yet its windows
        start at every phase of the second: a decoder cannot fit the music at one fixed window phase
        (what the quality benchmark's off-grid scoring exposed). Gradient regression models only.
    patience : int
        Early stopping: stop after this many epochs without a better validation loss.
    target_offset_s : float or "auto"
        Target offset (see :class:`~offline_training.dataset.WindowDataset`); ``"auto"`` picks it on
        the validation part (:func:`offline_training.target_lag.choose_target_offset`). ``eegmusic
        train`` passes ``"auto"`` when no ``--target-offset`` is given.
    target_offset_fallback_s : float, optional
        With ``"auto"``: the offset to train at, with one logged warning, when the validation part has
        no stretch to score a lag on; None refuses such a split. The CLI's default sets 0.0, an
        explicit ``--target-offset auto`` None (why: :mod:`offline_training.target_lag`).
    songs, subjects : list, optional
        Restrict the data (song ids; participant ids, or 1-based listener numbers as on the CLI).
    model_config : dict
        Hyper-parameter overrides passed to the model's constructor.
    stats_windows : int
        Training windows used to fit the normalisation statistics.
    progress : bool
        Show a tqdm bar per epoch.
    init : str, optional
        Fine-tune this pretrained model (a run's ``model.onnx`` or ``best.pt``) instead of starting
        from random weights (:mod:`offline_training.finetune`); the architecture is the pretrained one.
        The file is read, and refused if it cannot be fine-tuned, before any data is read.
    allow_short_stimulus : bool
        Train on a stimulus shorter than its EEG (the targets after its end are silence); refused
        otherwise (:func:`offline_training.sanity.check_stimulus`).
    unseen_song_check : bool
        After training, train the same model once more without one training song and score its live
        frames on that song (:mod:`offline_training.unseen_song`): how it decodes music it has not
        heard, recorded in ``metrics.json`` and the model's training metadata (costs a second training).
    val_data : str, optional
        A later excerpt of the same songs heard by the same listeners (another folder, e.g. ``eegmusic
        simulate --music DIR --music-start 90``): its windows of the (song, listener) pairs of the split's
        validation part replace that part, so everything chosen on validation — early stopping and the best
        epoch, ridge's penalty, an ensemble's weights and output rank, ``--target-offset auto`` — is chosen on
        music the model never trained on, as a later test excerpt will be. The split's own validation windows
        stay out of training, so a run trains on the same windows with and without it. Why: block validation
        chunks are seconds of the training excerpt, and early stopping on them rewards a network for learning
        that excerpt's music (:mod:`benchmarks.bench_quality`).
    """

    data: str
    model: str | None = None
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
    epoch_fraction: float = 1.0
    patience: int = 5
    target_offset_s: float | str = 0.0
    target_offset_fallback_s: float | None = None
    songs: list | None = None
    subjects: list | None = None
    model_config: dict = field(default_factory=dict)
    stats_windows: int = 2000
    progress: bool = True
    init: str | None = None
    allow_short_stimulus: bool = False
    augment: str = ""
    ema: float = 0.0
    select_by: str = "loss"
    unseen_song_check: bool = False
    val_data: str | None = None

    def __post_init__(self) -> None:
        if self.model is None and not self.init:  # with --init, the pretrained one (train reads it)
            self.model = "cnn"

    def check(self) -> None:
        """Raise :class:`ConfigError` for a bad value (one line naming it and the fix)."""
        from eegmusic.offline_training.models.registry import ALL_MODELS
        from eegmusic.offline_training.splits import SPLIT_KINDS

        if self.model is not None and self.model not in ALL_MODELS:
            raise ConfigError(f"unknown model '{self.model}'; use one of {', '.join(ALL_MODELS)}")
        if self.split not in SPLIT_KINDS:
            raise ConfigError(f"unknown split '{self.split}'; use one of {', '.join(SPLIT_KINDS)}")
        if self.split == "all":
            raise ConfigError(
                "split 'all' has no training part (it is for eegmusic evaluate); use random, "
                "block, subject, song or subject-block"
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
        from eegmusic.offline_training.augment import parse_augment

        parse_augment(self.augment)
        if self.unseen_song_check and self.init:
            raise ConfigError("--unseen-song-check trains the architecture from scratch and cannot check a "
                              "fine-tuning run (--init); drop one of them")
        if self.val_data and not Path(self.val_data).exists():
            raise ConfigError(f"--val-data {self.val_data} does not exist; pass a later excerpt of the same "
                              "songs and listeners (e.g. eegmusic simulate --music DIR --music-start 90)")
        if self.val_data and (self.init or self.unseen_song_check):
            option = "--init" if self.init else "--unseen-song-check"
            raise ConfigError(f"--val-data cannot be combined with {option}, which chooses on held-out "
                              "tracks of --data itself; drop one of them")
        if self.select_by not in ("loss", "dynamic_r"):
            raise ConfigError(f"--select-by must be loss or dynamic_r (got {self.select_by!r})")
        if not 0.0 <= float(self.ema) < 1.0:
            raise ConfigError(f"--ema must be a decay in [0, 1), e.g. 0.9 (got {self.ema})")
        if not 0.0 < float(self.epoch_fraction) <= 1.0:
            raise ConfigError(f"--epoch-fraction must be in (0, 1], e.g. 0.1 with --hop 0.1 (got "
                              f"{self.epoch_fraction})")
        loop = "regression" if self.model is None else ALL_MODELS[self.model].training_loop
        given = {"--ema": self.ema, "--select-by": self.select_by != "loss",
                 "--epoch-fraction": self.epoch_fraction != 1.0}
        adam_only = [option for option, on in given.items() if on]
        if adam_only and (loop not in ("regression", "ensemble") or self.init):
            option = adam_only[0]
            what = "fine-tuning (--init)" if self.init else f"model '{self.model}' ({loop.replace('_', ' ')})"
            raise ConfigError(f"{option} applies to the Adam epochs of regression models; {what} does not "
                              f"use it, drop {option}")
        self.check_batch_size()
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be positive (got {self.lr})")
        if not self.hop_s > 0:
            raise ConfigError(f"--hop must be positive (got {self.hop_s})")
        if isinstance(self.target_offset_s, str) and self.target_offset_s != "auto":
            raise ConfigError(
                f"--target-offset must be seconds or 'auto' (got {self.target_offset_s!r})"
            )
        fallback = self.target_offset_fallback_s
        if fallback is not None and not (isinstance(fallback, int | float) and 0.0 <= fallback <= 2.0):
            raise ConfigError(f"target_offset_fallback_s must be None or seconds in [0, 2], not {fallback!r}")
        if not isinstance(self.model_config, dict):
            raise ConfigError(f"--arch-config must be a JSON object of hyper-parameters, not "
                              f"{json.dumps(self.model_config)}; pass e.g. '{{\"dense\": 64}}'")
        if self.subject_conditioning and self.init:
            raise ConfigError("--subject-conditioning adds a subject embedding to a new model, and --init "
                              f"fine-tunes {self.init} with its own inputs as they are; drop "
                              "--subject-conditioning")
        if self.model_config and self.init:
            raise ConfigError("--arch-config sets the hyper-parameters of a new model, and --init fine-tunes "
                              f"{self.init} with its own architecture as it is; drop --arch-config")
        if self.model_config:
            check_model_config(self.model, self.model_config)
        self._check_folders()

    def check_batch_size(self, world: int | None = None) -> None:
        """Refuse a ``batch_size`` that leaves each process batches of fewer than 2 windows, for a model
        trained in batches: every loop skips such a batch (batch norm needs 2), so nothing would train
        and an untrained model would be exported. The ridge fit (``closed_form``) has no batches.

        ``world`` : processes (default: torchrun's ``WORLD_SIZE``). Nothing is checked while the model
        is unknown (``--init`` before its file is read: :func:`train` checks again then).
        """
        from eegmusic.offline_training.models.registry import ALL_MODELS

        if self.model is None or ALL_MODELS[self.model].training_loop == "closed_form":
            return
        world = torchrun_count("WORLD_SIZE", 1) if world is None else int(world)
        per_process = int(self.batch_size) // max(world, 1)
        if per_process >= 2:
            return
        share = f" shared by {world} processes" if world > 1 else ""
        windows = f"{per_process} window{'s' * (per_process != 1)}"
        raise ConfigError(f"--batch-size {self.batch_size}{share} makes batches of {windows}, and "
                          f"model '{self.model}' trains on batches of at least 2 (smaller ones are skipped): "
                          f"it would train nothing; pass --batch-size {2 * max(world, 1)} or more")

    def _check_folders(self) -> None:
        """Refuse a run folder in an input folder, and validation on the training data itself."""
        for flag, folder in (("--data", self.data), ("--val-data", self.val_data)):
            # a file (XDF, EDF) is no folder the run's files could land in; output_dir refuses --out = file
            if folder and Path(folder).is_dir() and is_within(self.out, folder):
                raise ConfigError(f"--out {self.out} is the {flag} folder {folder} or inside it, an input; "
                                  f"write the run outside the dataset, e.g. --out runs/{Path(folder).name}")
        if self.val_data and _same_folder(self.val_data, self.data):
            raise ConfigError(f"--val-data {self.val_data} is --data itself: validating on the training "
                              "data chooses nothing on unseen music; pass a later excerpt (e.g. eegmusic "
                              "simulate --music DIR --music-start 90) or drop --val-data")
        if self.val_data:
            from eegmusic.replay.manifest import excerpt_mismatch

            mismatch = excerpt_mismatch(self.data, self.val_data)
            if mismatch:
                raise ConfigError(f"--val-data {self.val_data} {mismatch}; simulate the later excerpt with "
                                  "--data's --music, --seed and --montage and a later --music-start")


def _config_defaults(name: str) -> dict:
    """The keyword arguments of architecture ``name``'s constructor (and its bases') with their defaults."""
    import inspect

    from eegmusic.offline_training.models.registry import ALL_MODELS

    defaults: dict = {}
    for cls in ALL_MODELS[name].__mro__:
        init = cls.__dict__.get("__init__")
        for parameter in list(inspect.signature(init).parameters.values())[1:] if init else ():
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                defaults.setdefault(parameter.name, parameter.default)
    return defaults


def config_example(name: str) -> str:
    """An ``--arch-config`` of architecture ``name`` to show in a refusal: its first numeric
    hyper-parameter at its default, e.g. ``{"kernel": 7}`` for convnet (another architecture's key would be
    refused)."""
    for key, value in _config_defaults(name).items():
        if key not in SET_BY_TRAIN and isinstance(value, int | float) and not isinstance(value, bool):
            return json.dumps({key: value})
    return "{}"


def build_configured(name: str, model_kwargs: dict, model_config: dict):
    """Build architecture ``name``; with ``--arch-config`` values, also run it once on two empty windows.

    Values of the right type can still be out of range (``{"dense": 0}``, a dropout of 1.5, a kernel
    longer than the window): the constructor or the first forward pass raises a library error
    (torch's IndexError, "negative dimension" …) that would surface as a traceback mid-run. Any
    such error, with a configuration given, is the configuration's: one line naming it and the
    defaults of its keys.

    Parameters
    ----------
    name : str
        A registry architecture.
    model_kwargs : dict
        The constructor's keywords, ``n_chans`` included (the ``--arch-config`` values among them).
    model_config : dict
        The ``--arch-config`` values alone, named in the error.

    Raises
    ------
    ConfigError
        ``model_config`` does not build a model that runs.
    """
    import torch
    from eegmusic.offline_training.models.registry import build_model
    from eegmusic.stream.spec import WINDOW_SAMPLES

    if not model_config:
        return build_model(name, **model_kwargs)
    defaults = _config_defaults(name)
    _refuse_a_model_too_large(name, model_kwargs, model_config, defaults)
    try:
        # torch only warns of a layer of size 0 (a model with no units that trains to nothing): an error here
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*zero-element tensors.*")
            model = build_model(name, **model_kwargs)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            subject = torch.zeros(2, dtype=torch.long) if model_kwargs.get("n_subjects") else None
            model(torch.zeros(2, int(model_kwargs["n_chans"]), WINDOW_SAMPLES), subject)
        model.train(was_training)
    except Exception as error:  # noqa: BLE001 - whatever torch raises for a value it cannot take
        shown = json.dumps({key: defaults.get(key) for key in model_config}, default=list)
        raise ConfigError(f"bad configuration for model '{name}': --arch-config "
                          f"{json.dumps(model_config)} does not make a model that runs "
                          f"({_config_failure(error, defaults, model_config)}); pass values in range (the "
                          f"defaults: {shown})") from error
    return model


TRAINING_BYTES_PER_WEIGHT = 16
"""Memory a weight takes while it trains: float32 value, gradient and Adam's two moments."""


def _refuse_a_model_too_large(name: str, model_kwargs: dict, model_config: dict, defaults: dict) -> None:
    """Count the weights of the configured model without allocating them (built on torch's ``meta``
    device) and refuse a model whose training needs more memory than this machine has
    (:data:`TRAINING_BYTES_PER_WEIGHT` a weight, 4 bytes a buffer, activations not counted):
    ``{"kernel": 100000}`` asked for 800 M weights per layer, and the build was killed for memory (exit
    137, no message) before any check could run. A configuration that does not build on ``meta`` is left
    to the real build's own message."""
    import torch
    from eegmusic.offline_training.models.registry import build_model
    from eegmusic.replay.simulate import available_memory

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = build_model(name, **model_kwargs)
    except Exception:  # noqa: BLE001 - the real build names what is wrong
        return
    _refuse_a_stride_beyond_the_window(probe, name, model_config)
    weights = sum(tensor.numel() for tensor in probe.parameters())
    need = TRAINING_BYTES_PER_WEIGHT * weights + 4 * sum(tensor.numel() for tensor in probe.buffers())
    # the memory free now (and under any address-space limit), not the physical total: a model that
    # only fits by pushing other programs into swap would crawl, and one past `ulimit -v` was a
    # MemoryError traceback mid-build
    memory = available_memory()
    if need > memory:
        shown = json.dumps({key: defaults.get(key) for key in model_config}, default=list)
        raise ConfigError(f"--arch-config {json.dumps(model_config)} makes a '{name}' model of "
                          f"{weights / 1e6:,.0f} M weights, whose training needs {need / 2**30:,.0f} GB "
                          f"(weights, gradients and Adam's state), more than the {memory / 2**30:.1f} GB of "
                          f"memory this process can still take now; pass smaller values (the defaults: "
                          f"{shown})")


def _refuse_a_stride_beyond_the_window(probe, name: str, model_config: dict) -> None:
    """Refuse a convolution whose stride is longer than the model's whole EEG window: every step after it
    is one, and torch's backward pass of such a layer runs for ever (stride 100,000: no end, Ctrl-C
    ignored) or crashes the process (1,000,000: a segmentation fault, no message), where its forward
    pass, which the build check runs, is quick."""
    from torch import nn

    window = int(probe.n_times)
    for module in probe.modules():
        if isinstance(module, nn.modules.conv._ConvNd) and max(module.stride) > window:
            raise ConfigError(f"--arch-config {json.dumps(model_config)} gives a '{name}' convolution a "
                              f"stride of {max(module.stride)}, longer than the model's whole "
                              f"{window}-sample window; pass strides of at most {window}")


def _config_failure(error: BaseException, defaults: dict, model_config: dict) -> str:
    """Why a configuration fails, in its own terms where torch's are no help: a layer of size 0, or lists
    that go layer by layer (``channels`` and ``strides``) of different lengths."""
    if "zero-element tensors" in str(error):
        return "a layer of size 0: every size must be at least 1"
    if "zip()" in str(error):
        lists = {key: value for key, value in {**defaults, **model_config}.items()
                 if key in defaults and isinstance(value, list | tuple) and value
                 and all(isinstance(v, numbers.Real) for v in value)}
        return ("its lists go layer by layer, one entry per layer, but have different lengths: "
                + ", ".join(f"{key} {len(value)}" for key, value in lists.items()))
    return detail(error)


_JSON_KINDS = (  # default's type, the types that fit it (library callers pass tuples), its name, a list's
    (bool, (bool,), "true or false", "a list of true/false"),
    (int, (numbers.Integral,), "an integer", "a list of integers"),
    (float, (numbers.Real,), "a number", "a list of numbers"),
    (str, (str,), "a string", "a list of strings"),
    (dict, (dict,), "a JSON object", "a list of JSON objects"),
    (tuple | list, (list, tuple), "a list", "a list of lists"),
)


def _json_kind(default) -> tuple[tuple[type, ...], str, str] | None:
    """The JSON types a hyper-parameter with this default takes, their name, and a list's (None: any)."""
    for python_type, kinds, noun, list_noun in _JSON_KINDS:  # bool before int: True is an int too
        if isinstance(default, python_type):
            return kinds, noun, list_noun
    return None  # None or an object: the model checks it


def _fits(value, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:  # JSON true is no number
        return False
    if isinstance(value, float) and not math.isfinite(value):  # json.loads reads NaN and Infinity
        return False   # (an integer is finite, and np.isfinite raised TypeError on one past 64 bits)
    return isinstance(value, kinds)


def check_model_config(name: str, model_config: dict) -> None:
    """Refuse ``--arch-config`` keys the architecture lacks or values of another type than its default's.

    Each value must have the JSON type of the constructor's default (a list element that of the
    default's elements); keys without a default (None) are left to the model. Keys of the model
    contract that ``train`` sets (:data:`SET_BY_TRAIN`) are refused.

    Raises
    ------
    ConfigError
        One line naming the key, the expected type and the value.
    """
    defaults = _config_defaults(name)
    for key, value in model_config.items():
        if key in SET_BY_TRAIN:
            raise ConfigError(f"bad configuration for model '{name}': --arch-config key '{key}' is set by "
                              f"eegmusic train ({SET_BY_TRAIN[key]}); drop it")
        if key not in defaults:
            known = ", ".join(k for k in defaults if k not in SET_BY_TRAIN)
            raise ConfigError(f"bad configuration for model '{name}': --arch-config key '{key}' is not one "
                              f"of its hyper-parameters; use one of {known}")
        default = defaults[key]
        kind = _json_kind(default)
        if kind is None:
            continue
        kinds, noun, _ = kind
        items = _json_kind(default[0]) if isinstance(default, tuple | list) and default else None
        if items is not None:  # e.g. cnn filters: a list of integers
            noun = items[2]
        if not _fits(value, kinds) or (items is not None and not all(_fits(v, items[0]) for v in value)):
            raise ConfigError(f"bad configuration for model '{name}': --arch-config key '{key}' must be "
                              f"{noun}, e.g. {json.dumps(default)} (got {json.dumps(value, default=str)})")
        huge = [v for v in (value if isinstance(value, list | tuple) else [value])
                if isinstance(v, numbers.Integral) and abs(v) >= 2**63]
        if huge:  # torch failed on it with a message cut short mid-word
            raise ConfigError(f"bad configuration for model '{name}': --arch-config key '{key}' holds "
                              f"{huge[0]}, beyond the 64-bit integers torch takes; pass a value in range, "
                              f"e.g. {json.dumps(default)}")


# ---- run folder ---------------------------------------------------------------------------------------
def _same_folder(saved: str, current: str) -> bool:
    """Whether two spellings name the same folder (relative ones resolved in the working directory)."""
    try:
        return Path(saved).resolve() == Path(current).resolve() or (
            Path(saved).exists() and Path(current).exists() and Path(saved).samefile(current))
    except OSError:
        return False


def _refuse_a_used_out(config: TrainConfig, out: Path) -> None:
    """A new run writes its weights over those of any run already in ``out``: refuse, whichever of them
    is there (``best.pt`` alone is all that ``--init`` needs, so a run folder may hold only that).
    ``--resume`` is offered only where this very command would continue that run (:func:`_resumable`).
    A folder of ``evaluate`` results (no run's files) is refused too: the run's ``metrics.json`` would
    replace evaluate's, as ``evaluate`` refuses a run's folder."""
    from eegmusic.stream.errors import OutputError

    results = [name for name in EVALUATE_FILES if (out / name).exists()]
    if results and not any((out / name).exists() for name in TRAINING_RUN_FILES):
        raise OutputError(f"--out {out} holds an evaluate result ({', '.join(results)}) and the run's "
                          f"metrics.json would replace it; train into another folder, e.g. --out "
                          f"{out.parent / (out.name + '-run')}")
    held = [name for name in WEIGHT_FILES if (out / name).exists()]
    foreign = [name for name in ("config.json", "training_curve.png", "metrics.json")
               if (out / name).exists()]
    if foreign and not held and not _a_run_config(out / "config.json"):
        raise OutputError(f"--out {out} holds {', '.join(foreign)} of no eegmusic training run, which the "
                          f"run would replace; train into another folder, e.g. --out "
                          f"{out.parent / (out.name + '-run')}")
    if held:
        fix = "pass another --out (--resume cannot continue it with these options)"
        if _resumable(config, out):
            fix = "pass --resume to continue it or another --out"
        elif _checkpoint_lost(config, out):   # not "these options": no options would continue it
            fix = "pass another --out (it has no checkpoint.pt, so --resume cannot continue it)"
        raise ConfigError(f"{out} already holds a training run ({', '.join(held)}); {fix}")


def _a_run_config(path: Path) -> bool:
    """Whether ``path`` is the ``config.json`` a training run wrote (one that ended no epoch leaves only
    that, and the next run there replaces it), not a file of the user's that only shares its name."""
    if not path.is_file():  # a FIFO of that name: its read waited for a writer for ever
        return False
    try:
        saved = read_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(saved, dict) and {"model", "data", "out", "epochs"} <= saved.keys()


def _resumable(config: TrainConfig, out: Path) -> bool:
    """Whether ``--resume`` added to this run's options would continue the run in ``out``: not a
    fine-tuning run, a model that writes checkpoints (not ``linear``, ``ensemble``), its config.json and
    checkpoint.pt there, and the same options (the checks of :func:`_check_resume`)."""
    if config.init:
        return False
    try:
        _check_resume(config, out)
    except (ConfigError, ModelError):
        return False
    return True


def _checkpoint_lost(config: TrainConfig, out: Path) -> bool:
    """Whether ``out`` holds a run of a model that writes checkpoints, but no ``checkpoint.pt``."""
    from eegmusic.offline_training.models.registry import ALL_MODELS

    loop = ALL_MODELS[config.model].training_loop if config.model in ALL_MODELS else None
    return (not config.init and loop not in UNRESUMABLE_LOOPS and (out / "config.json").is_file()
            and not (out / "checkpoint.pt").is_file())


def _read_init(config: TrainConfig):
    """Read ``--init`` before any data (:func:`offline_training.finetune.load_pretrained`: a missing file,
    a folder, junk, a model that cannot be fine-tuned are one line) and settle the architecture: the
    pretrained one; an ``--arch`` naming another is refused.

    Returns
    -------
    Pretrained
    """
    from eegmusic.offline_training.finetune import check_startable, load_pretrained

    pretrained = load_pretrained(config.init)
    check_startable(pretrained)
    name = getattr(pretrained.model, "inner_name", pretrained.model.name)  # an adapted model: its core
    if config.model is not None and config.model != name:
        raise ConfigError(f"--arch {config.model} differs from the architecture of --init {config.init} "
                          f"('{name}'): fine-tuning keeps the pretrained architecture; drop --arch or pass "
                          f"--arch {name}")
    config.model = name
    return pretrained


def _init_target_offset(config: TrainConfig, pretrained) -> float | None:
    """The target offset of ``--init``'s model when it places its frames by one (:data:`OFFSET_MODELS`),
    else None (the offset is then the data's, chosen or given as for a new model).

    Fine-tuning keeps the pretrained architecture, its offset included: targets at another offset
    trained a model whose frames sit at the pretrained one, and its file claimed the other.

    Raises
    ------
    ConfigError
        An explicit ``--target-offset`` other than the pretrained model's.
    """
    if config.model not in OFFSET_MODELS:
        return None
    core = getattr(pretrained.model, "inner", pretrained.model)  # a model adapted to a montage: its core
    offset = float(core.target_offset_s)
    if config.target_offset_s != "auto" and abs(float(config.target_offset_s) - offset) > 1e-9:
        raise ConfigError(f"--target-offset {config.target_offset_s:g} differs from the target offset of "
                          f"--init {config.init} ({offset:g} s), by which a '{config.model}' model places "
                          f"its frames and which fine-tuning keeps; drop --target-offset or pass "
                          f"--target-offset {offset:g}")
    logger.info("target offset %g s: the one --init %s was trained at", offset, config.init)
    return offset


def _check_resume(config: TrainConfig, out: Path) -> None:
    from eegmusic.offline_training.models.registry import ALL_MODELS

    saved_path = out / "config.json"
    if not saved_path.is_file():
        missing = " or ".join(name for name in ("config.json", "checkpoint.pt") if not (out / name).is_file())
        raise ConfigError(f"--resume: {out} holds no {missing}, so no run to continue; drop --resume to "
                          "start a new run")
    try:
        saved = read_json(saved_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, OSError) as error:
        raise ConfigError(
            f"--resume: {saved_path} is not readable JSON ({type(error).__name__}); restore it from a "
            "backup or start a new --out"
        ) from None
    if not isinstance(saved, dict):
        raise ConfigError(f"--resume: {saved_path} holds a {type(saved).__name__}, not the run's options; "
                          "restore it or start a new --out")
    if not isinstance(saved.get("model"), str) or saved["model"] not in ALL_MODELS:
        raise ConfigError(f"--resume: {saved_path} names model {saved.get('model')!r}, which no --arch is "
                          "(the file was edited or is damaged); restore it from a backup or start a new "
                          "--out")
    if saved.get("model") != config.model:
        raise ModelError(
            f"--resume: checkpoint in {out} is from model '{saved.get('model')}', not '{config.model}'; "
            f"use --arch {saved.get('model')} or another --out"
        )
    why = UNRESUMABLE_LOOPS.get(ALL_MODELS[config.model].training_loop)
    if why:
        raise ConfigError(f"--resume: model '{config.model}' {why} and writes no checkpoint.pt, so its run "
                          f"in {out} cannot be resumed; drop --resume and train into a new --out")
    if not (out / "checkpoint.pt").is_file():
        finished = [name for name in ("best.pt", "model.onnx") if (out / name).is_file()]
        if finished:   # a finished run without its checkpoint: a new run there would overwrite its weights
            raise ConfigError(f"--resume: {out} holds a run's {' and '.join(finished)} but not its "
                              "checkpoint.pt, which --resume continues from, so the run cannot go on (its "
                              "model stays usable as it is); to train again, pass another --out")
        raise ConfigError(f"--resume: {out} holds config.json but no checkpoint.pt (the run ended no epoch, "
                          "or it was removed); drop --resume to start the run again")
    current = config_dict(config)
    # an option added after the run was written is absent from its config.json: it ran at the default
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    resolved = saved["resolved"] if isinstance(saved.get("resolved"), dict) else {}
    for key in current:
        if key in RESUME_FREE_KEYS or key == "out":  # a run folder may be moved or renamed
            continue
        # the absolute path written beside it (a relative --data resolved in another working directory
        # named another folder: "option 'data' changed ('sim' …, now 'hunt/sim')", of the same data)
        where = resolved.get(key, saved.get(key))
        if (key in ("data", "val_data") and isinstance(where, str) and isinstance(current[key], str)
                and _same_folder(where, current[key])):
            continue  # the same folder spelled differently (sim, ./sim/, /abs/sim)
        before = saved[key] if key in saved else defaults.get(key)
        if before != current[key]:
            raise ConfigError(
                f"--resume: option '{key}' changed ({before!r} in {saved_path}, "
                f"now {current[key]!r}); resume with the run's options or start a new --out"
            )


FINAL_FILES = ("best.pt", "model.onnx", "training_curve.png")
"""What a run writes after its last epoch, with ``metrics.json``: one set, which :func:`_finishing` puts in
place together or not at all."""

FINISHED_SET = FINAL_FILES + ("metrics.json",)
"""The files of a finished run that describe one another: ``metrics.json`` holds the scores of the model in
``best.pt`` and ``model.onnx``, and the paths of the set."""


def _listing(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def _inode(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` is (device, inode), or None where there is none: a rename keeps it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


@contextlib.contextmanager
def _finishing(config: TrainConfig, out: Path, *, resume: bool) -> Iterator[tuple[Path, str]]:
    """Write the run's last files (best.pt, model.onnx, the curve, metrics.json) into a hidden folder
    inside the block; when it ends cleanly they replace their namesakes in ``out`` together.

    The rule: the four files are one set (:data:`FINISHED_SET`), replaced whole or not at all (the renames
    run with Ctrl-C and SIGTERM deferred, :func:`stream.atomic.staged_files`), so ``metrics.json`` is
    never left beside a model it does not describe, nor a new model beside an earlier ``metrics.json``.
    Only files this command wrote are ever removed: an interrupt or failure (a full disk at the export)
    before the set is in place leaves the earlier set of a resumed run whole — it had removed best.pt,
    model.onnx and the curve of a working run, and left its stale metrics.json — and a new run's folder
    is then that of a run stopped after its last epoch. A run with checkpoint.pt (of that epoch, its best
    weights inside) is finished by ``--resume``, which trains no more epochs; any other, and a fine-tuning
    run (its checkpoint, of the last candidate only and written by this command, is removed), by running
    the same command again. A full disk at the export had left config.json and best.pt: a rerun was
    refused for that best.pt, and --resume too (a linear run writes no checkpoint).

    The interrupt or error leaves with a note (``add_note``) saying what is left and how to finish, which
    ``eegmusic train`` prints before "interrupted"; a full disk says it in its message.

    Yields
    ------
    stage : Path
        The hidden folder to write the set into (its files keep their names).
    full_disk : str
        How a full-disk message ends: what is left and which command finishes the run.
    """
    from eegmusic.stream.atomic import disk_errors, staged_files
    from eegmusic.stream.errors import EEGMusicError, OutputError

    removed = ("checkpoint.pt",) if config.init else ()   # fine-tuning's own checkpoint (see above)
    earlier = [name for name in FINISHED_SET if (out / name).is_file()]
    if resume:
        fix = "run the same command again to finish it (--resume trains no more epochs)"
    elif _resumable(config, out):
        fix = "add --resume to the same command to finish it"
    else:
        fix = "run the same command again"
    left = (f"the earlier {_listing(earlier)} are unchanged" if earlier
            else f"best.pt and model.onnx are not written{' and checkpoint.pt is removed' * bool(removed)}")
    full_disk = f"{left}; free space, then {fix}"
    staged: dict[str, tuple[int, int] | None] = {}
    stage = None
    try:
        with staged_files(out) as stage:
            with disk_errors(out, tail=full_disk):   # the curve (matplotlib writes straight onto its path)
                yield stage, full_disk
            staged = {item.name: _inode(item) for item in stage.iterdir()}
    except BaseException as error:
        # a Ctrl-C deferred during the renames is raised once they are done: the set is then in place
        # (a rename refused midway puts the earlier files back: stream.atomic.staged_files)
        in_place = [inode is not None and _inode(out / name) == inode for name, inode in staged.items()]
        if in_place and all(in_place):
            error.add_note(f"{out}: the run's final files were all written before it stopped; it is complete")
            raise
        for name in removed:
            with contextlib.suppress(OSError):
                (out / name).unlink(missing_ok=True)
        if isinstance(error, OutputError):
            # whichever writer failed (the export, best.pt, metrics.json, the renames), the message ends in
            # what this stage leaves and how to finish: their own tails spoke of their one file
            text = str(error).replace(str(stage), str(out)) if stage is not None else str(error)
            head = text.split("); ", 1)[0] + ")" if "); " in text else text.split("; ", 1)[0]
            tail = full_disk if head.startswith("disk full") else \
                f"{left}; check the folder's permissions and free space, then {fix}"
            raise OutputError(f"{head}; {tail}") from None
        if isinstance(error, EEGMusicError) and stage is not None and str(stage) in str(error):
            # the file that failed is named where it was going, not in the hidden folder that is gone
            raise type(error)(str(error).replace(str(stage), str(out))) from None
        error.add_note(f"{out}: stopped while writing the run's final files ({left}); {fix}")
        raise
    # the set is in place; a file of the earlier set that this run does not write would describe the
    # earlier model (never seen: a resumed run keeps its history, so it draws its curve again)
    for name in set(earlier) - set(staged):
        with contextlib.suppress(OSError):
            (out / name).unlink(missing_ok=True)


SHAPING_KEYS = {"n_chans": "channels", "n_subjects": "listeners (--subject-conditioning)",
                "n_times": "samples a window", "sfreq": "Hz", "n_mels": "mel bands", "n_frames": "frames"}
"""Model settings that the data decide (not an option), as a --resume refusal names them."""


def _refuse_another_shape(config: TrainConfig, out: Path, state: dict, model) -> None:
    """Refuse a ``--resume`` whose data shape the model otherwise than the checkpoint's: the options are
    the same (:func:`_check_resume`), but the folder was re-simulated with 8 channels instead of 16, or 3
    listeners instead of 2 under ``--subject-conditioning`` (``load_state_dict``'s size-mismatch
    traceback)."""
    saved = state.get("model_config") if isinstance(state.get("model_config"), dict) else {}
    now = model.get_config()
    changed = [f"{saved[key]} {words} in the checkpoint, {now[key]} in --data {config.data}"
               for key, words in SHAPING_KEYS.items()
               if key in saved and key in now and saved[key] != now[key]]
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    weights = state.get("state_dict") or {}
    mismatched = sorted(name for name, value in weights.items()
                        if name in shapes and tuple(getattr(value, "shape", ())) != shapes[name])
    if not changed and not mismatched:
        return
    what = "; ".join(changed) or f"weights {', '.join(mismatched[:3])} differ in shape"
    raise ConfigError(f"--resume: the run in {out} was trained on other data ({what}); resume on the data it "
                      "was trained on, or drop --resume and train into a new --out")


def _refuse_fewer_epochs(config: TrainConfig, out: Path, state: dict) -> None:
    """Refuse a ``--resume`` whose ``--epochs`` is below the epochs the run already trained.

    ``--epochs`` is the total a run reaches, so such a resume trains nothing and would record the smaller
    number in config.json beside the epochs that ran: the user meant a total (or mistyped), and refusing
    says so where keeping the larger count silently would hide the mistake. A diffusion run numbers its
    prior phase first (``prior_epochs`` in the checkpoint); ``--epochs`` counts the epochs after it.
    """
    ran = int(state.get("epoch") or 0) - int(state.get("prior_epochs") or 0)
    if ran > config.epochs:
        raise ConfigError(f"--resume --epochs {config.epochs}: the run in {out} already ran {ran} epochs; "
                          f"--epochs is the total to reach: pass --epochs {ran} or more")


LOSS_AXIS_LABELS = {"mse": "loss (dB²)", "l1": "loss (dB)", "pearson": "loss (1 − r)",
                    "mse+pearson": "loss (MSE / band variance + 1 − r)"}
"""Training-curve axis label of each ``TrainConfig.loss``: its unit."""


def loss_axis_label(loss: str) -> str:
    """The training curve's y-axis label for the loss named ``loss`` (see :data:`LOSS_AXIS_LABELS`)."""
    return LOSS_AXIS_LABELS.get(loss, "loss")


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (training may run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)


def draw_curve(history: list[dict], title: str, loss: str, best_epoch: int | None = None):
    """The training curve: train and validation loss per epoch, the epoch whose weights were kept marked.

    Epochs are whole numbers on the axis (it read 1.25, 1.5, …), and the kept epoch is the one the run
    prints ("best epoch 3"): without the mark, the curve did not say which weights model.onnx holds.
    Returns the matplotlib figure.
    """
    from matplotlib.ticker import MaxNLocator

    fig, ax = _pyplot().subplots(figsize=(6, 4), dpi=100)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    if best_epoch in epochs:
        ax.axvline(best_epoch, color="C3", linestyle="--", linewidth=1,
                   label=f"weights kept: epoch {best_epoch}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_axis_label(loss))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _plot_curve(path: Path, history: list[dict], title: str, loss: str,
                best_epoch: int | None = None) -> None:
    """Write :func:`draw_curve` to ``path``."""
    _save(draw_curve(history, title, loss, best_epoch), path)


def draw_ridge(ridge: dict, title: str):
    """Validation MSE over the penalty grid, the chosen penalty marked (``ridge``: the fit's info).

    Returns the matplotlib figure.
    """
    fig, ax = _pyplot().subplots(figsize=(6, 4), dpi=100)
    val_mse = ridge["val_mse"]
    alphas = [float(a) for a in val_mse]
    ax.semilogx(alphas, list(val_mse.values()), "o-")
    chosen = float(ridge["alpha"])
    ax.semilogx([chosen], [val_mse[str(ridge["alpha"])]], "o", markersize=12, markerfacecolor="none",
                markeredgecolor="C3", markeredgewidth=2, label=f"chosen: {chosen:g}")
    ax.legend()
    ax.set_xlabel("relative ridge penalty (log scale)")
    # without a validation part the grid's figures are training errors (and the smallest penalty wins)
    ax.set_ylabel("validation MSE (dB²)" if ridge.get("validated", True) else "training MSE (dB²)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def _plot_ridge(path: Path, ridge: dict, title: str) -> None:
    """Write :func:`draw_ridge` to ``path``."""
    _save(draw_ridge(ridge, title), path)


def curve_title(config: TrainConfig, loss: str | None = None) -> str:
    """The training figure's title: model, data folder, split and the loss trained on (the one the y axis
    is labelled by). It named no data, so two runs' curves read alike."""
    from eegmusic.offline_training.report import data_name

    return (f"{config.model} on {data_name(config.data)} ({config.split} split"
            + (f", {loss} loss)" if loss else ")"))


# ---- the run ----------------------------------------------------------------------------------------
TRAINING_LOOPS = {
    "regression": "eegmusic.offline_training.loop_regression:fit_regression",
    "closed_form": "eegmusic.offline_training.loop_regression:fit_closed_form",
    "gan": "eegmusic.offline_training.loop_gan:fit_gan",
    "diffusion": "eegmusic.offline_training.loop_diffusion:fit_diffusion",
    "ensemble": "eegmusic.offline_training.loop_ensemble:fit_ensemble",
}
"""A model's ``training_loop`` name → the function that trains it (``module:function``, imported when
used). Every loop takes ``(model, dataset, split, config, dist_info, device, out, state)`` and returns
its result dict with the best ``model``; models name their loop and never import it."""


def validate_on_excerpt(dataset, split, val_data, *, allow_short_stimulus: bool = False):
    """The dataset with the windows of ``val_data`` (a folder) appended, and the split validating on them.

    The later excerpt's windows of the (song, listener) pairs in the split's validation part (every pair
    for ``block``, the validation listeners for ``subject``, the validation song for ``song``) become
    the validation part; training and test rows are unchanged (:attr:`TrainConfig.val_data`).

    Raises
    ------
    ConfigError
        The later excerpt has none of those (song, listener) pairs.
    """
    from dataclasses import replace

    from eegmusic.offline_training.dataset import EXCERPT_SONG_KEY, WindowDataset
    from eegmusic.replay.dataset import open_dataset

    pairs = {(int(e["song"]), int(e["subject"])) for e in dataset.index[split.val]}
    songs = sorted({song for song, _ in pairs} & set(open_dataset(val_data).song_ids))
    rows = np.empty(0, dtype=np.int64)
    if songs:
        later = WindowDataset(val_data, songs=songs, hop_s=dataset.hop_s, spec=dataset.spec,
                              target_offset_s=dataset.target_offset_s,
                              allow_short_stimulus=allow_short_stimulus)
        dataset, rows = dataset.with_excerpt(later)
        entries = dataset.index[rows]
        rows = rows[[(int(song) - EXCERPT_SONG_KEY, int(subject)) in pairs
                     for song, subject in zip(entries["song"], entries["subject"], strict=True)]]
    if not len(rows):
        wanted = sorted({song for song, _ in pairs})
        names = ", ".join(sorted({dataset.subjects[k] for _, k in pairs})[:4])
        raise ConfigError(f"--val-data {val_data} has no windows of the validation part's songs "
                          f"{wanted} heard by {names}; pass a later excerpt of the same songs and listeners")
    logger.info("validation on %d windows of the excerpt %s (instead of %d of the split)",
                len(rows), val_data, len(split.val))
    return dataset, replace(split, val=np.asarray(rows, dtype=np.int64))


def _check_training_windows(config: TrainConfig, dataset, split, world: int) -> None:
    """Refuse a split that leaves fewer than 2 training windows per process, before any fitting."""
    from eegmusic.offline_training.splits import MIN_TRAIN_WINDOWS

    need = MIN_TRAIN_WINDOWS * world
    if len(split.train) >= need:
        return
    n_train, n_all = len(split.train), len(dataset.index)
    per_process = f" ({MIN_TRAIN_WINDOWS} for each of {world} processes)" if world > 1 else ""
    fix = "record longer, or add songs or listeners" + (", or start fewer processes" if world > 1 else "")
    raise ConfigError(f"{config.data} gives only {n_all} windows of 1 s and --split {config.split} keeps "
                      f"{n_train} of them for training (the others are held out); train needs at least "
                      f"{need}{per_process}: {fix}")


def training_loop(model):
    """The training function of ``model`` (from its class's ``training_loop`` name)."""
    name = type(model).training_loop
    if name not in TRAINING_LOOPS:
        raise ConfigError(f"model '{model.name}' names an unknown training loop '{name}'; use one of "
                          f"{', '.join(TRAINING_LOOPS)}")
    module, function = TRAINING_LOOPS[name].split(":")
    return getattr(importlib.import_module(module), function)


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
    OutputError
        Another eegmusic process is writing ``config.out``; a full disk (the files of the final stage
        replace an earlier set only together, so the run can be finished or rerun: :func:`_finishing`).
    """
    from eegmusic.offline_training.distributed import launched_as_main
    from eegmusic.stream.atomic import output_lock

    # one run at a time in a folder (two started together mixed their files); under torchrun the
    # process of rank 0 holds it for all
    with output_lock(config.out, "train") if launched_as_main() else contextlib.nullcontext():
        try:
            return _train(config, resume=resume)
        except (MemoryError, RuntimeError) as error:
            if not _out_of_memory(error):
                raise
            # where: the data, the model or a batch (the size check counts weights, not activations)
            raise ConfigError(f"training ran out of memory ({detail(error)}); pass a smaller --batch-size, "
                              "smaller --arch-config values or fewer --songs/--subjects, or free memory"
                              ) from error


OUT_OF_MEMORY_WORDS = ("can't allocate memory", "out of memory", "ALLOC_FAILED",
                       "could not create a primitive")
"""How torch's allocators say that an allocation failed in a RuntimeError: the CPU allocator under ``ulimit
-v`` (a traceback in the backward pass of a model the size check let through), CUDA and cuBLAS, and oneDNN,
whose convolution could not set itself up under the same limit (``F.conv1d``: "could not create a
primitive", a traceback in one run of the suite's out-of-memory test where the allocator failed in others;
its primitives exist for every shape torch's checks let through, so memory is what it lacked)."""


def _out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed (:data:`OUT_OF_MEMORY_WORDS`, Python's MemoryError)."""
    torch = sys.modules.get("torch")   # not imported here: a MemoryError importing it would raise again
    out_of_memory = getattr(torch, "OutOfMemoryError", MemoryError)
    return isinstance(error, MemoryError | out_of_memory) or any(w in str(error) for w in OUT_OF_MEMORY_WORDS)


IGNORED_EPOCH_OPTIONS = {
    "closed_form": ("is fitted in one closed-form step", ("loss", "augment", "lr")),
    "gan": ("trains with its own adversarial and spectral losses on unaugmented windows",
            ("loss", "augment")),
    "diffusion": ("trains with its own denoising loss on unaugmented windows", ("loss", "augment")),
}
"""Training loops that read none or only some of ``loss``, ``augment`` and ``lr``: why, and those they do
not read (ensemble members train in the regression loop, which reads all three)."""


def _epoch_options_used(config: TrainConfig) -> dict:
    """Whether the model's training reads ``loss``, ``augment`` and ``lr`` (option → bool).

    A model fitted in one closed-form step (ridge) reads none of them, and wavegan and diffusion train
    with their own losses on unaugmented windows (their Adam steps take ``--lr``): ``--arch linear --loss
    l1 --augment …`` fitted the very same ridge and its metrics and metadata recorded the options as used.
    An option given but not read is said to be ignored, and recorded as None. Not refused: a script
    that trains several architectures with one set of options (the demo does) keeps working.
    """
    from eegmusic.offline_training.models.registry import ALL_MODELS

    used = {"loss": True, "augment": True, "lr": True}
    if config.init or ALL_MODELS[config.model].training_loop not in IGNORED_EPOCH_OPTIONS:
        return used
    why, ignored = IGNORED_EPOCH_OPTIONS[ALL_MODELS[config.model].training_loop]
    given = [f"--{name}" for name, on in (("loss", config.loss != "mse"), ("augment", bool(config.augment)),
                                          ("lr", config.lr is not None)) if on and name in ignored]
    if given:
        logger.warning("--arch %s %s and does not use %s: ignored, and recorded as not used", config.model,
                       why, " ".join(given))
    return {name: name not in ignored for name in used}


def _train(config: TrainConfig, *, resume: bool) -> dict:
    """:func:`train`, with the run folder held."""
    import torch
    from eegmusic.offline_training.baselines import baseline_mse, targets_trained_on, training_baselines
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.export import build_metadata, export_onnx
    from eegmusic.offline_training.models.registry import build_model, load_weights, read_checkpoint
    from eegmusic.offline_training.splits import make_split

    config.check()
    out = Path(config.out)
    epoch_options = _epoch_options_used(config)
    if resume and config.init:
        raise ConfigError(
            "--resume cannot continue a fine-tuning run (--init): it trains one loop per candidate learning "
            "rate and its checkpoint holds only the last; rerun train --init into a new --out"
        )
    if resume:
        _check_resume(config, out)
    else:
        _refuse_a_used_out(config, out)
    from eegmusic.stream.atomic import check_writable

    check_writable(out)   # /proc, a read-only mount: refused now, not at the first write after the fit
    # the files named are read before the data, so that a bad one is refused in seconds, not after the
    # data and the target lag's ridge fits
    pretrained = _read_init(config) if config.init else None
    config.check_batch_size()  # with --init, the architecture is known only now
    init_offset = _init_target_offset(config, pretrained) if config.init else None
    # the offset wanted: with --init of a model placing frames by it, the pretrained model's (not chosen)
    wanted_offset = config.target_offset_s if init_offset is None else init_offset
    state = read_checkpoint(out / "checkpoint.pt", model_name=config.model) if resume else None
    if state is not None:
        _refuse_fewer_epochs(config, out, state)
    device_kind = resolve_device(config.device)
    dist_info = init_distributed(device_kind)
    device = torch.device(f"cuda:{dist_info.local_rank}" if device_kind == "cuda" else "cpu")
    if not dist_info.main:  # one process reports; the others only warn
        logging.getLogger("eegmusic.offline_training").setLevel(logging.WARNING)
    if device_kind == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(config.seed)

    dataset = WindowDataset(
        config.data,
        # a song listed twice is read once, as a listener listed twice is (the dataset de-duplicates those)
        songs=None if config.songs is None else list(dict.fromkeys(int(song) for song in config.songs)),
        subjects=config.subjects,
        hop_s=config.hop_s,
        spec=PreprocessingSpec(),
        target_offset_s=0.0 if wanted_offset == "auto" else wanted_offset,
        allow_short_stimulus=config.allow_short_stimulus,
    )
    split = make_split(dataset.index, config.split, seed=config.seed, hop_s=config.hop_s, music=dataset.music)
    _check_training_windows(config, dataset, split, dist_info.world)
    if config.val_data:
        dataset, split = validate_on_excerpt(dataset, split, config.val_data,
                                             allow_short_stimulus=config.allow_short_stimulus)
    lag_choice = None
    if wanted_offset == "auto":  # chosen on training + validation rows only
        from eegmusic.offline_training.target_lag import choose_target_offset

        lag_choice = choose_target_offset(dataset, split, seed=config.seed, progress=config.progress,
                                          fallback_s=config.target_offset_fallback_s, split_kind=config.split)
        dataset = dataset.with_target_offset(lag_choice.offset_s)
    offset_choice = None if lag_choice is None else lag_choice.to_dict()
    if init_offset is not None and config.target_offset_s == "auto":  # taken, not chosen: say so
        offset_choice = {"chosen_s": init_offset, "method": f"the offset --init {config.init} was trained at "
                         "(fine-tuning keeps it)", "validation_dynamic_r": {}, "n_fit_windows": 0,
                         "n_val_windows": 0}
    target_offset_s = dataset.target_offset_s
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
    if config.model in OFFSET_MODELS:
        model_kwargs.setdefault("target_offset_s", target_offset_s)
    original = None  # a pretrained model's own statistics, a candidate start of fine-tuning
    if config.init:  # adapt a pretrained model to this listener (and montage)
        from eegmusic.offline_training.finetune import start_model
        from eegmusic.offline_training.loop import weights

        model, with_statistics = start_model(pretrained, dataset)
        original = weights(model) if with_statistics else None   # config.model: set by _read_init
    else:
        model = build_configured(config.model, model_kwargs, config.model_config)

    if resume:
        _refuse_another_shape(config, out, state, model)
        load_weights(model, state["state_dict"], out / "checkpoint.pt")
    else:
        rng = np.random.default_rng(config.seed)
        sample = np.sort(
            rng.choice(split.train, size=min(config.stats_windows, len(split.train)), replace=False)
        )
        model.fit_stats(dataset.eeg(sample), dataset.mel(sample))
    model.to(device)
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
        saved = config_dict(config)
        # the input folders as absolute paths too: --resume from another working directory compares these
        saved["resolved"] = {key: str(Path(saved[key]).resolve())
                             for key in ("data", "val_data") if saved[key]}
        write_text(out / "config.json", json.dumps(saved, indent=2) + "\n")

    started = time.perf_counter()
    if config.init:  # candidate recipes chosen on a held-out track (offline_training.finetune_fit)
        from eegmusic.offline_training.finetune_fit import fit_finetune

        result = fit_finetune(training_loop(model), model, dataset, split, config, dist_info, device, out,
                              original=original)
    else:
        result = training_loop(model)(model, dataset, split, config, dist_info, device, out, state)
    best_model = result["model"]
    unseen = None
    if config.unseen_song_check:  # the same recipe without one training song, scored on that song
        from eegmusic.offline_training.unseen_song import unseen_song_score

        def fit_fold(fold_split, fold_data):
            from eegmusic.stream.atomic import temporary_directory

            fold_kwargs = dict(model_kwargs)
            if config.model in OFFSET_MODELS:
                fold_kwargs["target_offset_s"] = fold_data.target_offset_s
            fold_model = build_model(config.model, **fold_kwargs)
            rows = np.sort(np.random.default_rng(config.seed).choice(
                fold_split.train, size=min(config.stats_windows, len(fold_split.train)), replace=False))
            fold_model.fit_stats(fold_data.eeg(rows), fold_data.mel(rows))
            with temporary_directory("eegmusic-fold-") as fold_out:  # its checkpoints are not the run's
                fitted = training_loop(fold_model)(fold_model.to(device), fold_data, fold_split, config,
                                                   dist_info, device, Path(fold_out), None)["model"]
            return copy.deepcopy(fitted).cpu()

        def choose_fold_offset(fold_split):  # as the run chose its own, on the fold's rows alone
            from eegmusic.offline_training.target_lag import choose_target_offset

            return choose_target_offset(dataset, fold_split, seed=config.seed, progress=config.progress,
                                        split_kind=config.split)

        # a measured lag is measured again without the held-out song; a given or fallback one is kept
        measured = lag_choice is not None and lag_choice.fallback is None
        unseen = unseen_song_score(fit_fold, dataset, split, seed=config.seed,
                                   choose_offset=choose_fold_offset if measured else None)

    # a loss the model did not train on is not its validation loss: MSE then (evaluate_mel's "mse")
    loss_name = config.loss if epoch_options["loss"] else "mse"
    summed = loss_name in ("mse", "l1")  # evaluate_mel knows these; a Pearson loss is over all windows
    val = evaluate_mel(best_model, dataset, split.val, config.batch_size, device,
                       loss_name if summed else "mse", dist_info)
    if not summed:
        from eegmusic.offline_training.loop_regression import validation_loss

        val["loss"] = validation_loss(best_model, dataset, split.val, config, device, dist_info)["loss"]
    test = evaluate_mel(best_model, dataset, split.test, config.batch_size, device,
                        loss_name if summed else "mse", dist_info)
    metrics = {
        "model": config.model,
        "split": config.split,
        "loss": config.loss if epoch_options["loss"] else None,
        "target_offset_s": target_offset_s,
        "target_offset_choice": offset_choice,
        "n_windows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "processes": dist_info.world,
        "device": device_kind,
        "val_mse": val["mse"],
        "test_mse": test["mse"],
        # beside the model's test MSE, on the same windows: the training part's mean windows, and how
        # many test targets the model trained on (random, subject: the split holds out no music)
        "test_baselines_mse": baseline_mse(dataset, split.train, split.test),
        "test_targets_trained_on": targets_trained_on(dataset, split.train, split.test),
        "val_loss": val["loss"],
        "seconds": time.perf_counter() - started - (unseen or {}).get("seconds", 0.0),
        "unseen_song": unseen,
        **{k: v for k, v in result.items() if k != "model"},
    }
    if dist_info.main:
        # the final files go into a hidden folder and replace an earlier set together: an interrupt or a
        # failure here (a full disk at the export) leaves a resumed run's earlier model whole, and a new
        # run's folder that of a run stopped after its last epoch, which --resume finishes or a rerun starts
        with _finishing(config, out, resume=resume) as (stage, full_disk):
            cpu_model = copy.deepcopy(best_model).cpu()
            save_checkpoint(
                stage / "best.pt",
                {
                    "model": config.model,
                    "model_config": cpu_model.get_config(),
                    "state_dict": cpu_model.state_dict(),
                    "train_config": config_dict(config),
                    "epoch": metrics.get("best_epoch", 0),
                    "subjects": dataset.subjects,
                },
            )
            from eegmusic.decoder.modelfile import RESAMPLER

            training = {
                "data": str(Path(config.data).resolve()),
                "songs": dataset.songs,
                "subjects": dataset.subjects,
                "split": config.split,
                "seed": config.seed,
                "epochs": metrics.get("epochs_run", 0),
                "hop_s": config.hop_s,
                "epoch_fraction": config.epoch_fraction,
                "loss": config.loss if epoch_options["loss"] else None,
                "augment": config.augment if epoch_options["augment"] else None,
                "ema": config.ema,
                "select_by": config.select_by,
                "split_by": "music",   # block, subject-block and song hold out music (splits.MUSIC_SPLITS)
                # EEG above 125 Hz resampled with its delay compensated (decoder.modelfile.resampler_note)
                "resampler": RESAMPLER,
                "best_epoch": metrics.get("best_epoch", 0),
            }
            if config.val_data:
                training["val_data"] = str(Path(config.val_data).resolve())
            if offset_choice is not None:
                training["target_offset"] = offset_choice
            if unseen is not None:
                training["unseen_song_check"] = unseen
            metadata = build_metadata(
                cpu_model,
                spec=dataset.spec,
                target_offset_s=target_offset_s,
                subjects=dataset.subjects,
                training=training,
                evaluation={"val_mse": val["mse"], "test_mse": test["mse"]},
                positions=(None if getattr(dataset, "positions", None) is None
                           else dict(zip(dataset.channels, dataset.positions, strict=True))),
            )
            metadata["baselines"] = training_baselines(dataset, split.train)
            export_onnx(cpu_model, stage / "model.onnx", metadata, full_disk=full_disk,
                        shown_as=out / "model.onnx")
            if metrics.get("history"):
                _plot_curve(stage / "training_curve.png", metrics["history"],
                            curve_title(config, loss_name), loss_name, metrics.get("best_epoch"))
            elif "ridge" in metrics:   # closed form: no loss was trained on
                _plot_ridge(stage / "training_curve.png", metrics["ridge"], curve_title(config))
            # where each file will be once the set is in place (config.json and checkpoint.pt are there)
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
                if (stage / name if name in FINISHED_SET else out / name).exists() or name == "metrics.json"
            }
            write_text(stage / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    leave_distributed(dist_info)  # before the process exits: see its docstring
    return metrics
