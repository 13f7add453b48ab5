"""An LSL inlet with one acquisition thread, a preallocated ring buffer and its own reconnection.

The acquisition thread pulls chunks with ``pull_chunk(dest_obj=...)`` straight into a preallocated
array, corrects timestamps with ``time_correction`` (optionally dejittered by liblsl), counts what
went wrong and writes the samples into a :class:`~stream.ringbuffer.RingBuffer`. It then hands the
chunk to an optional callback in the same thread (the :class:`~stream.source.EEGSource` preprocesses
and windows there).

Counted per stream: samples, gaps (a timestamp jump of more than 1.5 sample periods), samples
missing in gaps, non-monotonic timestamps, runs of samples with NaN/Inf or a value beyond
:data:`~stream.spec.MAX_ABS_UV` (no measurement: flagged as NaN, and zeroed by the preprocessing),
channels that stay so for over a second (named once in a warning, and kept with their bad seconds for
the run's summary), reconnections, the clock offset, timestamp jitter and the effective rate.

liblsl's own recovery is off (``recover=False``): a lost source raises at once, the thread drops the
inlet and re-resolves the stream by source_id, then by name (one query for both, the same source_id
preferred; a stream of another shape is refused, before its clock offset is estimated), query after
query without backoff, so a source that comes back is found within about a second and streams again
after liblsl's first clock estimate (about 0.65 s): within 2 s (``eegmusic bench reconnect``).

Stream health is a state (:attr:`Inlet.state`), not a log line: ``connected`` → ``stalled`` (no
sample for more than :func:`stall_after_s`: max(0.5 s, 5 sample periods), the outlet still alive)
→ ``lost`` (the connection is gone) → ``reconnected``; back to ``connected`` or ``reconnected`` when
samples flow again. Every transition is counted, timed and kept (:meth:`Inlet.transitions`), and the
first sample after a stall is flagged as a gap, so the windows that span it are flagged.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pylsl
from eegmusic.stream.channels import default_labels
from eegmusic.stream.errors import StreamError
from eegmusic.stream.montage import read_locations
from eegmusic.stream.resolve import (
    ENDED_KEPT,
    StreamSummary,
    excluding,
    predicate,
    resolve_and_open,
    resolve_matching,
)
from eegmusic.stream.ringbuffer import FLAG_GAP, FLAG_NAN, FLAG_TIME, RingBuffer
from eegmusic.stream.spec import MAX_ABS_UV
from eegmusic.stream.untrusted import ReplayedStimulus, channel_labels, description_int, description_stimulus
from pylsl.util import LostError
from pylsl.util import TimeoutError as LSLTimeoutError

logger = logging.getLogger(__name__)

GAP_PERIODS = 1.5
"""A timestamp step longer than this many sample periods is a gap."""

BAD_CHANNEL_S = 1.0
"""A channel non-finite (or beyond :data:`~stream.spec.MAX_ABS_UV`) for this long without a break is
reported as bad."""
NAMED_AT_ONCE = 8
"""Channels a bad-channel warning names before it says how many more (a whole cap going bad at once)."""

CLOCK_REFRESH_S = 5.0
RESOLVE_TRY_S = 1.0
"""A reconnect query (and, when it finds nothing, a listing) waits this long (:meth:`Inlet._reconnect`).

Not shorter: a query returns as soon as the stream answers, but some outlets answer only the
resolver's second wave, 0.5 s in (a replay's 125-channel outlet under the test suite's
``ResolveScope = machine``: 0.50 s every time, while its marker outlet answers at once), and with
0.25-s queries such a stream was never found."""
RECONNECT_LISTING_S = 0.6
"""The reconnect's fallback listing, which waits to its end: past the resolver's second wave (0.5 s)."""
PULL_TIMEOUT_S = 0.1

INLET_QUEUE_S = 60
INLET_QUEUE_MIN_SAMPLES = 2**19
"""liblsl's own queue in front of the acquisition thread (its ``max_buflen``, :func:`inlet_queue_s`):
at least 60 s at the nominal rate and at least 2**19 samples. A full queue silently drops the oldest
samples, so it outlasts any hold-up of the thread (a reconnect, a loaded machine). liblsl counts it in
nominal seconds, which a replay at ``speed`` sends that much faster: 60 s at 125 Hz was half a second
of wall time at 120x, and a soak lost samples; 2**19 samples are 35 s there (8.7 min at 1 kHz).
liblsl allocates its slots up front (measured: 8 MiB more RSS per inlet than 7 500 slots) and the
samples only as they wait (60 s of 128 float32 channels at 1 kHz is 30 MiB)."""

STALL_MIN_S = 0.5
STALL_PERIODS = 5
"""Stalled: no sample for max(:data:`STALL_MIN_S`, :data:`STALL_PERIODS` sample periods)."""

CONNECTED, STALLED, LOST, RECONNECTED = "connected", "stalled", "lost", "reconnected"
STATES = (CONNECTED, STALLED, LOST, RECONNECTED)
"""Stream health states, in the order a failing stream goes through them."""

MAX_TRANSITIONS = 64
"""Transitions kept for the summary (the oldest are dropped; the counters keep counting)."""


def inlet_queue_s(sfreq: float, buffer_s: float = 0.0) -> int:
    """liblsl's ``max_buflen`` (whole nominal seconds) for a stream at ``sfreq`` Hz, keeping ``buffer_s``."""
    return max(INLET_QUEUE_S, int(np.ceil(buffer_s)), int(np.ceil(INLET_QUEUE_MIN_SAMPLES / sfreq)))


def stall_after_s(sfreq: float) -> float:
    """Seconds without samples after which a stream of rate ``sfreq`` counts as stalled."""
    return max(STALL_MIN_S, STALL_PERIODS / sfreq) if sfreq > 0 else STALL_MIN_S


@dataclass(frozen=True)
class StreamMeta:
    """What the inlet knows about its stream once connected."""

    name: str
    stype: str
    source_id: str
    n_chans: int
    sfreq: float
    channel_format: str
    labels: tuple[str, ...] | None
    """Channel labels from the stream's description, or None when it has none."""
    song: int | None = None
    """The dataset song a replayed stream plays (its ``desc/dataset/song``), or None."""
    positions: np.ndarray | None = None
    """Electrode positions (n_chans, 3) in metres from ``desc/channels/channel/location`` (NaN rows
    where a channel has none), or None when no channel has one."""
    stimulus: ReplayedStimulus | None = None
    """What a replay of a dataset says it plays (``desc/dataset``), or None: ``decode --truth`` scores a
    replay of an XDF session, a BIDS root or an MNE file through it."""

    def describe(self) -> str:
        """One line naming the stream."""
        return (f"{self.name!r} ({self.stype}, {self.n_chans} ch @ {self.sfreq:g} Hz, "
                f"source_id {self.source_id!r})")


MAX_BUFFER_BYTES = 2 << 30
"""The most the inlet's ring buffer may take (2 GiB): 1,024 channels at 50 kHz for 10 s fit. A stream
claiming an absurd rate (1e7 Hz) made the inlet allocate 11 GB and stop answering before any check."""


def _check_stream(summary: StreamSummary, buffer_s: float = 10.0) -> None:
    """Refuse streams no EEG pipeline can read, before anything is sized from what they claim."""
    from eegmusic.stream.resample import MAX_SFREQ

    if summary.channel_format in ("string", "undefined"):
        raise StreamError(
            f"stream {summary.name!r} carries {summary.channel_format} values (type {summary.stype!r}), not "
            "numeric EEG samples; pick an EEG stream (`eegmusic streams` lists them)"
        )
    if summary.sfreq <= 0:
        raise StreamError(
            f"stream {summary.name!r} has an irregular rate; EEG must be sampled at a fixed nominal rate "
            "(set the outlet's nominal_srate)"
        )
    if summary.n_chans < 1:
        raise StreamError(f"stream {summary.name!r} has no channels; pick an EEG stream (`eegmusic streams` "
                          "lists them) or fix its outlet's channel_count")
    if summary.sfreq > MAX_SFREQ:
        raise StreamError(f"stream {summary.name!r} claims {summary.sfreq:g} Hz, above the {MAX_SFREQ:g} Hz "
                          "an EEG stream can be read at; fix its outlet's nominal_srate")
    need = summary.n_chans * summary.sfreq * max(buffer_s, 1.0) * 4
    if need > MAX_BUFFER_BYTES:
        raise StreamError(f"stream {summary.name!r} ({summary.n_chans} ch at {summary.sfreq:g} Hz) needs "
                          f"{need / 2**30:.1f} GiB to buffer {buffer_s:g} s, over the "
                          f"{MAX_BUFFER_BYTES / 2**30:g} GiB allowed; stream fewer channels or a lower rate")


def _read_labels(meta: StreamMeta) -> tuple[str, ...] | None:
    """The labels a stream's channels are read by: its own, else those of a known net (or None)."""
    return tuple(meta.labels) if meta.labels is not None else default_labels(meta.n_chans)


class Inlet:
    """One LSL stream read by one acquisition thread into a ring buffer.

    Parameters
    ----------
    name, stype, source_id : str or None
        Which stream (all that are given must match; any ``EEG`` stream when none is given).
    dejitter : bool
        Let liblsl smooth timestamps (``proc_dejitter``).
    buffer_s : float
        Seconds of raw samples kept in :attr:`ring`.
    max_chunk : int
        Largest chunk pulled at once, in samples.
    resolve_timeout : float
        Seconds :meth:`start` waits for the stream.
    on_chunk : callable or None
        ``on_chunk(data, timestamps, flags, t_arrival)`` called in the acquisition thread after each
        chunk: ``data`` (n, n_chans) is only valid during the call, ``timestamps`` (n,) LSL seconds
        (clock-corrected), ``flags`` (n,) uint8 ``FLAG_*`` bits, ``t_arrival`` the LSL clock at
        arrival.
    """

    def __init__(self, name: str | None = None, stype: str | None = None, source_id: str | None = None, *,
                 dejitter: bool = False, buffer_s: float = 10.0, max_chunk: int = 1024,
                 resolve_timeout: float = 5.0, on_chunk: Callable | None = None):
        self.wanted = {"name": name, "stype": stype, "source_id": source_id}
        self.dejitter = dejitter
        self.buffer_s = float(buffer_s)
        self.max_chunk = int(max_chunk)
        self.resolve_timeout = float(resolve_timeout)
        self.on_chunk = on_chunk
        self.meta: StreamMeta | None = None
        self.ring: RingBuffer | None = None
        self.error: str | None = None
        self.refused: str | None = None
        """Why the last stream found while reconnecting was refused (None when none was)."""
        self._inlet: pylsl.StreamInlet | None = None
        self._uid: str | None = None          # liblsl's id of the outlet instance connected now
        # outlets that said they end (:meth:`let_go`), newest last: never again (each goes within its linger)
        self._ended: collections.deque[str] = collections.deque(maxlen=ENDED_KEPT)
        self._connected_at = 0.0              # LSL time the connection now held was made
        self._letting_go: str | None = None   # the uid :meth:`let_go` named
        self._kept: tuple[np.ndarray, np.ndarray] | None = None   # what :meth:`flush` kept, taken first
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reset_counters()

    # ------------------------------------------------------------------ connection
    def _end_stream(self) -> None:
        """Close the connected stream for good (:meth:`let_go`) and enter ``lost``."""
        self._inlet.close_stream()
        self._inlet = None
        self._ended.append(self._uid)
        with self._lock:
            self.connected = False
            self.ended = True
        logger.info("stream %s ended (its source said so); waiting for it to start again",
                    self.meta.describe())
        self._enter(LOST, pylsl.local_clock())

    def _open(self, info: pylsl.StreamInfo) -> tuple[pylsl.StreamInlet, StreamMeta]:
        """Open an inlet on ``info``; return it and what the stream is (its clock offset: :meth:`_offset`)."""
        summary = StreamSummary.from_info(info)
        _check_stream(summary, self.buffer_s)
        flags = pylsl.proc_dejitter if self.dejitter else pylsl.proc_none
        max_buflen = inlet_queue_s(summary.sfreq, self.buffer_s)
        inlet = pylsl.StreamInlet(info, max_buflen=max_buflen, max_chunklen=0, recover=False,
                                  processing_flags=flags)
        try:
            full = inlet.info(timeout=2.0)
            labels = full.get_channel_labels()
            positions = read_locations(full)
            dataset = full.desc().child("dataset")
            song = description_int(dataset.child_value("song"), field="dataset/song", stream=summary.name,
                                   low=1, high=999)
            stimulus = description_stimulus(dataset, stream=summary.name)
            inlet.open_stream(timeout=2.0)
        except (LostError, LSLTimeoutError) as error:
            del inlet
            raise StreamError(
                f"stream {summary.name!r} vanished while connecting ({error}); start it again"
            ) from None
        labels = channel_labels(labels, summary.n_chans, stream=summary.name)
        meta = StreamMeta(summary.name, summary.stype, summary.source_id, summary.n_chans, summary.sfreq,
                          summary.channel_format, labels, song,
                          positions if positions is not None and len(positions) == summary.n_chans else None,
                          stimulus)
        return inlet, meta

    @staticmethod
    def _offset(inlet: pylsl.StreamInlet, name: str) -> float:
        """The stream's clock offset; 0 when liblsl has none within 2 s (the next refresh retries).

        liblsl's first estimate takes about 0.65 s (8 probes 64 ms apart), so it is asked only of a
        stream that is kept: a reconnect refuses a stream of another shape before paying for it.
        """
        try:
            return float(inlet.time_correction(timeout=2.0))
        except (LostError, LSLTimeoutError) as error:  # a lost stream shows at the first pull
            logger.warning("no clock offset for %r yet (%s); using 0 until the next estimate", name,
                           type(error).__name__)
            return 0.0

    def _use(self, inlet: pylsl.StreamInlet, offset: float, uid: str) -> None:
        self._inlet, self._uid = inlet, uid
        self._connected_at = pylsl.local_clock()
        self.ended = False
        self.clock_offset = offset
        self._last_clock_check = pylsl.local_clock()
        self._last_arrival = self._last_clock_check
        with self._lock:
            self.connected = True
        self._enter(RECONNECTED if self.state == LOST else CONNECTED, self._last_clock_check)

    # ------------------------------------------------------------------ health state
    def _enter(self, state: str, now: float) -> None:
        """Move to ``state`` at LSL time ``now``: count it, time the state left, keep the transition."""
        with self._lock:
            previous = self.state
            if state == previous:
                return
            if previous == STALLED:
                self.stalled_s += now - self._state_since
            elif previous == LOST:
                self.lost_s += now - self._state_since
            if state == STALLED:
                self.stalls += 1
            elif state == LOST:
                self.losses += 1
            self.state = state
            self._state_since = now
            self._transitions.append((now, state))
        if previous is not None and state in (STALLED, LOST) and not (state == LOST and self.ended):
            logger.warning("stream %r %s (was %s)", self.meta.name if self.meta else "?", state, previous)
        elif previous in (STALLED, LOST):
            logger.info("stream %r %s after %s", self.meta.name if self.meta else "?", state, previous)

    def seconds_in_state(self, now: float | None = None) -> float:
        """Seconds since the current state began (LSL clock)."""
        now = pylsl.local_clock() if now is None else now
        with self._lock:
            return now - self._state_since if self.state is not None else 0.0

    def transitions(self) -> list[tuple[float, str]]:
        """The newest state changes as (LSL time, state), oldest first."""
        with self._lock:
            return list(self._transitions)

    def state_totals(self, now: float | None = None) -> dict:
        """``state``, ``stalls``, ``stalled_s``, ``losses``, ``lost_s`` (seconds include the current one)."""
        now = pylsl.local_clock() if now is None else now
        with self._lock:
            ongoing = now - self._state_since if self.state is not None else 0.0
            return {"state": self.state or "connecting", "stalls": self.stalls,
                    "stalled_s": self.stalled_s + (ongoing if self.state == STALLED else 0.0),
                    "losses": self.losses, "lost_s": self.lost_s + (ongoing if self.state == LOST else 0.0)}

    def connect(self) -> StreamMeta:
        """Resolve and open the stream (in the calling thread); return what it is.

        Raises
        ------
        StreamError
            No such stream (the message lists those visible), a string-typed or irregular-rate stream.
        """
        def open_stream(info: pylsl.StreamInfo):   # while the resolver listens for a same-named twin
            inlet, meta = self._open(info)
            return info, inlet, meta, self._offset(inlet, meta.name)

        info, inlet, meta, offset = resolve_and_open(open_stream, **self.wanted, timeout=self.resolve_timeout)
        self.meta = meta
        self._stall_s = stall_after_s(meta.sfreq)
        self._use(inlet, offset, info.uid())
        self.ring = RingBuffer(meta.n_chans, max(1, int(self.buffer_s * meta.sfreq)))
        np_dtype = pylsl.lib.fmt2npdtype[info.channel_format()]
        self._dest = np.empty((self.max_chunk, meta.n_chans), dtype=np_dtype)
        self._bad_run = np.zeros(meta.n_chans, dtype=np.int64)
        self._bad_total = np.zeros(meta.n_chans, dtype=np.int64)
        self._named_bad = np.zeros(meta.n_chans, dtype=bool)
        logger.info("connected to %s", meta.describe())
        return meta

    def flush(self, keep: int = 0) -> int:
        """Discard the samples queued in the connected inlet and not yet pulled, but the newest ``keep``;
        return how many were discarded. Call it before :meth:`start`: the kept ones are the first the
        acquisition thread takes, as one chunk arriving when it starts."""
        if self._inlet is None:
            return 0
        if keep <= 0:
            return int(self._inlet.flush())
        kept: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque()
        n_kept = n_seen = 0
        while True:
            try:
                _, timestamps = self._inlet.pull_chunk(timeout=0.0, max_samples=self.max_chunk,
                                                       dest_obj=self._dest, as_numpy=True)
            except LostError:   # the acquisition thread finds it lost at its first pull
                break
            n = len(timestamps)
            if not n:
                break
            kept.append((self._dest[:n].copy(), np.array(timestamps, np.float64)))   # both reused by pylsl
            n_kept += n
            n_seen += n
            while n_kept - len(kept[0][1]) >= keep:   # the oldest chunk is not needed for the newest keep
                n_kept -= len(kept.popleft()[1])
        if kept:
            data = np.concatenate([chunk for chunk, _ in kept])[-keep:]
            self._kept = (data, np.concatenate([stamps for _, stamps in kept])[-keep:])
            return n_seen - len(data)
        return 0

    def start(self) -> None:
        """Connect (unless :meth:`connect` was called) and start the acquisition thread."""
        if self._thread is not None:
            return
        if self._inlet is None:
            self.connect()
        self._stop.clear()
        self._last_arrival = pylsl.local_clock()  # the stall clock starts with acquisition
        self._thread = threading.Thread(target=self._run, name=f"lsl-inlet-{self.meta.name}", daemon=True)
        self._thread.start()

    def let_go(self, said_at: float) -> None:
        """The source said at LSL time ``said_at`` that it ends (a replay's ``replay_end`` marker): close the
        stream before its outlet goes, count it as lost and wait for the stream to return, never to this
        outlet again. An end said before the connection now held was made is an earlier outlet's (read
        late, after a reconnect to the next replay) and changes nothing.

        liblsl prints "ERR| Stream transmission broke off" when an outlet goes under a connected inlet:
        every decode that followed a replay to its end printed it. The acquisition thread does the
        closing (the liblsl inlet is its own), after taking what has arrived.
        """
        if said_at >= self._connected_at:
            self._letting_go = self._uid

    def stop(self) -> None:
        """Stop the thread and close the inlet (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._inlet = None  # destroys the liblsl inlet
        self.connected = False

    def __enter__(self) -> Inlet:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ acquisition thread
    def _run(self) -> None:
        try:
            self._acquire()
        except Exception as error:  # never die silently: health() reports it
            logger.exception("acquisition stopped")
            self.error = f"{type(error).__name__}: {error}"
            self._inlet = None
            with self._lock:
                self.connected = False

    def _acquire(self) -> None:
        if self._kept is not None:
            (data, timestamps), self._kept = self._kept, None
            self._take(data, timestamps)
        while not self._stop.is_set():
            if self._inlet is None:
                self._reconnect()
                continue
            try:
                _, timestamps = self._inlet.pull_chunk(timeout=PULL_TIMEOUT_S, max_samples=self.max_chunk,
                                                       dest_obj=self._dest, min_samples=1,
                                                       as_numpy=True)
            except LostError:
                logger.warning("lost stream %s; trying to reconnect", self.meta.describe())
                self._inlet = None
                with self._lock:
                    self.connected = False
                self._enter(LOST, pylsl.local_clock())
                continue
            n = len(timestamps)
            if n == 0 and self._letting_go is not None:   # every sample that arrived is taken: let go now
                ending, self._letting_go = self._letting_go, None
                if ending == self._uid:      # not a stream connected since
                    self._end_stream()
                    continue
            if n == 0:
                now = pylsl.local_clock()
                if self.state in (CONNECTED, RECONNECTED) and now - self._last_arrival > self._stall_s:
                    self._enter(STALLED, now)
                continue
            self._take(self._dest[:n], timestamps)

    def _take(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        """One chunk pulled from the stream: check it, keep it in the ring buffer and pass it on."""
        t_arrival = pylsl.local_clock()
        self._last_arrival = t_arrival
        resumed = self.state == STALLED
        if resumed:
            self._enter(CONNECTED if self.losses == 0 else RECONNECTED, t_arrival)
        self._refresh_clock(t_arrival)
        timestamps = timestamps + self.clock_offset
        flags = self._inspect(data, timestamps, t_arrival)
        if resumed:
            flags[0] |= FLAG_GAP  # samples stopped arriving: what spans the stall is not clean
        self.ring.write(data.T, timestamps, flags)
        if self.on_chunk is not None:
            self.on_chunk(data, timestamps, flags, t_arrival)

    def _refresh_clock(self, now: float) -> None:
        if now - self._last_clock_check < CLOCK_REFRESH_S:
            return
        self._last_clock_check = now
        try:
            self.clock_offset = float(self._inlet.time_correction(timeout=0.1))
        except (LostError, LSLTimeoutError):
            pass  # keep the last offset; a lost stream shows up at the next pull

    def _reconnect(self) -> None:
        """Re-resolve by source_id, then by name, query after query, until found or stopped.

        A query returns as soon as the stream answers; a fruitless try waits one query
        (:data:`RESOLVE_TRY_S`) and one listing (:data:`RECONNECT_LISTING_S`), which paces the loop,
        so there is no backoff on top.
        """
        meta = self.meta
        by_name = predicate(name=meta.name, stype=meta.stype)
        xpath = f"{predicate(source_id=meta.source_id)} or ({by_name})" if meta.source_id else by_name

        def matches(info: pylsl.StreamInfo) -> bool:
            return (bool(meta.source_id) and info.source_id() == meta.source_id) or (
                info.name() == meta.name and info.type() == meta.stype)

        refused: set[str] = set()  # streams already reported as not matching (uid)
        self.refused = None        # a refusal of an earlier loss is not this one's
        while not self._stop.is_set():
            # one query for both, the streams already refused left out, so it returns at the first
            # answer of one not yet tried
            candidates = resolve_matching(excluding(xpath, refused | set(self._ended)), matches,
                                          timeout=RESOLVE_TRY_S, listing_s=RECONNECT_LISTING_S)
            candidates.sort(key=lambda info: info.source_id() != meta.source_id)  # same source_id first
            for info in candidates:
                if info.uid() in refused or info.uid() in self._ended:
                    continue
                try:
                    inlet, new = self._open(info)
                except StreamError as error:
                    self.refused = str(error)
                    logger.warning("reconnect: %s", error)
                    continue
                same_kind = (new.n_chans, new.sfreq, new.channel_format) == (meta.n_chans, meta.sfreq,
                                                                              meta.channel_format)
                # labels as the first connection read them (an unlabelled known net: the default
                # ones), so a stream back with its channels in another order is never mapped wrong
                read_as, back_as = _read_labels(meta), _read_labels(new)
                if not same_kind or back_as != read_as:
                    self.refused = (f"{new.describe()} does not match {meta.describe()}"
                                    + (": other channel labels or label order" if same_kind else ""))
                    logger.warning("reconnect: %s; still waiting", self.refused)
                    refused.add(info.uid())
                    del inlet
                    continue
                self._use(inlet, self._offset(inlet, new.name), info.uid())
                with self._lock:
                    self.reconnects += 1
                logger.info("reconnected to %s", new.describe())
                return

    # ------------------------------------------------------------------ counters
    def _reset_counters(self) -> None:
        self.n_samples = 0
        self.gaps = 0
        self.missing_samples = 0
        self.non_monotonic = 0
        self.nan_runs = 0
        self.nan_samples = 0
        self.reconnects = 0
        self.connected = False
        self.ended = False
        """The source said it ended (:meth:`let_go`) and no stream has come back since."""
        self.state: str | None = None
        self.stalls = 0
        self.stalled_s = 0.0
        self.losses = 0
        self.lost_s = 0.0
        self._state_since = 0.0
        self._last_arrival = 0.0
        self._stall_s = STALL_MIN_S
        self._transitions: collections.deque[tuple[float, str]] = collections.deque(maxlen=MAX_TRANSITIONS)
        self.clock_offset = 0.0
        self._jitter_sq = 0.0
        self._last_time: float | None = None
        self._in_nan_run = False
        self._rate_marks: collections.deque[tuple[float, int]] = collections.deque()
        self._bad_run = np.zeros(0, dtype=np.int64)     # samples each channel has been bad, up to now
        self._bad_total = np.zeros(0, dtype=np.int64)   # samples each channel was bad in all
        self._named_bad = np.zeros(0, dtype=bool)       # channels once bad for BAD_CHANNEL_S at a stretch

    def _inspect(self, data: np.ndarray, timestamps: np.ndarray, t_arrival: float) -> np.ndarray:
        """Count gaps, time errors and runs of bad values of one chunk; return per-sample flags.

        A value is bad when it is NaN/Inf or beyond :data:`~stream.spec.MAX_ABS_UV`: a float64 stream's
        1e308 is finite, yet no measurement, and became inf in the preprocessing's float32 cast. A bad
        value of a float stream is set to NaN in ``data`` (in place), so the ring and ``on_chunk`` see
        NaN there.
        """
        n = len(timestamps)
        period = 1.0 / self.meta.sfreq
        flags = np.zeros(n, dtype=np.uint8)
        previous = timestamps[0] - period if self._last_time is None else self._last_time
        with np.errstate(invalid="ignore"):  # inf - inf: a NaN step, a time error like the rest below
            steps = np.diff(timestamps, prepend=previous)
        # a non-finite stamp (or the step back from one) is a time error, never a gap: int(inf) killed
        # the thread in the missing-sample count
        timed = np.isfinite(steps)
        gap = timed & (steps > GAP_PERIODS * period)
        backwards = ~timed | (steps <= 0)
        flags[gap] |= FLAG_GAP
        flags[backwards] |= FLAG_TIME
        regular = ~(gap | backwards)
        if regular.any():
            deviation = steps[regular] - period
            self._jitter_sq = 0.9 * self._jitter_sq + 0.1 * float(np.mean(deviation * deviation))
        self._last_time = float(timestamps[-1])
        n_gaps = int(gap.sum())
        missing = int(np.round(steps[gap] / period).sum()) - n_gaps if n_gaps else 0
        # NaN/Inf or beyond the bound: two cheap reductions first (clean data is the normal case; a NaN
        # fails both comparisons), details only when needed
        nan_runs = nan_samples = 0
        newly_bad = None
        if not (data.max() <= MAX_ABS_UV and data.min() >= -MAX_ABS_UV):
            good = (data >= -MAX_ABS_UV) & (data <= MAX_ABS_UV)
            if np.issubdtype(data.dtype, np.floating):
                # no measurement is NaN from here on: the ring's float32 cast made 1e308 inf (with a
                # RuntimeWarning), and the preprocessing zeroes and flags NaN
                data[~good] = np.nan
            bad = ~good.all(axis=1)
            flags[bad] |= FLAG_NAN
            starts = bad & ~np.concatenate([[self._in_nan_run], bad[:-1]])
            nan_runs, nan_samples = int(starts.sum()), int(bad.sum())
            self._in_nan_run = bool(bad[-1])
            # each channel's bad run ending at each sample, the previous chunk's carried in
            position = np.arange(1, n + 1)[:, None]
            last_good = np.maximum.accumulate(np.where(good, position, 0), axis=0)
            run = np.where(last_good == 0, position + self._bad_run, position - last_good)
            self._bad_run = run[-1].astype(np.int64)
            long = run.max(axis=0) >= BAD_CHANNEL_S * self.meta.sfreq
            newly_bad = np.flatnonzero(long & ~self._named_bad)
            with self._lock:
                self._bad_total += n - good.sum(axis=0)
                self._named_bad |= long
        else:
            self._in_nan_run = False
            self._bad_run[:] = 0
        if newly_bad is not None and newly_bad.size:
            self._warn_bad(newly_bad)
        with self._lock:
            self.n_samples += n
            self.gaps += n_gaps
            self.missing_samples += max(0, missing)
            self.non_monotonic += int(backwards.sum())
            self.nan_runs += nan_runs
            self.nan_samples += nan_samples
            marks = self._rate_marks
            if not marks or t_arrival - marks[-1][0] >= 0.25:
                marks.append((t_arrival, self.n_samples))
                while len(marks) > 2 and t_arrival - marks[0][0] > 5.0:
                    marks.popleft()
        if n_gaps:
            logger.info("gap in %s: %d samples missing", self.meta.name, max(0, missing))
        return flags

    @property
    def jitter_ms(self) -> float:
        """RMS deviation of timestamp steps from the nominal period, in ms (recent average)."""
        return float(np.sqrt(self._jitter_sq) * 1000.0)

    def effective_rate(self) -> float:
        """Samples per second received over the last few seconds (0 before the first second)."""
        with self._lock:
            if not self._rate_marks:
                return 0.0
            t_first, n_first = self._rate_marks[0]
            now = pylsl.local_clock()
            if now - t_first < 0.5:
                return 0.0
            return (self.n_samples - n_first) / (now - t_first)

    def _label(self, channel: int) -> str:
        labels = self.meta.labels
        return labels[channel] if labels is not None else str(channel + 1)

    def _warn_bad(self, channels: np.ndarray) -> None:
        """One warning for the channels that have just been bad for :data:`BAD_CHANNEL_S` the first time."""
        names = [self._label(int(i)) for i in channels[:NAMED_AT_ONCE]]
        more = f" and {channels.size - NAMED_AT_ONCE} more" if channels.size > NAMED_AT_ONCE else ""
        which = f"channel {names[0]}" if channels.size == 1 else f"channels {', '.join(names)}{more}"
        logger.warning("%s of %r: no measurement (NaN/Inf or beyond ±%g µV) for %g s; zeroed and its windows "
                       "flagged while it lasts (check the electrode, or the sender's units)", which,
                       self.meta.name, MAX_ABS_UV, BAD_CHANNEL_S)

    def bad_channels(self) -> tuple[str, ...]:
        """Labels (or 1-based numbers) of channels bad (non-finite or beyond :data:`~stream.spec.MAX_ABS_UV`)
        for over :data:`BAD_CHANNEL_S` up to now."""
        if self.meta is None:
            return ()
        bad = np.flatnonzero(self._bad_run >= BAD_CHANNEL_S * self.meta.sfreq)
        return tuple(self._label(int(i)) for i in bad)

    def bad_channel_seconds(self) -> dict[str, float]:
        """The channels bad for :data:`BAD_CHANNEL_S` at a stretch at any time of the run, each with its
        seconds bad in all (label, or 1-based number → seconds), in channel order."""
        if self.meta is None:
            return {}
        with self._lock:
            named, total = np.flatnonzero(self._named_bad), self._bad_total.copy()
        return {self._label(int(i)): float(total[i] / self.meta.sfreq) for i in named}
