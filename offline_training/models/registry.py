"""Model names → classes, building models from configs, and loading training checkpoints.

Every model in :data:`MODELS` keeps the :class:`~offline_training.models.base.MelDecoder` contract, so
one parametrised test trains, exports and checks each of them.
"""

from __future__ import annotations

from pathlib import Path

from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.offline_training.models.cnn import CNN
from eegmusic.offline_training.models.convnet import ConvNet
from eegmusic.offline_training.models.diffusion import Diffusion
from eegmusic.offline_training.models.encdec import EncDec
from eegmusic.offline_training.models.linear import Linear
from eegmusic.offline_training.models.rcnn import RCNN
from eegmusic.offline_training.models.transformer import Transformer
from eegmusic.offline_training.models.wavegan import WaveGAN
from eegmusic.stream.errors import ConfigError, ModelError

MODELS: dict[str, type[MelDecoder]] = {
    cls.name: cls for cls in (Linear, CNN, RCNN, EncDec, Transformer, ConvNet)
}
"""Registry: model name → class."""

GENERATIVE_MODELS: dict[str, type[MelDecoder]] = {cls.name: cls for cls in (WaveGAN, Diffusion)}
"""Generative decoders with their own training loop (``fit_run``: adversarial, diffusion); kept out of
:data:`MODELS`, whose every entry the regression tests and benchmarks train with the plain loop."""

ALL_MODELS: dict[str, type[MelDecoder]] = {**MODELS, **GENERATIVE_MODELS}
"""Every name ``eegmusic train`` accepts."""


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


def read_checkpoint(path, *, model_name: str | None = None) -> dict:
    """Read a training checkpoint's content (weights, configs, optimizer state, ...), checked.

    Raises
    ------
    ModelError
        Missing or unreadable file, not an eegmusic checkpoint, or a checkpoint of another model
        than ``model_name``.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} not found; pass a run's checkpoint.pt or best.pt")
    try:
        content = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ModelError(
            f"checkpoint {path} is unreadable ({type(error).__name__}); retrain the model"
        ) from error
    if not isinstance(content, dict) or "model" not in content or "state_dict" not in content:
        raise ModelError(
            f"{path} is not an eegmusic checkpoint (no model/state_dict); pass a run's checkpoint.pt"
        )
    name = content["model"]
    if model_name is not None and name != model_name:
        raise ModelError(
            f"checkpoint {path} holds a '{name}' model, not '{model_name}'; use --model {name} or another run"
        )
    if name not in MODELS:
        raise ModelError(f"checkpoint {path} holds unknown model '{name}'; known: {', '.join(MODELS)}")
    return content


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
    model = MODELS[content["model"]].from_config(content["model_config"])
    model.load_state_dict(content["state_dict"])
    model.eval()
    config = {k: v for k, v in content.items() if k not in ("state_dict", "optimizer", "best_state")}
    return model, config
