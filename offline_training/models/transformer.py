"""Non-autoregressive transformer: encoder over time patches of the window, sinusoidal positions.

Robust-scaled raw EEG is cut into patches of ``patch`` samples (all channels, each token seeing
``context`` samples around its patch) → linear embedding (a strided convolution) with batch norm
+ sinusoidal position (+ subject embedding) → pre-norm encoder layers → a learned map from the
patch tokens to the 44 frames → dense to 128 mel bands. No teacher forcing and no autoregression:
every frame comes out in one pass (the replication's autoregressive decoder failed).

Attention is written with plain matrix products so the ONNX export is the same graph as torch's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from eegmusic.offline_training.models._blocks import fit_robust
from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.offline_training.torch_features import RobustScale
from torch import nn


def sinusoidal_positions(n_positions: int, d_model: int) -> np.ndarray:
    """Vaswani et al.'s position table, shape (n_positions, d_model), float32."""
    position = np.arange(n_positions)[:, None]
    rate = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)
    table = np.zeros((n_positions, d_model), dtype=np.float32)
    table[:, 0::2] = np.sin(position * rate)
    table[:, 1::2] = np.cos(position * rate[: d_model // 2])
    return table


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward block, shapes (batch, tokens, d_model)."""

    def __init__(self, d_model: int, n_heads: int, ff: int, dropout: float):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, d_model = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(batch, tokens, 3, self.n_heads, self.d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, tokens, d_head)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_head), dim=-1)
        attended = (self.drop(weights) @ v).transpose(1, 2).reshape(batch, tokens, d_model)
        x = x + self.drop(self.out(attended))
        return x + self.drop(self.ff(self.norm2(x)))


class Transformer(MelDecoder):
    """Patch transformer decoder.

    Parameters
    ----------
    patch : int
        Samples per token (must divide n_times; 5 → 25 tokens of 40 ms).
    context : int
        Samples each token's embedding sees (overlapping patches centred on the token; 25 = 200 ms,
        the span of an auditory evoked response). ``context = patch`` gives disjoint patches.
    d_model, n_heads, n_layers, ff : int
        Width, attention heads, encoder layers, feed-forward width.
    dropout, clamp_sd : float
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "transformer"
    default_lr = 1e-3

    def __init__(
        self,
        *,
        patch: int = 5,
        context: int = 25,
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 3,
        ff: int = 256,
        dropout: float = 0.1,
        clamp_sd: float = 20.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.patch, self.d_model, self.n_heads = int(patch), int(d_model), int(n_heads)
        self.n_layers, self.ff, self.dropout, self.clamp_sd = (
            int(n_layers),
            int(ff),
            float(dropout),
            float(clamp_sd),
        )
        if self.n_times % self.patch or self.d_model % self.n_heads:
            raise ValueError(f"patch {patch} must divide n_times {self.n_times} and n_heads divide d_model")
        self.n_tokens = self.n_times // self.patch
        self.context = max(int(context), self.patch)
        if (self.context - self.patch) % 2:
            raise ValueError(f"context {context} - patch {patch} must be even (tokens centred on patches)")
        self.scale = RobustScale(self.n_chans, self.clamp_sd)
        # patch embedding = a strided convolution over time; batch norm keeps token scales steady
        self.embed = nn.Sequential(
            nn.Conv1d(
                self.n_chans,
                self.d_model,
                self.context,
                stride=self.patch,
                padding=(self.context - self.patch) // 2,
            ),
            nn.BatchNorm1d(self.d_model),
        )
        self.register_buffer(
            "positions", torch.tensor(sinusoidal_positions(self.n_tokens, self.d_model)), persistent=False
        )
        self.subject_proj = nn.Linear(self.subject_dim, self.d_model) if self.n_subjects else None
        self.layers = nn.ModuleList(
            EncoderLayer(self.d_model, self.n_heads, self.ff, self.dropout) for _ in range(self.n_layers)
        )
        self.norm = nn.LayerNorm(self.d_model)
        self.to_frames = nn.Linear(self.n_tokens, self.n_frames)
        self.head = nn.Linear(self.d_model, self.n_mels)
        self.zero_head(self.head)

    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        fit_robust(self.scale, eeg)

    def decode(self, eeg, subject_vec):
        x = self.scale(eeg)
        h = self.embed(x).transpose(1, 2) + self.positions  # (batch, n_tokens, d_model)
        if subject_vec is not None:
            h = h + self.subject_proj(subject_vec)[:, None, :]
        for layer in self.layers:
            h = layer(h)
        frames = self.to_frames(self.norm(h).transpose(1, 2)).transpose(1, 2)  # (batch, n_frames, d_model)
        return self.head(frames).transpose(1, 2)
