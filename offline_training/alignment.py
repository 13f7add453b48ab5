"""Euclidean alignment (EA) of each listener's EEG: the listener's spatial covariance made the identity.

Listeners differ in head shape, electrode contact and background rhythms, so the same brain response
reaches the scalp mixed with differently correlated background. Euclidean alignment (He & Wu 2019)
whitens each listener's EEG by that listener's own mean spatial covariance ``R``: every sample
``x`` (channels) becomes ``unit_uv · R^(-1/2) x``. After it, each listener's covariance is
``unit_uv² · I`` (up to the shrinkage), so a model pooled over listeners sees background of one shape.

``R`` needs no labels, only EEG: here it comes from the listener's **early (training / calibration)
recording** — every 1-s window of every song in the folder it is estimated on, each window
demeaned. For a listener the model never saw, that is the listener's own unlabelled calibration
EEG; no music and no test excerpt is read.

Why it fails on the simulator (measured, 10 % share, 6 listeners × 4 tracks × 90 s): not the
reference's null direction. The average-referenced covariance has rank 124 of 125 (largest eigenvalue
about 7 800 µV², smallest non-null about 23 µV², the all-channels direction 1e-14 µV²); whitening
inside the rank subspace (:func:`data_subspace`) or with the former shrinkage gives the same aligned EEG
(validation ridge 0.124 block against 0.309 on raw EEG). The cause is the simulator's listeners
differing in their background (each has its own 64 background dipoles), not in how their evoked
response reaches the scalp (auditory dipoles jittered by 4 mm): whitening by each listener's own
background turns one shared evoked topography into a different one per listener (mean cosine between
two listeners' source topographies 0.945 on raw EEG, 0.782 after alignment), so a model pooled over
listeners sees a less consistent response. :mod:`offline_training.mcca` keeps what listeners share
instead (0.966 with 4 shared components).

Scope: **offline only.** :func:`align_folder` writes an aligned copy of an NMED-T folder, which
``train`` and the quality benchmark read like any other folder. The live stream does not apply a
per-listener matrix (its preprocessing has no per-listener state), so a model trained on aligned
EEG must not be used by ``decode`` on raw EEG.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
from eegmusic.stream.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

SHRINKAGE = 0.01
"""Shrinkage of the covariance's non-null eigenvalues toward their mean (a little regularisation of
the smallest ones; the null directions of the reference are handled by :func:`data_subspace`)."""

UNIT_UV = 10.0
"""RMS per channel of aligned EEG, µV (keeps the data in the range of real EEG)."""

RANK_TOLERANCE = 1e-9
"""Eigenvalues below this fraction of the largest count as null directions (reference, interpolation)."""

WINDOW_SAMPLES = 125
"""Samples per window over which the covariance is averaged (1 s at 125 Hz)."""


def listener_covariance(recordings, window: int = WINDOW_SAMPLES) -> np.ndarray:
    """Mean spatial covariance of one listener over demeaned windows of several recordings.

    Parameters
    ----------
    recordings : sequence of ndarray, each shape (n_chans, n_times), µV
        The listener's EEG (one array per song).
    window : int
        Samples per window; each window is demeaned per channel before its covariance is taken.

    Returns
    -------
    ndarray, shape (n_chans, n_chans), µV²
    """
    total, count = None, 0
    for eeg in recordings:
        eeg = np.asarray(eeg, dtype=np.float64)
        n_windows = eeg.shape[1] // window
        if n_windows == 0:
            continue
        cut = eeg[:, : n_windows * window].reshape(eeg.shape[0], n_windows, window)
        cut = cut - cut.mean(axis=2, keepdims=True)
        flat = cut.reshape(eeg.shape[0], -1)
        cov = flat @ flat.T
        total = cov if total is None else total + cov
        count += flat.shape[1]
    if total is None:
        raise DataFormatError(f"no whole {window}-sample window of EEG to estimate a covariance from; "
                              "record at least 1 s per listener")
    return total / count


def alignment_matrix(covariance: np.ndarray, *, shrinkage: float = SHRINKAGE,
                     unit_uv: float = UNIT_UV) -> np.ndarray:
    """``unit_uv · R^(-1/2)`` of a shrunk covariance ``R``, taken inside the data's rank subspace.

    Average-referenced EEG has no variance along the all-channels direction (rank n−1), and EEG with
    channels interpolated from others has more such null directions. They are found from the
    eigenvalues (below ``RANK_TOLERANCE`` × the largest) and mapped to zero: the whitening, and the
    shrinkage toward the mean eigenvalue, act only on the directions that carry data, so aligned EEG
    keeps the reference of the input and its covariance is ``unit_uv² · I`` on that subspace.

    Parameters
    ----------
    covariance : ndarray, shape (n_chans, n_chans), µV²
    shrinkage : float
        Weight in [0, 1) of the mean non-null eigenvalue mixed into each non-null eigenvalue.
    unit_uv : float
        RMS per direction of the aligned EEG, µV.

    Returns
    -------
    ndarray, shape (n_chans, n_chans)
        Symmetric; multiply EEG (n_chans, n_times) from the left.
    """
    if not 0.0 <= shrinkage < 1.0:
        raise ConfigError(f"alignment shrinkage {shrinkage:g} must lie in [0, 1); 0.01 suits "
                          "average-referenced EEG")
    eigenvalues, vectors = data_subspace(covariance)
    shrunk = (1.0 - shrinkage) * eigenvalues + shrinkage * eigenvalues.mean()
    return unit_uv * (vectors / np.sqrt(shrunk)) @ vectors.T


def data_subspace(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eigenvalues and eigenvectors of a covariance that carry data (the rank subspace).

    Parameters
    ----------
    covariance : ndarray, shape (n_chans, n_chans), µV²

    Returns
    -------
    eigenvalues : ndarray, shape (rank,), µV², descending
    vectors : ndarray, shape (n_chans, rank)

    Raises
    ------
    DataFormatError
        The covariance is zero (flat EEG) or not finite.
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    if not np.all(np.isfinite(covariance)) or not np.any(covariance):
        raise DataFormatError("the EEG covariance is zero or not finite; check that the listener's "
                              "recording holds EEG (no flat or NaN channels)")
    eigenvalues, vectors = np.linalg.eigh((covariance + covariance.T) / 2.0)
    keep = eigenvalues > RANK_TOLERANCE * eigenvalues.max()
    order = np.argsort(eigenvalues[keep])[::-1]
    return eigenvalues[keep][order], vectors[:, keep][:, order]


def listener_matrices(folder, *, shrinkage: float = SHRINKAGE, unit_uv: float = UNIT_UV) -> dict:
    """One alignment matrix per listener of an NMED-T folder, from all the listener's songs there.

    Parameters
    ----------
    folder : str or Path
        NMED-T folder (``songNN_Imputed.mat`` files): the listeners' training / calibration EEG.

    Returns
    -------
    dict
        Participant id → ndarray (n_chans, n_chans).
    """
    recordings: dict[str, list] = {}
    for song in _songs(folder):
        for k, subject in enumerate(song.subjects):
            recordings.setdefault(str(subject), []).append(song.data[:, :, k])
    return {subject: alignment_matrix(listener_covariance(eeg), shrinkage=shrinkage, unit_uv=unit_uv)
            for subject, eeg in recordings.items()}


def align_folder(source, destination, matrices: dict) -> Path:
    """Write a copy of an NMED-T folder with every listener's EEG multiplied by its matrix.

    Parameters
    ----------
    source : str or Path
        NMED-T folder to align (songs, ``stimuli/``, optional ``simulation.json``).
    destination : str or Path
        New folder (must not exist or be empty); stimuli are copied.
    matrices : dict
        Participant id → (n_chans, n_chans) matrix (:func:`listener_matrices`, estimated on the
        listeners' training EEG, which may be another folder than ``source``).

    Returns
    -------
    Path
        ``destination``.

    Raises
    ------
    ConfigError
        A listener of ``source`` has no matrix, or ``destination`` holds files.
    """
    from eegmusic.replay.simulate import _write_imputed

    source, destination = Path(source), Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise ConfigError(f"{destination} is not empty; give a new folder for the aligned copy")
    destination.mkdir(parents=True, exist_ok=True)
    for song in _songs(source):
        missing = sorted(set(map(str, song.subjects)) - set(matrices))
        if missing:
            raise ConfigError(f"no alignment matrix for listeners {', '.join(missing)}; estimate them on "
                              "a folder holding those listeners' training EEG")
        aligned = np.stack([matrices[str(s)] @ song.data[:, :, k] for k, s in enumerate(song.subjects)],
                           axis=2)
        _write_imputed(destination / song.path.name, song.song_id, aligned, [str(s) for s in song.subjects])
    if (source / "stimuli").is_dir():
        shutil.copytree(source / "stimuli", destination / "stimuli")
    if (source / "simulation.json").is_file():
        manifest = json.loads((source / "simulation.json").read_text())
        manifest["euclidean_alignment"] = True
        (destination / "simulation.json").write_text(json.dumps(manifest, indent=2))
    logger.info("aligned copy of %s written to %s", source, destination)
    return destination


def _songs(folder):
    """Every song recording of an NMED-T folder, one at a time."""
    from eegmusic.replay.nmedt import NMEDTFolder

    nmedt = NMEDTFolder(folder)
    for song_id in nmedt.song_ids:
        yield nmedt.load_song(song_id)
