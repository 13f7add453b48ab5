"""The fine-tuning recipe's tools: the L2-SP anchor and the greedy soup (tiny torch modules)."""

from __future__ import annotations

import pytest
import torch


def test_greedy_soup_keeps_an_average_only_when_validation_says_so():
    from eegmusic.offline_training.finetune_recipe import greedy_soup

    model = torch.nn.Linear(1, 1, bias=False)

    def val_loss():  # validation prefers a weight of 1
        return float((model.weight.detach() - 1.0).abs().sum())

    def state(w):
        return {"weight": torch.tensor([[w]])}

    finished = [(0.5, 0, state(0.5)), (0.5, 1, state(1.5)), (3.0, 2, state(4.0))]
    soup = greedy_soup(model, finished, best_val=0.5, val_loss=val_loss)
    assert soup["members"] == [0, 1] and soup["val_loss"] == pytest.approx(0.0)
    torch.testing.assert_close(soup["weights"]["weight"], torch.tensor([[1.0]]))
    assert greedy_soup(model, finished, best_val=-1.0, val_loss=val_loss) is None  # the start was better
    assert greedy_soup(model, [(0.5, 0, state(0.5)), (2.0, 1, state(3.0))], 0.5, val_loss) is None


def test_weight_anchor_adds_the_l2sp_gradient_and_goes_away():
    from eegmusic.offline_training.finetune_recipe import WeightAnchor

    model = torch.nn.Linear(2, 1)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight += 0.5
    x = torch.ones(1, 2)

    def grad():
        model.zero_grad()
        model(x).sum().backward()
        return model.weight.grad.clone(), model.bias.grad.clone()

    free = grad()
    with WeightAnchor(model, start, 2.0, skip=("bias",)):
        anchored = grad()
    torch.testing.assert_close(anchored[0], free[0] + 2.0 * 0.5 * torch.ones(1, 2))
    torch.testing.assert_close(anchored[1], free[1])  # skipped
    torch.testing.assert_close(grad()[0], free[0])  # hooks removed on exit
