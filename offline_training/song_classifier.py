"""Song classifier of the EEG2Mel protocol: which song does a (reconstructed) mel window come from?

The classifier is trained on TRUE mel-dB windows of the training part and then labels the
reconstructions of the test part; its accuracy on reconstructions is the "song accuracy" reported
beside the other metrics (EEG2Mel: 80.8 % on random 1-s splits). A small deterministic model, plain
numpy and scipy: each window becomes the mean mel-dB of four equal time segments (128 x 4 values: the
spectrum and its coarse course within the second), standardised, projected on principal components
of the training windows, then a multinomial logistic regression with an L2 penalty fitted by L-BFGS
from zero weights. The same input always gives the same classifier.

The principal-component features double as an embedding for
:func:`offline_training.metrics.frechet_distance`.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.optimize

logger = logging.getLogger(__name__)

N_SEGMENTS = 4
"""Time segments per window whose mean spectrum forms the features."""


def window_features(mel_db: np.ndarray) -> np.ndarray:
    """Per-window features: mean mel-dB of each of :data:`N_SEGMENTS` equal time segments.

    Parameters
    ----------
    mel_db : ndarray, shape (n_windows, n_mels, n_frames)

    Returns
    -------
    ndarray, shape (n_windows, n_mels * N_SEGMENTS), float64
    """
    mel_db = np.asarray(mel_db, dtype=np.float64)
    if mel_db.ndim != 3 or mel_db.shape[2] < N_SEGMENTS:
        raise ValueError(
            f"need mel windows of shape (n_windows, n_mels, >= {N_SEGMENTS} frames), got {mel_db.shape}"
        )
    segments = np.array_split(mel_db, N_SEGMENTS, axis=2)
    return np.concatenate([segment.mean(axis=2) for segment in segments], axis=1)


class SongClassifier:
    """Deterministic song classifier over mel-dB windows (PCA + multinomial logistic regression).

    Parameters
    ----------
    n_components : int
        Principal components kept (capped by the number of training windows and features).
    l2 : float
        L2 penalty on the weights (per training window: the loss is the mean cross-entropy).
    max_iter : int
        L-BFGS iterations at most.

    Examples
    --------
    >>> clf = SongClassifier().fit(train_mel, train_songs)   # doctest: +SKIP
    >>> clf.accuracy(reconstructed_mel, test_songs)          # doctest: +SKIP
    0.42
    """

    def __init__(self, *, n_components: int = 32, l2: float = 1e-3, max_iter: int = 500):
        self.n_components = n_components
        self.l2 = l2
        self.max_iter = max_iter
        self.classes_: np.ndarray | None = None
        self._mean: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._components: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        self._x_scale: np.ndarray | None = None

    def fit(self, mel_db: np.ndarray, songs: np.ndarray) -> SongClassifier:
        """Fit on true mel-dB windows and their song ids.

        Parameters
        ----------
        mel_db : ndarray, shape (n_windows, n_mels, n_frames)
        songs : ndarray, shape (n_windows,), int
        """
        songs = np.asarray(songs)
        features = window_features(mel_db)
        if features.shape[0] != songs.shape[0] or features.shape[0] < 2:
            raise ValueError(
                f"need at least 2 windows with one song id each, got {features.shape[0]} "
                f"windows and {songs.shape[0]} ids"
            )
        self.classes_, labels = np.unique(songs, return_inverse=True)
        self._mean = features.mean(axis=0)
        std = features.std(axis=0)
        self._scale = np.where(std > 1e-9, std, 1.0)
        standard = (features - self._mean) / self._scale
        n_keep = int(min(self.n_components, standard.shape[0] - 1, standard.shape[1]))
        _, _, vt = np.linalg.svd(standard, full_matrices=False)
        components = vt[:n_keep]
        # Fix each component's sign (largest loading positive) so the embedding is reproducible.
        signs = np.sign(components[np.arange(n_keep), np.argmax(np.abs(components), axis=1)])
        self._components = components * np.where(signs == 0, 1.0, signs)[:, None]
        projected = self._project(standard)
        self._weights, self._bias = self._fit_logistic(projected, labels, len(self.classes_))
        logger.debug(
            "song classifier: %d windows, %d songs, %d components", len(labels), len(self.classes_), n_keep
        )
        return self

    def _project(self, standard: np.ndarray) -> np.ndarray:
        return standard @ self._components.T

    def _fit_logistic(self, x: np.ndarray, labels: np.ndarray, n_classes: int):
        n, d = x.shape
        onehot = np.zeros((n, n_classes))
        onehot[np.arange(n), labels] = 1.0
        # Scale features to unit variance so one penalty suits every component.
        self._x_scale = np.where(x.std(axis=0) > 1e-12, x.std(axis=0), 1.0)
        x = x / self._x_scale

        def loss_and_grad(theta):
            w = theta[: d * n_classes].reshape(d, n_classes)
            b = theta[d * n_classes :]
            logits = x @ w + b
            logits -= logits.max(axis=1, keepdims=True)
            log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            prob = np.exp(log_prob)
            loss = -np.sum(onehot * log_prob) / n + 0.5 * self.l2 * np.sum(w * w)
            delta = (prob - onehot) / n
            grad_w = x.T @ delta + self.l2 * w
            return loss, np.concatenate([grad_w.ravel(), delta.sum(axis=0)])

        theta0 = np.zeros(d * n_classes + n_classes)
        result = scipy.optimize.minimize(
            loss_and_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter}
        )
        theta = result.x
        return theta[: d * n_classes].reshape(d, n_classes), theta[d * n_classes :]

    def _check_fitted(self) -> None:
        if self._weights is None:
            raise RuntimeError("SongClassifier is not fitted; call fit() first")

    def embed(self, mel_db: np.ndarray) -> np.ndarray:
        """Principal-component features of windows (the classifier's embedding).

        Parameters
        ----------
        mel_db : ndarray, shape (n_windows, n_mels, n_frames)

        Returns
        -------
        ndarray, shape (n_windows, n_components)
        """
        self._check_fitted()
        return self._project((window_features(mel_db) - self._mean) / self._scale)

    def predict_proba(self, mel_db: np.ndarray) -> np.ndarray:
        """Song probabilities per window, columns in the order of ``classes_``.

        Returns
        -------
        ndarray, shape (n_windows, n_songs)
        """
        logits = (self.embed(mel_db) / self._x_scale) @ self._weights + self._bias
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        return prob / prob.sum(axis=1, keepdims=True)

    def predict(self, mel_db: np.ndarray) -> np.ndarray:
        """Most probable song id per window.

        Returns
        -------
        ndarray, shape (n_windows,)
        """
        return self.classes_[np.argmax(self.predict_proba(mel_db), axis=1)]

    def accuracy(self, mel_db: np.ndarray, songs: np.ndarray) -> float:
        """Fraction of windows labelled with their true song.

        Parameters
        ----------
        mel_db : ndarray, shape (n_windows, n_mels, n_frames)
        songs : ndarray, shape (n_windows,)
        """
        return float(np.mean(self.predict(mel_db) == np.asarray(songs)))
