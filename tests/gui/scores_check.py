"""Checks shared by the dashboard tests: the run's scores shown beside their baselines."""

from __future__ import annotations

import numpy as np
from eegmusic.decoder.metrics import CONSTANT_NOTE
from eegmusic.decoder.scores import CONSTANT_SHORT


def scores_in(summary: dict) -> tuple:
    """(decoder, global mean, song mean) dynamic r over the run, read from the summary's own keys."""
    base = summary["baseline_dynamic_r_total"]
    return summary["dynamic_r_total"], base["global_mean"], base["song_mean"]


def scored(window) -> bool:
    """Whether the window shows the decoder's run score, and each baseline as a score or as constant."""
    decoder, *base = window.mel_panel.scores
    shown = window.mel_panel.baseline_label.text()
    return decoder is not None and (None not in base or CONSTANT_SHORT in shown)


def assert_scores_shown(window, summary: dict) -> None:
    """The decoder's score, and each baseline's: its score, or n/a with the reason when it predicted one
    spectrum at every scored frame (a one-frame hop emits each window's newest frame): in short words on
    the label, in decode's own words in its tooltip."""
    decoder, global_mean, song_mean = scores_in(summary)
    assert decoder is not None and np.isfinite(decoder)
    text = window.mel_panel.baseline_label.text()
    tip = window.mel_panel.baseline_label.toolTip()
    assert window.mel_panel.baseline_label.isVisible()
    assert f"decoder {decoder:.3f}" in text and f"decoder {decoder:.3f}" in tip, text
    constant = summary["baseline_constant"]
    for label, value in (("global-mean", global_mean), ("song-mean", song_mean)):
        if value is None:
            key = label.replace("-", "_")
            assert key in constant and f"{label} baseline n/a" in text and CONSTANT_SHORT in text, text
            assert CONSTANT_NOTE in tip, tip
        else:
            assert np.isfinite(value) and f"{label} baseline {value:.3f}" in text, text
