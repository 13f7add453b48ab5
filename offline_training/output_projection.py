"""Reduced-rank output: a decoder's mel-dB projected on the leading principal directions of its own
training outputs, the rank chosen on the validation part.

The simulated (and, by design, the real) evoked response follows a few stimulus features — band
envelopes of low and high frequencies, onsets — so the part of a 128-band mel spectrogram that EEG
can tell about spans few directions across bands; the rest of each band's prediction is band-private
noise. Keeping only the ``k`` leading principal directions of the decoder's outputs on its training
windows (reduced-rank regression, when the decoder is ridge) drops that noise:

    projected = centre + P (mel_db − centre),   P = V_k V_kᵀ

with ``centre`` the mean training output (n_mels,) and ``V_k`` (n_mels, k). The projection is linear,
so a model applies it inside its exported graph and the live path gets it too
(:class:`offline_training.models.ensemble.Ensemble` ``output_ranks``).
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def principal_projection(outputs: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and rank-``rank`` projection of a set of mel-dB outputs.

    Parameters
    ----------
    outputs : ndarray, shape (n_windows, n_mels, n_frames), dB
        A decoder's outputs on its training windows.
    rank : int
        Principal directions kept (1 … n_mels).

    Returns
    -------
    centre : ndarray, shape (n_mels,), dB
        Mean output over windows and frames.
    projection : ndarray, shape (n_mels, n_mels)
        ``V_k V_kᵀ``: symmetric, idempotent, trace ``rank``.
    """
    n_mels = outputs.shape[1]
    if not 1 <= rank <= n_mels:
        raise ValueError(f"rank {rank} must be in 1..{n_mels}")
    frames = np.asarray(outputs, dtype=np.float64).transpose(0, 2, 1).reshape(-1, n_mels)
    centre = frames.mean(axis=0)
    _, _, vt = np.linalg.svd(frames - centre, full_matrices=False)
    basis = vt[:rank].T
    return centre, basis @ basis.T


def project(outputs: np.ndarray, centre: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """``centre + P (outputs − centre)`` for every frame; shape (n_windows, n_mels, n_frames) kept."""
    centred = np.asarray(outputs, dtype=np.float64) - centre[None, :, None]
    return centre[None, :, None] + np.einsum("nm,wmf->wnf", projection, centred)


def choose_rank(train_outputs: np.ndarray, val_outputs: np.ndarray, score, ranks) -> dict:
    """The output rank that scores best on the validation part (full rank among the candidates).

    Parameters
    ----------
    train_outputs : ndarray, shape (n_train, n_mels, n_frames), dB
        The decoder's outputs on training windows: the directions come from these.
    val_outputs : ndarray, shape (n_val, n_mels, n_frames), dB
        Its outputs on validation windows.
    score : callable
        ``score(outputs) -> float`` on validation outputs, higher is better (e.g. the pooled per-band
        Pearson r the ensemble's weights are chosen by).
    ranks : sequence of int
        Candidate ranks; the unprojected output (full rank) always competes, and wins ties.

    Returns
    -------
    dict
        ``rank`` (int, or None for no projection), ``centre`` (n_mels,), ``projection``
        (n_mels, n_mels; the identity for None) and ``scores`` (the rank as text, or "full", →
        validation score).
    """
    n_mels = train_outputs.shape[1]
    best = {"rank": None, "centre": np.zeros(n_mels), "projection": np.eye(n_mels)}
    scores = {"full": float(score(val_outputs))}
    best_score = scores["full"]
    for rank in sorted({int(r) for r in ranks if 0 < int(r) < n_mels}):
        centre, projection = principal_projection(train_outputs, rank)
        scores[str(rank)] = float(score(project(val_outputs, centre, projection)))
        if scores[str(rank)] > best_score:
            best_score = scores[str(rank)]
            best = {"rank": rank, "centre": centre, "projection": projection}
    logger.info("output rank chosen on validation: %s (r %s)", best["rank"] or "full",
                ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()))
    return {**best, "scores": scores}


def fit_output_projection(model, dataset, split, batch_size: int, device) -> dict:
    """Choose and set a model's output projection: directions from its training outputs, rank on validation.

    The model's outputs (with its projection still the identity) on the training part give the
    directions; each candidate rank of ``model.output_ranks`` and the unprojected output are scored on
    the validation part by the pooled per-band Pearson r with each (song, listener) recording centred
    on its own means (the criterion the ensemble's weights are chosen by); interior frames only
    (:data:`offline_training.scoring.INTERIOR_FRAMES`).

    Parameters
    ----------
    model : Ensemble
        With ``output_ranks`` and :meth:`~offline_training.models.ensemble.Ensemble.set_output_projection`.
    dataset : WindowDataset
    split : Split
        ``split.train`` and ``split.val`` are read.
    batch_size : int
    device : torch.device or str

    Returns
    -------
    dict
        ``rank`` (None: unprojected) and ``scores`` (see :func:`choose_rank`).
    """
    if len(split.val) == 0:
        logger.warning("no validation part to choose an output rank on: the output stays unprojected")
        return {"rank": None, "scores": {}}
    import torch
    from eegmusic.offline_training.loop_regression import band_pearson, centre_groups, recording_groups

    train_outputs, _ = _outputs(model, dataset, split.train, batch_size, device)
    val_outputs, val_targets = _outputs(model, dataset, split.val, batch_size, device)
    groups = recording_groups(dataset, split.val)
    target = centre_groups(torch.from_numpy(val_targets), groups)

    def score(outputs):
        return float(band_pearson(centre_groups(torch.from_numpy(outputs), groups), target).mean())

    choice = choose_rank(train_outputs, val_outputs, score, model.output_ranks)
    model.set_output_projection(choice["centre"], choice["projection"])
    return {"rank": choice["rank"], "scores": choice["scores"]}


def _outputs(model, dataset, rows, batch_size: int, device) -> tuple[np.ndarray, np.ndarray]:
    """(model mel-dB, target mel-dB) of ``rows``, interior frames: each (n, n_mels, n_interior)."""
    import torch
    from eegmusic.offline_training.loop import batches
    from eegmusic.offline_training.scoring import INTERIOR_FRAMES

    outputs, targets = [], []
    model.eval()
    with torch.no_grad():
        for eeg, mel, subject in batches(dataset, rows, batch_size, device):
            out = model(eeg, subject if model.subject_input else None)
            outputs.append(out[:, :, INTERIOR_FRAMES].cpu().numpy())
            targets.append(mel[:, :, INTERIOR_FRAMES].cpu().numpy())
    return np.concatenate(outputs).astype(np.float64), np.concatenate(targets).astype(np.float64)
