"""The contract every decoder model keeps (braindecode's ``EEGModuleMixin`` in spirit).

A model maps EEG windows (batch, n_chans, n_times) in µV, after the stream's preprocessing, to mel-dB
(batch, n_mels, n_frames). Features and fitted statistics live inside the model as buffers, so the
exported ONNX graph is self-contained. Every model:

- declares ``n_chans, n_times, sfreq, n_mels, n_frames`` (and ``n_subjects``: 0 = no subject input),
- round-trips its hyper-parameters through :meth:`MelDecoder.get_config` / :meth:`MelDecoder.from_config`
  (constructor keywords, stored as attributes of the same name),
- fits its normalisation on a training sample with :meth:`MelDecoder.fit_stats`,
- predicts a standardised spectrogram that :meth:`MelDecoder.forward` maps back to mel-dB with the
  per-band training mean and SD, so an untrained head starts at the mean spectrum.
"""

from __future__ import annotations

import abc
import inspect

import numpy as np
import torch
from eegmusic.stream.spec import MODEL_SFREQ, N_CHANS, WINDOW_SAMPLES
from torch import nn

N_MELS = 128
N_FRAMES = 44


class MelDecoder(nn.Module, abc.ABC):
    """Base class of the registry's models.

    Parameters
    ----------
    n_chans, n_times : int
        Input window shape (125 channels × 125 samples).
    sfreq : float
        Input rate in Hz.
    n_mels, n_frames : int
        Output mel bands and frames per window (128 × 44).
    n_subjects : int
        Size of the subject embedding (0: the model takes no subject input).
    subject_dim : int
        Width of the subject embedding.
    """

    name = "base"
    default_lr = 1.5e-3
    """Adam learning rate used when ``--lr`` is not given."""
    training_loop = "regression"
    """How ``eegmusic train`` fits the model: ``regression`` (Adam epochs on a mel loss), ``closed_form``
    (``linear``'s ridge solve), ``gan`` or ``diffusion``; the names map to loops in
    ``offline_training.train.TRAINING_LOOPS``, so a model never imports its training loop."""

    def __init__(
        self,
        *,
        n_chans: int = N_CHANS,
        n_times: int = WINDOW_SAMPLES,
        sfreq: float = MODEL_SFREQ,
        n_mels: int = N_MELS,
        n_frames: int = N_FRAMES,
        n_subjects: int = 0,
        subject_dim: int = 16,
    ):
        super().__init__()
        self.n_chans, self.n_times, self.sfreq = int(n_chans), int(n_times), float(sfreq)
        self.n_mels, self.n_frames = int(n_mels), int(n_frames)
        self.n_subjects, self.subject_dim = int(n_subjects), int(subject_dim)
        self.subject_embedding = nn.Embedding(self.n_subjects, self.subject_dim) if self.n_subjects else None
        self.register_buffer("mel_mean", torch.zeros(self.n_mels, 1))
        self.register_buffer("mel_std", torch.ones(self.n_mels, 1))

    # ---- configuration -------------------------------------------------------------------------
    def get_config(self) -> dict:
        """Constructor keywords of this model (JSON-ready); ``from_config(get_config())`` rebuilds it."""
        config = {}
        for cls in type(self).__mro__:
            if cls in (nn.Module, object):
                continue
            for name in list(inspect.signature(cls.__init__).parameters)[1:]:
                if name in ("args", "kwargs") or name in config:
                    continue
                value = getattr(self, name)
                config[name] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config: dict) -> MelDecoder:
        """Build a model from :meth:`get_config` output."""
        return cls(**config)

    def zero_head(self, head: nn.Linear) -> None:
        """Zero the output layer: an untrained model predicts the training mean spectrum."""
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)

    @property
    def subject_input(self) -> bool:
        """True when the model takes a subject index input."""
        return self.n_subjects > 0

    # ---- fitting -------------------------------------------------------------------------------
    def fit_stats(self, eeg: np.ndarray, mel_db: np.ndarray) -> None:
        """Fit normalisation buffers on a training sample.

        Parameters
        ----------
        eeg : ndarray, shape (n, n_chans, n_times), µV
        mel_db : ndarray, shape (n, n_mels, n_frames)
        """
        mel_db = np.asarray(mel_db, dtype=np.float64)
        mean = mel_db.mean(axis=(0, 2))
        std = mel_db.std(axis=(0, 2))
        std = np.where(std > 1e-3, std, 1.0)
        self.mel_mean.copy_(torch.tensor(mean, dtype=torch.float32)[:, None])
        self.mel_std.copy_(torch.tensor(std, dtype=torch.float32)[:, None])

    # ---- forward -------------------------------------------------------------------------------
    def subject_vector(self, subject: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """Subject embedding (batch, subject_dim), or None for a model without subject input."""
        if self.subject_embedding is None:
            return None
        if subject is None:
            raise ValueError(f"model '{self.name}' was trained with subject conditioning; pass subject")
        return self.subject_embedding(subject.reshape(batch).long())

    @abc.abstractmethod
    def decode(self, eeg: torch.Tensor, subject_vec: torch.Tensor | None) -> torch.Tensor:
        """Standardised spectrogram (batch, n_mels, n_frames) from EEG (batch, n_chans, n_times)."""

    def forward(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Mel-dB (batch, n_mels, n_frames) from EEG (batch, n_chans, n_times) in µV."""
        z = self.decode(eeg, self.subject_vector(subject, eeg.shape[0]))
        return z * self.mel_std + self.mel_mean


class Standardize(nn.Module):
    """Subtract a fitted mean and divide by a fitted SD (buffers of any broadcastable shape)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def set_stats(self, values: np.ndarray, axis) -> None:
        """Fit mean and SD of ``values`` over ``axis`` (zero SD becomes 1)."""
        values = np.asarray(values, dtype=np.float64)
        mean = values.mean(axis=axis)
        std = values.std(axis=axis)
        std = np.where(std > 1e-8, std, 1.0)
        self.mean.copy_(torch.tensor(mean, dtype=torch.float32).reshape(self.mean.shape))
        self.std.copy_(torch.tensor(std, dtype=torch.float32).reshape(self.std.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
