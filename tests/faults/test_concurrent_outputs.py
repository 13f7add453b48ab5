"""Two commands writing one output folder at once: the second is refused, nothing is mixed.

Two ``train --out runs/x`` started together both passed the "already holds a run" check and wrote
into one folder; a ``simulate --overwrite`` deleted the files of another ``simulate`` writing the same
folder. :func:`stream.atomic.output_lock` now holds the folder for the whole command. The holder here
is a real second process (a Python child holding the lock, or a real ``simulate``); nothing is faked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from eegmusic.stream.atomic import output_lock
from eegmusic.stream.errors import OutputError

from tests.faults.conftest import assert_one_line_error
from tests.fixtures.processes import wait_until

PRECIOUS = b"an input file that no refused command may touch"

HOLD = textwrap.dedent("""
    import sys, time
    from eegmusic.stream.atomic import output_lock
    with output_lock(sys.argv[1], sys.argv[2]):
        print("held", flush=True)
        time.sleep(120)
""")


class Holder:
    """A child process that holds ``output_lock(path, command)`` until it is stopped."""

    def __init__(self, path: Path, command: str = "train"):
        self.process = subprocess.Popen([sys.executable, "-c", HOLD, str(path), command],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "held"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.process.stdout.closed:
            self.kill()


def test_a_held_folder_is_refused_naming_the_holder_and_free_after_it_is_killed(tmp_path):
    out = tmp_path / "run"
    with Holder(out) as holder:
        with pytest.raises(OutputError, match=rf"is being written by eegmusic train \(process "
                                              rf"{holder.process.pid}\); wait for it to finish"):
            with output_lock(out, "simulate"):
                pytest.fail("the block ran while another process held the folder")
        holder.kill()  # SIGKILL: no cleanup ran, and the kernel released the lock all the same
    with output_lock(out, "simulate"):
        pass
    assert not out.exists()  # the lock lives outside the output


def test_other_spellings_of_the_folder_are_the_same_lock(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    with Holder(tmp_path / "real" / "run"):
        for spelling in ("real/run", "link/run", "./real/../real/run"):
            with pytest.raises(OutputError, match="is being written by"):
                with output_lock(spelling, "train"):
                    pass
    with output_lock("link/run", "train"):
        pass


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with output_lock(tmp_path / "x", "train"):
            raise RuntimeError("boom")
    with output_lock(tmp_path / "x", "train"):
        pass


@pytest.fixture
def lock_folder(tmp_path, monkeypatch) -> Path:
    """This user's lock folder under a temporary folder of the test's own (not yet made)."""
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))   # the Holder's child process inherits it
    monkeypatch.setattr(tempfile, "tempdir", None)
    return tmp_path / "tmp" / f"eegmusic-locks-{os.getuid()}"   # stream.atomic.LOCK_FOLDER


def _lock_file_of(folder: Path, path: Path) -> Path:
    import hashlib

    return folder / (hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()[:24] + ".lock")


@pytest.mark.parametrize("mode", [0o777, 0o700], ids=["folder open to others", "own private folder"])
def test_a_link_in_place_of_a_lock_file_is_never_written_through(mode, lock_folder, tmp_path, caplog):
    """The lock folder's path and its files' names are known to every user of the machine: a folder made
    there first by another user, holding a link named as an output's lock file, had the lock empty the
    file the link named (any file the user may write). A folder open to others is refused with a warning
    (the command runs unlocked), and a link in the user's own folder (root could put one) is not followed."""
    lock_folder.mkdir()
    lock_folder.chmod(mode)
    victim = tmp_path / "precious.txt"
    victim.write_bytes(PRECIOUS)
    out = tmp_path / "out.wav"
    _lock_file_of(lock_folder, out).symlink_to(victim)
    with output_lock(out, "vocode"):
        pass
    assert victim.read_bytes() == PRECIOUS
    warned = [r.getMessage() for r in caplog.records if "eegmusic locks no output in it" in r.getMessage()]
    if mode == 0o777:
        assert warned == [f"{lock_folder} is open to other users (mode 777), so eegmusic locks no output in "
                          f"it and a second eegmusic command may write the same output at once; remove "
                          f"{lock_folder}"]
    else:
        assert warned == []


def test_a_lock_is_a_file_only_while_it_is_held(lock_folder, tmp_path):
    """Lock files were never removed: a helper found 14,066 in its lock folder."""
    out = tmp_path / "run"
    with output_lock(out, "train"):
        assert [p.name for p in lock_folder.iterdir()] == [_lock_file_of(lock_folder, out).name]
        assert lock_folder.stat().st_mode & 0o777 == 0o700
    assert list(lock_folder.iterdir()) == []
    with Holder(out) as holder:   # and a lock taken again after it is removed still refuses
        with pytest.raises(OutputError, match=f"process {holder.process.pid}"):
            with output_lock(out, "simulate"):
                pass
    # the Holder was SIGKILLed: its file stays, its lock does not, and the next holder removes the file
    assert list(lock_folder.iterdir()) == [_lock_file_of(lock_folder, out)]
    with output_lock(out, "simulate"):
        pass
    assert list(lock_folder.iterdir()) == []


def test_a_lock_file_removed_by_its_ending_holder_is_opened_again_not_refused(lock_folder, tmp_path,
                                                                              monkeypatch):
    """A process that opened the lock file just before its holder removed it and let go, and found it
    locked by a third that had locked the removed file a moment (and was about to let go), was refused
    naming the holder that had ended. That order, forced here: the open returns, and before the lock is
    tried another descriptor locks the file and the file is removed."""
    import fcntl

    from eegmusic.stream import atomic

    out = tmp_path / "run"
    opened = []
    real_open = atomic._open_lock_file

    def open_then_interleave(path):
        handle, file = real_open(path)
        if not opened:   # the first open only
            third = open(file, "r+")
            fcntl.flock(third, fcntl.LOCK_EX)
            third.write("eegmusic train (process 99999)")
            third.flush()
            file.unlink()
            opened.append(third)
        return handle, file

    monkeypatch.setattr(atomic, "_open_lock_file", open_then_interleave)
    with output_lock(out, "simulate"):
        assert [p.name for p in lock_folder.iterdir()] == [_lock_file_of(lock_folder, out).name]
    opened[0].close()


def test_letting_go_never_removes_a_lock_file_another_process_holds(lock_folder, tmp_path):
    """Where something else removed the holder's lock file (a /tmp cleaner during a days-long train) and
    another process then locked a new one, the first holder's release removed that one: a third process
    could then lock a third file and write the same output as the second."""
    import fcntl

    out = tmp_path / "run"
    file = _lock_file_of(lock_folder, out)
    with output_lock(out, "train"):
        file.unlink()
        second = open(file, "w")
        fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert file.exists()
    with pytest.raises(OutputError, match="is being written by"):
        with output_lock(out, "train"):
            pass
    second.close()


def test_a_full_temporary_folder_keeps_the_lock_without_its_words(small_disk, tmp_path, monkeypatch):
    """The holder's name is written into its lock file: on a temporary folder that filled up after the
    process chose it (tempfile keeps its first choice), that write was an OSError with no file name, a
    traceback from every writing command. The lock holds all the same."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(small_disk))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert tempfile.gettempdir() == str(small_disk)   # chosen while it has room, and kept
    (small_disk / f"eegmusic-locks-{os.getuid()}").mkdir(mode=0o700)
    with open(small_disk / "filler", "wb", buffering=0) as filler:   # every block taken; an empty file fits
        with contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 4096)
    out = tmp_path / "run"
    with output_lock(out, "train"):
        # held all the same (a second open of the file is a second flock, even in this process), and the
        # refusal, which has no words to read, names no holder
        with pytest.raises(OutputError, match="is being written by another eegmusic command"):
            with output_lock(out, "simulate"):
                pass
    with output_lock(out, "train"):
        pass


def test_an_output_path_of_bytes_that_are_no_utf8_is_locked(lock_folder, tmp_path):
    """``sha256(key.encode())`` raised UnicodeEncodeError (a traceback in every writing command) for an
    output in a folder whose name is no UTF-8, as realpath gives such bytes as surrogates."""
    out = Path(os.fsdecode(bytes(tmp_path) + b"/h7\xfe")) / "out.wav"
    out.parent.mkdir()
    with Holder(out, "vocode") as holder:
        refusal = f"is being written by eegmusic vocode \\(process {holder.process.pid}"
        with pytest.raises(OutputError, match=refusal):
            with output_lock(out, "vocode"):
                pass


@pytest.mark.parametrize("command", ["simulate", "train", "evaluate"])
def test_each_writing_command_refuses_a_folder_another_is_writing(command, sim_dir, cli, tmp_path):
    out = tmp_path / "out"
    argv = {
        "simulate": ["simulate", "--out", out, "--n-songs", "1", "--n-subjects", "1", "--duration", "5"],
        "train": ["train", "--data", sim_dir, "--arch", "linear", "--out", out, "--no-progress"],
        "evaluate": ["evaluate", "--data", sim_dir, "--model", tmp_path / "absent.onnx", "--out", out],
    }[command]
    with Holder(out, "simulate") as holder:
        status, _, err = cli(*argv)
        assert_one_line_error(status, err, f"{out} is being written by eegmusic simulate (process "
                                           f"{holder.process.pid})")
    assert not out.exists()


SINGLE_FILE_WRITERS = {
    # command: (argv with OUT for the held output, what it is held as): each takes its output before
    # any input is read, so nothing here needs a stream, a model or a real audio file
    "vocode": (["vocode", "song.wav", "--out", "OUT.wav"], "OUT.wav"),
    "decode --wav": (["decode", "--stream", "cap", "--model", "m.onnx", "--wav", "OUT.wav"], "OUT.wav"),
    "decode --json": (["decode", "--stream", "cap", "--model", "m.onnx", "--no-audio", "--json", "OUT.json"],
                      "OUT.json"),
    "decode --record": (["decode", "--stream", "cap", "--model", "m.onnx", "--no-audio", "--record", "OUT"],
                        "OUT"),
    "calibrate": (["calibrate", "--stream", "cap", "--music", "song.wav", "--no-audio", "--out", "OUT.xdf"],
                  "OUT.xdf"),
    # another session whose name differs in case only: it copies its tracks into the same folder
    "calibrate's audio folder": (["calibrate", "--stream", "cap", "--music", "song.wav", "--no-audio",
                                  "--out", "OUT.XDF"], "OUT_audio"),
    "gui --screenshot": (["gui", "--stream", "cap", "--model", "m.onnx", "--screenshot", "OUT.png"],
                         "OUT.png"),
    "demo --wav": (["demo", "--wav", "OUT.wav"], "OUT.wav"),
    "demo --out": (["demo", "--out", "OUT"], "OUT"),
    "bench": (["bench", "--quick", "--only", "no-such-benchmark", "--out", "OUT.json"], "OUT.json"),
}
"""Commands that wrote a file (or a folder) with no lock: two at once both finished and one result
replaced the other (``vocode --out r.wav`` twice: both exit 0, one WAV)."""


@pytest.mark.parametrize("writer", SINGLE_FILE_WRITERS)
def test_each_file_writing_command_refuses_an_output_another_is_writing(writer, cli, tmp_path):
    argv, held = SINGLE_FILE_WRITERS[writer]
    out = tmp_path / held
    (tmp_path / "song.wav").write_bytes(PRECIOUS)
    argv = [str(tmp_path / a) if a.startswith(("OUT", "song", "m.onnx")) else a for a in argv]
    with Holder(out, "vocode") as holder:
        status, _, err = cli(*argv)
        assert_one_line_error(status, err, f"{out} is being written by eegmusic vocode (process "
                                           f"{holder.process.pid}); wait for it to finish")
    assert not out.exists()
    assert (tmp_path / "song.wav").read_bytes() == PRECIOUS


@pytest.mark.parametrize("writer", ["vocode", "decode --json", "bench"])
def test_a_file_writer_frees_its_output_when_it_ends(writer, cli, tmp_path):
    """The lock goes with the command: after a refusal of its own (the input is no audio), the same
    output is free for the next command."""
    argv, held = SINGLE_FILE_WRITERS[writer]
    (tmp_path / "song.wav").write_bytes(PRECIOUS)
    argv = [str(tmp_path / a) if a.startswith(("OUT", "song", "m.onnx")) else a for a in argv]
    status, _, _ = cli(*argv[:1], "--help")
    assert status == 0
    status, _, _ = cli(*argv)   # refused: no such stream, model or benchmark
    assert status == 2
    with output_lock(tmp_path / held, "vocode"):
        pass


def test_simulate_overwrite_deletes_nothing_of_a_running_simulate(tmp_path):
    """The case that lost files: a real simulate is writing; a second one with --overwrite is refused
    and the first finishes a complete dataset. The first is paused (SIGSTOP) once it has begun writing
    and resumed after the second has run, so the two always overlap."""
    out = tmp_path / "sim"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "eegmusic", "-q", "simulate", "--out", str(out),
                              "--n-songs", "3", "--n-subjects", "6", "--duration", "60"],
                             env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_until((out / "simulation.json").exists, first, what="simulation started writing",
                   poll_s=0.005)
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run([sys.executable, "-m", "eegmusic", "simulate", "--out", str(out),
                                 "--n-songs", "1", "--n-subjects", "1", "--duration", "5", "--overwrite"],
                                env=env, capture_output=True, text=True, timeout=120)
        first.send_signal(signal.SIGCONT)
        _, first_err = first.communicate(timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
        first.kill()
    assert first.returncode == 0, first_err
    assert_one_line_error(second.returncode, second.stderr, "is being written by eegmusic simulate")
    from eegmusic.replay.dataset import open_dataset

    dataset = open_dataset(out)
    assert sorted(dataset.song_ids) == [21, 22, 23]
    assert dataset.load_song(23).n_subjects == 6


def test_two_decodes_racing_for_one_record_folder_do_not_share_it(tmp_path, monkeypatch):
    """Two ``decode --record rec`` started together both passed the folder check before either had
    created a file, then both appended frames to one ``mel_db.f32``. The race is staged in this
    process: the second recorder's first check is skipped, as if it ran before the first's files
    existed; the exclusive create then refuses it."""
    import json

    import numpy as np
    from eegmusic.decoder import recording
    from eegmusic.decoder.recording import FrameRecorder, read_frames
    from eegmusic.stream.errors import ConfigError

    folder = tmp_path / "rec"
    first = FrameRecorder(folder, sidecar={"model": "first.onnx"}, audio=False)
    real_check, checks = recording.check_record_dir, []

    def check_too_early(path):
        checks.append(path)
        if len(checks) > 1:
            real_check(path)

    monkeypatch.setattr(recording, "check_record_dir", check_too_early)
    with pytest.raises(ConfigError, match="already holds mel_db.f32; pass a new --record DIR"):
        FrameRecorder(folder, sidecar={"model": "second.onnx"}, audio=False)
    first.append_frames(0, np.ones((128, 2), np.float32), np.arange(2), 125, 1.0)
    first.close()
    assert json.loads((folder / "mel_db.json").read_text())["model"] == "first.onnx"
    k, frames, _ = read_frames(folder)
    np.testing.assert_array_equal(k, [0, 1])
