"""The dataset interface: XDF calibration sessions and recordings MNE reads (FIF, stim events, BIDS).

Files are written with the real writers (XDFWriter, MNE, mne-bids with pybv) and read back through
:func:`replay.dataset.open_dataset` and the training windows.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
from eegmusic.replay.calibration_markers import encode
from eegmusic.replay.dataset import open_dataset
from eegmusic.replay.xdf_writer import XDFWriter
from eegmusic.stream.errors import DataFormatError

LABELS = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
SFREQ = 250.0


@pytest.fixture
def song(tmp_path) -> Path:
    """Five seconds of noise at 44.1 kHz."""
    path = tmp_path / "song1.wav"
    soundfile.write(path, 0.1 * np.random.default_rng(0).standard_normal(5 * 44100).astype("f4"), 44100)
    return path


def _xdf(path, eeg, *, markers=(), with_eeg=True, labels=LABELS):
    with XDFWriter(path) as writer:
        if with_eeg:
            stream = writer.add_stream(name="cap", stype="EEG", channel_format="float32", nominal_srate=SFREQ,
                                       labels=labels)
            writer.write_samples(stream, 100.0 + np.arange(eeg.shape[1]) / SFREQ, eeg.T)
        if markers:
            marker = writer.add_stream(name="cap-calibration", stype="Markers", channel_format="string",
                                       nominal_srate=0.0, labels=["marker"])
            writer.write_samples(marker, [m[0] for m in markers], [m[1] for m in markers])
    return path


def _start(song, t, **fields):
    return (t, encode("track_start", track=fields.pop("track", 0), file=song.name, path=str(song),
                      position_s=0.0, duration_s=5.0, **fields))


def test_xdf_session_aligns_eeg_and_audio(tmp_path, song, rng):
    eeg = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[_start(song, 101.0), (106.0, encode("track_end", track=0,
                                                                                         position_s=5.0))])
    session = open_dataset(path)
    assert session.song_ids == [1] and session.subject == "s"
    recording = session.load_song(1)
    np.testing.assert_array_equal(recording.data[:, :, 0], eeg[:, 250:1500])  # 101 s .. 106 s
    audio = session.load_stimulus(1)
    from eegmusic.replay.nmedt import read_audio

    np.testing.assert_array_equal(audio, read_audio(song))  # heard from its start at EEG sample 0


@pytest.mark.parametrize("value", [np.nan, 1e30])
def test_a_session_holding_no_measurement_is_refused_naming_the_play(tmp_path, song, rng, value):
    """NaN and finite values beyond ``MAX_ABS_UV`` (a unit error) are refused alike: 1e30 µV passed the
    XDF/FIF/EDF reader, whose check was ``isfinite`` only, into training's standardisation."""
    from eegmusic.stream.errors import DataFormatError

    eeg = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
    eeg[3, 400:500] = value
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[_start(song, 101.0), (106.0, encode("track_end", track=0,
                                                                                         position_s=5.0))])
    with pytest.raises(DataFormatError, match="^[^\n]*song 1 holds [^\n]*$"):
        open_dataset(path).load_song(1)


def test_xdf_training_windows_resampled_to_the_model_rate(tmp_path, song, rng):
    from eegmusic.offline_training.dataset import WindowDataset

    eeg = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[_start(song, 101.0)])
    windows = WindowDataset(path)
    assert windows.channels == tuple(LABELS) and windows.spec.channels == tuple(LABELS)
    assert windows.eeg([0]).shape == (1, 8, 125) and windows.mel([0]).shape == (1, 128, 44)
    assert len(windows) == 5  # 5 s of play at a 1-s hop


def test_xdf_session_splits_a_play_where_the_audio_clock_jumps(tmp_path, song, rng):
    """The sound device stalled 1.5 s after position 2 s: each steady stretch is aligned on its own."""
    eeg = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
    markers = [_start(song, 101.0), (102.0, encode("position", track=0, position_s=1.0)),
               (103.0, encode("position", track=0, position_s=2.0)),
               (105.5, encode("position", track=0, position_s=3.0)),   # stalled 1.5 s
               (106.5, encode("position", track=0, position_s=4.0)),
               (107.5, encode("track_end", track=0, position_s=5.0))]
    session = open_dataset(_xdf(tmp_path / "s.xdf", eeg, markers=markers))
    assert session.song_ids == [1, 2]
    np.testing.assert_array_equal(session.load_song(1).data[:, :, 0], eeg[:, 250:750])     # 101 .. 103 s
    np.testing.assert_array_equal(session.load_song(2).data[:, :, 0], eeg[:, 1375:1875])   # 105.5 .. 107.5 s
    from eegmusic.replay.nmedt import read_audio

    audio = read_audio(song)
    np.testing.assert_array_equal(session.load_stimulus(1), audio)
    np.testing.assert_array_equal(session.load_stimulus(2), audio[3 * 22050:])  # position 3 s at 105.5 s
    # both pieces hear one piece of music, the second from its 3rd second: the splits hold out by that
    from eegmusic.offline_training.dataset import WindowDataset

    windows = WindowDataset(session.path)
    first, second = (windows.index["song"] == song for song in (1, 2))
    assert set(windows.music["music"]) == {1}
    np.testing.assert_array_equal(windows.music["start"][first], windows.index["start"][first])
    np.testing.assert_array_equal(windows.music["start"][second], windows.index["start"][second] + 375)


def test_info_lists_a_session_stimulus_shorter_than_its_eeg_as_train_refuses_it(tmp_path, rng, capsys):
    """The track's audio cut to 2 s under 5 s of EEG: info said "problems: none" (it read only the header's
    length for its line), and train refused the session. (Found by a fuzzing helper.)"""
    from eegmusic.stream.cli import main

    cut = tmp_path / "cut.wav"
    soundfile.write(cut, 0.1 * rng.standard_normal(2 * 44100).astype("f4"), 44100)
    eeg = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[_start(cut, 101.0),
                                                  (106.0, encode("track_end", track=0, position_s=5.0))])
    _, problems = open_dataset(path).describe()
    assert problems == [f"{path}: the stimulus of song 1 (cut.wav from 0.00 s) lasts 2.0 s but its EEG "
                        "5.0 s, which train refuses unless --allow-short-stimulus; put the whole track there"]
    assert main(["info", str(path)]) == 1
    capsys.readouterr()


@pytest.mark.parametrize("case, message", [
    ("no_eeg", "no EEG stream \\(type EEG"),
    ("no_markers", "no calibration markers"),
    ("missing_audio", "names audio 'gone.wav', found in none"),
    # a link to nothing in the session's audio folder was reported as plainly missing
    ("dangling_audio", "names audio 'gone.wav', found in none of .*s_audio/gone.wav is unreadable: it is a "
                       "symbolic link to .*nowhere.wav, which does not exist\\); put the file in"),
])
def test_bad_xdf_sessions(tmp_path, song, rng, case, message):
    eeg = rng.standard_normal((8, 3000)).astype(np.float32)
    if case == "no_eeg":
        path = _xdf(tmp_path / "s.xdf", eeg, markers=[_start(song, 101.0)], with_eeg=False)
    elif case == "no_markers":
        path = _xdf(tmp_path / "s.xdf", eeg)
    else:
        if case == "dangling_audio":
            (tmp_path / "s_audio").mkdir()
            (tmp_path / "s_audio" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
        gone = tmp_path / "gone.wav"
        path = _xdf(tmp_path / "s.xdf", eeg, markers=[(101.0, encode("track_start", track=0, file="gone.wav",
                                                                     path=str(gone), position_s=0.0))])
    before = path.read_bytes()
    with pytest.raises(DataFormatError, match=message):
        open_dataset(path)
    assert path.read_bytes() == before


def test_a_folder_in_place_of_the_sessions_copy_of_a_track_is_said_as_the_markers_path_is_read(
        tmp_path, song, rng, caplog):
    """The session's own copy comes first; something else than a file there was passed over unsaid."""
    eeg = rng.standard_normal((8, 3000)).astype(np.float32)
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[_start(song, 101.0)])
    (tmp_path / "s_audio" / song.name).mkdir(parents=True)
    session = open_dataset(path)
    assert session.plays[1].audio_path == song
    folder = tmp_path / "s_audio" / song.name
    assert f"track 0's audio: {folder} is a folder; read {song} instead" in caplog.text


@pytest.mark.parametrize("field, value", [
    ("track", "one"), ("track", None), ("track", 1e400), ("track", -1), ("track", True),
    ("position_s", "zero"), ("position_s", float("nan")), ("duration_s", "long"),
    ("output_latency_s", [1]),
])
def test_a_malformed_track_start_is_one_line_naming_it(tmp_path, song, rng, field, value, capsys):
    """A publisher's bad field raised ValueError, TypeError or OverflowError with a traceback from
    ``info`` and ``replay``; a NaN position was taken, and ``info`` said "problems: none"."""
    from eegmusic.stream.cli import main

    eeg = rng.standard_normal((8, 3000)).astype(np.float32)
    text = json.dumps({"event": "track_start", "track": 0, "file": song.name, "path": str(song),
                       "position_s": 0.0, "duration_s": 5.0, field: value})
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[(101.0, text)])
    with pytest.raises(DataFormatError, match=f"no readable track_start marker: 1 malformed calibration "
                                              f"marker \\({field} .* is not a"):
        open_dataset(path)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "fix the program that published" in err, err


def test_a_malformed_position_is_skipped_and_said(tmp_path, song, rng, capsys):
    """The play stands on its good markers; ``info`` lists the skipped one among its problems."""
    from eegmusic.stream.cli import main

    eeg = rng.standard_normal((8, 3000)).astype(np.float32)
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[
        _start(song, 101.0), (102.0, encode("position", track=0, position_s=None)),
        (106.0, encode("track_end", track=0, position_s=5.0))])
    session = open_dataset(path)
    assert session.song_ids == [1] and session.load_song(1).data.shape[1] == 1250   # 101 .. 106 s
    assert main(["info", str(path)]) == 1
    out = capsys.readouterr().out
    assert "problems (1)" in out and "skipped 1 malformed calibration marker (position_s None" in out, out


@pytest.mark.parametrize("event", ["track_start", "position"])
def test_a_track_marker_without_its_play_count_is_skipped_and_said(tmp_path, song, rng, event, capsys):
    """A track_start with no ``track`` field dropped its whole play without a word, from info and train
    alike (``"track": null`` was said as malformed); a session's own markers carry no track and pass."""
    from eegmusic.stream.cli import main

    eeg = rng.standard_normal((8, int(14 * SFREQ))).astype(np.float32)
    start, second = _start(song, 101.0), _start(song, 107.0, track=1)
    if event == "track_start":   # the first play has nothing else: it is gone, and said
        broken = json.loads(start[1])
        markers, plays = [(101.0, broken), second], [1]
    else:                        # the play stands on its good markers
        broken = json.loads(encode("position", track=0, position_s=1.0))
        markers, plays = [start, (102.0, broken), second], [1, 2]
    del broken["track"]
    markers = [(stamp, json.dumps(text) if isinstance(text, dict) else text) for stamp, text in markers]
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[(100.5, encode("session_start", stream="cap")), *markers,
                                                  (112.5, encode("session_end"))])
    assert open_dataset(path).song_ids == plays
    assert main(["info", str(path)]) == 1
    out = capsys.readouterr().out
    assert "problems (1)" in out and "skipped 1 malformed calibration marker (no track field" in out, out


def test_info_names_audio_read_from_outside_the_session_in_full(tmp_path, song, rng, capsys):
    """A session without its audio folder (LabRecorder's) is read from the path its markers name, as
    documented; info showed only the file's name, as if it were one of the session's own files."""
    from eegmusic.stream.cli import main

    folder = tmp_path / "session"
    folder.mkdir()
    eeg = rng.standard_normal((8, 3000)).astype(np.float32)
    path = _xdf(folder / "s.xdf", eeg, markers=[_start(song, 101.0)])
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"from 0.00 s of {song} (read from outside {folder})," in out, out
    shutil.copy(song, folder / song.name)   # beside the file: one of its own, named as before
    assert main(["info", str(path)]) == 0
    assert f"from 0.00 s of {song.name}, " in capsys.readouterr().out


def test_eeg_whose_samples_share_one_timestamp_is_refused_in_one_line(tmp_path, song, rng, capsys):
    """pyxdf divides by the stream's time span: numpy's divide-by-zero warning came out above the
    refusal."""
    from eegmusic.stream.cli import main

    eeg = rng.standard_normal((8, 3000)).astype(np.float32)
    path = tmp_path / "s.xdf"
    with XDFWriter(path) as writer:
        stream = writer.add_stream(name="cap", stype="EEG", channel_format="float32", nominal_srate=SFREQ,
                                   labels=LABELS)
        writer.write_samples(stream, np.full(eeg.shape[1], 100.0), eeg.T)
        marker = writer.add_stream(name="cap-calibration", stype="Markers", channel_format="string",
                                   nominal_srate=0.0, labels=["marker"])
        writer.write_samples(marker, [101.0], [_start(song, 101.0)[1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no track play has 1 s of EEG" in err, err


def _cut_session(path, song, eeg) -> Path:
    """A session whose markers come first and whose EEG is two chunks, cut inside the second chunk."""
    with XDFWriter(path) as writer:
        marker = writer.add_stream(name="cap-calibration", stype="Markers", channel_format="string",
                                   nominal_srate=0.0, labels=["marker"])
        writer.write_samples(marker, [101.0], [_start(song, 101.0)[1]])
        stream = writer.add_stream(name="cap", stype="EEG", channel_format="float32", nominal_srate=SFREQ,
                                   labels=LABELS)
        half = eeg.shape[1] // 2
        stamps = 100.0 + np.arange(eeg.shape[1]) / SFREQ
        writer.write_samples(stream, stamps[:half], eeg[:, :half].T)
        size = path.stat().st_size
        writer.write_samples(stream, stamps[half:], eeg[:, half:].T)
    path.write_bytes(path.read_bytes()[: size + 1000])   # inside the second EEG chunk
    return path


def test_a_damaged_xdf_session_is_a_problem_info_lists(tmp_path, song, rng, capsys):
    """A session cut short read as "problems: none", exit 0: the damage was only a warning in the log;
    a folder of sessions holding it the same."""
    from eegmusic.stream.cli import main

    eeg = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
    path = _cut_session(tmp_path / "s.xdf", song, eeg)
    session = open_dataset(path)
    assert session.song_ids == [1]   # what the cut left: 5 s of EEG from 101 s
    _, problems = session.describe()
    assert len(problems) == 1 and re.fullmatch(
        r".*s\.xdf: damaged XDF file \(pyxdf: .*\): the file ends at byte [\d,]+, partway through a "
        r"[\d,]+-byte chunk that starts at byte [\d,]+; read what could be read; copy it again "
        r"from where it was recorded, or record the session again", problems[0]), problems
    assert main(["info", str(path)]) == 1
    out = capsys.readouterr().out
    assert "problems (1)" in out and "damaged XDF file" in out and "problems: none" not in out, out
    whole = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
    _xdf(tmp_path / "t.xdf", whole, markers=[_start(song, 101.0)])
    folder_problems = open_dataset(tmp_path).describe()[1]
    assert folder_problems == problems, folder_problems
    assert main(["info", str(tmp_path)]) == 1


def _fif(tmp_path, *, annotations=True, stim=True, sidecar=None) -> Path:
    import mne

    rng = np.random.default_rng(1)
    names = LABELS + (["STI"] if stim else [])
    info = mne.create_info(names, SFREQ, ["eeg"] * 8 + (["stim"] if stim else []))
    data = rng.standard_normal((len(names), int(20 * SFREQ))) * 1e-5
    if stim:
        data[8] = 0.0
        data[8, [500, 3000]] = 5
    raw = mne.io.RawArray(data, info, verbose="error")
    if annotations:
        raw.set_annotations(mne.Annotations([2.0, 12.0], [0.0, 0.0], ["song1", "song1"]))
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")
    if sidecar is not None:
        (tmp_path / "rec_raw.eegmusic.json").write_text(json.dumps(sidecar))
    return path


def test_info_lists_a_channel_label_twice_once_as_trains_channel_map_refuses_it(tmp_path, song, rng, capsys):
    """Labels that differ only in case are one electrode to train's channel map, which refused the session;
    info said "problems: none"."""
    from eegmusic.stream.channels import channel_map
    from eegmusic.stream.cli import main
    from eegmusic.stream.errors import StreamError

    labels = ["Fp1", "fp1", *LABELS[2:]]
    eeg = rng.standard_normal((8, int(14 * SFREQ))).astype(np.float32)
    path = _xdf(tmp_path / "s.xdf", eeg, labels=labels, markers=[_start(song, 101.0), _start(song, 107.0)])
    _, problems = open_dataset(path).describe()
    twice = "channel label 'fp1' twice (channels 1 and 2)"
    assert problems == [f"{path}: the recording of participant s has {twice}; fix the amplifier's channel "
                        "labels"]   # once for the two plays
    with pytest.raises(StreamError, match=re.escape(twice)):
        channel_map(labels)
    assert main(["info", str(path)]) == 1 and twice in capsys.readouterr().out


@pytest.mark.parametrize(("value", "words"), [
    (np.nan, "song1.wav: audio holds 220500 NaN/Inf samples; export the audio again"),
    (1e30, "song1.wav: audio peaks at 1e+30 times full scale (more than 1000)"),
])
def test_info_lists_the_damaged_samples_of_a_recordings_audio_that_train_refuses(value, words, tmp_path,
                                                                                 capsys):
    """An MNE recording's sidecar audio (and a calibration session's) was only looked for: all NaN, or
    integers stored as float, it passed as "problems: none" while train refused it at its first read."""
    from eegmusic.stream.cli import main

    path = _fif(tmp_path, sidecar={"stimuli": {"song1": "song1.wav"}})
    stereo = np.full((5 * 44100, 2), value, np.float32)
    soundfile.write(tmp_path / "song1.wav", stereo, 44100, subtype="FLOAT")
    dataset = open_dataset(path)
    _, problems = dataset.describe()
    assert len(problems) == 1 and words in problems[0], problems   # said once for its two plays
    with pytest.raises(DataFormatError) as refused:   # what train's reader says, word for word
        dataset.load_stimulus(1)
    assert str(refused.value) == problems[0]
    assert main(["info", str(path)]) == 1 and words in capsys.readouterr().out


def test_a_fif_cut_short_is_said_damaged(tmp_path, song, capsys):
    """MNE reads a FIF cut short up to the cut: it was read silently ("problems: none"), or its
    stimuli past the cut were blamed on the annotations."""
    from eegmusic.stream.cli import main

    path = _fif(tmp_path, sidecar={"stimuli": {"song1": "song1.wav"}})
    whole = path.read_bytes()
    path.write_bytes(whole[: int(len(whole) * 0.9)])   # both plays (2 s and 12 s) are still in it
    dataset = open_dataset(path)
    _, problems = dataset.describe()
    assert len(problems) == 1 and re.search(r"rec_raw\.fif: damaged, MNE reads 1\d\.\d s of it \(Invalid tag",
                                            problems[0]), problems
    assert main(["info", str(path)]) == 1 and "export the recording again" in capsys.readouterr().out
    path.write_bytes(whole[: int(len(whole) * 0.6)])   # the second play's onset is where it ends
    with pytest.raises(DataFormatError, match=r"damaged, MNE reads 12\.0 s of it .*\(stimulus 'song1' at "
                                              r"12\.0 s is past what it holds"):
        open_dataset(path)
    path.write_bytes(whole[: int(len(whole) * 0.2)])   # the cut inside the first play's data: a ValueError
    dataset = open_dataset(path)
    with pytest.raises(DataFormatError, match=r"damaged, MNE reads 4\.0 s .* \(reading song 1: ValueError"):
        dataset.load_song(1)


@pytest.mark.parametrize("stim", [False, True])
def test_a_fif_cut_before_its_annotations_is_said_damaged(tmp_path, song, stim):
    """A FIF cut in its first second loses its annotations (and its stim events past the cut): that was
    blamed on the recording ("no annotations and no stim-channel events", "no annotation or event
    matches the sidecar's stimuli") though MNE had said it was damaged."""
    path = _fif(tmp_path, stim=stim, sidecar={"stimuli": {"song1": "song1.wav", "5": "song1.wav"}})
    path.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(DataFormatError, match=r"rec_raw\.fif: damaged, MNE reads [\d.]+ s of it \(Invalid "
                                              r"tag.*\); export the recording again \(no stimulus onset in "
                                              r"what it holds\)$"):
        open_dataset(path)


def _edf(path: Path, n_records: int, *, keep_bytes: int | None = None) -> Path:
    """An EDF+ file: 8 EEG channels at 250 Hz in 1-s records, annotations 'song1' at 2 s and 12 s;
    ``keep_bytes`` cuts it there (an interrupted copy)."""
    n = len(LABELS) + 1
    names = [*LABELS, "EDF Annotations"]

    def field(values, width):
        return b"".join(str(v).encode().ljust(width)[:width] for v in values)

    head = (b"0".ljust(8) + b"X".ljust(80) + b"X".ljust(80) + b"01.01.20" + b"00.00.00"
            + str(256 * (n + 1)).encode().ljust(8) + b"EDF+C".ljust(44) + str(n_records).encode().ljust(8)
            + b"1".ljust(8) + str(n).encode().ljust(4) + field(names, 16) + field([""] * n, 80)
            + field(["uV"] * 8 + [""], 8) + field([-3200] * 8 + [-1], 8) + field([3200] * 8 + [1], 8)
            + field([-32768] * n, 8) + field([32767] * n, 8) + field([""] * n, 80)
            + field([250] * 8 + [60], 8) + field([""] * n, 32))
    body = bytearray(head)
    rng = np.random.default_rng(0)
    for record in range(n_records):
        body += (rng.standard_normal(250 * 8) * 1000).astype("<i2").tobytes()
        tal = f"+{record}\x14\x14\x00".encode() + (b"+2\x14song1\x14\x00+12\x14song1\x14\x00"
                                                  if record == 0 else b"")
        body += tal.ljust(120, b"\x00")
    path.write_bytes(bytes(body[:keep_bytes]))
    (path.parent / f"{path.stem}.eegmusic.json").write_text(json.dumps({"stimuli": {"song1": "song1.wav"}}))
    return path


def test_an_edf_cut_short_is_said_damaged(tmp_path, song, capsys):
    """MNE reads an EDF cut short up to the cut, saying only that its header's record count does not match
    its size: it read as "problems: none", exit 0."""
    from eegmusic.stream.cli import main

    whole = _edf(tmp_path / "whole.edf", 20)
    assert open_dataset(whole).describe()[1] == []
    cut = _edf(tmp_path / "cut.edf", 20, keep_bytes=(len(whole.read_bytes()) * 15) // 20)
    dataset = open_dataset(cut)
    _, problems = dataset.describe()
    assert len(problems) == 1 and re.fullmatch(r".*cut\.edf: damaged, MNE reads 14\.0 s of it \(Number of "
                                               r"records from the header does not match the file size.*\); "
                                               r"export the recording again", problems[0]), problems
    assert main(["info", str(cut)]) == 1 and "export the recording again" in capsys.readouterr().out
    # a whole recording whose header was never finalised (-1 records, which the format allows): MNE says the
    # same words of it, and nothing is lost
    unfinalised = tmp_path / "unfinalised.edf"
    data = bytearray(whole.read_bytes())
    data[236:244] = b"-1      "
    unfinalised.write_bytes(bytes(data))
    shutil.copy(whole.with_name("whole.eegmusic.json"), tmp_path / "unfinalised.eegmusic.json")
    assert open_dataset(unfinalised).describe()[1] == []


def _edf_with_status(path: Path, song: Path, seconds: int = 20) -> Path:
    """A plain EDF file: 8 EEG channels and a 'Status' trigger channel at 250 Hz in 1-s records, trigger
    code 21 at 1 s, and a sidecar naming ``song`` for code 21."""
    names = [*LABELS, "Status"]
    n = len(names)

    def field(values, width):
        return b"".join(str(v).encode().ljust(width)[:width] for v in values)

    head = (b"0".ljust(8) + b"X".ljust(80) + b"X".ljust(80) + b"01.01.20" + b"00.00.00"
            + str(256 * (n + 1)).encode().ljust(8) + b"".ljust(44) + str(seconds).encode().ljust(8)
            + b"1".ljust(8) + str(n).encode().ljust(4) + field(names, 16) + field([""] * n, 80)
            + field(["uV"] * n, 8) + field([-32768] * n, 8) + field([32767] * n, 8)
            + field([-32768] * n, 8) + field([32767] * n, 8) + field([""] * n, 80)
            + field([250] * n, 8) + field([""] * n, 32))
    samples = (np.random.default_rng(1).standard_normal((seconds, n, 250)) * 30).astype("<i2")
    samples[:, -1] = 0
    samples[1, -1, :5] = 21
    path.write_bytes(head + samples.tobytes())
    shutil.copy(song, path.parent / "song21.wav")
    (path.parent / f"{path.stem}.eegmusic.json").write_text(json.dumps({"stimuli": {"21": "song21.wav"}}))
    return path


@pytest.mark.parametrize("duration", [b"nan", b"1e308"])
def test_an_edf_whose_record_duration_gives_no_rate_is_one_line(tmp_path, song, capsys, duration):
    """A record duration of NaN in the header (bytes 244-251) was a ValueError traceback from info and
    train, once MNE had read the header; 1e308 raw numpy overflow warnings, then "damaged … (No data in
    this range)". (Found by a fuzzing helper.)"""
    from eegmusic.stream.cli import main

    path = _edf_with_status(tmp_path / "rec.edf", song)
    assert main(["info", str(path)]) == 0, capsys.readouterr()
    capsys.readouterr()
    data = bytearray(path.read_bytes())
    data[244:252] = duration.ljust(8)
    path.write_bytes(bytes(data))
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its header gives a sampling rate of" in err, err
    assert "no EEG recording has (eegmusic reads 1-625000 Hz): the header is damaged" in err


def test_fif_with_annotations_and_sidecar(tmp_path, song):
    import mne

    path = _fif(tmp_path, sidecar={"stimuli": {"song1": "song1.wav"}, "subject": "P7"})
    dataset = open_dataset(path)
    assert dataset.song_ids == [1, 2] and dataset.plays[2].subject == "P7"
    recording = dataset.load_song(2)
    raw = mne.io.read_raw(path, verbose="error")
    expected = raw.get_data(picks="eeg", start=3000, stop=3000 + int(5 * SFREQ), units="uV")
    np.testing.assert_allclose(recording.data[:, :, 0], expected)
    assert recording.channels == tuple(LABELS) and recording.sfreq == SFREQ


@pytest.mark.parametrize("delay, words", [(0.02, "from -0.02 s of song1.wav"),
                                          (0.0, "from 0.00 s of song1.wav")])
def test_info_shows_a_short_audio_delay_and_no_negative_zero(tmp_path, song, delay, words, capsys):
    """A sound card's delay of 20 ms read "from -0.0 s", and none at all could read "-0.0" too."""
    from eegmusic.stream.cli import main

    path = _fif(tmp_path, sidecar={"stimuli": {"song1": "song1.wav"}, "audio_delay_s": delay})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert words in out and "-0.00 s" not in out


def test_fif_stim_events_when_there_are_no_annotations(tmp_path, song):
    path = _fif(tmp_path, annotations=False, sidecar={"stimuli": {"5": "song1.wav"}})
    dataset = open_dataset(path)
    assert [dataset.plays[k].source[1] for k in dataset.song_ids] == [2.0, 12.0]


@pytest.mark.parametrize("sidecar, message", [
    (None, "no sidecar rec_raw.eegmusic.json"),
    ({"stimuli": {"song1": "missing.wav"}}, "names audio .*missing.wav, which does not exist"),
    ({"stimuli": {"other": "song1.wav"}}, "no annotation or event matches"),
])
def test_bad_mne_recordings(tmp_path, song, sidecar, message):
    path = _fif(tmp_path, sidecar=sidecar)
    with pytest.raises(DataFormatError, match=message):
        open_dataset(path)


def test_mne_recording_without_events_is_refused(tmp_path, song):
    path = _fif(tmp_path, annotations=False, stim=False, sidecar={"stimuli": {"song1": "song1.wav"}})
    with pytest.raises(DataFormatError, match="no annotations and no stim-channel events"):
        open_dataset(path)


def _bids(tmp_path, song, *, positions=False) -> Path:
    """A BIDS root of one BrainVision recording, with measured electrode positions (``*_electrodes.tsv``)
    if ``positions``."""
    pytest.importorskip("pybv")
    import mne
    import mne_bids

    raw = mne.io.read_raw(_fif(tmp_path / ".", sidecar=None), verbose="error")
    if positions:
        raw.set_montage("standard_1020", verbose="error")
    root = tmp_path / "bids"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(raw, mne_bids.BIDSPath(subject="01", task="music", root=root, datatype="eeg"),
                                format="BrainVision", allow_preload=True, verbose="error")
    (root / "stimuli").mkdir()
    (root / "stimuli" / "song1.wav").write_bytes(song.read_bytes())
    (root / "eegmusic.json").write_text(json.dumps({"stimuli": {"song1": "stimuli/song1.wav"}}))
    return root


def test_bids_root(tmp_path, song):
    dataset = open_dataset(_bids(tmp_path, song))
    assert dataset.kind == "BIDS root" and dataset.song_ids == [1, 2]
    assert dataset.plays[1].subject == "sub-01"
    assert dataset.load_song(1).data.shape == (8, int(5 * SFREQ), 1)


def test_a_bids_stimulus_that_began_before_the_recording_is_refused_not_misaligned(tmp_path, song):
    """BIDS allows a negative onset; MNE cuts the annotation to start at the first sample, and the play's
    EEG was paired with its audio from the start while the sound was seconds in: "4.0 s from 0.00 s of
    s21.wav", problems: none."""
    root = _bids(tmp_path, song)
    events, = root.glob("sub-01/eeg/*_events.tsv")
    lines = events.read_text().splitlines()
    onset = lines[0].split("\t").index("onset")
    row = lines[1].split("\t")
    row[onset] = "-2.5"
    events.write_text("\n".join([lines[0], "\t".join(row), *lines[2:]]) + "\n")
    with pytest.raises(DataFormatError, match=re.escape(
            f"{events}: stimulus 'song1' has onset -2.5 s, before the recording's first sample, and eegmusic "
            "pairs a play's EEG with its audio from the onset; cut the audio to begin 2.5 s in")):
        open_dataset(root)


@pytest.mark.parametrize("damage", ["a mistyped name", "n/a", "1e308"])
def test_electrodes_that_leave_a_channel_out_are_a_problem_naming_the_file(tmp_path, song, damage, caplog):
    """One mistyped row put the standard montage's positions in the model in place of every measured one,
    with "problems: none" from info and not a word from train. A position of 1e308 m was taken as measured,
    with numpy's overflow warning from the check."""
    root = _bids(tmp_path, song, positions=True)
    table, = root.glob("sub-01/eeg/*_electrodes.tsv")
    assert open_dataset(root).load_song(1).positions is not None and not open_dataset(root).read_problems()
    rows = table.read_text().splitlines()
    at = next(i for i, row in enumerate(rows) if row.startswith("C3\t"))
    value = {"n/a": "n/a", "1e308": "1e308"}.get(damage)
    rows[at] = "C3x" + rows[at][2:] if value is None else "\t".join(["C3", value, value, value]
                                                                     + rows[at].split("\t")[4:])
    table.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        dataset = open_dataset(root)
        assert dataset.load_song(1).positions is None   # the standard montage's, for every channel
    problem = (f"{table}: no position for C3 (a row whose name matches no channel, n/a, or a position over "
               "1 m from the head's centre), so the standard montage's positions replace the 7 measured "
               "ones; fix those rows")
    assert dataset.read_problems() == [problem] and problem in caplog.text
    assert problem in dataset.describe()[1]


def test_an_electrodes_table_lacking_a_column_is_named_not_the_recording(tmp_path, song):
    """mne-bids' KeyError: 'z' was reported against the intact .vhdr, with "check the file"."""
    root = _bids(tmp_path, song, positions=True)
    table, = root.glob("sub-01/eeg/*_electrodes.tsv")
    cut = ["\t".join(row.split("\t")[:3]) for row in table.read_text().splitlines()]   # name, x, y
    table.write_text("\n".join(cut) + "\n")
    with pytest.raises(DataFormatError) as caught:
        open_dataset(root)
    assert str(caught.value) == (f"{table}: no z column (a BIDS electrodes.tsv needs name, x, y, z, "
                                 "tab-separated); add it")


def test_info_describes_any_dataset(tmp_path, song, rng, capsys):
    from eegmusic.stream.cli import main

    eeg = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
    path = _xdf(tmp_path / "s.xdf", eeg, markers=[_start(song, 101.0)])
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "XDF session" in out and "song 1 'song1.wav'" in out and "problems: none" in out


def test_folder_of_sessions_is_one_dataset_with_a_listener_per_file(tmp_path, song, rng):
    from eegmusic.offline_training.dataset import WindowDataset

    for name in ("S01", "S02"):
        eeg = rng.standard_normal((8, int(12 * SFREQ))).astype(np.float32)
        _xdf(tmp_path / f"{name}.xdf", eeg, markers=[_start(song, 101.0)])
    dataset = open_dataset(tmp_path)
    assert dataset.kind == "folder of XDF sessions" and dataset.song_ids == [1, 2]
    assert [dataset.plays[k].subject for k in dataset.song_ids] == ["S01", "S02"]
    windows = WindowDataset(tmp_path)
    assert windows.subjects == ["S01", "S02"] and len(windows) == 10


def test_folder_of_sessions_with_two_montages_is_refused(tmp_path, song, rng):
    _xdf(tmp_path / "a.xdf", rng.standard_normal((8, 3000)).astype(np.float32), markers=[_start(song, 101.0)])
    with XDFWriter(tmp_path / "b.xdf") as writer:
        stream = writer.add_stream(name="cap", stype="EEG", channel_format="float32", nominal_srate=SFREQ,
                                   labels=LABELS[::-1])
        writer.write_samples(stream, 100.0 + np.arange(3000) / SFREQ, np.zeros((3000, 8), np.float32))
        marker = writer.add_stream(name="m", stype="Markers", channel_format="string", nominal_srate=0.0)
        writer.write_samples(marker, [101.0], [_start(song, 101.0)[1]])
    with pytest.raises(DataFormatError, match="one dataset holds one montage"):
        open_dataset(tmp_path)


def _session_with(path, song, eeg, labels, types=None):
    with XDFWriter(path) as writer:
        stream = writer.add_stream(name="cap", stype="EEG", channel_format="float32", nominal_srate=SFREQ,
                                   labels=labels, types=types)
        writer.write_samples(stream, 100.0 + np.arange(eeg.shape[1]) / SFREQ, eeg.T)
        marker = writer.add_stream(name="m", stype="Markers", channel_format="string", nominal_srate=0.0)
        writer.write_samples(marker, [101.0], [_start(song, 101.0)[1]])
    return path


def test_a_trigger_channel_of_a_session_is_no_model_input(tmp_path, song, rng, caplog):
    """A TRIGGER channel (0/255) became a model channel, entered the average reference and was then asked
    of every live stream."""
    import logging

    eeg = rng.standard_normal((9, 3000)).astype(np.float32)
    path = _session_with(tmp_path / "s.xdf", song, eeg, [*LABELS, "TRIG"], ["EEG"] * 8 + ["TRIGGER"])
    with caplog.at_level(logging.INFO, logger="eegmusic.replay.xdf_session"):
        session = open_dataset(path)
    assert list(session.labels) == LABELS
    np.testing.assert_array_equal(session.load_song(1).data[:, :, 0], eeg[:8, 250:1500])
    said = [r.getMessage() for r in caplog.records if "TRIG" in r.getMessage()]
    assert len(said) == 1 and "not EEG" in said[0] and "TRIG (TRIGGER)" in said[0], said
    path = _session_with(tmp_path / "misc.xdf", song, eeg[:8], LABELS, ["MISC"] * 8)
    with pytest.raises(DataFormatError, match="has no channel of type EEG \\(types MISC\\); record the cap"):
        open_dataset(path)


def test_a_blank_label_names_only_its_channel(tmp_path, song, rng, caplog):
    """One blank label relabelled every channel ch1..ch8, and evaluate then found none of the model's."""
    import logging

    eeg = rng.standard_normal((8, 3000)).astype(np.float32)
    path = _session_with(tmp_path / "s.xdf", song, eeg, [*LABELS[:-1], ""])
    with caplog.at_level(logging.WARNING, logger="eegmusic.replay.xdf"):
        session = open_dataset(path)
    assert list(session.labels) == [*LABELS[:-1], "ch8"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "channel 8 of 8 has no label; calling it ch8" in said[0], said
