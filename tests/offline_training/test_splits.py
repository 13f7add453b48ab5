"""Splits: partitions, no leakage across the block guard, held-out groups, reproducibility, errors."""

from __future__ import annotations

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
    if kind != "block":  # block drops guard windows; the others use every window
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


@pytest.mark.parametrize("hop", [125, 13])
def test_block_split_holds_out_the_same_seconds_for_every_listener(hop):
    # listeners of one song hear the identical mel at the same second: a second held out for one
    # listener must be a training target for none (the leak of per-recording chunks)
    index = make_index(n_songs=3, n_subjects=5, n_windows=int(60 * 125 / hop), hop=hop)
    index = index[~((index["subject"] == 4) & (index["start"] > 40 * 125))]  # one shorter recording
    split = make_split(index, "block", seed=7, guard_s=1.0, window_s=1.0, hop_s=hop / 125)
    test = index[split.test]
    for part in (split.train, split.val):
        other = index[part]
        same_song = test["song"][:, None] == other["song"][None, :]
        distance = np.abs(test["start"][:, None].astype(int) - other["start"][None, :].astype(int))
        # a training window covers [start, start + 125) of the song: no overlap and a 1-s guard
        assert not (same_song & (distance < 250)).any()
    for song in np.unique(index["song"]):
        held = [set(test["start"][(test["song"] == song) & (test["subject"] == s)]) for s in range(4)]
        assert held[0] and all(h == held[0] for h in held)


@pytest.mark.parametrize("kind", ["subject", "song"])
def test_group_splits_hold_out_whole_groups(kind):
    index = make_index(n_songs=5, n_subjects=10)
    split = make_split(index, kind, seed=0)
    train, val, test = (set(index[kind][rows]) for rows in (split.train, split.val, split.test))
    assert train and val and test
    assert not (train & test or train & val or val & test)


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
        (make_index(n_subjects=2), "subject", "leaves the validation part empty"),
        (make_index(n_songs=1), "song", "leaves the validation part empty"),
        (make_index(n_songs=1, n_subjects=1, n_windows=2), "random", "leaves the validation part empty"),
        (make_index(n_songs=1, n_subjects=1, n_windows=0), "all", "empty test part"),
        (make_index(n_songs=1, n_subjects=3, n_windows=3), "block", "leaves the train part empty"),
    ],
)
def test_bad_splits(index, kind, message):
    with pytest.raises(ConfigError, match=message):
        make_split(index, kind)
