"""The NMED-T reader: real layout, MATLAB v5 and v7.3, stimuli, and every bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import soundfile
from eegmusic.replay.nmedt import (
    AUDIO_SFREQ,
    RAW_CHANNELS,
    SONGS,
    NMEDTFolder,
    describe_folder,
    read_audio,
)
from eegmusic.stream.errors import DataFormatError
from eegmusic.stream.spec import MODEL_CHANNELS

N_TIMES = 250
N_SUBJECTS = 2


def _eeg(rng, n_chans=125, n_times=N_TIMES, n_subjects=N_SUBJECTS) -> np.ndarray:
    return rng.standard_normal((n_chans, n_times, n_subjects)) * 10.0


def _write_v5(folder: Path, song_id: int, variables: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"song{song_id}_Imputed.mat"
    scipy.io.savemat(path, variables)
    return path


def _good_v5(folder: Path, rng, song_id: int = 21) -> tuple[Path, np.ndarray]:
    data = _eeg(rng)
    subs = np.array(["P1", "P2"], dtype=object).reshape(1, -1)
    return _write_v5(folder, song_id, {f"data{song_id}": data, "fs": 125.0, f"subs{song_id}": subs}), data


def _write_v73(path: Path, song_id: int, data_matlab_order: np.ndarray, fs: float, subjects) -> None:
    """Write a file the way MATLAB's save -v7.3 does (HDF5, axes reversed, MATLAB_class attributes)."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        ds = handle.create_dataset(f"data{song_id}", data=data_matlab_order.T)
        ds.attrs["MATLAB_class"] = np.bytes_("double")
        handle.create_dataset("fs", data=np.array([[fs]])).attrs["MATLAB_class"] = np.bytes_("double")
        if subjects is not None and isinstance(subjects[0], str):
            refs = handle.create_group("#refs#")
            ref_list = []
            for i, sid in enumerate(subjects):
                char = refs.create_dataset(f"c{i}", data=np.array([[ord(c)] for c in sid], dtype=np.uint16))
                char.attrs["MATLAB_class"] = np.bytes_("char")
                ref_list.append(char.ref)
            cell = handle.create_dataset(f"subs{song_id}", data=np.array(ref_list, dtype=h5py.ref_dtype)
                                         .reshape(-1, 1), dtype=h5py.ref_dtype)
            cell.attrs["MATLAB_class"] = np.bytes_("cell")
        elif subjects is not None:
            handle.create_dataset(f"subs{song_id}", data=np.asarray(subjects, dtype=float).reshape(-1, 1))
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(128, b" "))


def test_songs_table_matches_design():
    assert sorted(SONGS) == list(range(21, 31))
    assert SONGS[21].title == "First Fires" and SONGS[21].bpm == pytest.approx(55.97)
    assert SONGS[30].bpm == pytest.approx(150.0)


def test_reads_simulated_folder(sim_dir):
    folder = NMEDTFolder(sim_dir)
    assert folder.song_ids == [21, 22]
    rec = folder.load_song(22)
    assert rec.song_id == 22 and rec.info.title == "Oino"
    assert rec.data.shape == (125, 2500, 3) and rec.data.dtype == np.float64
    assert rec.sfreq == 125.0
    assert rec.subjects == ["S01", "S02", "S03"]
    assert rec.channels == MODEL_CHANNELS
    assert rec.eeg(2).shape == (125, 2500)
    np.testing.assert_array_equal(rec.eeg(1), rec.data[:, :, 1])
    assert folder.stimulus_path(21) == Path(sim_dir) / "stimuli" / "song21.wav"
    audio = folder.load_stimulus(21)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size == pytest.approx(20 * AUDIO_SFREQ, abs=1)


def test_v5_round_trip_with_numeric_ids(tmp_path, rng):
    data = _eeg(rng)
    _write_v5(tmp_path, 23, {"data23": data, "fs": np.array([[125]], dtype=np.uint8),
                             "subs23": np.array([[3, 7]])})
    rec = NMEDTFolder(tmp_path).load_song(23)
    np.testing.assert_array_equal(rec.data, data)
    assert rec.subjects == ["3", "7"]


def test_v5_single_participant_matlab_drops_axis(tmp_path, rng):
    data = _eeg(rng)[:, :, 0]  # MATLAB saves 125 x T x 1 as 125 x T
    _write_v5(tmp_path, 24, {"data24": data, "fs": 125.0})
    rec = NMEDTFolder(tmp_path).load_song(24)
    assert rec.data.shape == (125, N_TIMES, 1) and rec.subjects == ["1"]


@pytest.mark.parametrize("subjects", [["ab", "cd"], [11, 12]])
def test_v73_hdf5_axes_back_in_matlab_order(tmp_path, rng, subjects):
    data = _eeg(rng)
    _write_v73(tmp_path / "song25_Imputed.mat", 25, data, 125.0, subjects)
    rec = NMEDTFolder(tmp_path).load_song(25)
    np.testing.assert_array_equal(rec.data, data)  # (125, T, n) although HDF5 holds (n, T, 125)
    assert rec.subjects == [str(s) for s in subjects]


def test_v73_written_in_numpy_order_is_found_by_channel_axis(tmp_path, rng):
    data = _eeg(rng)
    with h5py.File(tmp_path / "song26_Imputed.mat", "w") as handle:
        handle["data26"] = data  # a non-MATLAB writer: channels first as HDF5 sees it
        handle["fs"] = 125.0
    np.testing.assert_array_equal(NMEDTFolder(tmp_path).load_song(26).data, data)


def test_raw_file_read_with_raw_flag(tmp_path, rng):
    data = _eeg(rng, n_chans=129, n_times=2000)
    _write_v73(tmp_path / "song21_raw.mat", 21, data, 1000.0, ["a", "b"])
    folder = NMEDTFolder(tmp_path)
    with pytest.raises(DataFormatError, match="only raw data"):
        folder.load_song(21)
    rec = folder.load_song(21, raw=True)
    assert rec.channels == RAW_CHANNELS and rec.sfreq == 1000.0 and rec.data.shape == (129, 2000, 2)


def test_stimulus_any_rate_resampled(tmp_path, rng):
    _good_v5(tmp_path, rng)
    (tmp_path / "stimuli").mkdir()
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    soundfile.write(tmp_path / "stimuli" / "song21.flac", stereo, 44100)
    audio = NMEDTFolder(tmp_path).load_stimulus(21)
    assert audio.dtype == np.float32 and audio.size == 22050
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)  # 1-s signal: bin k is k Hz


# ---------------------------------------------------------------------------------------------
# Bad inputs: each a DataFormatError of one line naming the file and the problem


def _bad_missing_data(folder, rng):
    return _write_v5(folder, 21, {"fs": 125.0}), None


def _bad_missing_fs(folder, rng):
    return _write_v5(folder, 21, {"data21": _eeg(rng)}), None


def _bad_axis_order(folder, rng):
    return _write_v5(folder, 21, {"data21": np.transpose(_eeg(rng), (1, 0, 2)), "fs": 125.0}), None


def _bad_channel_count(folder, rng):
    return _write_v5(folder, 21, {"data21": _eeg(rng, n_chans=64), "fs": 125.0}), None


def _bad_nan_inf(folder, rng):
    data = _eeg(rng)
    data[3, 10:13, 0] = np.nan
    data[7, 5, 1] = np.inf
    data[8, 6, 1] = -np.inf
    return _write_v5(folder, 21, {"data21": data, "fs": 125.0}), None


def _bad_fs(folder, rng):
    return _write_v5(folder, 21, {"data21": _eeg(rng), "fs": 250.0}), None


def _bad_raw_in_imputed(folder, rng):
    return _write_v5(folder, 21, {"data21": _eeg(rng, n_chans=129, n_times=400), "fs": 1000.0}), None


def _bad_truncated(folder, rng):
    path, _ = _good_v5(folder, rng)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path, None


def _bad_truncated_v73(folder, rng):
    path = folder / "song21_Imputed.mat"
    folder.mkdir(parents=True, exist_ok=True)
    _write_v73(path, 21, _eeg(rng), 125.0, None)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 3])
    return path, None


def _bad_element_size(folder, rng):
    """The first variable's byte count damaged to 0x7fffffff: scipy stops reading there without a word,
    which read as "no variable 'fs'" (the file holds one)."""
    import struct

    path, _ = _good_v5(folder, rng)
    content = bytearray(path.read_bytes())
    content[132:136] = struct.pack("<I", 0x7FFFFFFF)
    path.write_bytes(bytes(content))
    return path, None


def _bad_empty_file(folder, rng):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "song21_Imputed.mat"
    path.write_bytes(b"")
    return path, None


def _bad_subject_count(folder, rng):
    return _write_v5(folder, 21, {"data21": _eeg(rng), "fs": 125.0, "subs21": np.array([[1, 2, 3]])}), None


def _bad_no_participants(folder, rng):
    return _write_v5(folder, 21, {"data21": np.zeros((125, 1000, 0)), "fs": 125.0}), None


def _bad_no_samples(folder, rng):
    return _write_v5(folder, 21, {"data21": np.zeros((125, 0, 2)), "fs": 125.0}), None


def _bad_song_id(folder, rng):
    _good_v5(folder, rng, 21)
    _good_v5(folder, rng, 22)
    return folder, lambda f: f.load_song(35)


def _bad_missing_stimulus(folder, rng):
    _good_v5(folder, rng)
    return folder / "stimuli", lambda f: f.load_stimulus(21)


def _bad_unreadable_stimulus(folder, rng):
    _good_v5(folder, rng)
    (folder / "stimuli").mkdir()
    path = folder / "stimuli" / "song21.wav"
    path.write_bytes(b"RIFF\x00\x00not really a wave file" * 3)
    return path, lambda f: f.load_stimulus(21)


def _bad_empty_folder(folder, rng):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("nothing here")
    return folder, lambda f: None


def _bad_missing_folder(folder, rng):
    return folder / "does-not-exist", lambda f: None


def _bad_two_files_of_one_song(folder, rng):
    _good_v5(folder, rng, 21)
    shutil.copy(folder / "song21_Imputed.mat", folder / "song021_Imputed.mat")   # the same id, zero-padded
    return folder, None


def _bad_logical_v5(folder, rng):
    """A MATLAB logical (scipy reads it as uint8) was read as 0/1 µV (a helper's file fuzz)."""
    return _write_v5(folder, 21, {"data21": _eeg(rng) > 0, "fs": 125.0}), None


def _v73_with(folder, rng, name, data, matlab_class):
    """A v7.3 song file whose ``name`` is replaced by ``data`` (MATLAB order) of ``matlab_class``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "song21_Imputed.mat"
    _write_v73(path, 21, _eeg(rng), 125.0, None)
    with h5py.File(path, "r+") as handle:
        del handle[name]
        handle.create_dataset(name, data=data.T).attrs["MATLAB_class"] = np.bytes_(matlab_class)
    return path, None


def _bad_logical_v73(folder, rng):
    return _v73_with(folder, rng, "data21", (_eeg(rng) > 0).astype(np.uint8), "logical")


def _bad_text_fs_v5(folder, rng):
    """fs = '125' (a MATLAB char array) was read as 125 (a helper's file fuzz)."""
    return _write_v5(folder, 21, {"data21": _eeg(rng), "fs": "125"}), None


def _bad_text_fs_v73(folder, rng):
    return _v73_with(folder, rng, "fs", np.array([[ord(c) for c in "125"]], dtype=np.uint16), "char")


def _bad_2d_of_several(folder, rng):
    """2-D EEG beside a subs of 2 read as "has 1" participant; the shape is the problem."""
    subs = np.array(["P1", "P2"], dtype=object).reshape(1, -1)
    return _write_v5(folder, 21, {"data21": _eeg(rng)[:, :, 0], "fs": 125.0, "subs21": subs}), None


BAD_INPUTS = {
    "logical v5": (_bad_logical_v5, "data21 is a logical array (true/false), not EEG; save the recording's "
                                    "µV values as double"),
    "logical v7.3": (_bad_logical_v73, "data21 is a logical array"),
    "text fs v5": (_bad_text_fs_v5, "fs is text ('125'), not a number; store the number: fs = 125"),
    "text fs v7.3": (_bad_text_fs_v73, "fs is text ('125'), not a number"),
    "2-D of several": (_bad_2d_of_several, "subs21 lists 2 participants but data21 is 2-D (125, 250), one "
                                           "participant's recording; save it as channels × time × "
                                           "participants (125, n_times, 2)"),
    "missing data": (_bad_missing_data, "no variable 'data21'"),
    "missing fs": (_bad_missing_fs, "no variable 'fs'"),
    "axis order": (_bad_axis_order, "wrong axis order"),
    "channel count": (_bad_channel_count, "has 64 channels"),
    "nan inf count": (_bad_nan_inf, "holds 5 NaN/Inf values"),
    "fs not 125": (_bad_fs, "fs is 250 Hz"),
    "raw in imputed": (_bad_raw_in_imputed, "looks like raw data"),
    "truncated v5": (_bad_truncated, "truncated or unreadable"),
    "truncated v7.3": (_bad_truncated_v73, "truncated or unreadable"),
    "element size": (_bad_element_size,
                     "damaged MATLAB file (its variable 1 declares 2147483647 bytes from byte 128, past the "
                     "file's end"),
    "empty file": (_bad_empty_file, "empty file"),
    "subject count": (_bad_subject_count, "lists 3 participants"),
    "no participants": (_bad_no_participants, "(125, 1000, 0): no participants"),
    "no samples": (_bad_no_samples, "(125, 0, 2): no time samples"),
    "song id": (_bad_song_id, "song 35 not in"),
    "missing stimulus": (_bad_missing_stimulus, "no stimulus for song 21"),
    "unreadable stimulus": (_bad_unreadable_stimulus, "unreadable audio"),
    "empty folder": (_bad_empty_folder, "no songNN_Imputed.mat files"),
    "missing folder": (_bad_missing_folder, "folder not found"),
    "two files of one song": (_bad_two_files_of_one_song,
                              "song021_Imputed.mat and song21_Imputed.mat both hold song 21"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_one_line_error(case, tmp_path, rng):
    make, expected = BAD_INPUTS[case]
    folder = tmp_path / "nmedt"
    named, action = make(folder, rng)
    with pytest.raises(DataFormatError) as info:
        opened = NMEDTFolder(named if case in ("missing folder",) else folder)
        (action or (lambda f: f.load_song(21)))(opened)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert str(named) in message  # names the file (or folder)


@pytest.mark.parametrize("case", ["nan inf count", "axis order", "missing stimulus", "truncated v5",
                                  "element size"])
def test_info_collects_every_problem(case, tmp_path, rng):
    make, expected = BAD_INPUTS[case]
    folder = tmp_path / "nmedt"
    make(folder, rng)
    _good_v5(folder, rng, 22)  # a healthy song beside the broken one
    (folder / "song40_Imputed.mat").write_bytes(b"junk")
    lines, problems = describe_folder(folder)
    assert any(expected in p for p in problems), problems
    assert any("song 40" in p and "not an NMED-T song" in p for p in problems)
    assert any("song40_Imputed.mat" in p and "truncated" in p for p in problems)
    assert any(line.startswith("song 22 'Oino'") and "2 participants" in line for line in lines)


def test_info_cli_on_sim_dir_and_on_empty_folder(sim_dir, tmp_path, capsys):
    from eegmusic.stream.cli import main

    assert main(["info", str(sim_dir)]) == 0
    out = capsys.readouterr().out
    assert "song 21 'First Fires' 55.97 BPM: 20.0 s, 3 participants (S01, S02, S03)" in out
    assert "stimuli/song22.wav (20.0 s at 22050 Hz" in out
    assert "problems: none" in out
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no songNN_Imputed.mat files" in err


def test_info_reports_stimulus_length_mismatch(sim_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(sim_dir, folder)
    # noise, not zeros: a silent stimulus is a problem of its own (training refuses it)
    noise = 0.1 * np.random.default_rng(0).standard_normal(5 * 22050).astype(np.float32)
    soundfile.write(folder / "stimuli" / "song22.wav", noise, 22050)
    _, problems = describe_folder(folder)
    assert len(problems) == 1 and "lasts 5.0 s but the EEG of song 22 lasts 20.0 s" in problems[0]


def test_info_reports_a_silent_stimulus_as_train_refuses_it(sim_dir, tmp_path):
    """A stimulus of zeros (16-bit PCM, whose samples info did not read) was "problems: none" in info, while
    train refused it as silent. (Found by a fuzzing helper.)"""
    folder = tmp_path / "copy"
    shutil.copytree(sim_dir, folder)
    silent = folder / "stimuli" / "song22.wav"
    soundfile.write(silent, np.zeros(20 * 22050, dtype=np.int16), 22050, subtype="PCM_16")
    _, problems = describe_folder(folder)
    assert problems == [f"{silent}: the audio is silent (no sample reaches 0.0001 of full scale), and "
                        "training refuses a silent stimulus; replace it with the music that was played"]
    from eegmusic.stream.cli import main

    assert main(["info", str(folder)]) == 1


def test_mp3_stimulus(tmp_path):
    t = np.arange(2 * 44100) / 44100
    soundfile.write(tmp_path / "song.mp3", 0.5 * np.sin(2 * np.pi * 1000 * t), 44100, format="MP3")
    audio = read_audio(tmp_path / "song.mp3")
    assert abs(audio.size - 2 * 22050) < 2500  # mp3 encoders pad a few frames
    spectrum = np.abs(np.fft.rfft(audio[5000:5000 + 22050]))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=2)


def test_read_audio_mono_mix(tmp_path):
    stereo = np.zeros((8000, 2), dtype=np.float32)
    stereo[:, 0] = 0.5
    soundfile.write(tmp_path / "x.wav", stereo, 8000)
    audio = read_audio(tmp_path / "x.wav")
    assert audio.size == 22050
    assert np.median(audio) == pytest.approx(0.25, abs=1e-3)


@pytest.mark.parametrize("n_channels", [1, 2, 3, 6, 7, 8, 16])
def test_downmix_gives_the_mean_of_the_channels_to_the_bit(n_channels, rng):
    """The mono mix adds up to 7 channels column by column (5x faster than ``mean(axis=1)`` on a long
    track): the same additions in the same order, so every stimulus, target and session is unchanged; from
    8 on numpy sums otherwise (7.1 audio), and its mean is taken."""
    from eegmusic.stream.stimulus import downmix

    scale = rng.choice(np.float32([1e-4, 1.0, 1e3]), size=(50_001, n_channels))
    frames = (rng.standard_normal((50_001, n_channels)) * scale).astype(np.float32)
    mono = downmix(frames)
    assert mono.dtype == np.float32 and mono.shape == (50_001,)
    assert np.array_equal(mono, frames.mean(axis=1))


def test_eeg_values_beyond_a_physical_bound_are_refused_like_nan(tmp_path, rng, capsys):
    """E4 at 1e30 µV for 2 s passed ``info`` ("problems: none"); train then exported standardize.std
    1.5e29 and evaluate printed an MSE of 3.6e38."""
    from eegmusic.stream.cli import main
    from eegmusic.stream.spec import MAX_ABS_UV

    folder = tmp_path / "nmedt"
    data = _eeg(rng)
    data[3, 10:20, 1] = 1e30
    data[5, 30, 0] = -2 * MAX_ABS_UV
    data[6, 31, 0] = MAX_ABS_UV   # at the bound: a measurement
    path = _write_v5(folder, 21, {"data21": data, "fs": 125.0})
    words = (f"{path}: data21 holds 11 values beyond ±{MAX_ABS_UV:g} µV (up to 1e+30), no EEG measurement; "
             "fix the file's scaling, or set them to NaN and impute them before use")
    with pytest.raises(DataFormatError) as info:
        NMEDTFolder(folder).load_song(21)
    assert str(info.value) == words
    _, problems = describe_folder(folder)
    assert words in problems, problems
    assert main(["info", str(folder)]) == 1
    assert "problems: none" not in capsys.readouterr().out
