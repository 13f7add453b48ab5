"""The manifest of a simulated dataset: ``simulation.json``, written by ``eegmusic simulate``.

It marks a folder as simulated (so a rerun may replace it, and only it), says whether the run finished,
and records what the data was simulated from: the ``--music`` files, the seed (the listeners), the cap
and the excerpt's start. Readers use it for the songs' names (:func:`simulated_music`), ``info``'s
unfinished-run problem (:func:`unfinished_simulation`) and ``train --val-data``'s check that a later
excerpt belongs to the training data (:func:`excerpt_mismatch`). The file is the user's to edit: a
value it cannot read decides nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

from eegmusic.replay.nmedt_songs import SongInfo

MANIFEST = "simulation.json"
"""File that marks a folder as written by ``eegmusic simulate`` (parameters, and whether it finished)."""

GENERATOR = "eegmusic simulate"
"""The manifest's ``generator``: only a folder that says so is ever cleared, or read as simulated."""


def simulation_manifest(folder) -> dict | None:
    """The ``simulation.json`` that ``eegmusic simulate`` wrote in ``folder``; None if absent or not ours."""
    from eegmusic.stream.errors import read_json

    path = Path(folder) / MANIFEST
    if not path.is_file():  # absent, or a FIFO whose read waited for a writer for ever
        return None
    try:
        manifest = read_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("generator") == GENERATOR else None


def unfinished_simulation(folder) -> str | None:
    """The problem line ``eegmusic info`` reports for a simulation killed midway, or None.

    ``simulate`` marks its manifest complete after the last file; SIGKILL leaves it unmarked, and
    nothing could remove what was written. Either layout (NMED-T files or XDF sessions) can be left so.
    """
    manifest = simulation_manifest(folder)
    if manifest is None or manifest.get("complete", True) is not False:
        return None
    return (f"{Path(folder) / MANIFEST}: the simulation that wrote this folder did not finish; run eegmusic "
            f"simulate --out {folder} --overwrite again")


def simulated_music(folder) -> dict[int, SongInfo]:
    """The songs of a dataset that ``eegmusic simulate --music`` made from the user's audio files.

    Such a dataset fills NMED-T's slots (21, 22, …) with other music: its songs are named after the
    files they were simulated from (``song 21 'Lava Lake'``, not NMED-T's 'First Fires'), tempo unknown.
    A folder whose ``simulation.json`` is missing, unreadable, from another generator or without
    ``--music`` files gives ``{}`` (NMED-T's own table applies), as does a manifest whose song and file
    lists disagree: the file is the user's to edit, and a title is not worth refusing a dataset for.

    Parameters
    ----------
    folder : str or Path
        A dataset folder.

    Returns
    -------
    songs : dict of int to SongInfo
    """
    manifest = simulation_manifest(folder)
    files = {} if manifest is None else _song_files(manifest)
    return {song: SongInfo(song, Path(file).stem, float("nan")) for song, file in files.items() if file}


def excerpt_mismatch(data, later) -> str | None:
    """Why ``later`` is not a later excerpt of the songs and listeners of ``data``, or None.

    ``train --val-data`` validates on such an excerpt. Where both were written by ``eegmusic simulate``
    (their manifests say so; a recording, or the folder of an XDF session, is judged only then), the songs
    they share must be the same music, the listeners come from the same seed and cap, and the excerpts
    must not overlap (validation would hear music the model trained on). A folder simulated from other
    music was taken silently and chose the epochs and the target lag on music unrelated to the training
    songs. Music is compared by file name; a generated song is its own stimulus file, ``songNN.wav``, so
    ``--music DATA/stimuli/song21.wav`` is song 21 of a generated ``DATA``.

    Parameters
    ----------
    data, later : str or Path
        The training data and the validation excerpt (folders, or session files inside one).

    Returns
    -------
    str or None
        What differs, worded to follow "--val-data LATER ".
    """
    manifests = _manifests(data, later)
    if None in manifests:
        return None
    music = [_music_by_song(manifest) for manifest in manifests]
    for song in sorted(set(music[0]) & set(music[1])):
        if music[0][song] != music[1][song]:
            return (f"was simulated from other music than --data (song {song}: {music[1][song]} against "
                    f"{music[0][song]})")
    # a simulation without a cap is the NMED-T net (no "montage" in its manifest)
    for key, what, absent in (("seed", "seed", "no seed recorded"), ("montage", "cap", "the NMED-T net")):
        if manifests[0].get(key) != manifests[1].get(key):
            said = [absent if manifest.get(key) is None else f"{what} {manifest.get(key)}"
                    for manifest in manifests]
            return f"holds other listeners than --data (simulated with {said[1]}, --data with {said[0]})"
    start = _music_starts(manifests)
    if start is None:
        return None
    if start[0] == start[1]:
        return f"is the same excerpt as --data (music from {start[0]:g} s in both)"
    seconds = [_excerpt_seconds(manifest) for manifest in manifests]
    if all(type(value) in (int, float) and value > 0 for value in seconds):
        end = [first + length for first, length in zip(start, seconds, strict=True)]
        if start[1] < end[0] and start[0] < end[1]:  # validation would hear music the model trained on
            return (f"overlaps --data's excerpt (music {_span(start[1], end[1])} against "
                    f"{_span(start[0], end[0])})")
    return None


def excerpt_name(data, other) -> str:
    """How a summary names ``other``, the validation excerpt of ``data``: ``"later excerpt"`` or
    ``"earlier excerpt"`` where both were simulated with a known ``--music-start``, else ``"excerpt"``.
    (:func:`excerpt_mismatch` refuses the same excerpt and overlapping ones, but not an earlier one:
    music before the training excerpt is unseen too, and the summary called it "later".)"""
    manifests = _manifests(data, other)
    start = None if None in manifests else _music_starts(manifests)
    if start is None or start[0] == start[1]:
        return "excerpt"
    return "later excerpt" if start[1] > start[0] else "earlier excerpt"


def _manifests(*paths) -> list[dict | None]:
    """The simulation manifest of each folder (or of the folder of each session file), None where none."""
    return [simulation_manifest(path if Path(path).is_dir() else Path(path).parent) for path in paths]


def _music_starts(manifests: list[dict]) -> list[float] | None:
    """Where each simulation's music starts, in seconds (0 for generated songs), or None where a manifest
    does not say it as a number."""
    start = [manifest.get("music_start_s", "unknown") for manifest in manifests]
    start = [0.0 if value is None else value for value in start]  # generated songs start at 0
    return start if all(type(value) in (int, float) for value in start) else None


def _excerpt_seconds(manifest: dict):
    """The excerpt's length in seconds as the manifest says it; ``inf`` for a ``--music`` simulation
    without ``--duration``, which runs to the end of its files (its manifest says ``seconds: null``)."""
    if manifest.get("seconds", 0) is None and isinstance(manifest.get("audio_files"), list):
        return math.inf
    return manifest.get("seconds")


def _span(start: float, end: float) -> str:
    """``"90-120 s"``, or ``"0 s to the files' end"`` for an excerpt that runs to the end of its files."""
    return f"{start:g} s to the files' end" if math.isinf(end) else f"{start:g}-{end:g} s"


def _music_by_song(manifest: dict) -> dict[int, str]:
    """Song id → the name of the music it was simulated from (``songNN.wav`` for a generated song)."""
    return {song: Path(file).name if file else f"song{song}.wav"
            for song, file in _song_files(manifest).items()}


def _song_files(manifest: dict) -> dict[int, str | None]:
    """Song id → the ``--music`` file it was simulated from, None for a generated song.

    ``{}`` where the manifest's lists cannot be read: song ids that are not integers, or a file list
    that does not name one file per song (anything but a list means generated songs).
    """
    songs, files = manifest.get("songs"), manifest.get("audio_files")
    if not isinstance(songs, list) or not all(type(song) is int for song in songs):
        return {}
    if not isinstance(files, list):
        return dict.fromkeys(songs)
    if len(files) != len(songs) or not all(isinstance(file, str) and file for file in files):
        return {}
    return dict(zip(songs, files, strict=True))
