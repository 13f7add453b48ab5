"""The fine-tuning loop of ``train --init`` (:func:`fit_finetune`): every choice on calibration music the
candidates did not train on, then the chosen recipe trained as a from-scratch run is, on every track.

1. **Statistics.** The pretrained model's own normalisation (EEG scaling, mel mean and SD) or one
   refitted on the new listener's training windows: the one under which the pretrained model, before
   any step, scores the higher dynamic r on every calibration window of the training and validation
   parts (none of which it was trained on). Why: refitting the EEG scaling on a few minutes of one
   listener moved the input the network was trained on (slow test's setting, diagnosis on its test
   session, 2 seeds: pretrained model 0.149 with its statistics, 0.141 refitted; fine-tuned 0.169 and
   0.179 against 0.148 and 0.156).
2. **Candidates.** :data:`~offline_training.finetune_recipe.FOLDS` calibration tracks are held out in
   turn (:func:`~offline_training.finetune_recipe.selection_folds`). From the same start, the ordinary
   training loop runs once per candidate and fold on the other tracks' training windows, with early
   stopping on *their* validation blocks, as a from-scratch run stops: the output layer kept or zeroed
   (:data:`HEADS`) × the learning rates :data:`LR_FACTORS` × the model's ``default_lr``. Each candidate
   is scored by dynamic r on the held-out tracks pooled (each fold's model on its own held-out track,
   :func:`~offline_training.finetune_recipe.pooled_r`). Why pooled folds and not one track: one track
   (about 45 windows at 5 minutes) is a noisy judge (:data:`~offline_training.finetune_recipe.FOLDS`
   gives the figures). Why the early
   stopping is not on the held-out track: its loss (MSE) rises after 1–5 epochs on new music, whose mean
   spectrum differs, long before its dynamic r stops improving (slow test's setting, 2 seeds: from
   scratch stopped that way scored 0.016 and −0.028 on the test session against 0.163 and 0.173 when
   stopped on validation blocks; the fine-tuning candidates stopped that way at epochs 1–3).
3. **Soup and blend.** The best candidate, or a greedy soup of them (:data:`SOUP`, each fold's
   candidates averaged) when it scores higher pooled, is blended with the start in output space:
   ``(1 − alpha) · start + alpha · tuned`` mel-dB (:class:`~offline_training.finetune.BlendedDecoder`),
   at the weight ``alpha`` of highest pooled held-out score (each fold's start and tuned outputs mixed,
   then pooled; :data:`~offline_training.finetune_recipe.ALPHAS`; 0 is the start as it is, 1 the fine-tuned
   model alone). Why output space and not weights (WiSE-FT, last round): the pretrained model keeps
   what it learnt from other listeners and other music, which a few calibration minutes do not teach;
   bench_calibration's 5-minute session (diagnosis on its test session, 3 seeds × 4 candidates):
   the output mean of start and candidate scored 0.108–0.157, the weight mean 0.103–0.144, the
   candidate alone 0.057–0.125, the pretrained model alone 0.114.
4. **Refit.** With alpha above 0, each chosen candidate's recipe is trained again from the start on
   every track (the run's own split and early stopping, as a from-scratch run), and blended at the
   chosen alpha: the shipped model hears every calibration track, like the from-scratch model it is
   compared with. A session with no track to hold out chose on its validation blocks with candidates
   already trained on every track: nothing is refitted.

Test windows play no part; every score is in ``metrics.json`` (``finetune``). An L2-SP pull toward the
pretrained weights (:class:`~offline_training.finetune_recipe.WeightAnchor`) is available as further
candidates (:data:`L2SP_WEIGHTS`) but off: on a 5-minute calibration it lowered neither the validation
loss nor the test r (weight 30: test r 0.128 and 0.101 against 0.151 and 0.093 without, two seeds).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch
from eegmusic.offline_training.distributed import from_main
from eegmusic.offline_training.finetune_recipe import WeightAnchor, greedy_soup
from eegmusic.offline_training.models.base import MelDecoder
from torch import nn

logger = logging.getLogger(__name__)

LR_FACTORS = (0.3, 1.0)
"""Candidate fine-tuning learning rates, as fractions of the model's ``default_lr``."""
HEADS = ("keep", "reset")
"""Candidate starts of the output layer: the pretrained one (``keep``), or zeroed (``reset``: the
pretrained features under a new head that starts at the listener's mean spectrum)."""
SOUP = True
"""Average the candidates' weights when that raises the held-out score (:func:`greedy_soup`)."""
L2SP_WEIGHTS = (0.0,)
"""Candidate L2-SP weights (:class:`WeightAnchor`): 0 trains freely from the pretrained start."""


def _output_layer(model: MelDecoder) -> nn.Linear | None:
    """The output layer that ``zero_head`` starts at zero (a model's ``head``), or None."""
    from eegmusic.offline_training.finetune import AdaptedDecoder

    inner = model.inner if isinstance(model, AdaptedDecoder) else model
    head = inner._modules.get("head")
    return head if isinstance(head, nn.Linear) else None


def _train_candidate(fit, model, start: dict, recipe: dict, layer, dataset, split, config, dist_info, device,
                     out) -> dict:
    """One training loop of ``recipe`` (``head``, ``lr``, ``l2sp``) from ``start`` on ``split``; the
    model holds its best weights after it."""
    model.load_state_dict(start)
    skip = ()
    if recipe["head"] == "reset":
        model.zero_head(layer)
        skip = {n for n, p in model.named_parameters() if any(p is q for q in layer.parameters())}
    torch.manual_seed(config.seed)  # every candidate sees the same dropout and batch order
    with WeightAnchor(model, start, recipe["l2sp"], skip=skip):
        return fit(model, dataset, split, replace(config, lr=recipe["lr"]), dist_info, device, out, None)


def choose_statistics(model: MelDecoder, original: dict | None, dataset, rows, config, device) -> dict:
    """The start's normalisation: the pretrained model's own, or the one refitted on the new listener.

    Parameters
    ----------
    model : MelDecoder
        The start with its statistics refitted (its weights are left as chosen).
    original : dict or None
        State dict of the same start with the pretrained statistics; None when the model file did not
        hold them (then the refitted ones are kept).
    dataset : WindowDataset
    rows : ndarray of int
        Calibration rows the pretrained model is scored on (training and validation parts).
    config : TrainConfig
    device : torch.device

    Returns
    -------
    dict
        ``choice`` ("refitted" or "pretrained"), ``r`` (dynamic r of each on ``rows``, None when not
        available) and ``start`` (the chosen state dict).
    """
    from eegmusic.offline_training.finetune_recipe import held_out_r
    from eegmusic.offline_training.loop import weights

    refitted = weights(model)

    def score() -> float:
        value = held_out_r(model, dataset, rows, hop_s=config.hop_s, batch_size=config.batch_size,
                           device=device)
        return value if np.isfinite(value) else -np.inf

    r = {"refitted": score(), "pretrained": None}
    choice, start = "refitted", refitted
    if original is not None:
        model.load_state_dict(original)
        r["pretrained"] = score()
        if r["pretrained"] > r["refitted"]:
            choice, start = "pretrained", original
    model.load_state_dict(start)
    logger.info("fine-tuning starts from the %s statistics (dynamic r on %d calibration windows: refitted "
                "%.4f, pretrained %s)", choice, len(rows), r["refitted"],
                "not in the file" if r["pretrained"] is None else f"{r['pretrained']:.4f}")
    return {"choice": choice, "r": r, "start": start}


def fit_finetune(fit, model: MelDecoder, dataset, split, config, dist_info, device, out,
                 original: dict | None = None) -> dict:
    """Fine-tune ``model`` with the recipe chosen on calibration tracks held out of its training.

    See the module docstring for the steps and why.

    Parameters
    ----------
    fit : callable
        The model's training loop (:func:`offline_training.loop_regression.fit_regression`).
    model : MelDecoder
        The pretrained model (statistics refitted), on ``device``.
    dataset, split, config, dist_info, device, out
        As for the training loop; ``config`` is not modified.
    original : dict, optional
        The model's state dict with the pretrained statistics (None: the file did not hold them).

    Returns
    -------
    dict
        ``model`` (the chosen model: the start, the fine-tuned model, or a
        :class:`~offline_training.finetune.BlendedDecoder` of both when alpha is strictly between 0
        and 1), ``history``/``best_epoch``/``epochs_run`` of the last loop that
        made them (0 and empty when the start won), ``best_val_loss`` (on the run's validation part),
        and ``finetune``: ``statistics`` (choice and scores), ``selection`` (held-out ``songs``, one
        per fold, their ``n_windows``, each fold's ``n_train``, reason), ``start_r`` (pooled over the
        folds) and ``start_fold_r``, each candidate's (``lr``, ``head``, ``l2sp``, ``held_out_r``
        pooled, ``fold_r``, and per fold ``best_val_loss``, ``best_epoch``, ``epochs_run``), ``soup``
        (candidate indices or None), ``alpha`` and ``alpha_r`` (pooled held-out score per blend
        weight), ``alpha_fold_r`` (per fold), ``refit`` (True when the chosen recipes were trained again
        on every track), ``refit_epochs`` (their best epochs), and
        ``chosen_lr``/``chosen_head``/``chosen_l2sp`` (of the best member; None when alpha is 0).
    """
    from eegmusic.offline_training.finetune import BlendedDecoder
    from eegmusic.offline_training.finetune_recipe import (
        ALPHAS,
        FOLDS,
        choose_alpha,
        held_out_predictions,
        mean_weights,
        pooled_r,
        selection_folds,
    )
    from eegmusic.offline_training.loop import weights
    from eegmusic.offline_training.loop_regression import validation_loss

    statistics = choose_statistics(model, original, dataset, np.union1d(split.train, split.val), config,
                                   device)
    start = statistics["start"]
    folds = selection_folds(dataset.index, split, seed=config.seed, k=FOLDS, music=dataset.music)
    held = [fold.song for fold in folds if fold.song is not None]
    if not held:
        logger.warning("fine-tuning: %s", folds[0].reason)
    else:
        logger.info("fine-tuning recipe chosen on held-out tracks %s (%d windows, pooled); candidates "
                    "train on the other tracks", held, sum(len(f.scored) for f in folds))

    def outputs(fold: int) -> tuple[list, list]:
        """``model``'s mel-dB on the held-out stretches of fold ``fold``, and their targets."""
        return held_out_predictions(model, dataset, folds[fold].scored, hop_s=config.hop_s,
                                    batch_size=config.batch_size, device=device)

    start_preds, targets = (list(column) for column in zip(*map(outputs, range(len(folds))), strict=True))

    def score(preds: list) -> float:
        value = pooled_r(preds, targets)
        return value if np.isfinite(value) else -np.inf

    def fold_scores(preds: list) -> list:
        return [round(pooled_r([p], [t]), 4) for p, t in zip(preds, targets, strict=True)]

    start_r = score(start_preds)
    factors = [None] if config.lr is not None else LR_FACTORS
    layer = _output_layer(model)
    heads = [h for h in HEADS if h == "keep" or layer is not None]  # a model without a head keeps it
    tried, results, recipes, states, preds = [], [], [], [], []
    for head, anchor, factor in [(h, a, f) for h in heads for a in L2SP_WEIGHTS for f in factors]:
        recipe = {"lr": float(config.lr) if factor is None else factor * float(model.default_lr),
                  "head": head, "l2sp": anchor}
        fold_states, fold_preds, fold_results = [], [], []
        for f, fold in enumerate(folds):  # the same recipe from the same start, once per held-out track
            result = _train_candidate(fit, model, start, recipe, layer, dataset, fold.split, config,
                                      dist_info, device, out)
            fold_states.append(weights(model))
            fold_preds.append(outputs(f)[0])
            fold_results.append({k: v for k, v in result.items() if k != "model"})
        r = score(fold_preds)
        recipes.append(recipe)
        states.append(fold_states)
        preds.append(fold_preds)
        results.append(fold_results[-1])
        tried.append({**recipe, "held_out_r": r, "fold_r": fold_scores(fold_preds),
                      **{k: [res[k] for res in fold_results] for k in ("best_val_loss", "best_epoch",
                                                                        "epochs_run")}})
        logger.info("fine-tuning at lr %.2g, %s head, L2-SP %g: held-out r %.4f pooled over %d folds (%s; "
                    "start %.4f)", recipe["lr"], head, anchor, r, len(folds), tried[-1]["fold_r"], start_r)
    finished = [(-entry["held_out_r"], i) for i, entry in enumerate(tried)]
    members = [min(finished)[1]]

    def soup_preds(chosen: list) -> list:
        out_preds = []
        for f in range(len(folds)):
            model.load_state_dict(mean_weights([states[i][f] for i in chosen]))
            out_preds.append(outputs(f)[0])
        return out_preds

    soup = (greedy_soup(finished, min(finished)[0], lambda chosen: -score(soup_preds(chosen)))
            if SOUP and len(tried) > 1 else None)
    tuned_preds = preds[members[0]]
    if soup is not None:
        members = soup["members"]
        tuned_preds = soup_preds(members)

    blends = {float(a): [[(1.0 - a) * s + a * t for s, t in zip(sp, tp, strict=True)]
                         for sp, tp in zip(start_preds, tuned_preds, strict=True)] for a in ALPHAS}
    alpha, alpha_r = choose_alpha(lambda a: score(blends[a]), ALPHAS)
    # the processes' scores differ in the last digits: rank 0's choice, or they refit apart and hang
    members, soup, alpha, alpha_r = from_main((members, soup, alpha, alpha_r), dist_info)
    alpha_fold_r = {str(a): fold_scores(blend) for a, blend in blends.items()}
    last = results[members[0]] if alpha > 0 else {"history": [], "best_epoch": 0, "epochs_run": 0,
                                                     "windows_per_s": None}
    refit = alpha > 0 and bool(held)
    refit_epochs = []
    if not refit:  # alpha 0 (unused), or no track held out: the only fold trained on every track
        tuned = mean_weights([states[i][0] for i in members])
    else:  # the chosen recipes again, on every track, stopped as a from-scratch run stops
        refitted = []
        for index in members:
            result = _train_candidate(fit, model, start, recipes[index], layer, dataset, split, config,
                                      dist_info, device, out)
            last = {k: v for k, v in result.items() if k != "model"}
            refit_epochs.append(last["best_epoch"])
            refitted.append(weights(model))
        tuned = mean_weights(refitted)
    model.load_state_dict(start if alpha == 0 else tuned)
    if 0 < alpha < 1:  # both models, their outputs weighted
        model = BlendedDecoder.of(model, start, tuned, alpha)
    val_loss = validation_loss(model, dataset, split.val, config, device, dist_info)["loss"]
    chosen = tried[members[0]] if alpha > 0 else {"lr": None, "head": None, "l2sp": None}
    logger.info("fine-tuning chosen on %s: %s",
                f"held-out tracks {held}" if held else "validation blocks",
                "the start as it is" if alpha == 0 else
                f"lr {chosen['lr']:.2g}, {chosen['head']} head, candidates {members}, "
                f"blend weight {alpha:g}{', refitted on every track' if refit else ''}")
    return {**last, "best_val_loss": val_loss, "model": model,
            "finetune": {"statistics": {"choice": statistics["choice"], "r": statistics["r"]},
                         "selection": {"songs": held, "n_windows": int(sum(len(f.scored) for f in folds)),
                                       "n_train": [int(len(f.split.train)) for f in folds],
                                       "reason": folds[0].reason, "score": "dynamic_r pooled over folds"},
                         "start_r": start_r, "start_fold_r": fold_scores(start_preds), "candidates": tried,
                         "soup": None if soup is None else members,
                         "alpha": alpha, "alpha_r": {str(a): v for a, v in alpha_r.items()},
                         "alpha_fold_r": alpha_fold_r, "refit": refit, "refit_epochs": refit_epochs,
                         "chosen_lr": chosen["lr"], "chosen_head": chosen["head"],
                         "chosen_l2sp": chosen["l2sp"]}}
