"""Trivial baselines every decoder is scored against.

* **global mean mel**: the mean mel-dB window of the training part, predicted for every test window.
  It knows nothing about the EEG, yet scores high on per-window cosine and Pearson.
* **song mean mel** (oracle identity): the mean mel-dB window of the test window's own song over the
  training part. It is told which song is playing, so it is an upper bound for any decoder that only
  identifies the song; it still cannot follow the music over time (dynamic r near 0).
* **shuffled EEG**: the same model fed the test EEG windows permuted across windows
  (:func:`shuffled_order`), each window getting EEG recorded during another target (music and second:
  not another listener's EEG of the same second), so each reconstruction is paired with the wrong
  target. What the model scores here it scores without information about *this* moment.

Means are per frame over windows, shape ``(n_mels, n_frames)``: the first and last frames of a 1-s
window are framed with zero padding (centre=True) and are systematically quieter.

The means fitted on a model's training part travel with the model (ONNX metadata key ``baselines``,
:func:`training_baselines`), so that the live decoder and the dashboard score the same baselines
from the same frames as the decoder, without the training data at hand.
"""

from __future__ import annotations

import base64

import numpy as np
from eegmusic.decoder.truth import BASELINE_ENCODING

_CHUNK = 2048
"""Windows per chunk when averaging a part's mel (bounds memory)."""


def global_mean_mel(train_mel: np.ndarray) -> np.ndarray:
    """Mean mel-dB window of the training part.

    Parameters
    ----------
    train_mel : ndarray, shape (n_windows, n_mels, n_frames)

    Returns
    -------
    ndarray, shape (n_mels, n_frames), float32
    """
    train_mel = np.asarray(train_mel)
    if train_mel.ndim != 3 or train_mel.shape[0] == 0:
        raise ValueError(
            f"need at least one training window of shape (n, n_mels, n_frames), got {train_mel.shape}"
        )
    return train_mel.mean(axis=0, dtype=np.float64).astype(np.float32)


def song_mean_mels(train_mel: np.ndarray, train_songs: np.ndarray) -> dict[int, np.ndarray]:
    """Mean mel-dB window of each song over the training part.

    Parameters
    ----------
    train_mel : ndarray, shape (n_windows, n_mels, n_frames)
    train_songs : ndarray, shape (n_windows,), int
        Song id of each window.

    Returns
    -------
    dict of int to ndarray, each shape (n_mels, n_frames), float32
    """
    train_songs = np.asarray(train_songs)
    if len(train_songs) != len(train_mel):
        raise ValueError(f"{len(train_mel)} windows but {len(train_songs)} song ids")
    return {int(song): global_mean_mel(train_mel[train_songs == song]) for song in np.unique(train_songs)}


def predict_global_mean(mean_mel: np.ndarray, n_windows: int) -> np.ndarray:
    """The global mean window repeated for ``n_windows`` test windows.

    Returns
    -------
    ndarray, shape (n_windows, n_mels, n_frames), float32
    """
    return np.repeat(np.asarray(mean_mel, dtype=np.float32)[None], n_windows, axis=0)


def predict_song_mean(song_means: dict[int, np.ndarray], test_songs: np.ndarray) -> np.ndarray | None:
    """Each test window's song mean (oracle identity).

    Parameters
    ----------
    song_means : dict of int to ndarray, each shape (n_mels, n_frames)
        From :func:`song_mean_mels`.
    test_songs : ndarray, shape (n_windows,)

    Returns
    -------
    ndarray, shape (n_windows, n_mels, n_frames), float32, or None
        None when a test song has no training windows (a song split): the oracle is undefined.
    """
    test_songs = np.asarray(test_songs)
    if any(int(song) not in song_means for song in np.unique(test_songs)):
        return None
    return np.stack([song_means[int(song)] for song in test_songs]).astype(np.float32, copy=False)


def shuffled_order(n_windows: int, *, seed: int = 0, targets: np.ndarray | None = None) -> np.ndarray | None:
    """A random permutation of windows in which no window keeps its own place, nor its own target.

    Window ``i`` of the shuffled EEG is window ``order[i]`` of the original: a random cycle through
    every window, so no reconstruction sees its own EEG (when ``n_windows > 1``).

    With ``targets``, no reconstruction sees EEG recorded during its own target either. Listeners of a
    song hear the same seconds, and a block split holds out the same seconds for all of them: a window
    given the EEG of another listener at the same second is still paired with the right target, and a
    control made of such pairs scores like the model. The windows are grouped by target, the groups
    taken in the random order of the cycle, and each window gets the EEG of the window as many places
    on as the largest group holds. Where no two windows share a target this is the plain cycle.

    Parameters
    ----------
    n_windows : int
    seed : int
    targets : ndarray, shape (n_windows,) or (n_windows, n_fields), optional
        What each window is scored against, e.g. its (song, start) rows: equal rows, same target.

    Returns
    -------
    ndarray, shape (n_windows,), int64, or None
        None when ``targets`` are given and one target holds more than half the windows: no
        permutation then pairs every window with EEG of another target.
    """
    perm = np.random.default_rng(seed).permutation(n_windows)
    shift, grouped = 1, perm
    if targets is not None and n_windows > 0:
        targets = np.asarray(targets)
        if len(targets) != n_windows:
            raise ValueError(f"{n_windows} windows but {len(targets)} targets")
        _, codes, counts = np.unique(targets.reshape(n_windows, -1), axis=0, return_inverse=True,
                                     return_counts=True)
        shift = int(counts.max())
        if 2 * shift > n_windows:
            return None
        # a group of at most n/2 windows, shifted by the largest group's size, lands wholly outside itself
        group_of = codes.reshape(-1)[perm]
        first_place = np.full(len(counts), n_windows, dtype=np.int64)
        np.minimum.at(first_place, group_of, np.arange(n_windows))
        grouped = perm[np.argsort(first_place[group_of], kind="stable")]
    order = np.empty(n_windows, dtype=np.int64)
    order[grouped] = np.roll(grouped, -shift)
    return order


def mean_mels(dataset, rows: np.ndarray,
              keys: np.ndarray | None = None) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Global and per-song mean mel-dB windows over ``rows`` of a dataset, in chunks (bounded memory).

    Parameters
    ----------
    dataset : WindowDataset
        Anything with ``index`` (field ``song``) and ``mel(rows)``.
    rows : ndarray of int, shape (n,)
        Rows to average (a model's training part).
    keys : ndarray of int, optional
        What to average by, one key per row of the dataset (not of ``rows``): ``dataset.music["music"]``
        for each piece of music (``evaluate``: every play of a track in a folder of sessions is a song
        of its own); None: the song.

    Returns
    -------
    global_mean : ndarray, shape (n_mels, n_frames), float32
    song_means : dict of int to ndarray, each shape (n_mels, n_frames), float32
        By key.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise ValueError("need at least one window to average")
    songs = (dataset.index["song"] if keys is None else np.asarray(keys))[rows]
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for lo in range(0, len(rows), _CHUNK):
        mel = dataset.mel(rows[lo : lo + _CHUNK]).astype(np.float64)
        chunk_songs = songs[lo : lo + _CHUNK]
        for song in np.unique(chunk_songs):
            mask = chunk_songs == song
            sums[int(song)] = sums.get(int(song), 0.0) + mel[mask].sum(axis=0)
            counts[int(song)] = counts.get(int(song), 0) + int(mask.sum())
    song_means = {song: (sums[song] / counts[song]).astype(np.float32) for song in sorted(sums)}
    total = sum(sums.values()) / sum(counts.values())
    return np.asarray(total, dtype=np.float32), song_means


def music_means(dataset, rows: np.ndarray, songs) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Global mean window over ``rows``, and each of ``songs`` (numbers of ``dataset``) with its music's.

    By music, not by song: in a folder of sessions each listener's play of a track is a song of its
    own, and a held-out listener's plays had no training windows of their own song although other
    listeners' plays of the same music trained the model (``evaluate`` printed the oracle as n/a).

    Returns
    -------
    global_mean : ndarray, shape (n_mels, n_frames), float32
    song_means : dict of int to ndarray
        Song → the mean window of its music over ``rows``; a song ``dataset`` lacks, or whose music
        ``rows`` lack, is absent.
    """
    piece = dataset.music["music"]
    global_mean, by_music = mean_mels(dataset, rows, keys=piece)
    means = {}
    for song in map(int, songs):
        first = np.flatnonzero(dataset.index["song"] == song)[:1]
        if len(first) and int(piece[first[0]]) in by_music:
            means[song] = by_music[int(piece[first[0]])]
    return global_mean, means


def trained_music_note(count: int, n_test: int, split: str) -> str:
    """The line ``train`` and ``evaluate`` print where :func:`targets_trained_on` counts test windows."""
    return (f"{count} of {n_test} test windows have a target that overlaps a training window's (the same "
            f"music within 1 s): split '{split}' does not hold out music, so these scores are not of unheard "
            f"music; --split block, subject-block or song hold it out")


def targets_trained_on(dataset, train_rows: np.ndarray, rows: np.ndarray) -> int:
    """How many of ``rows`` have a 1-s target that overlaps a training window's (same music, starts less
    than a window apart): windows whose music the model heard at that very time.

    ``random`` holds out windows and ``subject`` listeners, not music: a test window's second of music is
    another window's (another listener's) training target, the identical mel. ``block``,
    ``subject-block`` and ``song`` hold out music with a guard, and count 0.
    """
    from eegmusic.stream.spec import WINDOW_SAMPLES

    music = getattr(dataset, "music", None)
    if music is None or len(train_rows) == 0 or len(rows) == 0:
        return 0
    count = 0
    for piece in np.unique(music["music"][rows]):
        starts = np.sort(music["start"][train_rows][music["music"][train_rows] == piece])
        if len(starts) == 0:
            continue
        asked = music["start"][rows][music["music"][rows] == piece]
        after = np.searchsorted(starts, asked)   # the training starts on either side of each
        below, above = starts[np.clip(after - 1, 0, None)], starts[np.clip(after, None, len(starts) - 1)]
        nearest = np.minimum(np.abs(asked - below), np.abs(asked - above))
        count += int(np.count_nonzero(nearest < WINDOW_SAMPLES))
    return count


def baseline_mse(dataset, train_rows: np.ndarray, rows: np.ndarray) -> dict:
    """MSE (dB², over every value of every window, as training's test MSE) of the training part's
    global-mean and song-mean windows on ``rows``: what ``train`` prints beside the model's test MSE.

    Returns
    -------
    dict
        ``global_mean`` and ``song_mean`` (None where a song of ``rows`` has no training window of its
        music, or where there are no rows).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0 or len(train_rows) == 0:
        return {"global_mean": None, "song_mean": None}
    songs = dataset.index["song"]
    global_mean, means = music_means(dataset, train_rows, np.unique(songs[rows]))
    known = predict_song_mean(means, np.unique(songs[rows])) is not None
    squared = np.zeros(2)
    for lo in range(0, len(rows), _CHUNK):
        chunk = rows[lo : lo + _CHUNK]
        mel = dataset.mel(chunk).astype(np.float64)
        squared[0] += float(((mel - global_mean) ** 2).sum())
        if known:
            squared[1] += float(((mel - predict_song_mean(means, songs[chunk])) ** 2).sum())
    n = len(rows) * global_mean.size
    return {"global_mean": squared[0] / n, "song_mean": squared[1] / n if known else None}


def encode_mel(mean_mel: np.ndarray) -> str:
    """One mean mel-dB window as text for the model metadata (:data:`BASELINE_ENCODING`)."""
    return base64.b64encode(np.asarray(mean_mel, dtype="<f2").tobytes()).decode("ascii")


def training_baselines(dataset, train_rows: np.ndarray) -> dict:
    """The baseline statistics a model carries: mean mel windows of its **training** part.

    Parameters
    ----------
    dataset : WindowDataset
    train_rows : ndarray of int
        The training part's rows.

    Returns
    -------
    dict
        JSON-ready: ``encoding``, ``shape``, ``n_windows``, ``global_mean`` (text),
        ``song_mean`` (song id as text → text) and, for a dataset that can tell which music a song is
        (``music_identity``, as ``evaluate`` asks), ``song_music`` (song id as text → content digest
        of its stimulus); read back with :func:`decoder.truth.read_baselines` and
        :func:`decoder.truth.read_song_music`. Song numbers are a folder's own, so the live decoder
        scores a song mean only against the same music (another folder's song 21 may be other audio).
        Each song's mean is its music's over the training part: in a folder of sessions each listener's
        play of a track is a song of its own, and a play's own windows are a part of its music's.
    """
    if getattr(dataset, "music", None) is None:   # no music identity: by song
        global_mean, song_means = mean_mels(dataset, train_rows)
    else:
        trained = np.unique(dataset.index["song"][train_rows])
        global_mean, song_means = music_means(dataset, train_rows, trained)
    entry = {
        "encoding": BASELINE_ENCODING,
        "computed_on": "training part",
        "shape": list(global_mean.shape),
        "n_windows": int(len(train_rows)),
        "global_mean": encode_mel(global_mean),
        "song_mean": {str(song): encode_mel(mean) for song, mean in song_means.items()},
    }
    music_identity = getattr(dataset, "music_identity", None)
    if music_identity is not None:
        entry["song_music"] = {str(song): music_identity(song)[0] for song in song_means}
    return entry


def _apart_by_a_window(order: np.ndarray, targets: np.ndarray, *, seed: int) -> np.ndarray | None:
    """``order`` with every window handed EEG of other music, or of its music whose 1-s target does not
    overlap its own (None when no swap finds one).

    :func:`shuffled_order` keeps each window from its exact target only. At a hop below 1 s (or plays of
    one track that start off the second, in a folder of sessions) a window could get EEG of its music
    0.1 s from its own: the same listener's, almost its own EEG. Each such pair swaps its EEG with another
    window's, drawn at random, where both new pairs are apart. At a 1-s hop on a song's grid no two
    different targets overlap, and ``order`` comes back unchanged.
    """
    from eegmusic.stream.spec import WINDOW_SAMPLES

    piece, start = targets[:, 0], targets[:, 1]

    def apart(window, source):
        return (piece[window] != piece[source]
                or abs(int(start[window]) - int(start[source])) >= WINDOW_SAMPLES)

    order = order.copy()
    clashes = np.flatnonzero((piece == piece[order]) & (np.abs(start - start[order]) < WINDOW_SAMPLES))
    rng = np.random.default_rng([seed, 7331])
    for window in clashes:
        if apart(window, order[window]):   # a swap for an earlier clash took it
            continue
        for other in rng.permutation(len(order)):
            if apart(window, order[other]) and apart(other, order[window]):
                order[window], order[other] = order[other], order[window]
                break
        else:
            return None
    return order


def shuffled_test_order(index: np.ndarray, rows: np.ndarray, *, seed: int,
                        music: np.ndarray | None = None) -> tuple[np.ndarray | None, str | None]:
    """The shuffled-EEG control's permutation of the windows ``rows`` of a window ``index``
    (:func:`shuffled_order`, targets their music and start on it: ``music``, the dataset's
    :attr:`~offline_training.dataset.WindowDataset.music`; without it their song and start), or None
    and the one-line reason it cannot be computed (``evaluate`` prints n/a with it; the quality bench
    refuses to score without it).

    By music, not by song number: in a folder of sessions each listener's play of a track is a song of
    its own, so keyed by song a window could be handed another listener's EEG of the same second of the
    same music, the same target (40 of 1,800 windows over 20 splits; the control then read 0.054 for a
    model on three listeners' sessions, -0.017 by music). Nor EEG of its music less than 1 s from its own
    second (:func:`_apart_by_a_window`)."""
    from eegmusic.stream.spec import MODEL_SFREQ

    entries = index[rows] if music is None else music[rows]
    targets = np.stack([entries["song" if music is None else "music"], entries["start"]], axis=1)
    order = shuffled_order(len(rows), seed=seed, targets=targets)
    if order is not None:
        order = _apart_by_a_window(order, targets, seed=seed)
        if order is None:
            return None, ("model on shuffled EEG not available: no shuffle of the test windows gives each "
                          "one EEG of other music or of its music at least 1 s from its own; score a test "
                          "part with more held-out seconds")
        return order, None
    keys, counts = np.unique(targets, axis=0, return_counts=True)
    song, start = keys[int(np.argmax(counts))]
    return None, (
        f"model on shuffled EEG not available: {int(counts.max())} of the {len(rows)} test windows share "
        f"one target (song {int(song)} at {start / MODEL_SFREQ:g} s), more than half, so no "
        "shuffle gives each window EEG of another second; score a test part with more held-out seconds"
    )
