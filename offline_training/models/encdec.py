"""Encoder-decoder: conv + LSTM encoder to one latent vector, repeated per frame, LSTM decoder.

Robust-scaled raw EEG → temporal convolutions → LSTM encoder; its last hidden state (with the subject
embedding, when used) becomes a latent vector that is repeated for each of the 44 frames and decoded
by a second LSTM and a dense layer to 128 mel bands (the replication's encoder-decoder without
teacher forcing).
"""

from __future__ import annotations

import torch
from eegmusic.offline_training.models._blocks import conv1d_stack, fit_robust
from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.offline_training.torch_features import RobustScale
from torch import nn


class EncDec(MelDecoder):
    """Conv + LSTM encoder, repeated latent, LSTM decoder.

    Parameters
    ----------
    conv_channels : int
    hidden : int
        Units of the encoder and decoder LSTMs.
    latent : int
        Width of the repeated latent vector.
    dropout : float
    clamp_sd : float
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "encdec"

    def __init__(
        self,
        *,
        conv_channels: int = 64,
        hidden: int = 128,
        latent: int = 128,
        dropout: float = 0.1,
        clamp_sd: float = 20.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.conv_channels, self.hidden, self.latent = int(conv_channels), int(hidden), int(latent)
        self.dropout, self.clamp_sd = float(dropout), float(clamp_sd)
        self.scale = RobustScale(self.n_chans, self.clamp_sd)
        self.convs = conv1d_stack(
            self.n_chans, (self.conv_channels, self.conv_channels), 7, (1, 2), self.dropout
        )
        self.encoder = nn.LSTM(self.conv_channels, self.hidden, batch_first=True)
        extra = self.subject_dim if self.n_subjects else 0
        self.to_latent = nn.Sequential(nn.Linear(self.hidden + extra, self.latent), nn.Tanh())
        self.decoder = nn.LSTM(self.latent, self.hidden, batch_first=True)
        self.head = nn.Linear(self.hidden, self.n_mels)
        self.zero_head(self.head)

    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        fit_robust(self.scale, eeg)

    def decode(self, eeg, subject_vec):
        steps = self.convs(self.scale(eeg)).transpose(1, 2)
        _, (last, _) = self.encoder(steps)
        summary = last[-1]  # (batch, hidden)
        if subject_vec is not None:
            summary = torch.cat([summary, subject_vec], dim=1)
        latent = self.to_latent(summary)
        repeated = latent[:, None, :].expand(-1, self.n_frames, -1)
        frames, _ = self.decoder(repeated)
        return self.head(frames).transpose(1, 2)
