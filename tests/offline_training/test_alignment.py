"""Euclidean alignment: each listener's training covariance becomes the identity; aligned folder copies."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.offline_training.alignment import (
    SHRINKAGE,
    UNIT_UV,
    align_folder,
    alignment_matrix,
    listener_covariance,
    listener_matrices,
)
from eegmusic.replay.nmedt import NMEDTFolder
from eegmusic.replay.simulate import _write_imputed
from eegmusic.stream.errors import ConfigError


def mixing(rng, n_chans, spread):
    """A listener's spatial mixing: covariance eigenvalues spread over ``spread``×."""
    return np.linalg.qr(rng.normal(size=(n_chans, n_chans)))[0] * np.sqrt(np.geomspace(1.0, spread, n_chans))


def listener_eeg(rng, mix, n_times):
    """EEG (n_chans, n_times), µV, through the listener's mixing."""
    return 15.0 * mix @ rng.normal(size=(len(mix), n_times))


def test_alignment_makes_each_listeners_training_covariance_the_identity(rng):
    mixes = [mixing(rng, 8, spread) for spread in (30.0, 300.0)]
    listeners = [[listener_eeg(rng, mix, 2500) for _ in range(2)] for mix in mixes]
    before = [listener_covariance(songs) for songs in listeners]
    assert np.linalg.cond(before[0]) > 10 and np.linalg.cond(before[1]) > 100  # unlike each other
    for songs, covariance in zip(listeners, before, strict=True):
        matrix = alignment_matrix(covariance, shrinkage=0.0)
        np.testing.assert_allclose(matrix, matrix.T, atol=1e-9)  # R^(-1/2) is symmetric
        aligned = listener_covariance([matrix @ eeg for eeg in songs])
        np.testing.assert_allclose(aligned, UNIT_UV**2 * np.eye(8), atol=1e-6 * UNIT_UV**2)


def test_average_referenced_eeg_is_whitened_inside_its_rank_subspace(rng):
    n_chans = 8
    songs = [listener_eeg(rng, mixing(rng, n_chans, 300.0), 2500) for _ in range(2)]
    # average reference, plus the float rounding a stored recording leaves in the null direction
    songs = [eeg - eeg.mean(axis=0, keepdims=True) + rng.normal(0.0, 1e-9, (1, eeg.shape[1]))
             for eeg in songs]
    covariance = listener_covariance(songs)
    eigenvalues = np.linalg.eigvalsh(covariance)
    assert eigenvalues[0] < 1e-12 * eigenvalues[-1]  # rank n_chans - 1: the reference direction is null
    matrix = alignment_matrix(covariance, shrinkage=0.0)
    assert np.all(np.isfinite(matrix))
    ones = np.ones(n_chans) / np.sqrt(n_chans)
    # the null direction is mapped to zero, not amplified by 1 / sqrt(its rounding-level eigenvalue)
    assert np.abs(matrix @ ones).max() < 1e-9
    assert np.linalg.norm(matrix, 2) <= UNIT_UV / np.sqrt(eigenvalues[1]) * (1 + 1e-9)
    aligned = [matrix @ eeg for eeg in songs]
    assert max(np.abs(eeg).max() for eeg in aligned) < 10 * UNIT_UV  # no blow-up
    # on the rank subspace the aligned covariance is the identity (times unit²); along the null one, 0
    basis = np.linalg.qr(np.column_stack([ones, rng.normal(size=(n_chans, n_chans - 1))]))[0][:, 1:]
    after = listener_covariance(aligned)
    np.testing.assert_allclose(basis.T @ after @ basis, UNIT_UV**2 * np.eye(n_chans - 1),
                               atol=1e-6 * UNIT_UV**2)
    assert ones @ after @ ones < 1e-12 * UNIT_UV**2


def test_shrinkage_is_range_checked():
    with pytest.raises(ConfigError, match=r"shrinkage 1 must lie in \[0, 1\)"):
        alignment_matrix(np.eye(3), shrinkage=1.0)


def test_align_folder_whitens_every_listener_from_its_training_eeg(rng, tmp_path):
    n_chans, subjects = 125, ["S01", "S02"]
    train, test = tmp_path / "train", tmp_path / "test"
    mixes = [mixing(rng, n_chans, spread) for spread in (20.0, 200.0)]
    for folder, seconds in ((train, 12), (test, 4)):
        folder.mkdir()
        for song in (21, 22):
            data = np.stack([listener_eeg(rng, mix, 125 * seconds) for mix in mixes], axis=2)
            data -= data.mean(axis=0, keepdims=True)  # average reference: rank n_chans - 1, as NMED-T
            _write_imputed(folder / f"song{song}_Imputed.mat", song, data, subjects)
    matrices = listener_matrices(train)  # estimated on the training folder only
    assert set(matrices) == set(subjects)
    out = align_folder(train, tmp_path / "train-aligned", matrices)
    align_folder(test, tmp_path / "test-aligned", matrices)
    for k in range(2):
        recordings = [NMEDTFolder(out).load_song(s).data[:, :, k] for s in (21, 22)]
        original = [NMEDTFolder(train).load_song(s).data[:, :, k] for s in (21, 22)]
        spread = np.linalg.eigvalsh(listener_covariance(original))[1:]  # the null (reference) one dropped
        eigenvalues = np.linalg.eigvalsh(listener_covariance(recordings))[1:] / UNIT_UV**2
        assert spread.max() / spread.min() > 10
        # the shrinkage λ keeps every eigenvalue below 1 / (1 - λ) and lifts none of them far from 1
        assert eigenvalues.max() < 1.0 / (1.0 - SHRINKAGE) + 1e-6 and eigenvalues.min() > 0.5
    # the later (test) recording is aligned with the matrices of the training EEG, not its own
    song = NMEDTFolder(tmp_path / "test-aligned").load_song(21)
    expected = matrices["S02"] @ NMEDTFolder(test).load_song(21).data[:, :, 1]
    np.testing.assert_allclose(song.data[:, :, 1], expected, rtol=1e-6, atol=1e-6)


def test_align_folder_refuses_an_unknown_listener_and_a_used_destination(rng, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    _write_imputed(source / "song21_Imputed.mat", 21, rng.normal(size=(125, 250, 1)), ["S07"])
    with pytest.raises(ConfigError, match="no alignment matrix for listeners S07"):
        align_folder(source, tmp_path / "out", {"S01": np.eye(125)})
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="is not empty; give a new folder"):
        align_folder(source, tmp_path / "used", {"S07": np.eye(125)})
    assert (tmp_path / "used" / "keep.txt").read_text() == "x"
