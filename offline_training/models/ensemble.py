"""Ensemble: a weighted average of member decoders' mel-dB, exported as one ONNX model.

Averaging decoders whose errors differ lowers the noise of the decoded spectrogram: the closed-form
ridge (``linear``) and a gradient model (``sourcenet``) fitted with different seeds make different
mistakes on the same EEG. Each member is trained by its own training loop, one after the other
(:func:`offline_training.loop_regression.fit_ensemble`), then the mixing weight of the first member
is chosen on the validation part (dynamic r); the others share the rest equally.

Members are named by registry name and constructor keywords; the ensemble passes its shared
contract (channels, rate, frames, subjects) and the target offset to each. The exported graph runs
every member on the window and mixes their mel-dB outputs, so the file is as self-contained as any
other model's.
"""

from __future__ import annotations

import inspect

import torch
from eegmusic.offline_training.models.base import MelDecoder
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
        optional); the default is ridge plus two seeds of ``sourcenet`` with batch-normalised
        features.
    weights : sequence of float, optional
        Mixing weights (normalised to sum 1; default equal); the training loop sets them.
    target_offset_s : float
        The dataset's target offset, passed to the members that place frames by it.
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "ensemble"
    training_loop = "ensemble"

    def __init__(self, *, members=DEFAULT_MEMBERS, weights=None, target_offset_s: float = 0.0, **kwargs):
        from eegmusic.offline_training.models.registry import ALL_MODELS, build_model

        super().__init__(**kwargs)
        self.members = tuple({"name": str(m["name"]), "config": dict(m.get("config", {}))} for m in members)
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        self.target_offset_s = float(target_offset_s)
        shared = {key: getattr(self, key) for key in CONTRACT_KEYS}
        modules = []
        for member in self.members:
            if member["name"] == self.name:
                raise ValueError("an ensemble cannot hold an ensemble")
            config = {**shared, **member["config"]}
            if "target_offset_s" in inspect.signature(ALL_MODELS[member["name"]].__init__).parameters:
                config.setdefault("target_offset_s", self.target_offset_s)
            modules.append(build_model(member["name"], **config))
        self.models = nn.ModuleList(modules)
        n = len(self.members)
        weights = [1.0 / n] * n if weights is None else [float(w) for w in weights]
        if len(weights) != n or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights {weights} must be {n} non-negative numbers, not all zero")
        self.register_buffer("mix", torch.tensor(weights, dtype=torch.float32) / sum(weights))

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

    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        for model in self.models:
            model.fit_stats(eeg, mel_db)

    def member_outputs(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every member's mel-dB (batch, n_mels, n_frames)."""
        return [model(eeg, subject if model.subject_input else None) for model in self.models]

    def forward(self, eeg, subject=None):
        outputs = self.member_outputs(eeg, subject)
        return sum(w * out for w, out in zip(self.mix, outputs, strict=True))

    def decode(self, eeg, subject_vec):
        # the members decode; the ensemble mixes mel-dB (forward), so this is the standardised mix
        return (self.forward(eeg) - self.mel_mean) / self.mel_std
