"""The EEG2Mel song classifier and the baselines: deterministic, and right where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.offline_training import baselines
from eegmusic.offline_training.song_classifier import SongClassifier, window_features


def _songs_with_spectra(rng, n_per_song=30):
    """Mel windows of 3 'songs' that differ by spectral tilt, with noise that varies over time."""
    tilts = {21: np.linspace(-20, -70, 128), 22: np.linspace(-60, -20, 128), 23: np.full(128, -40.0)}
    mel, songs = [], []
    for song, tilt in tilts.items():
        mel.append(tilt[None, :, None] + rng.normal(scale=6.0, size=(n_per_song, 128, 44)))
        songs += [song] * n_per_song
    return np.concatenate(mel).astype(np.float32), np.array(songs)


def test_window_features_are_segment_means():
    mel = np.arange(2 * 3 * 8, dtype=np.float64).reshape(2, 3, 8)
    features = window_features(mel)
    assert features.shape == (2, 3 * 4)
    # features are [segment 0: bands 0..2, segment 1: bands 0..2, ...]; band 0 of window 0 holds 0..7,
    # so its segment means are those of (0,1), (2,3), (4,5), (6,7); band 1 holds 8..15
    np.testing.assert_allclose(features[0, [0, 3, 6, 9]], [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(features[0, [1, 4, 7, 10]], [8.5, 10.5, 12.5, 14.5])


def test_classifier_separates_songs_and_is_deterministic(rng):
    mel, songs = _songs_with_spectra(rng)
    test_mel, test_songs = _songs_with_spectra(np.random.default_rng(99), n_per_song=10)
    first = SongClassifier().fit(mel, songs)
    second = SongClassifier().fit(mel, songs)
    assert first.accuracy(test_mel, test_songs) == 1.0
    np.testing.assert_array_equal(first.predict_proba(test_mel), second.predict_proba(test_mel))
    np.testing.assert_array_equal(first.embed(test_mel), second.embed(test_mel))
    assert list(first.classes_) == [21, 22, 23]


def test_classifier_labels_mean_windows_by_their_song(rng):
    mel, songs = _songs_with_spectra(rng)
    clf = SongClassifier().fit(mel, songs)
    means = baselines.song_mean_mels(mel, songs)
    assert clf.accuracy(baselines.predict_song_mean(means, [23, 21, 22]), [23, 21, 22]) == 1.0


def test_classifier_on_noise_is_near_chance(rng):
    mel, songs = _songs_with_spectra(rng)
    clf = SongClassifier().fit(mel, songs)
    shuffled_labels = rng.permutation(songs)
    assert clf.accuracy(mel, shuffled_labels) < 0.6


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: SongClassifier().predict(np.zeros((2, 128, 44))), RuntimeError, "not fitted"),
        (lambda: SongClassifier().fit(np.zeros((1, 128, 44)), [21]), ValueError, "at least 2 windows"),
        (lambda: window_features(np.zeros((2, 128, 3))), ValueError, ">= 4 frames"),
    ],
)
def test_classifier_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_global_and_song_means_by_hand():
    mel = np.array([[[0.0, 2.0]], [[4.0, 6.0]], [[10.0, 10.0]]])
    songs = np.array([21, 21, 22])
    np.testing.assert_allclose(baselines.global_mean_mel(mel), [[14 / 3, 6.0]])
    means = baselines.song_mean_mels(mel, songs)
    np.testing.assert_allclose(means[21], [[2.0, 4.0]])
    np.testing.assert_allclose(means[22], [[10.0, 10.0]])
    pred = baselines.predict_song_mean(means, np.array([22, 21]))
    np.testing.assert_allclose(pred, [[[10.0, 10.0]], [[2.0, 4.0]]])
    assert baselines.predict_song_mean(means, np.array([23])) is None
    assert baselines.predict_global_mean(means[21], 3).shape == (3, 1, 2)


@pytest.mark.parametrize("n", [2, 3, 10, 101])
def test_shuffled_order_moves_every_window(n):
    order = baselines.shuffled_order(n, seed=5)
    assert sorted(order.tolist()) == list(range(n))
    assert not np.any(order == np.arange(n))
    np.testing.assert_array_equal(order, baselines.shuffled_order(n, seed=5))
    if n >= 10:  # only 1 (n=2) or 2 (n=3) derangements exist below that
        assert not np.array_equal(order, baselines.shuffled_order(n, seed=6))
