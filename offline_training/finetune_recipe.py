"""Tools of the fine-tuning recipe (:mod:`offline_training.finetune`): the held-out tracks every choice
is scored on, pooled (:func:`selection_folds`, :func:`held_out_predictions`, :func:`pooled_r`), an L2-SP
pull toward the pretrained weights, a greedy soup of the candidates' weights, and the weight of the blend
of the start's and the fine-tuned model's outputs (:func:`choose_alpha`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from eegmusic.offline_training.models.base import MelDecoder

logger = logging.getLogger(__name__)


class WeightAnchor:
    """L2-SP: pull the pretrained layers toward their starting weights while fine-tuning.

    Adds ``weight · (w − w₀)`` to the gradient of every anchored parameter ``w`` (starting value
    ``w₀``), i.e. the gradient of ``weight/2 · Σ‖w − w₀‖²`` added to the loss, through tensor hooks,
    so the training loop runs unchanged. Use as a context manager; the hooks go on exit.

    Parameters
    ----------
    model : MelDecoder
    start : dict
        State dict of the starting weights (CPU tensors).
    weight : float
        Penalty weight per parameter, in loss units per squared weight change.
    skip : collection of str
        Parameter names left free (a zeroed output layer has nothing pretrained to keep).
    """

    def __init__(self, model: MelDecoder, start: dict, weight: float, skip=()):
        self.model, self.start, self.weight, self.skip = model, start, float(weight), set(skip)
        self._handles = []

    def __enter__(self) -> WeightAnchor:
        if self.weight <= 0.0:
            return self
        for name, param in self.model.named_parameters():
            if name in self.skip or not param.requires_grad:
                continue
            target = self.start[name].to(param.device)
            self._handles.append(param.register_hook(
                lambda grad, param=param, target=target: grad + self.weight * (param.detach() - target)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def greedy_soup(finished: list, best_loss: float, loss_of) -> dict | None:
    """Average the weights of fine-tuned candidates while the held-out loss improves (a greedy soup).

    Candidates fine-tuned from the same pretrained start can be averaged weight by weight; the
    average often generalises better than any one of them (Wortsman et al. 2022, "Model soups").
    Starting from the candidate of lowest loss, each next-best candidate joins the uniform average
    when the average's loss is lower with it.

    Parameters
    ----------
    finished : list of (float, int)
        Each candidate's loss (lower is better: minus its held-out dynamic r) and index.
    best_loss : float
        The lowest loss so far (the untrained start's included): a soup must beat it.
    loss_of : callable
        ``loss_of(members)``: the loss of the uniform weight average of the candidates ``members``
        (a list of indices; the caller averages each fold's weights and pools the folds' scores).

    Returns
    -------
    dict or None
        ``loss`` and ``members`` (candidate indices) of a soup of two or more candidates that beats
        ``best_loss``, else None.
    """
    ranked = sorted(finished, key=lambda entry: entry[0])
    members, soup_loss = [ranked[0][1]], ranked[0][0]
    for _loss, index in ranked[1:]:
        loss = loss_of([*members, index])
        logger.info("soup of candidates %s + %d: held-out loss %.4f (without it %.4f)", members, index,
                    loss, soup_loss)
        if loss < soup_loss:
            members, soup_loss = [*members, index], loss
    if len(members) < 2 or soup_loss >= best_loss:
        return None
    return {"loss": soup_loss, "members": members}


def mean_weights(states: list[dict]) -> dict:
    """The weight-by-weight mean of state dicts of one architecture (integer buffers of the first).

    Parameters
    ----------
    states : list of dict
        One or more state dicts with the same keys and shapes.
    """
    first = states[0]
    return {k: sum(state[k] for state in states) / len(states) if v.is_floating_point() else v
            for k, v in first.items()}


ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Blend weights tried (:func:`choose_alpha`): 0 is the start, 1 the fine-tuned model, between them the
weighted mean of their outputs (:class:`offline_training.finetune.BlendedDecoder`)."""


FOLDS = 2
"""Calibration tracks held out in turn (:func:`selection_folds`); every choice is scored on all of them
pooled. Why more than one: the held-out score of one track (about 45 windows at 5 minutes) swings with
the track (bench_calibration, 5 minutes, start's held-out r 0.04–0.34 across the five seeds' tracks),
and one seed chose the fine-tuned model alone on a track where it gained 0.072 → 0.096, then scored
0.044 on the test music against the pretrained model's 0.114. Why not every track: each fold trains
every candidate again (the cost is ``FOLDS`` × the candidates)."""


@dataclass
class SelectionFold:
    """One calibration track held out to choose the fine-tuning recipe on music not trained on.

    Attributes
    ----------
    song : int or None
        The held-out track's song id; None when no track can be held out (then the recipe is chosen
        on the validation blocks of the training music, ``reason`` says so).
    split : Split
        What the candidates train on, as the run trains: ``train``, the training rows of the other
        tracks; ``val``, the validation blocks of the other tracks (early stopping, the run's own
        recipe); ``test``: the run's, never read.
    scored : ndarray of int
        The rows every choice is scored on: the held-out track's training and validation rows (the
        run's validation rows when no track is held out).
    reason : str or None
        Why no track could be held out, else None.
    """

    song: int | None
    split: object
    scored: np.ndarray
    reason: str | None


def selection_folds(index: np.ndarray, split, *, seed: int = 0, k: int = FOLDS,
                    music: np.ndarray | None = None) -> list[SelectionFold]:
    """Hold out up to ``k`` training tracks, one per fold (seeded order), whose windows score every
    fine-tuning choice, pooled.

    Tracks with fewer than half the windows of the longest (a play's stub) are not held out, nor a
    track whose removal would leave no validation block of another track to stop the candidates'
    training on.

    Parameters
    ----------
    index : ndarray, structured (song, subject, start)
        ``WindowDataset.index``.
    split : Split
        The run's split; only ``train`` and ``val`` are read.
    seed : int
        Chooses the tracks.
    k : int
        Most folds (tracks held out); fewer when fewer tracks qualify.
    music : ndarray, structured (music, start), optional
        ``WindowDataset.music``: a track is a piece of music, so every play of it is held out together
        (a session that plays a track twice made two songs of it, and a fold held one out while
        training on the other). Default: each song is a track.

    Returns
    -------
    list of SelectionFold
        One per held-out track, distinct tracks; a single fold with ``song`` None (the run's own
        split, its validation rows scored) when fewer than 2 tracks qualify.
    """
    from eegmusic.offline_training.splits import Split

    track = index["song"] if music is None else music["music"]
    heard = np.union1d(split.train, split.val)
    songs, counts = np.unique(track[heard], return_counts=True)
    songs = songs[counts >= 0.5 * counts.max()]  # a stub of a play (a few seconds) is no track to hold out
    val_songs = set(track[split.val].tolist())
    holdable = [int(s) for s in songs if val_songs - {int(s)}]  # the others keep validation blocks
    if len(songs) < 2 or not holdable:
        why = (f"holds {len(songs)} track" if len(songs) < 2 else
               f"holds {len(songs)} tracks, none of which leaves validation blocks on the others")
        reason = (f"the training part {why}; the recipe is chosen on validation blocks of the training "
                  "music (record more tracks to choose it on music not trained on)")
        return [SelectionFold(None, split, split.val, reason)]
    order = np.random.default_rng([seed, 2718]).permutation(len(holdable))
    folds = []
    for song in [holdable[i] for i in order[:max(1, int(k))]]:
        held = heard[track[heard] == song]
        train = split.train[track[split.train] != song]
        val = split.val[track[split.val] != song]
        folds.append(SelectionFold(song, Split(train, val, split.test, split.test_block), held, None))
    return folds


def held_out_predictions(model: MelDecoder, dataset, rows: np.ndarray, *, hop_s: float, batch_size: int,
                         device) -> tuple[list, list]:
    """``model``'s mel-dB on ``rows`` and the targets, one block per stretch, as ``eegmusic evaluate``
    scores a test part.

    Inside each contiguous stretch of ``rows`` (one track, one listener) the windows at a 1-s hop are
    decoded and their interior frames concatenated (:func:`offline_training.scoring.dynamic_blocks`).

    Parameters
    ----------
    model : MelDecoder
    dataset : WindowDataset
    rows : ndarray of int
        Rows of ``dataset.index``.
    hop_s : float
        Hop between the dataset's windows, in seconds.
    batch_size : int
    device : torch.device

    Returns
    -------
    preds, targets : list of ndarray, each shape (n_mels, n_frames_block)
        Empty when no stretch holds two windows.
    """
    import torch
    from eegmusic.offline_training.loop import batches
    from eegmusic.offline_training.scoring import INTERIOR_FRAMES, concat_frames, dynamic_blocks
    from eegmusic.offline_training.splits import contiguous_blocks

    index = dataset.index
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    blocks = contiguous_blocks(index, rows, hop_s=hop_s)
    stretches = [r for r in dynamic_blocks(index, rows, blocks) if len(r) >= 2]
    if not stretches:
        return [], []
    scored = np.concatenate(stretches)
    preds, targets = [], []
    model.eval()
    with torch.no_grad():
        for eeg, mel, subject in batches(dataset, scored, batch_size, device):
            preds.append(model(eeg, subject if model.subject_input else None).cpu().numpy())
            targets.append(mel.cpu().numpy())
    pred, target = np.concatenate(preds), np.concatenate(targets)
    bounds = np.cumsum([0, *map(len, stretches)])
    spans = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return ([concat_frames(pred[s][:, :, INTERIOR_FRAMES]) for s in spans],
            [concat_frames(target[s][:, :, INTERIOR_FRAMES]) for s in spans])


def pooled_r(preds: list, targets: list) -> float:
    """Dynamic r of the stretches of several folds pooled (the per-band r averaged over bands, then over
    every stretch of every fold); NaN when there is none.

    Parameters
    ----------
    preds, targets : list of list of ndarray, each shape (n_mels, n_frames_block)
        Per fold, its stretches (:func:`held_out_predictions`).
    """
    from eegmusic.offline_training.metrics import dynamic_r

    flat_preds = [block for fold in preds for block in fold]
    flat_targets = [block for fold in targets for block in fold]
    return dynamic_r(flat_preds, flat_targets) if flat_preds else float("nan")


def held_out_r(model: MelDecoder, dataset, rows: np.ndarray, *, hop_s: float, batch_size: int,
               device) -> float:
    """Dynamic r of ``model`` on ``rows`` (:func:`held_out_predictions`): the per-band Pearson r over time
    averaged over bands, then over stretches; NaN when no stretch holds two windows."""
    preds, targets = held_out_predictions(model, dataset, rows, hop_s=hop_s, batch_size=batch_size,
                                          device=device)
    return pooled_r([preds], [targets])


def choose_alpha(score, alphas=ALPHAS) -> tuple[float, dict]:
    """The blend weight of highest validation score.

    Parameters
    ----------
    score : callable
        ``score(alpha)``: validation score of the blend at weight ``alpha`` (0: the start, 1: the
        fine-tuned model; :class:`offline_training.finetune.BlendedDecoder`); higher is better, NaN
        counts as lowest.
    alphas : sequence of float
        Weights tried, in order; on a tie the first (the smallest: nearest the pretrained model) wins.

    Returns
    -------
    alpha : float
    scores : dict
        ``{alpha: score}`` for every weight tried.
    """
    scores = {}
    for alpha in alphas:
        value = float(score(float(alpha)))
        scores[float(alpha)] = value if np.isfinite(value) else -np.inf
        logger.info("blend weight %.2f: validation score %.4f", alpha, value)
    best = max(scores, key=lambda a: (scores[a], -a))
    return best, scores
