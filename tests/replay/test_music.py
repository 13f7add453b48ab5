"""``simulate --music``: recorded music drives the simulator; excerpts; bad music files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
from eegmusic.replay.music import SFREQ, check_excerpt, load_excerpt
from eegmusic.replay.music_sources import PACKAGED_TRACKS, music_files, packaged_tracks
from eegmusic.stream.cli import main
from eegmusic.stream.errors import DataFormatError
from eegmusic.stream.stimulus import decoder_notes_aside, read_audio


def _tone_file(path, seconds, freq, sfreq=44100):
    t = np.arange(int(seconds * sfreq)) / sfreq
    # a tone whose loudness follows the time, so excerpts are told apart by their level
    audio = 0.5 * np.sin(2 * np.pi * freq * t) * (0.2 + 0.8 * t / seconds)
    soundfile.write(path, np.stack([audio, audio], axis=1).astype(np.float32), sfreq)
    return path


@pytest.fixture()
def music_dir(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    _tone_file(folder / "b.ogg", 12.0, 330.0)
    _tone_file(folder / "a.flac", 12.0, 220.0)
    (folder / "notes.txt").write_text("not music")
    return folder


def test_music_files_expands_folders_in_name_order(music_dir, tmp_path):
    extra = _tone_file(tmp_path / "c.wav", 3.0, 440.0)
    assert [p.name for p in music_files([music_dir, extra])] == ["a.flac", "b.ogg", "c.wav"]


def test_load_excerpt_cuts_the_requested_seconds(music_dir):
    whole = load_excerpt(music_dir / "a.flac")
    later = load_excerpt(music_dir / "a.flac", start_s=6.0, seconds=4.0)
    assert len(whole) == 12 * SFREQ and len(later) == 4 * SFREQ
    np.testing.assert_allclose(later, whole[6 * SFREQ:10 * SFREQ], atol=1e-6)


@pytest.mark.parametrize(("name", "sfreq"), [("x.wav", 48000), ("x.flac", 44100), ("x.ogg", 44100),
                                             ("x.mp3", 44100), ("x.wav", SFREQ)])
@pytest.mark.parametrize(("start_s", "seconds"), [(0.0, 2.0), (0.37, 3.3), (4.1, 5.9), (0.0, None)])
def test_an_excerpt_is_the_slice_of_the_whole_decoded_file(name, sfreq, start_s, seconds, tmp_path):
    # load_excerpt decodes only the excerpt and a margin; resampling must not see the difference
    path = _tone_file(tmp_path / name, 10.0, 440.0, sfreq=sfreq)
    whole = read_audio(path, sfreq=SFREQ)
    end = None if seconds is None else int(round((start_s + seconds) * SFREQ))
    expected = whole[int(round(start_s * SFREQ)):end]
    got = load_excerpt(path, start_s=start_s, seconds=seconds)
    assert got.dtype == np.float32 and len(got) == len(expected)
    np.testing.assert_array_equal(got, expected)


def test_simulate_music_writes_each_excerpt_as_a_song(music_dir, tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--music", str(music_dir), "--music-start", "5",
                 "--duration", "6", "--n-subjects", "2", "--no-progress"]) == 0
    manifest = json.loads((out / "simulation.json").read_text())
    assert manifest["audio_files"] == [str(music_dir / "a.flac"), str(music_dir / "b.ogg")]
    assert manifest["music_start_s"] == 5.0 and manifest["complete"]
    written, rate = soundfile.read(out / "stimuli" / "song21.wav")
    assert rate == SFREQ and len(written) == 6 * SFREQ
    expected = load_excerpt(music_dir / "a.flac", start_s=5.0, seconds=6.0)
    np.testing.assert_allclose(written, expected, atol=2e-4)  # 16-bit WAV


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: _tone_file(d / "short.wav", 3.0, 220.0), ["--duration", "5"],
         "3.0 s long, shorter than the requested excerpt 0-5 s"),
        (lambda d: _tone_file(d / "short.wav", 8.0, 220.0), ["--music-start", "6", "--duration", "4"],
         "shorter than the requested excerpt 6-10 s"),
        (lambda d: (d / "broken.ogg").write_bytes(b"OggS not really"), [], "cannot be decoded as audio"),
        (lambda d: None, [], "no audio files"),
        # a helper's file fuzz: the links were skipped without a word, then "no audio files" in the folder
        (lambda d: (d / "loop.wav").symlink_to(d / "loop.wav"), [],
         "no audio files (.wav, .flac, .ogg, .mp3) in this folder (1 audio name such as loop.wav skipped: "
         "not a regular file, or a link to none)"),
        (lambda d: os.mkfifo(d / "pipe.wav"), [], "(1 audio name such as pipe.wav skipped"),
    ],
)
def test_bad_music_is_one_line_and_status_2(make, extra, message, tmp_path, capsys):
    folder = tmp_path / "music"
    folder.mkdir()
    make(folder)
    out = tmp_path / "sim"
    status = main(["simulate", "--out", str(out), "--music", str(folder), "--n-subjects", "1",
                   "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert message in err and len(err.splitlines()) == 1
    assert not list(out.glob("song*")) if out.exists() else True  # nothing written


def _cut_off(path, keep=1 / 3):
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep)])
    return path


def test_a_cut_off_wav_is_read_with_a_warning_once_and_refused_where_the_excerpt_needs_more(tmp_path, caplog):
    """A helper's file fuzz: a WAV cut to a third of its bytes read as a 1.3-s track (its header says 4 s)
    without a word: libsndfile reads up to the file's end."""
    import logging

    path = _cut_off(_tone_file(tmp_path / "t.wav", 4.0, 220.0, sfreq=SFREQ))
    whole = _tone_file(tmp_path / "whole.wav", 4.0, 220.0, sfreq=SFREQ)
    with caplog.at_level(logging.WARNING, logger="eegmusic.stream.stimulus"):
        audio = read_audio(path, sfreq=SFREQ)
        read_audio(path, sfreq=SFREQ)
        read_audio(whole, sfreq=SFREQ)
    assert 1.2 < audio.size / SFREQ < 1.4
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1, said   # once for the file, none for the whole one
    assert said[0].startswith(f"{path}: its header declares 4.00 s of audio but the file holds 1.3")
    with pytest.raises(DataFormatError, match=r"holds 1\.3 s, shorter than the requested excerpt 0-3 s, "
                                              r"but its header declares 4\.0 s: the file is cut off"):
        check_excerpt(path, seconds=3.0)


def test_a_pipe_named_as_music_is_not_called_missing(tmp_path, capsys):
    """A helper's file fuzz: a FIFO passed to --music was "no such file or folder"; it exists."""
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    status = main(["simulate", "--out", str(tmp_path / "sim"), "--music", str(fifo), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert f"{fifo}: not a regular file (a device, pipe or socket); pass audio files" in err
    assert not (tmp_path / "sim").exists()


def test_check_excerpt_names_the_length(tmp_path):
    path = _tone_file(tmp_path / "x.wav", 2.0, 220.0)
    assert check_excerpt(path, seconds=2.0) == pytest.approx(2.0)
    with pytest.raises(DataFormatError, match="2.0 s long"):
        check_excerpt(path, start_s=1.5, seconds=1.0)


def test_packaged_tracks_are_real_music_of_at_least_two_minutes():
    installed = [t for t in PACKAGED_TRACKS if Path(t.path).is_file()]
    if len(installed) < 4:
        pytest.skip("singularity-music is not installed (make system-deps installs it as root)")
    paths = packaged_tracks(4, min_seconds=120)
    assert len(paths) == 4
    for path in paths:
        assert check_excerpt(path, start_s=100.0, seconds=20.0) >= 120.0


def test_decoder_notes_are_set_aside_and_other_writes_passed_on(capfd, caplog):
    """Descriptor 2 is set aside while an mp3 is decoded: mpg123's notes become a debug line, whatever
    else was written meanwhile (another thread's log line) reaches stderr afterwards, and the real
    stderr is back when the block ends, also when it raises. Other files are not set aside."""
    import os

    caplog.set_level("DEBUG", logger="eegmusic.stream.stimulus")
    with pytest.raises(RuntimeError), decoder_notes_aside("song.MP3"):
        os.write(2, b"Note: Trying to resync...\n[src/libmpg123/parse.c:1] warning: Duh\nanother line\n")
        raise RuntimeError("the decoder failed")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "another line\nafter\n"
    assert "audio decoder: Note: Trying to resync... [src/libmpg123/parse.c:1] warning: Duh" in caplog.text
    with decoder_notes_aside("song.wav"):
        os.write(2, b"Note: not from mpg123\n")
    assert capfd.readouterr().err == "Note: not from mpg123\n"



def test_other_writes_pass_on_byte_for_byte(capfdbinary):
    import os

    with decoder_notes_aside("song.mp3"):
        os.write(2, b"caf\xe9 in Latin-1\nNote: Trying to resync...\nno newline at the end")
    assert capfdbinary.readouterr().err == b"caf\xe9 in Latin-1\nno newline at the end"


def test_threads_decoding_mp3s_at_once_leave_stderr_where_it_was(capfd):
    """Had each of two threads saved descriptor 2 and put it back, the one entering second and leaving last
    would have put back the first one's temporary file, and every later stderr line would have gone there."""
    import os
    import threading

    a_in, both_in, a_out = threading.Event(), threading.Barrier(2), threading.Event()

    def decode(name):   # a enters, then b; a leaves, then b
        if name == "b.mp3":
            a_in.wait(10)
        with decoder_notes_aside(name):
            a_in.set()
            both_in.wait(10)
            os.write(2, f"from {name}\n".encode())
            if name == "b.mp3":
                a_out.wait(10)
        if name == "a.mp3":
            a_out.set()

    threads = [threading.Thread(target=decode, args=(name,)) for name in ("a.mp3", "b.mp3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    os.write(2, b"after\n")
    assert sorted(capfd.readouterr().err.splitlines()) == ["after", "from a.mp3", "from b.mp3"]
    assert a_out.is_set()
