"""Model names → classes: a light table, building models from configs, and loading training checkpoints.

Every model keeps the :class:`~eegmusic.offline_training.models.base.MelDecoder` contract, so one
parametrised test trains, exports and checks each of them. The table :data:`SPECS` names each model's
class by its import path and is read without importing torch (``train --help`` lists it); a model's
module is imported only when that model is built or its class is asked for.

Adding a model: write ``offline_training/models/mine.py`` (a :class:`MelDecoder` subclass with
``name = "mine"``) and add one line to :data:`SPECS`::

    ModelSpec("mine", "eegmusic.offline_training.models.mine:Mine", "what it does, one line"),
"""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eegmusic.stream.errors import ConfigError, ModelError, detail

if TYPE_CHECKING:
    from eegmusic.offline_training.models.base import MelDecoder


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes
    ----------
    name : str
        What ``train --arch`` takes; equals the class's ``name``.
    target : str
        ``"package.module:Class"``, imported on first use (:meth:`load`).
    summary : str
        One line for ``train --help``.
    generative : bool
        Trained by its own loop (``training_loop`` gan or diffusion) and kept out of :data:`MODELS`,
        whose every entry the regression tests and benchmarks train with the plain loop.
    """

    name: str
    target: str
    summary: str
    generative: bool = False

    def load(self) -> type[MelDecoder]:
        """The model class (its module is imported now, once)."""
        module, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module), class_name)


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("linear", "eegmusic.offline_training.models.linear:Linear", "closed-form ridge"),
    ModelSpec("cnn", "eegmusic.offline_training.models.cnn:CNN", "EEG2Mel periodogram CNN"),
    ModelSpec("rcnn", "eegmusic.offline_training.models.rcnn:RCNN", "convolutions + bidirectional LSTM"),
    ModelSpec("encdec", "eegmusic.offline_training.models.encdec:EncDec", "conv + LSTM encoder-decoder"),
    ModelSpec("transformer", "eegmusic.offline_training.models.transformer:Transformer",
              "encoder over time patches"),
    ModelSpec("convnet", "eegmusic.offline_training.models.convnet:ConvNet", "strided 1-D ConvNet, raw EEG"),
    ModelSpec("sourcenet", "eegmusic.offline_training.models.sourcenet:SourceNet",
              "spatial source filters, temporal responses"),
    ModelSpec("ensemble", "eegmusic.offline_training.models.ensemble:Ensemble",
              "weighted mean of members (ridge + sourcenet seeds)"),
    ModelSpec("wavegan", "eegmusic.offline_training.models.wavegan:WaveGAN",
              "EEG -> waveform, adversarial", generative=True),
    ModelSpec("diffusion", "eegmusic.offline_training.models.diffusion:Diffusion",
              "mel prior + EEG adapter", generative=True),
)
"""The registry: one line per model."""


class ModelClasses(Mapping):
    """Name → model class over some :data:`SPECS`; a class is imported when it is looked up.

    Names, ``len`` and ``in`` read the table only; ``[name]``, ``values()`` and ``items()`` import.
    """

    def __init__(self, specs):
        self.specs: dict[str, ModelSpec] = {spec.name: spec for spec in specs}

    def __getitem__(self, name: str) -> type[MelDecoder]:
        return self.specs[name].load()

    def __contains__(self, name) -> bool:
        return name in self.specs

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)


MODELS = ModelClasses(spec for spec in SPECS if not spec.generative)
"""Regression decoders (the regression, closed-form or ensemble loop): name → class."""

GENERATIVE_MODELS = ModelClasses(spec for spec in SPECS if spec.generative)
"""Generative decoders with their own training loop (``training_loop``: gan, diffusion)."""

ALL_MODELS = ModelClasses(SPECS)
"""Every name ``eegmusic train`` accepts."""


def architectures_help(width: int = 104) -> str:
    """The ``train --help`` lines listing every model with its summary, read from :data:`SPECS` only."""
    def listing(title: str, specs) -> str:
        text = f"{title}: " + ", ".join(f"{spec.name} ({spec.summary})" for spec in specs)
        return textwrap.fill(text, width=width, subsequent_indent="  ", break_on_hyphens=False)

    return "\n".join([listing("architectures", (s for s in SPECS if not s.generative)),
                      listing("generative (docs/generative.md)", (s for s in SPECS if s.generative))])


def build_model(name: str, **config) -> MelDecoder:
    """Build a registry model by name.

    Parameters
    ----------
    name : str
        One of :data:`ALL_MODELS`.
    **config
        Constructor keywords (shared contract and model hyper-parameters).

    Raises
    ------
    ConfigError
        Unknown model name or bad hyper-parameter.
    """
    if name not in ALL_MODELS:
        raise ConfigError(f"unknown model '{name}'; use one of {', '.join(ALL_MODELS)}")
    try:
        return ALL_MODELS[name](**config)
    except TypeError as error:
        raise ConfigError(f"bad configuration for model '{name}': {error}") from error


def plain_values(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and tensors (recursively).

    Checkpoints are read with ``torch.load(weights_only=True)``, which accepts tensors, dicts, lists,
    tuples and Python scalars only; every checkpoint writer passes its content through this first.
    """
    import numpy as np
    import torch

    if isinstance(value, dict):
        return {key: plain_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain_values(item) for item in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def _numpy_scalar_globals() -> list:
    """The numpy names a pickled numpy scalar needs: data constructors only, nothing that runs code.

    Checkpoints written before :func:`plain_values` hold numpy float scalars (losses in ``history``).
    """
    import numpy as np

    names = [np.dtype, *(type(np.dtype(kind)) for kind in ("f4", "f8", "i4", "i8", "b1"))]
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
    scalar = core.multiarray.scalar
    return [scalar, *names]


def _failed_checksum(path: Path) -> str | None:
    """The first record of torch's zip archive ``path`` whose CRC does not match its bytes, or None (also
    where the archive cannot be read as zip: ``torch.load`` then says why)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except Exception:  # noqa: BLE001 - a truncated or foreign file: torch.load's message names it
        return None


def read_checkpoint(path, *, model_name: str | None = None) -> dict:
    """Read a training checkpoint's content (weights, configs, optimizer state, ...), checked.

    The file is read with ``torch.load(weights_only=True)``: tensors, containers and plain values
    only. A pickle that names any other Python object (a function, a class: what a crafted file
    needs to run code) is refused before anything of it runs.

    Raises
    ------
    ModelError
        Missing or unreadable file, a file holding more than weights and plain values, not an eegmusic
        checkpoint, or a checkpoint of another model than ``model_name``.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} not found; pass a run's checkpoint.pt or best.pt")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):   # torch's zip, or its legacy pickle
        # an audio file or a model.onnx passed as --init was "unreadable (IndexError); retrain the model"
        what = ("it is empty" if not head else "it is an audio file" if head == b"RIFF"
                else "it is no file torch.save writes")
        raise ModelError(f"checkpoint {path} is unreadable: {what}; pass a run's best.pt or checkpoint.pt "
                         "(eegmusic train writes them), or retrain if it was one")
    damaged = _failed_checksum(path) if head.startswith(b"PK") else None
    if damaged:   # torch.load reads damaged tensor bytes as they are: a resume trained on to NaN, exit 0
        raise ModelError(f"checkpoint {path} is damaged ({damaged} fails its checksum); use the run's other "
                         "checkpoint (best.pt or checkpoint.pt), or retrain")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = str(error).split("WeightsUnpickler error:")[-1].strip().split(".")[0].splitlines()[0]
        if "global" not in str(error).lower():  # names no code to run: plain junk or a truncated file
            raise ModelError(
                f"checkpoint {path} is unreadable ({detail[:80]}); retrain the model"
            ) from None
        raise ModelError(
            f"checkpoint {path} holds more than weights and plain values ({detail[:120]}); it was not "
            "loaded because it could run code: use a checkpoint written by eegmusic train, or retrain"
        ) from None
    except Exception as error:
        raise ModelError(
            f"checkpoint {path} is unreadable ({type(error).__name__}); retrain the model"
        ) from None
    if not isinstance(content, dict) or "model" not in content or "state_dict" not in content:
        raise ModelError(
            f"{path} is not an eegmusic checkpoint (no model/state_dict); pass a run's checkpoint.pt"
        )
    name = content["model"]
    if not isinstance(name, str):
        raise ModelError(f"checkpoint {path} names its model with a {type(name).__name__}, not a string; "
                         "use a checkpoint written by eegmusic train")
    if model_name is not None and name != model_name:
        raise ModelError(
            f"checkpoint {path} holds a '{name}' model, not '{model_name}'; use --arch {name} or another run"
        )
    if name not in ALL_MODELS:
        raise ModelError(f"checkpoint {path} holds unknown model '{name}'; known: {', '.join(ALL_MODELS)}")
    if not isinstance(content["state_dict"], dict) or not isinstance(content.get("model_config", {}), dict):
        raise ModelError(f"checkpoint {path} has a malformed state_dict or model_config; retrain the model")
    return content


def rebuild(cls, config: dict, where: str, fix: str):
    """``cls.from_config(config)`` of a stored configuration (a checkpoint's, a model file's), a value the
    model cannot take one line: ``{where}: bad configuration of its '<name>' model (...); {fix}``. torch's
    words are cut to their first line (a size of 1e20 carried a 1.4-kB C++ stack after it)."""
    try:
        return cls.from_config(config)
    # torch: RuntimeError on a negative size; int() of an infinite size: OverflowError
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise ModelError(f"{where}: bad configuration of its '{cls.name}' model ({detail(error)}); {fix}"
                         ) from None


def load_weights(model, state_dict: dict, path) -> None:
    """``model.load_state_dict(state_dict)``, a checkpoint's weights that do not fit the model (a tensor of
    another shape, a missing or unknown key: torch's RuntimeError, a traceback) one line naming ``path``."""
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError, ValueError, KeyError) as error:
        raise ModelError(f"checkpoint {path} holds weights that do not fit its model ({detail(error)}); use "
                         "a checkpoint written by eegmusic train, or retrain") from None


def load_checkpoint(path, *, model_name: str | None = None):
    """Load a training checkpoint (``checkpoint.pt`` / ``best.pt`` of a run).

    Parameters
    ----------
    path : str or Path
    model_name : str, optional
        Expected model name; a checkpoint of another model raises :class:`ModelError`.

    Returns
    -------
    model : MelDecoder
        With the checkpoint's weights, in eval mode.
    config : dict
        The checkpoint's content besides the weights: ``model`` (name), ``model_config``,
        ``train_config``, ``epoch``, ...
    """
    content = read_checkpoint(path, model_name=model_name)
    model = rebuild(ALL_MODELS[content["model"]], content["model_config"], f"checkpoint {path}",
                    "use a checkpoint written by eegmusic train, or retrain")
    load_weights(model, content["state_dict"], path)
    model.eval()
    config = {k: v for k, v in content.items() if k not in ("state_dict", "optimizer", "best_state", "best")}
    return model, config
