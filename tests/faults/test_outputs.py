"""Nothing overwritten without consent, no half-written file, an input never its own output, a full disk.

Every writing command refuses an existing output before any work unless ``--overwrite`` is given.
The full-disk cases mount a small tmpfs (root only; skipped with the reason otherwise).
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import soundfile
from eegmusic.stream.atomic import atomic_path, refuse_existing, refuse_same_file, write_json, write_text
from eegmusic.stream.errors import AudioError, OutputError

from tests.faults.conftest import assert_one_line_error, run_cli

PRECIOUS = b"twenty seconds of a recording nobody can make again"


def _wav(path, seconds=0.5):
    t = np.arange(int(22050 * seconds)) / 22050
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), 22050)
    return path


@pytest.fixture
def precious(tmp_path):
    def make(name):
        path = tmp_path / name
        path.write_bytes(PRECIOUS)
        return path
    return make


@pytest.mark.parametrize(("command", "flag", "name"), [
    ("decode", "--wav", "decoded.wav"),
    ("decode", "--json", "summary.json"),
])
def test_decode_refuses_an_existing_output_before_starting(command, flag, name, precious, tmp_path, capsys):
    target = precious(name)
    status, _, err = run_cli([command, "--model", str(tmp_path / "m.onnx"), "--stream", "s", "--timeout", "0",
                              flag, str(target)], capsys)
    assert_one_line_error(status, err, str(target), "--overwrite")
    assert target.read_bytes() == PRECIOUS


def test_decode_with_overwrite_gets_past_the_check(precious, tmp_path, capsys):
    target = precious("summary.json")
    status, _, err = run_cli(["decode", "--model", str(tmp_path / "missing.onnx"), "--stream", "s",
                              "--timeout", "0", "--json", str(target), "--overwrite"], capsys)
    line = assert_one_line_error(status, err, "missing.onnx")  # the next problem, not the file
    assert "already exists" not in line and target.read_bytes() == PRECIOUS  # nothing decoded: not written


def test_decode_wav_and_json_on_one_path_is_refused(tmp_path, capsys):
    """Their suffixes differ (.wav, .json), so one file is reached only through a link; it is refused
    before the model is read (m.onnx does not exist: that check would also end in one line)."""
    target = tmp_path / "x.wav"
    (tmp_path / "summary.json").symlink_to(target)  # dangling: nothing there yet to refuse as existing
    status, _, err = run_cli(["decode", "--model", "m.onnx", "--stream", "s", "--wav", str(target),
                              "--json", str(tmp_path / "summary.json")], capsys)
    assert_one_line_error(status, err, "--wav and --json name the same file")
    assert not target.exists()


@pytest.mark.parametrize("how", ["same path", "relative", "symlink", "dot-dot"])
def test_vocode_input_is_never_its_own_output(how, tmp_path, capsys, monkeypatch):
    source = _wav(tmp_path / "a.wav")
    before = source.read_bytes()
    monkeypatch.chdir(tmp_path)
    out = {"same path": str(source), "relative": "a.wav", "dot-dot": f"../{tmp_path.name}/a.wav"}.get(how)
    if how == "symlink":
        (tmp_path / "link.wav").symlink_to(source)
        out = str(tmp_path / "link.wav")
    status, _, err = run_cli(["vocode", str(source), "--out", out, "--overwrite"], capsys)
    assert_one_line_error(status, err, "the input file itself")
    assert source.read_bytes() == before


def test_vocode_refuses_an_existing_output_and_replaces_it_atomically_when_asked(tmp_path, capsys):
    source = _wav(tmp_path / "a.wav")
    out = tmp_path / "b.wav"
    out.write_bytes(PRECIOUS)
    status, _, err = run_cli(["vocode", str(source), "--out", str(out)], capsys)
    assert_one_line_error(status, err, "--overwrite")
    assert out.read_bytes() == PRECIOUS
    status, _, err = run_cli(["vocode", str(source), "--out", str(out), "--overwrite"], capsys)
    assert status == 0, err
    audio, rate = soundfile.read(out)
    assert rate == 22050 and abs(len(audio) - 11025) <= 512
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav"]  # no temporary file left


@pytest.mark.parametrize("name", ["metrics.json", "metrics.md", "reconstruction.png", "reconstruction.wav",
                                  "target.wav"])
def test_evaluate_refuses_to_replace_earlier_results(name, precious, tmp_path, capsys):
    target = precious(name)
    status, _, err = run_cli(["evaluate", "--data", str(tmp_path / "nodata"), "--model", "m.onnx", "--out",
                              str(tmp_path)], capsys)
    assert_one_line_error(status, err, name, "--overwrite")
    assert target.read_bytes() == PRECIOUS


def test_simulate_refuses_a_folder_with_an_old_simulation(precious, tmp_path, capsys):
    old = precious("song21_Imputed.mat")
    status, _, err = run_cli(["simulate", "--out", str(tmp_path), "--n-songs", "1", "--n-subjects", "1",
                              "--duration", "3", "--no-progress"], capsys)
    assert_one_line_error(status, err, "--overwrite")
    assert old.read_bytes() == PRECIOUS and sorted(p.name for p in tmp_path.iterdir()) == [old.name]


def test_train_refuses_an_existing_run(precious, tmp_path, sim_dir, capsys):
    precious("checkpoint.pt")
    status, _, err = run_cli(["train", "--data", str(sim_dir), "--out", str(tmp_path), "--epochs", "1",
                              "--no-progress"], capsys)
    assert_one_line_error(status, err, "--resume")
    assert (tmp_path / "checkpoint.pt").read_bytes() == PRECIOUS


@pytest.mark.parametrize("fails_at", ["before writing", "half written"])
def test_atomic_write_leaves_the_old_file_when_interrupted(fails_at, precious, tmp_path):
    target = precious("summary.json")
    with pytest.raises(RuntimeError), atomic_path(target) as part:
        if fails_at == "half written":
            part.write_text('{"windows": 1')
        raise RuntimeError("killed")
    assert target.read_bytes() == PRECIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_atomic_helpers_write_whole_files(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float64(1.5), "y": np.float32(2.5), "z": tmp_path})
    # a float stays a number; what JSON cannot hold is written as its str, never refused
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5, "y": "2.5", "z": str(tmp_path)}
    write_text(tmp_path / "b.txt", "é")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "é"


def test_refusal_helpers(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    refuse_existing(empty, overwrite=False)            # an empty folder holds nothing to lose
    refuse_existing(tmp_path / "new", overwrite=False)
    (empty / "f").write_text("x")
    with pytest.raises(OutputError, match="folder .* already exists"):
        refuse_existing(empty, overwrite=False)
    refuse_existing(empty, overwrite=True)
    with pytest.raises(OutputError, match="input file itself"):
        refuse_same_file(empty / "f", empty / ".." / "empty" / "f")
    refuse_same_file(empty / "f", empty / "g")


# ---- a full disk ------------------------------------------------------------------------------------------
def test_full_disk_while_recording_wav_is_one_line_and_keeps_the_file_readable(small_disk):
    from eegmusic.decoder.audio import WavSink

    path = small_disk / "decoded.wav"
    block = (0.1 * np.sin(np.arange(2205) / 3.0)).astype(np.float32)
    written = 0
    with pytest.raises(AudioError) as caught, contextlib.closing(WavSink(path)) as sink:
        for _ in range(1000):  # 1000 x 0.1 s of 16-bit audio is far more than 256 KiB
            written += sink.write(block)
    message = str(caught.value)
    # it said "(System error.; the disk may be full)", libsndfile's words for ENOSPC
    assert "\n" not in message and "the disk is full: " in message and str(path) in message
    audio, rate = soundfile.read(path)
    # what was written stays readable: every whole block, perhaps part of the one the disk cut short
    assert rate == 22050 and written - 4 * 2205 <= len(audio) <= written + 2205


def test_full_disk_while_recording_frames_is_one_line_and_keeps_them_readable(small_disk):
    """The decode thread died with a traceback in the log, and decode's last line was a bare
    'OSError: [Errno 28] No space left on device', naming no fix."""
    from eegmusic.decoder.recording import FrameRecorder, read_frames

    recording = FrameRecorder(small_disk / "rec", sidecar={}, audio=False)
    frames = np.linspace(-80.0, 0.0, 128 * 20, dtype=np.float32).reshape(128, 20)
    with pytest.raises(OutputError) as caught, contextlib.closing(recording):
        for k in range(0, 20 * 1000, 20):   # 1000 x 20 frames of 128 float32: far more than 256 KiB
            recording.append_frames(k, frames, np.arange(24, 44), 125 + k, 1.0)
    message = str(caught.value)
    assert "\n" not in message and "the disk is full: " in message and "free space" in message
    assert f"its {recording.n_frames} frames recorded before stay readable" in message
    index, mel, source = read_frames(small_disk / "rec")
    # every frame counted as recorded reads back whole; the cut-short write adds none that is not
    assert recording.n_frames > 0 and len(index) >= recording.n_frames
    np.testing.assert_array_equal(index[:recording.n_frames], np.arange(recording.n_frames))
    np.testing.assert_array_equal(mel[:, :20], frames)


@pytest.mark.parametrize("size", [300_000, 2_000_000])
def test_full_disk_on_an_atomic_write_keeps_the_old_file(size, small_disk):
    target = small_disk / "summary.json"
    target.write_bytes(PRECIOUS)
    with pytest.raises(OutputError) as caught:
        write_text(target, "x" * size)
    message = str(caught.value)
    assert "\n" not in message and "disk full" in message
    assert target.read_bytes() == PRECIOUS
    assert sorted(p.name for p in small_disk.iterdir()) == ["summary.json"]


def test_full_disk_through_vocode_is_one_line(small_disk, tmp_path, capsys):
    source = _wav(tmp_path / "long.wav", seconds=8.0)   # 8 s of 16-bit audio: 350 KiB > 256 KiB
    status, _, err = run_cli(["vocode", str(source), "--out", str(small_disk / "out.wav")], capsys)
    assert_one_line_error(status, err, "disk")
    assert list(small_disk.iterdir()) == []               # the partial file went with the failure


def test_a_set_of_files_is_replaced_whole_when_ctrl_c_comes_amid_the_renames(tmp_path, monkeypatch):
    """``staged_files`` held Ctrl-C off with a signal mask, which holds only the main thread's signals:
    with another thread alive (torch and onnxruntime start several) the kernel gave it to that thread,
    and KeyboardInterrupt came between the renames, leaving one new file among the old ones."""
    import os
    import signal
    import threading

    from eegmusic.stream import atomic

    for name in "abc":
        (tmp_path / name).write_text("old")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    replace, done = os.replace, []

    def interrupted_replace(source, target):
        replace(source, target)
        done.append(target)
        if len(done) == 1:
            os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C after the first rename
            threading.Event().wait(0.2)           # time for it to be delivered

    monkeypatch.setattr(atomic.os, "replace", interrupted_replace)
    # Ctrl-C as an interactive shell delivers it: a suite started as a background job (`make test &`)
    # inherits SIGINT ignored, and then the set is replaced and nothing is raised, rightly
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):   # still handled, once the set is in place
            with atomic.staged_files(tmp_path) as stage:
                for name in "abc":
                    (stage / name).write_text("new")
    finally:
        stop.set()
        signal.signal(signal.SIGINT, inherited)
    assert {name: (tmp_path / name).read_text() for name in "abc"} == {"a": "new", "b": "new", "c": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]



@pytest.mark.parametrize("where", ["temporary_directory", "staged_files", "atomic_path", "check_writable"])
def test_a_stop_just_after_a_scratch_file_is_made_leaves_nothing(tmp_path, monkeypatch, where):
    """``bench`` stopped by SIGTERM just as a benchmark began left its ``eegmusic-bench-runtime-*`` folder
    behind (CI failed on it): the stop landed after ``mkdtemp`` had made the folder but before
    ``TemporaryDirectory`` had what removes it. The stop here lands at that very point, in each place
    that makes a scratch folder or file (a part file of every output, the write check of ``--out``); it
    must still be raised, and nothing may be left."""
    import signal
    import tempfile

    from eegmusic.stream import atomic

    def stopped(make):
        def made_then_stopped(*args, **kwargs):
            made = make(*args, **kwargs)
            signal.raise_signal(signal.SIGINT)   # Ctrl-C, handled as the next line of Python runs
            return made
        return made_then_stopped

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(atomic.tempfile, "mkdtemp", stopped(tempfile.mkdtemp))
    monkeypatch.setattr(atomic.tempfile, "mkstemp", stopped(tempfile.mkstemp))
    out = tmp_path / "out"
    out.mkdir()
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)   # as in the test above
    try:
        with pytest.raises(KeyboardInterrupt):
            if where == "check_writable":
                atomic.check_writable(out)
            else:
                block = {"temporary_directory": lambda: atomic.temporary_directory("eegmusic-test-"),
                         "staged_files": lambda: atomic.staged_files(out),
                         "atomic_path": lambda: atomic.atomic_path(out / "x.wav")}[where]
                with block():
                    pytest.fail("the stop should be raised before the block runs")
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert list(out.iterdir()) == []

def test_a_rename_refused_amid_a_set_puts_the_replaced_files_back(tmp_path, monkeypatch):
    """One rename of the set refused after another had gone through (a file made immutable, a folder's
    permissions changed meanwhile) left a new file among the old ones, where the promise is the whole
    earlier set or the whole new one. A refusal cannot be timed between two renames, so the second is
    refused by a stand-in for ``os.replace``; the rest are real."""
    import errno
    import os

    from eegmusic.stream import atomic

    for name in "ab":
        (tmp_path / name).write_text(f"old {name}")
    (tmp_path / "other").write_text("kept")
    real, calls = os.replace, []

    def refused_second(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
        real(source, target)

    monkeypatch.setattr(atomic.os, "replace", refused_second)
    with pytest.raises(OutputError) as caught:
        with atomic.staged_files(tmp_path) as stage:
            for name in "abc":   # c is new: it has no namesake to put back
                (stage / name).write_text(f"new {name}")
    assert "\n" not in str(caught.value)
    left = {path.name: path.read_text() for path in tmp_path.iterdir()}
    assert left == {"a": "old a", "b": "old b", "other": "kept"}
