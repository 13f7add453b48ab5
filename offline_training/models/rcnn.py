"""Recurrent-convolutional decoder: 1-D convolutions over time, a bidirectional LSTM, dense frames.

Robust-scaled raw EEG (per-channel median/IQR, clamped at 20 SD) → two temporal convolutions (the
second with stride 2) → bidirectional LSTM over the 63 steps → a learned map from steps to the 44 mel
frames → a dense layer per frame to 128 mel bands. The subject embedding, when used, is appended to
every LSTM input step.

Optional **skip path** (``skip``, :mod:`offline_training.models.skip`): a trained ridge whose mel-dB is
added to the output, frozen, so the network learns the residual and starts as that ridge.
"""

from __future__ import annotations

import torch
from eegmusic.offline_training.models._blocks import conv1d_stack, fit_robust, output_length
from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.offline_training.models.skip import SkipPath
from eegmusic.offline_training.torch_features import RobustScale
from torch import nn


class RCNN(SkipPath, MelDecoder):
    """Conv + BiLSTM decoder.

    Parameters
    ----------
    conv_channels : int
        Filters of both temporal convolutions.
    hidden : int
        LSTM units per direction.
    dropout : float
    clamp_sd : float
        Robust-scaling clamp in SD.
    skip : dict, optional
        A trained model added to the output, frozen (:class:`offline_training.models.skip.SkipPath`).
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "rcnn"

    def __init__(
        self,
        *,
        conv_channels: int = 64,
        hidden: int = 64,
        dropout: float = 0.1,
        clamp_sd: float = 20.0,
        skip: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.conv_channels, self.hidden = int(conv_channels), int(hidden)
        self.dropout, self.clamp_sd = float(dropout), float(clamp_sd)
        self.scale = RobustScale(self.n_chans, self.clamp_sd)
        self.convs = conv1d_stack(
            self.n_chans, (self.conv_channels, self.conv_channels), 7, (1, 2), self.dropout
        )
        _, steps = output_length(self.convs, self.n_chans, self.n_times)
        extra = self.subject_dim if self.n_subjects else 0
        self.rnn = nn.LSTM(self.conv_channels + extra, self.hidden, batch_first=True, bidirectional=True)
        self.to_frames = nn.Linear(steps, self.n_frames)
        self.head = nn.Linear(2 * self.hidden, self.n_mels)
        self.zero_head(self.head)
        self.attach_skip(skip)

    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        fit_robust(self.scale, eeg)

    def decode(self, eeg, subject_vec):
        steps = self.convs(self.scale(eeg)).transpose(1, 2)  # (batch, steps, conv_channels)
        if subject_vec is not None:
            steps = torch.cat([steps, subject_vec[:, None, :].expand(-1, steps.shape[1], -1)], dim=2)
        hidden, _ = self.rnn(steps)  # (batch, steps, 2·hidden)
        frames = self.to_frames(hidden.transpose(1, 2)).transpose(1, 2)  # (batch, n_frames, 2·hidden)
        return self.head(frames).transpose(1, 2)
