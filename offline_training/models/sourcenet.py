"""SourceNet: spatial source filters → temporal response filters → per-frame mel readout.

A decoder shaped like the physiology it inverts. Music reaches the scalp through a few cortical
sources (auditory cortices), each answering the sound with a response 50–300 ms long (P1-N1-P2);
everything else on the scalp is background. So:

1. **spatial filters**: per-channel robust scaling, then ``n_sources`` learned linear combinations of
   the 125 channels (a beamformer-like projection that discards the background's directions);
   each source's mean over the window is removed (slow drift says nothing about the music);
2. **temporal response filters**: a 1-D convolution over ``lead_s + response_s`` seconds of every
   source, read at each mel frame's time in the window (frame time − target offset; the EEG *after*
   a sound tells about it, and with ``lead_s`` > 0 also the EEG just before it, which answered the
   sound's recent past, correlated with it), like the lags of a temporal-response-function decoder
   but learned jointly with the sources — ``n_sources · n_lags`` weights per feature instead of
   ``125 · n_lags``. Lags beyond the window's edges read zeros (the sources are zero-padded), so
   every frame's filter stays aligned with its time;
3. **readout**: a small per-frame MLP (plus a linear path) from the response features to the 128
   mel bands, with a learned per-frame offset (the 1-s window's edge frames are quieter).

About 42 k parameters: it trains in seconds per epoch on a CPU, and its few weights generalise from
little data better than the 128 k-weight lagged ridge. An optional subject embedding adds a
per-listener shift of the response features.
"""

from __future__ import annotations

import numpy as np
import torch
from eegmusic.decoder.melspec import FRAME_PERIOD_S
from eegmusic.offline_training.models._blocks import fit_robust
from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.offline_training.torch_features import RobustScale
from torch import nn


class SourceNet(MelDecoder):
    """Spatial sources, temporal response filters and a per-frame mel readout.

    Parameters
    ----------
    n_sources : int
        Spatial filters (virtual source channels).
    response_s : float
        Length of the temporal response filters in seconds (EEG after each frame's time).
    lead_s : float
        EEG before each frame's time also read by the filters, in seconds.
    n_features : int
        Response features per frame (output channels of the temporal convolution).
    hidden : int
        Width of the readout MLP.
    dropout : float
        Dropout on the sources and the readout while training.
    target_offset_s : float
        The dataset's target offset, which places each frame's time in the window.
    clamp_sd : float
        Robust-scaling clamp.
    feature_norm : {"layer", "batch", "none"}
        Normalisation of the response features: ``layer`` (each frame's feature vector to zero mean
        and unit SD: it removes the frame's overall response strength), ``batch`` (each feature by
        its batch statistics: the strength stays) or none.
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "sourcenet"
    default_lr = 3e-3

    def __init__(
        self,
        *,
        n_sources: int = 16,
        response_s: float = 0.3,
        lead_s: float = 0.0,
        n_features: int = 32,
        hidden: int = 64,
        dropout: float = 0.2,
        target_offset_s: float = 0.0,
        clamp_sd: float = 20.0,
        feature_norm: str = "layer",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_sources, self.response_s, self.lead_s = int(n_sources), float(response_s), float(lead_s)
        self.n_features, self.hidden = int(n_features), int(hidden)
        self.dropout, self.clamp_sd = float(dropout), float(clamp_sd)
        self.target_offset_s = float(target_offset_s)
        n_lead = int(round(self.lead_s * self.sfreq))
        n_lags = max(1, int(round(self.response_s * self.sfreq)) + n_lead)
        self.scale = RobustScale(self.n_chans, self.clamp_sd)
        self.spatial = nn.Conv1d(self.n_chans, self.n_sources, 1, bias=False)
        self.source_dropout = nn.Dropout(self.dropout)
        self.temporal = nn.Conv1d(self.n_sources, self.n_features, n_lags)
        # the sources are padded by n_lags - 1 zeros at both ends; conv output p reads padded samples
        # p … p + n_lags - 1, i.e. window samples p - n_lags + 1 …: frame k starts n_lead before its time
        self.pad = n_lags - 1
        frame_s = np.arange(self.n_frames) * FRAME_PERIOD_S - self.target_offset_s
        start = np.round(frame_s * self.sfreq).astype(np.int64) - n_lead + self.pad
        positions = np.clip(start, 0, self.n_times + self.pad - 1)
        self.register_buffer("frame_positions", torch.tensor(positions), persistent=False)
        extra = self.subject_dim if self.n_subjects else 0
        self.subject_shift = nn.Linear(extra, self.n_features, bias=False) if extra else None
        if feature_norm not in ("layer", "batch", "none"):
            raise ValueError(f"feature_norm must be 'layer', 'batch' or 'none', not {feature_norm!r}")
        self.feature_norm = feature_norm
        self.norm = {"layer": nn.LayerNorm(self.n_features), "batch": nn.BatchNorm1d(self.n_features),
                     "none": nn.Identity()}[feature_norm]
        self.mlp = nn.Sequential(nn.Linear(self.n_features, self.hidden), nn.GELU(), nn.Dropout(self.dropout),
                                 nn.Linear(self.hidden, self.n_mels))
        self.direct = nn.Linear(self.n_features, self.n_mels)
        self.frame_offset = nn.Parameter(torch.zeros(self.n_mels, self.n_frames))
        self.zero_head(self.mlp[-1])
        self.zero_head(self.direct)

    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        fit_robust(self.scale, eeg)

    def decode(self, eeg, subject_vec):
        sources = self.spatial(self.scale(eeg))
        sources = self.source_dropout(sources - sources.mean(dim=2, keepdim=True))
        sources = nn.functional.pad(sources, (self.pad, self.pad))
        responses = torch.index_select(self.temporal(sources), 2, self.frame_positions)  # (b, feat, frames)
        features = responses.transpose(1, 2)  # (b, frames, feat)
        if self.subject_shift is not None and subject_vec is not None:
            features = features + self.subject_shift(subject_vec)[:, None, :]
        if self.feature_norm == "batch":
            features = self.norm(features.transpose(1, 2)).transpose(1, 2)
        else:
            features = self.norm(features)
        out = self.mlp(features) + self.direct(features)  # (b, frames, mels)
        return out.transpose(1, 2) + self.frame_offset
