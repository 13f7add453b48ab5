"""Snapshots through shared memory: round trip, the seqlock under a racing writer, volume, liveness."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from eegmusic.decoder.shared_snapshot import (
    SnapshotReader,
    SnapshotWriter,
    check_name,
    remove_own_block,
    snapshot_folder,
    snapshot_path,
)
from eegmusic.decoder.snapshot import PipelineSnapshot
from eegmusic.stream.errors import ConfigError, StreamError
from eegmusic.stream.source import StreamHealth


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _snapshot(value: float, *, n_chans=4, n_times=50, n_frames=20) -> PipelineSnapshot:
    health = StreamHealth(effective_rate=125.0, n_samples=int(value), gaps=1, dropped_windows=0, nan_runs=0,
                          reconnects=2, clock_offset=0.001, jitter_ms=0.3, connected=True,
                          bad_channels=("E3",))
    return PipelineSnapshot(
        eeg=np.full((n_chans, n_times), value, np.float32), eeg_sfreq=125.0,
        labels=[f"E{i + 1}" for i in range(n_chans)], channel_flags=np.arange(n_chans) % 2 == 0,
        mel=np.full((128, n_frames), value, np.float32),
        truth_mel=np.full((128, n_frames), -value, np.float32),
        dynamic_r=0.25, shifted_dynamic_r=-0.03,
        latency_ms={"arrival_to_buffered": {"p50": 5.0, "p95": 7.0, "p99": 9.0, "n": 10}},
        counters={"windows": int(value), "underruns": 0}, health=health, running=True, error=None,
        frame_index=int(value), model="tiny")


def test_round_trip():
    name = _name()
    writer = SnapshotWriter(name, n_chans=4, eeg_cols=60, mel_cols=20)
    try:
        reader = SnapshotReader(name)
        assert reader.read() is None  # nothing published yet
        writer.publish(_snapshot(7.0), summary={"seconds": 1.5}, config={"stream_name": "cap"})
        snapshot, document = reader.read()
        assert snapshot.eeg.shape == (4, 50) and np.all(snapshot.eeg == 7.0)
        assert snapshot.mel.shape == (128, 20) and np.all(snapshot.truth_mel == -7.0)
        np.testing.assert_array_equal(snapshot.channel_flags, [True, False, True, False])
        assert snapshot.labels == ["E1", "E2", "E3", "E4"] and snapshot.counters["windows"] == 7
        assert snapshot.health.reconnects == 2 and snapshot.health.bad_channels == ("E3",)
        assert snapshot.latency_ms["arrival_to_buffered"]["p99"] == 9.0 and snapshot.running
        # the live r and its control, taken together: an attached dashboard shows the pair
        assert (snapshot.dynamic_r, snapshot.shifted_dynamic_r) == (0.25, -0.03)
        assert document["summary"] == {"seconds": 1.5} and document["config"] == {"stream_name": "cap"}
        # a larger snapshot keeps its newest samples
        big = _snapshot(3.0, n_times=80)
        big.eeg[:, -60:] = 4.0
        writer.publish(big)
        snapshot, document = reader.read()
        assert snapshot.eeg.shape == (4, 60) and np.all(snapshot.eeg == 4.0)
        assert document["summary"] == {"seconds": 1.5}  # the last summary stays until a new one
        reader.close()
    finally:
        writer.close()
    assert not snapshot_path(name).exists()


_RACING_WRITER = """
import sys, time
sys.path.insert(0, {tests!r})
from test_shared_snapshot import _snapshot
from eegmusic.decoder.shared_snapshot import SnapshotWriter
writer = SnapshotWriter({name!r}, n_chans=64, eeg_cols=2000, mel_cols=430)
print("ready", flush=True)
t_end, k = time.monotonic() + 4.0, 0
while time.monotonic() < t_end:
    k += 1
    writer.publish(_snapshot(float(k), n_chans=64, n_times=2000, n_frames=430))
writer.close()
"""


def test_reader_never_keeps_a_torn_snapshot():
    """A writer process publishing flat out (far faster than a decoder's 20 Hz): every snapshot a
    reader keeps is one value throughout, and most reads succeed."""
    from pathlib import Path

    name = _name()
    code = _RACING_WRITER.format(tests=str(Path(__file__).parent), name=name)
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        reader = SnapshotReader(name)
        kept, values = 0, set()
        for _ in range(200):
            copied = reader.read(attempts=50)
            if copied is not None:
                snapshot, _ = copied
                value = snapshot.eeg[0, 0]
                assert np.all(snapshot.eeg == value) and np.all(snapshot.mel == value)
                assert np.all(snapshot.truth_mel == -value)
                assert snapshot.counters["windows"] == int(value) == snapshot.frame_index
                kept += 1
                values.add(int(value))
            time.sleep(0.002)
        reader.close()
    finally:
        writer.wait(timeout=60)
        writer.stdout.close()
    assert kept > 100 and len(values) > 20  # it did race: many different snapshots were read


def test_volume_goes_from_reader_to_writer():
    name = _name()
    writer = SnapshotWriter(name, n_chans=1, eeg_cols=1, mel_cols=1)
    try:
        reader = SnapshotReader(name)
        assert writer.gain == 1.0
        reader.set_gain(0.3)
        assert writer.gain == pytest.approx(0.3) and reader.gain == pytest.approx(0.3)
        reader.set_gain(7.0)  # clamped
        assert writer.gain == 1.0
        reader.set_gain(0.0)
        assert writer.gain == 0.0
        reader.close()
    finally:
        writer.close()


def test_attaching_to_nothing_names_the_fix():
    with pytest.raises(StreamError, match=r"no running decode publishes as 'absent-\w+'.*--publish absent"):
        SnapshotReader(f"absent-{uuid.uuid4().hex[:6]}")


def test_a_killed_decode_leaves_a_stale_block_that_is_recognised_and_removed():
    name = _name()
    code = ("import sys, os; from eegmusic.decoder.shared_snapshot import SnapshotWriter; "
            f"SnapshotWriter({name!r}, n_chans=1, eeg_cols=1, mel_cols=1); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert snapshot_path(name).exists()  # the process died without cleaning up
    with pytest.raises(StreamError, match=r"is no longer running \(stale block removed\)"):
        SnapshotReader(name)
    assert not snapshot_path(name).exists()
    SnapshotWriter(name, n_chans=1, eeg_cols=1, mel_cols=1).close()  # the name is free again


def test_only_this_process_block_is_removed_by_remove_own_block():
    mine, theirs = _name(), _name()
    writer = SnapshotWriter(mine, n_chans=1, eeg_cols=1, mel_cols=1)
    writer._block.close()  # as a decode interrupted before it held its writer: nobody closes it
    writer._block = None
    code = ("import os; from eegmusic.decoder.shared_snapshot import SnapshotWriter; "
            f"SnapshotWriter({theirs!r}, n_chans=1, eeg_cols=1, mel_cols=1); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    try:
        assert remove_own_block(mine) and not snapshot_path(mine).exists()
        assert not remove_own_block(theirs) and snapshot_path(theirs).exists()  # another process's
        assert not remove_own_block(_name())  # none at all
    finally:
        snapshot_path(theirs).unlink(missing_ok=True)


def test_a_writer_interrupted_while_making_its_block_leaves_no_file(monkeypatch):
    import os

    name = _name()

    def interrupted(src, dst):
        raise KeyboardInterrupt  # Ctrl-C between writing the header and putting the block in place

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        SnapshotWriter(name, n_chans=1, eeg_cols=1, mel_cols=1)
    monkeypatch.undo()
    assert not snapshot_path(name).exists()
    assert not list(snapshot_folder().glob(f".eegmusic-{name}-*"))  # nor the half-made one


def test_a_name_in_use_is_refused():
    name = _name()
    writer = SnapshotWriter(name, n_chans=1, eeg_cols=1, mel_cols=1)
    try:
        with pytest.raises(ConfigError, match=rf"already publishes as '{name}'; pick another --publish name"):
            SnapshotWriter(name, n_chans=1, eeg_cols=1, mel_cols=1)
    finally:
        writer.close()


@pytest.mark.parametrize("name", ["", "a/b", "x" * 65, "sp ace", "../etc"])
def test_bad_names(name):
    with pytest.raises(ConfigError, match="is not usable; use 1-64 letters"):
        check_name(name)


def test_an_oversized_document_is_trimmed_never_truncated():
    name = _name()
    writer = SnapshotWriter(name, n_chans=4, eeg_cols=60, mel_cols=20)
    try:
        reader = SnapshotReader(name)
        big = _snapshot(5.0)
        big.extra = {"notes": "x" * 400_000}  # more than the block's JSON room
        writer.publish(big, summary={"seconds": 2.0})
        snapshot, document = reader.read()
        assert snapshot.extra == {} and document["summary"] is None  # what grows is left out
        assert snapshot.counters["windows"] == 5 and np.all(snapshot.eeg == 5.0)
        reader.close()
    finally:
        writer.close()


def _bad_block(path, kind: str) -> None:
    """Write a file that is not a usable block at ``path`` (as /tmp/hunt's mkblock.py did)."""
    from eegmusic.decoder.shared_snapshot import _CAPS, _PID, HEADER_BYTES, MAGIC

    if kind == "empty":
        path.write_bytes(b"")
        return
    header = np.zeros(HEADER_BYTES // 8, np.uint64)
    header[_PID // 8] = 1    # init: a live process
    header[_CAPS // 8:_CAPS // 8 + 4] = (64, 10**6, 10**6, 1 << 18)    # far more than the file holds
    data = bytearray(header.tobytes())
    data[:8] = MAGIC
    path.write_bytes(bytes(data) + b"\0" * 4096)


@pytest.mark.parametrize(("kind", "message"), [
    ("empty", "is not an eegmusic snapshot block"),
    ("bigcaps", r"is a damaged snapshot block \(its header declares \d+ bytes, the file holds 4352\)"),
    ("another user's", "belongs to another user"),
])
def test_an_unusable_block_file_is_one_line_naming_the_file(kind, message, monkeypatch):
    """Each was a traceback (ValueError from mmap or numpy, PermissionError) in gui --attach and
    decode --publish."""
    import builtins

    from eegmusic.decoder import shared_snapshot

    name = _name()
    path = snapshot_path(name)
    _bad_block(path, "empty" if kind == "another user's" else kind)
    try:
        if kind == "another user's":   # the tests run as root, who may open anything: as open says it
            def refused(file, *args, **kwargs):
                if str(file) == str(path):
                    raise PermissionError(13, "Permission denied", str(file))
                return builtins.open(file, *args, **kwargs)

            monkeypatch.setattr(shared_snapshot, "open", refused, raising=False)
        with pytest.raises(StreamError, match=message) as refusal:
            SnapshotReader(name)
        assert f"remove {path}" in str(refusal.value)
        if kind != "another user's":   # a file that is no live block is replaced by a new decode
            SnapshotWriter(name, n_chans=1, eeg_cols=1, mel_cols=1).close()
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("value", ["²", "99999999999999999999", "0", "-5", "12ab"])
def test_a_dashboard_pid_that_is_no_process_id_is_ignored_and_said(value, monkeypatch, caplog):
    """"²" passed str.isdigit and failed int(): decode --publish ended in a traceback; 10**20 passed both
    and killed the publishing thread (os.kill's OverflowError) while the decode ran on, exit 0."""
    import logging

    from eegmusic.decoder.shared_snapshot import OWNER_ENV, _pid_alive, owner_from_environment

    monkeypatch.setenv(OWNER_ENV, value)
    with caplog.at_level(logging.WARNING, logger="eegmusic.decoder.shared_snapshot"):
        assert owner_from_environment() is None
    assert f"{OWNER_ENV}={value!r} is no process id, so it is ignored" in caplog.text
    assert not _pid_alive(10**20)   # a damaged block's writer id: no process, not an exception
    monkeypatch.setenv(OWNER_ENV, str(os.getpid()))
    assert owner_from_environment() == os.getpid()
    monkeypatch.delenv(OWNER_ENV)
    assert owner_from_environment() is None
