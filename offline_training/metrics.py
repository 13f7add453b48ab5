"""Reconstruction metrics: plain functions over mel-dB arrays.

Two families, side by side on purpose:

* **per-window** scores, comparable with the published NMED-T numbers (EEG2Mel and its replications):
  :func:`mse`, :func:`cosine` and :func:`pearson`, each over a 1-s window flattened to one vector.
  A constant mean spectrum already scores high on these, because the spectral tilt of music
  (loud lows, quiet highs) dominates every window.
* **over-time** score, the honest one: :func:`dynamic_r`, the Pearson correlation of each mel band
  *over time* across a contiguous held-out block. A constant prediction scores exactly 0.

:func:`frechet_distance` compares two sets of embeddings (for instance the song classifier's
features of true and reconstructed windows).

Conventions: a correlation whose series has zero variance is defined as 0 (a flat prediction tracks
nothing), never NaN; the per-band Pearson and that rule live in :mod:`decoder.metrics`, shared with
the live decoder's scoring, and are re-exported here. Arrays are mel-dB, shape
``(n_windows, n_mels, n_frames)`` for windows and ``(n_mels, n_frames)`` for a block of concatenated
frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from eegmusic.decoder.metrics import band_pearson, rows_pearson

_EPS = 1e-12


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return both as float64 arrays of one shape with a leading window axis."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    if pred.ndim < 2 or pred.shape[0] == 0:
        raise ValueError(f"need at least one window of shape (n_windows, ...), got {pred.shape}")
    return pred.reshape(pred.shape[0], -1), target.reshape(target.shape[0], -1)


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error over every value (dB²).

    Parameters
    ----------
    pred, target : ndarray, shape (n_windows, n_mels, n_frames)
        Mel-dB windows.

    Returns
    -------
    float
        ``mean((pred - target) ** 2)``.
    """
    pred, target = _pair(pred, target)
    return float(np.mean((pred - target) ** 2))


def cosine_per_window(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cosine similarity of each window, flattened to one vector (EEG2Mel style).

    Parameters
    ----------
    pred, target : ndarray, shape (n_windows, n_mels, n_frames)

    Returns
    -------
    ndarray, shape (n_windows,)
        ``<p, t> / (|p| |t|)`` per window; 0 where either vector is all zeros.
    """
    pred, target = _pair(pred, target)
    dot = np.sum(pred * target, axis=1)
    norm = np.linalg.norm(pred, axis=1) * np.linalg.norm(target, axis=1)
    return np.where(norm > _EPS, dot / np.maximum(norm, _EPS), 0.0)


def cosine(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over windows of :func:`cosine_per_window` (the EEG2Mel cosine score).

    Mel-dB values are mostly negative (reference 1.0, floor -80 dB), so any plausible spectrum
    scores close to 1: compare against the baselines, never alone.
    """
    return float(np.mean(cosine_per_window(pred, target)))


def pearson_per_window(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson correlation of each window, flattened to one vector.

    Parameters
    ----------
    pred, target : ndarray, shape (n_windows, n_mels, n_frames)

    Returns
    -------
    ndarray, shape (n_windows,)
        Pearson r per window; 0 where either window is constant.
    """
    pred, target = _pair(pred, target)
    return rows_pearson(pred, target)


def pearson(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over windows of :func:`pearson_per_window`.

    Like :func:`cosine`, this rewards the spectral shape of a window: a constant mean spectrum
    already scores high.
    """
    return float(np.mean(pearson_per_window(pred, target)))


def dynamic_r(pred_blocks: Sequence[np.ndarray], target_blocks: Sequence[np.ndarray]) -> float:
    """Dynamic correlation: per-band Pearson over time, averaged over bands, then over blocks.

    Each block is one contiguous held-out stretch of one song and one subject, its frames in time
    order (in :mod:`offline_training.scoring`: the 44-frame outputs of successive windows at a 1-s
    hop, concatenated). Unlike :func:`cosine` and :func:`pearson`, a prediction that does not move
    with the music scores 0 however good its average spectrum.

    Parameters
    ----------
    pred_blocks, target_blocks : sequence of ndarray, each shape (n_mels, n_frames_block)
        Matching blocks; block lengths may differ.

    Returns
    -------
    float
        ``mean_blocks(mean_bands(r))``.
    """
    if len(pred_blocks) != len(target_blocks):
        raise ValueError(f"{len(pred_blocks)} predicted blocks but {len(target_blocks)} target blocks")
    if len(pred_blocks) == 0:
        raise ValueError("dynamic_r needs at least one block")
    per_block = [float(np.mean(band_pearson(p, t))) for p, t in zip(pred_blocks, target_blocks, strict=True)]
    return float(np.mean(per_block))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Fréchet distance between two sets of embeddings, each modelled as a Gaussian.

    ``|mu_a - mu_b|² + tr(C_a + C_b - 2 (C_a C_b)^½)`` with sample covariances (ddof 1), as in the
    Fréchet Inception / Audio Distance.

    Parameters
    ----------
    emb_a : ndarray, shape (n_a, n_dims)
    emb_b : ndarray, shape (n_b, n_dims)
        At least 2 rows each.

    Returns
    -------
    float
        Non-negative distance (squared units of the embedding).
    """
    emb_a = np.asarray(emb_a, dtype=np.float64)
    emb_b = np.asarray(emb_b, dtype=np.float64)
    if emb_a.ndim != 2 or emb_b.ndim != 2 or emb_a.shape[1] != emb_b.shape[1]:
        raise ValueError(
            f"need two (n, n_dims) arrays with equal n_dims, got {emb_a.shape} and {emb_b.shape}"
        )
    if emb_a.shape[0] < 2 or emb_b.shape[0] < 2:
        raise ValueError("frechet_distance needs at least 2 embeddings per set")
    mu_a, mu_b = emb_a.mean(axis=0), emb_b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(emb_a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(emb_b, rowvar=False))
    # tr((C_a C_b)^½) = tr((C_a^½ C_b C_a^½)^½): symmetric PSD matrices only, so eigh is exact and
    # stays well-behaved for singular covariances (fewer embeddings than dimensions, constant sets).
    sqrt_a = _psd_sqrt(cov_a)
    inner = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_covmean = float(np.sum(np.sqrt(np.clip(inner, 0.0, None))))
    diff = mu_a - mu_b
    distance = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_covmean
    return float(max(distance, 0.0))
