"""Raw-EEG ConvNet: robust scaling, strided 1-D convolutions, dense head (the latent-diffusion baseline).

Per-channel robust scaling (median/IQR, clamp at 20 SD) → four temporal convolutions (strides 1, 2, 2,
2: 125 → 16 steps) with GELU and batch norm → flatten → dense → linear to 44·128.

Optional **skip path** (``skip``, :mod:`offline_training.models.skip`): a trained closed-form ridge
(``linear``) whose mel-dB the network adds to its own output, frozen, so the network learns what ridge
misses (a residual). Its output layer starts at zero, so the untrained model decodes exactly as that
ridge does.
"""

from __future__ import annotations

import torch
from eegmusic.offline_training.models._blocks import conv1d_stack, fit_robust, output_length
from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.offline_training.models.skip import SkipPath
from eegmusic.offline_training.torch_features import RobustScale
from torch import nn


class ConvNet(SkipPath, MelDecoder):
    """Strided 1-D ConvNet on robust-scaled raw EEG.

    Parameters
    ----------
    channels : tuple of int
        Filters of the convolutions.
    strides : tuple of int
        Their strides.
    kernel : int
    hidden : int
        Width of the dense layer.
    dropout, clamp_sd : float
    skip : dict, optional
        A trained model added to the output, frozen: ``{"name": "linear", "checkpoint": path of its
        best.pt}`` (the configuration then stores the model's own configuration, marked ``trained``,
        and the weights travel in this model's state).
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "convnet"

    def __init__(
        self,
        *,
        channels=(128, 128, 256, 256),
        strides=(1, 2, 2, 2),
        kernel: int = 7,
        hidden: int = 512,
        dropout: float = 0.1,
        clamp_sd: float = 20.0,
        skip: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels, self.strides = tuple(int(c) for c in channels), tuple(int(s) for s in strides)
        self.kernel, self.hidden, self.dropout, self.clamp_sd = (
            int(kernel),
            int(hidden),
            float(dropout),
            float(clamp_sd),
        )
        self.scale = RobustScale(self.n_chans, self.clamp_sd)
        self.convs = conv1d_stack(self.n_chans, self.channels, self.kernel, self.strides, self.dropout)
        out_channels, steps = output_length(self.convs, self.n_chans, self.n_times)
        self.dense = nn.Sequential(
            nn.Flatten(), nn.Linear(out_channels * steps, self.hidden), nn.GELU(), nn.Dropout(self.dropout)
        )
        extra = self.subject_dim if self.n_subjects else 0
        self.head = nn.Linear(self.hidden + extra, self.n_mels * self.n_frames)
        self.zero_head(self.head)
        self.attach_skip(skip)

    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        fit_robust(self.scale, eeg)

    def decode(self, eeg, subject_vec):
        hidden = self.dense(self.convs(self.scale(eeg)))
        if subject_vec is not None:
            hidden = torch.cat([hidden, subject_vec], dim=1)
        return self.head(hidden).reshape(-1, self.n_mels, self.n_frames)

