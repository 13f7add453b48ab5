"""The simulator's EEG forward model: music in, scalp potentials (µV) out.

What a neuroscientist would expect, kept simple and explicit:

1. **Stimulus features.** Auditory band envelopes (16 log-spaced bands, 100 Hz–8 kHz, power
   compressed to the 0.3, high-passed at ~0.3 Hz, each scaled to unit variance) and an onset signal
   (half-wave rectified spectral flux), both at the EEG rate.
2. **Temporal response functions.** A P1-N1-P2 kernel (positive ~50 ms, negative ~100 ms, positive
   ~180 ms) per participant, with that participant's latency scale and component amplitudes.
3. **Sources.** Two current dipoles per auditory cortex (left and right): a lateral one driven mostly
   by low bands and a medial one by high bands (the tonotopic gradient of Heschl's gyrus), pointing
   up and slightly forward so the N1 is negative at fronto-central sites and reverses at the
   mastoids. Positions and orientations jitter per participant.
4. **Head model** (:mod:`replay.head_model`). A homogeneous conducting sphere fitted to the real
   GSN-HydroCel-129 electrode positions (:mod:`stream.montage`); dipole potentials by the closed-form
   solution of Kavanagh et al. (1978) as given by Lütkenhöner (1992).
5. **Background.** Spatially correlated 1/f activity (64 random cortical dipoles with 1/f^β time
   courses) plus independent 1/f activity at each electrode, posterior alpha (two parieto-occipital
   dipoles, waxing and waning at the participant's peak frequency), eye blinks (dipoles at the eyes:
   large on frontal channels), slow electrode drift and white sensor noise; for raw recordings also
   60 Hz line noise (with a 180 Hz harmonic).

Amplitudes are set in µV (background about 15 µV RMS per channel after average reference) and the
evoked part is scaled so that its share of the variance is the participant's SNR.

Everything is computed for the 129 net electrodes (E1…E128, Cz) referenced to Cz, as an EGI amplifier
records; :func:`average_reference` turns that into the 125 model channels as NMED-T stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from eegmusic.replay.head_model import (  # noqa: F401  (the head is part of this model's public names)
    CONDUCTIVITY_S_PER_M,
    MODEL_INDEX,
    NET_CHANNELS,
    HeadModel,
    average_reference,
    fit_sphere,
    head_model,
    model_variance,
    sphere_leadfield,
)

N_BANDS = 16
BAND_FMIN_HZ = 100.0
BAND_FMAX_HZ = 8000.0
BACKGROUND_RMS_UV = 15.0
"""Target RMS of the brain background (1/f + alpha) per channel after average reference, µV."""

LOCAL_SHARE = 0.45
"""RMS of the per-electrode (spatially independent) 1/f background relative to BACKGROUND_RMS_UV."""

_FEATURE_HOP = 147  # audio samples per feature frame at 22050 Hz (150 frames/s)
_FEATURE_NFFT = 1024


# ---------------------------------------------------------------------------------------------
# Stimulus features


def _band_filters(n_fft: int, sfreq: float, n_bands: int) -> np.ndarray:
    """Triangular filters evenly spaced on a log-frequency axis, shape (n_bands, n_fft//2+1)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sfreq)
    edges = np.geomspace(BAND_FMIN_HZ, BAND_FMAX_HZ, n_bands + 2)
    log_f = np.log(np.maximum(freqs, 1.0))
    filters = np.zeros((n_bands, freqs.size))
    for b in range(n_bands):
        lo, mid, hi = np.log(edges[b:b + 3])
        rise = (log_f - lo) / (mid - lo)
        fall = (hi - log_f) / (hi - mid)
        filters[b] = np.clip(np.minimum(rise, fall), 0.0, None)
    return filters / filters.sum(axis=1, keepdims=True)


def _highpass_moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Subtract a centred moving average of ``width`` samples along the last axis."""
    from scipy.ndimage import uniform_filter1d

    return x - uniform_filter1d(x, size=max(int(width), 1), axis=-1, mode="nearest")


def stimulus_features(audio: np.ndarray, *, audio_sfreq: float, sfreq: float, n_times: int,
                      n_bands: int = N_BANDS) -> tuple[np.ndarray, np.ndarray]:
    """Auditory band envelopes and onsets of a stimulus, at the EEG rate.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
        Mono stimulus.
    audio_sfreq : float
        Its rate in Hz (22050).
    sfreq : float
        EEG rate in Hz.
    n_times : int
        EEG samples wanted; EEG sample k is at k / sfreq s of stimulus time.
    n_bands : int
        Number of log-spaced bands between 100 Hz and 8 kHz.

    Returns
    -------
    envelopes : ndarray, shape (n_bands, n_times)
        Compressed band envelopes, high-passed (~0.3 Hz), unit variance per band.
    onsets : ndarray, shape (n_times,)
        Half-wave rectified spectral flux, unit variance.
    """
    audio = np.asarray(audio, dtype=np.float32)
    hop, n_fft = _FEATURE_HOP, _FEATURE_NFFT
    filters = _band_filters(n_fft, audio_sfreq, n_bands).astype(np.float32)
    padded = np.pad(audio, (n_fft // 2, n_fft // 2))
    n_frames = 1 + (padded.size - n_fft) // hop
    window = np.hanning(n_fft).astype(np.float32)
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, n_fft), strides=(padded.strides[0] * hop, padded.strides[0]),
        writeable=False,
    )
    # power in float64: squared in float32, a spectrum of 2e19 overflowed to inf and every feature to NaN
    power = np.empty((n_bands, n_frames), dtype=np.float64)
    block = 4096  # frames per FFT block: memory stays a few tens of MB for any song length
    for start in range(0, n_frames, block):
        spec = np.fft.rfft(frames[start:start + block] * window, axis=1)
        magnitude = np.abs(spec).astype(np.float64)
        power[:, start:start + block] = filters @ (magnitude * magnitude).T
    compressed = np.power(power + 1e-8, 0.3)
    flux = np.maximum(np.diff(np.log(power + 1e-6), axis=1, prepend=0.0), 0.0)
    onset_frames = flux.sum(axis=0)
    frame_rate = audio_sfreq / hop
    compressed = _highpass_moving_average(compressed, int(3.0 * frame_rate))
    onset_frames = _highpass_moving_average(onset_frames, int(3.0 * frame_rate))
    frame_times = np.arange(n_frames) / frame_rate
    times = np.arange(int(n_times)) / float(sfreq)
    envelopes = np.stack([np.interp(times, frame_times, band, right=0.0) for band in compressed])
    onsets = np.interp(times, frame_times, onset_frames, right=0.0)
    envelopes /= np.maximum(envelopes.std(axis=1, keepdims=True), 1e-12)
    onsets /= max(float(onsets.std()), 1e-12)
    return envelopes, onsets


# ---------------------------------------------------------------------------------------------
# Temporal response functions and participants


def trf_kernel(sfreq: float, *, latency_scale: float = 1.0, p1: float = 0.4, n1: float = 1.0,
               p2: float = 0.7, length_s: float = 0.5) -> np.ndarray:
    """A P1-N1-P2 temporal response function (vertex-positive is positive).

    Gaussian components at 50, 100 and 180 ms (widths 12, 20, 35 ms), all stretched by
    ``latency_scale``.

    Parameters
    ----------
    sfreq : float
        Rate in Hz.
    latency_scale : float
        Multiplies every latency and width (1 = textbook adult latencies).
    p1, n1, p2 : float
        Component amplitudes (arbitrary units; N1 is subtracted).
    length_s : float
        Kernel length in seconds.

    Returns
    -------
    kernel : ndarray, shape (round(length_s * sfreq),)
        Lag 0 first.
    """
    t = np.arange(int(round(length_s * sfreq))) / float(sfreq)

    def bump(centre: float, width: float) -> np.ndarray:
        return np.exp(-0.5 * ((t - centre * latency_scale) / (width * latency_scale)) ** 2)

    return p1 * bump(0.050, 0.012) - n1 * bump(0.100, 0.020) + p2 * bump(0.180, 0.035)


@dataclass(frozen=True)
class Participant:
    """One simulated participant: anatomy, evoked response and background traits.

    Drawn once per participant (the same in every song) by :func:`draw_participant`.
    """

    auditory_pos: np.ndarray      # (4, 3) L-lateral, L-medial, R-lateral, R-medial; metres
    auditory_ori: np.ndarray      # (4, 3)
    band_weights: np.ndarray      # (4, n_bands) tonotopic weights of each source
    onset_weight: float
    latency_scale: float
    trf_amplitudes: tuple[float, float, float]   # P1, N1, P2
    hemisphere_gain: tuple[float, float]          # left, right
    gain: float                   # evoked SNR multiplier (log-normal, geometric mean 1)
    background_pos: np.ndarray    # (n_background, 3)
    background_ori: np.ndarray    # (n_background, 3)
    pink_exponent: float
    alpha_hz: float
    alpha_gain: float
    blink_per_min: float
    channel_noise_uv: np.ndarray  # (129,) white sensor noise SD per electrode
    drift_uv: np.ndarray          # (129,) drift SD per electrode
    line_uv: np.ndarray           # (129,) 60 Hz amplitude per electrode (raw recordings)


def draw_participant(rng: np.random.Generator, head: HeadModel | None = None, *,
                     n_background: int = 64, n_bands: int = N_BANDS) -> Participant:
    """Draw a participant's traits.

    Parameters
    ----------
    rng : numpy.random.Generator
    head : HeadModel, optional
        Defaults to :func:`head_model`.
    n_bands : int
    n_background : int
        Number of background dipoles.

    Returns
    -------
    participant : Participant
    """
    head = head or head_model()
    radius = head.radius
    base = []
    for side in (-1.0, 1.0):
        # lateral (low frequencies) and medial (high frequencies) Heschl's gyrus, in sphere coordinates
        base.append((side * 0.55 * radius, -0.10 * radius, -0.05 * radius))
        base.append((side * 0.38 * radius, -0.14 * radius, -0.02 * radius))
    auditory_pos = np.array(base) + rng.normal(0.0, 0.004, size=(4, 3))
    ori = np.array([[0.0, 0.3, 1.0], [0.25, 0.2, 1.0], [0.0, 0.3, 1.0], [-0.25, 0.2, 1.0]])
    ori = ori + rng.normal(0.0, 0.15, size=ori.shape)
    bands = np.arange(n_bands) / max(n_bands - 1, 1)
    low = np.exp(-2.0 * bands)
    high = np.exp(-2.0 * (1.0 - bands))
    weights = np.stack([low, high, low, high]) * rng.lognormal(0.0, 0.2, size=(4, n_bands))
    weights /= weights.sum(axis=1, keepdims=True)
    # background dipoles: uniform in the upper 3/4 of a ball of 0.8 radius
    points = []
    while len(points) < n_background:
        p = rng.uniform(-0.8, 0.8, size=3) * radius
        if np.linalg.norm(p) < 0.8 * radius and np.linalg.norm(p) > 0.2 * radius and p[2] > -0.35 * radius:
            points.append(p)
    return Participant(
        auditory_pos=auditory_pos,
        auditory_ori=ori / np.linalg.norm(ori, axis=1, keepdims=True),
        band_weights=weights,
        onset_weight=float(rng.uniform(0.6, 1.2)),
        latency_scale=float(np.clip(rng.normal(1.0, 0.07), 0.85, 1.2)),
        trf_amplitudes=(float(rng.uniform(0.25, 0.55)), float(rng.uniform(0.8, 1.2)),
                        float(rng.uniform(0.5, 0.9))),
        hemisphere_gain=(float(rng.uniform(0.8, 1.0)), float(rng.uniform(0.9, 1.2))),
        gain=float(rng.lognormal(0.0, 0.3)),
        background_pos=np.array(points),
        background_ori=rng.standard_normal((n_background, 3)),
        pink_exponent=float(rng.uniform(1.0, 1.5)),
        alpha_hz=float(np.clip(rng.normal(10.0, 0.8), 8.0, 12.5)),
        alpha_gain=float(rng.lognormal(0.0, 0.3)),
        blink_per_min=float(rng.uniform(8.0, 20.0)),
        channel_noise_uv=rng.uniform(0.5, 1.5, size=len(NET_CHANNELS)),
        drift_uv=rng.lognormal(np.log(3.0), 0.4, size=len(NET_CHANNELS)),
        line_uv=rng.lognormal(np.log(5.0), 0.7, size=len(NET_CHANNELS)),
    )


# ---------------------------------------------------------------------------------------------
# Signals


def _shaped_noise(rng: np.random.Generator, n_series: int, n_times: int, sfreq: float,
                  amplitude) -> np.ndarray:
    """Gaussian noise with an amplitude spectrum ``amplitude(freqs)``, unit variance per series."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    spectrum = rng.standard_normal((n_series, freqs.size)) + 1j * rng.standard_normal((n_series, freqs.size))
    spectrum *= amplitude(freqs)
    spectrum[:, 0] = 0.0
    series = np.fft.irfft(spectrum, n=n_times, axis=1)
    series /= np.maximum(series.std(axis=1, keepdims=True), 1e-12)
    return series


def evoked_sources(participant: Participant, envelopes: np.ndarray, onsets: np.ndarray,
                   sfreq: float) -> np.ndarray:
    """Auditory-cortex source time courses (arbitrary units).

    Parameters
    ----------
    participant : Participant
    envelopes : ndarray, shape (n_bands, n_times)
    onsets : ndarray, shape (n_times,)
    sfreq : float

    Returns
    -------
    sources : ndarray, shape (4, n_times)
        L-lateral, L-medial, R-lateral, R-medial.
    """
    from scipy.signal import oaconvolve

    p1, n1, p2 = participant.trf_amplitudes
    env_kernel = trf_kernel(sfreq, latency_scale=participant.latency_scale, p1=p1, n1=n1, p2=p2)
    onset_kernel = trf_kernel(sfreq, latency_scale=participant.latency_scale, p1=0.5 * p1, n1=1.3 * n1,
                              p2=0.8 * p2)
    n_times = envelopes.shape[1]
    drive = participant.band_weights @ envelopes                                 # (4, n_times)
    response = oaconvolve(drive, env_kernel[None, :], axes=1)[:, :n_times]
    response += participant.onset_weight * oaconvolve(onsets[None, :], onset_kernel[None, :],
                                                      axes=1)[:, :n_times]
    left, right = participant.hemisphere_gain
    return response * np.array([left, left, right, right])[:, None]


def background(participant: Participant, n_times: int, sfreq: float, rng: np.random.Generator,
               head: HeadModel | None = None) -> np.ndarray:
    """Brain background, blinks, drift and sensor noise at the net's electrodes.

    Parameters
    ----------
    participant : Participant
    n_times : int
    sfreq : float
    rng : numpy.random.Generator
    head : HeadModel, optional

    Returns
    -------
    net_uv : ndarray, shape (129, n_times)
        µV against infinity (reference later).
    """
    from scipy.signal import oaconvolve

    head = head or head_model()
    beta = participant.pink_exponent
    gains, series = [], []
    # spatially correlated 1/f activity of cortical dipoles (unit-variance time courses)
    pink = _shaped_noise(rng, len(participant.background_pos), n_times, sfreq,
                         lambda f: 1.0 / np.maximum(f, 0.5) ** (beta / 2.0))
    gain = head.gain(participant.background_pos, participant.background_ori)
    gains.append(gain * (0.8 * BACKGROUND_RMS_UV / _model_rms_of_gain(gain)))
    series.append(pink)

    # posterior alpha: two parieto-occipital dipoles, narrow band, waxing and waning
    alpha_pos = np.array([head.inside(0.6, (-0.35, -0.85, 0.4)), head.inside(0.6, (0.35, -0.85, 0.4))])
    alpha_ori = np.array([[0.2, -0.6, 0.8], [-0.2, -0.6, 0.8]])
    f0 = participant.alpha_hz
    alpha = _shaped_noise(rng, 2, n_times, sfreq, lambda f: np.exp(-0.5 * ((f - f0) / 0.7) ** 2))
    envelope = _shaped_noise(rng, 2, n_times, sfreq, lambda f: np.exp(-0.5 * (f / 0.3) ** 2))
    alpha *= np.clip(1.0 + 0.8 * envelope, 0.0, None)
    alpha /= np.maximum(alpha.std(axis=1, keepdims=True), 1e-12)
    gain = head.gain(alpha_pos, alpha_ori)
    gains.append(gain * (0.45 * BACKGROUND_RMS_UV * participant.alpha_gain / _model_rms_of_gain(gain)))
    series.append(alpha)

    # blinks: corneo-retinal dipoles at the eyes, events at the participant's blink rate
    n_blinks = rng.poisson(participant.blink_per_min * n_times / sfreq / 60.0)
    if n_blinks:
        impulses = np.zeros(n_times)
        idx = rng.integers(0, n_times, size=n_blinks)
        np.add.at(impulses, idx, rng.uniform(0.6, 1.4, size=n_blinks))
        t = np.arange(int(0.6 * sfreq)) / sfreq
        shape = (t / 0.08) ** 2 * np.exp(-t / 0.08)
        shape /= shape.max()
        eye_pos = np.array([head.inside(0.8, (-0.3, 0.9, -0.3)), head.inside(0.8, (0.3, 0.9, -0.3))])
        eye_gain = head.gain(eye_pos, np.array([[0.0, 1.0, 0.3], [0.0, 1.0, 0.3]])).sum(axis=1)
        eye_gain *= 80.0 / np.max(np.abs(eye_gain - eye_gain.mean()))  # ~80 µV at the frontal pole
        gains.append(eye_gain[:, None])
        series.append(oaconvolve(impulses, shape)[None, :n_times])

    net = np.hstack(gains) @ np.vstack(series)
    net += _electrode_noise(participant, n_times, sfreq, rng)
    return net


def _model_rms_of_gain(gain: np.ndarray) -> float:
    """RMS over the model channels, after average reference, of unit-variance independent sources."""
    model = gain[MODEL_INDEX] - gain[MODEL_INDEX].mean(axis=0, keepdims=True)
    return float(np.sqrt(np.sum(model**2) / len(MODEL_INDEX)))


def _electrode_noise(participant: Participant, n_times: int, sfreq: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Independent noise at each electrode: local 1/f activity, slow drift and white sensor noise.

    The three are drawn at once through one spectrum per electrode (one inverse FFT in all).

    Returns
    -------
    net_uv : ndarray, shape (129, n_times)
    """
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    inner = slice(1, None)  # no DC: the mean of every electrode is zero

    def unit(power: np.ndarray) -> np.ndarray:
        power = power.copy()
        power[0] = 0.0
        return power / power[inner].sum()

    local = unit(1.0 / np.maximum(freqs, 0.5) ** participant.pink_exponent)
    drift = unit(1.0 / (1.0 + (freqs / 0.05) ** 2) ** 2)
    white = unit(np.ones_like(freqs))
    power = ((LOCAL_SHARE * BACKGROUND_RMS_UV) ** 2 * local[None, :]
             + participant.drift_uv[:, None] ** 2 * drift[None, :]
             + participant.channel_noise_uv[:, None] ** 2 * white[None, :])
    # irfft of coefficients a_k (g + i h), g, h ~ N(0, 1): variance ≈ 4 / n² · Σ a_k²
    amplitude = np.sqrt(power) * (n_times / 2.0)
    spectrum = np.empty(amplitude.shape, dtype=np.complex128)
    spectrum.real = rng.standard_normal(amplitude.shape)
    spectrum.imag = rng.standard_normal(amplitude.shape)
    spectrum *= amplitude
    return np.fft.irfft(spectrum, n=n_times, axis=1)


def line_noise(participant: Participant, n_times: int, sfreq: float, rng: np.random.Generator,
               *, line_hz: float = 60.0) -> np.ndarray:
    """Mains interference per electrode (µV), with a small third harmonic.

    Returns
    -------
    net_uv : ndarray, shape (129, n_times)
    """
    t = np.arange(n_times) / sfreq
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(len(NET_CHANNELS), 1))
    noise = np.sin(2.0 * np.pi * line_hz * t[None, :] + phase)
    if 3.0 * line_hz < sfreq / 2.0:
        noise += 0.15 * np.sin(2.0 * np.pi * 3.0 * line_hz * t[None, :] + 3.0 * phase)
    return participant.line_uv[:, None] * noise


def simulate_net(participant: Participant, envelopes: np.ndarray, onsets: np.ndarray, *, sfreq: float,
                 snr: float, rng: np.random.Generator, head: HeadModel | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One participant's EEG for one song at the net's electrodes.

    Parameters
    ----------
    participant : Participant
    envelopes : ndarray, shape (n_bands, n_times)
    onsets : ndarray, shape (n_times,)
    sfreq : float
        Rate in Hz of the features and of the output.
    snr : float
        Evoked share of the variance (after average reference), in (0, 1).
    rng : numpy.random.Generator
        Draws the background of this song.
    head : HeadModel, optional

    Returns
    -------
    evoked : ndarray, shape (129, n_times)
        Evoked part in µV (against infinity).
    background : ndarray, shape (129, n_times)
        Everything else in µV (against infinity).
    """
    head = head or head_model()
    n_times = envelopes.shape[1]
    sources = evoked_sources(participant, envelopes, onsets, sfreq)
    evoked = head.gain(participant.auditory_pos, participant.auditory_ori) @ sources
    rest = background(participant, n_times, sfreq, rng, head)
    var_rest = model_variance(rest)
    var_evoked = model_variance(evoked)
    snr = float(np.clip(snr, 1e-6, 0.999))
    evoked *= np.sqrt(snr / (1.0 - snr) * var_rest / max(var_evoked, 1e-30))
    return evoked, rest
