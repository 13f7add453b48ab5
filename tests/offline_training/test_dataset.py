"""WindowDataset on the simulated folder: index, EEG windows, mel targets and bad inputs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from eegmusic.decoder.melspec import window_mel_db
from eegmusic.offline_training.dataset import WindowDataset, window_mels
from eegmusic.replay.nmedt import NMEDTFolder
from eegmusic.stream.errors import ConfigError, DataFormatError
from eegmusic.stream.preprocess import preprocess_recording
from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec


@pytest.fixture(scope="module")
def dataset(sim_dir):
    return WindowDataset(sim_dir, hop_s=1.0, target_offset_s=0.2)


def test_index_lists_every_window(dataset, sim_dir):
    folder = NMEDTFolder(sim_dir)
    n_times = folder.load_song(21).n_times
    per_recording = (n_times - 125) // 125 + 1
    assert dataset.songs == [21, 22]
    assert dataset.n_subjects == 3 and dataset.subjects == folder.load_song(21).subjects
    assert len(dataset.index) == 2 * 3 * per_recording
    assert set(dataset.index.dtype.names) == {"song", "subject", "start"}
    assert dataset.index["start"].max() + 125 <= n_times


def test_eeg_and_mel_rows_match_the_files(dataset, sim_dir):
    folder = NMEDTFolder(sim_dir)
    rows = np.array([0, 7, len(dataset.index) - 1, 25])
    eeg, mel = dataset.eeg(rows), dataset.mel(rows)
    assert eeg.shape == (4, 125, 125) and eeg.dtype == np.float32
    assert mel.shape == (4, 128, 44) and mel.dtype == np.float32
    for i, row in enumerate(rows):
        song, subject, start = (int(v) for v in dataset.index[row])
        recording = folder.load_song(song)
        k = recording.subjects.index(dataset.subjects[subject])
        expected_eeg = preprocess_recording(recording.eeg(k), 125.0, MODEL_CHANNELS, PreprocessingSpec())
        np.testing.assert_array_equal(eeg[i], expected_eeg[:, start : start + 125])
        # NMED-T files are average-referenced already: the default spec changes them only by rounding
        np.testing.assert_allclose(eeg[i], recording.eeg(k)[:, start : start + 125], atol=1e-3)
        expected = window_mel_db(folder.load_stimulus(song), start / 125 - 0.2)
        np.testing.assert_allclose(mel[i], expected, atol=1e-4)


def test_windows_at_a_phase_start_past_each_hop(dataset, sim_dir):
    """Windows at phase 0.3 s are the 0.3-s-late windows of the continuous recording, targets included."""
    shifted = WindowDataset(sim_dir, hop_s=1.0, phase_s=0.3, target_offset_s=0.2)
    fine = WindowDataset(sim_dir, hop_s=0.008, target_offset_s=0.2)  # a window at every sample
    n_times = NMEDTFolder(sim_dir).load_song(21).n_times
    assert set(shifted.index["start"] % 125) == {38}  # 0.3 s = 37.5 samples, rounded to even
    assert len(shifted.index) == 2 * 3 * ((n_times - 125 - 38) // 125 + 1)
    rows = np.array([0, 5, len(shifted.index) - 1])
    where = {tuple(int(v) for v in entry): k for k, entry in enumerate(fine.index)}
    same = np.array([where[tuple(int(v) for v in shifted.index[r])] for r in rows])
    np.testing.assert_array_equal(shifted.eeg(rows), fine.eeg(same))
    # (the fine grid's targets of these rows only: its every start is 2,500 windows a song)
    np.testing.assert_allclose(shifted.mel(rows), fine.mel(same, keep_songs=False), atol=1e-5)
    # the rows' own targets keep the phase as the whole-song cache does
    np.testing.assert_allclose(shifted.with_target_offset(0.2).mel(rows, keep_songs=False), shifted.mel(rows),
                               atol=1e-4)
    # and neither matches the whole-second window it overlaps
    assert not np.allclose(shifted.mel(rows[:1]), dataset.mel(rows[:1]), atol=1.0)


def test_targets_of_a_sample_are_computed_for_its_own_starts_and_kept_nowhere(sim_dir, monkeypatch):
    """The target-offset choice reads 800 training windows and the validation part at seven offsets:
    ``keep_songs=False`` computes the distinct window starts of those rows only (the listeners of a song
    share them) and caches nothing, with the same targets as the whole-song cache."""
    from eegmusic.offline_training import dataset as dataset_module

    kept = WindowDataset(sim_dir, hop_s=0.5, target_offset_s=0.15)
    once = kept.with_target_offset(0.15)
    computed = []

    def counted(audio, starts_s):
        computed.append(len(starts_s))
        return window_mels(audio, starts_s)

    monkeypatch.setattr(dataset_module, "window_mels", counted)
    song21 = np.flatnonzero(once.index["song"] == 21)
    same_start = song21[once.index["start"][song21] == once.index["start"][song21[3]]]  # every listener's
    rows = np.concatenate([song21[[3, 9]], same_start, np.flatnonzero(once.index["song"] == 22)[:2]])
    got = once.mel(rows, keep_songs=False)
    assert computed == [2, 2] and once._mel == {}  # the starts of rows 3 and 9 of song 21, two of song 22
    np.testing.assert_allclose(got, kept.mel(rows), atol=1e-4)
    assert sum(computed[2:]) == len(kept.song_mel(21)) + len(kept.song_mel(22)) > 40
    # a song already kept is read from the cache
    computed.clear()
    np.testing.assert_array_equal(kept.mel(rows, keep_songs=False), kept.mel(rows))
    assert computed == []


def test_window_mels_equal_window_mel_db(rng):
    audio = rng.normal(0, 0.1, 3 * 22050).astype(np.float32)
    starts = np.array([-1.5, -0.3, 0.0, 0.7, 2.5, 3.2])
    got = window_mels(audio, starts)
    for i, start in enumerate(starts):
        np.testing.assert_allclose(got[i], window_mel_db(audio, start), atol=1e-4)


def test_subject_selection_by_id_and_index(sim_dir, dataset):
    by_id = WindowDataset(sim_dir, songs=[22], subjects=[dataset.subjects[2]])
    by_index = WindowDataset(sim_dir, songs=[22], subjects=[3])  # listener numbers are 1-based
    assert by_id.subjects == by_index.subjects == [dataset.subjects[2]]
    np.testing.assert_array_equal(by_id.eeg([3]), by_index.eeg([3]))
    assert set(by_id.index["subject"]) == {0}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"songs": [35]}, ConfigError, "song 35 not in"),
        ({"subjects": ["nobody"]}, ConfigError, "subject 'nobody' not in"),
        ({"subjects": [9]}, ConfigError, "listener 9 is not in"),
        ({"subjects": [0]}, ConfigError, "listener 0 is not in"),  # 1-based: 0 names nobody
        ({"hop_s": 0.001}, ConfigError, "shorter than one sample"),
        ({"phase_s": -0.5}, ConfigError, "window phase -0.5 s is negative"),
    ],
)
def test_bad_options(sim_dir, kwargs, error, message):
    with pytest.raises(error, match=message):
        WindowDataset(sim_dir, **kwargs)


def test_data_without_stimuli(sim_dir, tmp_path):
    shutil.copy(sim_dir / "song21_Imputed.mat", tmp_path / "song21_Imputed.mat")
    with pytest.raises(DataFormatError, match="song 21 .* has no stimulus audio"):
        WindowDataset(tmp_path)
    # a folder of the file's name: it said to put the file where the folder already is
    (tmp_path / "stimuli" / "song21.wav").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"song21\.wav is a folder, not an audio file; put the song's"):
        WindowDataset(tmp_path)


def test_flat_listeners_left_out_by_subjects_do_not_count(sim_dir, tmp_path):
    """A listener whose EEG is all zeros is refused when chosen, and does not matter when left out."""
    import scipy.io as sio

    folder = tmp_path / "data"
    shutil.copytree(sim_dir, folder)
    for song in (21, 22):  # zero listener 3 in both songs: 2 of 6 recordings, over the 25 % share
        path = folder / f"song{song}_Imputed.mat"
        content = sio.loadmat(path)
        content[f"data{song}"][:, :, 2] = 0.0
        sio.savemat(path, {k: v for k, v in content.items() if not k.startswith("__")})
    with pytest.raises(DataFormatError, match="flat or all-zero"):
        WindowDataset(folder)
    chosen = WindowDataset(folder, subjects=[1, 2])
    assert chosen.n_subjects == 2 and not chosen.flat_report.flat
    assert chosen.flat_report.n_pairs == 2 * 2 * 125


def test_flat_report_names_all_channels_only_when_every_channel_is_flat():
    from eegmusic.offline_training.sanity import FlatReport

    labels = [f"E{i}" for i in range(1, 21)]
    report = FlatReport()
    report.add("song 21 S01", np.zeros((20, 50)), labels)
    eeg = np.random.default_rng(0).normal(size=(20, 50))
    eeg[:12] = 0.0
    report.add("song 21 S02", eeg, labels)
    described = report.describe()
    assert "song 21 S01: all channels" in described
    assert "song 21 S02: E1, E2, E3, E4, E5 and 7 more of 20 channels" in described
    assert "S02: all channels" not in described
