"""Multi-listener shared-response denoising (MCCA): keep what listeners of the same music share.

Listeners who hear the same music at the same time share the part of their EEG the music evokes; their
background (ongoing rhythms, blinks, drift, sensor noise) is their own. Multiway canonical correlation
analysis (de Cheveigné et al. 2019) finds the spatial filters whose outputs agree across listeners:

1. each listener's EEG ``x_s`` (channels × time, demeaned 1-s windows of the early recording of every
   song) is whitened inside its top ``n_pcs`` principal components: ``z_s = W_s x_s``;
2. the whitened listeners are stacked (same songs, same moments) and the principal components of the
   stack are the summary components; the top ``n_components`` are the ones most shared;
3. listener ``s``'s own part of those components is a spatial filter ``F_s`` (n_components ×
   channels): ``y_s = F_s x_s`` needs only that listener's EEG;
4. the denoising matrix projects ``x_s`` onto its shared components and back to the scalp through the
   least-squares patterns ``A_s = C_s F_sᵀ (F_s C_s F_sᵀ)⁻¹`` (``C_s`` the listener's covariance):
   ``x̂_s = A_s F_s x_s`` keeps channels and µV, so every model reads it like EEG.

The filters read EEG only — no mel, no audio — but they rely on the listeners having heard the same
songs in step, which the early (training / calibration) recordings give. A listener the models never
saw (the subject split) gets its filter from its own early recording alongside the others', as Euclidean
alignment does; its later (test) recording is never read.

Scope: **offline only**, like :mod:`offline_training.alignment`: :func:`listener_denoisers` gives one
matrix per listener for :func:`offline_training.alignment.align_folder`.
"""

from __future__ import annotations

import logging

import numpy as np
from eegmusic.offline_training.alignment import WINDOW_SAMPLES, data_subspace
from eegmusic.stream.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

N_COMPONENTS = 2
"""Shared components kept per listener (chosen on a validation excerpt of the simulator at a 10 %
evoked share, where one component is shared far above the rest; ``benchmarks/bench_quality.py``
``MCCA`` records the figures)."""

N_PCS = 90
"""Principal components of each listener whitened before stacking (drops the weakest, noisiest ones;
chosen with :data:`N_COMPONENTS`)."""


def demeaned_windows(eeg: np.ndarray, window: int = WINDOW_SAMPLES) -> np.ndarray:
    """A recording cut into whole windows, each demeaned per channel, joined again.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times), µV
    window : int
        Samples per window.

    Returns
    -------
    ndarray, shape (n_chans, n_windows * window), µV
    """
    eeg = np.asarray(eeg, dtype=np.float64)
    n_windows = eeg.shape[1] // window
    cut = eeg[:, : n_windows * window].reshape(eeg.shape[0], n_windows, window)
    return (cut - cut.mean(axis=2, keepdims=True)).reshape(eeg.shape[0], -1)


def shared_filters(listeners: list[np.ndarray], *, n_components: int = N_COMPONENTS,
                   n_pcs: int = N_PCS) -> tuple[list[np.ndarray], np.ndarray]:
    """MCCA spatial filters of several listeners recorded in step.

    Parameters
    ----------
    listeners : list of ndarray, each shape (n_chans, n_times), µV
        Each listener's EEG over the same moments of the same music (demeaned).
    n_components : int
        Summary components kept.
    n_pcs : int
        Principal components per listener whitened and stacked (at most the listener's rank).

    Returns
    -------
    filters : list of ndarray, each shape (n_components, n_chans)
        ``F_s``: listener ``s``'s shared components are ``F_s @ x_s``.
    eigenvalues : ndarray, shape (n_components,)
        Variance of each summary component in whitened units: ``len(listeners)`` for a component every
        listener carries identically, 1 for one that only one listener carries.
    """
    if len(listeners) < 2:
        raise ConfigError("shared-response denoising needs at least 2 listeners of the same songs; "
                          "use plain EEG (no 'mcca') for a single listener")
    lengths = {x.shape[1] for x in listeners}
    if len(lengths) != 1:
        raise DataFormatError(f"listeners' recordings differ in length ({sorted(lengths)} samples); MCCA "
                              "needs every listener over the same moments of the same songs")
    whiteners, stacked = [], []
    for x in listeners:
        eigenvalues, vectors = data_subspace(x @ x.T / x.shape[1])
        keep = min(n_pcs, len(eigenvalues))
        whitener = (vectors[:, :keep] / np.sqrt(eigenvalues[:keep])).T  # (keep, n_chans)
        whiteners.append(whitener)
        stacked.append(whitener @ x)
    if n_components > sum(w.shape[0] for w in whiteners):
        raise ConfigError(f"{n_components} shared components exceed the {sum(len(w) for w in whiteners)} "
                          "stacked principal components; ask for fewer")
    stack = np.vstack(stacked)
    summary_eig, summary = np.linalg.eigh(stack @ stack.T / stack.shape[1])
    order = np.argsort(summary_eig)[::-1][:n_components]
    summary, summary_eig = summary[:, order], summary_eig[order]
    bounds = np.cumsum([0] + [w.shape[0] for w in whiteners])
    filters = [summary[a:b].T @ w for a, b, w in zip(bounds[:-1], bounds[1:], whiteners, strict=True)]
    return filters, summary_eig


def denoising_matrix(covariance: np.ndarray, spatial_filter: np.ndarray) -> np.ndarray:
    """``A F``: a listener's EEG projected on its shared components and back to the channels.

    Parameters
    ----------
    covariance : ndarray, shape (n_chans, n_chans), µV²
        The listener's covariance ``C``.
    spatial_filter : ndarray, shape (n_components, n_chans)
        ``F`` from :func:`shared_filters`.

    Returns
    -------
    ndarray, shape (n_chans, n_chans)
        ``C Fᵀ (F C Fᵀ)⁻¹ F``: the identity on the shared components, zero on what ``F`` ignores.
    """
    patterns = covariance @ spatial_filter.T @ np.linalg.pinv(spatial_filter @ covariance @ spatial_filter.T)
    return patterns @ spatial_filter


def listener_denoisers(folder, *, n_components: int = N_COMPONENTS, n_pcs: int = N_PCS) -> dict:
    """One MCCA denoising matrix per listener of an NMED-T folder, from the songs every listener heard.

    Parameters
    ----------
    folder : str or Path
        NMED-T folder (``songNN_Imputed.mat``): the listeners' early (training / calibration) EEG.
    n_components, n_pcs : int
        See :func:`shared_filters`.

    Returns
    -------
    dict
        Participant id → ndarray (n_chans, n_chans), for
        :func:`offline_training.alignment.align_folder`.

    Raises
    ------
    DataFormatError
        No song was heard by every listener of the folder.
    """
    from eegmusic.offline_training.alignment import _songs

    songs = list(_songs(folder))
    everyone = sorted(set.union(*(set(map(str, s.subjects)) for s in songs)))
    shared = [s for s in songs if set(map(str, s.subjects)) == set(everyone)]
    if not shared:
        raise DataFormatError(f"no song of {folder} was heard by all {len(everyone)} listeners; MCCA needs "
                              "songs every listener heard (give a folder of such songs)")
    per_listener = {
        subject: np.hstack([demeaned_windows(s.data[:, :, list(map(str, s.subjects)).index(subject)])
                            for s in shared])
        for subject in everyone}
    filters, eigenvalues = shared_filters(list(per_listener.values()), n_components=n_components,
                                          n_pcs=n_pcs)
    logger.info("MCCA over %d listeners, %d songs: summary variances %s (1 = not shared, %d = shared by all)",
                len(everyone), len(shared), np.round(eigenvalues, 2).tolist(), len(everyone))
    return {subject: denoising_matrix(x @ x.T / x.shape[1], f)
            for (subject, x), f in zip(per_listener.items(), filters, strict=True)}
