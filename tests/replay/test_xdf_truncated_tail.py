"""A calibration session cut off anywhere in its last chunks reads up to the cut.

A crash while recording (or an interrupted copy) cuts a file at any byte. A cut inside a chunk header,
a clock-offset chunk or the last small samples chunk raised ``struct.error`` inside pyxdf, which came out
as "corrupt XDF file (error: unpack requires a buffer of 8 bytes); re-record or repair it": a session
holding every song refused whole. A cut inside the last sample's values read that sample whole, partly
made of the sample before it, and said nothing.

The oracle for a cut at byte ``n`` is the same file cut at the end of its last complete chunk before
``n``: a file the writer leaves when killed between two chunks, which reads without damage.
"""

from __future__ import annotations

import logging
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from eegmusic.replay.xdf import load_xdf, read_xdf_stream
from eegmusic.replay.xdf_session import XDFSession
from eegmusic.stream.errors import DataFormatError

from tests.faults.conftest import assert_one_line_error

TAIL_BYTES = 1200
"""Every cut in this many bytes at the end of the file is read (all of the last chunks)."""

EEG = "virtual-openbci8"


class Chunk:
    """One chunk of an XDF file, from its bytes: where it starts and ends, its tag and header size."""

    def __init__(self, data: bytes, start: int) -> None:
        n_bytes = data[start]
        self.start = start
        self.header = 1 + n_bytes   # NumLengthBytes and Length, before the tag
        self.end = start + self.header + int.from_bytes(data[start + 1:start + self.header], "little")
        self.tag = struct.unpack_from("<H", data, start + self.header)[0]


def _chunks(data: bytes) -> list[Chunk]:
    """The chunks of a whole XDF file, walked here (not with the code under test)."""
    chunks, position = [], 4
    while position < len(data):
        chunks.append(Chunk(data, position))
        position = chunks[-1].end
    assert position == len(data)
    return chunks


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A simulated session of 2 songs × 3 s (EEG, markers, clock offsets, footers) and its chunks."""
    from eegmusic.replay.virtual_cap import simulate_sessions

    path, = simulate_sessions(tmp_path_factory.mktemp("cap") / "sim", montage="openbci8", sfreq=125.0,
                              n_songs=2, n_subjects=1, seconds=3.0, progress=False)
    data = path.read_bytes()
    chunks = _chunks(data)
    tags = [c.tag for c in chunks]
    assert tags.count(4) >= 2 and tags[-1] == 6 and chunks[-1].start < len(data) - TAIL_BYTES + 1000, tags
    return path, data, chunks


def _cut(folder: Path, data: bytes, n: int, name: str = "cut.xdf") -> Path:
    """The first ``n`` bytes of the session, beside its audio files (as a copy cut short would be)."""
    path = folder / name
    path.write_bytes(data[:n])
    return path


def _boundary(chunks: list[Chunk], n: int) -> int:
    """The end of the last complete chunk of a file cut at byte ``n`` (4: none, after ``XDF:``)."""
    return max([4] + [c.end for c in chunks if c.end <= n])


def _streams(path: Path) -> tuple[dict, str]:
    streams, damage = load_xdf(path, synchronize_clocks=False, dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    return {name: (np.asarray(s["time_series"]), s["time_stamps"], len(s["clock_times"]), "footer" in s)
            for name, s in by_name.items()}, damage


def test_every_cut_in_the_last_chunks_reads_what_came_before_it(session):
    """Each byte of the tail: pyxdf is given the whole chunks before the cut, no more, and the damage is
    said; was struct.error from inside chunk headers and clock offsets, and a made-up last sample."""
    path, data, chunks = session
    oracles: dict[int, dict] = {}
    for n in range(len(data) - TAIL_BYTES, len(data)):
        cut = _cut(path.parent, data, n)
        streams, damage = _streams(cut)
        boundary = _boundary(chunks, n)
        if boundary not in oracles:
            oracles[boundary], whole_damage = _streams(_cut(path.parent, data, boundary, "whole.xdf"))
            assert whole_damage == ""
        expected = oracles[boundary]
        assert streams.keys() == expected.keys(), n
        for name, (series, stamps, n_offsets, footer) in streams.items():
            np.testing.assert_array_equal(series, expected[name][0], err_msg=f"cut at {n}: {name}")
            np.testing.assert_array_equal(stamps, expected[name][1], err_msg=f"cut at {n}: {name}")
            assert (n_offsets, footer) == expected[name][2:], (n, name)
        assert (damage == "") == (n == boundary), (n, damage)   # a cut between chunks is no damage


def _offsets(data: bytes, chunks: list[Chunk]) -> list[int]:
    """Cuts in each chunk of the tail: at its start, in its length field, in its tag, in its stream id,
    in its content and at its last byte."""
    out = set()
    for chunk in chunks:
        if chunk.end <= len(data) - TAIL_BYTES:
            continue
        inside = [0, 1, chunk.header - 1, chunk.header, chunk.header + 1, chunk.header + 2, chunk.header + 4,
                  (chunk.end - chunk.start) // 2, chunk.end - chunk.start - 1]
        out.update(chunk.start + k for k in inside if chunk.start + k >= len(data) - TAIL_BYTES)
    return sorted(out)


def test_a_session_cut_in_its_last_chunks_keeps_the_songs_recorded_before_the_cut(session, caplog):
    """The session opens with the songs whose EEG and markers are whole before the cut, and warns that
    the file is damaged; ``replay --xdf`` reads its EEG the same. The reported cuts were inside a chunk
    header, the last small samples chunk and a clock-offset chunk."""
    path, data, chunks = session
    whole = XDFSession(path, subject="S01")
    assert whole.song_ids == [1, 2]
    last_samples = max(c.end for c in chunks if c.tag == 3)
    oracles: dict[int, XDFSession] = {}
    offsets = _offsets(data, chunks)
    assert len(offsets) > 40 and any(data[c.start + c.header:].startswith(b"\x04\x00") for c in chunks)
    for n in offsets:
        boundary = _boundary(chunks, n)
        if boundary not in oracles:
            oracles[boundary] = XDFSession(_cut(path.parent, data, boundary, "whole.xdf"), subject="S01")
        expected = oracles[boundary]
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            cut = XDFSession(_cut(path.parent, data, n), subject="S01")
        warned = [r.getMessage() for r in caplog.records if "damaged XDF file" in r.getMessage()]
        if n == boundary:   # stopped between two chunks: whole up to there, as the writer promises
            assert warned == [], (n, warned)
        else:
            assert len(warned) == 1 and "read what could be read" in warned[0], (n, warned)
            said = f"(pyxdf: read up to byte {boundary:,}, the end of its last complete chunk): the file ends"
            assert f"{said} at byte {n:,}" in warned[0], (n, warned)
        assert cut.song_ids == expected.song_ids, n
        if n >= last_samples:   # every sample and marker is before the cut: every song is there
            assert cut.song_ids == whole.song_ids, n
        for song_id in cut.song_ids:
            assert cut.play(song_id) == expected.play(song_id), (n, song_id)
            np.testing.assert_array_equal(cut.load_song(song_id).data, expected.load_song(song_id).data)
        stream = read_xdf_stream(cut.path, EEG)
        np.testing.assert_array_equal(stream.data, read_xdf_stream(expected.path, EEG).data)


@pytest.mark.parametrize("where", ["chunk header", "clock offset"])
def test_info_on_a_session_cut_in_its_tail_lists_its_songs_and_the_damage(session, cli, where):
    """``info`` read "corrupt XDF file (error: unpack requires a buffer of 8 bytes); re-record or repair
    it", exit 2, for a session holding both its songs."""
    path, data, chunks = session
    offset = next(c for c in chunks if c.tag == 4)
    n = offset.start + (2 if where == "chunk header" else offset.end - offset.start - 4)
    status, out, err = cli("info", _cut(path.parent, data, n))
    assert status == 1, (status, err)   # a problem listed, not a refusal
    assert "song 1 'song21.wav'" in out and "song 2 'song22.wav'" in out, out
    assert "damaged XDF file" in out and "read what could be read" in out and "corrupt" not in err, (out, err)


def test_a_file_damaged_inside_names_a_fix_the_user_has(session, cli):
    """A file refused whole is damaged before its end (a cut end reads up to the cut): it said "re-record
    or repair it", which names no way to repair it."""
    path, data, chunks = session
    header = next(c for c in chunks if c.tag == 2)
    broken = bytearray(data)
    xml = header.start + header.header + 2 + 4 + 20   # inside the first stream header's XML
    broken[xml:xml + 8] = b"<<<<<<<<"
    bad = _cut(path.parent, bytes(broken), len(broken), "bad.xdf")
    with pytest.raises(DataFormatError) as info:
        XDFSession(bad)
    message = str(info.value)
    assert "\n" not in message and "repair" not in message
    assert re.search(r"bad\.xdf: corrupt XDF file \(ParseError: .*\); the damage is inside the file, not a "
                     r"cut-off end \(eegmusic reads a cut-off file up to the cut\): copy it again from where "
                     r"it was recorded, or record the session again$", message), message
    status, _, err = cli("info", bad)
    assert_one_line_error(status, err, "bad.xdf: ", "the damage is inside the file", "copy it again")


def test_a_broken_header_is_not_called_the_end_of_the_last_complete_chunk(session, tmp_path):
    """A file whole to its end but with a broken chunk header in its tail was described as read "up to
    byte N, the end of its last complete chunk", where complete chunks follow that pyxdf cannot reach."""
    path, data, chunks = session
    broken = chunks[-3]   # in the tail, after the last boundary chunk: pyxdf cannot resynchronise
    assert 5 not in [c.tag for c in chunks if c.start > broken.start]   # 5: a boundary chunk
    spoiled = bytearray(data)
    spoiled[broken.start] = 7   # a length field of 7 bytes, which XDF never writes
    damaged = tmp_path / "broken.xdf"
    damaged.write_bytes(bytes(spoiled))
    _, damage = load_xdf(damaged)
    assert f"read up to byte {broken.start:,}, where a broken chunk header stops it" in damage, damage
    assert "last complete chunk" not in damage
