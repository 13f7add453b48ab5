"""Any array as a live LSL stream, paced by the LSL clock (:class:`ArrayPlayer`).

:class:`ArrayPlayer` plays any array ``(n_chans, n_times)`` at ``sfreq`` with channel labels, as an
LSL outlet that any client (our inlet, mne-lsl, LabRecorder) takes for an amplifier. Tests and the
XDF replay (:mod:`replay.xdf`) use it directly; :class:`replay.song_player.Player` plays one song and
one participant of a dataset through it, with the stimulus markers (:func:`replay.song_player.song_markers`),
optionally presented as a 128-channel amplifier (:mod:`replay.device_like`).

Pacing
------
Sample ``i`` gets the timestamp ``t0 + i / (sfreq * speed)`` on the LSL clock (``pylsl.local_clock``),
and every sample of a chunk carries its own timestamp. Chunk ``k`` is pushed when its last sample is
due; the thread sleeps the difference to that schedule, so one late wake-up never shifts the next
ones (lateness never accumulates, the rate never drifts). When the thread wakes late it pushes every
sample that is due by then in one chunk, so it catches up at once. ``--loop`` continues the sample
index (and so the timestamps) across the wrap.

Markers
-------
The marker outlet ``<name>-markers`` (type ``Markers``, one string channel, irregular rate) carries
the markers it was given, in data time, each stamped with the LSL time of the EEG sample it refers
to (repeated on every pass when looping); for a song these are ``song_start=21`` at the first
sample, ``song=21;t=12.000`` at every whole second of stimulus time and ``song_end=21`` just after
the last sample. When the replay ends (its data, or :meth:`~ArrayPlayer.stop`), its last marker is
``replay_end`` (:data:`~stream.untrusted.REPLAY_END`), given to connected inlets ``linger_s`` before the
outlets go, the marker outlet first: an inlet that closes its stream on it is spared liblsl's error
line for a connection that broke off.

Index channel
-------------
With ``index_channel=True`` the stream gets a last channel ``index`` (unit ``samples``, type
``MISC``) holding the running sample index as float32, exact up to 2**24; the index wraps modulo
2**24 so that it stays exact (4.6 h at 1 kHz, 37 h at 125 Hz).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping, Sequence

import numpy as np
import pylsl
from eegmusic.stream.errors import ConfigError, DataFormatError, StreamError
from eegmusic.stream.outlet import (
    MANUFACTURER,
    eeg_stream_info,
    marker_source_id,
    marker_stream_info,
    regular_stream_info,
)
from eegmusic.stream.untrusted import REPLAY_END

logger = logging.getLogger(__name__)

INDEX_LABEL = "index"
"""Label of the optional sample-index channel."""

INDEX_MODULO = 2**24
"""The index channel wraps here: float32 holds every integer below it exactly."""

_CLASH_TIMEOUT_S = 0.2
_LINGER_S = 0.5
_MAX_PUSH_S = 1.0


MIN_SPEED = 0.001
"""The slowest replay: a second of data every 17 minutes. At 1e-13 the wait for the first chunk
overflowed the platform's time_t, with a traceback."""


def check_speed(speed: float) -> float:
    """Return ``speed`` as float, or raise :class:`ConfigError` unless it is finite and in
    [:data:`MIN_SPEED`, 1000]."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise ConfigError(f"speed {speed!r} is not a number; pass a factor > 0 such as 1 or 10") from None
    if not (math.isfinite(value) and MIN_SPEED <= value <= 1000.0):
        raise ConfigError(f"speed must be in [{MIN_SPEED:g}, 1000] (got {speed}); pass 1 for real time or "
                          "e.g. 10 to go faster")
    return value


def _running_clash(name: str, source_id: str) -> list[pylsl.StreamInfo]:
    """Streams already visible with this name or this source_id."""
    if "'" in name or "'" in source_id:
        return []
    predicate = f"name='{name}' or source_id='{source_id}'"
    return list(pylsl.resolve_bypred(predicate, 1, _CLASH_TIMEOUT_S))


class ArrayPlayer:
    """Play an array as a live LSL outlet paced by the LSL clock.

    Parameters
    ----------
    data : ndarray, shape (n_chans, n_times)
        Samples to play (sent as float32), e.g. EEG in microvolts.
    sfreq : float
        Nominal rate of ``data`` in Hz.
    labels : sequence of str, length n_chans
        Channel labels.
    name : str
        Stream name.
    source_id : str or None
        Unique source id; None derives ``<name>@<host>`` (stable, so inlets recover a restart).
    stype : str
        Stream type (``"EEG"``).
    unit : str or sequence of str
        Channel unit(s).
    channel_type : str or sequence of str or None
        Channel type(s); None uses ``stype``.
    speed : float
        Time acceleration (> 0): samples go out at ``sfreq * speed`` per second of wall time; the
        nominal rate stays ``sfreq``.
    loop : bool
        Start again at the end, timestamps continuous; otherwise the stream ends after the last sample.
    chunk_ms : float
        Push interval in milliseconds of wall time (chunks hold ``round(chunk_ms * sfreq * speed /
        1000)`` samples, at least one).
    index_channel : bool
        Append the channel ``index`` carrying the sample index (see module notes).
    markers : sequence of (time_s, text) or None
        Markers of one pass in data time; they go to a marker outlet ``<name>-markers``. None: no
        marker outlet.
    manufacturer : str
        ``desc/manufacturer`` of the outlets.
    extra_desc : mapping or None
        More ``desc`` entries of the EEG outlet (dataset provenance).
    wait_for_consumer_s : float
        Before sending the first sample, wait up to this long for an inlet to connect (tests use it
        so that nothing is sent before they listen). 0: start at once, like an amplifier.
    release : threading.Event or None
        When given, the first sample waits (after ``wait_for_consumer_s``) until it is set: a caller
        that connects first and starts reading later (a benchmark's decoder, whose set-up would
        otherwise leave a backlog it discards) lets the stream go when ready.
    check_clash : bool
        Look for a running stream with the same name or source id first (0.2 s); on a clash, warn and
        make the source id unique.
    linger_s : float
        After the last sample (no loop), keep the outlet open this long, or until :meth:`stop`, so
        that connected inlets can take what is still in flight.

    Examples
    --------
    >>> with ArrayPlayer(eeg, 125.0, labels, name="test-cap") as player:  # doctest: +SKIP
    ...     player.wait(5.0)
    """

    def __init__(
        self,
        data: np.ndarray,
        sfreq: float,
        labels: Sequence[str],
        *,
        name: str,
        source_id: str | None = None,
        stype: str = "EEG",
        unit: str | Sequence[str] = "microvolts",
        channel_type: str | Sequence[str] | None = None,
        speed: float = 1.0,
        loop: bool = False,
        chunk_ms: float = 10.0,
        index_channel: bool = False,
        markers: Sequence[tuple[float, str]] | None = None,
        manufacturer: str = MANUFACTURER,
        extra_desc: Mapping | None = None,
        wait_for_consumer_s: float = 0.0,
        release: threading.Event | None = None,
        check_clash: bool = True,
        linger_s: float = _LINGER_S,
    ) -> None:
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[1] == 0 or data.shape[0] == 0:
            raise ConfigError(f"replay data must be (n_chans, n_times) with channels and samples, got shape "
                              f"{data.shape}")
        labels = [str(label) for label in labels]
        if len(labels) != data.shape[0]:
            raise ConfigError(f"{len(labels)} labels for {data.shape[0]} channels; give one label per row")
        if not (math.isfinite(float(sfreq)) and float(sfreq) > 0):
            raise ConfigError(f"replay needs a sampling rate > 0 Hz, got {sfreq}")
        if not (math.isfinite(float(chunk_ms)) and float(chunk_ms) > 0):
            raise ConfigError(f"chunk_ms must be > 0 (got {chunk_ms}); pass e.g. 10")
        if not name:
            raise ConfigError("replay needs a stream name; pass --name NAME")
        if data.dtype.kind == "f" and data.dtype.itemsize > 4:   # sent as float32: 1e300 arrived as inf
            with np.errstate(invalid="ignore"):
                largest = float(np.nanmax(np.abs(np.where(np.isfinite(data), data, 0.0))))
            if largest > float(np.finfo(np.float32).max):
                raise DataFormatError(f"replay data holds values up to {largest:.3g}, beyond float32 (the "
                                      "stream's format, max 3.4e+38); check the recording's scaling")
        self.sfreq = float(sfreq)
        self.speed = check_speed(speed)
        self.loop = bool(loop)
        self.index_channel = bool(index_channel)
        self.n_times = data.shape[1]
        self.chunk_samples = max(1, round(float(chunk_ms) * self.sfreq * self.speed / 1000.0))
        n_out = data.shape[0] + int(self.index_channel)
        # sample-major float32 copy: each chunk is a contiguous block of rows
        self._samples = np.zeros((self.n_times, n_out), dtype=np.float32)
        self._samples[:, : data.shape[0]] = data.T
        self.labels = tuple(labels + ([INDEX_LABEL] if self.index_channel else []))
        if isinstance(unit, str):
            unit = [unit] * data.shape[0]
        channel_type = stype if channel_type is None else channel_type
        if isinstance(channel_type, str):
            channel_type = [channel_type] * data.shape[0]
        self._units = list(unit) + (["samples"] if self.index_channel else [])
        self._types = list(channel_type) + (["MISC"] if self.index_channel else [])
        self._stype = stype
        self._markers = (
            sorted(((float(t), str(text)) for t, text in markers), key=lambda marker: marker[0])
            if markers is not None else None
        )
        self._manufacturer = manufacturer
        self._extra_desc = dict(extra_desc or {})
        self._wait_for_consumer_s = float(wait_for_consumer_s)
        self._release = release
        self._check_clash = check_clash
        self._linger_s = float(linger_s)
        self._end_said = False
        self.name = str(name)
        self.source_id = source_id or default_source_id(self.name)
        self.error: str | None = None
        self.samples_sent = 0
        self._outlet: pylsl.StreamOutlet | None = None
        self._marker_outlet: pylsl.StreamOutlet | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._finished = threading.Event()

    # -- public API ---------------------------------------------------------------------------
    @property
    def marker_name(self) -> str | None:
        """Name of the marker outlet, or None when the player sends no markers."""
        return None if self._markers is None else f"{self.name}-markers"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end of streaming."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def duration_s(self) -> float:
        """Wall-clock length of one pass in seconds (at ``speed``)."""
        return self.n_times / (self.sfreq * self.speed)

    def start(self) -> ArrayPlayer:
        """Create the outlets and start the pacing thread; returns self.

        Raises
        ------
        StreamError
            If the player was already started, or the outlets cannot be created.
        """
        if self._thread is not None:
            raise StreamError(f"replay '{self.name}' was already started; make a new player to play again")
        if self._check_clash:
            self._make_source_id_unique()
        describe = dict(unit=self._units, channel_type=self._types, manufacturer=self._manufacturer,
                        extra_desc=self._extra_desc)
        if self._stype == "EEG":
            info = eeg_stream_info(self.name, self.labels, self.sfreq, self.source_id, **describe)
        else:
            info = regular_stream_info(
                self.name, self._stype, self.labels, self.sfreq, self.source_id, **describe
            )
        try:
            self._outlet = pylsl.StreamOutlet(info, self.chunk_samples)
            if self._markers is not None:
                marker_info = marker_stream_info(
                    self.marker_name, marker_source_id(self.source_id), extra_desc={"stream": self.name}
                )
                self._marker_outlet = pylsl.StreamOutlet(marker_info)
        except RuntimeError as error:
            self._close_outlets()
            raise StreamError(
                f"cannot open LSL outlet '{self.name}': {error}; check the LSL set-up"
            ) from None
        logger.debug(   # `eegmusic replay` prints this to the user itself
            "replaying %d channels at %g Hz (speed %g) as '%s' (source_id %s)",
            len(self.labels), self.sfreq, self.speed, self.name, self.source_id,
        )
        self._thread = threading.Thread(target=self._run, name=f"replay-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop streaming and destroy the outlets (inlets see the stream end)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._close_outlets()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the stream has ended (end of data, or stopped); True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> ArrayPlayer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------
    def _make_source_id_unique(self) -> None:
        clashes = _running_clash(self.name, self.source_id)
        if not clashes:
            return
        unique = f"{self.source_id}-{uuid.uuid4().hex[:8]}"
        others = ", ".join(f"'{info.name()}' ({info.source_id()})" for info in clashes)
        logger.warning(
            "stream name or source id of '%s' already in use by %s; using source_id %s so that inlets "
            "can tell them apart (pass --name/--source-id to choose your own)",
            self.name, others, unique,
        )
        self.source_id = unique

    def _close_outlets(self) -> None:
        # dropping the last reference destroys the outlet: connected inlets see the stream end. The
        # marker outlet goes first: a decode follows markers again once the EEG stream is gone
        self._marker_outlet = None
        self._outlet = None

    def _chunk(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of the endless (or single) pass, shape (stop - start, n_out)."""
        first = start % self.n_times
        if first + (stop - start) <= self.n_times:
            chunk = self._samples[first : first + (stop - start)]
            if self.index_channel:
                chunk = chunk.copy()
        else:
            chunk = np.take(self._samples, np.arange(start, stop) % self.n_times, axis=0)
        if self.index_channel:
            chunk[:, -1] = np.arange(start, stop) % INDEX_MODULO
        return chunk

    def _sleep_until(self, target: float) -> bool:
        """Sleep until LSL time ``target`` without spinning; False if stopped meanwhile."""
        while True:
            remaining = target - pylsl.local_clock()
            if remaining <= 0:
                return not self._stop.is_set()
            # long waits on the stop event, a second at a time at most; the last millisecond in one short
            # sleep for precision
            if self._stop.wait(min(remaining - 0.001, 1.0) if remaining > 0.002 else remaining):
                return False

    def _run(self) -> None:
        try:
            self._stream()
        except Exception as error:  # the thread must not die silently
            self.error = f"{type(error).__name__}: {error}"
            logger.exception("replay '%s' stopped on an error", self.name)
        finally:
            self._finished.set()
            if self._say_end():   # stopped: the end of data said it and lingered already
                self._await_inlets_gone(min(self._linger_s, _LINGER_S))
            self._close_outlets()

    def _say_end(self) -> bool:
        """Send :data:`REPLAY_END` once; True if an inlet was connected to read it (worth lingering for).

        Who listens is asked before the end is said: a decode closes its marker stream as soon as it reads
        the end, and its EEG inlet only after taking the last samples (about 0.1 s later). Asked after, on a
        loaded machine, the answer came once that decode had read it: no one, so the EEG outlet closed
        under the decode's inlet (liblsl's "broke off", the end counted as a loss).
        """
        outlet = self._marker_outlet
        if outlet is None or self._end_said:
            return False
        self._end_said = True
        try:
            heard = bool(outlet.have_consumers())
            outlet.push_sample([REPLAY_END], pylsl.local_clock())
            return heard
        except RuntimeError:   # the outlet broke: nobody hears it, and the outlets go anyway
            return False

    def _await_inlets_gone(self, timeout_s: float) -> None:
        """Wait until no inlet is connected to either outlet, or ``timeout_s``: a decode closes both of its
        streams once it reads :data:`REPLAY_END` (a tenth of a second), so a stop need not wait it all."""
        end = time.monotonic() + timeout_s
        outlets = [outlet for outlet in (self._outlet, self._marker_outlet) if outlet is not None]
        while time.monotonic() < end and any(outlet.have_consumers() for outlet in outlets):
            time.sleep(0.01)

    def _stream(self) -> None:
        outlet = self._outlet
        rate = self.sfreq * self.speed
        if self._wait_for_consumer_s > 0:
            outlet.wait_for_consumers(self._wait_for_consumer_s)
        while self._release is not None and not self._release.wait(0.05):
            if self._stop.is_set():
                return
        total = None if self.loop else self.n_times
        max_push = max(self.chunk_samples, int(_MAX_PUSH_S * rate))
        marker_queue = self._marker_positions()
        next_marker = next(marker_queue, None)
        t0 = pylsl.local_clock() + self.chunk_samples / rate
        sent = 0
        while total is None or sent < total:
            end = sent + self.chunk_samples if total is None else min(sent + self.chunk_samples, total)
            if not self._sleep_until(t0 + (end - 1) / rate):
                return
            # woke late: send everything due now in one go, so that lateness does not accumulate
            due = int((pylsl.local_clock() - t0) * rate) + 1
            end = max(end, min(due, sent + max_push))
            if total is not None:
                end = min(end, total)
            stamps = t0 + np.arange(sent, end) / rate
            outlet.push_chunk(self._chunk(sent, end), stamps.tolist())
            sent = end
            self.samples_sent = sent
            at_end = total is not None and sent >= total
            while next_marker is not None and (next_marker[0] < sent or at_end):
                self._marker_outlet.push_sample([next_marker[1]], t0 + next_marker[0] / rate)
                next_marker = next(marker_queue, None)
        logger.debug("replay '%s' reached the end of its data (%d samples)", self.name, sent)
        self._say_end()
        self._stop.wait(self._linger_s)  # let connected inlets pull the last chunk before the outlet goes

    def _marker_positions(self):
        """Yield (sample position, text) of every marker, pass after pass when looping."""
        if self._markers is None:
            return
        passes = range(10**12) if self.loop else range(1)
        for index in passes:
            for time_s, text in self._markers:
                yield index * self.n_times + time_s * self.sfreq, text


def default_source_id(name: str) -> str:
    """The source id of a replay unless told: ``<name>@<host>``, stable across restarts."""
    import socket

    return f"{name}@{socket.gethostname()}"
