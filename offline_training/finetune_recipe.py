"""Two tools of the fine-tuning recipe (:mod:`offline_training.finetune`): an L2-SP pull toward the
pretrained weights, and a greedy soup of the candidates' weights chosen on validation."""

from __future__ import annotations

import logging

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


def greedy_soup(model: MelDecoder, finished: list, best_val: float, val_loss) -> dict | None:
    """Average the weights of fine-tuned candidates while the validation loss improves (a greedy soup).

    Candidates fine-tuned from the same pretrained start can be averaged weight by weight; the
    average often generalises better than any one of them (Wortsman et al. 2022, "Model soups").
    Starting from the candidate of lowest validation loss, each next-best candidate joins the
    uniform average when the average's validation loss is lower with it.

    Parameters
    ----------
    model : MelDecoder
        Its weights are overwritten (the caller loads the chosen ones).
    finished : list of (float, int, dict)
        Each candidate's validation loss, index in ``candidates`` and best state dict.
    best_val : float
        The lowest validation loss so far (the untrained start's included): a soup must beat it.
    val_loss : callable
        Validation loss of ``model`` as it is.

    Returns
    -------
    dict or None
        ``weights``, ``val_loss`` and ``members`` (candidate indices) of a soup of two or more
        candidates that beats ``best_val``, else None.
    """
    ranked = sorted(finished, key=lambda entry: entry[0])
    members, total, soup_val = [ranked[0][1]], dict(ranked[0][2]), ranked[0][0]
    for _val, index, state in ranked[1:]:
        trial = {k: v + state[k] if v.is_floating_point() else v for k, v in total.items()}
        n = len(members) + 1
        model.load_state_dict(_average(trial, n))
        loss = val_loss()
        logger.info("soup of candidates %s + %d: validation loss %.3f (without it %.3f)", members, index,
                    loss, soup_val)
        if loss < soup_val:
            members, total, soup_val = [*members, index], trial, loss
    if len(members) < 2 or soup_val >= best_val:
        return None
    n = len(members)
    return {"weights": _average(total, n), "val_loss": soup_val, "members": members}


def _average(total: dict, n: int) -> dict:
    """A state dict of ``n`` candidates' summed weights, averaged (integer buffers as they are)."""
    return {k: v / n if v.is_floating_point() else v for k, v in total.items()}
