"""Data sanity on load: flat, all-zero, complex and non-numeric EEG; silent, short and broken stimuli.

Each case copies the tiny simulated NMED-T folder and spoils one thing in it. The dataset refuses
what cannot be trained on with one line (and ``train`` exits 2 before any epoch), or reports what it
tolerates and goes on.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import scipy.io as sio
import soundfile
from eegmusic.offline_training.dataset import WindowDataset
from eegmusic.offline_training.sanity import MAX_FLAGGED_SHARE, FlatReport, flat_channels
from eegmusic.stream.errors import DataFormatError

from tests.faults.conftest import assert_one_line_error, run_cli


@pytest.fixture
def spoil(sim_dir, tmp_path):
    """Copy the simulated folder; ``spoil(song, eeg=fn, audio=fn)`` rewrites a song's EEG or stimulus."""
    folder = tmp_path / "data"
    shutil.copytree(sim_dir, folder)

    def apply(song=21, *, eeg=None, audio=None):
        if eeg is not None:
            path = folder / f"song{song}_Imputed.mat"
            content = sio.loadmat(path)
            content[f"data{song}"] = eeg(content[f"data{song}"])
            sio.savemat(path, {k: v for k, v in content.items() if not k.startswith("__")})
        if audio is not None:
            path = folder / "stimuli" / f"song{song}.wav"
            samples, rate = soundfile.read(path, dtype="float32")
            samples = audio(samples, rate)
            soundfile.write(path, samples, rate, subtype="FLOAT")
        return folder

    return apply


def _zero_song(data):
    return np.zeros_like(data)


def _zero_subject(data):
    data = data.copy()
    data[:, :, 0] = 0.0
    return data


def _flat_channel(data):
    data = data.copy()
    data[5, :, 1] = 3.0
    return data


def _two_flat_channels_everywhere(data):
    data = data.copy()
    data[[0, 1], :, :] = 0.0
    return data


def _nan_channel(data):
    data = data.copy()
    data[7, :, 0] = np.nan
    return data


@pytest.mark.parametrize(("spoiler", "refused", "flat_pairs"), [
    (_zero_song, True, 125 * 3),            # a whole song of zeros: half the data
    (_zero_subject, False, 125),            # one listener of six: 1/6 < 25 %, reported
    (_flat_channel, False, 1),
    (_two_flat_channels_everywhere, False, 6),
])
def test_flat_and_all_zero_eeg_is_reported_or_refused(spoiler, refused, flat_pairs, spoil, caplog):
    folder = spoil(21, eeg=spoiler)
    with caplog.at_level(logging.WARNING, logger="eegmusic.offline_training.sanity"):
        if refused:
            with pytest.raises(DataFormatError) as caught:
                WindowDataset(folder)
            message = str(caught.value)
            assert "\n" not in message and "flat or all-zero" in message and "song 21" in message
            return
        dataset = WindowDataset(folder)
    assert dataset.flat_report.n_flat == flat_pairs
    assert "flat or all-zero" in caplog.text and "training goes on" in caplog.text


def test_train_refuses_mostly_flat_data_before_any_epoch(spoil, tmp_path, capsys):
    folder = spoil(21, eeg=_zero_song)
    status, _, err = run_cli(["train", "--data", str(folder), "--out", str(tmp_path / "run"), "--epochs", "1",
                              "--no-progress"], capsys)
    assert_one_line_error(status, err, "flat or all-zero")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("spoiler", "said"), [
    (_zero_song, "(S01: all channels; S02: all channels; S03: all channels)"),
    (_flat_channel, "(S02: E6)"),
])
def test_info_lists_the_flat_channels_that_train_reports(spoiler, said, spoil, sim_dir, capsys):
    """``info`` said 'problems: none' for a song of zeros, which ``train`` refuses."""
    folder = spoil(21, eeg=spoiler)
    status, out, _ = run_cli(["info", str(folder)], capsys)
    problems = [line for line in out.splitlines() if "flat or all-zero EEG" in line]
    assert status == 1 and len(problems) == 1, out
    assert problems[0].startswith(f"  - {folder / 'song21_Imputed.mat'}: song 21: ") and said in problems[0]
    status, out, _ = run_cli(["info", str(sim_dir)], capsys)   # the folder as simulated
    assert "flat or all-zero EEG" not in out


@pytest.mark.parametrize("spoiler", [_nan_channel])
def test_a_non_finite_channel_counts_as_flat(spoiler):
    data = np.random.default_rng(0).normal(size=(4, 100))
    data[2] = np.nan
    assert flat_channels(data).tolist() == [False, False, True, False]
    report = FlatReport()
    report.add("song 21 S01", data, ["a", "b", "c", "d"])
    assert report.flat == {"song 21 S01": ["c"]} and report.n_pairs == 4


def test_share_threshold_is_strict():
    report = FlatReport(n_pairs=100, flat={"x": ["c"] * int(100 * MAX_FLAGGED_SHARE)})
    report.check("f")  # exactly at the threshold: reported, not refused
    report.flat["y"] = ["d"]
    with pytest.raises(DataFormatError, match="over 25 %"):
        report.check("f")


@pytest.mark.parametrize("kind", ["complex", "text"])
def test_complex_or_non_numeric_eeg_is_refused(kind, spoil):
    if kind == "complex":
        folder = spoil(21, eeg=lambda data: data + 1j * data)
    else:
        folder = spoil(21, eeg=lambda data: np.full(data.shape[:1], "µV", dtype=object))
    with pytest.raises(DataFormatError) as caught:
        WindowDataset(folder)
    assert "\n" not in str(caught.value)
    if kind == "complex":
        assert "not real numbers" in str(caught.value)


@pytest.mark.parametrize(("name", "audio", "message"), [
    ("silent", lambda samples, rate: np.zeros_like(samples), "is silent"),
    ("nearly silent", lambda samples, rate: samples * 1e-6, "is silent"),
    ("short", lambda samples, rate: samples[: 2 * rate], "lasts 2.0 s but its EEG 20.0 s"),
    ("nan", lambda samples, rate: np.where(np.arange(len(samples)) == 5, np.nan, samples), "NaN"),
])
def test_bad_stimulus_is_refused_before_training(name, audio, message, spoil, tmp_path, capsys):
    folder = spoil(22, audio=audio)
    dataset = WindowDataset(folder)
    with pytest.raises(DataFormatError, match=message) as caught:
        dataset.fill_mel_cache()
    assert "\n" not in str(caught.value)
    status, _, err = run_cli(["train", "--data", str(folder), "--out", str(tmp_path / "run"), "--epochs", "1",
                              "--no-progress", "--arch", "linear"], capsys)
    assert_one_line_error(status, err, message.split(" but")[0])
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_short_stimulus_is_allowed_when_asked(spoil, caplog):
    folder = spoil(22, audio=lambda samples, rate: samples[: 2 * rate])
    dataset = WindowDataset(folder, allow_short_stimulus=True)
    with caplog.at_level(logging.WARNING, logger="eegmusic.offline_training.sanity"):
        dataset.fill_mel_cache()
        dataset.with_target_offset(0.1).fill_mel_cache()
        # as --target-offset auto reads each lag's targets: the rows' own, none kept
        dataset.with_target_offset(0.2).mel(np.arange(len(dataset.index)), keep_songs=False)
    assert "--allow-short-stimulus" in caplog.text
    assert sum("song 22 lasts" in r.getMessage() for r in caplog.records) == 1   # said once, not per lag
    mel = dataset.song_mel(22)
    assert mel.shape[0] > 10 and np.all(mel[-1] == mel[-1].min())  # after the end: silence (floor)


def test_evaluate_refuses_a_short_stimulus_with_one_line(spoil, tmp_path, capsys):
    from tests.decoder.onnx_models import make_model

    folder = spoil(22, audio=lambda samples, rate: samples[: 2 * rate])
    model = make_model(tmp_path / "model.onnx")
    status, _, err = run_cli(["evaluate", "--data", str(folder), "--model", str(model), "--split", "all",
                              "--out", str(tmp_path / "eval"), "--no-progress"], capsys)
    assert_one_line_error(status, err, "--allow-short-stimulus")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("subs21", np.array([["S01", "S01", "S03"]], dtype=object),
     "subs21 lists participant 'S01' 2 times; give each of data21's 3 participants an id of its own"),
    ("fs", np.array([[125.0, 250.0]]), "fs holds 2 numbers (125, 250); it must be one rate: set fs = 125"),
    ("data21", "its first 50 samples",
     "its EEG holds 50 samples (0.4 s at 125 Hz), shorter than one 1-s window"),
])
def test_a_song_file_that_would_lose_a_recording_is_refused_in_one_line(field, value, message, spoil,
                                                                         tmp_path, capsys):
    """A helper's file fuzz: a repeated participant id kept one of the two recordings, an fs of two rates
    took the first, and EEG shorter than a window gave the song no window, each without a word (exit 0)."""
    folder = spoil(22)   # a copy
    path = folder / "song21_Imputed.mat"
    content = {k: v for k, v in sio.loadmat(path).items() if not k.startswith("__")}
    content[field] = content[field][:, :50] if isinstance(value, str) else value
    sio.savemat(path, content)
    status, _, err = run_cli(["train", "--data", str(folder), "--arch", "linear", "--out",
                              str(tmp_path / "run"), "--no-progress"], capsys)
    assert_one_line_error(status, err, message)
    assert not (tmp_path / "run").exists()
