"""Adapt a pretrained decoder to a new listener: ``eegmusic train --data SESSION.xdf --init RUN/model.onnx``.

Fine-tuning starts from the pretrained weights instead of random ones. Which normalisation it
starts with (the pretrained model's own, or one refitted on the new listener), which recipe it trains
with, and how far it moves from the start are chosen on calibration music the candidates did not train
on; the chosen recipe is then trained on every calibration track
(:func:`offline_training.finetune_fit.fit_finetune`, which says why each step is as it is). ``--lr``
fixes the learning rate. Test windows play no part; every score is in ``metrics.json`` (``finetune``).

Same montage (the data's channel labels are the pretrained model's, in order): the weights load as
they are. Another montage: an input layer (:class:`ChannelAdapter`, a learned linear map from the
new channels to the pretrained model's channels) is put in front of the pretrained model. It starts
as the spherical-spline interpolation from the new electrodes' positions to the pretrained ones
(:func:`stream.interpolation.spline_matrix`; positions from the data, else the standard montages),
so before any training it is what the live path's interpolation would feed the old model, and it is
learned with the rest. Only mel decoders trained by gradient can be adapted; a closed-form ``linear``
model, a waveform decoder, or an output shape other than the data's (128 mel bands × 44 frames)
is refused with one line.

``--init`` takes a model file (``model.onnx``: architecture, channels and positions from its
metadata; weights from the run's ``best.pt`` when it lies beside the file and holds the same model,
else read from the file's initializers by name, :func:`onnx_weights`, so the file alone is enough) or
a run's ``best.pt``/``checkpoint.pt`` (channels from the ``model.onnx`` beside it, else NMED-T's for a
125-channel model). A fine-tuning run cannot be ``--resume``d: its checkpoint holds only the last of
its loops (one line says so).

This module reads ``--init`` and builds the start; the loop is :mod:`offline_training.finetune_fit`,
its tools :mod:`offline_training.finetune_recipe`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from eegmusic.offline_training.models.base import N_FRAMES, N_MELS, MelDecoder
from eegmusic.stream.errors import EEGMusicError, ModelError, read_json
from torch import nn

logger = logging.getLogger(__name__)


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
    statistics : bool
        Whether the model's normalisation (EEG scaling, mel mean and SD) is the pretrained one: False
        when the weights came from an ONNX graph whose exporter folded those buffers into constants.
    weights_from : str
        Where the weights were read, logged when fine-tuning starts (:func:`start_model`): ``train``
        reads ``--init`` before the data, and a refusal in between is one line, with no log line before it.
    """

    model: MelDecoder
    channels: list
    positions: np.ndarray | None
    source: Path
    statistics: bool = True
    weights_from: str = ""


def _read_onnx(path: Path):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ModelError(
            f"--init {path}: unreadable ONNX file ({type(error).__name__}); pass a model.onnx "
            "written by eegmusic train"
        ) from None


def _onnx_metadata(proto, path: Path) -> dict:
    for prop in proto.metadata_props:
        if prop.key == "eegmusic":
            if isinstance(prop.value, bytes):   # protobuf hands back the bytes of a string that is no UTF-8
                raise ModelError(f"--init {path} holds metadata that is not UTF-8 text, so it is damaged; "
                                 "export it again with eegmusic train")
            try:
                meta = read_json(prop.value)
            except json.JSONDecodeError:
                meta = None
            if isinstance(meta, dict):
                return meta
    raise ModelError(f"--init {path}: no eegmusic metadata; pass a model.onnx written by eegmusic train")


def _build(name, config: dict, path: Path) -> MelDecoder:
    """A model of registry name ``name`` (or an :class:`AdaptedDecoder`, a :class:`BlendedDecoder`) from
    its ``get_config()``."""
    from eegmusic.offline_training.models.registry import ALL_MODELS, rebuild

    wrappers = {AdaptedDecoder.name: AdaptedDecoder, BlendedDecoder.name: BlendedDecoder}
    cls = wrappers.get(name, ALL_MODELS.get(name))
    if cls is None:
        raise ModelError(
            f"--init {path}: model '{name}' is not one eegmusic knows ({', '.join(ALL_MODELS)}); pass a "
            "model written by eegmusic train"
        )
    if not isinstance(config, dict):
        raise ModelError(f"--init {path}: the configuration of its '{name}' model is a "
                         f"{type(config).__name__}, not a JSON object; pass a model written by eegmusic "
                         "train")
    return rebuild(cls, config, f"--init {path}", "retrain it")


def onnx_weights(model: MelDecoder, path: Path, proto) -> bool:
    """Load ``model``'s weights from the ONNX graph's initializers, matched by state-dict name.

    Every trainable parameter and batch-norm running statistic must be found with its shape. Buffers
    the exporter folded into constants (the EEG scaling, the mel mean and SD) are not needed: a
    fine-tuning run refits them on the new listener's data before the first step.

    Parameters
    ----------
    model : MelDecoder
        Built from the file's metadata; its state is overwritten.
    path : Path
        The file (for messages).
    proto : onnx.ModelProto

    Returns
    -------
    bool
        True when every statistic was read too (the graph holds them under their names).

    Raises
    ------
    ModelError
        A weight the graph does not hold under its name (one line naming it).
    """
    from onnx import numpy_helper

    stored = {init.name: init for init in proto.graph.initializer}
    trainable = {name for name, _ in model.named_parameters()}
    state = model.state_dict()
    refitted = []
    for key, value in state.items():
        init = stored.get(key)
        array = None if init is None else numpy_helper.to_array(init)
        if array is not None and tuple(array.shape) == tuple(value.shape):
            state[key] = torch.as_tensor(np.array(array), dtype=value.dtype)
        elif key in trainable or key.endswith(("running_mean", "running_var")):
            how = ("stored it in ONNX's LSTM layout" if re.search(r"(weight|bias)_(ih|hh)_l\d", key)
                   else "folded it")
            raise ModelError(
                f"--init {path}: its graph holds no weight '{key}' of shape {tuple(value.shape)} (the "
                f"exporter {how}); pass the run's best.pt to --init instead"
            )
        else:  # statistics refitted on the new listener (and batch-norm step counters)
            refitted.append(key)
    model.load_state_dict(state)
    logger.debug("read %d weights of %s from its initializers (%d statistics to refit: %s)",
                 len(state) - len(refitted), path.name, len(refitted), ", ".join(refitted) or "none")
    return not [key for key in refitted if not key.endswith("num_batches_tracked")]


def _run_weights(best: Path, model: MelDecoder) -> dict | None:
    """The state dict of the run's ``best.pt`` beside a model file when it holds this very model (its
    fitted statistics included), else None."""
    from eegmusic.offline_training.models.registry import read_checkpoint

    if not best.is_file():
        return None
    try:
        content = read_checkpoint(best)
    except ModelError:
        return None
    state = content["state_dict"]
    if content.get("model_config") != model.get_config() or state.keys() != model.state_dict().keys():
        return None
    if any(state[k].shape != v.shape for k, v in model.state_dict().items()):
        return None
    return state


def _check_output(meta: dict | None, path: Path) -> None:
    output = (meta or {}).get("output", {})
    if not isinstance(output, dict) or output.get("kind", "mel_db") != "mel_db":
        kind = output.get("kind") if isinstance(output, dict) else output
        raise ModelError(
            f"--init {path}: a {kind} decoder cannot be adapted (only mel "
            "decoders); train this listener's model from scratch (drop --init)"
        )


def _check_adaptable(model: MelDecoder, path: Path) -> None:
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


def _model_in(folder: Path) -> str:
    """The fix for ``--init FOLDER``: the run's model file in it that fine-tuning would start from."""
    for name in ("model.onnx", "best.pt"):
        try:
            check_startable(load_pretrained(folder / name))
        except EEGMusicError:  # not there, or not a model fine-tuning starts from
            continue
        return f"pass the run's model file, --init {folder / name}"
    return "pass a model.onnx or a run's best.pt"


def load_pretrained(path) -> Pretrained:
    """Read ``--init``: a model file (weights from its initializers) or a run's checkpoint.

    Raises
    ------
    ModelError
        A missing or unreadable file, a weight the model file does not hold, or a kind that cannot
        be adapted (waveform output, a closed-form or generative model, an output other than 128 × 44).
    """
    from eegmusic.decoder.modelfile import read_model_info
    from eegmusic.offline_training.models.registry import load_weights, read_checkpoint
    from eegmusic.stream.spec import MODEL_CHANNELS

    path = Path(path)
    if path.is_dir():
        raise ModelError(f"--init {path} is a folder, not a model file; {_model_in(path)}")
    if not path.is_file():
        raise ModelError(f"--init {path}: not found; pass a model.onnx or a run's best.pt")
    if path.stat().st_size == 0:
        raise ModelError(f"--init {path} is an empty file; pass a model.onnx or a best.pt written by "
                         "eegmusic train")
    if path.suffix == ".onnx":
        proto = _read_onnx(path)
        meta = _onnx_metadata(proto, path)
        spec = meta.get("model")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ModelError(f"--init {path}: its metadata names no model; pass a model.onnx written by "
                             "eegmusic train")
        _check_output(meta, path)  # before building: a waveform decoder's graph has other weights
        read_model_info(path)  # every field of its metadata typed and in range, as decode would read it
        model = _build(spec["name"], spec.get("config") or {}, path)
        _check_adaptable(model, path)
        beside = _run_weights(path.with_name("best.pt"), model)
        statistics = True
        if beside is not None:
            model.load_state_dict(beside)
            weights_from = f"the weights of {path.name} from the run's {path.with_name('best.pt')} beside it"
        else:
            statistics = onnx_weights(model, path, proto)
            weights_from = f"the weights of {path.name} from its initializers" + (
                "" if statistics else " (its statistics to refit)")
    else:
        content = read_checkpoint(path)
        statistics = True
        weights_from = f"the weights of {path}"
        config = content.get("model_config", {})
        name = (AdaptedDecoder.name if "inner_name" in config else
                BlendedDecoder.name if "part_name" in config else content["model"])
        model = _build(name, config, path)
        load_weights(model, content["state_dict"], path)
        onnx_file = path.with_name("model.onnx")
        meta = _onnx_metadata(_read_onnx(onnx_file), onnx_file) if onnx_file.is_file() else None
        _check_output(meta, path)
        if meta is not None:
            read_model_info(onnx_file)
        _check_adaptable(model, path)
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
    model.eval()
    return Pretrained(model=model, channels=channels, positions=positions, source=path, statistics=statistics,
                      weights_from=weights_from)


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


class BlendedDecoder(MelDecoder):
    """The output-space blend of a fine-tuning run's start and its fine-tuned model.

    ``mel_db = (1 − weight) · start(eeg) + weight · tuned(eeg)``: an ensemble of the pretrained model
    (whose knowledge of other listeners and other music it keeps) and the model fitted to the new
    listener. Both parts share an architecture and the same input channels; each keeps its own
    normalisation. The exported graph holds both.

    Parameters
    ----------
    part_name : str
        Registry name of the parts (or ``adapted`` for :class:`AdaptedDecoder` parts).
    part_config : dict
        Their ``get_config()``.
    weight : float
        Weight of the fine-tuned part, in (0, 1).
    **kwargs
        :class:`MelDecoder` keywords (the parts' input and output shapes).
    """

    name = "blended"

    def __init__(self, *, part_name: str = "convnet", part_config: dict | None = None, weight: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self.part_name, self.part_config, self.weight = part_name, dict(part_config or {}), float(weight)
        self.start = self._part()
        self.tuned = self._part()
        self.default_lr = self.start.default_lr

    def _part(self) -> MelDecoder:
        from eegmusic.offline_training.models.registry import build_model

        if self.part_name == AdaptedDecoder.name:
            return AdaptedDecoder.from_config(self.part_config)
        return build_model(self.part_name, **self.part_config)

    @classmethod
    def of(cls, model: MelDecoder, start: dict, tuned: dict, weight: float) -> BlendedDecoder:
        """The blend of two state dicts of ``model``'s architecture, at ``weight`` (on ``model``'s device)."""
        keys = ("n_chans", "n_times", "sfreq", "n_mels", "n_frames", "n_subjects")
        shape = {k: getattr(model, k) for k in keys}
        blend = cls(part_name=model.name, part_config=model.get_config(), weight=weight, **shape)
        blend.start.load_state_dict(start)
        blend.tuned.load_state_dict(tuned)
        return blend.to(next(model.parameters()).device)

    def fit_stats(self, eeg: np.ndarray, mel_db: np.ndarray) -> None:
        """Refit both parts' statistics (a blend is built from fitted parts; this is for completeness)."""
        self.start.fit_stats(eeg, mel_db)
        self.tuned.fit_stats(eeg, mel_db)

    def decode(self, eeg: torch.Tensor, subject_vec: torch.Tensor | None) -> torch.Tensor:
        """The blend standardised by the start's mel statistics (batch, n_mels, n_frames)."""
        return (self(eeg) - self.start.mel_mean) / self.start.mel_std

    def forward(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Mel-dB (batch, 128, 44): the weighted mean of the parts' mel-dB."""
        return (1.0 - self.weight) * self.start(eeg, subject) + self.weight * self.tuned(eeg, subject)


def _data_positions(dataset) -> np.ndarray:
    from eegmusic.stream.montage import head_positions

    if getattr(dataset, "positions", None) is not None:
        return np.asarray(dataset.positions, dtype=np.float64)
    return head_positions(dataset.channels)


def initial_model(init, dataset) -> MelDecoder:
    """The model a fine-tuning run starts from (pretrained weights, adapted to the data's channels).

    See :func:`start_model` (which also says whether the pretrained statistics came with it).
    """
    return start_model(init, dataset)[0]


def check_startable(pretrained: Pretrained) -> None:
    """Refuse a pretrained model that fine-tuning cannot start from whatever the data (a blend, a
    subject-conditioned model)."""
    if isinstance(pretrained.model, BlendedDecoder):
        raise ModelError(
            f"--init {pretrained.source}: this model is itself a blend of a pretrained and a fine-tuned "
            "decoder; fine-tune the original pretrained model instead"
        )
    if pretrained.model.subject_input:
        # its embeddings are its own listeners': the new data's listener k took pretrained listener k's
        # (an IndexError where the data had more listeners), as --subject-conditioning with --init is refused
        n = pretrained.model.n_subjects
        raise ModelError(
            f"--init {pretrained.source}: a subject-conditioned model ({n} listener embeddings of its own "
            "training data) cannot be fine-tuned on other listeners; use one trained without "
            "--subject-conditioning"
        )


def start_model(init, dataset) -> tuple[MelDecoder, bool]:
    """The model a fine-tuning run starts from, and whether it holds the pretrained statistics.

    Parameters
    ----------
    init : str or Path or Pretrained
        ``--init``, or what :func:`load_pretrained` read of it (``train`` reads it before the data).
    dataset : WindowDataset
        The new listener's windows (``channels``, ``positions``, ``n_chans``).

    Returns
    -------
    model : MelDecoder
        The pretrained model itself (same montage), or an :class:`AdaptedDecoder` around it.
    statistics : bool
        :attr:`Pretrained.statistics`: its normalisation is the pretrained model's.
    """
    from eegmusic.stream.interpolation import spline_matrix
    from eegmusic.stream.montage import head_positions, label_keys

    pretrained = init if isinstance(init, Pretrained) else load_pretrained(init)
    check_startable(pretrained)
    model = pretrained.model
    model.train()
    data_keys = label_keys(dataset.channels)
    model_keys = label_keys(pretrained.channels)
    if data_keys == model_keys:
        logger.info("read %s", pretrained.weights_from)
        logger.info(
            "fine-tuning %s from %s (same %d channels)", model.name, pretrained.source, len(data_keys)
        )
        return model, pretrained.statistics
    if isinstance(model, AdaptedDecoder):
        raise ModelError(
            f"--init {pretrained.source}: this model was itself adapted to a {model.n_chans}-channel "
            "montage and can be fine-tuned again only on those channels; adapt the original pretrained "
            "model instead"
        )
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
    logger.info("read %s", pretrained.weights_from)
    logger.info(
        "fine-tuning %s from %s through a channel adapter: %d data channels -> %d model channels "
        "(%d shared, the rest spline-interpolated to start)",
        model.name,
        pretrained.source,
        dataset.n_chans,
        len(model_keys),
        shared,
    )
    return adapted, pretrained.statistics
