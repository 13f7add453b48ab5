"""EEG2Mel's CNN: periodogram image (63 frequencies × 125 channels) → mel-dB window.

Five 4×4 convolutions with 8, 16, 32, 64, 128 filters (ReLU, batch norm, dropout 0.1, Keras "same"
padding, the last with stride 2), 2×2 max-pool, two dense layers of 128 (dropout 0.15) and a linear
layer to 44·128 (Ofner & Stober's EEG2Mel; about 9 M parameters). The log-periodogram is computed and
standardised (per channel and frequency, fitted on training data) inside the model.
"""

from __future__ import annotations

import numpy as np
import torch
from eegmusic.decoder.features import periodogram, welch
from eegmusic.offline_training.models.base import MelDecoder, Standardize
from eegmusic.offline_training.torch_features import Periodogram, Welch
from torch import nn

LOG_FLOOR = 1e-6
"""Floor in µV²/Hz before the log10 of the PSD (keeps flat channels finite)."""


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras "same" padding (before, after) for one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class CNN(MelDecoder):
    """EEG2Mel periodogram CNN.

    Parameters
    ----------
    filters : tuple of int
        Filters of the convolutions (the last one has stride 2).
    kernel : int
        Square kernel size.
    dense : int
        Width of the two dense layers.
    dropout : float
        Dropout after each convolution.
    dense_dropout : float
        Dropout after each dense layer.
    psd : {"periodogram", "welch"}
        Spectral estimate of each channel's window.
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "cnn"
    default_lr = 1e-4
    """EEG2Mel used 1.5e-3 on 54k windows; with the 63 488-input dense layer that diverges on small
    sets (the first Adam steps move every weight by the rate), 1e-4 trains steadily."""

    def __init__(
        self,
        *,
        filters=(8, 16, 32, 64, 128),
        kernel: int = 4,
        dense: int = 128,
        dropout: float = 0.1,
        dense_dropout: float = 0.15,
        psd: str = "periodogram",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if psd not in ("periodogram", "welch"):
            raise ValueError(f"psd must be 'periodogram' or 'welch', not {psd!r}")
        self.filters, self.kernel, self.dense = tuple(int(f) for f in filters), int(kernel), int(dense)
        self.dropout, self.dense_dropout, self.psd = float(dropout), float(dense_dropout), psd
        n_freqs = self.n_times // 2 + 1
        self.spectrum = (Periodogram if psd == "periodogram" else Welch)(self.n_times, fs=self.sfreq)
        self.standardize = Standardize((self.n_chans, n_freqs))
        layers: list[nn.Module] = []
        height, width, channels = n_freqs, self.n_chans, 1
        for i, n_filters in enumerate(self.filters):
            stride = 2 if i == len(self.filters) - 1 else 1
            pad_h, pad_w = (
                _same_padding(height, self.kernel, stride),
                _same_padding(width, self.kernel, stride),
            )
            layers += [
                nn.ZeroPad2d((pad_w[0], pad_w[1], pad_h[0], pad_h[1])),
                nn.Conv2d(channels, n_filters, self.kernel, stride=stride),
                nn.ReLU(),
                nn.BatchNorm2d(n_filters),
                nn.Dropout(self.dropout),
            ]
            height, width, channels = -(-height // stride), -(-width // stride), n_filters
        layers.append(nn.MaxPool2d(2))
        self.convs = nn.Sequential(*layers)
        n_flat = channels * (height // 2) * (width // 2)
        self.dense_layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_flat, self.dense),
            nn.ReLU(),
            nn.Dropout(self.dense_dropout),
            nn.Linear(self.dense, self.dense),
            nn.ReLU(),
            nn.Dropout(self.dense_dropout),
        )
        self.head = nn.Linear(
            self.dense + (self.subject_dim if self.n_subjects else 0), self.n_mels * self.n_frames
        )
        self.zero_head(self.head)

    def features(self, eeg: torch.Tensor) -> torch.Tensor:
        """Standardised log10 PSD, shape (batch, n_chans, n_freqs)."""
        return self.standardize(torch.log10(torch.clamp(self.spectrum(eeg), min=LOG_FLOOR)))

    def fit_stats(self, eeg: np.ndarray, mel_db: np.ndarray) -> None:
        super().fit_stats(eeg, mel_db)
        psd = periodogram(eeg, fs=self.sfreq) if self.psd == "periodogram" else welch(eeg, fs=self.sfreq)
        self.standardize.set_stats(np.log10(np.maximum(psd, LOG_FLOOR)), axis=0)

    def decode(self, eeg, subject_vec):
        image = self.features(eeg).transpose(1, 2).unsqueeze(1)  # (batch, 1, n_freqs, n_chans)
        hidden = self.dense_layers(self.convs(image))
        if subject_vec is not None:
            hidden = torch.cat([hidden, subject_vec], dim=1)
        return self.head(hidden).reshape(-1, self.n_mels, self.n_frames)
