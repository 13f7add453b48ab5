"""The demo's choice of decoder: the candidate that decodes a song it did not train on better.

``choose_decoder`` reads what each candidate's ``train --unseen-song-check`` recorded; the training
runs themselves are tested in ``tests/offline_training/test_target_lag.py``.
"""

from __future__ import annotations

import json

import pytest
from eegmusic.gui.cli_demo import DEMO_CANDIDATES, _unseen_song, choose_decoder


def _check(r, song=23):
    return {"song": song, "dynamic_r": r, "n_windows": 100, "n_fold_train": 800, "reason": None}


@pytest.mark.parametrize("scores, chosen", [
    ({"convnet": 0.173, "linear": 0.244}, "linear"),   # the demo's data: the ridge carries over, convnet not
    ({"convnet": 0.31, "linear": 0.244}, "convnet"),
    ({"convnet": 0.2, "linear": 0.2}, "convnet"),      # a tie goes to the first candidate
])
def test_the_demo_plays_the_candidate_that_decodes_an_unseen_song_better(scores, chosen):
    arch, line = choose_decoder({arch: _check(r) for arch, r in scores.items()})
    assert arch == chosen
    assert line.startswith(f"decoder: {chosen}") and "song 23" in line
    assert all(f"{a} {r:.3f}" in line for a, r in scores.items())


def test_the_choice_line_sets_each_candidates_shifted_stimulus_control_beside_its_score():
    """A science audit: the line the demo chooses by stood beside no baseline (the mean windows have no
    dynamics at the newest columns); the control needs none."""
    checks = {"convnet": {**_check(0.22), "shifted_dynamic_r": -0.012},
              "linear": {**_check(0.297), "shifted_dynamic_r": None}}
    _, line = choose_decoder(checks)
    assert line.endswith("dynamic r convnet 0.220, linear 0.297; shifted-stimulus control convnet -0.012, "
                         "linear n/a)")


def test_without_any_unseen_song_score_the_demo_plays_the_first_candidate_and_says_why():
    unscored = {"song": None, "dynamic_r": None, "n_windows": 0, "n_fold_train": 0,
                "reason": "the training part holds 1 song; holding one out needs 2 or more"}
    arch, line = choose_decoder({"convnet": unscored, "linear": None})
    assert arch == "convnet"
    assert "holds 1 song" in line and "linear: no unseen-song record" in line


def test_an_unscored_candidate_loses_to_a_scored_one():
    arch, _ = choose_decoder({"convnet": None, "linear": _check(0.05)})
    assert arch == "linear"


def test_the_record_is_read_from_the_runs_metrics(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"unseen_song": _check(0.25)}))
    assert _unseen_song(tmp_path)["dynamic_r"] == 0.25
    assert _unseen_song(tmp_path / "missing") is None
    (tmp_path / "metrics.json").write_text("{not json")
    assert _unseen_song(tmp_path) is None


def test_the_candidates_are_the_deep_default_and_the_ridge():
    assert DEMO_CANDIDATES[0] == "convnet" and "linear" in DEMO_CANDIDATES
