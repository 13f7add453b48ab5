"""Small building blocks shared by the raw-EEG models (robust-scaled input, 1-D conv stacks)."""

from __future__ import annotations

import numpy as np
import torch
from eegmusic.decoder.features import robust_stats
from torch import nn


def fit_robust(scale_module, eeg: np.ndarray) -> None:
    """Fit a :class:`~offline_training.torch_features.RobustScale` on training EEG (n, n_chans, n_times)."""
    median, iqr = robust_stats(eeg, axis=(0, 2))
    scale_module.set_stats(median, iqr)


def conv1d_stack(in_channels: int, channels, kernel: int, strides, dropout: float) -> nn.Sequential:
    """Conv1d → GELU → BatchNorm1d → Dropout per entry; "same"-style padding ``kernel // 2``.

    A kernel longer than the 1-s window is refused: past the window it reads only padding, and torch's
    backward pass over one of 1,000 samples ended the process (a double free) where the forward pass ran.
    """
    from eegmusic.stream.spec import WINDOW_SAMPLES

    if not 1 <= int(kernel) <= WINDOW_SAMPLES:
        raise ValueError(f"kernel must be 1 to {WINDOW_SAMPLES} samples, the 1-s window (got {kernel})")
    layers: list[nn.Module] = []
    for out_channels, stride in zip(channels, strides, strict=True):
        layers += [
            nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2),
            nn.GELU(),
            nn.BatchNorm1d(out_channels),
            nn.Dropout(dropout),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


def output_length(module: nn.Module, n_chans: int, n_times: int) -> tuple[int, int]:
    """(channels, steps) of ``module``'s output for one (n_chans, n_times) input."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        shape = module(torch.zeros(1, n_chans, n_times)).shape
    module.train(was_training)
    return int(shape[1]), int(shape[2])
