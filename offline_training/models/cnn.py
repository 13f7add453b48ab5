"""EEG2Mel's CNN: periodogram image (63 frequencies × 125 channels) → mel-dB window.

Five 4×4 convolutions with 8, 16, 32, 64, 128 filters (ReLU, batch norm, dropout 0.1, Keras "same"
padding, the last with stride 2), 2×2 max-pool, two dense layers of 128 (dropout 0.15) and a linear
layer to 44·128 (Ofner & Stober's EEG2Mel; about 9 M parameters). The log-periodogram is computed and
standardised (per channel and frequency, fitted on training data) inside the model.

Why it learned nothing, and the change that lets it learn (``dense_norm``, default on): the first
dense layer has 63 k inputs. Adam moves every weight by about the learning rate per step, so that
layer's output jumps by ~lr × 63 k: training diverged at EEG2Mel's 1.5e-3, and the old default 1e-4
barely moved in the few hundred steps of a small set (a 30 %-evoked simulated run, 2 songs × 3
listeners × 60 s, small filters: training loss 602 → 593 dB² in 6 epochs, held-out dynamic r 0.019
against the song mean's -0.027). With batch norm on each dense layer's pre-activations the layer's
scale no longer matters and 1e-3 trains (same run: training loss 599 → 451 dB², dynamic r 0.072).

What it cannot do: a power spectrum of a 1-s window has no phase, so *when* in the second the music
got louder is gone; the frames of a window share one spectrum's information, and the dynamic r (over
frames) stays far below the raw-EEG models'. (Feeding the DFT's real and imaginary parts instead
overfitted at once on the same run: validation MSE 644 → 1235 dB² in 4 epochs; not kept.)
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
    dense_norm : bool
        Batch-normalise each dense layer's pre-activations (see the class notes).
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "cnn"
    default_lr = 1e-3
    """With batch-normalised dense layers (``dense_norm``) 1e-3 trains steadily; without them the
    63 488-input dense layer diverged at EEG2Mel's 1.5e-3 and hardly moved at 1e-4."""

    def __init__(
        self,
        *,
        filters=(8, 16, 32, 64, 128),
        kernel: int = 4,
        dense: int = 128,
        dropout: float = 0.1,
        dense_dropout: float = 0.15,
        psd: str = "periodogram",
        dense_norm: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if psd not in ("periodogram", "welch"):
            raise ValueError(f"psd must be 'periodogram' or 'welch', not {psd!r}")
        self.filters, self.kernel, self.dense = tuple(int(f) for f in filters), int(kernel), int(dense)
        self.dropout, self.dense_dropout, self.psd = float(dropout), float(dense_dropout), psd
        self.dense_norm = bool(dense_norm)
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
        def norm() -> list[nn.Module]:
            return [nn.BatchNorm1d(self.dense)] if self.dense_norm else []

        self.dense_layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_flat, self.dense),
            *norm(),
            nn.ReLU(),
            nn.Dropout(self.dense_dropout),
            nn.Linear(self.dense, self.dense),
            *norm(),
            nn.ReLU(),
            nn.Dropout(self.dense_dropout),
        )
        self.head = nn.Linear(
            self.dense + (self.subject_dim if self.n_subjects else 0), self.n_mels * self.n_frames
        )
        self.zero_head(self.head)

    @classmethod
    def from_config(cls, config: dict) -> CNN:
        # files written before dense_norm existed hold the plain EEG2Mel dense layers
        return cls(**{"dense_norm": False, **config})

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
