"""Torch versions of :mod:`decoder.features`, used inside models so features go into the ONNX graph.

The DFT is a matrix product with fixed cosine/sine tables (exported as plain MatMul, no ONNX DFT
op needed). The results equal the numpy functions to float32 precision (tests/offline_training/
test_features.py).
"""

from __future__ import annotations

import numpy as np
import torch
from eegmusic.decoder.features import (
    IQR_PER_SD,
    WELCH_NPERSEG,
    _one_sided_scale,
    n_bins,
    welch_segment_starts,
    welch_window,
)
from torch import nn


def _dft_tables(n_rows: int, n_times: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and sine tables, shape (n_rows, n_times // 2 + 1), of an ``n_times``-point real DFT."""
    k = np.arange(n_bins(n_times))
    t = np.arange(n_rows)
    angle = 2.0 * np.pi * np.outer(t, k) / n_times
    return np.cos(angle), -np.sin(angle)


class Periodogram(nn.Module):
    """One-sided periodogram along the last axis; equals :func:`decoder.features.periodogram`.

    Parameters
    ----------
    n_times : int
        Window length in samples (125 → 63 bins).
    fs : float
        Sampling rate in Hz.

    Shapes: ``(..., n_times)`` → ``(..., n_times // 2 + 1)``.
    """

    def __init__(self, n_times: int = 125, *, fs: float = 125.0):
        super().__init__()
        cos, sin = _dft_tables(n_times, n_times)
        scale = _one_sided_scale(n_times, fs, np.ones(n_times))
        self.register_buffer("cos", torch.tensor(cos, dtype=torch.float32), persistent=False)
        self.register_buffer("sin", torch.tensor(sin, dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32), persistent=False)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        centred = eeg - eeg.mean(dim=-1, keepdim=True)
        real = centred @ self.cos
        imag = centred @ self.sin
        return (real * real + imag * imag) * self.scale


class Welch(nn.Module):
    """Welch PSD on the periodogram grid; equals :func:`decoder.features.welch`.

    Shapes: ``(..., n_times)`` → ``(..., n_times // 2 + 1)``.
    """

    def __init__(self, n_times: int = 125, *, fs: float = 125.0, nperseg: int = WELCH_NPERSEG):
        super().__init__()
        nperseg = min(nperseg, n_times)
        starts = welch_segment_starts(n_times, nperseg)
        window = welch_window(nperseg)
        cos, sin = _dft_tables(nperseg, n_times)
        index = np.array([np.arange(s, s + nperseg) for s in starts])
        scale = _one_sided_scale(n_times, fs, window)
        self.register_buffer("index", torch.tensor(index.reshape(-1), dtype=torch.long), persistent=False)
        self.n_segments = len(starts)
        self.nperseg = nperseg
        self.register_buffer("window", torch.tensor(window, dtype=torch.float32), persistent=False)
        self.register_buffer("cos", torch.tensor(cos, dtype=torch.float32), persistent=False)
        self.register_buffer("sin", torch.tensor(sin, dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32), persistent=False)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        segments = torch.index_select(eeg, -1, self.index)
        segments = segments.reshape(*eeg.shape[:-1], self.n_segments, self.nperseg)
        segments = (segments - segments.mean(dim=-1, keepdim=True)) * self.window
        real = segments @ self.cos
        imag = segments @ self.sin
        return (real * real + imag * imag).mean(dim=-2) * self.scale


class RobustScale(nn.Module):
    """Per-channel robust scaling with clamping; equals :func:`decoder.features.robust_scale`.

    The median and IQR are buffers (fitted on training data with
    :func:`decoder.features.robust_stats`), so they travel inside the model and its ONNX file.

    Shapes: ``(batch, n_chans, n_times)`` → same.
    """

    def __init__(self, n_chans: int = 125, clamp_sd: float = 20.0):
        super().__init__()
        self.clamp_sd = float(clamp_sd)
        if not self.clamp_sd > 0:   # clamped to [0, 0] (or an empty range) the model reads no EEG at all
            raise ValueError(f"clamp_sd must be above 0 (got {clamp_sd}): the scaled EEG is clamped to "
                             f"±clamp_sd standard deviations")
        self.register_buffer("median", torch.zeros(n_chans))
        self.register_buffer("iqr", torch.ones(n_chans))

    def set_stats(self, median: np.ndarray, iqr: np.ndarray) -> None:
        """Store fitted per-channel statistics (µV), shape (n_chans,) each."""
        self.median.copy_(torch.as_tensor(np.asarray(median, dtype=np.float32)))
        self.iqr.copy_(torch.as_tensor(np.asarray(iqr, dtype=np.float32)))

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        sd = self.iqr[:, None] / IQR_PER_SD
        scaled = (eeg - self.median[:, None]) / sd
        return torch.clamp(scaled, -self.clamp_sd, self.clamp_sd)
