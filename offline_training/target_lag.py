"""Choose the target offset (how far the decoded music lags the EEG window) on the validation part.

``eegmusic train --target-offset auto`` asks: which offset of the mel target behind the EEG window
lets a decoder follow the music best? The brain answers sound 50–250 ms after it, so the frames at
the very end of a window are not yet in its EEG; a lag trades delay for information. The answer is
measured, never guessed, and never on test data:

1. a lagged ridge (:class:`~offline_training.models.linear.Linear`, closed form, seconds) is fitted
   on a seeded sample of the **training** windows at each candidate offset;
2. each fit is scored on the contiguous blocks of the **validation** part as the live decoder plays
   it: windows every :data:`LIVE_STEP_SAMPLES` (about the default hop) are cut from each block's
   continuous EEG, and the series of each of the newest :data:`LIVE_FRAMES` columns (the frames the
   live path emits) is scored against the block's true frames at the same stimulus times (the
   interior frames of the validation targets) by dynamic r, averaged over the columns;
3. the best-scoring offset wins (ties go to the smaller lag, the shorter delay).

``auto`` is also what ``eegmusic train`` does when no ``--target-offset`` is given. There, a split
whose validation part has no 2-s stretch to score on (``--split random`` on little data, whose
validation seconds lie apart; a few seconds of data) falls back to offset 0 with one logged warning
naming the fix (``fallback_s``), while an explicit ``--target-offset auto`` is refused in one line.
Why not refuse the default too: it would break every run that trained at offset 0 before (offline
scoring on the EEG2Mel ``random`` split, small smoke runs) for a choice only live decoding needs, and
offset 0 is what those runs chose; the warning says live decoding will suffer and how to choose. Why
not fall back on an explicit ``auto``: the user asked for a measured lag and would get an unmeasured
one.

Only training and validation rows are ever read: the test part stays unseen (a test poisons the
test targets and checks the choice does not move).

Why the newest frames and not the interior ones that ``evaluate`` scores: the interior frames of a
window have their response inside the window at any offset, so their score hardly moves with the
offset; the newest frames are the ones that lack it. Measured on a 32-channel virtual listener
(``simulate --live``, 4 minutes, linear model, offset 0): interior columns scored r 0.21–0.24, the
newest two 0.06 and −0.02 — and the live decoder plays only those; at offset 0.3 s they scored 0.21.

The ridge is a proxy for the requested model: it costs seconds per candidate where training the
model itself would cost minutes. The response latency it finds is a property of the EEG, not of the
decoder, so the proxy carries over. Measured on the demo's data (songs 21-23 for training, song 24
held out): the proxy's validation scores (0.15 s 0.242, 0.2 s 0.289) matched the same ridge decoding
the held-out song (0.227, 0.261). What does not carry over is a model that learns the training songs'
own patterns: ``convnet`` at 0.2 s scored 0.290 on validation and 0.017 on song 24, and was no better
at other lags (0.04-0.11 over three seeds at 0.15 s; trained on two songs, ≤ 0.03 on song 24 at every
lag from 0.15 to 0.3 s). Choosing its lag by its own validation score would not have helped, since the
validation part holds heard songs; :mod:`offline_training.unseen_song` measures that failure.
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

LIVE_FRAMES = slice(FRAMES_PER_WINDOW - max(DEFAULT_HOP_FRAMES, 2) - 1, FRAMES_PER_WINDOW)
"""Window columns (41, 42, 43) the live decoder plays at a hop of 1 or 2 frames (the default is
1 since issue 15's real-time scheduling; the columns stay those measured at 2): the newest frames of each
window (:class:`decoder.frameclock.FrameClock` emits each frame from the newest window covering it,
the nearest column in time). Measured in a 30-s live decode at the default hop: columns 41, 42, 43
gave 38 %, 50 % and 12 % of the frames, others under 0.3 %."""

LIVE_STEP_SAMPLES = 6
"""Step (model samples, 48 ms) between the validation windows scored as the live decoder plays them."""

MAX_LIVE_WINDOWS = 6000
"""Most validation windows scored per candidate (on a larger validation part, its first blocks)."""

PROXY_LAGS = (0, 10, 20, 30)
"""EEG lags (samples after each frame's time, 0–240 ms) of the proxy ridge: 500 features instead of
the ``linear`` model's 1000, so that trying seven offsets costs seconds, not minutes. They reach
240 ms, past the P2 (about 180 ms): with lags to 192 ms only, the proxy missed the late response
and, on a 4-minute virtual-listener session, ranked 0.15 s above 0.3 s where the ``linear`` model's
newest frames scored 0.06 at 0.15 s against 0.14 at 0.3 s on the test part."""


@dataclass
class LagChoice:
    """The chosen target offset and the validation score of every candidate.

    Attributes
    ----------
    offset_s : float
        The chosen offset in seconds.
    scores : dict of float to float
        Validation dynamic r of the ridge at each candidate offset (seconds → r); empty after a
        fallback.
    n_fit_windows, n_val_windows : int
        Windows the ridge was fitted on and scored on.
    fallback : str, optional
        Why no lag could be scored and ``offset_s`` is the fallback offset (None: it was measured).
    """

    offset_s: float
    scores: dict = field(default_factory=dict)
    n_fit_windows: int = 0
    n_val_windows: int = 0
    fallback: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready record (for the model's training metadata)."""
        if self.fallback is not None:
            return {"chosen_s": self.offset_s, "method": f"fallback: {self.fallback}",
                    "validation_dynamic_r": {}, "n_fit_windows": 0, "n_val_windows": 0}
        return {
            "chosen_s": self.offset_s,
            "method": "ridge fitted on training windows, dynamic r on the validation part of the newest "
                      "window frames (those the live decoder plays)",
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
    fallback_s: float | None = None,
    columns: slice = LIVE_FRAMES,
    split_kind: str | None = None,
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
    fallback_s : float, optional
        Offset to return, with one logged warning, when the validation part has no stretch to score
        a lag on (``train``'s default); None refuses instead (an explicit ``--target-offset auto``).
    columns : slice
        The window columns the decoder will be judged on, scored as above: :data:`LIVE_FRAMES` (the
        default, what live decoding plays) or ``scoring.INTERIOR_FRAMES`` for a benchmark that scores
        whole windows' interior frames offline (``benchmarks/bench_quality.py``): the lag is chosen by
        the criterion the model is judged by.
    split_kind : str, optional
        The kind ``split`` is of (``train --split``): the advice where no lag can be scored offers
        ``--split block`` only to another kind, and only where a block split of the same windows has a
        stretch to score on.

    Returns
    -------
    LagChoice

    Raises
    ------
    ConfigError
        No candidate, a negative candidate, no training windows, or (without ``fallback_s``) no
        validation stretch to score a lag on.
    """
    import torch
    from eegmusic.offline_training.models.linear import RIDGE_GRID, Linear
    from eegmusic.stream.progress import progress_bar

    candidates = sorted({float(c) for c in candidates})
    if not candidates or candidates[0] < 0:
        raise ConfigError(f"target-offset candidates {candidates} must be non-empty and >= 0 s")
    if len(split.train) == 0:
        raise ConfigError("--target-offset auto needs training windows; use more data or another --split")
    if len(split.val) == 0:
        return _unscorable("picks the lag on the validation part, and this split has none",
                           "use a split with a validation part (block, subject, song) or pass "
                           "--target-offset SECONDS", fallback_s)
    stretches = _scorable_runs(dataset, split.val)
    if not stretches:
        return _unscorable(NO_STRETCH[0], _no_stretch_fix(dataset, split_kind, seed), fallback_s)
    rng = np.random.default_rng([seed, 4242])
    fit_rows = np.sort(rng.choice(split.train, size=min(fit_windows, len(split.train)), replace=False))
    val_blocks = [stretch.scored for stretch in stretches]
    val_rows = np.concatenate(val_blocks)
    eeg_fit = torch.from_numpy(dataset.eeg(fit_rows))
    subject_fit = torch.from_numpy(dataset.index["subject"][fit_rows])
    block_eeg = [stretch.eeg(dataset) for stretch in stretches]
    offsets = [stretch.offsets(dataset.index) for stretch in stretches]
    scores: dict[float, float] = {}
    # the targets of these rows only, at each offset (not every window of every song the rows touch:
    # at a 0.1-s hop on NMED-T-size data, 27,000 windows per offset where these are a few thousand)
    wanted = np.concatenate([fit_rows, val_rows])
    val_ends = np.cumsum([len(fit_rows), *(len(rows) for rows in val_blocks)])
    for offset in progress_bar(candidates, desc="target offset", unit="lag", disable=not progress,
                               leave=False):
        mel_fit, *targets = np.split(dataset.with_target_offset(offset).mel(wanted, keep_songs=False),
                                     val_ends[:-1])
        model = Linear(lags=PROXY_LAGS, target_offset_s=offset, n_chans=eeg_fit.shape[1])
        model.fit_stats(eeg_fit.numpy(), mel_fit)
        # fitted without a validation part, the penalty grid picks on training error, which only grows
        # with the penalty: the smallest always wins, so it is solved alone (five solves fewer)
        model.fit_closed_form([(eeg_fit, torch.from_numpy(mel_fit), subject_fit)], None,
                              alphas=(min(RIDGE_GRID),))
        scores[offset] = live_frame_score(model, block_eeg, targets, columns, offsets)
        logger.info("target offset %.3f s: validation dynamic r %.4f (ridge)", offset, scores[offset])
    best = max(candidates, key=lambda c: (scores[c], -c))
    logger.info("target offset %.3f s chosen on %d validation windows", best, len(val_rows))
    return LagChoice(best, scores, n_fit_windows=len(fit_rows), n_val_windows=len(val_rows))


NO_STRETCH = ("found no 2-s stretch in the validation part to score a lag on",
              "use more data or --split block, or pass --target-offset SECONDS")
"""The problem and the fix when no validation block holds two windows 1 s apart on continuous EEG (the fix as
:func:`choose_target_offset` words it for a split: :func:`_no_stretch_fix`)."""


def _scorable_runs(dataset, rows: np.ndarray) -> list[Stretch]:
    """The stretches of continuous EEG in ``rows`` with 2 or more scored windows (a lag is scored on)."""
    from eegmusic.offline_training.scoring import block_rows
    from eegmusic.offline_training.splits import contiguous_blocks

    blocks = block_rows(dataset.index, rows, contiguous_blocks(dataset.index, rows, hop_s=dataset.hop_s))
    return [stretch for block in blocks for stretch in tiling_stretches(dataset.index, block)
            if len(stretch.scored) >= 2]


def _no_stretch_fix(dataset, split_kind: str | None, seed: int) -> str:
    """What gives a validation part a stretch to score a lag on: ``--split block`` only where the split is
    another kind and a block split of these windows would have one (else it was refused or circular)."""
    from eegmusic.offline_training.splits import trainable_split
    from eegmusic.stream.spec import WINDOW_S

    if dataset.hop_s > WINDOW_S:   # windows further apart than their length never tile a stretch
        return (f"pass --hop {WINDOW_S:g} or less (windows {dataset.hop_s:g} s apart leave gaps, so no "
                "recording gives consecutive seconds), or pass --target-offset SECONDS")
    if split_kind != "block":
        block = trainable_split(dataset.index, "block", seed=seed, hop_s=dataset.hop_s, music=dataset.music)
        if block is not None and _scorable_runs(dataset, block.val):
            return NO_STRETCH[1]
    return ("use longer recordings (a validation stretch needs 2 consecutive seconds), or pass "
            "--target-offset SECONDS")


def _unscorable(problem: str, fix: str, fallback_s: float | None) -> LagChoice:
    """Refuse in one line (``fallback_s`` None), or fall back to ``fallback_s`` with one warning.

    Parameters
    ----------
    problem, fix : str
        Why no lag can be scored, and what the user can do about it.
    fallback_s : float, optional
        The offset to fall back to (seconds).
    """
    if fallback_s is None:
        raise ConfigError(f"--target-offset auto {problem}; {fix}")
    logger.warning("target offset %g s, not chosen: 'auto' (the default) %s; the live decoder plays the "
                   "newest window frames, whose response a 0.1-0.3 s lag brings into the window, so %s",
                   fallback_s, problem, fix)
    return LagChoice(float(fallback_s), fallback=f"'auto' {problem}")


@dataclass
class Stretch:
    """A stretch of continuous EEG in one recording, and its windows scored one second apart.

    Attributes
    ----------
    scored : ndarray of int
        Rows of the windows whose targets are scored (:func:`~offline_training.scoring.one_per_second`).
    cover : ndarray of int
        Rows whose windows, each cut where the next begins, give the stretch's EEG without a gap.
    """

    scored: np.ndarray
    cover: np.ndarray

    def eeg(self, dataset) -> np.ndarray:
        """The stretch's EEG, shape (n_chans, n_times), from the first window's start."""
        windows = dataset.eeg(self.cover)
        starts = dataset.index["start"][self.cover]
        pieces = [window[:, :step] for window, step in zip(windows[:-1], np.diff(starts), strict=True)]
        return np.concatenate(pieces + [windows[-1]], axis=-1)

    def offsets(self, index: np.ndarray) -> np.ndarray:
        """Where each scored window starts in :meth:`eeg` (samples), shape (n_scored,)."""
        return index["start"][self.scored] - index["start"][self.cover[0]]


def tiling_stretches(index: np.ndarray, rows: np.ndarray) -> list[Stretch]:
    """Split one recording's rows (time order) into stretches of continuous EEG.

    A stretch goes on while a next window starts within the last one (at most 125 samples on); at any
    hop up to 1 s, a block of windows is one stretch, while 1-s windows that miss a second are two.
    At a hop dividing a second the scored windows tile the EEG (1 s apart); at another (``--hop 0.1``:
    12 samples, no two windows 125 samples apart) they are the windows nearest each second.
    """
    from eegmusic.offline_training.scoring import one_per_second
    from eegmusic.stream.spec import WINDOW_SAMPLES

    rows = np.asarray(rows, dtype=np.int64)
    starts = index["start"][rows]
    stretches, first = [], 0
    while first < len(rows):
        cover = [first]
        while True:  # the farthest window that starts within the last one
            last = cover[-1]
            end = starts[last] + WINDOW_SAMPLES
            reach = last + int(np.searchsorted(starts[last + 1:], end, side="right"))
            if reach == last:
                break
            cover.append(reach)
        span = rows[first:cover[-1] + 1]
        stretches.append(Stretch(span[one_per_second(index, span)], rows[cover]))
        first = cover[-1] + 1
    return stretches


def live_frame_score(model, block_eeg: list, block_targets: list, columns: slice = LIVE_FRAMES,
                     target_offsets: list | None = None) -> float:
    """Dynamic r of window columns (the newest by default), windows cut every 48 ms as live decoding does.

    The mean over ``columns`` of the dynamic r of :func:`live_frames`' frames; its parameters.

    Raises
    ------
    ConfigError
        No block long enough to score a column on.
    """
    pred_blocks, true_blocks, _ = live_frames(model, block_eeg, block_targets, columns, target_offsets)
    return columns_score(pred_blocks, true_blocks)


def columns_score(pred_blocks: dict, true_blocks: dict) -> float:
    """Mean over window columns of the dynamic r over blocks (each dict as :func:`live_frames` gives it)."""
    from eegmusic.offline_training.metrics import dynamic_r

    return float(np.mean([dynamic_r(pred_blocks[c], true_blocks[c]) for c in pred_blocks]))


def live_frames(model, block_eeg: list, block_targets: list, columns: slice = LIVE_FRAMES,
                target_offsets: list | None = None) -> tuple[dict, dict, dict]:
    """A model's live frames and their true frames, window columns (the newest by default) of windows cut
    every 48 ms as live decoding does.

    Parameters
    ----------
    model : torch.nn.Module
        Maps EEG windows (n, n_chans, 125) to mel-dB windows (n, 128, 44).
    block_eeg : list of ndarray, each shape (n_chans, n_times)
        Each validation block's continuous EEG (:meth:`Stretch.eeg`).
    block_targets : list of ndarray, each shape (n_windows, 128, 44)
        The block's targets about 1 s apart; their interior frames are the true frames.
    columns : slice
        The window columns scored.
    target_offsets : list of ndarray of int, each shape (n_windows,), optional
        Where each target's window starts in its block's EEG (samples; :meth:`Stretch.offsets`);
        default 0, 125, 250, ... (1-s windows side by side).

    Returns
    -------
    pred_blocks, true_blocks : dict of int to list of ndarray
        Per scored column: per block (in order; a block with fewer than 2 frames of the column found is
        left out of both), the decoded frames and the true frames they are scored against, (128, n) each.
    block_of : dict of int to list of int
        Per scored column: the index in ``block_eeg`` of each of its blocks.

    Raises
    ------
    ConfigError
        No block long enough to score a column on.
    """
    import torch
    from eegmusic.decoder.melspec import FRAME_PERIOD_S
    from eegmusic.offline_training.scoring import INTERIOR_FRAMES
    from eegmusic.stream.spec import MODEL_SFREQ, WINDOW_SAMPLES

    interior = np.arange(FRAMES_PER_WINDOW)[INTERIOR_FRAMES]
    columns = np.arange(FRAMES_PER_WINDOW)[columns]
    pred_blocks: dict[int, list] = {int(c): [] for c in columns}
    true_blocks: dict[int, list] = {int(c): [] for c in columns}
    budget = MAX_LIVE_WINDOWS
    if target_offsets is None:
        target_offsets = [WINDOW_SAMPLES * np.arange(len(target)) for target in block_targets]
    block_of: dict[int, list] = {int(c): [] for c in columns}
    blocks = zip(block_eeg, block_targets, target_offsets, strict=True)
    for block, (eeg, target, offsets) in enumerate(blocks):
        # true frames by stimulus time (s from the block's first window start, any offset alike)
        true_times = (np.asarray(offsets)[:, None] / MODEL_SFREQ
                      + interior[None, :] * FRAME_PERIOD_S).reshape(-1)
        true_frames = target[:, :, interior].transpose(1, 0, 2).reshape(target.shape[1], -1)
        order = np.argsort(true_times, kind="stable")  # windows nearer than 1 s overlap in time
        true_times, true_frames = true_times[order], true_frames[:, order]
        starts = np.arange(0, eeg.shape[-1] - WINDOW_SAMPLES + 1, LIVE_STEP_SAMPLES)[:budget]
        budget -= len(starts)
        if len(starts) < 2:
            break
        windows = np.stack([eeg[:, s:s + WINDOW_SAMPLES] for s in starts])
        with torch.no_grad():
            pred = np.concatenate([model(torch.from_numpy(windows[i:i + 512])).numpy()
                                   for i in range(0, len(windows), 512)])
        for c in columns:
            times = starts / MODEL_SFREQ + c * FRAME_PERIOD_S
            nearest = np.clip(np.searchsorted(true_times, times), 1, len(true_times) - 1)
            nearest -= (times - true_times[nearest - 1]) < (true_times[nearest] - times)
            found = np.abs(true_times[nearest] - times) <= FRAME_PERIOD_S / 2
            if found.sum() >= 2:
                pred_blocks[int(c)].append(pred[found, :, c].T)
                true_blocks[int(c)].append(true_frames[:, nearest[found]])
                block_of[int(c)].append(block)
    scored = [c for c in pred_blocks if pred_blocks[c]]
    if not scored:  # a guard: choose_target_offset passes only stretches of >= 2 scored windows
        raise ConfigError(f"--target-offset auto {NO_STRETCH[0]}; {NO_STRETCH[1]}")
    return ({c: pred_blocks[c] for c in scored}, {c: true_blocks[c] for c in scored},
            {c: block_of[c] for c in scored})
