"""The dashboard's score line: the decoder beside the baselines of the same frames, and when to say why a
baseline is missing."""

from __future__ import annotations

import pytest
from eegmusic.gui.scores import baseline_line

NOTE = "(a scored song is not in the model's training data)"


@pytest.mark.parametrize(("summary", "noted"), [
    (None, False),                                                  # start-up: nothing scored yet
    ({}, False),
    ({"dynamic_r_total": 0.2, "baseline_dynamic_r_total": {"global_mean": 0.01}}, True),
    ({"dynamic_r_total": 0.2, "baseline_dynamic_r_total": {"global_mean": 0.01, "song_mean": 0.03}}, False),
])
def test_the_unseen_song_note_shows_only_when_the_song_mean_alone_is_missing(summary, noted):
    line = baseline_line(summary)
    assert (NOTE in line) == noted, line
    assert "\n" not in line and line.startswith("live dynamic r on the same frames: decoder ")
