"""Scoring held-out windows: dynamic r's time series of interior frames, and every metric accumulated.

Dynamic r: inside each contiguous held-out block (one song, one subject), the test windows at a
1-s hop are taken in time order and their outputs concatenated into one (128, 40 · n) series, for
prediction and target alike (:func:`dynamic_blocks`, :func:`concat_frames`). Of each window's 44
frames only the 40 interior ones (:data:`INTERIOR_FRAMES`) are used. :class:`MetricAccumulator` sums
every metric of one predictor over chunks of windows, so a large test part is scored in bounded memory.
"""

from __future__ import annotations

import math

import numpy as np
from eegmusic.decoder import melspec
from eegmusic.offline_training import metrics
from eegmusic.offline_training.song_classifier import SongClassifier
from eegmusic.stream.spec import WINDOW_SAMPLES

INTERIOR_FRAMES = slice(
    -(-(melspec.N_FFT // 2) // melspec.HOP_LENGTH),
    (melspec.AUDIO_SFREQ - melspec.N_FFT // 2) // melspec.HOP_LENGTH + 1,
)
"""Frames 2…41 of a 44-frame window: those whose 2048-sample STFT window lies wholly inside the 1-s
segment. The edge frames see the zero padding of centre=True framing and are quieter in every window
alike; concatenated over windows they form a once-per-second pattern that any prediction with the same
edges (even the constant mean window) would "track". Dynamic r therefore uses interior frames only."""

N_INTERIOR_FRAMES = len(range(melspec.FRAMES_PER_WINDOW)[INTERIOR_FRAMES])

FRECHET_DIMS = 8
"""Leading classifier embedding dimensions compared by the Fréchet distance."""


class MetricAccumulator:
    """Every metric of one predictor, accumulated over chunks of test windows.

    Per-window scores (MSE, cosine, Pearson, song accuracy) are summed over windows; dynamic r is
    kept per block (a block never spans two chunks) and averaged at the end; the classifier
    embeddings of predictions and targets are kept for the Fréchet distance. The results equal the
    functions of :mod:`offline_training.metrics` applied to the whole test part at once.

    Parameters
    ----------
    classifier : SongClassifier or None
        None skips song accuracy and the Fréchet distance.
    """

    def __init__(self, classifier: SongClassifier | None):
        self.classifier = classifier
        self.reset()

    def reset(self) -> None:
        """Forget everything added."""
        self._n_windows = 0
        self._n_values = 0
        self._squared_error = 0.0
        self._cosine = 0.0
        self._pearson = 0.0
        self._correct = 0
        self._block_r: list[float] = []
        self._pred_embedding: list[np.ndarray] = []
        self._target_embedding: list[np.ndarray] = []

    def add(self, pred: np.ndarray, target: np.ndarray, songs: np.ndarray,
            blocks_pos: list[np.ndarray] | None = None) -> None:
        """Add a chunk of windows.

        Parameters
        ----------
        pred, target : ndarray, shape (n_windows, n_mels, n_frames)
        songs : ndarray, shape (n_windows,)
            True song of each window.
        blocks_pos : list of ndarray of int, optional
            For each held-out block in the chunk, the positions into ``pred`` of its windows at a 1-s
            hop in time order; their interior frames are concatenated for dynamic r.
        """
        self._n_windows += len(pred)
        self._n_values += pred.size
        self._squared_error += metrics.mse(pred, target) * pred.size
        self._cosine += float(np.sum(metrics.cosine_per_window(pred, target)))
        self._pearson += float(np.sum(metrics.pearson_per_window(pred, target)))
        frames = INTERIOR_FRAMES
        for p in blocks_pos or []:
            if len(p):
                self._block_r.append(metrics.dynamic_r([concat_frames(pred[p][:, :, frames])],
                                                       [concat_frames(target[p][:, :, frames])]))
        if self.classifier is not None:
            self._correct += int(np.sum(self.classifier.predict(pred) == np.asarray(songs)))
            self._pred_embedding.append(self.classifier.embed(pred)[:, :FRECHET_DIMS])
            self._target_embedding.append(self.classifier.embed(target)[:, :FRECHET_DIMS])

    def result(self) -> dict:
        """``mse, cosine, pearson, dynamic_r, song_accuracy, frechet`` (None where undefined)."""
        if self._n_windows == 0:
            raise ValueError("no windows were added")
        result = {
            "mse": self._squared_error / self._n_values,
            "cosine": self._cosine / self._n_windows,
            "pearson": self._pearson / self._n_windows,
            "dynamic_r": float(np.mean(self._block_r)) if self._block_r else None,
            "song_accuracy": None,
            "frechet": None,
        }
        if self.classifier is not None:
            result["song_accuracy"] = self._correct / self._n_windows
            if self._n_windows >= 2:
                result["frechet"] = metrics.frechet_distance(np.concatenate(self._pred_embedding),
                                                             np.concatenate(self._target_embedding))
        return {key: (None if value is None or not math.isfinite(value) else float(value))
                for key, value in result.items()}


def concat_frames(windows: np.ndarray) -> np.ndarray:
    """Concatenate successive 1-s windows' frames in time order.

    Parameters
    ----------
    windows : ndarray, shape (n_windows, n_mels, n_frames)

    Returns
    -------
    ndarray, shape (n_mels, n_windows * n_frames)
    """
    return np.concatenate(list(windows), axis=1)


def block_rows(index: np.ndarray, test_rows: np.ndarray, test_block: np.ndarray) -> list[np.ndarray]:
    """Test rows of each contiguous held-out block, in time order.

    Parameters
    ----------
    index : ndarray, structured (song, subject, start)
    test_rows : ndarray of int, shape (n,)
    test_block : ndarray of int, shape (n,)
        Block id of each test row (:attr:`offline_training.splits.Split.test_block`).

    Returns
    -------
    list of ndarray of int
        Row numbers into ``index`` per block, blocks in order of their id.
    """
    blocks = []
    for block in np.unique(test_block):
        rows = test_rows[test_block == block]
        blocks.append(rows[np.argsort(index["start"][rows], kind="stable")])
    return blocks


def one_per_second(index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions into ``rows`` (one block in time order) of its windows at a 1-s hop.

    Windows are taken from the first on, each the first at or after the next whole second less half
    a hop (the window nearest that second), so a denser dataset hop does not count a second twice,
    and a hop that does not divide a second (``--hop 0.5``: 62 samples) keeps to the seconds (0, 124,
    248, ... samples) rather than drift by its remainder (0, 186, 372, ...). A hop dividing a second
    takes the windows exactly 1 s apart; after a gap, the seconds count on from the next window.

    Returns
    -------
    ndarray of int
    """
    starts = np.asarray(index["start"][rows], dtype=np.int64)
    steps = np.diff(starts)
    # half the dataset hop (its smallest step), at most half a second: nearer than that, a second
    slack = int(min(steps[steps > 0].min(), WINDOW_SAMPLES) // 2) if (steps > 0).any() else 0
    chosen, second = [], None
    for k, start in enumerate(starts):
        if second is None or start >= second + WINDOW_SAMPLES - slack:
            chosen.append(k)
            second = start if second is None else second + WINDOW_SAMPLES
            if abs(start - second) > slack:  # after a gap: the seconds count from this window
                second = start
    return np.array(chosen, dtype=np.int64)


def dynamic_blocks(index: np.ndarray, test_rows: np.ndarray, test_block: np.ndarray) -> list[np.ndarray]:
    """Rows of each contiguous test block at a 1-s hop, in time order (what dynamic r scores).

    Parameters
    ----------
    index : ndarray, structured (song, subject, start)
    test_rows : ndarray of int, shape (n,)
    test_block : ndarray of int, shape (n,)

    Returns
    -------
    list of ndarray of int
        Row numbers into ``index`` per block (:func:`block_rows` thinned by :func:`one_per_second`).
    """
    return [rows[one_per_second(index, rows)] for rows in block_rows(index, test_rows, test_block)]
