"""A file or folder this user may not open: one line naming it and the fix, exit 2.

An unreadable dataset file printed a Python traceback (exit 1, which ``info`` uses for "problems
found"), and an unreadable XDF, WAV or ONNX file was called damaged, with a fix (re-record, convert,
export again) that does not help. Found by an exploratory run as a user without access.

The tests run each command in a child process that file permissions bind: as root, one without the
capabilities that override them (``setpriv --bounding-set``), since root reads any file otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.faults.conftest import assert_one_line_error

NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _run_bound_by_permissions(*argv: str, cwd: Path) -> tuple[int, str]:
    """``eegmusic argv`` in a child process that file permissions bind; return (status, stderr)."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("as root without setpriv (util-linux) no child process is bound by file permissions")
        prefix = NO_OVERRIDE
    result = subprocess.run([*prefix, sys.executable, "-m", "eegmusic", *argv], cwd=cwd, capture_output=True,
                            text=True, timeout=120)
    return result.returncode, result.stderr


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory):
    from eegmusic.replay.simulate import simulate

    return simulate(tmp_path_factory.mktemp("perm") / "sim", n_songs=1, n_subjects=1, seconds=4.0, seed=0,
                    progress=False)


def _locked(path: Path, mode: int = 0):
    """Give ``path`` permissions ``mode`` (none by default) until the block ends."""
    class Locked:
        def __enter__(self):
            self.mode = path.stat().st_mode
            path.chmod(mode)
            return path

        def __exit__(self, *exc):
            path.chmod(self.mode)

    return Locked()


@pytest.mark.parametrize(("locked", "mode"), [("song21_Imputed.mat", 0), ("stimuli", 0), (".", 0),
                                             (".", 0o444)])   # listed, not entered: it named a file in it
def test_an_unreadable_dataset_file_or_folder_is_one_line_naming_it(tiny_sim, locked, mode):
    target = (tiny_sim / locked).resolve()
    with _locked(target, mode):
        status, err = _run_bound_by_permissions("info", str(tiny_sim), cwd=tiny_sim.parent)
    line = assert_one_line_error(status, err, "permission denied for", "chmod")
    assert str(target) in line or locked == "." and str(tiny_sim) in line, line
    if mode:
        assert f"permission denied for {target}:" in line, line   # the folder, not a file it holds


@pytest.mark.parametrize(("name", "argv"), [
    ("session.xdf", ["info", "{path}"]),
    ("session.xdf", ["replay", "--xdf", "{path}", "--xdf-stream", "cap"]),
    ("song.wav", ["vocode", "{path}", "--out", "{out}/o.wav"]),
    ("model.onnx", ["evaluate", "--data", "{sim}", "--model", "{path}", "--out", "{out}/e"]),
    ("song.wav", ["simulate", "--out", "{out}/s", "--music", "{path}", "--n-subjects", "1"]),
])
def test_an_unreadable_input_file_is_not_called_damaged(tiny_sim, tmp_path, name, argv):
    path = tmp_path / name
    if name.endswith(".wav"):
        soundfile.write(path, np.zeros(22050, np.float32) + 0.1, 22050)
    else:
        path.write_bytes(b"XDF:" + bytes(range(256)) * 4)
    out = tmp_path / "out"
    out.mkdir()
    argv = [arg.format(path=path, out=out, sim=tiny_sim) for arg in argv]
    with _locked(path):
        status, err = _run_bound_by_permissions(*argv, cwd=tmp_path)
    line = assert_one_line_error(status, err, f"permission denied for {path}", "chmod")
    for wrong in ("corrupt", "re-record", "convert", "export it again", "cannot be decoded"):
        assert wrong not in line, line


def test_a_fifo_is_never_opened_to_check_its_permissions(tmp_path):
    """Opening a FIFO blocks until something writes to it: the permission check must not, for a FIFO
    given as data (refused by the dataset reader, in one line, at once)."""
    fifo = tmp_path / "session.xdf"
    os.mkfifo(fifo)
    result = subprocess.run([sys.executable, "-m", "eegmusic", "info", str(fifo)], capture_output=True,
                            text=True, timeout=60)
    assert_one_line_error(result.returncode, result.stderr, str(fifo))


def test_an_overwrite_that_cannot_delete_every_old_file_deletes_none(tmp_path):
    """``simulate --overwrite`` over a dataset whose ``stimuli/`` is read-only deleted the song's .mat
    file beside it, then failed on the first stimulus, and its line did not say so (a helper's option
    fuzz). Every folder to delete from is tried first: nothing is deleted, and the line names the folder."""
    from eegmusic.replay.simulate import simulate

    out = simulate(tmp_path / "sim", n_songs=1, n_subjects=1, seconds=2.0, seed=0, progress=False)
    before = {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    with _locked(out / "stimuli", 0o555):
        status, err = _run_bound_by_permissions("simulate", "--out", str(out), "--n-songs", "1",
                                                "--n-subjects", "1", "--duration", "3", "--overwrite",
                                                cwd=tmp_path)
    assert_one_line_error(status, err, f"files in {out / 'stimuli'} cannot be deleted", "nothing was deleted",
                          "make that folder writable")
    assert {path.relative_to(out): path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
