"""Ensemble: a weighted average of member decoders' mel-dB, exported as one ONNX model.

Averaging decoders whose errors differ lowers the noise of the decoded spectrogram: the closed-form
ridge (``linear``) and a gradient model (``sourcenet``) fitted with different seeds make different
mistakes on the same EEG. Each member is trained by its own training loop, one after the other
(:func:`offline_training.loop_ensemble.fit_ensemble`), then the mixing weight of the first member
is chosen on the validation part (dynamic r); the others share the rest equally.

Members are named by registry name and constructor keywords; the ensemble passes its shared
contract (channels, rate, frames, subjects) and the target offset to each. A member may instead name
the ``checkpoint`` (``best.pt``) of a model trained before: it joins with its weights and statistics
and is not trained again (the ensemble's configuration then holds the member's own configuration,
marked ``trained``, so the ensemble's files never refer back to that run). The exported graph runs
every member on the window and mixes their mel-dB outputs, so the file is as self-contained as any
other model's.

With ``output_ranks`` the mix is also projected on its leading principal directions over the training
windows (:mod:`offline_training.output_projection`), the rank chosen on the validation part among those
candidates and the unprojected mix; the projection is part of the exported graph.
"""

from __future__ import annotations

import inspect

import torch
from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.stream.errors import ConfigError
from torch import nn

CONTRACT_KEYS = ("n_chans", "n_times", "sfreq", "n_mels", "n_frames", "n_subjects", "subject_dim")
"""Constructor keywords of the shared contract, passed on to every member."""

DEFAULT_MEMBERS = (
    {"name": "linear"},
    {"name": "sourcenet", "config": {"feature_norm": "batch"}},
    {"name": "sourcenet", "config": {"feature_norm": "batch"}},
)
"""Ridge and two seeds of sourcenet with batch-normalised response features."""


class Ensemble(MelDecoder):
    """Weighted average of member models.

    Parameters
    ----------
    members : sequence of dict
        One ``{"name": registry name, "config": {keyword: value}}`` per member (``config``
        optional), or ``{"name": ..., "checkpoint": path of a best.pt}`` for a trained model; the
        default is ridge plus two seeds of ``sourcenet`` with batch-normalised features.
    weights : sequence of float, optional
        Mixing weights (normalised to sum 1; default equal); the training loop sets them.
    target_offset_s : float
        The dataset's target offset, passed to the members that place frames by it.
    output_ranks : sequence of int
        Candidate ranks of the output projection (empty: none); the training loop chooses one, or
        none, on validation and sets :meth:`set_output_projection`.
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "ensemble"
    training_loop = "ensemble"

    def __init__(self, *, members=DEFAULT_MEMBERS, weights=None, target_offset_s: float = 0.0,
                 output_ranks=(), **kwargs):
        super().__init__(**kwargs)
        if not members:
            raise ConfigError("an ensemble needs at least one member; list them in "
                              "--arch-config '{\"members\": [...]}'")
        self.target_offset_s = float(target_offset_s)
        built = [self._member(dict(m)) for m in members]
        self.members = tuple(entry for entry, _ in built)
        self.models = nn.ModuleList(model for _, model in built)
        n = len(self.members)
        weights = [1.0 / n] * n if weights is None else [float(w) for w in weights]
        if len(weights) != n or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"ensemble weights {weights} must be {n} non-negative numbers, not all zero; "
                              "give one per member or none")
        self.register_buffer("mix", torch.tensor(weights, dtype=torch.float32) / sum(weights))
        self.output_ranks = tuple(int(r) for r in output_ranks)
        if any(not 0 < r <= self.n_mels for r in self.output_ranks):
            raise ConfigError(f"output ranks {list(self.output_ranks)} must lie in 1..{self.n_mels}; "
                              "give e.g. [2, 4, 8, 16]")
        if self.output_ranks:  # identity until the training loop sets the chosen projection
            self.register_buffer("out_centre", torch.zeros(self.n_mels))
            self.register_buffer("out_projection", torch.eye(self.n_mels))

    def _member(self, member: dict):
        """(config entry, module) of one member description."""
        if str(member.get("name")) == self.name:
            raise ConfigError("an ensemble cannot hold an ensemble; list its members instead")
        return build_member(member, self, self.target_offset_s)

    @property
    def weights(self) -> tuple[float, ...]:
        """The mixing weights (sum 1); ``get_config`` stores them."""
        return tuple(float(w) for w in self.mix)

    def get_config(self) -> dict:
        config = super().get_config()
        config["members"] = [dict(m) for m in self.members]
        return config

    def set_weights(self, weights) -> None:
        """Set the mixing weights (normalised to sum 1)."""
        weights = torch.tensor([float(w) for w in weights], dtype=torch.float32)
        self.mix.copy_(weights / weights.sum())

    def set_output_projection(self, centre, projection) -> None:
        """Set the output projection: mel-dB ``centre`` (n_mels,) and ``projection`` (n_mels, n_mels)."""
        if not self.output_ranks:
            raise ConfigError("this ensemble has no output projection; build it with output_ranks")
        self.out_centre.copy_(torch.as_tensor(centre, dtype=torch.float32))
        self.out_projection.copy_(torch.as_tensor(projection, dtype=torch.float32))

    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        for member, model in zip(self.members, self.models, strict=True):
            if not member["trained"]:  # a trained member keeps the statistics it was trained with
                model.fit_stats(eeg, mel_db)

    def member_outputs(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every member's mel-dB (batch, n_mels, n_frames)."""
        return [model(eeg, subject if model.subject_input else None) for model in self.models]

    def forward(self, eeg, subject=None):
        outputs = self.member_outputs(eeg, subject)
        mixed = sum(w * out for w, out in zip(self.mix, outputs, strict=True))
        if not self.output_ranks:
            return mixed
        centre = self.out_centre[:, None]
        return centre + self.out_projection @ (mixed - centre)  # (n_mels, n_mels) @ (batch, n_mels, frames)

    def decode(self, eeg, subject_vec):
        # the members decode; the ensemble mixes mel-dB (forward), so this is the standardised mix
        return (self.forward(eeg) - self.mel_mean) / self.mel_std


def build_member(member: dict, owner: MelDecoder, target_offset_s: float = 0.0):
    """(config entry, module) of a model held inside another (an ensemble member, a skip path).

    Parameters
    ----------
    member : dict
        ``{"name": registry name, "config": {...}}`` for a new model (built with ``owner``'s shared
        contract and ``target_offset_s``), or ``{"name": ..., "checkpoint": path of a best.pt}`` for
        a trained one (its weights and statistics kept; the entry then holds its own configuration,
        marked ``trained``, so the owner's files never refer back to that run).
    owner : MelDecoder
        The holding model: the contract (channels, rate, frames) the member must share.
    target_offset_s : float
        Passed to new members that place frames by it.

    Returns
    -------
    entry : dict
        ``name``, ``config``, ``trained`` (JSON-ready; ``build_member(entry, ...)`` rebuilds the module).
    module : MelDecoder
    """
    from eegmusic.offline_training.models.registry import ALL_MODELS, build_model, load_checkpoint

    if "name" not in member:
        raise ConfigError(f"member {member} has no name; give e.g. {{\"name\": \"linear\"}}")
    name = str(member["name"])
    if name not in ALL_MODELS:
        raise ConfigError(f"member model '{name}' is unknown; use one of {', '.join(sorted(ALL_MODELS))}")
    if member.get("checkpoint"):
        model, _ = load_checkpoint(member["checkpoint"], model_name=name)
        for key in ("n_chans", "n_times", "sfreq", "n_mels", "n_frames"):
            if getattr(model, key) != getattr(owner, key):
                raise ConfigError(f"member {member['checkpoint']} has {key}={getattr(model, key)}, the "
                                  f"holding model {getattr(owner, key)}; join models trained on this data")
        return {"name": name, "config": model.get_config(), "trained": True}, model
    config = {key: getattr(owner, key) for key in CONTRACT_KEYS} | dict(member.get("config", {}))
    if "target_offset_s" in inspect.signature(ALL_MODELS[name].__init__).parameters:
        config.setdefault("target_offset_s", target_offset_s)
    entry = {"name": name, "config": dict(member.get("config", {})), "trained": bool(member.get("trained"))}
    return entry, build_model(name, **config)
