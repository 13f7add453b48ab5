"""Adapt a pretrained decoder to a new listener: ``eegmusic train --data SESSION.xdf --init RUN/model.onnx``.

Fine-tuning starts from the pretrained weights instead of random ones, then runs the ordinary
training loop (Adam with early stopping on the validation part of the new listener's data) at a
lower default learning rate (:data:`FINETUNE_LR_FACTOR` × the model's). Before the first step the
model's normalisation (EEG scaling, mean and SD of the mel bands) is refitted on the new listener's
training windows, as for any run: amplitude and montage differ between people and caps.

Same montage (the data's channel labels are the pretrained model's, in order): the weights load as
they are. Another montage: an input layer (:class:`ChannelAdapter`, a learned linear map from the
new channels to the pretrained model's channels) is put in front of the pretrained model. It starts
as the spherical-spline interpolation from the new electrodes' positions to the pretrained ones
(:func:`stream.interpolation.spline_matrix`; positions from the data, else the standard montages),
so before any training it is what the live path's interpolation would feed the old model, and it is
learned with the rest. Only mel decoders trained by gradient can be adapted; a closed-form ``linear``
model, a waveform decoder, or an output shape other than the data's (128 mel bands × 44 frames)
is refused with one line.

``--init`` takes a run's ``model.onnx`` (its weights are read from ``best.pt`` beside it; its
channels and positions from its metadata) or a ``best.pt``/``checkpoint.pt`` (channels from the
``model.onnx`` beside it, else NMED-T's for a 125-channel model).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from eegmusic.offline_training.models.base import N_FRAMES, N_MELS, MelDecoder
from eegmusic.stream.errors import ModelError
from torch import nn

logger = logging.getLogger(__name__)

FINETUNE_LR_FACTOR = 0.3
"""Default fine-tuning learning rate as a fraction of the model's ``default_lr``."""


@dataclass
class Pretrained:
    """A pretrained decoder and the channels it reads.

    Attributes
    ----------
    model : MelDecoder
    channels : list of str
    positions : ndarray, shape (n_chans, 3), or None
        Head-frame positions in metres when the model file states them.
    source : Path
    """

    model: MelDecoder
    channels: list
    positions: np.ndarray | None
    source: Path


def _onnx_metadata(path: Path) -> dict:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ModelError(
            f"--init {path}: unreadable ONNX file ({type(error).__name__}); pass a model.onnx "
            "written by eegmusic train"
        ) from None
    for prop in proto.metadata_props:
        if prop.key == "eegmusic":
            return json.loads(prop.value)
    raise ModelError(f"--init {path}: no eegmusic metadata; pass a model.onnx written by eegmusic train")


def load_pretrained(path) -> Pretrained:
    """Read ``--init``: a run's ``model.onnx`` (weights from ``best.pt`` beside it) or a checkpoint.

    Raises
    ------
    ModelError
        Missing files, a model file without its weights beside it, or a kind that cannot be adapted.
    """
    from eegmusic.offline_training.models.registry import load_checkpoint
    from eegmusic.stream.spec import MODEL_CHANNELS

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"--init {path}: not found; pass a run's model.onnx or best.pt")
    if path.suffix == ".onnx":
        meta = _onnx_metadata(path)
        weights = path.with_name("best.pt")
        if not weights.is_file():
            raise ModelError(
                f"--init {path}: no best.pt beside it (the ONNX graph holds no trainable weights "
                "eegmusic can load); pass the run folder's model.onnx with its best.pt"
            )
    else:
        weights, onnx_file = path, path.with_name("model.onnx")
        meta = _onnx_metadata(onnx_file) if onnx_file.is_file() else None
    output = (meta or {}).get("output", {})
    if output.get("kind", "mel_db") != "mel_db":
        raise ModelError(
            f"--init {path}: a {output.get('kind')} decoder cannot be adapted (only mel "
            "decoders); train this listener's model from scratch (drop --init)"
        )
    model, _ = load_checkpoint(weights)
    if type(model).training_loop != "regression":
        raise ModelError(
            f"--init {path}: a '{model.name}' model cannot be fine-tuned (it is trained by the "
            f"'{type(model).training_loop}' loop, not by gradient regression); use a mel regression model "
            "(cnn, convnet, ...) or drop --init"
        )
    if (model.n_mels, model.n_frames) != (N_MELS, N_FRAMES):
        raise ModelError(
            f"--init {path}: output {model.n_mels}x{model.n_frames}, the data's targets are "
            f"{N_MELS}x{N_FRAMES} mel frames; use a model of the standard mel output"
        )
    if meta is not None:
        channels = list(meta.get("input", {}).get("channels") or [])
        positions = meta.get("input", {}).get("positions")
    else:
        channels, positions = (list(MODEL_CHANNELS) if model.n_chans == len(MODEL_CHANNELS) else []), None
    if len(channels) != model.n_chans:
        raise ModelError(
            f"--init {path}: the model's {model.n_chans} input channels are not named (no "
            "model.onnx beside the checkpoint); pass the run's model.onnx"
        )
    if isinstance(positions, dict):
        positions = [positions.get(c) for c in channels]
    if positions is not None:
        positions = None if any(p is None for p in positions) else np.asarray(positions, dtype=np.float64)
    return Pretrained(model=model, channels=channels, positions=positions, source=path)


class ChannelAdapter(nn.Module):
    """A learned linear map from the data's channels to a pretrained model's channels.

    Parameters
    ----------
    weights : ndarray, shape (n_model_chans, n_data_chans)
        Initial map (the spline interpolation).
    """

    def __init__(self, weights: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(np.asarray(weights), dtype=torch.float32))

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        """(batch, n_model_chans, n_times) from (batch, n_data_chans, n_times)."""
        return torch.einsum("md,bdt->bmt", self.weight, eeg)


class AdaptedDecoder(MelDecoder):
    """A pretrained decoder behind a :class:`ChannelAdapter`: reads the new montage's channels.

    Parameters
    ----------
    inner_name : str
        Registry name of the pretrained model.
    inner_config : dict
        Its ``get_config()``.
    n_data_chans : int
        Channels of the new montage.
    **kwargs
        :class:`MelDecoder` keywords (``n_chans`` is the new montage's).
    """

    name = "adapted"

    def __init__(self, *, inner_name: str = "convnet", inner_config: dict | None = None, **kwargs):
        from eegmusic.offline_training.models.registry import build_model

        super().__init__(**kwargs)
        self.inner_name, self.inner_config = inner_name, dict(inner_config or {})
        self.inner = build_model(inner_name, **self.inner_config)
        self.adapter = ChannelAdapter(np.zeros((self.inner.n_chans, self.n_chans)))
        self.default_lr = self.inner.default_lr

    def fit_stats(self, eeg: np.ndarray, mel_db: np.ndarray) -> None:
        """Refit the inner model's statistics on the adapted channels."""
        with torch.no_grad():
            mapped = self.adapter(torch.as_tensor(np.asarray(eeg), dtype=torch.float32)).numpy()
        self.inner.fit_stats(mapped, mel_db)

    def decode(self, eeg: torch.Tensor, subject_vec: torch.Tensor | None) -> torch.Tensor:
        """The inner model's standardised output for the new montage's EEG (its statistics apply)."""
        return self.inner.decode(self.adapter(eeg), subject_vec)

    def forward(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Mel-dB (batch, 128, 44) from the new montage's EEG (batch, n_chans, n_times)."""
        return self.inner(self.adapter(eeg), subject)


def _data_positions(dataset) -> np.ndarray:
    from eegmusic.stream.montage import head_positions

    if getattr(dataset, "positions", None) is not None:
        return np.asarray(dataset.positions, dtype=np.float64)
    return head_positions(dataset.channels)


def initial_model(init, dataset) -> MelDecoder:
    """The model a fine-tuning run starts from (pretrained weights, adapted to the data's channels).

    Parameters
    ----------
    init : str or Path
        ``--init``.
    dataset : WindowDataset
        The new listener's windows (``channels``, ``positions``, ``n_chans``).

    Returns
    -------
    model : MelDecoder
        The pretrained model itself (same montage), or an :class:`AdaptedDecoder` around it.
    """
    from eegmusic.stream.interpolation import spline_matrix
    from eegmusic.stream.montage import head_positions, label_key

    pretrained = load_pretrained(init)
    model = pretrained.model
    model.train()
    data_keys = [label_key(c) for c in dataset.channels]
    model_keys = [label_key(c) for c in pretrained.channels]
    if data_keys == model_keys:
        logger.info(
            "fine-tuning %s from %s (same %d channels)", model.name, pretrained.source, len(data_keys)
        )
        return model
    if model.subject_input:
        raise ModelError(
            f"--init {pretrained.source}: a subject-conditioned model cannot be moved to another "
            "montage; use one trained without --subject-conditioning"
        )
    model_pos = (
        pretrained.positions if pretrained.positions is not None else head_positions(pretrained.channels)
    )
    weights = spline_matrix(_data_positions(dataset), model_pos)
    for i, key in enumerate(model_keys):  # an electrode both caps have is copied, not interpolated
        if key in data_keys:
            weights[i] = 0.0
            weights[i, data_keys.index(key)] = 1.0
    adapted = AdaptedDecoder(
        inner_name=model.name,
        inner_config=model.get_config(),
        n_chans=dataset.n_chans,
        n_times=model.n_times,
        sfreq=model.sfreq,
    )
    adapted.inner.load_state_dict(model.state_dict())
    with torch.no_grad():
        adapted.adapter.weight.copy_(torch.tensor(weights, dtype=torch.float32))
    shared = sum(k in data_keys for k in model_keys)
    logger.info(
        "fine-tuning %s from %s through a channel adapter: %d data channels -> %d model channels "
        "(%d shared, the rest spline-interpolated to start)",
        model.name,
        pretrained.source,
        dataset.n_chans,
        len(model_keys),
        shared,
    )
    return adapted


def finetune_lr(model: MelDecoder, lr: float | None) -> float:
    """The learning rate of a fine-tuning run: ``lr`` if given, else a fraction of the model's default."""
    return float(lr) if lr is not None else FINETUNE_LR_FACTOR * float(model.default_lr)
