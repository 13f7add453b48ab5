"""``stream.atomic``: a failed write is one line that says truly what was left behind."""

from __future__ import annotations

import contextlib
import errno
import os
import re

import numpy as np
import pytest
from eegmusic.stream.atomic import atomic_path, disk_errors, refuse_existing, staged_files, write_text
from eegmusic.stream.errors import OutputError

resource = pytest.importorskip("resource")


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Files this process writes stop at ``limit`` bytes (EFBIG, as on a full quota) inside the block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def full_disk():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_libsndfile_errors_are_one_line(tmp_path):
    """soundfile's error is a RuntimeError, not an OSError: a WAV cut short by a full disk under
    evaluate or simulate was a traceback."""
    soundfile = pytest.importorskip("soundfile")
    path = tmp_path / "song.wav"
    with pytest.raises(OutputError) as caught, file_size_limit(20_000), disk_errors(path):
        soundfile.write(path, np.zeros(100_000, np.float32), 16000)
    assert str(caught.value) == (f"cannot write {path} (System error); check the folder's permissions and "
                                 "free space"), caught.value


def test_each_writer_says_what_it_left(tmp_path):
    """The full-disk message said "what was written before stays readable" for writers that had removed
    their partial output; each says its own: kept, unchanged, or not replaced."""
    strerror = os.strerror(errno.ENOSPC)
    path = tmp_path / "kept.txt"
    with pytest.raises(OutputError, match=re.escape(f"disk full while writing {path} ({strerror}); what was "
                                                    "written before stays readable; free space or choose "
                                                    "another folder")):
        with disk_errors(path):
            full_disk()
    with pytest.raises(OutputError, match=re.escape(f"; {path} is gone; free space")):
        with disk_errors(path, tail=f"{path} is gone; free space"):
            full_disk()

    write_text(path, "old")
    with pytest.raises(OutputError) as caught, atomic_path(path):
        full_disk()
    assert str(caught.value) == (f"disk full while writing {path} ({strerror}); kept.txt is unchanged; free "
                                 "space or choose another folder")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["kept.txt"]
    fresh = tmp_path / "new.txt"   # nothing there before: "unchanged" would name a file that never was
    with pytest.raises(OutputError) as caught, atomic_path(fresh):
        full_disk()
    assert str(caught.value).endswith("; no new.txt is left; free space or choose another folder")
    assert not fresh.exists()

    folder = tmp_path / "results"
    with pytest.raises(OutputError) as caught, staged_files(folder) as stage:
        (stage / "metrics.json").write_text("{}")
        full_disk()
    assert str(caught.value) == (f"disk full while writing {folder} ({strerror}); nothing in {folder} was "
                                 "replaced; free space or choose another folder")
    assert list(folder.iterdir()) == []


def test_refuse_existing_says_what_overwrite_does(tmp_path):
    """demo's --overwrite reuses a folder and keeps its recordings; the refusal said it would replace it."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")
    with pytest.raises(OutputError, match=r"^--out folder .* already exists; pass --overwrite to replace it, "
                       "or choose another path$"):
        refuse_existing(tmp_path / "run", overwrite=False, what="--out")
    with pytest.raises(OutputError, match=r"already exists; pass --overwrite to reuse it \(its recordings "
                       r"are kept\), or choose another path$"):
        refuse_existing(tmp_path / "run", overwrite=False, what="--out",
                        does="to reuse it (its recordings are kept)")
    refuse_existing(tmp_path / "run", overwrite=True, what="--out", does="to reuse it")
