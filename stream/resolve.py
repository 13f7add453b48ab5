"""Find LSL streams by name, type or source_id; errors list the streams that do exist.

The choice is deterministic: after the first answer the resolver listens a little longer
(:data:`COLLISION_WAIT_S`) for other streams that match too. Only numeric streams at a regular rate
qualify as EEG input, so a marker stream of the same name is never picked. When several EEG streams
still match, nothing is picked at random: :class:`StreamError` lists them (name, type, source_id,
host, creation time) and says how to choose one (``--source-id``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pylsl
from eegmusic.stream.background import in_a_thread
from eegmusic.stream.errors import ConfigError, StreamError
from eegmusic.stream.untrusted import printable

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FORMATS = {
    pylsl.cf_float32: "float32", pylsl.cf_double64: "double64", pylsl.cf_string: "string",
    pylsl.cf_int32: "int32", pylsl.cf_int16: "int16", pylsl.cf_int8: "int8", pylsl.cf_int64: "int64",
}


@dataclass(frozen=True)
class StreamSummary:
    """What a resolver knows about a visible stream (no channel labels: those need an inlet)."""

    name: str
    stype: str
    n_chans: int
    sfreq: float
    source_id: str
    channel_format: str
    hostname: str
    created_at: float = 0.0
    """When the outlet was created (its host's LSL clock, seconds)."""

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo) -> StreamSummary:
        """Summarise a :class:`pylsl.StreamInfo`."""
        return cls(info.name(), info.type(), info.channel_count(), info.nominal_srate(), info.source_id(),
                   _FORMATS.get(info.channel_format(), "undefined"), info.hostname(), info.created_at())

    @property
    def numeric(self) -> bool:
        """Whether the stream can be EEG input: numeric samples at a fixed nominal rate."""
        return self.channel_format not in ("string", "undefined") and self.sfreq > 0

    def candidate(self) -> str:
        """One short line for a list of candidates: name, type, source_id, host, created_at."""
        return (f"{self.name!r} type {self.stype or '-'!r} source_id {self.source_id!r} host "
                f"{self.hostname!r} created_at {self.created_at:.3f}")

    def describe(self) -> str:
        """One line such as ``'Cap-1' (EEG, 128 ch @ 1000 Hz, source_id 'amp-7')``."""
        rate = "irregular" if self.sfreq == 0 else f"{self.sfreq:g} Hz"
        return (f"{self.name!r} ({printable(self.stype) or 'no type'}, {self.n_chans} ch @ {rate}, "
                f"{self.channel_format}, source_id {self.source_id!r})")


COLLISION_WAIT_S = 1.0
"""Seconds the resolver keeps listening after the first match, for same-named streams (liblsl's
resolver answers in waves; a second outlet often answers only after 0.3-0.6 s). It listens with one
full listing, filtered here: the listing is what :func:`resolve_matching` falls back on when the
predicate resolver misses a stream, and a predicate resolve waiting for a twin that is not there
would wait just as long before it. (Both, one after the other, made every connect wait 2 s.) An inlet is
opened while the listing runs (:func:`resolve_and_open`). The trade: a twin must answer within this one
second, where the two waits gave it two; liblsl's waves answer well inside it on one machine, and a
twin found later is still refused by the next connect."""


def check_timeout(timeout: float, what: str = "--timeout") -> float:
    """Return ``timeout`` as float; :class:`ConfigError` unless finite and >= 0 (liblsl waits forever)."""
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {timeout!r} is not a number of seconds; pass e.g. 5") from None
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{what} must be finite and >= 0 s (got {timeout}); pass e.g. 5")
    return value


LIBLSL_FIRST_WAVE_S = 0.5
"""When liblsl's one-shot resolver ends its first wave of queries: its ``MulticastMinRTT`` (default)."""
WAVE_NUDGE_S = 0.001
"""What :func:`liblsl_wait` adds to a wait that ends with that wave."""


def liblsl_wait(seconds: float) -> float:
    """``seconds`` as a wait to hand liblsl's one-shot resolver: moved 1 ms past its first wave's end.

    liblsl 1.18 (the build pylsl ships) overran a resolve whose wait ends exactly with the first wave by
    5 s, whenever nothing answered: a predicate resolve or a full listing asked for 0.5 s returned
    after 5.5 s (measured: 0.45, 0.499, 0.501, 0.55 s and 1-5 s end on time). ``decode --timeout 0.5``
    for a stream that was not there took 12.7 s, the resolve and the listing that names what is
    visible each overrunning, where 1.5 s was asked for.
    """
    return seconds + WAVE_NUDGE_S if abs(seconds - LIBLSL_FIRST_WAVE_S) < WAVE_NUDGE_S / 2 else seconds


def list_streams(timeout: float = 1.0) -> list[StreamSummary]:
    """Return every stream visible within ``timeout`` seconds, sorted by name."""
    return _summaries(pylsl.resolve_streams(wait_time=liblsl_wait(check_timeout(timeout))))


def _summaries(infos: list[pylsl.StreamInfo]) -> list[StreamSummary]:
    return sorted((StreamSummary.from_info(info) for info in infos), key=lambda s: (s.name, s.source_id))


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise StreamError(f"stream property {value!r} contains both quote characters; rename the stream")


def predicate(*, name: str | None = None, stype: str | None = None, source_id: str | None = None) -> str:
    """XPath predicate matching all the given properties (type EEG when none is given)."""
    parts = []
    if name:
        parts.append(f"name={_quote(name)}")
    if stype:
        parts.append(f"type={_quote(stype)}")
    if source_id:
        parts.append(f"source_id={_quote(source_id)}")
    return " and ".join(parts) if parts else "type='EEG'"


def _matches(info: pylsl.StreamInfo, name: str | None, stype: str | None, source_id: str | None) -> bool:
    if not (name or stype or source_id):
        return info.type() == "EEG"
    return ((not name or info.name() == name) and (not stype or info.type() == stype)
            and (not source_id or info.source_id() == source_id))


def resolve_matching(xpath: str, matches, *, minimum: int = 1, timeout: float = 1.0,
                     listing_s: float | None = None) -> list[pylsl.StreamInfo]:
    """Streams matching an XPath predicate, waiting up to ``timeout`` s until ``minimum`` are found.

    liblsl's predicate resolver now and then misses a stream that a full listing sees (seen on a
    loaded machine), so when fewer than ``minimum`` come back, a full listing filtered by
    ``matches(info) -> bool`` (the same condition in Python) is merged in; it waits ``listing_s``
    (default: ``timeout`` within [0.2, 1] s), always to the end.
    """
    found = pylsl.resolve_bypred(xpath, minimum, liblsl_wait(timeout))
    if len(found) < minimum:
        uids = {info.uid() for info in found}
        wait = min(max(timeout, 0.2), 1.0) if listing_s is None else listing_s
        found += [info for info in pylsl.resolve_streams(wait_time=liblsl_wait(wait))
                  if matches(info) and info.uid() not in uids]
    return found


ENDED_KEPT = 8
"""Outlets that said they end, kept out of the next look for a stream of their name (the EEG inlet's and the
marker inlet's): an ended outlet goes within its replay's 0.5-s linger, so a few suffice."""


def excluding(xpath: str, uids) -> str:
    """``xpath`` narrowed to streams whose uid is none of ``uids``."""
    clauses = [f"not(uid={_quote(uid)})" for uid in sorted(uids)]
    return " and ".join([f"({xpath})", *clauses]) if clauses else xpath


def find_streams(*, name: str | None = None, stype: str | None = None, source_id: str | None = None,
                 timeout: float = 1.0, minimum: int = 1) -> list[pylsl.StreamInfo]:
    """Streams matching all the given properties, waiting up to ``timeout`` s for ``minimum``."""
    return resolve_matching(predicate(name=name, stype=stype, source_id=source_id),
                            lambda info: _matches(info, name, stype, source_id), minimum=minimum,
                            timeout=timeout)


def resolve_stream(*, name: str | None = None, stype: str | None = None, source_id: str | None = None,
                   timeout: float = 5.0, numeric: bool = True) -> pylsl.StreamInfo:
    """Find exactly one stream by name, type and/or source_id (an ``EEG`` stream when none is given).

    Parameters
    ----------
    name, stype, source_id : str or None
        Properties the stream must have (all that are given).
    timeout : float
        Seconds to wait for it (finite, >= 0).
    numeric : bool
        Only streams with numeric samples at a regular rate qualify (EEG input); a marker stream
        that shares the name is skipped.

    Returns
    -------
    pylsl.StreamInfo
        The one stream that matches.

    Raises
    ------
    StreamError
        When no stream matches (the message lists the streams that exist), or when several do (the
        message lists them and how to pick one).
    ConfigError
        A negative or non-finite timeout.
    """
    return resolve_and_open(lambda info: info, name=name, stype=stype, source_id=source_id, timeout=timeout,
                            numeric=numeric)


def resolve_and_open(open_stream: Callable[[pylsl.StreamInfo], T], *, name: str | None = None,
                     stype: str | None = None, source_id: str | None = None, timeout: float = 5.0,
                     numeric: bool = True) -> T:
    """:func:`resolve_stream`, the stream found opened by ``open_stream(info)``; return what that returns.

    The first stream that answers is opened while the resolver listens for a same-named twin
    (:data:`COLLISION_WAIT_S`), in a thread of its own: opening an inlet (its full description, liblsl's
    first clock estimate) takes about 0.7 s, and listening 1 s, so a connect costs the listen alone. When
    the listen turns up a twin, what was opened is dropped and :class:`StreamError` says which streams
    match; when it turns up a better candidate (an EEG stream beside a marker stream of the same name),
    that one is opened instead, after the listen. A :class:`StreamError` from opening the first answer
    is raised only if that stream is still the one chosen. A stream that answers only after ``timeout``,
    in the listing that names what is visible for the error, is taken (that listing checks for twins
    too). Parameters and errors as :func:`resolve_stream`.
    """
    timeout = check_timeout(timeout)
    wanted = predicate(name=name, stype=stype, source_id=source_id)
    found = find_streams(name=name, stype=stype, source_id=source_id, timeout=timeout)
    first = opened = failed = visible = None
    if not found:
        # the listing that says what is visible waits COLLISION_WAIT_S, past a short --timeout (0 asks
        # once): a stream that answers in it is the one asked for, answering late, not one to call
        # missing while listing it. Taken: a full listing that long is the twin check too
        late = pylsl.resolve_streams(wait_time=liblsl_wait(COLLISION_WAIT_S))
        found = [info for info in late if _matches(info, name, stype, source_id)]
        visible = _summaries(late)
        if found:
            logger.info("a stream with %s answered after the %g-s timeout; taken", wanted, timeout)
    else:  # listen a little longer: a second outlet of the same name must not lose a race
        uids = {info.uid() for info in found}
        first = _choose(found, numeric)[0]
        # Ctrl-C during the open does not wait out the listen
        listing = in_a_thread(lambda: pylsl.resolve_streams(wait_time=liblsl_wait(COLLISION_WAIT_S)),
                              "lsl-collision")
        try:
            opened = open_stream(first)
        except StreamError as error:     # judged once the listen says whether it is the one
            failed = error
        found += [info for info in listing.result()
                  if _matches(info, name, stype, source_id) and info.uid() not in uids]
    try:
        chosen = _the_one(_choose(found, numeric), wanted, timeout, visible)
        if first is None or chosen.uid() != first.uid():
            return open_stream(chosen)
        if failed is not None:
            raise failed
        return opened
    finally:
        # an inlet opened and then refused (a twin turned up) is released now, not when the caller lets go
        # of the error, whose traceback holds this frame; ``failed`` would hold it in a cycle
        opened = failed = None


def _the_one(found: list[pylsl.StreamInfo], wanted: str, timeout: float,
             visible: list[StreamSummary] | None = None) -> pylsl.StreamInfo:
    """The one stream of the candidates ``found``; :class:`StreamError` naming them, or those ``visible``
    (listed for 1 s when not given)."""
    if not found:
        visible = list_streams(timeout=1.0) if visible is None else visible
        if not visible:
            raise StreamError(f"no LSL stream with {wanted} appeared within {timeout:g} s, and no stream at "
                              "all is visible; start the stream (or its amplifier's software), or check that "
                              "this machine sees its network")
        listing = "; ".join(s.describe() for s in visible)
        raise StreamError(
            f"no LSL stream with {wanted} appeared within {timeout:g} s (visible: {listing}); start the "
            "stream, or pass the name of one of those"
        )
    if len(found) > 1:
        found.sort(key=lambda info: (info.created_at(), info.source_id()))
        candidates = [StreamSummary.from_info(info) for info in found]
        listing = "; ".join(c.candidate() for c in candidates)
        ids = {c.source_id for c in candidates}
        how = (f"pass --source-id with one of {', '.join(repr(i) for i in sorted(ids))}"
               if len(ids) == len(candidates) and "" not in ids else
               "stop the duplicate outlet (one device started twice: same name, same source_id), or for two "
               "devices give each its own source_id and pass --source-id")
        raise StreamError(f"{len(found)} LSL streams match {wanted}: {listing}; {how}")
    return found[0]


def _choose(found: list[pylsl.StreamInfo], numeric: bool) -> list[pylsl.StreamInfo]:
    """The candidates among ``found``: with ``numeric``, the EEG input ones, or the first when there are
    none (it is refused by the inlet, with why)."""
    if not numeric:
        return list(found)
    return [info for info in found if StreamSummary.from_info(info).numeric] or found[:1]
