"""How a model decodes music it has not heard: its live-frame score on one training song held out.

``eegmusic train --unseen-song-check`` answers the question the ``block`` split's validation part
cannot: the validation seconds of a ``block`` split are unseen seconds of songs the model trained on,
while a demo or a listener plays a new song. A model may follow those songs' own repeating patterns
(beats, bars, riffs recur inside a song) where its EEG says little, and be rewarded for it on the
validation part; on a new song that knowledge is wrong. The check measures that:

1. one song of the training part is held out (seeded; the test part is never read);
2. the same model, configuration and loop are trained on the training and validation rows of the
   other songs (the *fold*). A run whose target offset was chosen (``--target-offset auto``) chooses
   the fold's offset again on the fold's rows: the run's choice read the held-out song's validation
   seconds, and the check would score that song at a lag picked partly on it;
3. the fold model decodes the held-out song's training and validation stretches as the live decoder
   plays them: windows every 48 ms, the newest window columns scored against the true frames by
   dynamic r (:func:`offline_training.target_lag.live_frame_score`).

Measured on the demo's data (4 simulated songs × 6 listeners × 90 s, ``block`` split, training on
songs 21-23, song 24 held out by the demo): ``convnet`` at the 0.2-s lag scored 0.290 on the
validation part's live columns, where the ridge proxy scored 0.289, yet decoded song 24 at 0.017
(ridge 0.261); at 0.15 s, three seeds scored 0.24-0.28 on validation and 0.04-0.11 on song 24. Its
columns in the window's middle carried over (0.27 on song 24, the ridge 0.26), its newest ones did
not (columns 41, 42, 43: 0.36, 0.29, 0.22 on validation; 0.05, 0.01, −0.01 on song 24). The fold
score (convnet trained on songs 21-22, scored on song 23) was 0.15-0.20 against the ridge's
0.21-0.24 at every lag: the check sees what validation hides.

The cost is a second training of the model on the fold's rows (about two thirds of the data for
three songs); ``eegmusic demo`` pays it to choose its decoder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from eegmusic.offline_training.scoring import block_rows
from eegmusic.offline_training.target_lag import (
    LIVE_FRAMES,
    LIVE_STEP_SAMPLES,
    columns_score,
    live_frames,
    tiling_stretches,
)

logger = logging.getLogger(__name__)


@dataclass
class SongFold:
    """One training song held out, and the rows a fold model may train on.

    Attributes
    ----------
    song : int
        The held-out song id.
    split : Split
        ``train`` and ``val``: the training and validation rows of the other songs; ``test`` and
        ``test_block``: the original split's (never read by the check).
    scored : list of ndarray of int
        Runs of the held-out song's training and validation rows about 1 s apart on continuous EEG
        (one listener each, time order, at least 2 windows).
    stretches : list of Stretch
        Their stretches of EEG (:func:`offline_training.target_lag.tiling_stretches`), one per run.
    plays : list of int
        Which play (one listener's hearing of the song) each stretch is of, numbered from 0.
    """

    song: int
    split: object
    scored: list
    stretches: list
    plays: list


def song_fold(dataset, split, *, seed: int = 0) -> tuple[SongFold | None, str | None]:
    """Hold out one training song (seeded) for :func:`unseen_song_score`.

    Parameters
    ----------
    dataset : WindowDataset
    split : Split
        Only ``split.train`` and ``split.val`` are read.
    seed : int
        Chooses the song.

    Returns
    -------
    fold : SongFold or None
        None when no fold can be made.
    reason : str or None
        Why not (for the record), else None.
    """
    from eegmusic.offline_training.splits import Split

    index = dataset.index
    # a song is a piece of music: every play of it is held out (each listener's play of a track is a
    # song of its own in a folder of XDF sessions, numbered by its lowest, WindowDataset.music)
    track = dataset.music["music"]
    songs = np.unique(track[split.train])
    if len(songs) < 2:
        return None, f"the training part holds {len(songs)} song; holding one out needs 2 or more"
    song = int(songs[np.random.default_rng([seed, 1414]).integers(len(songs))])
    keep_train = split.train[track[split.train] != song]
    keep_val = split.val[track[split.val] != song]
    if len(keep_val) == 0:
        return None, f"without song {song} the validation part is empty (early stopping needs it)"
    heard = np.union1d(split.train, split.val)
    held = heard[track[heard] == song]
    # each listener's play (song) of the music on its own, its rows in time order: two plays of one
    # track by one listener were interleaved into one "continuous" stretch
    plays = np.unique(index[["song", "subject"]][held], return_inverse=True)[1].reshape(-1)
    per_play = block_rows(index, held, plays)
    found = [(play, stretch) for play, rows in enumerate(per_play)
             for stretch in tiling_stretches(index, rows) if len(stretch.scored) >= 2]
    stretches = [stretch for _, stretch in found]
    if not stretches:
        return None, f"song {song} has no 2-s stretch of training or validation windows to score"
    fold = Split(keep_train, keep_val, split.test, split.test_block)
    return SongFold(song, fold, [stretch.scored for stretch in stretches], stretches,
                    [play for play, _ in found]), None


def unseen_song_score(fit: Callable, dataset, split, *, seed: int = 0, columns: slice = LIVE_FRAMES,
                      choose_offset: Callable | None = None) -> dict:
    """Train a model without one training song and score its live frames on that song.

    Parameters
    ----------
    fit : callable
        ``fit(fold_split, fold_dataset) -> model``: trains the requested model (same configuration)
        on ``fold_split.train`` of ``fold_dataset`` (at the fold's target offset) with
        ``fold_split.val`` for early stopping and returns it (torch, mapping EEG windows
        (n, n_chans, 125) to mel-dB (n, 128, 44)).
    dataset : WindowDataset
        At the model's target offset.
    split : Split
        The run's split (its test part is never read).
    seed : int
        Chooses the held-out song.
    columns : slice
        Window columns scored (default: those live decoding plays).
    choose_offset : callable, optional
        ``choose_offset(fold_split) -> LagChoice`` (:func:`offline_training.target_lag.
        choose_target_offset` on the fold's rows) for a run whose offset was chosen; a
        :class:`~stream.errors.ConfigError` from it (no stretch of the fold's validation part to choose
        on) leaves the check unscored with its message as the reason. None: the run's offset, which was
        given, not chosen.

    Returns
    -------
    dict
        ``song`` (held out), ``dynamic_r`` (None when no fold could be made), ``shifted_dynamic_r``
        (:func:`shifted_control`: the same frames against the stimulus half their play away),
        ``n_windows`` (rows
        scored), ``n_fold_train`` (rows the fold model trained on), ``target_offset_s`` (the fold's),
        ``offset_choice`` (its :meth:`LagChoice.to_dict`, or None where the offset was given),
        ``seconds`` (the check's wall time), ``reason`` (why not scored, or None).
    """
    import time

    from eegmusic.stream.errors import ConfigError

    started = time.perf_counter()
    fold, reason = song_fold(dataset, split, seed=seed)
    choice = None
    if fold is not None and choose_offset is not None:  # never on the held-out song's seconds
        try:
            choice = choose_offset(fold.split)
        except ConfigError as error:
            reason = f"without song {fold.song} no target offset can be chosen ({error})"
            fold = None
    if fold is None:
        logger.warning("unseen-song check skipped: %s", reason)
        return {"song": None, "dynamic_r": None, "shifted_dynamic_r": None, "n_windows": 0, "n_fold_train": 0,
                "target_offset_s": None, "offset_choice": None, "seconds": 0.0, "reason": reason}
    if choice is not None:
        dataset = dataset.with_target_offset(choice.offset_s)
        logger.info("unseen-song check: target offset %.3g s chosen without song %d",
                    choice.offset_s, fold.song)
    logger.info("unseen-song check: training without song %d (%d windows)", fold.song, len(fold.split.train))
    model = fit(fold.split, dataset)
    model.eval()
    block_eeg = [stretch.eeg(dataset) for stretch in fold.stretches]
    targets = [dataset.mel(rows) for rows in fold.scored]
    offsets = [stretch.offsets(dataset.index) for stretch in fold.stretches]
    pred, true, block_of = live_frames(model, block_eeg, targets, columns, offsets)
    score = columns_score(pred, true)
    control = shifted_control(pred, true, {c: [fold.plays[b] for b in block_of[c]] for c in pred})
    n_windows = int(sum(len(rows) for rows in fold.scored))
    logger.info("unseen-song check: song %d decoded at live dynamic r %.4f (shifted-stimulus control %s)",
                fold.song, score, "n/a" if control is None else f"{control:.4f}")
    return {"song": fold.song, "dynamic_r": score, "shifted_dynamic_r": control, "n_windows": n_windows,
            "n_fold_train": int(len(fold.split.train)), "target_offset_s": dataset.target_offset_s,
            "offset_choice": None if choice is None else choice.to_dict(),
            "seconds": time.perf_counter() - started, "reason": None}


SHIFT_MIN_S = 4.0
"""Least seconds of a play's scored frames for :func:`shifted_control`: half of them must lie windows away
(as the live control's :data:`decoder.truth.SHIFT_MIN_FRAMES`)."""


def shifted_control(pred: dict, true: dict, play_of: dict) -> float | None:
    """The unseen-song score's control: the same decoded frames against the true frames half their play away.

    A play's true frames (one listener's, its blocks in order) are rolled by half their number, so each
    decoded frame meets the music some seconds off, as the live decode's shifted-stimulus control pairs its
    frames with the stimulus half the song away: what a decoder scores there, its EEG does not explain.
    Beside the check's score it stands where the constant baselines have no dynamics (a window's newest
    columns of a mean window are one spectrum).

    Parameters
    ----------
    pred, true : dict of int to list of ndarray
        Per window column, per block, decoded and true frames (128, n) (:func:`target_lag.live_frames`).
    play_of : dict of int to list of int
        Per column, the play of each block.

    Returns
    -------
    float or None
        Mean over the columns of the dynamic r; None when no play has :data:`SHIFT_MIN_S` of frames.
    """
    from eegmusic.offline_training.metrics import dynamic_r
    from eegmusic.stream.spec import MODEL_SFREQ

    least = int(np.ceil(SHIFT_MIN_S * MODEL_SFREQ / LIVE_STEP_SAMPLES))
    scores = []
    for c in pred:
        preds, trues = [], []
        for play in dict.fromkeys(play_of[c]):
            blocks = [b for b, p in enumerate(play_of[c]) if p == play]
            frames = np.concatenate([true[c][b] for b in blocks], axis=1)
            if frames.shape[1] < least:
                continue
            rolled = np.split(np.roll(frames, frames.shape[1] // 2, axis=1),
                              np.cumsum([true[c][b].shape[1] for b in blocks])[:-1], axis=1)
            preds += [pred[c][b] for b in blocks]
            trues += rolled
        if preds:
            scores.append(dynamic_r(preds, trues))
    return float(np.mean(scores)) if scores else None
