"""WaveGAN: a generator from a 1-s EEG window straight to 1 s of 22050-Hz audio (no vocoder).

Generator: per-channel robust scaling (median/IQR, clamp at 20 SD, :class:`RobustScale`) → a strided
1-D convolution that turns the 125 EEG samples into ``n_samples / prod(upsample)`` latent frames
(25 frames of 40 ms by default) → two context convolutions → transposed-convolution upsampling
stages (×2, ×3, ×3, ×7, ×7 = ×882 by default: 25 frames → 22050 samples), each followed by a
dilated residual block (HiFi-GAN style) → a 7-tap convolution and ``tanh``.

Discriminators (training only; never exported): multi-period (HiFi-GAN MPD: the waveform folded
into a 2-D grid of period p, periods 2, 3, 5, 7, 11) and multi-scale (MelGAN MSD: raw, ×2 and ×4
average-pooled waveform). Each returns its score map and the features of every layer, for the
feature-matching loss of :mod:`offline_training.loop_gan`.

The model keeps the :class:`MelDecoder` contract: :meth:`WaveGAN.forward` returns the mel-dB of the
generated audio (torch twin of :func:`decoder.melspec.mel_db`), so the training flow's validation
and test MSE are in dB² like every other model's. The ONNX file holds the generator only, with
output ``audio`` [batch, 22050] (:meth:`WaveGAN.export_module`, :meth:`WaveGAN.output_metadata`), so
``eegmusic decode`` plays it directly with crossfaded overlap between hops and ``eegmusic evaluate``
scores it through the mel of its audio.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from eegmusic.decoder import melspec
from eegmusic.offline_training.models._blocks import fit_robust
from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.offline_training.torch_features import RobustScale
from eegmusic.stream.errors import ConfigError
from torch import nn
from torch.nn import functional as F  # noqa: N812

LRELU_SLOPE = 0.1


class MelSpectrogram(nn.Module):
    """Torch twin of :func:`decoder.melspec.mel_power` / :func:`decoder.melspec.mel_db`.

    Hann window of 2048 samples, hop 512, centre=True with zero padding, 128 mel bands (librosa's
    filter bank, :func:`decoder.melspec.mel_basis`), power 2.

    Shapes: ``(batch, n_samples)`` → ``(batch, 128, 1 + n_samples // 512)``.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(melspec.N_FFT, periodic=True), persistent=False)
        self.register_buffer("basis", torch.tensor(np.asarray(melspec.mel_basis())), persistent=False)

    def power(self, audio: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram, shape (batch, 128, n_frames)."""
        spec = torch.stft(
            audio,
            melspec.N_FFT,
            melspec.HOP_LENGTH,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return self.basis @ (spec.real**2 + spec.imag**2)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Mel-dB (reference 1, floor -80 dB), shape (batch, 128, n_frames)."""
        db = 10.0 * torch.log10(torch.clamp(self.power(audio), min=melspec.AMIN))
        return torch.clamp(db, min=melspec.DB_FLOOR)


class ResBlock(nn.Module):
    """Two dilated 1-D convolutions with leaky ReLUs and residual connections (HiFi-GAN "ResBlock2")."""

    def __init__(self, channels: int, kernel: int = 3, dilations=(1, 3)):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


def _upsample_layer(in_channels: int, out_channels: int, factor: int) -> nn.ConvTranspose1d:
    """Transposed convolution of kernel 2·factor whose output is exactly ``factor`` times longer."""
    padding, output_padding = (factor + 1) // 2, factor % 2
    return nn.ConvTranspose1d(
        in_channels, out_channels, 2 * factor, stride=factor, padding=padding, output_padding=output_padding
    )


class WaveGenerator(nn.Module):
    """Robust-scaled EEG (batch, n_chans, n_times) → audio (batch, n_samples) in [-1, 1].

    Parameters
    ----------
    n_chans, n_times : int
        EEG window shape.
    n_samples : int
        Audio samples per window; must be a multiple of ``prod(upsample)``.
    channels : int
        Width of the latent frames (halved at each upsampling stage, at least ``min_channels``).
    upsample : tuple of int
        Upsampling factors, applied in order.
    min_channels : int
    clamp_sd : float
        Robust-scaling clamp in SD.
    cond_dim : int
        Width of an added conditioning vector (subject embedding); 0 for none.
    """

    def __init__(
        self,
        *,
        n_chans: int,
        n_times: int,
        n_samples: int,
        channels: int,
        upsample,
        min_channels: int,
        clamp_sd: float,
        cond_dim: int = 0,
    ):
        super().__init__()
        total = int(np.prod(upsample))
        if n_samples % total:
            raise ConfigError(
                f"wavegan: {n_samples} audio samples are not a multiple of the upsampling "
                f"{'x'.join(map(str, upsample))} = {total}; change model_config 'upsample'"
            )
        self.n_frames = n_samples // total
        if n_times % self.n_frames:
            raise ConfigError(
                f"wavegan: {n_times} EEG samples do not divide into {self.n_frames} latent "
                f"frames; change model_config 'upsample'"
            )
        stride = n_times // self.n_frames
        self.scale = RobustScale(n_chans, clamp_sd)
        self.pre = nn.Conv1d(n_chans, channels, stride, stride=stride)
        self.context = nn.Sequential(
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv1d(channels, channels, 3, padding=1),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Conv1d(channels, channels, 3, padding=1),
        )
        self.cond = nn.Linear(cond_dim, channels) if cond_dim else None
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        width = channels
        for factor in upsample:
            out = max(width // 2, min_channels)
            self.ups.append(_upsample_layer(width, out, int(factor)))
            self.blocks.append(ResBlock(out))
            width = out
        self.post = nn.Conv1d(width, 1, 7, padding=3)

    def forward(self, eeg: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.pre(self.scale(eeg))
        if self.cond is not None and cond is not None:
            x = x + self.cond(cond)[:, :, None]
        x = x + self.context(x)
        for up, block in zip(self.ups, self.blocks, strict=True):
            x = block(up(F.leaky_relu(x, LRELU_SLOPE)))
        return torch.tanh(self.post(F.leaky_relu(x, LRELU_SLOPE))).squeeze(1)


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN period discriminator: the waveform folded into (n / period, period), 2-D convolutions."""

    def __init__(self, period: int, channels=(8, 16, 32, 32)):
        super().__init__()
        self.period = int(period)
        layers, width = [], 1
        for k, out in enumerate(channels):
            stride = 3 if k < len(channels) - 1 else 1
            layers.append(nn.Conv2d(width, out, (5, 1), (stride, 1), padding=(2, 0)))
            width = out
        self.convs = nn.ModuleList(layers)
        self.post = nn.Conv2d(width, 1, (3, 1), padding=(1, 0))

    def forward(self, audio: torch.Tensor):
        batch, n = audio.shape
        pad = (-n) % self.period
        if pad:
            audio = F.pad(audio, (0, pad), mode="reflect")
        x = audio.reshape(batch, 1, -1, self.period)
        return _score_with_features(self.convs, self.post, x)


def _score_with_features(convs, post, x: torch.Tensor):
    """Run a discriminator's conv stack; return (flattened scores, every layer's output)."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class ScaleDiscriminator(nn.Module):
    """MelGAN scale discriminator: strided, grouped 1-D convolutions over the (pooled) waveform."""

    def __init__(self, channels=(8, 16, 32, 32)):
        super().__init__()
        layers = [nn.Conv1d(1, channels[0], 15, padding=7)]
        width = channels[0]
        for out in channels[1:]:
            groups = math.gcd(width, out) // 4 or 1
            layers.append(nn.Conv1d(width, out, 41, stride=4, groups=groups, padding=20))
            width = out
        layers.append(nn.Conv1d(width, width, 5, padding=2))
        self.convs = nn.ModuleList(layers)
        self.post = nn.Conv1d(width, 1, 3, padding=1)

    def forward(self, audio: torch.Tensor):
        x = audio[:, None, :]
        return _score_with_features(self.convs, self.post, x)


class Discriminators(nn.Module):
    """Multi-period and multi-scale discriminators together.

    Parameters
    ----------
    periods : tuple of int
        Periods of the period discriminators.
    n_scales : int
        Scale discriminators (the k-th sees the waveform average-pooled by 2**k).
    channels : tuple of int
        Widths of each discriminator's convolutions.

    ``forward(audio (batch, n))`` returns a list of ``(score (batch, m), features list)`` per
    discriminator.
    """

    def __init__(self, periods=(2, 3, 5, 7, 11), n_scales: int = 3, channels=(8, 16, 32, 32)):
        super().__init__()
        self.periods = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)
        self.scales = nn.ModuleList(ScaleDiscriminator(channels) for _ in range(n_scales))

    def forward(self, audio: torch.Tensor):
        outputs = [d(audio) for d in self.periods]
        x = audio
        for k, d in enumerate(self.scales):
            if k:
                x = F.avg_pool1d(x[:, None, :], 4, 2, padding=2).squeeze(1)
            outputs.append(d(x))
        return outputs


class _AudioGraph(nn.Module):
    """What the ONNX file holds: EEG (+ subject) → audio, the generator only."""

    def __init__(self, model: WaveGAN):
        super().__init__()
        self.model = model

    def forward(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.generate(eeg, subject)


class WaveGAN(MelDecoder):
    """EEG window → 22050 audio samples, trained adversarially (:mod:`offline_training.loop_gan`).

    Parameters
    ----------
    channels : int
        Width of the generator's latent frames.
    upsample : tuple of int
        Generator upsampling factors (their product times the latent frames = ``n_samples``).
    min_channels : int
        Narrowest generator stage.
    n_samples : int
        Audio samples per window (22050 = 1 s).
    disc_channels : tuple of int
        Widths of each discriminator.
    periods : tuple of int
        Multi-period discriminator periods.
    n_scales : int
        Multi-scale discriminators.
    clamp_sd : float
        Robust-scaling clamp.
    mel_weight, stft_weight, adv_weight, fm_weight : float
        Loss weights (log-mel L1, multi-resolution STFT, least-squares adversarial, feature matching).
    **kwargs
        Shared contract (:class:`MelDecoder`).
    """

    name = "wavegan"
    output_kind = "audio"
    default_lr = 5e-4
    """Adam(W) rate of generator and discriminators when ``--lr`` is not given."""
    training_loop = "gan"

    def __init__(
        self,
        *,
        channels: int = 64,
        upsample=(2, 3, 3, 7, 7),
        min_channels: int = 8,
        n_samples: int = melspec.AUDIO_SFREQ,
        disc_channels=(8, 16, 32, 32),
        periods=(2, 3, 5, 7, 11),
        n_scales: int = 3,
        clamp_sd: float = 20.0,
        mel_weight: float = 45.0,
        stft_weight: float = 2.5,
        adv_weight: float = 1.0,
        fm_weight: float = 2.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels, self.min_channels, self.n_samples = int(channels), int(min_channels), int(n_samples)
        self.upsample = tuple(int(f) for f in upsample)
        self.disc_channels = tuple(int(c) for c in disc_channels)
        self.periods = tuple(int(p) for p in periods)
        self.n_scales, self.clamp_sd = int(n_scales), float(clamp_sd)
        self.mel_weight, self.stft_weight = float(mel_weight), float(stft_weight)
        self.adv_weight, self.fm_weight = float(adv_weight), float(fm_weight)
        self.generator = WaveGenerator(
            n_chans=self.n_chans,
            n_times=self.n_times,
            n_samples=self.n_samples,
            channels=self.channels,
            upsample=self.upsample,
            min_channels=self.min_channels,
            clamp_sd=self.clamp_sd,
            cond_dim=self.subject_dim if self.n_subjects else 0,
        )
        self.discriminator = Discriminators(self.periods, self.n_scales, self.disc_channels)
        self.mel = MelSpectrogram()

    # ---- contract --------------------------------------------------------------------------------
    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        fit_robust(self.generator.scale, eeg)

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters the generator step updates (generator and subject embedding)."""
        return [p for name, p in self.named_parameters() if not name.startswith("discriminator.")]

    def generate(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Audio (batch, n_samples) at 22050 Hz, in [-1, 1], from EEG (batch, n_chans, n_times) in µV."""
        return self.generator(eeg, self.subject_vector(subject, eeg.shape[0]))

    def decode(self, eeg, subject_vec):
        mel_db = self.mel(self.generator(eeg, subject_vec))
        return (mel_db - self.mel_mean) / self.mel_std

    def forward(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Mel-dB (batch, n_mels, n_frames) of the generated audio (what training scores)."""
        return self.mel(self.generate(eeg, subject))

    # ---- export and training hooks ------------------------------------------------------------------
    def export_module(self) -> nn.Module:
        """The module exported to ONNX: EEG (+ subject) → ``audio`` (batch, n_samples)."""
        return _AudioGraph(self)

    def output_metadata(self) -> dict:
        """The ``output`` entry of the model file's metadata (docs/design.md: kind ``audio``)."""
        return {
            "name": "audio",
            "kind": "audio",
            "n_samples": self.n_samples,
            "sfreq": float(melspec.AUDIO_SFREQ),
        }
