"""The decoder's dynamic r beside its baselines, scored on the same frames (decode, the demo and the
dashboard, in the same words).

A decode with a truth folder scores every frame it emits against the true stimulus mel, and scores two
baselines that know nothing of the EEG on exactly those frames: the global-mean and the song-mean mel
window the model carries from its training part (``decoder/truth.py``). Its summary holds the three
as ``dynamic_r_total`` and ``baseline_dynamic_r_total``; this module reads and words them, so a score
is never printed or drawn without its baselines.

Beside them stands a control that needs no model metadata and is defined at every hop: the decoder's
own frames scored against the stimulus half their song away (``shifted_stimulus_dynamic_r_total``), the
live counterpart of the offline shuffled-EEG control. The baselines are n/a at the default one-frame hop
(one spectrum at most frames) and the song mean for a song the model never heard, so without it the
demo's score stood beside nothing measured.
"""

from __future__ import annotations

from collections.abc import Mapping

NO_MEANS_NOTE = "the model carries no mean windows of its training part: one trained by `eegmusic train` does"
"""Why both baselines are n/a for a model without ``baselines`` metadata (made elsewhere, or exported by
hand)."""


SHIFTED_KEY = "shifted_stimulus_dynamic_r_total"
"""The summary's key for the shifted-stimulus control (:meth:`decoder.truth.FrameScores.shifted_r`)."""

RECENT_SHIFTED_KEY = "shifted_stimulus_dynamic_r"
"""The summary's key for the control over the live figure's recent frames (``dynamic_r``'s:
:meth:`decoder.truth.LiveTruth.recent_scores`)."""

SHIFTED_WORDS = "shifted-stimulus control (the decoder vs the stimulus half its song away)"
"""How the control is named wherever it is printed, and in the dashboard's tooltip."""

UNSEEN_SONG_NOTE = "a scored song is not in the model's training data"
"""Why the song-mean baseline is n/a beside a global mean."""

SHORT = {SHIFTED_WORDS: "shifted-stimulus control", UNSEEN_SONG_NOTE: "song not trained on",
         NO_MEANS_NOTE: "the model carries no mean windows"}
"""The dashboard's short words for the long ones (its label; the tooltip holds the long line): at 1500 px the
long line took four lines of the mel column."""

TRAINED_SHORT = "trained music: not an unheard-music score"
"""The dashboard's short words for :func:`trained_music_words`."""

CONSTANT_SHORT = "one-frame hop, no dynamics"
"""The dashboard's short words for :data:`decoder.metrics.CONSTANT_NOTE` (a module this one does not import:
``cli_demo`` imports this one, numpy-free)."""


def run_scores(summary: Mapping | None) -> tuple[float | None, float | None, float | None]:
    """Dynamic r over the run's scored frames: (decoder, global-mean baseline, song-mean baseline).

    Each is None when unknown: no truth, no frame scored yet, a model that carries no baselines, or (the
    song mean) a scored song outside the model's training part.
    """
    summary = summary or {}
    base = summary.get("baseline_dynamic_r_total") or {}
    return summary.get("dynamic_r_total"), base.get("global_mean"), base.get("song_mean")


def baseline_words(summary: Mapping | None, *, short: bool = False) -> str:
    """The shifted-stimulus control and the two baselines of the run's scored frames, each baseline with why
    it is missing where it is (one phrase): ``shifted-stimulus control (…) 0.004, global-mean baseline
    0.012, song-mean baseline n/a (a scored song is not in …)``; ``short``: in :data:`SHORT`'s words."""
    summary = summary or {}
    words = (lambda long: SHORT.get(long, long)) if short else (lambda long: long)
    decoder, global_mean, song = run_scores(summary)
    constant = list(summary.get("baseline_constant") or [])
    # no song mean beside a global mean: the song was never trained on (with neither, nothing is scored yet)
    global_known = global_mean is not None or "global_mean" in constant
    unseen_song = song is None and global_known and "song_mean" not in constant
    notes = [words(UNSEEN_SONG_NOTE)] if unseen_song else []
    if summary.get("baseline_dynamic_r_total") == {} and decoder is not None:   # scored, no means to score
        notes.append(words(NO_MEANS_NOTE))
    if constant:
        from eegmusic.decoder.metrics import CONSTANT_NOTE  # here: cli_demo imports this module, numpy-free

        which = "both baselines" if len(constant) == 2 else constant[0].replace("_", "-") + " baseline"
        notes.append(f"{which}: {CONSTANT_SHORT if short else CONSTANT_NOTE}")
    said = f" ({'; '.join(notes)})" if notes else ""
    control = ""   # first: the notes that follow are the baselines'
    if SHIFTED_KEY in summary:   # every decode's summary since stop 59 (a hand-made one may lack it)
        control = f"{words(SHIFTED_WORDS)} {format_r(summary[SHIFTED_KEY])}, "
    return f"{control}global-mean baseline {format_r(global_mean)}, song-mean baseline {format_r(song)}{said}"


def baseline_line(summary: Mapping | None, *, short: bool = False) -> str:
    """The decoder's dynamic r over the whole run beside the baselines scored on the same frames (one line,
    worded as ``decode`` words its summary; ``short``: the dashboard's label, the long line its tooltip)."""
    note = trained_music_words(summary, short=short)   # the label in short words, the tooltip in full
    return (f"dynamic r, whole run: decoder {format_r(run_scores(summary)[0])}, "
            f"{baseline_words(summary, short=short)}{f' — {note}' if note else ''}")


def trained_music_words(summary: Mapping | None, *, short: bool = False) -> str:
    """Why a run's live scores are not of unheard music, where its summary's truth names scored songs of
    the model's training music (one phrase; empty where it names none): the live decode scores every frame
    of a song, and a ``block`` or ``subject-block`` split trained on most of its seconds, the other splits on
    all of them (``train`` and ``evaluate`` say as much of a test part that holds trained music). The demo
    decodes a song its model held out, so it never says this. ``short``: :data:`TRAINED_SHORT`."""
    truth = (summary or {}).get("truth") or {}
    songs, split = truth.get("trained_music"), truth.get("training_split")
    if not songs:
        return ""
    if short:
        return TRAINED_SHORT
    songs = [str(song) for song in songs]
    one = len(songs) == 1
    named = (f"song {songs[0]}'s music" if one
             else f"the music of songs {', '.join(songs[:-1])} and {songs[-1]}")
    whose = "the song's" if one else "these songs'"
    # block and subject-block hold out chunks of each song's time (shared by its listeners), the rest none
    most = f"most of {whose} seconds"
    how = {"block": most, "subject-block": most, None: f"some or all of {whose} seconds"}.get(
        split, f"all of {whose} seconds")
    by = f"its split '{split}'" if split else "it"
    return (f"{named} is among the model's training targets ({by} trained on {how}), so these scores are "
            "not of unheard music; for such a score, decode a song the model held out")


def recent_words(control: float | None, *, short: bool = False) -> str:
    """The live figure's control (the summary's :data:`RECENT_SHIFTED_KEY`, a snapshot's
    ``shifted_dynamic_r``), to follow its r: `` (shifted-stimulus control 0.012)``; empty where there is
    none (no truth, a song too short for one, or a summary from before it was recorded)."""
    if control is None:
        return ""
    return f" ({SHORT[SHIFTED_WORDS] if short else 'shifted-stimulus control'} {format_r(control)})"


def format_r(value: float | None) -> str:
    """A dynamic r as every summary line and the dashboard write it: three decimals, or n/a."""
    return "n/a" if value is None else f"{value:.3f}"
