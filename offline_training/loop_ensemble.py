"""The ensemble loop: each member of an :class:`~offline_training.models.ensemble.Ensemble` trained by its
own loop, then the members' mixing weights chosen on the validation part.

It lives apart from the regression loops because it drives :func:`offline_training.train.training_loop`
for its members; the regression loops themselves never import ``train`` (``tests/test_imports.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from eegmusic.offline_training.distributed import DistInfo
from eegmusic.offline_training.loop import batches
from eegmusic.offline_training.loop_regression import band_pearson, centre_groups, recording_groups

logger = logging.getLogger(__name__)

ENSEMBLE_WEIGHT_GRID = tuple(i / 10 for i in range(11))
"""Mixing weights of the first member tried on the validation part (the others share the rest)."""


def fit_ensemble(model, dataset, split, config, dist_info: DistInfo, device, out, state) -> dict:
    """Train each member of an :class:`~offline_training.models.ensemble.Ensemble` by its own loop, then
    choose the first member's mixing weight on the validation part by dynamic r.

    Member ``i`` trains with seed ``config.seed + i`` (batch order, dropout) and keeps its run files in
    ``out/member<i>``. Parameters and result are those of :func:`fit_regression`, plus ``members``
    (each member's result without its model), ``weights`` and, for an ensemble with ``output_ranks``,
    ``output_rank`` (None: unprojected) and ``output_rank_scores``. ``epochs_run`` is the most epochs a
    member ran (as for one model, at most ``config.epochs``); ``member_epochs_run`` lists each member's.
    """
    import dataclasses

    import torch
    from eegmusic.offline_training.train import training_loop
    from eegmusic.stream.errors import ConfigError

    if state is not None:
        raise ConfigError("an ensemble run cannot be resumed (its members train one after the other); "
                          "start a new --out")
    results = []
    for i, member in enumerate(model.models):
        if model.members[i]["trained"]:
            results.append({"trained_before": True})
            continue
        member_out = Path(out) / f"member{i}"
        if dist_info.main:
            member_out.mkdir(parents=True, exist_ok=True)
        member_config = dataclasses.replace(config, seed=int(config.seed) + i, model=member.name)
        torch.manual_seed(member_config.seed)
        fit = training_loop(member)
        result = fit(member, dataset, split, member_config, dist_info, device, member_out, None)
        model.models[i] = result["model"]
        results.append({k: v for k, v in result.items() if k != "model"})
        logger.info("ensemble member %d (%s) trained", i, member.name)
    weights, scores = choose_weights(model, dataset, split.val, config.batch_size, device)
    model.set_weights(weights)
    projection = {"rank": None, "scores": {}}
    if model.output_ranks:  # the mix's output rank, chosen on validation (output_projection)
        from eegmusic.offline_training.output_projection import fit_output_projection

        projection = fit_output_projection(model, dataset, split, config.batch_size, device)
    history = [h for r in results for h in r.get("history", [])]
    # epochs_run keeps its meaning of every other model, the epochs one model trained (at most --epochs):
    # the most any member ran; each member's count is member_epochs_run (0: trained before)
    member_epochs = [int(r.get("epochs_run", 0)) for r in results]
    return {"model": model, "members": results, "weights": list(weights), "weight_scores": scores,
            "output_rank": projection["rank"], "output_rank_scores": projection["scores"],
            "history": [], "member_history": history, "best_epoch": 0,
            "epochs_run": max(member_epochs, default=0), "member_epochs_run": member_epochs}


def choose_weights(model, dataset, rows, batch_size: int, device) -> tuple[list[float], dict]:
    """Mixing weights of an ensemble that give the best pooled per-band Pearson r on ``rows``.

    The first member's weight runs over :data:`ENSEMBLE_WEIGHT_GRID`; the other members share the rest
    equally (one member: weight 1).

    Returns
    -------
    weights : list of float
    scores : dict
        First member's weight → validation r.
    """
    import torch
    from eegmusic.offline_training.scoring import INTERIOR_FRAMES

    n = len(model.models)
    if n == 1 or len(rows) == 0:
        return [1.0 / n] * n, {}
    outputs: list[list] = [[] for _ in range(n)]
    targets = []
    model.eval()
    with torch.no_grad():
        for eeg, mel, subject in batches(dataset, rows, batch_size, device):
            for i, out in enumerate(model.member_outputs(eeg, subject)):
                outputs[i].append(out[:, :, INTERIOR_FRAMES].cpu())
            targets.append(mel[:, :, INTERIOR_FRAMES].cpu())
    group = recording_groups(dataset, rows)
    member = [centre_groups(torch.cat(o), group) for o in outputs]
    target = centre_groups(torch.cat(targets), group)
    scores = {}
    for w in ENSEMBLE_WEIGHT_GRID:
        weights = [w] + [(1.0 - w) / (n - 1)] * (n - 1)
        mix = sum(wi * m for wi, m in zip(weights, member, strict=True))
        scores[w] = float(band_pearson(mix, target).mean())
    best = max(scores, key=lambda w: (scores[w], -abs(w - 1.0 / n)))
    logger.info("ensemble weight of member 0 chosen on validation: %g (r %s)", best,
                ", ".join(f"{w:g}: {r:.3f}" for w, r in scores.items()))
    return [best] + [(1.0 - best) / (n - 1)] * (n - 1), scores
