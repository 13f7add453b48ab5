"""A frozen skip path: a trained model whose mel-dB a network adds to its own output.

The network then learns only what the skip model misses (a residual). Its output layer starts at
zero, so the untrained network decodes exactly as the skip model does, and it can only move away from
that start where training and validation data say so. ``convnet`` and ``rcnn`` take one (``skip``).
The quality bench gives its ``convnet`` rows the split's own trained ridge; its ``rcnn`` has none,
because with one it scored below that ridge alone (``benchmarks/bench_quality.py``, ``RCNN``).
"""

from __future__ import annotations

from eegmusic.offline_training.models.ensemble import build_member
from eegmusic.stream.errors import ConfigError


class SkipPath:
    """Mixin for a :class:`~offline_training.models.base.MelDecoder` with an optional frozen skip path.

    A subclass takes a ``skip`` keyword (``{"name": "linear", "checkpoint": path of its best.pt}``, or
    the stored entry of :meth:`get_config`, marked ``trained``) and calls :meth:`attach_skip` with it
    at the end of its constructor; the skip model's weights then travel in the subclass's state. (No
    class-level defaults: a class attribute ``skip_model`` would hide the submodule that
    :class:`torch.nn.Module` keeps outside the instance dictionary.)
    """

    def attach_skip(self, skip: dict | None) -> None:
        """Hold ``skip`` (a trained model's description) frozen, or nothing when it is empty."""
        if not skip:
            self.skip, self.skip_model = None, None
            return
        skip = dict(skip)
        if not (skip.get("checkpoint") or skip.get("trained")):
            raise ConfigError(f"{self.name} skip {skip} is not a trained model; give "
                              "{\"name\": \"linear\", \"checkpoint\": \"RUN/best.pt\"}")
        if skip.get("name") == self.name:
            raise ConfigError(f"a {self.name}'s skip path cannot be a {self.name}; use a trained linear run")
        self.skip, self.skip_model = build_member(skip, self)
        for parameter in self.skip_model.parameters():
            parameter.requires_grad_(False)
        self.skip_model.eval()

    def forward(self, eeg, subject=None):
        out = super().forward(eeg, subject)
        if self.skip_model is None:
            return out
        skip = self.skip_model(eeg, subject if self.skip_model.subject_input else None)
        return out - self.mel_mean + skip

    def train(self, mode: bool = True):
        super().train(mode)
        if self.skip_model is not None:
            self.skip_model.eval()  # frozen: its normalisation statistics never move
        return self
