"""The decoder's dynamic r beside its baselines, scored on the same frames (the demo and the dashboard).

A decode with a truth folder scores every frame it emits against the true stimulus mel, and scores two
baselines that know nothing of the EEG on exactly those frames: the global-mean and the song-mean mel
window the model carries from its training part (``decoder/truth.py``). Its summary holds the three
as ``dynamic_r_total`` and ``baseline_dynamic_r_total``; this module reads and words them, so a score
is never printed or drawn without its baselines.
"""

from __future__ import annotations

from collections.abc import Mapping


def run_scores(summary: Mapping | None) -> tuple[float | None, float | None, float | None]:
    """Dynamic r over the run's scored frames: (decoder, global-mean baseline, song-mean baseline).

    Each is None when unknown: no truth, no frame scored yet, a model that carries no baselines, or (the
    song mean) a scored song outside the model's training part.
    """
    summary = summary or {}
    base = summary.get("baseline_dynamic_r_total") or {}
    return summary.get("dynamic_r_total"), base.get("global_mean"), base.get("song_mean")


def baseline_line(summary: Mapping | None) -> str:
    """The decoder's live dynamic r beside the baselines scored on the same frames (one line)."""
    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    decoder, global_mean, song = run_scores(summary)
    constant = list((summary or {}).get("baseline_constant") or [])
    # no song mean beside a global mean: the song was never trained on (with neither, nothing is scored yet)
    global_known = global_mean is not None or "global_mean" in constant
    unseen_song = song is None and global_known and "song_mean" not in constant
    notes = ["a scored song is not in the model's training data"] if unseen_song else []
    if constant:
        from eegmusic.decoder.metrics import CONSTANT_NOTE  # here: cli_demo imports this module, numpy-free

        which = "both baselines" if len(constant) == 2 else constant[0].replace("_", "-") + " baseline"
        notes.append(f"{which}: {CONSTANT_NOTE}")
    said = f" ({'; '.join(notes)})" if notes else ""
    return (f"live dynamic r on the same frames: decoder {fmt(decoder)}, "
            f"global-mean baseline {fmt(global_mean)}, "
            f"song-mean baseline {fmt(song)}{said}")
