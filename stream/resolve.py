"""Find LSL streams by name, type or source_id; errors list the streams that do exist."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pylsl
from eegmusic.stream.errors import StreamError

logger = logging.getLogger(__name__)

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

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo) -> StreamSummary:
        """Summarise a :class:`pylsl.StreamInfo`."""
        return cls(info.name(), info.type(), info.channel_count(), info.nominal_srate(), info.source_id(),
                   _FORMATS.get(info.channel_format(), "undefined"), info.hostname())

    def describe(self) -> str:
        """One line such as ``'Cap-1' (EEG, 128 ch @ 1000 Hz, source_id 'amp-7')``."""
        rate = "irregular" if self.sfreq == 0 else f"{self.sfreq:g} Hz"
        return (f"{self.name!r} ({self.stype or 'no type'}, {self.n_chans} ch @ {rate}, "
                f"{self.channel_format}, source_id {self.source_id!r})")


def list_streams(timeout: float = 1.0) -> list[StreamSummary]:
    """Return every stream visible within ``timeout`` seconds, sorted by name."""
    infos = pylsl.resolve_streams(wait_time=timeout)
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


def resolve_matching(xpath: str, matches, *, minimum: int = 1,
                     timeout: float = 1.0) -> list[pylsl.StreamInfo]:
    """Streams matching an XPath predicate, waiting up to ``timeout`` s until ``minimum`` are found.

    liblsl's predicate resolver now and then misses a stream that a full listing sees (seen on a
    loaded machine), so when fewer than ``minimum`` come back, a full listing filtered by
    ``matches(info) -> bool`` (the same condition in Python) is merged in.
    """
    found = pylsl.resolve_bypred(xpath, minimum, timeout)
    if len(found) < minimum:
        uids = {info.uid() for info in found}
        found += [info for info in pylsl.resolve_streams(wait_time=min(max(timeout, 0.2), 1.0))
                  if matches(info) and info.uid() not in uids]
    return found


def find_streams(*, name: str | None = None, stype: str | None = None, source_id: str | None = None,
                 timeout: float = 1.0, minimum: int = 1) -> list[pylsl.StreamInfo]:
    """Streams matching all the given properties, waiting up to ``timeout`` s for ``minimum``."""
    return resolve_matching(predicate(name=name, stype=stype, source_id=source_id),
                            lambda info: _matches(info, name, stype, source_id), minimum=minimum,
                            timeout=timeout)


def resolve_stream(*, name: str | None = None, stype: str | None = None, source_id: str | None = None,
                   timeout: float = 5.0) -> pylsl.StreamInfo:
    """Find one stream by name, type and/or source_id (any type-``EEG`` stream when none is given).

    Parameters
    ----------
    name, stype, source_id : str or None
        Properties the stream must have (all that are given).
    timeout : float
        Seconds to wait for it.

    Returns
    -------
    pylsl.StreamInfo
        The stream (the first, by creation time, when several match).

    Raises
    ------
    StreamError
        When no stream matches; the message lists the streams that exist.
    """
    wanted = predicate(name=name, stype=stype, source_id=source_id)
    found = find_streams(name=name, stype=stype, source_id=source_id, timeout=timeout)
    if not found:
        visible = list_streams(timeout=1.0)
        listing = "; ".join(s.describe() for s in visible) if visible else "none"
        raise StreamError(
            f"no LSL stream with {wanted} appeared within {timeout:g} s (visible: {listing}); start the "
            "stream, or pass the name of one of those"
        )
    if len(found) > 1:
        found.sort(key=lambda info: info.created_at())
        logger.warning("%d streams match %s; using %s", len(found), wanted,
                       StreamSummary.from_info(found[0]).describe())
    return found[0]
