"""The dashboard's score line: the decoder beside the baselines of the same frames, and when to say why a
baseline is missing."""

from __future__ import annotations

import pytest
from eegmusic.decoder.scores import baseline_line

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
    assert "\n" not in line and line.startswith("dynamic r, whole run: decoder ")


def test_a_constant_baseline_reads_n_a_with_the_reason():
    from eegmusic.decoder.metrics import CONSTANT_NOTE

    line = baseline_line({"dynamic_r_total": 0.2, "baseline_dynamic_r_total": {"global_mean": None,
                                                                               "song_mean": None},
                          "baseline_constant": ["global_mean", "song_mean"]})
    assert "global-mean baseline n/a" in line and f"both baselines: {CONSTANT_NOTE}" in line, line
    assert NOTE not in line and "0.000" not in line


def test_an_unseen_song_beside_a_constant_global_mean_keeps_both_reasons():
    line = baseline_line({"dynamic_r_total": 0.3, "baseline_dynamic_r_total": {"global_mean": None,
                                                                               "song_mean": None},
                          "baseline_constant": ["global_mean"]})
    assert NOTE.strip("()") in line and "global-mean baseline: one spectrum" in line, line


def test_a_model_without_mean_windows_says_why_both_baselines_are_missing():
    """decode --truth with a model made elsewhere printed no baselines at all, and the demo two bare n/a."""
    from eegmusic.decoder.scores import NO_MEANS_NOTE

    line = baseline_line({"dynamic_r_total": 0.2, "baseline_dynamic_r_total": {}, "baseline_constant": []})
    assert "global-mean baseline n/a, song-mean baseline n/a" in line and NO_MEANS_NOTE in line, line
    assert NO_MEANS_NOTE not in baseline_line({"dynamic_r_total": None, "baseline_dynamic_r_total": {}})


def test_the_dashboards_short_line_keeps_every_figure_and_says_each_reason_in_short_words():
    """At 1500 px the long line took four lines of the dashboard's mel column; the label now says each reason
    in short words (decode's own words are its tooltip), with the same figures in the same order."""
    import re

    from eegmusic.decoder.metrics import CONSTANT_NOTE
    from eegmusic.decoder.scores import CONSTANT_SHORT, SHIFTED_KEY, SHIFTED_WORDS, SHORT

    summary = {"dynamic_r_total": 0.333, SHIFTED_KEY: 0.006, "baseline_constant": ["global_mean"],
               "baseline_dynamic_r_total": {"global_mean": None, "song_mean": None}}
    long, short = baseline_line(summary), baseline_line(summary, short=True)
    figures = re.compile(r"(?<![\d.])-?\d\.\d{3}(?![\d])|n/a")   # not --hop 0.0464
    assert figures.findall(short) == figures.findall(long) == [
        "0.333", "0.006", "n/a", "n/a"]
    for phrase in (SHIFTED_WORDS, NOTE.strip("()"), CONSTANT_NOTE):
        assert phrase in long and phrase not in short, short
    assert ("shifted-stimulus control 0.006" in short and SHORT[NOTE.strip("()")] in short
            and f"global-mean baseline: {CONSTANT_SHORT}" in short), short
    assert len(short) < len(long) / 2
    assert baseline_line({}, short=True) == baseline_line({})   # nothing to shorten before a frame is scored
