"""Write XDF recordings chunk by chunk, readable at every moment (even after SIGKILL).

XDF (the format LabRecorder writes, read by pyxdf, MNE, EEGLAB, ...) is a magic ``XDF:`` followed by
chunks, each ``[length][tag][content]``: the length is a variable-length integer (one byte giving
its width, 1, 4 or 8, then the little-endian value) counting the 2-byte tag and the content. Tags:
1 file header (XML), 2 stream header (stream id + XML), 3 samples (stream id, sample count, then per
sample an optional 8-byte timestamp and the values), 4 clock offset (stream id, collection time,
offset), 5 boundary (a fixed 16-byte UUID that lets readers resynchronise), 6 stream footer
(stream id + XML).

No maintained package on PyPI writes XDF (pyxdf, mne, mne-lsl only read it; the writers live in
LabRecorder's C++), so this module writes it itself. Every chunk is written by one ``write`` and
flushed at once, so a recording killed at any point holds every chunk written before the kill;
pyxdf reads such a file (streams without a footer).

Examples
--------
>>> with XDFWriter("s.xdf") as xdf:                                           # doctest: +SKIP
...     eeg = xdf.add_stream(name="cap", stype="EEG", channel_format="float32",
...                          nominal_srate=250.0, labels=["Fz", "Cz"], source_id="cap-1")
...     xdf.write_samples(eeg, timestamps, samples)          # samples: (n_samples, n_chans)
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from eegmusic.stream.atomic import disk_errors
from eegmusic.stream.errors import OutputError

logger = logging.getLogger(__name__)

BOUNDARY_UUID = bytes(
    [0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F, 0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4]
)
"""The boundary chunk's content, fixed by the XDF specification."""

FORMATS = {
    "float32": "<f4",
    "double64": "<f8",
    "int8": "<i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "string": None,
}
"""XDF channel formats and their little-endian numpy dtypes (strings are length-prefixed)."""

(_TAG_FILE_HEADER, _TAG_STREAM_HEADER, _TAG_SAMPLES, _TAG_CLOCK_OFFSET, _TAG_BOUNDARY, _TAG_FOOTER) = range(
    1, 7
)
_BOUNDARY_EVERY_S = 10.0


def varlen(value: int) -> bytes:
    """XDF variable-length integer: the width (1, 4 or 8) as one byte, then the value."""
    if value < 256:
        return struct.pack("<BB", 1, value)
    if value < 2**32:
        return struct.pack("<BI", 4, value)
    return struct.pack("<BQ", 8, value)


def _chunk(tag: int, content: bytes) -> bytes:
    return varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _xml(value) -> str:
    """XML of a (nested) dict/list/scalar: a list repeats its parent's element."""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            items = item if isinstance(item, list) else [item]
            parts += [f"<{key}>{_xml(entry)}</{key}>" for entry in items]
        return "".join(parts)
    return escape(str(value))


@dataclass
class _StreamState:
    stream_id: int
    channel_format: str
    n_chans: int
    first_timestamp: float | None = None
    last_timestamp: float | None = None
    sample_count: int = 0
    offsets: list[tuple[float, float]] = field(default_factory=list)


class XDFWriter:
    """An XDF file being recorded; streams are added, then samples appended as they arrive.

    Parameters
    ----------
    path : str or Path
        The ``.xdf`` file to create. An existing file is never replaced.

    Raises
    ------
    OutputError
        If ``path`` exists or cannot be created.
    """

    def __init__(self, path) -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise OutputError(
                f"{self.path} exists; a recording is never overwritten: pass another --out "
                f"(e.g. {_next_free(self.path).name})"
            ) from None
        except OSError as error:
            raise OutputError(
                f"{self.path}: cannot create the recording ({error.strerror}); pass a writable --out"
            ) from None
        self._lock = threading.Lock()
        self._size = 0   # bytes of whole chunks written: where a failed write is cut back to
        self._broken: str | None = None   # why writing failed (a full disk): no write is tried again
        self._streams: dict[int, _StreamState] = {}
        self._last_boundary = None
        header = b'<?xml version="1.0"?><info><version>1.0</version><writer>eegmusic</writer></info>'
        try:
            self._write(b"XDF:" + _chunk(_TAG_FILE_HEADER, header))
        except OutputError:   # not even the header fits: leave no empty recording behind
            os.close(self._fd)
            self.path.unlink(missing_ok=True)
            raise

    def _write(self, data: bytes) -> None:
        """Append whole chunks; on a failed write (full disk, ``ulimit -f``) cut the file back to the last
        whole chunk, so it stays a readable recording, and refuse every later write.

        Raises
        ------
        OutputError
            The disk is full or the write was refused (the message names the file).
        """
        if self._broken is not None:
            raise OutputError(self._broken)
        view = memoryview(data)
        try:
            with disk_errors(self.path):
                while view:  # os.write on a regular file writes everything except on a full disk
                    written = os.write(self._fd, view)
                    view = view[written:]
        except OutputError as error:
            with contextlib.suppress(OSError):   # shrinking a file needs no space
                os.ftruncate(self._fd, self._size)
            self._broken = str(error)
            raise
        self._size += len(data)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._fd is None

    def add_stream(
        self,
        *,
        name: str,
        stype: str,
        channel_format: str,
        nominal_srate: float,
        labels=None,
        source_id: str = "",
        units=None,
        types=None,
        positions=None,
        n_chans: int | None = None,
        desc: dict | None = None,
        created_at: float = 0.0,
    ) -> int:
        """Write a stream header; return its stream id.

        Parameters
        ----------
        name, stype : str
            Stream name and type (``EEG``, ``Markers``).
        channel_format : str
            One of :data:`FORMATS`.
        nominal_srate : float
            Hz; 0 for an irregular stream (markers).
        labels : sequence of str, optional
            Channel labels, written to ``desc/channels/channel/label``.
        units, types : sequence of str, optional
            Per channel (default ``microvolts`` and the stream type).
        positions : ndarray, shape (n_chans, 3), optional
            Electrode positions in metres, written to ``location/X,Y,Z`` in millimetres (the LSL
            convention).
        n_chans : int, optional
            Channel count when there are no labels (default ``len(labels)``, or 1).
        desc : dict, optional
            Extra ``desc`` content (nested dicts become XML elements).
        created_at : float
            LSL time the stream was created.
        """
        if channel_format not in FORMATS:
            raise ValueError(f"unknown channel_format {channel_format!r}")
        n_chans = int(n_chans if n_chans is not None else (len(labels) if labels is not None else 1))
        content = {"manufacturer": "eegmusic"} if desc is None else dict(desc)
        if labels is not None:
            channels = []
            for k, label in enumerate(labels):
                channel = {
                    "label": label,
                    "unit": units[k] if units else "microvolts",
                    "type": types[k] if types else stype,
                }
                if positions is not None and np.all(np.isfinite(positions[k])):
                    x, y, z = (1000.0 * np.asarray(positions[k], dtype=float)).tolist()
                    channel["location"] = {"X": f"{x:.4f}", "Y": f"{y:.4f}", "Z": f"{z:.4f}"}
                channels.append(channel)
            content["channels"] = {"channel": channels}
        info = {
            "name": name,
            "type": stype,
            "channel_count": n_chans,
            "nominal_srate": repr(float(nominal_srate)),
            "channel_format": channel_format,
            "source_id": source_id,
            "version": "1.1",
            "created_at": repr(float(created_at)),
        }
        xml = f'<?xml version="1.0"?><info>{_xml(info)}<desc>{_xml(content)}</desc></info>'
        with self._lock:
            stream_id = len(self._streams) + 1
            self._streams[stream_id] = _StreamState(stream_id, channel_format, n_chans)
            self._write(_chunk(_TAG_STREAM_HEADER, struct.pack("<I", stream_id) + xml.encode()))
        return stream_id

    def write_samples(self, stream_id: int, timestamps: np.ndarray, samples) -> None:
        """Append samples of one stream (one chunk, flushed).

        Parameters
        ----------
        stream_id : int
            From :meth:`add_stream`.
        timestamps : ndarray, shape (n_samples,)
            LSL time of each sample in seconds.
        samples : ndarray, shape (n_samples, n_chans), or list of str (string streams, one channel)
        """
        state = self._streams[stream_id]
        timestamps = np.asarray(timestamps, dtype="<f8").reshape(-1)
        n = len(timestamps)
        if n == 0:
            return
        if state.channel_format == "string":
            values = [[str(v)] if isinstance(v, str) else [str(x) for x in v] for v in samples]
            body = bytearray()
            for stamp, row in zip(timestamps, values, strict=True):
                body += b"\x08" + struct.pack("<d", stamp)
                for text in row:
                    encoded = text.encode("utf-8")
                    body += varlen(len(encoded)) + encoded
            payload = bytes(body)
        else:
            values = np.ascontiguousarray(
                np.asarray(samples).reshape(n, state.n_chans), dtype=FORMATS[state.channel_format]
            )
            record = np.dtype(
                [
                    ("width", "u1"),
                    ("stamp", "<f8"),
                    ("values", FORMATS[state.channel_format], (state.n_chans,)),
                ]
            )
            rows = np.empty(n, dtype=record)
            rows["width"], rows["stamp"], rows["values"] = 8, timestamps, values
            payload = rows.tobytes()
        content = struct.pack("<I", stream_id) + varlen(n) + payload
        with self._lock:
            if self._fd is None:
                raise OutputError(f"{self.path}: recording already closed")
            self._write(_chunk(_TAG_SAMPLES, content))
            if state.first_timestamp is None:
                state.first_timestamp = float(timestamps[0])
            state.last_timestamp = float(timestamps[-1])
            state.sample_count += n
            if self._last_boundary is None or timestamps[-1] - self._last_boundary > _BOUNDARY_EVERY_S:
                self._write(_chunk(_TAG_BOUNDARY, BOUNDARY_UUID))
                self._last_boundary = float(timestamps[-1])

    def write_clock_offset(self, stream_id: int, collection_time: float, offset: float) -> None:
        """Record a clock offset (what ``inlet.time_correction()`` returned at ``collection_time``)."""
        with self._lock:
            if self._fd is None:
                return
            self._streams[stream_id].offsets.append((collection_time, offset))
            self._write(_chunk(_TAG_CLOCK_OFFSET, struct.pack("<Idd", stream_id, collection_time, offset)))

    def close(self) -> None:
        """Write every stream's footer and close the file (idempotent)."""
        with self._lock:
            if self._fd is None:
                return
            # after a failed write the file ends on a whole chunk: readable without footers (as after a
            # kill), and another write would only fail again
            for state in self._streams.values() if self._broken is None else ():
                footer = {
                    "first_timestamp": repr(state.first_timestamp or 0.0),
                    "last_timestamp": repr(state.last_timestamp or 0.0),
                    "sample_count": state.sample_count,
                }
                offsets = "".join(
                    f"<offset><time>{t!r}</time><value>{v!r}</value></offset>" for t, v in state.offsets
                )
                xml = (
                    f'<?xml version="1.0"?><info>{_xml(footer)}<clock_offsets>{offsets}'
                    "</clock_offsets></info>"
                )
                self._write(_chunk(_TAG_FOOTER, struct.pack("<I", state.stream_id) + xml.encode()))
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> XDFWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _next_free(path: Path) -> Path:
    """``s.xdf`` → ``s-2.xdf`` (or the first free ``s-N.xdf``)."""
    for k in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not candidate.exists():
            return candidate
    return path.with_name(f"{path.stem}-new{path.suffix}")
