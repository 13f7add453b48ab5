"""Per-band Pearson correlation over time: the one definition shared by live scoring and evaluation.

The live decoder scores its frames against the true stimulus (:mod:`decoder.truth`) and
:mod:`offline_training.metrics` scores held-out predictions; both call the functions here, so a
"dynamic r" means the same number everywhere, with one rule for a series that does not vary.

Convention: a correlation whose series has zero variance is 0 (a flat prediction tracks nothing),
never NaN. A series counts as constant when its spread is at float-rounding level of its magnitude:
``|x - mean(x)| <= 1e-9 * sqrt(n) * max(|x|)`` (:func:`varies`).
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12
_RELATIVE_TOLERANCE = 1e-9


def varies(norm: np.ndarray, max_abs: np.ndarray, n: int) -> np.ndarray:
    """Whether centred series of norm ``norm`` vary beyond float rounding of their magnitude.

    Parameters
    ----------
    norm : ndarray, shape (n_rows,)
        Euclidean norm of each centred series.
    max_abs : ndarray, shape (n_rows,)
        Largest absolute value of each series (before centring).
    n : int
        Length of each series.

    Returns
    -------
    ndarray of bool, shape (n_rows,)
    """
    return norm > _RELATIVE_TOLERANCE * np.sqrt(n) * np.maximum(max_abs, _EPS)


def rows_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of matching rows of two 2-D arrays; 0 where a row does not vary (:func:`varies`).

    Parameters
    ----------
    a, b : ndarray, shape (n_rows, n)

    Returns
    -------
    ndarray, shape (n_rows,), float64
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.shape[1]
    max_a = np.max(np.abs(a), axis=1)
    max_b = np.max(np.abs(b), axis=1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norm_a = np.sqrt(np.sum(a * a, axis=1))
    norm_b = np.sqrt(np.sum(b * b, axis=1))
    valid = varies(norm_a, max_a, n) & varies(norm_b, max_b, n)
    den = np.where(valid, norm_a * norm_b, 1.0)
    return np.where(valid, np.sum(a * b, axis=1) / den, 0.0)


def band_pearson(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson correlation over time of each mel band of one contiguous block.

    Parameters
    ----------
    pred, target : ndarray, shape (n_mels, n_frames)
        Mel-dB frames of one block in time order.

    Returns
    -------
    ndarray, shape (n_mels,)
        Pearson r per band; 0 for a band that is constant in either array.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(
            f"need two (n_mels, n_frames) arrays of one shape, got {pred.shape} and {target.shape}"
        )
    if pred.shape[1] < 2:
        raise ValueError(f"a block needs at least 2 frames for a correlation over time, got {pred.shape[1]}")
    return rows_pearson(pred, target)


CONSTANT_NOTE = ("one spectrum at most scored frames, a window's newest at a one-frame hop: no dynamics to "
                 "score; a hop of 2 frames or more scores them, e.g. decode --hop 0.0464")
"""Why a live baseline reads n/a (:meth:`decoder.truth.LiveTruth.constant_baselines`)."""


class RunningBandPearson:
    """Per-band Pearson over time of an unbounded run, from running sums (constant memory).

    Gives what :func:`band_pearson` gives on every frame added so far (up to float rounding), with
    the same rule for a band that does not vary. A frame with a non-finite value in either array is
    skipped and counted (:attr:`skipped`): added to the sums, one NaN would make them NaN for the rest of
    the run, and every band would then read as constant (r 0) for good.

    Parameters
    ----------
    n_bands : int
        Mel bands per frame.
    """

    def __init__(self, n_bands: int):
        self._sums = np.zeros((5, n_bands))   # x, y, xx, yy, xy of the shifted values
        self._max_abs = np.zeros((2, n_bands))
        self._shift: np.ndarray | None = None   # the first frame: sums of x - x0 lose no precision
        self.n = 0
        self.skipped = 0
        """Frames not added: a non-finite value in the prediction or the target."""

    def add(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add frames ``pred``, ``target`` (each shape (n_bands, n_frames)); skip (and count) a frame
        with a non-finite value in either."""
        x, y = np.asarray(pred, np.float64), np.asarray(target, np.float64)
        finite = np.isfinite(x).all(axis=0) & np.isfinite(y).all(axis=0)
        if not finite.all():
            self.skipped += int(np.count_nonzero(~finite))
            x, y = x[:, finite], y[:, finite]
        if x.shape[1] == 0:
            return
        np.maximum(self._max_abs, np.stack([np.abs(x).max(1), np.abs(y).max(1)]), out=self._max_abs)
        if self._shift is None:
            self._shift = np.stack([x[:, 0], y[:, 0]])
        x = x - self._shift[0][:, None]
        y = y - self._shift[1][:, None]
        self._sums += np.stack([x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)])
        self.n += x.shape[1]

    @classmethod
    def merged(cls, parts) -> RunningBandPearson:
        """One accumulator over every frame the ``parts`` were given, as if all had been added to it.

        Each part's sums are of values less its own first frame; they are moved onto the first part's
        (``sum (x - a) = sum (x - b) + n (b - a)``, and so on for the squares and the product), so a
        run's figures come from its songs' accumulators without adding each frame twice.
        """
        parts = list(parts)
        out = cls(parts[0]._sums.shape[1] if parts else 0)
        out.skipped = sum(part.skipped for part in parts)
        for part in parts:
            if not part.n:
                continue
            if out._shift is None:
                out._shift = part._shift.copy()
            dx, dy = part._shift - out._shift
            sx, sy, sxx, syy, sxy = part._sums
            n = part.n
            out._sums += np.stack([sx + n * dx, sy + n * dy, sxx + 2 * dx * sx + n * dx * dx,
                                   syy + 2 * dy * sy + n * dy * dy, sxy + dy * sx + dx * sy + n * dx * dy])
            np.maximum(out._max_abs, part._max_abs, out=out._max_abs)
            out.n += n
        return out

    def prediction_varies(self) -> bool:
        """Whether any band of the predictions added so far varies (the rule :meth:`band_pearson` uses):
        a prediction constant in every band has no dynamics, and its r of 0 is a convention, not a score."""
        if self.n < 2:
            return False
        sx, _, sxx, _, _ = self._sums
        norm_x = np.sqrt(np.maximum(sxx - sx * sx / self.n, 0.0))
        return bool(np.any(varies(norm_x, self._max_abs[0], self.n)))

    def band_pearson(self) -> np.ndarray | None:
        """Pearson r per band over every frame added, shape (n_bands,); None before 2 frames."""
        n = self.n
        if n < 2:
            return None
        sx, sy, sxx, syy, sxy = self._sums
        norm_x = np.sqrt(np.maximum(sxx - sx * sx / n, 0.0))
        norm_y = np.sqrt(np.maximum(syy - sy * sy / n, 0.0))
        valid = varies(norm_x, self._max_abs[0], n) & varies(norm_y, self._max_abs[1], n)
        den = np.where(valid, norm_x * norm_y, 1.0)
        return np.where(valid, (sxy - sx * sy / n) / den, 0.0)
