"""Every metric against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.offline_training import metrics

R_123_247 = 15.0 / np.sqrt(228.0)
"""Pearson r of [1, 2, 3] and [2, 4, 7]: deviations (-1, 0, 1) and (-7/3, -1/3, 8/3), sum of products
5, sums of squares 2 and 114/9, so r = 5 / sqrt(228/9) = 15 / sqrt(228)."""


def test_mse_by_hand():
    pred = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    target = np.zeros_like(pred)
    assert metrics.mse(pred, target) == pytest.approx((1 + 4 + 9 + 16) / 4)


def test_mse_two_windows_by_hand():
    pred = np.array([[[1.0, 1.0]], [[0.0, 0.0]]])
    target = np.array([[[0.0, 3.0]], [[0.0, 2.0]]])
    # squared errors 1, 4, 0, 4 -> mean 9/4
    assert metrics.mse(pred, target) == pytest.approx(2.25)


def test_cosine_by_hand():
    pred = np.array([[[1.0, 0.0]], [[1.0, 2.0]]])
    target = np.array([[[1.0, 1.0]], [[2.0, 4.0]]])
    per_window = metrics.cosine_per_window(pred, target)
    np.testing.assert_allclose(per_window, [1 / np.sqrt(2), 1.0])
    assert metrics.cosine(pred, target) == pytest.approx((1 / np.sqrt(2) + 1) / 2)


def test_cosine_flattens_the_whole_window():
    # window (2 bands x 2 frames): <p, t> = 1*1 + 0*0 + 0*1 + 1*0 = 1; |p| = sqrt(2), |t| = sqrt(2)
    pred = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    target = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    assert metrics.cosine(pred, target) == pytest.approx(0.5)


def test_cosine_of_zero_window_is_zero():
    pred = np.zeros((1, 2, 2))
    target = np.ones((1, 2, 2))
    assert metrics.cosine(pred, target) == 0.0


def test_pearson_by_hand():
    pred = np.array([[[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]])
    target = np.array([[[2.0, 4.0, 7.0]], [[3.0, 2.0, 1.0]]])
    np.testing.assert_allclose(metrics.pearson_per_window(pred, target), [R_123_247, -1.0])
    assert metrics.pearson(pred, target) == pytest.approx((R_123_247 - 1.0) / 2)


def test_pearson_of_constant_window_is_zero():
    pred = np.full((1, 1, 3), -0.1)
    target = np.array([[[1.0, 2.0, 4.0]]])
    assert metrics.pearson(pred, target) == 0.0


def test_pearson_is_invariant_to_offset_and_scale():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(4, 3, 5))
    pred = 3.0 * target - 40.0
    np.testing.assert_allclose(metrics.pearson_per_window(pred, target), 1.0)


def test_band_pearson_by_hand():
    pred = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    target = np.array([[2.0, 4.0, 7.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(metrics.band_pearson(pred, target), [R_123_247, -1.0, 0.0])


def test_dynamic_r_by_hand():
    block_1 = (np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]), np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
    # block 2 is longer; band 0 of its prediction is flat -> r = 0
    block_2 = (np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]]),
               np.array([[1.0, 2.0, 3.0, 9.0], [1.0, 2.0, 3.0, 4.0]]))
    expected = ((1.0 - 1.0) / 2 + (0.0 + 1.0) / 2) / 2
    got = metrics.dynamic_r([block_1[0], block_2[0]], [block_1[1], block_2[1]])
    assert got == pytest.approx(expected)
    assert metrics.dynamic_r([block_2[0]], [block_2[1]]) == pytest.approx(0.5)


def test_constant_spectrum_scores_high_cosine_but_zero_dynamic_r():
    """The point of dynamic r: a mean spectrum is a good 'reconstruction' by cosine, not over time."""
    rng = np.random.default_rng(2)
    tilt = np.linspace(-10.0, -70.0, 128)[:, None]
    target = tilt + rng.normal(scale=3.0, size=(128, 200))
    flat = np.repeat(target.mean(axis=1, keepdims=True), 200, axis=1)
    windows = lambda x: x[:, :176].reshape(128, 4, 44).transpose(1, 0, 2)  # noqa: E731
    assert metrics.cosine(windows(flat), windows(target)) > 0.99
    assert metrics.pearson(windows(flat), windows(target)) > 0.9
    assert metrics.dynamic_r([flat], [target]) == 0.0
    assert metrics.dynamic_r([target], [target]) == pytest.approx(1.0)


def test_frechet_distance_one_dimension_by_hand():
    # means 1 and 3, variances (ddof 1) 2 and 8: 4 + 2 + 8 - 2 * sqrt(16) = 6
    emb_a = np.array([[0.0], [2.0]])
    emb_b = np.array([[1.0], [5.0]])
    assert metrics.frechet_distance(emb_a, emb_b) == pytest.approx(6.0)


def test_frechet_distance_two_dimensions_by_hand():
    # cov_a = 4/3 I, cov_b = 16/3 I, mean shift (6, 6): 72 + 2 * (4/3 + 16/3 - 2 * 8/3) = 72 + 8/3
    emb_a = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    emb_b = 2.0 * emb_a + 5.0
    assert metrics.frechet_distance(emb_a, emb_b) == pytest.approx(72.0 + 8.0 / 3.0)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    emb = np.random.default_rng(3).normal(size=(50, 6))
    assert metrics.frechet_distance(emb, emb) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.mse(np.zeros((2, 3, 4)), np.zeros((2, 3, 5))), "differs from target shape"),
        (lambda: metrics.cosine(np.zeros((0, 3, 4)), np.zeros((0, 3, 4))), "at least one window"),
        (lambda: metrics.band_pearson(np.zeros((3, 1)), np.zeros((3, 1))), "at least 2 frames"),
        (lambda: metrics.dynamic_r([], []), "at least one block"),
        (lambda: metrics.dynamic_r([np.zeros((2, 3))], []), "1 predicted blocks but 0 target"),
        (lambda: metrics.frechet_distance(np.zeros((3, 2)), np.zeros((3, 4))), "equal n_dims"),
        (lambda: metrics.frechet_distance(np.zeros((1, 2)), np.zeros((3, 2))), "at least 2 embeddings"),
    ],
)
def test_bad_metric_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
