"""Choose the target offset (how far the decoded music lags the EEG window) on the validation part.

``eegmusic train --target-offset auto`` asks: which offset of the mel target behind the EEG window
lets a decoder follow the music best? The brain answers sound 50–250 ms after it, so the frames at
the very end of a window are not yet in its EEG; a lag trades delay for information. The answer is
measured, never guessed, and never on test data:

1. a lagged ridge (:class:`~offline_training.models.linear.Linear`, closed form, seconds) is fitted
   on a seeded sample of the **training** windows at each candidate offset;
2. each fit is scored on the contiguous blocks of the **validation** part by the dynamic r of the
   frames the live decoder plays: the newest :data:`LIVE_FRAMES` of each window (the default hop,
   :data:`decoder.frameclock.DEFAULT_HOP_FRAMES`), each column's series scored on its own (per-band
   Pearson over time, one frame per window at the 1-s hop), averaged over the columns;
3. the best-scoring offset wins (ties go to the smaller lag, the shorter delay).

Only training and validation rows are ever read: the test part stays unseen (a test poisons the
test targets and checks the choice does not move).

Why the newest frames and not the interior ones that ``evaluate`` scores: the interior frames of a
window have their response inside the window at any offset, so their score hardly moves with the
offset; the newest frames are the ones that lack it. Measured on a 32-channel virtual listener
(``simulate --live``, 4 minutes, linear model, offset 0): interior columns scored r 0.21–0.24, the
newest two 0.06 and −0.02 — and the live decoder plays only those; at offset 0.3 s they scored 0.21.

The ridge is a proxy for the requested model: it costs seconds per candidate where training the
model itself would cost minutes. The response latency it finds is a property of the EEG, not of the
decoder, so the proxy carries over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from eegmusic.decoder.frameclock import DEFAULT_HOP_FRAMES
from eegmusic.decoder.melspec import FRAMES_PER_WINDOW
from eegmusic.stream.errors import ConfigError

logger = logging.getLogger(__name__)

CANDIDATE_OFFSETS_S = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
"""Offsets tried by default, in seconds (0 to 300 ms, the span of cortical responses to sound)."""

FIT_WINDOWS = 800
"""Training windows the ridge is fitted on at most per candidate (a seeded sample)."""

LIVE_FRAMES = slice(FRAMES_PER_WINDOW - DEFAULT_HOP_FRAMES, FRAMES_PER_WINDOW)
"""Window columns (42, 43) the live decoder plays at its default hop: the newest frames of each window
(:class:`decoder.frameclock.FrameClock` emits each frame from the newest window covering it)."""

PROXY_LAGS = (0, 8, 16, 24)
"""EEG lags (samples after each frame's time, 0–192 ms) of the proxy ridge: 500 features instead of
the ``linear`` model's 1000, so that trying seven offsets costs seconds, not minutes."""


@dataclass
class LagChoice:
    """The chosen target offset and the validation score of every candidate.

    Attributes
    ----------
    offset_s : float
        The chosen offset in seconds.
    scores : dict of float to float
        Validation dynamic r of the ridge at each candidate offset (seconds → r).
    n_fit_windows, n_val_windows : int
        Windows the ridge was fitted on and scored on.
    """

    offset_s: float
    scores: dict = field(default_factory=dict)
    n_fit_windows: int = 0
    n_val_windows: int = 0

    def to_dict(self) -> dict:
        """JSON-ready record (for the model's training metadata)."""
        return {
            "chosen_s": self.offset_s,
            "method": "ridge fitted on training windows, dynamic r on the validation part",
            "validation_dynamic_r": {f"{k:g}": v for k, v in self.scores.items()},
            "n_fit_windows": self.n_fit_windows,
            "n_val_windows": self.n_val_windows,
        }


def choose_target_offset(
    dataset,
    split,
    *,
    candidates=CANDIDATE_OFFSETS_S,
    seed: int = 0,
    fit_windows: int = FIT_WINDOWS,
    progress: bool = False,
) -> LagChoice:
    """Pick the target offset that maximises the validation dynamic r of a lagged ridge.

    Parameters
    ----------
    dataset : WindowDataset
        The training data (any target offset: each candidate is applied with
        :meth:`~offline_training.dataset.WindowDataset.with_target_offset`).
    split : Split
        Its split; only ``split.train`` and ``split.val`` are read.
    candidates : sequence of float
        Offsets to try in seconds (each ≥ 0).
    seed : int
        Seed of the training sample.
    fit_windows : int
        Training windows used per fit at most.
    progress : bool
        Show a progress bar over candidates.

    Returns
    -------
    LagChoice

    Raises
    ------
    ConfigError
        No validation part, no candidate, or a negative candidate.
    """
    import torch
    from eegmusic.offline_training.metrics import dynamic_r
    from eegmusic.offline_training.models.linear import Linear
    from eegmusic.offline_training.scoring import dynamic_blocks
    from eegmusic.offline_training.splits import contiguous_blocks
    from eegmusic.stream.progress import progress_bar

    candidates = sorted({float(c) for c in candidates})
    if not candidates or candidates[0] < 0:
        raise ConfigError(f"target-offset candidates {candidates} must be non-empty and >= 0 s")
    if len(split.val) == 0:
        raise ConfigError(
            "--target-offset auto picks the lag on the validation part, and this split has none; "
            "use a split with a validation part (block, subject, song) or pass --target-offset SECONDS"
        )
    if len(split.train) == 0:
        raise ConfigError("--target-offset auto needs training windows; use more data or another --split")
    rng = np.random.default_rng([seed, 4242])
    fit_rows = np.sort(rng.choice(split.train, size=min(fit_windows, len(split.train)), replace=False))
    val_blocks = dynamic_blocks(dataset.index, split.val,
                                contiguous_blocks(dataset.index, split.val, hop_s=dataset.hop_s))
    val_blocks = [rows for rows in val_blocks if len(rows) >= 2]
    if not val_blocks:
        raise ConfigError(
            "--target-offset auto: the validation part has no 2-s stretch to score a lag on; use more "
            "data or pass --target-offset SECONDS"
        )
    val_rows = np.concatenate(val_blocks)
    bounds = np.cumsum([0] + [len(rows) for rows in val_blocks])
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    eeg_fit = torch.from_numpy(dataset.eeg(fit_rows))
    subject_fit = torch.from_numpy(dataset.index["subject"][fit_rows])
    eeg_val = torch.from_numpy(dataset.eeg(val_rows))
    scores: dict[float, float] = {}
    for offset in progress_bar(candidates, desc="target offset", unit="lag", disable=not progress,
                               leave=False):
        shifted = dataset.with_target_offset(offset)
        mel_fit = shifted.mel(fit_rows)
        model = Linear(lags=PROXY_LAGS, target_offset_s=offset, n_chans=eeg_fit.shape[1])
        model.fit_stats(eeg_fit.numpy(), mel_fit)
        model.fit_closed_form([(eeg_fit, torch.from_numpy(mel_fit), subject_fit)], None)
        with torch.no_grad():
            pred = model(eeg_val).numpy()
        target = shifted.mel(val_rows)
        columns = range(FRAMES_PER_WINDOW)[LIVE_FRAMES]
        scores[offset] = float(np.mean([
            dynamic_r([pred[a:b, :, c].T for a, b in spans], [target[a:b, :, c].T for a, b in spans])
            for c in columns]))
        logger.info("target offset %.3f s: validation dynamic r %.4f (ridge)", offset, scores[offset])
    best = max(candidates, key=lambda c: (scores[c], -c))
    logger.info("target offset %.3f s chosen on %d validation windows", best, len(val_rows))
    return LagChoice(best, scores, n_fit_windows=len(fit_rows), n_val_windows=len(val_rows))
