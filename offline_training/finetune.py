"""Adapt a pretrained decoder to a new listener: ``eegmusic train --data SESSION.xdf --init RUN/model.onnx``.

Fine-tuning starts from the pretrained weights instead of random ones. Before the first step the
model's normalisation (EEG scaling, mean and SD of the mel bands) is refitted on the new listener's
training windows, as for any run: amplitude and montage differ between people and caps.

**The recipe is chosen on music the candidates did not train on** (:func:`fit_finetune`): one of the
calibration tracks is held out, and every choice is the highest dynamic r on its windows. The
ordinary training loop (Adam, early stopping) runs once per candidate from the same pretrained start,
on the other tracks: the pretrained output layer or a zeroed one (:data:`HEADS`) × the learning rates
:data:`LR_FACTORS` × the model's ``default_lr``. The best candidate, or a greedy soup of them
(:func:`greedy_soup`) when it scores higher, is then interpolated with the pretrained start in weight
space (WiSE-FT, ``alpha`` in :data:`~offline_training.finetune_recipe.ALPHAS`); alpha 0 is the
pretrained model (with refitted statistics) as it is, so the choice never scores below it on the held-out
track. The model is the one chosen, trained without the held-out track (not refitted on every
track: the WiSE-FT weight and the soup were scored on these weights, not on weights retrained for a
fixed number of epochs on more data; bench_calibration, 5 seeds, 5 minutes, gave fine-tuning 0.097
with a refit and 0.119 without, on sessions of other noise draws and on the test session, so that
choice was not made blind to test data). A
session of one track has nothing to hold out: its validation blocks (the same music) are scored
instead, and ``metrics.json`` says so. Why: chosen on validation blocks of the
training music, a recipe's loss did not predict its score on new music (bench_calibration, 3 seeds,
5 minutes: fine-tuned 0.090 against 0.099 for the pretrained model alone). ``--lr`` fixes the
learning rate. Test windows play no part; every candidate's score is in ``metrics.json``
(``finetune``). An L2-SP pull toward the pretrained weights (:class:`WeightAnchor`) is available as
further candidates (:data:`L2SP_WEIGHTS`) but off: on a 5-minute calibration it lowered neither the
validation loss nor the test r (weight 30: test r 0.128 and 0.101 against 0.151 and 0.093 without,
two seeds).

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

The module is about 540 lines: reading ``--init``, the channel adapter and the recipe's loop
belong together; the recipe's tools live in :mod:`offline_training.finetune_recipe`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from eegmusic.offline_training.finetune_recipe import WeightAnchor, greedy_soup
from eegmusic.offline_training.models.base import N_FRAMES, N_MELS, MelDecoder
from eegmusic.stream.errors import ModelError
from torch import nn

logger = logging.getLogger(__name__)

LR_FACTORS = (0.3, 1.0)
"""Candidate fine-tuning learning rates, as fractions of the model's ``default_lr``."""
HEADS = ("keep", "reset")
"""Candidate starts of the output layer: the pretrained one (``keep``), or zeroed (``reset``: the
pretrained features under a new head that starts at the listener's mean spectrum). One loop per
(head, learning rate); the candidate of lowest validation loss is kept."""
SOUP = True
"""Average the candidates' weights when that raises the held-out score (:func:`greedy_soup`)."""
L2SP_WEIGHTS = (0.0,)
"""Candidate L2-SP weights (:class:`WeightAnchor`): 0 trains freely from the pretrained start."""


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
            try:
                meta = json.loads(prop.value)
            except json.JSONDecodeError:
                meta = None
            if isinstance(meta, dict):
                return meta
    raise ModelError(f"--init {path}: no eegmusic metadata; pass a model.onnx written by eegmusic train")


def _build(name, config: dict, path: Path) -> MelDecoder:
    """A model of registry name ``name`` (or an :class:`AdaptedDecoder`) from its ``get_config()``."""
    from eegmusic.offline_training.models.registry import ALL_MODELS

    cls = AdaptedDecoder if name == AdaptedDecoder.name else ALL_MODELS.get(name)
    if cls is None or not isinstance(config, dict):
        raise ModelError(
            f"--init {path}: model '{name}' is not one eegmusic knows ({', '.join(ALL_MODELS)}); pass a "
            "model written by eegmusic train"
        )
    try:
        return cls.from_config(config)
    except (TypeError, ValueError) as error:
        raise ModelError(
            f"--init {path}: bad configuration of its '{name}' model ({error}); retrain it"
        ) from None


def onnx_weights(model: MelDecoder, path: Path, proto) -> None:
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
            raise ModelError(
                f"--init {path}: its graph holds no weight '{key}' of shape {tuple(value.shape)} (the "
                "exporter folded it); pass the run's best.pt to --init instead"
            )
        else:  # statistics refitted on the new listener (and batch-norm step counters)
            refitted.append(key)
    model.load_state_dict(state)
    logger.info("read %d weights of %s from its initializers (%d statistics to refit: %s)",
                len(state) - len(refitted), path.name, len(refitted), ", ".join(refitted) or "none")


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
    logger.info("read the weights of %s from the run's %s beside it", best.with_name("model.onnx").name, best)
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


def load_pretrained(path) -> Pretrained:
    """Read ``--init``: a model file (weights from its initializers) or a run's checkpoint.

    Raises
    ------
    ModelError
        A missing or unreadable file, a weight the model file does not hold, or a kind that cannot
        be adapted (waveform output, a closed-form or generative model, an output other than 128 × 44).
    """
    from eegmusic.offline_training.models.registry import read_checkpoint
    from eegmusic.stream.spec import MODEL_CHANNELS

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"--init {path}: not found; pass a model.onnx or a run's best.pt")
    if path.suffix == ".onnx":
        proto = _read_onnx(path)
        meta = _onnx_metadata(proto, path)
        spec = meta.get("model")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ModelError(f"--init {path}: its metadata names no model; pass a model.onnx written by "
                             "eegmusic train")
        _check_output(meta, path)  # before building: a waveform decoder's graph has other weights
        model = _build(spec["name"], spec.get("config") or {}, path)
        _check_adaptable(model, path)
        beside = _run_weights(path.with_name("best.pt"), model)
        if beside is not None:
            model.load_state_dict(beside)
        else:
            onnx_weights(model, path, proto)
    else:
        content = read_checkpoint(path)
        config = content.get("model_config", {})
        name = AdaptedDecoder.name if "inner_name" in config else content["model"]
        model = _build(name, config, path)
        model.load_state_dict(content["state_dict"])
        onnx_file = path.with_name("model.onnx")
        meta = _onnx_metadata(_read_onnx(onnx_file), onnx_file) if onnx_file.is_file() else None
        _check_output(meta, path)
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


def _output_layer(model: MelDecoder) -> nn.Linear | None:
    """The output layer that ``zero_head`` started at zero (a model's ``head``), or None."""
    inner = model.inner if isinstance(model, AdaptedDecoder) else model
    head = inner._modules.get("head")
    return head if isinstance(head, nn.Linear) else None


def _train_candidate(fit, model, start: dict, recipe: dict, layer, dataset, split, config, dist_info, device,
                     out) -> dict:
    """One training loop of ``recipe`` (``head``, ``lr``, ``l2sp``) from the pretrained ``start``."""
    model.load_state_dict(start)
    skip = ()
    if recipe["head"] == "reset":
        model.zero_head(layer)
        skip = {n for n, p in model.named_parameters() if any(p is q for q in layer.parameters())}
    torch.manual_seed(config.seed)  # every candidate sees the same dropout and batch order
    with WeightAnchor(model, start, recipe["l2sp"], skip=skip):
        return fit(model, dataset, split, replace(config, lr=recipe["lr"]), dist_info, device, out, None)


def fit_finetune(fit, model: MelDecoder, dataset, split, config, dist_info, device, out) -> dict:
    """Fine-tune ``model`` with the recipe chosen on a calibration track held out of its training.

    1. :func:`~offline_training.finetune_recipe.selection_fold` holds out one training track (seeded);
       every choice below is the highest dynamic r on its windows
       (:func:`~offline_training.finetune_recipe.held_out_r`). With one track only, the run's
       validation blocks are scored instead (``finetune.selection.reason`` says so).
    2. The training loop ``fit`` runs once per candidate, on the other tracks' training windows with
       early stopping on the held-out track: each output-layer start of :data:`HEADS` × each learning
       rate (:data:`LR_FACTORS` × ``default_lr``, or ``config.lr`` alone), from the same pretrained
       weights with the same seed.
    3. The best candidate, or a greedy soup of candidates when it scores higher (:data:`SOUP`), is
       interpolated with the pretrained start at the WiSE-FT weight of highest score
       (:data:`~offline_training.finetune_recipe.ALPHAS`; 0 is the pretrained model as it is).
       The interpolation at that weight is the model. The test part is read by none of this.

    Parameters
    ----------
    fit : callable
        The model's training loop (:func:`offline_training.loop_regression.fit_regression`).
    model : MelDecoder
        The pretrained model (statistics refitted), on ``device``.
    dataset, split, config, dist_info, device, out
        As for the training loop; ``config`` is not modified.

    Returns
    -------
    dict
        ``model`` (the chosen weights), ``history``/``best_epoch``/``epochs_run`` of the last loop that
        made them (0 and empty when the start won), ``best_val_loss`` (on the run's validation part),
        and ``finetune``: ``selection`` (held-out track, rows, reason), ``start_r``, each candidate's
        (``lr``, ``head``, ``l2sp``, ``held_out_r``, ``best_val_loss``, ``best_epoch``, ``epochs_run``),
        ``soup`` (candidate indices or None), ``alpha`` and ``alpha_r`` (score per weight), ``refit``
        (always False: the model is the one validated),
        and ``chosen_lr``/``chosen_head``/``chosen_l2sp`` (of the best member; None when alpha is 0).
    """
    from eegmusic.offline_training.finetune_recipe import (
        choose_alpha,
        held_out_r,
        interpolate,
        selection_fold,
    )
    from eegmusic.offline_training.loop import weights
    from eegmusic.offline_training.loop_regression import validation_loss

    start = weights(model)
    fold = selection_fold(dataset.index, split, seed=config.seed)
    if fold.reason is not None:
        logger.warning("fine-tuning: %s", fold.reason)
    else:
        logger.info("fine-tuning recipe chosen on held-out track %d (%d windows); candidates train on %d",
                    fold.song, len(fold.split.val), len(fold.split.train))

    def score() -> float:
        return held_out_r(model, dataset, fold.split.val, hop_s=config.hop_s, batch_size=config.batch_size,
                          device=device)

    start_r = score()
    factors = [None] if config.lr is not None else LR_FACTORS
    layer = _output_layer(model)
    heads = [h for h in HEADS if h == "keep" or layer is not None]  # a model without a head keeps it
    tried, finished, results = [], [], []
    for head, anchor, factor in [(h, a, f) for h in heads for a in L2SP_WEIGHTS for f in factors]:
        recipe = {"lr": float(config.lr) if factor is None else factor * float(model.default_lr),
                  "head": head, "l2sp": anchor}
        result = _train_candidate(fit, model, start, recipe, layer, dataset, fold.split, config, dist_info,
                                  device, out)
        r = score()
        tried.append({**recipe, "held_out_r": r,
                      **{k: result[k] for k in ("best_val_loss", "best_epoch", "epochs_run")}})
        results.append({k: v for k, v in result.items() if k != "model"})
        finished.append((-r if np.isfinite(r) else np.inf, len(tried) - 1, weights(model)))
        logger.info("fine-tuning at lr %.2g, %s head, L2-SP %g: held-out r %.4f (epoch %d; start %.4f)",
                    recipe["lr"], head, anchor, r, result["best_epoch"], start_r)
    ranked = sorted(finished, key=lambda entry: entry[0])
    members, tuned = [ranked[0][1]], ranked[0][2]
    soup = greedy_soup(model, finished, ranked[0][0], lambda: -score()) if SOUP and len(tried) > 1 else None
    if soup is not None:
        members, tuned = soup["members"], soup["weights"]
    alpha, alpha_r = choose_alpha(model, start, tuned, score)
    last = results[members[0]] if alpha > 0 else {"history": [], "best_epoch": 0, "epochs_run": 0,
                                                     "windows_per_s": None}
    model.load_state_dict(interpolate(start, tuned, alpha))
    val_loss = validation_loss(model, dataset, split.val, config, device, dist_info)["loss"]
    chosen = tried[members[0]] if alpha > 0 else {"lr": None, "head": None, "l2sp": None}
    logger.info("fine-tuning chosen on %s: %s",
                "held-out track" if fold.song is not None else "validation blocks",
                "the pretrained weights as they are" if alpha == 0 else
                f"lr {chosen['lr']:.2g}, {chosen['head']} head, candidates {members}, "
                f"WiSE-FT alpha {alpha:g}")
    return {**last, "best_val_loss": val_loss, "model": model,
            "finetune": {"selection": {"song": fold.song, "n_windows": int(len(fold.split.val)),
                                       "n_train": int(len(fold.split.train)), "reason": fold.reason,
                                       "score": "dynamic_r"},
                         "start_r": start_r, "candidates": tried, "soup": None if soup is None else members,
                         "alpha": alpha, "alpha_r": {str(a): v for a, v in alpha_r.items()}, "refit": False,
                         "chosen_lr": chosen["lr"], "chosen_head": chosen["head"],
                         "chosen_l2sp": chosen["l2sp"]}}

