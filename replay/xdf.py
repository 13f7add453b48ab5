"""Read one stream of an XDF recording (LabRecorder) and replay it live.

:func:`read_xdf_stream` loads the named stream with pyxdf and keeps what a client needs to take the
replay for the original device: its type, nominal rate, channel labels, units and types, and its
samples in recording order. :func:`xdf_player` plays it through :class:`replay.player.ArrayPlayer`,
re-timed on the LSL clock at the nominal rate (the recorded timestamps are not replayed: a replay
is a new acquisition, like the original one was).

Only regular-rate numeric streams can be replayed; marker streams (irregular or string) are refused
with the list of streams that can.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from eegmusic.stream.errors import DataFormatError, StreamError, detail, require_readable
from eegmusic.stream.resample import MAX_SFREQ

logger = logging.getLogger(__name__)


@dataclass
class XDFStream:
    """One stream of an XDF file.

    Attributes
    ----------
    name, stype, source_id : str
        From the stream header.
    sfreq : float
        Nominal rate in Hz.
    data : ndarray, shape (n_chans, n_times)
        Samples in recording order (dtype as recorded).
    timestamps : ndarray, shape (n_times,)
        Recorded LSL timestamps (seconds).
    labels, units, types : list of str
        Per channel, from ``desc/channels/channel`` (``ch1``.., ``""``, the stream type when absent).
    path : Path
    """

    name: str
    stype: str
    source_id: str
    sfreq: float
    data: np.ndarray
    timestamps: np.ndarray
    labels: list[str]
    units: list[str]
    types: list[str]
    path: Path
    manufacturer: str = field(default="")


def _first(value, default=""):
    """pyxdf wraps every XML text in a list; unwrap one level."""
    if isinstance(value, list):
        value = value[0] if value else default
    return default if value is None else value


def _channels(info: dict, n_chans: int, stype: str) -> tuple[list[str], list[str], list[str]]:
    desc = _first(info.get("desc"), None)
    channels = []
    if isinstance(desc, dict):
        block = _first(desc.get("channels"), None)
        if isinstance(block, dict):
            channels = block.get("channel") or []
    labels = [str(_first(ch.get("label"), "")) if isinstance(ch, dict) else "" for ch in channels]
    units = [str(_first(ch.get("unit"), "")) if isinstance(ch, dict) else "" for ch in channels]
    types = [str(_first(ch.get("type"), "")) if isinstance(ch, dict) else "" for ch in channels]
    if len(labels) != n_chans:   # descriptions of another channel list: none can be trusted
        if channels:
            logger.warning("XDF stream has %d channel descriptions for %d channels; labelling them ch1..",
                           len(channels), n_chans)
        labels = [f"ch{i}" for i in range(1, n_chans + 1)]
        units = [""] * n_chans
        types = [stype] * n_chans
    blank = [i for i, label in enumerate(labels, start=1) if not label.strip()]
    if blank:   # one missing label cost all of them (evaluate then found none of the model's channels)
        more = "…" if len(blank) > 5 else ""
        numbers = ", ".join(map(str, blank[:5])) + more
        names = ", ".join(f"ch{i}" for i in blank[:5]) + more
        said = (f"channel {numbers} of {n_chans} has no label; calling it {names}" if len(blank) == 1 else
                f"channels {numbers} of {n_chans} have no label; calling them {names}")
        logger.warning("XDF stream '%s': %s (a model that needs its electrode will miss it; relabel the "
                       "recording)", _first(info.get("name")), said)
        labels = [label if label.strip() else f"ch{i}" for i, label in enumerate(labels, start=1)]
    types = [t or stype for t in types]
    return labels, units, types


def _cut_gzip(path: Path, error: BaseException) -> DataFormatError | None:
    """The one-line error for an ``.xdfz`` whose gzip stream ends early (EOFError), else None."""
    if not isinstance(error, EOFError):
        return None
    return DataFormatError(f"{path}: the compressed XDF file is cut off (gzip: {detail(error)}); copy it "
                           "again from where it was recorded")


def _check_magic(path: Path) -> None:
    """Refuse a file that does not start with ``XDF:`` (pyxdf would leak its handle on it)."""
    import gzip
    import zlib

    opener = gzip.open if path.suffix == ".xdfz" else open
    try:
        with opener(path, "rb") as handle:
            magic = handle.read(4)
    except EOFError as error:   # a gzip stream cut inside its first block: was a traceback
        raise _cut_gzip(path, error) from None
    except (OSError, zlib.error) as error:
        magic = f"unreadable: {error}".encode()
    if magic != b"XDF:":
        raise DataFormatError(
            f"{path}: not a readable XDF file (no 'XDF:' signature at the start); pass a file recorded by "
            "LabRecorder"
        )


class _Caught(logging.Handler):
    """Collects pyxdf's log records while one file loads."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def load_xdf(path: Path, **options) -> tuple[list[dict], str]:
    """``pyxdf.load_xdf`` with pyxdf's own log lines caught; return (streams, damage).

    ``damage`` is what pyxdf found broken (its ERROR lines: a chunk cut short, "likely XDF file
    corruption") and, for a file cut off inside a chunk, where the read stopped; "" when nothing. pyxdf
    printed those, its INFO lines and its warnings about clock segments (which every short recording
    without clock offsets gets) itself, so a one-line refusal of a truncated file came out as four lines.
    The caller folds ``damage`` into its message or its one warning; the rest goes to the debug log.

    pyxdf is given the file up to the end of its last complete chunk (:func:`_readable`): it raised
    ``struct.error`` on a file cut inside a chunk header or a clock-offset chunk, and read a sample cut
    inside its values as whole, partly made of the sample before it.

    Raises
    ------
    DataFormatError
        pyxdf cannot read the file at all.
    """
    import pyxdf

    caught = _Caught()
    pyxdf_logger = logging.getLogger("pyxdf")
    propagate = pyxdf_logger.propagate
    pyxdf_logger.addHandler(caught)
    pyxdf_logger.propagate = False
    walk = _chunk_walk(path)
    readable = walk.readable
    try:
        # pyxdf divides by a stream's time span for its effective rate: samples that all share one
        # timestamp printed numpy's divide-by-zero warning above the one-line refusal
        with np.errstate(divide="ignore", invalid="ignore"):
            streams, _ = pyxdf.load_xdf(_open_readable(path, readable), **options)
    except Exception as error:
        cut = _cut_gzip(path, error)   # pyxdf reads an .xdfz's body through gzip: cut there, it raises
        if cut is not None:
            raise cut from None
        raise _unreadable(path, error, "corrupt XDF file") from None
    finally:
        pyxdf_logger.removeHandler(caught)
        pyxdf_logger.propagate = propagate
    for record in caught.records:
        logger.debug("pyxdf: %s", record.getMessage())
    found = [r.getMessage().split(", scanning forward")[0].rstrip(".")
             for r in caught.records if r.levelno >= logging.ERROR]
    if readable is not None:
        # a broken header with no boundary after it stops pyxdf where complete chunks may still follow
        stop = "where a broken chunk header stops it" if "broken header" in walk.words \
            else "the end of its last complete chunk"
        found.append(f"read up to byte {readable:,}, {stop}")
    damage = "; ".join(dict.fromkeys(found))
    return streams, damage[:200]


def _unreadable(path: Path, error: BaseException, what: str) -> DataFormatError:
    """The one line for a file pyxdf cannot read at all: what, pyxdf's error, where it breaks, the fix.

    A file cut off anywhere reads up to the cut (:func:`_readable`), so one refused whole is damaged
    inside (a malformed chunk before its end), and only another copy or another recording has what it
    lost: "repair it" named no way to.
    """
    where = where_it_breaks(path)
    return DataFormatError(
        f"{path}: {what} ({type(error).__name__}: {str(error)[:100]}"
        + (f"; {where}" if where else "") + "); the damage is inside the file, not a cut-off end (eegmusic "
        "reads a cut-off file up to the cut): copy it again from where it was recorded, or record the "
        "session again"
    )


class _Prefix(io.RawIOBase):
    """The first ``size`` bytes of a file, read-only: what pyxdf is given of a file cut inside a chunk."""

    def __init__(self, path: Path, size: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close(), when pyxdf's `with` ends)
        self._size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        room = self._size - self._file.tell()
        if room <= 0:
            return 0
        with memoryview(buffer) as view:
            return self._file.readinto(view[:room])

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:   # the end is the cut's: the incomplete chunk is not there
            return self._file.seek(self._size + offset)
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_readable(path: Path, readable: int | None):
    """What pyxdf is given: the path, or a reader of its first ``readable`` bytes (see :func:`_readable`)."""
    if readable is None:
        return str(path)
    return io.BufferedReader(_Prefix(path, readable), buffer_size=1 << 16)


def check_xdf_file(path: Path) -> None:
    """Refuse a path that is not an XDF file (missing, a folder, not XDF) in one line."""
    if not path.is_file():
        what = "a folder, not an XDF file" if path.is_dir() else "XDF file not found"
        raise DataFormatError(f"{path}: {what}; check the path")
    require_readable(path)   # else the signature check calls a file it may not open "not XDF"
    _check_magic(path)


def damaged_words(path: Path, damage: str, where: str) -> str:
    """The start of every line about a file pyxdf read only in part: the path, pyxdf's ``damage`` and
    where the file breaks (:func:`where_it_breaks`, "" when unknown)."""
    return f"{path}: damaged XDF file (pyxdf: {damage})" + (f": {where}" if where else "")


def warn_damaged(path: Path, damage: str, going_on: str) -> None:
    """Log that pyxdf read ``path`` only in part (``damage``), where it breaks, and what follows."""
    logger.warning("%s; %s", damaged_words(path, damage, where_it_breaks(path)), going_on)


def where_it_breaks(path) -> str:
    """Where the chunk structure of a plain XDF file breaks, in words; "" when it is whole (or ``.xdfz``).

    Walks the chunk headers only (``NumLengthBytes``, ``Length``; the content is skipped), so a
    recording of any size is checked at once. pyxdf reports "likely XDF file corruption" without
    saying where; this says whether the file was cut off (its last chunk runs past the end: an
    interrupted copy or recording) or holds a broken chunk header inside.
    """
    return _chunk_walk(path).words


TRAILING_TAGS = {5: "boundary", 6: "stream footer"}
"""XDF chunk tags whose loss costs no sample and no marker: a file cut inside one of them (a recording
stopped while it wrote its footers) holds all it recorded."""


def cut_in_trailing_chunk(path) -> bool:
    """Whether a plain XDF file is cut off inside a chunk of :data:`TRAILING_TAGS` (nothing recorded is
    lost), not inside a header, a samples or a clock-offset chunk."""
    return _chunk_walk(path).cut_tag in TRAILING_TAGS


def _readable(path) -> int | None:
    """How many bytes of a plain XDF file pyxdf can read: up to the end of its last complete chunk when
    the file is cut off inside a chunk (its header, its length or its content), None when it is not.

    A crash while recording cuts a file at any byte; what comes before the cut is a whole recording.
    """
    return _chunk_walk(path).readable


class _Walk(NamedTuple):
    """What :func:`_chunk_walk` found: :func:`where_it_breaks`'s ``words``, the tag of the chunk the file
    is cut off in (``cut_tag``, when it is known) and :func:`_readable`'s byte count."""

    words: str = ""
    cut_tag: int | None = None
    readable: int | None = None


def _after_boundary(handle, position: int) -> int | None:
    """Where reading goes on after a broken chunk header at ``position``: just after the next boundary
    chunk's UUID, as pyxdf resynchronises; None when no boundary chunk follows."""
    from eegmusic.replay.xdf_writer import BOUNDARY_UUID

    block_size, overlap = 1 << 20, len(BOUNDARY_UUID) - 1
    handle.seek(position)
    carried, start = b"", position
    while True:
        block = handle.read(block_size)
        found = (carried + block).find(BOUNDARY_UUID)
        if found >= 0:
            return start + found + len(BOUNDARY_UUID)
        if len(block) < block_size:
            return None
        start += len(carried) + len(block) - overlap   # a UUID across two blocks is found in the next
        carried = (carried + block)[-overlap:]


def _chunk_walk(path) -> _Walk:
    """Walk the chunk headers of a plain XDF file (see :func:`where_it_breaks`)."""
    path = Path(path)
    if path.suffix.lower() != ".xdf":
        return _Walk()
    words = ""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            position = 4  # after "XDF:"
            while position < size:
                handle.seek(position)
                head = handle.read(1)
                n_bytes = head[0] if head else 0
                if n_bytes not in (1, 4, 8):
                    words = words or (f"the chunk at byte {position:,} has a broken header (corrupted from "
                                      "there)")
                    resumed = _after_boundary(handle, position)
                    if resumed is None:   # pyxdf reads up to the broken header, then stops
                        return _Walk(words, None, position)
                    position = resumed
                    continue
                field = handle.read(n_bytes)
                if len(field) < n_bytes:
                    return _Walk(words or f"the file ends at byte {size:,}, inside the header of a chunk",
                                 None, position)
                end = position + 1 + n_bytes + int.from_bytes(field, "little")
                if end > size:
                    if words:   # broken inside as well: more than its trailing chunk is lost
                        return _Walk(words, None, position)
                    tag = handle.read(2)
                    return _Walk(f"the file ends at byte {size:,}, partway through a {end - position:,}-byte "
                                 f"chunk that starts at byte {position:,}",
                                 int.from_bytes(tag, "little") if len(tag) == 2 else None, position)
                position = end
    except OSError:
        return _Walk()
    return _Walk(words)


def list_xdf_streams(path) -> list[dict]:
    """Headers of every stream in an XDF file (name, type, channel_count, nominal_srate, ...).

    Raises
    ------
    DataFormatError
        Missing, unreadable or corrupt file.
    """
    import pyxdf

    path = Path(path)
    check_xdf_file(path)
    try:
        return pyxdf.resolve_streams(_open_readable(path, _readable(path)))
    except Exception as error:
        cut = _cut_gzip(path, error)
        if cut is not None:
            raise cut from None
        raise _unreadable(path, error, "not a readable XDF file") from None


def _describe(streams: list[dict]) -> str:
    return ", ".join(
        f"'{s['name']}' ({s['type']}, {s['channel_count']} ch, {s['nominal_srate']:g} Hz)" for s in streams
    ) or "none"



MIN_SFREQ = 1.0
"""The lowest rate (Hz) a recording's EEG stream is read at: 1e-300 Hz made a replay build a marker for
every one of its 7.5e299 seconds until memory ran out, and ``info`` said "problems: none"."""


def check_nominal_rate(path, name: str, sfreq: float) -> None:
    """Refuse an EEG stream's ``nominal_srate`` outside :data:`MIN_SFREQ` … ``MAX_SFREQ`` (or NaN) as damage.

    Raises
    ------
    DataFormatError
    """
    if MIN_SFREQ <= sfreq <= MAX_SFREQ:   # 1e300 overflowed the player's ctypes; NaN is no rate either
        return
    if np.isnan(sfreq):
        claim = "no rate (nan)"
    elif sfreq > MAX_SFREQ:
        claim = f"{sfreq:g} Hz, above the {MAX_SFREQ:g} Hz an EEG stream can be read at"
    else:
        claim = f"{sfreq:g} Hz, below the {MIN_SFREQ:g} Hz an EEG stream is read at"
    raise DataFormatError(f"{path}: stream '{name}' claims {claim}; the file's nominal_srate is damaged, "
                          "or the recording is not EEG")


def read_xdf_stream(path, name: str) -> XDFStream:
    """Load the regular-rate numeric stream called ``name`` from an XDF file.

    Parameters
    ----------
    path : str or Path
        An ``.xdf`` file.
    name : str
        The stream's name as recorded, or its XDF stream id (digits) where several streams share the
        name (refused then, naming their ids).

    Returns
    -------
    stream : XDFStream

    Raises
    ------
    DataFormatError
        Missing or corrupt file, or a stream without samples.
    StreamError
        No stream of that name, or one that cannot be replayed (irregular rate, strings); the
        message lists the streams in the file.
    """

    path = Path(path)
    headers = list_xdf_streams(path)
    if not headers:   # was "no stream named 'cap' (has none); pass one of those"
        where = where_it_breaks(path)
        raise DataFormatError(f"{path}: no stream header in it, a damaged or empty XDF file"
                              + (f" ({where})" if where else "") + "; pass a file recorded by LabRecorder")
    matches = [s for s in headers if s["name"] == name]
    if not matches and name.isdigit():   # the way to pick one of several streams of one name
        matches = [s for s in headers if s["stream_id"] == int(name)]
    if not matches:
        raise StreamError(f"{path}: no stream named '{name}' (has {_describe(headers)}); pass one of those")
    if len(matches) > 1:   # a restarted amplifier records a second stream of its name: never guess which
        found = "; ".join(f"stream id {s['stream_id']}: {s['type']}, {s['channel_count']} ch, "
                          f"{s['nominal_srate']:g} Hz" for s in matches)
        raise StreamError(f"{path}: {len(matches)} streams are named '{name}' ({found}); pass the stream id "
                          f"of the one to replay instead, e.g. --xdf-stream {matches[-1]['stream_id']}")
    header = matches[0]
    name = header["name"]
    playable = [s for s in headers if s["nominal_srate"] > 0 and s["channel_format"] != "string"]
    if header["nominal_srate"] <= 0 or header["channel_format"] == "string":
        raise StreamError(
            f"{path}: stream '{name}' is irregular or string-valued (markers) and cannot be replayed; "
            f"pass a regular stream ({_describe(playable)})"
        )
    sfreq = header["nominal_srate"]
    check_nominal_rate(path, name, sfreq)
    streams, damage = load_xdf(path, select_streams=[header["stream_id"]], synchronize_clocks=False,
                               dejitter_timestamps=False)
    stream = streams[0]
    info = stream["info"]
    series = np.asarray(stream["time_series"])
    if series.ndim != 2 or series.shape[0] == 0:
        if damage:   # the damage is the problem, not a stream that recorded nothing (one line, not two)
            words = damaged_words(path, damage, where_it_breaks(path))
            raise DataFormatError(f"{words}; stream '{name}' has no sample before it; pass an undamaged "
                                  "recording")
        raise DataFormatError(f"{path}: stream '{name}' holds no samples; pass a stream that recorded data")
    if damage:
        warn_damaged(path, damage, "replaying what could be read")
    if series.shape[1] == 0:
        raise DataFormatError(f"{path}: stream '{name}' has no channels; pass a stream that recorded EEG "
                              f"({_describe(playable)})")
    if "footer" not in stream:
        logger.warning("%s: stream '%s' has no footer (recording cut short?); replaying the %d samples read",
                       path, name, series.shape[0])
    stype = str(_first(info.get("type"), ""))
    labels, units, types = _channels(info, series.shape[1], stype or "EEG")
    desc = _first(info.get("desc"), None)
    manufacturer = str(_first(desc.get("manufacturer"), "")) if isinstance(desc, dict) else ""
    return XDFStream(
        name=name, stype=stype, source_id=str(_first(info.get("source_id"), "")),
        sfreq=float(_first(info.get("nominal_srate"))), data=series.T,
        timestamps=np.asarray(stream["time_stamps"], dtype=np.float64), labels=labels, units=units,
        types=types, path=path, manufacturer=manufacturer,
    )


def xdf_player(path, stream: str, *, name: str | None = None, source_id: str | None = None, **kwargs):
    """An :class:`~replay.player.ArrayPlayer` that replays one stream of an XDF file.

    Parameters
    ----------
    path : str or Path
        The ``.xdf`` file.
    stream : str
        Name of the stream to replay.
    name : str or None
        Outlet name; default: the recorded stream's name.
    source_id : str or None
        Default ``<recorded source_id or name>-replay@<host>``, so it never collides with the device.
    **kwargs
        ``speed``, ``loop``, ``chunk_ms``, ``index_channel``, ``wait_for_consumer_s``, ``check_clash``.

    Returns
    -------
    player : ArrayPlayer
        Not started.
    """
    from eegmusic.replay.player import ArrayPlayer, default_source_id

    recorded = read_xdf_stream(path, stream)
    source_id = source_id or default_source_id(f"{recorded.source_id or recorded.name}-replay")
    extra = {"replay": {"xdf": str(recorded.path.resolve()), "stream": recorded.name,
                        "source_id": recorded.source_id}}
    return ArrayPlayer(
        recorded.data, recorded.sfreq, recorded.labels, name=name or recorded.name, source_id=source_id,
        stype=recorded.stype or "EEG", unit=recorded.units, channel_type=recorded.types,
        manufacturer=recorded.manufacturer or "eegmusic (XDF replay)", extra_desc=extra, **kwargs,
    )
