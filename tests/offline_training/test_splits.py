"""Splits: partitions, no leakage across the block guard, held-out groups, reproducibility, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eegmusic.offline_training.dataset import INDEX_DTYPE
from eegmusic.offline_training.splits import SPLIT_KINDS, contiguous_blocks, make_split
from eegmusic.stream.errors import ConfigError


def make_index(n_songs=3, n_subjects=4, n_windows=60, hop=125):
    rows = [
        (21 + song, subject, k * hop)
        for song in range(n_songs)
        for subject in range(n_subjects)
        for k in range(n_windows)
    ]
    return np.array(rows, dtype=INDEX_DTYPE)


@pytest.mark.parametrize("kind", [k for k in SPLIT_KINDS if k != "all"])
def test_parts_are_disjoint_and_non_empty(kind):
    index = make_index()
    split = make_split(index, kind, seed=1)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert all(parts)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    if kind not in ("block", "subject-block"):  # these drop guard (and mismatched) windows; others use all
        assert len(parts[0] | parts[1] | parts[2]) == len(index)
    assert len(split.test_block) == len(split.test)


@pytest.mark.parametrize("hop", [125, 62, 13])
def test_block_split_has_no_window_near_a_test_window(hop):
    index = make_index(n_windows=int(60 * 125 / hop), hop=hop)
    split = make_split(index, "block", seed=3, guard_s=1.0, window_s=1.0, hop_s=hop / 125)
    test = index[split.test]
    for part in (split.train, split.val):
        other = index[part]
        same = (test["song"][:, None] == other["song"][None, :]) & (
            test["subject"][:, None] == other["subject"][None, :]
        )
        distance = np.abs(test["start"][:, None] - other["start"][None, :])
        # windows are 125 samples long and must be at least 125 samples (the guard) apart
        assert not (same & (distance < 250)).any()
    assert len(split.train) > 0.6 * len(index)


def test_block_split_holds_out_contiguous_blocks_per_recording():
    index = make_index()
    split = make_split(index, "block", seed=0)
    blocks = split.test_block
    for block in np.unique(blocks):
        entries = index[split.test[blocks == block]]
        assert len(np.unique(entries[["song", "subject"]])) == 1
        assert np.all(np.diff(np.sort(entries["start"])) == 125)
    recordings = np.unique(index[split.test][["song", "subject"]])
    assert len(recordings) == 12  # every recording gives a held-out block


def assert_no_cross_listener_leak(index, split):
    """No (song, time) of a higher part comes within a window plus the 1-s guard of a lower part's window.

    Listeners of one song hear the identical mel at the same second, so this is checked across
    listeners: a second held out for one listener must be a training target for none.
    """
    for high, lows in ((split.test, (split.train, split.val)), (split.val, (split.train,))):
        held = index[high]
        for part in lows:
            other = index[part]
            same_song = held["song"][:, None] == other["song"][None, :]
            distance = np.abs(held["start"][:, None].astype(int) - other["start"][None, :].astype(int))
            # a training window covers [start, start + 125) of the song: no overlap and a 1-s guard
            assert not (same_song & (distance < 250)).any()


@pytest.mark.parametrize("hop", [125, 13])
def test_block_split_holds_out_the_same_seconds_for_every_listener(hop):
    # the leak of per-recording chunks: a second held out for one listener trained on for another
    index = make_index(n_songs=3, n_subjects=5, n_windows=int(60 * 125 / hop), hop=hop)
    index = index[~((index["subject"] == 4) & (index["start"] > 40 * 125))]  # one shorter recording
    split = make_split(index, "block", seed=7, guard_s=1.0, window_s=1.0, hop_s=hop / 125)
    test = index[split.test]
    assert_no_cross_listener_leak(index, split)
    for song in np.unique(index["song"]):
        held = [set(test["start"][(test["song"] == song) & (test["subject"] == s)]) for s in range(4)]
        assert held[0] and all(h == held[0] for h in held)


@pytest.fixture(scope="module")
def session_folder(tmp_path_factory):
    """A folder of XDF sessions (``simulate --montage``): 3 listeners, each playing the same 3 tracks."""
    from eegmusic.stream.cli import main

    out = tmp_path_factory.mktemp("sessions") / "cap"
    assert main(["-q", "simulate", "--out", str(out), "--montage", "openbci8", "--n-songs", "3",
                 "--n-subjects", "3", "--duration", "20", "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("kind", ["block", "song", "subject-block"])
def test_a_folder_of_sessions_holds_out_music_for_every_listener(session_folder, kind):
    """Each listener's play of a track is a song of its own in a folder of sessions. Split by those
    songs, ``block`` held out a second for one listener and trained on it through another (16 of 18
    test targets were training targets, the identical mel), and ``song`` held out a "song" that the
    other listeners' plays trained on (20 of 20)."""
    from eegmusic.offline_training.dataset import WindowDataset

    dataset = WindowDataset(session_folder)
    assert len(dataset.songs) == 9 and len(np.unique(dataset.music["music"])) == 3

    def leaked(split) -> int:   # test windows whose very target is a training target
        trained = {mel.tobytes() for mel in dataset.mel(split.train)}
        return sum(mel.tobytes() in trained for mel in dataset.mel(split.test))

    # the check sees the leak of a split by play
    assert leaked(make_split(dataset.index, kind, seed=0)) > 0
    for seed in range(3):
        split = make_split(dataset.index, kind, seed=seed, music=dataset.music)
        assert len(split.test) and leaked(split) == 0
        placed = dataset.index.copy()
        placed["song"], placed["start"] = dataset.music["music"], dataset.music["start"]
        assert_no_cross_listener_leak(placed, split)


def test_the_shuffled_eeg_control_never_hands_a_window_eeg_of_its_own_music_second(session_folder):
    """The control keyed each window's target by its song number: in a folder of sessions each
    listener's play is a song of its own, so a window could get another listener's EEG of the same
    second of the same music, the same target (40 of 1,800 shuffled windows over 20 splits). The
    quality bench and ``evaluate`` pass the dataset's music."""
    from eegmusic.offline_training.baselines import shuffled_test_order
    from eegmusic.offline_training.dataset import WindowDataset

    dataset = WindowDataset(session_folder)
    keys = np.stack([dataset.music["music"], dataset.music["start"]], axis=1)
    own = {"song": 0, "music": 0}   # shuffled windows handed EEG of their own target, keyed by each
    for seed in range(10):
        test = make_split(dataset.index, "block", seed=seed, music=dataset.music).test
        for shuffle in range(3):
            for music, key in ((None, "song"), (dataset.music, "music")):
                order, _ = shuffled_test_order(dataset.index, test, seed=shuffle, music=music)
                own[key] += int((keys[test] == keys[test][order]).all(axis=1).sum())
    assert own["song"] > 0      # the check sees what the song keys let through
    assert own["music"] == 0


def test_evaluate_shuffles_a_folder_of_sessions_by_music(session_folder, tmp_path, monkeypatch):
    """``evaluate``'s control on a folder of sessions (a real ridge, trained and scored there): every
    window it shuffles gets EEG of other music or another second of it."""
    from eegmusic.offline_training import baselines
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.evaluate import evaluate
    from eegmusic.stream.cli import main

    run = tmp_path / "run"
    assert main(["-q", "train", "--data", str(session_folder), "--arch", "linear", "--split", "block",
                 "--out", str(run), "--no-progress"]) == 0
    shuffles = []
    real = baselines.shuffled_test_order

    def recorded(index, rows, **kwargs):   # the real shuffle, its result kept to be checked
        order, note = real(index, rows, **kwargs)
        shuffles.append((rows, order))
        return order, note

    monkeypatch.setattr(baselines, "shuffled_test_order", recorded)
    evaluate(session_folder, run / "model.onnx", "block", tmp_path / "eval", progress=False)
    music = WindowDataset(session_folder).music
    keys = np.stack([music["music"], music["start"]], axis=1)
    (rows, order), = shuffles
    assert order is not None and not (keys[rows] == keys[rows][order]).all(axis=1).any()


def test_evaluate_classifies_a_folder_of_sessions_by_music(session_folder, tmp_path):
    """Each listener's play of a track is a song of its own in a folder of sessions: the song classifier
    had the 9 plays of 3 tracks as classes, told plays of the same audio apart by chance, and read its
    accuracy against a chance of 1/9 (a helper's science audit). Its classes are the 3 pieces of music."""
    import json

    from eegmusic.offline_training.evaluate import evaluate
    from eegmusic.stream.cli import main

    run = tmp_path / "run"
    assert main(["-q", "train", "--data", str(session_folder), "--arch", "linear", "--split", "block",
                 "--out", str(run), "--no-progress"]) == 0
    evaluate(session_folder, run / "model.onnx", "block", tmp_path / "eval", progress=False)
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert summary["songs_classified"] == 3 and summary["song_accuracy_chance"] == 0.3333, summary
    assert "one of 3 pieces of music" in (tmp_path / "eval" / "metrics.md").read_text()


def test_evaluates_song_mean_of_a_held_out_listener_is_its_musics_mean_over_the_training_part(
        session_folder, tmp_path):
    """The song-mean baseline averaged by song: a held-out listener's plays (songs of their own in a
    folder of sessions) had no training windows, so it was n/a with "a test song has no training
    windows", though other listeners' plays of the same music trained the model (a science audit). It
    is the mean of the test window's music over the training part."""
    import json

    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.evaluate import evaluate
    from eegmusic.offline_training.scoring import MetricAccumulator, block_rows, one_per_second
    from eegmusic.stream.cli import main

    run = tmp_path / "run"
    assert main(["-q", "train", "--data", str(session_folder), "--arch", "linear", "--split",
                 "subject-block", "--out", str(run), "--no-progress", "--target-offset", "0"]) == 0
    evaluate(session_folder, run / "model.onnx", "subject-block", tmp_path / "eval", progress=False)
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert not any("song mean baseline undefined" in note for note in summary["notes"]), summary["notes"]
    # the same figure by hand: each test window's music averaged over the training windows
    dataset = WindowDataset(session_folder)
    split = make_split(dataset.index, "subject-block", seed=0, music=dataset.music)
    music = dataset.music["music"]
    assert not set(dataset.index["song"][split.test]) & set(dataset.index["song"][split.train])
    train_mel = dataset.mel(split.train)
    means = {int(m): train_mel[music[split.train] == m].mean(axis=0) for m in np.unique(music[split.train])}
    blocks = block_rows(dataset.index, split.test, split.test_block)
    chains = [rows[one_per_second(dataset.index, rows)] for rows in blocks]
    rows = np.concatenate(blocks)
    local = {int(row): k for k, row in enumerate(rows)}
    by_hand = MetricAccumulator(None)
    by_hand.add(np.stack([means[int(m)] for m in music[rows]]), dataset.mel(rows), music[rows],
                [np.array([local[int(r)] for r in chain]) for chain in chains])
    expected = by_hand.result()
    assert summary["results"]["song_mean"]["mse"] == pytest.approx(expected["mse"], rel=1e-4), summary


def test_a_models_song_means_are_its_musics_so_a_held_out_listener_live_has_one(session_folder):
    """The song means a model carries (its metadata, for the live path) were each play's own, over the
    seconds that play trained on. Every play's mean is now its music's over the training part, and a
    play of that music the training part lacks (a held-out listener's) is found by its digest."""
    from eegmusic.decoder.truth import read_baselines, read_song_music
    from eegmusic.offline_training import baselines
    from eegmusic.offline_training.dataset import WindowDataset

    dataset = WindowDataset(session_folder)
    song, music = dataset.index["song"], dataset.music["music"]
    plays = [int(k) for k in np.unique(song[music == music[0]])]   # one track's 3 plays
    whole = np.flatnonzero(song == plays[0])
    part = np.flatnonzero(song == plays[1])[:5]   # a play that trained on its first 5 seconds only
    train = np.concatenate([whole, part])
    entry = baselines.training_baselines(dataset, train)
    _, song_means = read_baselines(entry)
    expected = dataset.mel(train).mean(axis=0)
    assert set(song_means) == set(plays[:2])
    for play in plays[:2]:
        np.testing.assert_allclose(song_means[play], expected, rtol=1e-3, atol=0.02)   # float16 there
    digests = set(read_song_music(entry).values())
    assert plays[2] not in song_means and dataset.music_identity(plays[2])[0] in digests


@pytest.mark.parametrize("kind,trained_on", [("random", "all"), ("subject", "all"), ("block", "none"),
                                             ("subject-block", "none")])
def test_the_test_targets_a_split_trained_on_are_counted(sim_dir, kind, trained_on):
    """``random`` and ``subject`` hold out windows and listeners, not music: every test target is another
    window's training target (a science audit: printed with no word of it); the others hold music out."""
    from eegmusic.offline_training import baselines
    from eegmusic.offline_training.dataset import WindowDataset

    dataset = WindowDataset(sim_dir)
    split = make_split(dataset.index, kind, seed=0, music=dataset.music)
    count = baselines.targets_trained_on(dataset, split.train, split.test)
    trained = {mel.tobytes() for mel in dataset.mel(split.train)}   # the identical mel, by hand
    identical = sum(mel.tobytes() in trained for mel in dataset.mel(split.test))
    assert count == (len(split.test) if trained_on == "all" else 0) and count >= identical, (count, identical)
    if kind == "subject":   # another listener's window of the same second: the identical mel
        assert identical == len(split.test)


def test_train_and_evaluate_say_when_the_test_part_holds_trained_music(sim_dir, tmp_path, capsys):
    """``train`` printed a test MSE with no baseline and ``evaluate`` a random split's table with no note
    that its test music was trained on (a science audit)."""
    import json

    from eegmusic.offline_training import baselines
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.evaluate import evaluate
    from eegmusic.stream.cli import main

    for kind in ("random", "block"):
        run = tmp_path / kind
        assert main(["-q", "train", "--data", str(sim_dir), "--arch", "linear", "--split", kind, "--out",
                     str(run), "--no-progress", "--target-offset", "0"]) == 0
        printed = capsys.readouterr().out
        metrics = json.loads((run / "metrics.json").read_text())
        dataset = WindowDataset(sim_dir)
        split = make_split(dataset.index, kind, seed=0, music=dataset.music)
        test_mel, global_mean = dataset.mel(split.test), dataset.mel(split.train).mean(axis=0)
        by_hand = float(((test_mel.astype(np.float64) - global_mean) ** 2).mean())
        assert metrics["test_baselines_mse"]["global_mean"] == pytest.approx(by_hand, rel=1e-4)
        assert metrics["test_baselines_mse"]["song_mean"] is not None
        assert (f"training part's global-mean window {by_hand:.2f}, song-mean window "
                f"{metrics['test_baselines_mse']['song_mean']:.2f} on the same windows") in printed, printed
        evaluate(sim_dir, run / "model.onnx", kind, tmp_path / f"eval-{kind}", progress=False)
        notes = json.loads((tmp_path / f"eval-{kind}" / "metrics.json").read_text())["notes"]
        said = [note for note in notes if "does not hold out music" in note]
        if kind == "random":
            n_test = len(split.test)
            assert metrics["test_targets_trained_on"] == n_test and said and said[0].startswith(
                f"{n_test} of {n_test} test windows have a target that overlaps a training window's"), notes
            assert f"note: {n_test} of {n_test} test windows" in printed
        else:
            assert metrics["test_targets_trained_on"] == 0 and not said and "note:" not in printed, notes
    assert baselines.targets_trained_on(dataset, split.train, split.test) == 0


@pytest.mark.parametrize("kind", [k for k in SPLIT_KINDS if k != "all"])
def test_a_folder_of_songs_splits_as_it_did(sim_dir, kind):
    """Where every song is its own music (NMED-T, ``simulate``: the quality bench's data), splitting by
    music is splitting by song: the same parts, so no table measured before changes."""
    from eegmusic.offline_training.dataset import WindowDataset

    dataset = WindowDataset(sim_dir)
    np.testing.assert_array_equal(dataset.music["music"], dataset.index["song"])
    np.testing.assert_array_equal(dataset.music["start"], dataset.index["start"])
    def parts(seed, music):   # a split's rows, or the refusal (2 songs: no song split)
        try:
            split = make_split(dataset.index, kind, seed=seed, music=music)
        except ConfigError as error:
            return str(error)
        return [getattr(split, part).tolist() for part in ("train", "val", "test", "test_block")]

    for seed in range(3):
        assert parts(seed, dataset.music) == parts(seed, None)


def test_the_unseen_song_check_holds_out_every_listeners_play_of_its_song(session_folder):
    """It held out one listener's play (a song of its own in a folder of sessions) and trained on the
    other listeners' plays of the same music."""
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.unseen_song import song_fold

    dataset = WindowDataset(session_folder)
    for seed in range(3):
        split = make_split(dataset.index, "block", seed=seed, music=dataset.music)
        fold, reason = song_fold(dataset, split, seed=seed)
        assert reason is None
        held = dataset.music["music"][fold.scored[0][0]]
        assert len(np.flatnonzero(dataset.music["music"][np.concatenate(fold.scored)] == held)) > 0
        trained = dataset.music["music"][np.union1d(fold.split.train, fold.split.val)]
        assert held not in set(trained) and fold.song == held
        assert len(set(dataset.index["subject"][np.concatenate(fold.scored)])) == 3   # every listener's


def test_evaluate_says_when_a_model_was_split_before_music_was_held_out(session_folder, tmp_path):
    """A model trained before the splits held out music had its parts cut per play: on data whose plays
    share music, today's test part may hold seconds it trained on, and nothing said so."""
    import json

    import onnx
    from eegmusic.offline_training.evaluate import evaluate
    from eegmusic.stream.cli import main

    assert main(["train", "--data", str(session_folder), "--arch", "linear", "--out", str(tmp_path / "run"),
                 "--target-offset", "0.1", "--no-progress"]) == 0
    words = "the model was trained before splits held out music"
    model_path = tmp_path / "run" / "model.onnx"
    summary = evaluate(session_folder, model_path, None, tmp_path / "now", progress=False)
    assert not any(words in note for note in summary["notes"])
    model = onnx.load(model_path)   # as a model of the last stop recorded it
    props = {p.key: p for p in model.metadata_props}
    meta = json.loads(props["eegmusic"].value)
    del meta["training"]["split_by"]
    props["eegmusic"].value = json.dumps(meta)
    onnx.save(model, tmp_path / "older.onnx")
    summary = evaluate(session_folder, tmp_path / "older.onnx", None, tmp_path / "older", progress=False)
    assert any(words in note for note in summary["notes"]), summary["notes"]


def test_the_unseen_song_check_scores_each_play_of_its_music_on_its_own():
    """One listener's two plays of a track (a replay, or a play split at a clock jump) are one piece of
    music: held out together, they were scored as one stretch, the second play's EEG in the first's gap."""
    from types import SimpleNamespace

    from eegmusic.offline_training.dataset import INDEX_DTYPE, MUSIC_DTYPE
    from eegmusic.offline_training.splits import Split
    from eegmusic.offline_training.unseen_song import song_fold

    rows = [(1, 0, 125 * k) for k in range(20)] + [(2, 0, 125 * k) for k in range(10)] \
        + [(3, 0, 125 * k) for k in range(20)]
    index = np.array(rows, dtype=INDEX_DTYPE)
    music = np.empty(len(index), dtype=MUSIC_DTYPE)
    music["music"] = np.where(index["song"] == 3, 3, 1)   # song 2 plays song 1's music from its 20th second
    music["start"] = index["start"] + np.where(index["song"] == 2, 20 * 125, 0)
    dataset = SimpleNamespace(index=index, music=music)
    test = np.flatnonzero((index["song"] == 1) & (index["start"] >= 5 * 125) & (index["start"] < 10 * 125))
    val = np.flatnonzero((index["song"] == 3) & (index["start"] >= 15 * 125))
    train = np.setdiff1d(np.arange(len(index)), np.union1d(test, val))
    for seed in range(20):   # the seed that holds out music 1
        fold, reason = song_fold(dataset, Split(train, val, test, np.zeros(len(test), int)), seed=seed)
        if fold is not None and fold.song == 1:
            break
    assert reason is None and fold.song == 1
    for run in fold.scored:   # one play each, in its own time order
        assert len(set(index["song"][run])) == 1 and np.all(np.diff(index["start"][run]) > 0)
    assert {int(index["song"][run[0]]) for run in fold.scored} == {1, 2}


@pytest.mark.parametrize(("kind", "group"), [("subject", "subject"), ("song", "song"),
                                             ("subject-block", "subject")])
def test_group_splits_hold_out_whole_groups(kind, group):
    # no listener (song) in two parts; "block" puts every listener in every part and fails here
    index = make_index(n_songs=5, n_subjects=10)
    split = make_split(index, kind, seed=0)
    train, val, test = (set(index[group][rows]) for rows in (split.train, split.val, split.test))
    assert train and val and test
    assert not (train & test or train & val or val & test)


@pytest.mark.parametrize(("hop", "seed"), [(125, 0), (125, 5), (13, 2)])
def test_subject_block_split_holds_out_unheard_seconds_for_unseen_listeners(hop, seed):
    index = make_index(n_songs=3, n_subjects=6, n_windows=int(60 * 125 / hop), hop=hop)
    index = index[~((index["subject"] == 5) & (index["start"] > 40 * 125))]  # one shorter recording
    kwargs = {"seed": seed, "guard_s": 1.0, "window_s": 1.0, "hop_s": hop / 125}
    split = make_split(index, "subject-block", **kwargs)
    # the check fails on "subject" (the test listeners heard the training seconds): the leak it guards
    with pytest.raises(AssertionError):
        assert_no_cross_listener_leak(index, make_split(index, "subject", **kwargs))
    assert_no_cross_listener_leak(index, split)
    # the listeners of a part share its chunks: per song, each holds the same seconds (those it has)
    for rows in (split.train, split.val, split.test):
        part = index[rows]
        for song in np.unique(index["song"]):
            listeners = np.unique(part["subject"])
            held = [set(part["start"][(part["song"] == song) & (part["subject"] == s)]) for s in listeners]
            longest = max(held, key=len)  # empty where the part's chunks lie past a short recording's end
            assert all(h <= longest for h in held)
        assert len(part)
    # every kept row comes from a "subject" part whose listeners it keeps and a chunk of that part;
    # the part kept is a chunk share of the listeners' rows (not all of them, not a sliver)
    listeners = [set(index["subject"][rows]) for rows in (split.train, split.val, split.test)]
    parts = (split.train, split.val, split.test)
    for rows, own, share in zip(parts, listeners, (0.8, 0.1, 0.1), strict=True):
        of_listeners = np.isin(index["subject"], list(own)).sum()
        assert share / 2 < len(rows) / of_listeners < share * 1.25


def test_random_split_fractions_and_seed():
    index = make_index()
    a, b, c = (make_split(index, "random", seed=s) for s in (0, 0, 1))
    assert len(a.train) == 576 and len(a.val) == 72 and len(a.test) == 72
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)


def test_all_split_is_all_test():
    index = make_index(n_songs=1, n_subjects=1, n_windows=5)
    split = make_split(index, "all")
    assert len(split.train) == len(split.val) == 0
    np.testing.assert_array_equal(split.test, np.arange(5))
    np.testing.assert_array_equal(split.test_block, np.zeros(5))


def test_contiguous_blocks_by_hand():
    index = np.array([(21, 0, 0), (21, 0, 125), (21, 0, 375), (21, 1, 500), (22, 0, 0)], dtype=INDEX_DTYPE)
    np.testing.assert_array_equal(contiguous_blocks(index, np.array([4, 0, 1, 2, 3])), [3, 0, 0, 1, 2])


@pytest.mark.parametrize(
    ("index", "kind", "message"),
    [
        (make_index(), "bogus", "unknown split 'bogus'"),
        (make_index(n_subjects=2), "subject",
         "leaves the validation part empty .*; use data with at least 3 listeners, or --split block"),
        (make_index(n_songs=1), "song",
         "leaves the validation part empty .*; use data with at least 3 songs, or --split block"),
        (make_index(n_songs=1, n_subjects=1, n_windows=2), "random",
         r"leaves the validation part empty .*; use more data, or a smaller --hop \(more windows\)"),
        (make_index(n_songs=1, n_subjects=1, n_windows=0), "all", "empty test part"),
        (make_index(n_songs=1, n_subjects=3, n_windows=3), "block",
         r"leaves the train part empty .*; use longer recordings \(each song is cut into 10 time chunks\)"),
        (make_index(n_subjects=2), "subject-block",
         r"leaves the validation part empty \(2 subjects, 360 windows; needs at least 3 subjects and songs"),
        (make_index(n_songs=1, n_subjects=3, n_windows=3), "subject-block", "leaves the train part empty"),
        (make_index(n_subjects=1), "subject-block",   # was "1 subjects"
         r"leaves the validation part empty \(1 subject, 180 windows; needs at least 3 subjects"),
    ],
)
def test_bad_splits(index, kind, message):
    with pytest.raises(ConfigError, match=message):
        make_split(index, kind)


def test_a_hop_longer_than_the_window_is_named_in_the_refusal():
    """``train --hop 60`` was told to use longer recordings or another split, never its --hop."""
    index = make_index(n_songs=1, n_subjects=3, n_windows=2, hop=60 * 125)
    with pytest.raises(ConfigError, match=r"leaves the validation part empty .*; use a --hop of 1 s or less "
                                          r"\(now 60 s\), or longer recordings"):
        make_split(index, "block", hop_s=60.0)
    with pytest.raises(ConfigError) as refused:   # a split of whole listeners: the hop cannot help
        make_split(make_index(n_subjects=2), "subject", hop_s=2.0)
    assert "--hop" not in str(refused.value)


def test_train_subject_block_end_to_end(sim_dir, tmp_path, capsys, one_torch_thread):
    pytest.importorskip("torch")
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.export import read_metadata
    from eegmusic.stream.cli import main

    out = tmp_path / "run"
    args = ["train", "--data", str(sim_dir), "--arch", "linear", "--split", "subject-block", "--epochs", "1",
            "--no-progress", "--arch-config", '{"lags": [0, 8]}', "--target-offset", "0"]
    assert main([*args, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["test_mse"])
    assert read_metadata(out / "model.onnx")["training"]["split"] == "subject-block"
    # the run scored the split's rows: one unseen listener on seconds no training listener had
    split = make_split(WindowDataset(sim_dir).index, "subject-block", seed=0)
    counts = metrics["n_windows"]
    expected = {"train": len(split.train), "val": len(split.val), "test": len(split.test)}
    assert {p: counts[p] for p in expected} == expected
    capsys.readouterr()

    # two listeners cannot fill three parts: one line naming the fix, exit status 2, no model written
    assert main([*args, "--subjects", "1", "2", "--out", str(tmp_path / "two")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "split 'subject-block' leaves the validation part empty (2 subjects" in err
    assert err.endswith("use at least 3 listeners and longer songs, or --split block")
    assert not (tmp_path / "two" / "model.onnx").exists()


def _hop_index(n_listeners: int, seconds: float, hop_samples: int, song: int = 21) -> np.ndarray:
    """A window index of one song heard by ``n_listeners``, windows every ``hop_samples`` over ``seconds``."""
    starts = np.arange(0, int(seconds * 125) - 125 + 1, hop_samples)
    index = np.zeros(n_listeners * len(starts), dtype=[("song", np.int64), ("subject", np.int64),
                                                       ("start", np.int64)])
    index["song"] = song
    index["subject"] = np.repeat(np.arange(n_listeners), len(starts))
    index["start"] = np.tile(starts, n_listeners)
    return index


@pytest.mark.parametrize("seed", range(4))
def test_the_shuffled_eeg_control_never_hands_a_window_eeg_overlapping_its_own_second(seed):
    """At a 0.1-s hop the control kept each window from its exact target only: a window could get the EEG
    of its music 0.1 s away, its own listener's, almost its own EEG (a helper's science audit; 78 of
    the 909 windows here at seed 0). Each gets other music, or its music a second or more away."""
    from eegmusic.offline_training.baselines import shuffled_test_order

    index = _hop_index(3, 30.0, 12)
    rows = np.arange(len(index))
    order, note = shuffled_test_order(index, rows, seed=seed)
    assert note is None and sorted(order) == list(rows) and not (order == rows).any()
    assert (np.abs(index["start"] - index["start"][order]) >= 125).all()


def test_at_a_one_second_hop_the_shuffle_is_the_plain_one_and_no_room_is_refused():
    """On a song's 1-s grid no two different targets overlap: the order is :func:`shuffled_order`'s, so no
    table measured before changes. Where every window overlaps every other, there is no control."""
    from eegmusic.offline_training.baselines import shuffled_order, shuffled_test_order

    index = _hop_index(3, 30.0, 125)
    rows = np.arange(len(index))
    targets = np.stack([index["song"], index["start"]], axis=1)
    for seed in range(4):
        order, _ = shuffled_test_order(index, rows, seed=seed)
        np.testing.assert_array_equal(order, shuffled_order(len(rows), seed=seed, targets=targets))
    crowded = _hop_index(1, 1.4, 12)        # 5 windows within 0.4 s of each other
    order, note = shuffled_test_order(crowded, np.arange(len(crowded)), seed=0)
    assert order is None and "at least 1 s from its own" in note
