"""Checks shared by the dashboard tests: the run's scores shown beside their baselines."""

from __future__ import annotations

import numpy as np


def scores_in(summary: dict) -> tuple:
    """(decoder, global mean, song mean) dynamic r over the run, read from the summary's own keys."""
    base = summary["baseline_dynamic_r_total"]
    return summary["dynamic_r_total"], base["global_mean"], base["song_mean"]


def assert_scores_shown(window, summary: dict) -> None:
    decoder, global_mean, song_mean = scores_in(summary)
    assert all(value is not None and np.isfinite(value) for value in (decoder, global_mean, song_mean))
    text = window.mel_panel.baseline_label.text()
    assert window.mel_panel.baseline_label.isVisible()
    assert f"decoder {decoder:.3f}" in text, text
    assert f"global-mean baseline {global_mean:.3f}" in text, text
    assert f"song-mean baseline {song_mean:.3f}" in text, text
