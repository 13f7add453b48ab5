"""LSL stream descriptions that every eegmusic outlet shares.

Thin helpers over :class:`pylsl.StreamInfo` that fill in what the design contract fixes for our
outlets (docs/design.md, "LSL conventions"):

- EEG outlets: type ``EEG``, float32, a nominal rate, a unique ``source_id``, one
  ``desc/channels/channel/{label, unit, type}`` entry per channel, and the manufacturer and dataset
  provenance in ``desc`` (:func:`eeg_stream_info`);
- marker outlets: type ``Markers``, one string channel, irregular rate (:func:`marker_stream_info`);
- any other regular-rate float stream, e.g. the decoder's ``MelSpectrogram`` output of 128 channels
  at 22050/512 Hz (:func:`regular_stream_info`).

:class:`BlockOutlet` sends blocks of samples with one timestamp each (the decoder's mel frames).

Reading the channel description back (from a resolved or an inlet's full info) is
:func:`channel_info`, so a consumer and a producer agree on one spelling.

Example
-------
>>> info = eeg_stream_info("cap-1", ["E1", "E2"], 125.0, "cap-1@host")
>>> channel_info(info)["label"]
['E1', 'E2']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pylsl
from eegmusic.stream.errors import utf8

logger = logging.getLogger(__name__)

MANUFACTURER = "eegmusic"
"""Default ``desc/manufacturer`` of our outlets."""


def _lsl_text(value) -> str:
    """``str(value)`` as text LSL can send: a file name of bytes that are not UTF-8 (from a system with
    another encoding) reaches Python as surrogates, which pylsl cannot encode; they go out as U+FFFD, so
    that a replay of a folder of such a name runs (the stream names it inexactly)."""
    text = str(value)
    return text if utf8(text) else text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _append_mapping(element: pylsl.XMLElement, values: Mapping) -> None:
    """Write a (nested) mapping under an XML element: dicts become children, the rest text."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            _append_mapping(element.append_child(_lsl_text(key)), value)
        elif value is not None:
            element.append_child_value(_lsl_text(key), _lsl_text(value))


def _per_channel(value, n_chans: int, what: str) -> list[str]:
    """Broadcast one string to every channel, or check a per-channel sequence."""
    if isinstance(value, str):
        return [value] * n_chans
    values = [str(v) for v in value]
    if len(values) != n_chans:
        raise ValueError(f"{what} has {len(values)} entries for {n_chans} channels")
    return values


def regular_stream_info(
    name: str,
    stype: str,
    labels: Sequence[str],
    sfreq: float,
    source_id: str,
    *,
    unit: str | Sequence[str] = "",
    channel_type: str | Sequence[str] | None = None,
    manufacturer: str = MANUFACTURER,
    extra_desc: Mapping | None = None,
    channel_format: int = pylsl.cf_float32,
) -> pylsl.StreamInfo:
    """Describe a regular-rate numeric stream with labelled channels.

    Parameters
    ----------
    name : str
        Stream name (what clients resolve by).
    stype : str
        Content type, e.g. ``"EEG"`` or ``"MelSpectrogram"``.
    labels : sequence of str, length n_chans
        Channel labels, in the order samples carry them.
    sfreq : float
        Nominal rate in Hz (> 0).
    source_id : str
        Unique identifier of this source; inlets use it to recover a restarted stream.
    unit : str or sequence of str
        Unit of every channel, or one per channel.
    channel_type : str or sequence of str or None
        Type of every channel, or one per channel; None uses ``stype``.
    manufacturer : str
        Written to ``desc/manufacturer``.
    extra_desc : mapping or None
        More ``desc`` entries; nested mappings become nested elements (e.g.
        ``{"dataset": {"name": "NMED-T", "song": 21}}``).
    channel_format : int
        A pylsl channel format; float32 unless told.

    Returns
    -------
    info : pylsl.StreamInfo
    """
    if not sfreq > 0:
        raise ValueError(f"a regular stream needs a nominal rate > 0 Hz, got {sfreq}")
    labels = [str(label) for label in labels]
    units = _per_channel(unit, len(labels), "unit")
    types = _per_channel(stype if channel_type is None else channel_type, len(labels), "channel_type")
    info = pylsl.StreamInfo(name, stype, len(labels), float(sfreq), channel_format, source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", manufacturer)
    channels = desc.append_child("channels")
    for label, ch_unit, ch_type in zip(labels, units, types, strict=True):
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("unit", ch_unit)
        channel.append_child_value("type", ch_type)
    if extra_desc:
        _append_mapping(desc, extra_desc)
    return info


def eeg_stream_info(
    name: str,
    labels: Sequence[str],
    sfreq: float,
    source_id: str,
    *,
    unit: str | Sequence[str] = "microvolts",
    manufacturer: str = MANUFACTURER,
    extra_desc: Mapping | None = None,
    channel_type: str | Sequence[str] = "EEG",
) -> pylsl.StreamInfo:
    """Describe an EEG outlet: type ``EEG``, float32, nominal rate, labelled channels.

    Parameters
    ----------
    name, labels, sfreq, source_id
        As in :func:`regular_stream_info`.
    unit : str or sequence of str
        ``"microvolts"`` for every channel unless told (an index channel may say ``"samples"``).
    manufacturer : str
        Written to ``desc/manufacturer``.
    extra_desc : mapping or None
        More ``desc`` entries, e.g. the dataset, song and participant a replay comes from.
    channel_type : str or sequence of str
        ``"EEG"`` for every channel unless told.

    Returns
    -------
    info : pylsl.StreamInfo
    """
    return regular_stream_info(
        name, "EEG", labels, sfreq, source_id, unit=unit, channel_type=channel_type,
        manufacturer=manufacturer, extra_desc=extra_desc,
    )


def marker_source_id(source_id: str) -> str:
    """The source id of the marker stream of the EEG stream whose source id is ``source_id`` (a replay's, a
    virtual listener's): a decode picks its own replay's marker stream by it when two share a name."""
    return f"{source_id}-markers"


def marker_stream_info(name: str, source_id: str, *, extra_desc: Mapping | None = None) -> pylsl.StreamInfo:
    """Describe a marker outlet: type ``Markers``, one string channel, irregular rate.

    Parameters
    ----------
    name : str
        Stream name (a replay uses ``<eeg name>-markers``).
    source_id : str
        Unique identifier of this source.
    extra_desc : mapping or None
        More ``desc`` entries.

    Returns
    -------
    info : pylsl.StreamInfo
    """
    info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", MANUFACTURER)
    channel = desc.append_child("channels").append_child("channel")
    channel.append_child_value("label", "marker")
    channel.append_child_value("type", "Markers")
    if extra_desc:
        _append_mapping(desc, extra_desc)
    return info


def channel_info(info: pylsl.StreamInfo) -> dict[str, list[str]]:
    """Read ``desc/channels/channel/{label, unit, type}`` back from a stream description.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A full description (an inlet's ``info()``, or one built here).

    Returns
    -------
    channels : dict
        ``{"label": [...], "unit": [...], "type": [...]}``, one entry per channel found (empty lists
        when the stream carries no channel description).
    """
    out: dict[str, list[str]] = {"label": [], "unit": [], "type": []}
    channel = info.desc().child("channels").child("channel")
    while not channel.empty():
        for key, values in out.items():
            values.append(channel.child_value(key))
        channel = channel.next_sibling("channel")
    return out


class BlockOutlet:
    """An outlet that sends blocks of samples, each sample with its own LSL timestamp.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The description (e.g. from :func:`regular_stream_info`).
    chunk_size : int
        Samples liblsl sends per network packet.
    max_buffered : float
        Seconds liblsl keeps for a slow consumer.

    Example
    -------
    >>> outlet = BlockOutlet(regular_stream_info("cap-1-mel", "MelSpectrogram", ["m0"], 43.07, "x"))
    >>> outlet.push(np.zeros((1, 4), np.float32), np.arange(4) / 43.07)  # doctest: +SKIP
    """

    def __init__(self, info: pylsl.StreamInfo, *, chunk_size: int = 8, max_buffered: float = 10):
        self.name = info.name()
        self._outlet = pylsl.StreamOutlet(info, chunk_size=chunk_size, max_buffered=max_buffered)

    def push(self, samples: np.ndarray, stamps: np.ndarray) -> None:
        """Send ``samples`` (shape (n_chans, n)) stamped at LSL times ``stamps`` (shape (n,), s)."""
        self._outlet.push_chunk(np.ascontiguousarray(samples.T), np.asarray(stamps, np.float64).tolist())
