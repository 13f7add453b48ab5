"""XDF replay: a LabRecorder-style file read back with pyxdf and played as a live stream."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from eegmusic.replay.xdf import read_xdf_stream, xdf_player
from eegmusic.stream.errors import DataFormatError, StreamError

LABELS = ["Fp1", "Fp2", "C3", "C4", "O1"]


def _chunk(tag: int, content: bytes) -> bytes:
    body = struct.pack("<H", tag) + content
    return struct.pack("<BI", 4, len(body)) + body


def _header_xml(name: str, stype: str, n_chans: int, sfreq: float, fmt: str, labels=None) -> bytes:
    channels = ""
    if labels:
        channels = "<channels>" + "".join(
            f"<channel><label>{label}</label><unit>microvolts</unit><type>EEG</type></channel>"
            for label in labels
        ) + "</channels>"
    return (
        f'<?xml version="1.0"?><info><name>{name}</name><type>{stype}</type>'
        f"<channel_count>{n_chans}</channel_count><nominal_srate>{sfreq}</nominal_srate>"
        f"<channel_format>{fmt}</channel_format><source_id>{name}-device</source_id>"
        f"<desc><manufacturer>TestAmp</manufacturer>{channels}</desc></info>"
    ).encode()


def _samples_numeric(stream_id: int, values: np.ndarray, stamps: np.ndarray) -> bytes:
    out = struct.pack("<I", stream_id) + struct.pack("<BI", 4, len(values))
    for row, stamp in zip(values.astype("<f4"), stamps, strict=True):
        out += struct.pack("<Bd", 8, stamp) + row.tobytes()
    return _chunk(3, out)


def _samples_strings(stream_id: int, values: list[str], stamps) -> bytes:
    out = struct.pack("<I", stream_id) + struct.pack("<BI", 4, len(values))
    for text, stamp in zip(values, stamps, strict=True):
        encoded = text.encode()
        out += struct.pack("<Bd", 8, stamp) + struct.pack("<BI", 4, len(encoded)) + encoded
    return _chunk(3, out)


def write_xdf(path: Path, eeg: np.ndarray, sfreq: float, *, name: str = "TestAmp-1") -> Path:
    """Write a minimal XDF file: one float32 EEG stream (n_chans, n_times) and one marker stream."""
    n_chans, n_times = eeg.shape
    stamps = 1000.0 + np.arange(n_times) / sfreq
    parts = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    eeg_header = _header_xml(name, "EEG", n_chans, sfreq, "float32", LABELS)
    parts.append(_chunk(2, struct.pack("<I", 1) + eeg_header))
    parts.append(_chunk(2, struct.pack("<I", 2) + _header_xml("TestMarkers", "Markers", 1, 0, "string")))
    half = n_times // 2  # two sample chunks, as a recorder writes them
    parts.append(_samples_numeric(1, eeg.T[:half], stamps[:half]))
    parts.append(_samples_strings(2, ["start"], [1000.0]))
    parts.append(_samples_numeric(1, eeg.T[half:], stamps[half:]))
    footer = b'<?xml version="1.0"?><info><sample_count>%d</sample_count></info>' % n_times
    parts.append(_chunk(6, struct.pack("<I", 1) + footer))
    parts.append(_chunk(6, struct.pack("<I", 2) + b'<?xml version="1.0"?><info></info>'))
    path.write_bytes(b"".join(parts))
    return path


@pytest.fixture
def xdf_file(tmp_path, rng):
    eeg = (rng.standard_normal((len(LABELS), 200)) * 20).astype(np.float32)
    return write_xdf(tmp_path / "session.xdf", eeg, 250.0), eeg


def test_read_keeps_rate_labels_and_samples(xdf_file):
    path, eeg = xdf_file
    stream = read_xdf_stream(path, "TestAmp-1")
    assert stream.sfreq == 250.0
    assert stream.stype == "EEG"
    assert stream.labels == LABELS
    assert stream.units == ["microvolts"] * len(LABELS)
    assert stream.manufacturer == "TestAmp"
    np.testing.assert_array_equal(stream.data, eeg)


@pytest.mark.lsl
def test_xdf_replay_is_received_as_recorded(xdf_file, stream_name):
    import pylsl
    from eegmusic.stream.outlet import channel_info

    path, eeg = xdf_file
    player = xdf_player(path, "TestAmp-1", name=stream_name, speed=2.0, index_channel=True,
                        wait_for_consumer_s=5.0, check_clash=False)
    with player:
        info = pylsl.resolve_byprop("name", stream_name, 1, 5.0)[0]
        inlet = pylsl.StreamInlet(info, recover=False)
        inlet.open_stream(5.0)
        full = inlet.info(5.0)
        received, stamps = [], []
        while sum(len(c) for c in received) < eeg.shape[1]:
            chunk, ts = inlet.pull_chunk(timeout=2.0, max_samples=1000, min_samples=1, as_numpy=True)
            assert len(ts), "replay stopped sending before the end of the recording"
            received.append(chunk)
            stamps.append(ts)
        del inlet
    data = np.concatenate(received)
    assert full.nominal_srate() == 250.0
    assert full.type() == "EEG"
    assert full.source_id() != "TestAmp-1-device"  # a replay never poses as the device itself
    assert channel_info(full)["label"] == [*LABELS, "index"]
    np.testing.assert_array_equal(data[:, -1], np.arange(eeg.shape[1]))
    np.testing.assert_array_equal(data[:, :-1], eeg.T)
    np.testing.assert_allclose(np.diff(np.concatenate(stamps)), 1 / 500.0, atol=1e-9)


def test_a_stream_of_no_channels_is_not_replayed(tmp_path):
    """It was published as a 0-channel stream, with exit 0, which every inlet then failed on."""
    from eegmusic.replay.xdf_writer import XDFWriter

    path = tmp_path / "zero.xdf"
    with XDFWriter(path) as writer:
        stream = writer.add_stream(name="cap", stype="EEG", channel_format="float32", nominal_srate=250.0,
                                   labels=None, n_chans=0)
        writer.write_samples(stream, 100.0 + np.arange(5) / 250.0, np.zeros((5, 0)))
    with pytest.raises(DataFormatError, match="'cap' has no channels; pass a stream that recorded EEG"):
        read_xdf_stream(path, "cap")


@pytest.mark.parametrize(
    ("content", "stream", "error", "message"),
    [
        (None, "NoSuchAmp", StreamError, "no stream named 'NoSuchAmp' (has 'TestAmp-1' (EEG"),
        (None, "TestMarkers", StreamError, "irregular or string-valued"),
        (b"not an xdf file at all", "TestAmp-1", DataFormatError, "not a readable XDF file"),
        (b"", "TestAmp-1", DataFormatError, "not a readable XDF file"),
        ("missing", "TestAmp-1", DataFormatError, "XDF file not found"),
        # the damage named, not a stream that recorded nothing (was "holds no samples", after a warning)
        ("truncated", "TestAmp-1", DataFormatError, "damaged XDF file (pyxdf: "),
        ("header cut", "TestAmp-1", DataFormatError, "no stream header in it, a damaged or empty XDF file"),
    ],
)
def test_bad_xdf_input(xdf_file, tmp_path, content, stream, error, message):
    path, _ = xdf_file
    if content == "missing":
        path = tmp_path / "nowhere.xdf"
    elif content == "truncated":  # cut inside the first sample chunk
        cut = tmp_path / "cut.xdf"
        cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        path = cut
    elif content == "header cut":  # cut inside the file header: "no stream named … (has none)"
        cut = tmp_path / "cut.xdf"
        cut.write_bytes(path.read_bytes()[:40])   # inside the 63-byte file header chunk
        path = cut
    elif content is not None:
        path = tmp_path / "bad.xdf"
        path.write_bytes(content)
    with pytest.raises(error, match=message.replace("(", r"\(")) as info:
        read_xdf_stream(path, stream)
    assert "\n" not in str(info.value)


def test_two_streams_of_one_name_are_refused_naming_both(tmp_path, rng):
    """A recording holding two streams of one name (a restarted amplifier) replayed the first silently: the
    name is refused, naming both streams; the stream id picks one."""
    eeg = (rng.standard_normal((len(LABELS), 200)) * 20).astype(np.float32)
    stamps = 1000.0 + np.arange(200) / 250.0
    parts = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for stream_id in (1, 2):
        header = _header_xml("TestAmp-1", "EEG", len(LABELS), 250.0, "float32", LABELS)
        parts.append(_chunk(2, struct.pack("<I", stream_id) + header))
    parts += [_samples_numeric(1, eeg.T, stamps), _samples_numeric(2, -eeg.T, stamps)]
    path = tmp_path / "twice.xdf"
    path.write_bytes(b"".join(parts))
    with pytest.raises(StreamError, match="^[^\n]*$") as info:
        read_xdf_stream(path, "TestAmp-1")
    assert (f"2 streams are named 'TestAmp-1' (stream id 1: EEG, {len(LABELS)} ch, 250 Hz; stream id 2: EEG, "
            f"{len(LABELS)} ch, 250 Hz); pass the stream id of the one to replay instead, e.g. --xdf-stream 2"
            ) in str(info.value)
    second = read_xdf_stream(path, "2")
    assert second.name == "TestAmp-1"
    np.testing.assert_allclose(second.data, -eeg, atol=1e-5)


@pytest.mark.parametrize("keep", [30, "half"])
def test_a_cut_xdfz_is_one_line(xdf_file, tmp_path, keep, capsys):
    """A gzip stream cut short raised EOFError: a traceback from ``info`` when the cut was inside the
    signature, and "not a readable XDF file" or "corrupt" (re-record it) when inside the body."""
    import gzip

    from eegmusic.stream.cli import main

    path, _ = xdf_file
    packed = gzip.compress(path.read_bytes())
    cut = tmp_path / "cut.xdfz"
    cut.write_bytes(packed[: 30 if keep == 30 else len(packed) // 2])
    words = (r"cut\.xdfz: the compressed XDF file is cut off \(gzip: Compressed file ended before the "
             r"end-of-stream marker was reached\); copy it again from where it was recorded")
    with pytest.raises(DataFormatError, match=words):
        read_xdf_stream(cut, "TestAmp-1")
    assert main(["info", str(cut)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(words, err), err


@pytest.mark.parametrize("sfreq", [1e300, float("inf"), 1e6, float("nan"), 1e-300])
def test_a_stream_claiming_an_absurd_rate_is_refused_naming_the_file(tmp_path, rng, sfreq, capsys):
    """1e300 Hz crashed the player with a ctypes OverflowError; inf gave a line naming no file and no fix.
    The bound is the inlet's: the highest rate resampling takes. 1e-300 Hz: the replay built a marker for
    each of its 7.5e299 seconds until memory ran out."""
    from eegmusic.replay.xdf import MIN_SFREQ
    from eegmusic.stream.cli import main
    from eegmusic.stream.resample import MAX_SFREQ

    path = write_xdf(tmp_path / "fast.xdf", (rng.standard_normal((len(LABELS), 20)) * 20).astype(np.float32),
                     sfreq)
    claim = ("no rate \\(nan\\)" if np.isnan(sfreq) else
             re.escape(f"{sfreq:g} Hz, above the {MAX_SFREQ:g} Hz an EEG stream can be read at") if sfreq > 1
             else re.escape(f"{sfreq:g} Hz, below the {MIN_SFREQ:g} Hz an EEG stream is read at"))
    words = (rf"fast\.xdf: stream 'TestAmp-1' claims {claim}; the file's nominal_srate is damaged, or the "
             "recording is not EEG")
    with pytest.raises(DataFormatError, match=words):
        read_xdf_stream(path, "TestAmp-1")
    assert main(["replay", "--xdf", str(path), "--xdf-stream", "TestAmp-1", "--name", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(words, err), err


@pytest.mark.parametrize("errno_", ["ENOSPC", "EFBIG"])
def test_a_full_disk_leaves_the_recording_whole_up_to_its_last_chunk(tmp_path, monkeypatch, errno_):
    """A write cut short by a full disk (or ``ulimit -f``) left half a chunk, which read as a damaged file,
    and ``close()`` then failed again writing the footers: two chained tracebacks from ``calibrate``."""
    import errno
    import os

    from eegmusic.replay.xdf import where_it_breaks
    from eegmusic.replay.xdf_writer import XDFWriter
    from eegmusic.stream.errors import OutputError

    path = tmp_path / "s.xdf"
    values = np.arange(40, dtype=np.float32).reshape(20, 2)
    stamps = 100.0 + np.arange(20) / 250.0
    writer = XDFWriter(path)
    stream = writer.add_stream(name="cap", stype="EEG", channel_format="float32", nominal_srate=250.0,
                               labels=["Fz", "Cz"])
    writer.write_samples(stream, stamps[:10], values[:10])
    real_write, calls = os.write, []

    def disk_fills(fd, data):   # as the kernel does: what fits is written, the next write fails
        if fd != writer._fd:
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(getattr(errno, errno_), os.strerror(getattr(errno, errno_)))
        return real_write(fd, bytes(data[: len(data) // 2]))

    monkeypatch.setattr(os, "write", disk_fills)
    words = re.escape(f"disk full while writing {path} ({os.strerror(getattr(errno, errno_))}); what was "
                      "written before stays readable; free space or choose another folder")
    with pytest.raises(OutputError, match=words):
        writer.write_samples(stream, stamps[10:], values[10:])
    with pytest.raises(OutputError, match=words):   # every later write is refused the same way
        writer.write_samples(stream, stamps[10:], values[10:])
    writer.close()   # no footer attempted on a full disk
    monkeypatch.undo()
    assert where_it_breaks(path) == ""
    np.testing.assert_array_equal(read_xdf_stream(path, "cap").data, values[:10].T)


def test_a_calibration_session_claiming_a_rate_below_one_hertz_is_refused(tmp_path, capsys):
    """A session's EEG stream said 1e-99 Hz (a damaged header): info said "problems: none", and its replay
    grew by 300 MB a second (a marker for every second of its length) until memory ran out."""
    from eegmusic.replay.virtual_cap import simulate_sessions
    from eegmusic.stream.cli import main

    path, = simulate_sessions(tmp_path / "sim", montage="openbci8", sfreq=125.0, n_songs=1, n_subjects=1,
                              seconds=3.0, progress=False)
    data = path.read_bytes()
    assert data.count(b"<nominal_srate>125.0</nominal_srate>") == 1   # the EEG stream's; markers say 0
    path.write_bytes(data.replace(b"<nominal_srate>125.0</nominal_srate>",
                                  b"<nominal_srate>1e-99</nominal_srate>"))
    words = f"{path}: stream 'virtual-openbci8' claims 1e-99 Hz, below the 1 Hz an EEG stream is read at"
    for argv in (["info", str(path)], ["replay", "--data", str(path), "--song", "1", "--subject", "1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
