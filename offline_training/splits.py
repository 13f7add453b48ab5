"""Train/validation/test splits of a window index, from the published protocol to leakage-free ones.

Kinds:

- ``random``: windows shuffled and cut 80/10/10 (the EEG2Mel protocol; neighbouring seconds of the
  same recording land in train and test, so scores are optimistic).
- ``block``: each song's time axis is cut into contiguous chunks that go whole to train, validation
  or test, and every listener of the song shares that assignment: the seconds of music held out for
  one listener are held out for all of them, so no test target (the identical mel of the same second
  of the same song) is a training target through another listener. Windows of a lower part that come
  within ``guard_s`` of a higher part (test > validation > train) are dropped, so no test window
  overlaps or touches a training window of any listener.
- ``subject``: whole participants are held out (validation and test subjects never trained on). Its
  test listeners heard the training music at the same times as the training listeners, so every test
  target (the mel of a second of a song) is also a training target through another listener, and a
  model can score by recognising the moment from the shared evoked response: its test score is
  optimistic. Use ``subject-block`` for an unseen-listener score without that leak. Measured at
  bench_quality's FULL 10 % share (one run): the skip convnet scored dynamic r 0.650 on ``subject``'s
  own test part and 0.284 on the test listener's later, unheard excerpt (ridge 0.258 and 0.268).
- ``subject-block``: unseen listeners on unseen seconds of music. Listeners are assigned to parts as in
  ``subject`` and each song's time axis is cut into chunks shared by all listeners as in ``block``
  (same guard); a window is kept only where its listener's part equals its chunk's part (training
  listeners on training chunks, validation listeners on validation chunks, test listeners on test
  chunks). No test or validation (song, time) is a training target for any listener. It uses fewer
  windows than either: each part keeps its listeners' share times its chunks' share (6 listeners cut
  4/1/1 at the default fractions keep about 4/6 × 0.8 + 2 × 1/6 × 0.1 = 57 % of the windows, 1.7 % in
  test). It needs at least 3 listeners.
- ``song``: whole songs are held out.
- ``all``: every window is test (score a model trained elsewhere on another recording).

Every split also numbers the contiguous blocks of its test part (:attr:`Split.test_block`), which the
evaluation uses for dynamic correlations over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from eegmusic.stream.errors import ConfigError
from eegmusic.stream.spec import MODEL_SFREQ

SPLIT_KINDS = ("random", "block", "subject", "song", "subject-block", "all")
MUSIC_SPLITS = ("block", "subject-block", "song")
"""The kinds that hold out music (with ``make_split``'s ``music``): models trained before they did
record no ``split_by`` in their metadata, and ``evaluate`` says so where plays share music."""
_PART_NAMES = ("train", "validation", "test")


@dataclass
class Split:
    """Row numbers of each part of a split.

    Attributes
    ----------
    train, val, test : ndarray of int
        Rows of the window index in each part (sorted).
    test_block : ndarray of int, shape like ``test``
        Block id of each test row: test rows of one (song, subject) recording with consecutive
        starts (one hop apart) share a block.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_block: np.ndarray


def make_split(
    index: np.ndarray,
    kind: str,
    *,
    seed: int = 0,
    fractions=(0.8, 0.1, 0.1),
    guard_s: float = 1.0,
    window_s: float = 1.0,
    hop_s: float = 1.0,
    command: str = "train",
    music: np.ndarray | None = None,
) -> Split:
    """Split a window index into train, validation and test rows.

    Parameters
    ----------
    index : ndarray, structured with fields song, subject, start
        One row per window (``WindowDataset.index``); start in samples at 125 Hz.
    kind : {"random", "block", "subject", "song", "subject-block", "all"}
    seed : int
        Seed of the random assignment (the same seed gives the same split).
    fractions : tuple of 3 floats
        Train, validation and test fractions (of windows, chunks, subjects or songs; ``subject-block``
        applies them to both its listeners and its chunks).
    guard_s : float
        ``block`` and ``subject-block`` only: minimum gap in seconds between a test (or validation)
        window and any window of a lower part.
    window_s, hop_s : float
        Window length and hop in seconds.
    command : {"train", "evaluate"}
        The eegmusic command asking, whose options the advice of an empty part names: ``train``
        needs a training part and has ``--hop`` (another split is offered only where it would train);
        ``evaluate`` scores a model made elsewhere, and ``--split all`` scores every window.
    music : ndarray, structured (music, start), shape like ``index``, optional
        Which music each window hears and its start on that music's time axis
        (:attr:`WindowDataset.music`): ``block``, ``subject-block`` and ``song`` hold out music by
        it, not by ``index``'s song and start. A dataset that makes one song per play (a folder of XDF
        sessions: each listener's play of a track is a song of its own) otherwise held out a second
        of music for one listener and trained on it through another. Default: the song and start.

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        Unknown kind, bad fractions, or a part left empty (the message names it).
    """
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"unknown split '{kind}'; use one of {', '.join(SPLIT_KINDS)}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ConfigError(f"split fractions {fractions} must be 3 non-negative numbers (train, val, test)")
    fractions = tuple(f / sum(fractions) for f in fractions)
    rng = np.random.default_rng(seed)
    n = len(index)
    placed = _placed(index, music)   # what is held out: music and its seconds
    if kind == "all":
        if n == 0:
            raise ConfigError("split 'all' has an empty test part: the data has no windows")
        empty = np.empty(0, dtype=np.int64)
        test = np.arange(n, dtype=np.int64)
        return Split(empty, empty.copy(), test, contiguous_blocks(index, test, hop_s=hop_s))
    if kind == "random":
        labels = _assign(rng.permutation(n), n, fractions)
    elif kind in ("subject", "song"):
        labels = _group_labels(placed[kind], fractions, rng)
    elif kind == "subject-block":
        listener_part = _group_labels(index["subject"], fractions, rng)
        chunk_part = _block_labels(placed, fractions, rng, guard_s=guard_s, window_s=window_s)
        # a guard-dropped window (chunk part -1) never equals a listener's part, so it stays dropped
        labels = np.where(listener_part == chunk_part, chunk_part, -1)
    else:
        labels = _block_labels(placed, fractions, rng, guard_s=guard_s, window_s=window_s)
    parts = [np.flatnonzero(labels == part).astype(np.int64) for part in range(3)]
    for name, rows in zip(_PART_NAMES, parts, strict=True):
        if len(rows) == 0:
            options = {"seed": seed, "fractions": fractions, "guard_s": guard_s, "window_s": window_s,
                       "hop_s": hop_s}
            remedy = _remedy(placed, kind, command, options)
            raise ConfigError(f"split '{kind}' leaves the {name} part empty "
                              f"({_describe(placed, kind, window_s)}); {remedy}")
    return Split(parts[0], parts[1], parts[2], contiguous_blocks(index, parts[2], hop_s=hop_s))


def _placed(index: np.ndarray, music: np.ndarray | None) -> np.ndarray:
    """``index`` with each window's song and start replaced by its music and its start on that music."""
    if music is None:
        return index
    if len(music) != len(index):
        raise ValueError(f"music has {len(music)} rows for an index of {len(index)}")
    placed = index.copy()
    placed["song"], placed["start"] = music["music"], music["start"]
    return placed


def _describe(index: np.ndarray, kind: str, window_s: float) -> str:
    if kind == "subject":
        n = len(np.unique(index['subject']))
        return f"{n} subject{'s' * (n != 1)}; needs at least 3"
    if kind == "song":
        n = len(np.unique(index['song']))
        return f"{n} song{'s' * (n != 1)}; needs at least 3"
    if kind == "subject-block":
        n = len(np.unique(index['subject']))
        return (f"{n} subject{'s' * (n != 1)}, {len(index)} windows; needs at least 3 subjects and songs "
                "long enough for every part's time chunks beyond the guard")
    return f"the data gives {len(index)} windows of {window_s:g} s"


MIN_TRAIN_WINDOWS = 2
"""Training windows ``train`` needs at least (per process): a split is offered as a fix only with these."""


def _remedy(index: np.ndarray, kind: str, command: str, options: dict) -> str:
    """What fills an empty part of split ``kind``, in the options of ``command`` (no CLI option sets the
    fractions: not offered). Another split is named only where it would train on these very windows, so
    that following the advice never leads to the same refusal, or back here."""
    if command == "evaluate":  # a model trained elsewhere: score every window instead of a test part
        return "score every window with --split all"
    more = {
        "subject": "use data with at least 3 listeners",
        "song": "use data with at least 3 songs",
        "subject-block": "use at least 3 listeners and longer songs",
        "block": "use longer recordings (each song is cut into 10 time chunks)",
        "random": "use more data, or a smaller --hop (more windows)",
    }[kind]
    # windows further apart than they are long: few of them (the splits of windows, not of groups)
    if kind in ("random", "block", "subject-block") and options["hop_s"] > options["window_s"]:
        more = f"use a --hop of {options['window_s']:g} s or less (now {options['hop_s']:g} s), or {more[4:]}"
    other = {"random": None, "block": "random"}.get(kind, "block")
    if other is not None and trainable_split(index, other, **options) is not None:
        return f"{more}, or --split {other}"
    return more


def trainable_split(index: np.ndarray, kind: str, **options) -> Split | None:
    """Split ``kind`` of ``index`` (:func:`make_split` options), or None unless it fills every part and
    leaves ``train`` enough training windows: whether advice naming that split would work."""
    try:
        split = make_split(index, kind, **options)
    except ConfigError:
        return None
    return split if len(split.train) >= MIN_TRAIN_WINDOWS else None


def _assign(order: np.ndarray, n: int, fractions) -> np.ndarray:
    """Label items ``order[:n_train]`` 0, the next ``n_val`` 1, the rest 2 (at least 1 each if n ≥ 3)."""
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    if n >= 3:
        n_val = max(n_val, 1) if fractions[1] > 0 else 0
        n_test = max(n_test, 1) if fractions[2] > 0 else 0
    n_train = max(n - n_val - n_test, 0)
    labels = np.empty(n, dtype=np.int64)
    labels[order[:n_train]] = 0
    labels[order[n_train : n_train + n_val]] = 1
    labels[order[n_train + n_val :]] = 2
    return labels


def _group_labels(groups: np.ndarray, fractions, rng: np.random.Generator) -> np.ndarray:
    """Assign whole groups (subjects or songs) to parts."""
    unique = np.unique(groups)
    group_labels = _assign(rng.permutation(len(unique)), len(unique), fractions)
    lookup = dict(zip(unique.tolist(), group_labels.tolist(), strict=True))
    return np.array([lookup[g] for g in groups.tolist()], dtype=np.int64)


def clear_of(placed: np.ndarray, trained: np.ndarray, *, guard_s: float = 1.0,
             window_s: float = 1.0) -> np.ndarray:
    """Which windows ``placed`` keep :func:`make_split`'s guard from every window of ``trained``.

    Parameters
    ----------
    placed, trained : ndarray, structured (music, start)
        Windows by their music and start on it (:attr:`~offline_training.dataset.WindowDataset.music`).
    guard_s, window_s : float
        As :func:`make_split`'s: a window is clear when at least ``guard_s`` lies between it and every
        ``window_s``-long window of ``trained`` on the same music, whichever listener heard either.

    Returns
    -------
    ndarray of bool, shape like ``placed``
    """
    clear = np.ones(len(placed), dtype=bool)
    reach = (window_s + guard_s) * MODEL_SFREQ   # starts closer than this leave less than the guard
    for music in np.unique(placed["music"]):
        rows = np.flatnonzero(placed["music"] == music)
        starts = np.unique(trained["start"][trained["music"] == music]).astype(np.float64)
        if len(starts) == 0:
            continue
        at = placed["start"][rows].astype(np.float64)
        after = np.searchsorted(starts, at)
        nearest = np.minimum(np.abs(at - starts[np.clip(after, 0, len(starts) - 1)]),
                             np.abs(at - starts[np.clip(after - 1, 0, len(starts) - 1)]))
        clear[rows] = nearest >= reach - 1e-9
    return clear


def _block_labels(
    index: np.ndarray, fractions, rng: np.random.Generator, *, guard_s: float, window_s: float
) -> np.ndarray:
    """Contiguous chunks of each song's time axis, shared by all its listeners; -1 marks dropped windows.

    The chunks are cut on the song's distinct window starts (the union over its listeners), so a
    listener whose recording is shorter simply has fewer windows in the last chunks.
    """
    labels = np.full(len(index), -1, dtype=np.int64)
    window = window_s * MODEL_SFREQ
    guard = guard_s * MODEL_SFREQ
    smallest = min(f for f in fractions[1:] if f > 0) if max(fractions[1:]) > 0 else 1.0
    n_chunks = max(3, int(round(1.0 / smallest)))
    for song in np.unique(index["song"]):
        rows = np.flatnonzero(index["song"] == song)
        starts, start_of_row = np.unique(index["start"][rows], return_inverse=True)
        k = min(n_chunks, len(starts))
        chunk_of_start = np.minimum((np.arange(len(starts)) * k) // len(starts), k - 1)
        start_labels = _assign(rng.permutation(k), k, fractions)[chunk_of_start]
        # drop starts of a lower part that come within the guard of a higher part's window
        kept = start_labels.copy()
        starts_f = starts.astype(np.float64)
        for higher in (2, 1):
            high_starts = starts_f[start_labels == higher]
            if len(high_starts) == 0:
                continue
            lower = np.flatnonzero(start_labels < higher)
            gaps = np.abs(starts_f[lower][:, None] - high_starts[None, :]) - window
            kept[lower[(gaps < guard).any(axis=1)]] = -1
        labels[rows] = kept[start_of_row]
    return labels


def contiguous_blocks(index: np.ndarray, rows: np.ndarray, *, hop_s: float = 1.0) -> np.ndarray:
    """Number the contiguous blocks of the given rows.

    Rows of the same (song, subject) whose starts follow one another at one hop share a block.

    Parameters
    ----------
    index : ndarray, structured (song, subject, start)
    rows : ndarray of int, shape (n,)
    hop_s : float
        Hop between windows in seconds.

    Returns
    -------
    block : ndarray of int, shape (n,)
        Block id per row (0, 1, ...), in order of song, subject, start.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    hop = int(round(hop_s * MODEL_SFREQ))
    entries = index[rows]
    order = np.lexsort((entries["start"], entries["subject"], entries["song"]))
    sorted_entries = entries[order]
    new_block = np.ones(len(rows), dtype=bool)
    new_block[1:] = (
        (sorted_entries["song"][1:] != sorted_entries["song"][:-1])
        | (sorted_entries["subject"][1:] != sorted_entries["subject"][:-1])
        | (sorted_entries["start"][1:] - sorted_entries["start"][:-1] != hop)
    )
    block_sorted = np.cumsum(new_block) - 1
    block = np.empty(len(rows), dtype=np.int64)
    block[order] = block_sorted
    return block
