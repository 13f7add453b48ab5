"""EEG-conditioned mel diffusion: a small unconditional mel prior plus a ControlNet-style EEG adapter.

The published system pairs AudioLDM2 (a pretrained latent-diffusion music prior) with a ControlNet
adapter fed raw EEG. AudioLDM2's weights cannot be downloaded here, so the prior is a small
denoiser trained here, unconditionally, on the stimulus mel windows of the training part
(``docs/generative.md`` says how the adapter would attach to local AudioLDM2 weights).

- **Prior** (:class:`MelDenoiser`): a two-level U-Net over the standardised mel-dB window
  (1 × 128 bands × 44 frames; per-band training mean and SD, the base contract's ``mel_mean`` /
  ``mel_std``), sinusoidal timestep embedding, cosine noise schedule of ``n_train_steps`` steps,
  v-prediction (``v = √ᾱ·ε − √(1−ᾱ)·x₀``; ``prediction="eps"`` for ε). With little data ε-prediction
  left the noisiest steps badly wrong (predicted x₀ far beyond the data range); v-prediction learns
  x₀ ≈ −v there, which stays in range.
- **Adapter** (:class:`EEGAdapter`): robust-scaled raw EEG → strided 1-D convolutions over time →
  for each U-Net level a 1×1 projection onto (channels × a coarse band grid) resized to that level's
  (bands, frames) grid → a **zero-initialised** 1×1 convolution whose output is added to the prior's
  skip features and middle block (ControlNet's "zero convolutions"). An optional subject embedding is
  added to the projected EEG features. The prior is frozen while the adapter trains, and at
  initialisation the adapter adds exact zeros: the conditional model *is* the prior.
- **Sampling**: deterministic DDIM (η = 0) from a seeded Gaussian start, any number of steps
  (:meth:`Diffusion.sample`).

Export choice (how ``eegmusic evaluate`` and ``eegmusic decode`` run it): :meth:`Diffusion.forward`
*is* a fixed DDIM sampler — ``sample_steps`` steps (default 10) unrolled, starting from the noise
buffer drawn once from ``noise_seed`` and stored in the model (so in the ONNX graph). Tracing unrolls
the Python loop into a plain graph whose steps share one set of weights (no ONNX ``Loop``, no random
ops), so the ONNX file has the contract's input ``eeg`` and output ``mel_db`` and matches torch to
float precision. Evaluation then needs no torch route, and the same file plays live (slowly). The cost
of this choice: the exported step count and start noise are fixed at training time (change them with
``--arch-config '{"sample_steps": 20}'``); :meth:`Diffusion.sample` keeps both free for offline
experiments.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from eegmusic.offline_training.models._blocks import fit_robust
from eegmusic.offline_training.models.base import MelDecoder
from eegmusic.offline_training.torch_features import RobustScale
from eegmusic.stream.errors import ConfigError
from torch import nn
from torch.nn import functional as F  # noqa: N812


def cosine_alphas_cumprod(n_steps: int, s: float = 0.008) -> np.ndarray:
    """ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021), t = 0 … n_steps - 1, float64."""
    t = np.arange(n_steps + 1) / n_steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def ddim_timesteps(n_train_steps: int, steps: int) -> list[int]:
    """The ``steps`` timesteps DDIM visits, from the noisiest down to 0 (evenly spaced)."""
    if not 1 <= steps <= n_train_steps:
        raise ValueError(f"DDIM steps must be in 1..{n_train_steps}, got {steps}")
    return [int(round(t)) for t in np.linspace(n_train_steps - 1, 0, steps)]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (batch, dim) of integer timesteps (batch,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class _Res2d(nn.Module):
    """GroupNorm → SiLU → conv, twice, with the timestep embedding added in between; residual."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(4, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_channels)
        self.norm2 = nn.GroupNorm(min(4, out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class MelDenoiser(nn.Module):
    """The prior: denoising U-Net (v or ε output) over standardised mel windows (batch, 1, n_mels, n_frames).

    Three feature grids: level 0 (n_mels × n_frames, ``channels[0]``), level 1 (halved, ``channels[1]``),
    middle (quartered, ``channels[2]``). ``control`` (optional) is a list of three tensors of those grid
    shapes added to the two skip features and the middle block.

    Parameters
    ----------
    channels : tuple of 3 int
    emb_dim : int
        Timestep embedding width.
    """

    def __init__(self, channels=(16, 32, 64), emb_dim: int = 64):
        super().__init__()
        c0, c1, c2 = channels
        self.emb_dim = int(emb_dim)
        self.time = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Conv2d(1, c0, 3, padding=1)
        self.down0 = _Res2d(c0, c0, emb_dim)
        self.pool0 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.down1 = _Res2d(c1, c1, emb_dim)
        self.pool1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid = _Res2d(c2, c2, emb_dim)
        self.up1 = _Res2d(c2 + c1, c1, emb_dim)
        self.up0 = _Res2d(c1 + c0, c0, emb_dim)
        self.out = nn.Sequential(nn.GroupNorm(min(4, c0), c0), nn.SiLU(), nn.Conv2d(c0, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, control=None) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.emb_dim))
        h0 = self.down0(self.inp(x), emb)
        h1 = self.down1(self.pool0(h0), emb)
        m = self.mid(self.pool1(h1), emb)
        if control is not None:
            h0, h1, m = h0 + control[0], h1 + control[1], m + control[2]
        u1 = F.interpolate(m, size=h1.shape[-2:], mode="nearest")
        u1 = self.up1(torch.cat([u1, h1], dim=1), emb)
        u0 = F.interpolate(u1, size=h0.shape[-2:], mode="nearest")
        u0 = self.up0(torch.cat([u0, h0], dim=1), emb)
        return self.out(u0)


def _grid(n: int, levels: int) -> int:
    """Size of an axis of length ``n`` after ``levels`` stride-2 convolutions with padding 1."""
    for _ in range(levels):
        n = (n - 1) // 2 + 1
    return n


class EEGAdapter(nn.Module):
    """ControlNet-style adapter: raw EEG → additive residuals on the prior's three feature grids.

    Parameters
    ----------
    n_chans, n_times : int
        EEG window shape.
    n_mels, n_frames : int
        Mel grid of the prior's level 0.
    channels : tuple of 3 int
        The prior's channels per level.
    proj_channels : int
        Width of the strided 1-D projector.
    proj_strides : tuple of int
        Strides of its temporal convolutions.
    band_grid : int
        Coarse mel-band rows each level's residual is projected onto before resizing.
    clamp_sd : float
        Robust-scaling clamp in SD.
    n_subjects : int
        Optional subject embedding of width ``proj_channels`` added to the projected features (0: none).
    """

    def __init__(
        self,
        *,
        n_chans: int,
        n_times: int,
        n_mels: int,
        n_frames: int,
        channels,
        proj_channels: int,
        proj_strides,
        band_grid: int,
        clamp_sd: float,
        n_subjects: int = 0,
    ):
        super().__init__()
        self.scale = RobustScale(n_chans, clamp_sd)
        layers, width = [], n_chans
        for stride in proj_strides:
            layers += [nn.Conv1d(width, proj_channels, 5, stride=stride, padding=2), nn.GELU()]
            width = proj_channels
        self.projector = nn.Sequential(*layers)
        self.subject = nn.Embedding(n_subjects, proj_channels) if n_subjects else None
        self.band_grid = int(band_grid)
        self.grids = [(_grid(n_mels, k), _grid(n_frames, k)) for k in range(3)]
        self.to_grid = nn.ModuleList(nn.Conv1d(proj_channels, c * self.band_grid, 1) for c in channels)
        self.zero_convs = nn.ModuleList(nn.Conv2d(c, c, 1) for c in channels)
        self.channels = tuple(int(c) for c in channels)
        for conv in self.zero_convs:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Residuals for the prior's grids: [(b, c0, H0, W0), (b, c1, H1, W1), (b, c2, H2, W2)]."""
        features = self.projector(self.scale(eeg))  # (batch, proj, steps)
        if self.subject is not None and subject is not None:
            features = features + self.subject(subject.reshape(-1).long())[:, :, None]
        residuals = []
        for (height, width), c, to_grid, zero in zip(
            self.grids, self.channels, self.to_grid, self.zero_convs, strict=True
        ):
            timed = F.interpolate(features, size=width, mode="linear", align_corners=False)
            grid = to_grid(timed).reshape(eeg.shape[0], c, self.band_grid, width)
            grid = F.interpolate(grid, size=(height, width), mode="nearest")
            residuals.append(zero(F.silu(grid)))
        return residuals


class Diffusion(MelDecoder):
    """EEG → mel-dB by DDIM sampling of a frozen mel prior steered by a ControlNet-style adapter.

    Parameters
    ----------
    channels : tuple of 3 int
        Prior U-Net widths per level.
    emb_dim : int
        Timestep embedding width.
    n_train_steps : int
        Diffusion steps of the training schedule (cosine).
    sample_steps : int
        DDIM steps of :meth:`forward` (and so of the ONNX graph).
    noise_seed : int
        Seed of the start noise stored in the model (and so in the ONNX graph).
    clip_x0 : float
        Clamp of the predicted clean window (standardised units) at each DDIM step.
    prediction : {"v", "eps"}
        What the denoiser predicts.
    proj_channels : int
        Adapter projector width.
    proj_strides : tuple of int
        Adapter projector strides (125 samples → 32 steps by default).
    band_grid : int
        Coarse band rows of the adapter's residuals.
    clamp_sd : float
        EEG robust-scaling clamp.
    prior_epochs : int
        Epochs of the unconditional prior phase (0: as many as ``--epochs``).
    **kwargs
        Shared contract (:class:`MelDecoder`); ``n_subjects > 0`` adds the adapter's subject embedding.
    """

    name = "diffusion"
    default_lr = 2e-3
    """Adam rate of both phases when ``--lr`` is not given."""
    training_loop = "diffusion"

    def __init__(
        self,
        *,
        channels=(16, 32, 64),
        emb_dim: int = 64,
        n_train_steps: int = 200,
        sample_steps: int = 10,
        noise_seed: int = 0,
        clip_x0: float = 5.0,
        prediction: str = "v",
        proj_channels: int = 32,
        proj_strides=(2, 2),
        band_grid: int = 8,
        clamp_sd: float = 20.0,
        prior_epochs: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = tuple(int(c) for c in channels)
        self.emb_dim, self.n_train_steps, self.sample_steps = (
            int(emb_dim),
            int(n_train_steps),
            int(sample_steps),
        )
        self.noise_seed, self.clip_x0 = int(noise_seed), float(clip_x0)
        if prediction not in ("v", "eps"):
            raise ConfigError(f"diffusion: unknown prediction '{prediction}'; use 'v' or 'eps'")
        self.prediction = str(prediction)
        self.proj_channels, self.proj_strides = int(proj_channels), tuple(int(s) for s in proj_strides)
        self.band_grid, self.clamp_sd, self.prior_epochs = int(band_grid), float(clamp_sd), int(prior_epochs)
        if not 1 <= self.sample_steps <= self.n_train_steps:
            raise ConfigError(
                f"diffusion: sample_steps {self.sample_steps} must be in 1..{self.n_train_steps} "
                f"(n_train_steps); change model_config 'sample_steps'"
            )
        self.prior = MelDenoiser(self.channels, self.emb_dim)
        self.adapter = EEGAdapter(
            n_chans=self.n_chans,
            n_times=self.n_times,
            n_mels=self.n_mels,
            n_frames=self.n_frames,
            channels=self.channels,
            proj_channels=self.proj_channels,
            proj_strides=self.proj_strides,
            band_grid=self.band_grid,
            clamp_sd=self.clamp_sd,
            n_subjects=self.n_subjects,
        )
        # the base contract's subject embedding is unused: the adapter owns the subject input
        self.subject_embedding = None
        self.register_buffer(
            "alphas_cumprod", torch.tensor(cosine_alphas_cumprod(self.n_train_steps), dtype=torch.float32)
        )
        self.register_buffer("noise", self.start_noise(1, seed=self.noise_seed))

    # ---- contract ----------------------------------------------------------------------------------
    @property
    def subject_input(self) -> bool:
        return self.n_subjects > 0

    def fit_stats(self, eeg, mel_db) -> None:
        super().fit_stats(eeg, mel_db)
        fit_robust(self.adapter.scale, eeg)

    def start_noise(self, batch: int, *, seed: int) -> torch.Tensor:
        """Seeded Gaussian start (batch, 1, n_mels, n_frames); the same seed gives the same noise."""
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randn(batch, 1, self.n_mels, self.n_frames, generator=generator)

    def standardise(self, mel_db: torch.Tensor) -> torch.Tensor:
        """Mel-dB (batch, n_mels, n_frames) → the prior's input space (batch, 1, n_mels, n_frames)."""
        return ((mel_db - self.mel_mean) / self.mel_std)[:, None]

    def control(self, eeg: torch.Tensor | None, subject: torch.Tensor | None = None):
        """The adapter's residuals for EEG (None: unconditional)."""
        if eeg is None:
            return None
        if self.subject_input and subject is None:
            raise ValueError("model 'diffusion' was trained with subject conditioning; pass subject")
        return self.adapter(eeg, subject if self.subject_input else None)

    def predict_x0(self, x: torch.Tensor, output: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
        """Clean-window estimate from the denoiser's output at noise level ᾱ_t."""
        if self.prediction == "v":
            return torch.sqrt(a_t) * x - torch.sqrt(1 - a_t) * output
        return (x - torch.sqrt(1 - a_t) * output) / torch.sqrt(a_t)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
        """What the denoiser learns to output for x_t = √ᾱ·x₀ + √(1−ᾱ)·noise (v or ε)."""
        if self.prediction == "v":
            return torch.sqrt(a_t) * noise - torch.sqrt(1 - a_t) * x0
        return noise

    def ddim(self, x: torch.Tensor, control, steps: int) -> torch.Tensor:
        """Run deterministic DDIM (η = 0) from ``x`` (batch, 1, n_mels, n_frames); standardised x₀."""
        timesteps = ddim_timesteps(self.n_train_steps, steps)
        batch = x.shape[0]
        for k, t in enumerate(timesteps):
            a_t = self.alphas_cumprod[t]
            a_prev = self.alphas_cumprod[timesteps[k + 1]] if k + 1 < len(timesteps) else torch.ones_like(a_t)
            t_batch = torch.full((batch,), t, dtype=torch.long, device=x.device)
            x0 = self.predict_x0(x, self.prior(x, t_batch, control), a_t)
            x0 = torch.clamp(x0, -self.clip_x0, self.clip_x0)
            eps = (x - torch.sqrt(a_t) * x0) / torch.sqrt(1 - a_t)
            x = torch.sqrt(a_prev) * x0 + torch.sqrt(1 - a_prev) * eps
        return x

    @torch.no_grad()
    def sample(
        self,
        eeg: torch.Tensor | None = None,
        subject: torch.Tensor | None = None,
        *,
        batch: int | None = None,
        steps: int | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """DDIM sample mel-dB windows (batch, n_mels, n_frames).

        Parameters
        ----------
        eeg : Tensor, shape (batch, n_chans, n_times), optional
            EEG in µV; None samples the unconditional prior.
        subject : Tensor of int, shape (batch,), optional
        batch : int, optional
            Windows to sample when ``eeg`` is None (default 1).
        steps : int, optional
            DDIM steps (default ``sample_steps``).
        seed : int, optional
            Seed of the start noise (each window gets its own draw); None uses the stored noise
            buffer for every window, as :meth:`forward` and the ONNX graph do.
        """
        n = eeg.shape[0] if eeg is not None else int(batch or 1)
        if seed is None:
            x = self.noise.expand(n, -1, -1, -1)
        else:
            x = self.start_noise(n, seed=seed).to(self.noise.device)
        x0 = self.ddim(x, self.control(eeg, subject), int(steps or self.sample_steps))
        return x0[:, 0] * self.mel_std + self.mel_mean

    def decode(self, eeg, subject_vec):
        x = self.noise.expand(eeg.shape[0], -1, -1, -1)
        return self.ddim(x, self.adapter(eeg, None), self.sample_steps)[:, 0]

    def forward(self, eeg: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Mel-dB (batch, n_mels, n_frames): ``sample_steps`` DDIM steps from the stored noise."""
        x = self.noise.expand(eeg.shape[0], -1, -1, -1)
        x0 = self.ddim(x, self.control(eeg, subject), self.sample_steps)
        return x0[:, 0] * self.mel_std + self.mel_mean

