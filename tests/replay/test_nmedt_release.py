"""A folder as the real NMED-T release leaves it: its other files, its raw recordings, title-named stimuli.

The release (Losorelli et al. 2017) ships ``songNN_Imputed.mat`` beside ``behavioralRatings.mat``,
``participantInfo.mat``, ``TapIt.zip`` … and per-participant raw recordings ``PP_R_raw.mat`` (``X``,
``DIN_1``, ``fs``); it ships no audio, so users name their copies. Each case is a small fabricated folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import soundfile
from eegmusic.replay.nmedt import NMEDTFolder, describe_folder
from eegmusic.replay.nmedt_songs import song_by_title
from eegmusic.stream.errors import DataFormatError

N_TIMES = 250   # 2 s at 125 Hz
AUDIO_RATE = 8000


def _song(folder: Path, rng, song_id: int = 21) -> None:
    """A valid ``songNN_Imputed.mat``: 125 channels × 2 s × 2 participants."""
    folder.mkdir(parents=True, exist_ok=True)
    subs = np.array(["P01", "P02"], dtype=object).reshape(1, -1)
    scipy.io.savemat(folder / f"song{song_id}_Imputed.mat", {
        f"data{song_id}": rng.standard_normal((125, N_TIMES, 2)) * 10.0, "fs": 125.0, f"subs{song_id}": subs})


def _audio(path: Path, seconds: float = N_TIMES / 125) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.full(int(seconds * AUDIO_RATE), 0.1, dtype=np.float32), AUDIO_RATE)


def _release_raw(path: Path, rng) -> None:
    """A raw recording in the release's layout: X (129 × time at 1 kHz, row 129 zeros), DIN_1, fs."""
    x = rng.standard_normal((129, 2000)) * 20.0
    x[128] = 0.0
    scipy.io.savemat(path, {"X": x, "DIN_1": np.array([[21.0, 1000.0]]), "fs": 1000.0})


def test_release_files_are_listed_not_reported_as_problems(tmp_path, rng, capsys):
    _song(tmp_path, rng)
    _audio(tmp_path / "stimuli" / "song21.wav")
    for name in ("behavioralRatings.mat", "participantInfo.mat", "TapIt.mat"):
        scipy.io.savemat(tmp_path / name, {"v": np.ones((2, 2))})
    for name in ("TapIt.zip", "Code.zip", "NMED-T_README.pdf"):
        (tmp_path / name).write_bytes(b"not read")
    for name in ("02_1_raw.mat", "13_2_raw.mat"):
        _release_raw(tmp_path / name, rng)
    lines, problems = describe_folder(tmp_path)
    assert problems == []
    assert ("release files not used: Code.zip, NMED-T_README.pdf, TapIt.mat, TapIt.zip, "
            "behavioralRatings.mat, participantInfo.mat") in lines
    assert any(line.startswith("release raw recordings not read")
               and line.endswith("02_1_raw.mat, 13_2_raw.mat") for line in lines)
    from eegmusic.stream.cli import main

    assert main(["info", str(tmp_path)]) == 0
    assert "problems: none" in capsys.readouterr().out

    scipy.io.savemat(tmp_path / "other.mat", {"v": 1.0})   # a genuinely unknown .mat stays a problem
    _, problems = describe_folder(tmp_path)
    assert problems == [f"{tmp_path / 'other.mat'}: not an NMED-T file name; expected songNN_Imputed.mat "
                        "(NN = 21..30)"]


def test_folder_of_release_raw_recordings_says_they_are_not_read(tmp_path, rng):
    _release_raw(tmp_path / "02_1_raw.mat", rng)
    with pytest.raises(DataFormatError) as caught:
        NMEDTFolder(tmp_path)
    message = str(caught.value)
    assert "NMED-T raw recordings (02_1_raw.mat" in message and "not read" in message
    assert "songNN_Imputed.mat" in message and "\n" not in message


def test_release_raw_recording_renamed_songNN_raw_is_named_as_such(tmp_path, rng):
    _release_raw(tmp_path / "song21_raw.mat", rng)
    expected = "it holds X, an NMED-T raw recording of one participant (PP_R_raw.mat), which is not read"
    _, problems = describe_folder(tmp_path)   # info peeks at the file
    assert any(expected in p and "songNN_Imputed.mat" in p for p in problems), problems
    with pytest.raises(DataFormatError, match="it holds X"):   # a full read says the same
        NMEDTFolder(tmp_path).load_song(21, raw=True)


def test_raw_only_song_refusal_speaks_to_the_command_line(tmp_path, rng):
    raw = rng.standard_normal((129, 2000, 2))   # the simulator's raw layout
    scipy.io.savemat(tmp_path / "song21_raw.mat", {"data21": raw, "fs": 1000.0})
    with pytest.raises(DataFormatError) as caught:
        NMEDTFolder(tmp_path).load_song(21)
    message = str(caught.value)
    assert "raw=True" not in message and "pass one of those" not in message
    assert "only raw data (song21_raw.mat, the layout eegmusic simulate --raw writes)" in message
    assert message.endswith("add song21_Imputed.mat (125 channels at 125 Hz)")


def test_raw_array_in_imputed_file_no_longer_points_to_songNN_raw(tmp_path, rng):
    scipy.io.savemat(tmp_path / "song21_Imputed.mat", {"data21": rng.standard_normal((129, 400, 2)),
                                                        "fs": 1000.0})
    with pytest.raises(DataFormatError, match="looks like raw data") as caught:
        NMEDTFolder(tmp_path).load_song(21)
    assert "songNN_raw.mat" not in str(caught.value)
    assert "use the NMED-T release's songNN_Imputed.mat" in str(caught.value)


@pytest.mark.parametrize(("stem", "song_id"), [
    ("FirstFires", 21), ("21_FirstFires", 21), ("21 First Fires", 21), ("first-fires", 21), ("Canopée", 26),
    ("26_CANOPEE", 26), ("until the sun needs to rise", 28), ("The Last Thing You Should Do!", 30),
    ("21-First Fires", 21), ("21. First Fires", 21),
    ("22_FirstFires", None), ("song21", None), ("First Fires live", None)])
def test_song_by_title_normalises_case_spaces_punctuation_accents_and_number(stem, song_id):
    assert song_by_title(stem) == song_id


def test_title_named_stimulus_is_not_read_but_its_rename_is_named(tmp_path, rng):
    _song(tmp_path, rng, 21)
    _song(tmp_path, rng, 22)
    _audio(tmp_path / "stimuli" / "FirstFires.WAV")
    _audio(tmp_path / "stimuli" / "22_Oino.flac")
    _audio(tmp_path / "stimuli" / "notes.wav")
    folder = NMEDTFolder(tmp_path)
    assert folder.stimulus_path(21) is None   # one naming rule: the title-named file is not taken
    lines, problems = describe_folder(tmp_path)
    stimuli = tmp_path / "stimuli"
    assert problems == [
        f"{stimuli / 'FirstFires.WAV'}: named by song 21's title, so not read; rename it song21.wav",
        f"{stimuli / '22_Oino.flac'}: named by song 22's title, so not read; rename it song22.flac",
    ]
    assert any(line.startswith("stimuli/notes.wav: no song matched by name; not used") for line in lines)
    with pytest.raises(DataFormatError) as caught:
        folder.load_stimulus(21)
    assert str(caught.value) == problems[0]   # the refusal names the same rename


@pytest.mark.parametrize(("seconds", "expected"), [
    (10.0, "a longer file is cut to its first 2.0 s, so trim the intro if your version's differs"),
    (0.5, "check that it is the right audio: it must start where the EEG starts"),
])
def test_length_mismatch_says_what_to_do(tmp_path, rng, seconds, expected):
    _song(tmp_path, rng)
    _audio(tmp_path / "stimuli" / "song21.wav", seconds)
    _, problems = describe_folder(tmp_path)
    assert len(problems) == 1 and f"lasts {seconds:.1f} s but the EEG of song 21 lasts 2.0 s" in problems[0]
    assert expected in problems[0] and "where the EEG starts (the song's first sample)" in problems[0]


def test_train_refusal_for_a_title_named_stimulus_names_the_rename(tmp_path, rng, cli):
    _song(tmp_path / "data", rng, 21)
    _audio(tmp_path / "data" / "stimuli" / "First Fires.WAV")
    status, _, err = cli("train", "--data", tmp_path / "data", "--arch", "linear", "--out", tmp_path / "run",
                         "--no-progress")
    assert status == 2
    assert err.strip().endswith(f"{tmp_path / 'data' / 'stimuli' / 'First Fires.WAV'} is named by the song's "
                                "title; rename it song21.wav"), err
    assert not (tmp_path / "run").exists()
