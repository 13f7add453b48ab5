"""Parsing strings that come from outside: LSL markers, stream descriptions, channel labels.

Any host on the network can publish a marker stream or a stream description, so every such string
is parsed here, strictly, before the rest of the code sees a value:

- a marker that does not parse is *counted and skipped* (:class:`MarkerParser`), never raised:
  one bad marker must not stop a live decode (``song=21;t=1.2.3`` once did);
- a description field that does not parse is *ignored with a warning* (:func:`description_int`):
  ``desc/dataset/song = "²"`` passes ``str.isdigit`` but not ``int``;
- channel labels are checked for count, type, length and repeats (:func:`channel_labels`); broken
  labels are refused with the stream's real channel count;
- a string shown as it came (a stream's name in a listing) is escaped first (:func:`printable`): a
  line break in it forged a row of ``eegmusic streams``, an escape sequence reached the terminal.

Example
-------
>>> parser = MarkerParser()
>>> parser.parse("song=21;t=12.000")
(21, 12.0)
>>> parser.parse("song=21;t=1.2.3") is None, parser.bad
(True, 1)
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

from eegmusic.stream.errors import StreamError

logger = logging.getLogger(__name__)

MAX_MARKER_CHARS = 256
"""Longer markers are refused without being parsed."""

MAX_PATH_CHARS = 4096
"""The longest file path a stream description or marker may name (Linux's PATH_MAX)."""

MAX_STIMULUS_S = 24 * 3600.0
"""Largest stimulus time a marker may name, in seconds."""

MAX_LABEL_CHARS = 64

_SONG_TIME = re.compile(r"song=(\d{1,6});t=(-?\d{1,9}(?:\.\d{1,9})?)", re.ASCII)
REPLAY_END = "replay_end"
"""A replay's last marker: its outlets go after it (the replay lingers 0.5 s for inlets to read it)."""

_EVENT = re.compile(rf"song_(?:start|end)=\d{{1,6}}|{REPLAY_END}", re.ASCII)
_SONG_AUDIO = re.compile(r"song_audio=([0-9]{1,6});path=(/.+)", re.DOTALL)
_INTEGER = re.compile(r"[+-]?\d{1,9}", re.ASCII)


class MarkerParser:
    """Parse ``song=NN;t=S`` markers; count what was skipped.

    Attributes
    ----------
    good : int
        Markers that gave a (song, seconds) pair.
    events : int
        Other well-formed markers (``song_start=NN``, ``song_end=NN``, ``replay_end``), accepted and not
        used.
    bad : int
        Markers that did not parse (skipped).
    last_bad : str or None
        The newest bad marker, shortened and escaped, for the summary.
    named : tuple of (int, str) or None
        The newest ``song_audio=NN;path=/abs/file`` marker (a virtual listener's: which audio file song NN
        is), as (song, path), until the caller takes it; counted as an event. The path is unchecked: the
        caller reads it only inside a folder the user named.
    """

    def __init__(self) -> None:
        self.good = 0
        self.events = 0
        self.bad = 0
        self.last_bad: str | None = None
        self.named: tuple[int, str] | None = None

    def parse(self, text) -> tuple[int, float] | None:
        """Return ``(song, stimulus seconds)`` for a good ``song=NN;t=S`` marker, else None."""
        if isinstance(text, str) and text.startswith("song_audio="):   # a path: longer than other markers
            return self._audio(text)
        if not isinstance(text, str) or len(text) > MAX_MARKER_CHARS:
            return self._reject(text)
        stripped = text.strip()
        match = _SONG_TIME.fullmatch(stripped)
        if match is None:
            if _EVENT.fullmatch(stripped):
                self.events += 1
                return None
            return self._reject(text)
        song, seconds = int(match.group(1)), float(match.group(2))
        if not (math.isfinite(seconds) and -MAX_STIMULUS_S <= seconds <= MAX_STIMULUS_S):
            return self._reject(text)
        self.good += 1
        return song, seconds

    def _audio(self, text: str) -> None:
        match = _SONG_AUDIO.fullmatch(text) if len(text) <= MAX_PATH_CHARS + 40 else None
        if match is None or not match.group(2).isprintable():
            return self._reject(text)
        self.events += 1
        self.named = (int(match.group(1)), match.group(2))
        return None

    def _reject(self, text) -> None:
        self.bad += 1
        shown = ascii(text if isinstance(text, str) else type(text).__name__)[:60]
        self.last_bad = shown
        if self.bad <= 3 or self.bad % 100 == 0:
            logger.warning("skipped malformed marker %s (%d so far)", shown, self.bad)
        return None

    def counters(self) -> dict:
        """``{"markers": good, "marker_events": events, "bad_markers": bad}``."""
        return {"markers": self.good, "marker_events": self.events, "bad_markers": self.bad}


def printable(text) -> str:
    """``text`` with every unprintable character escaped (``\\n``, ``\\x1b``), for showing a string from
    the network as one line of text and nothing else; printable text, any script, is kept as it is."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def description_int(value, *, field: str, stream: str, low: int = 0, high: int = 10**6) -> int | None:
    """An integer field of a stream description, or None (with a warning) when it is not one.

    An empty field is simply absent (None, no warning).
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if _INTEGER.fullmatch(text):
        number = int(text)
        if low <= number <= high:
            return number
    logger.warning("stream %r: description field %s = %s is not an integer in %d..%d; ignored",
                   stream, field, ascii(text[:40]), low, high)
    return None


@dataclass(frozen=True)
class ReplayedStimulus:
    """What a replay's description says it plays (``desc/dataset/path``, ``stimulus``,
    ``stimulus_start_s``): the dataset, the song's audio file and the audio second heard at the song's
    first EEG sample. Unchecked paths from the network: only :class:`decoder.truth.ReplayStimulus`
    reads the file, and only inside the dataset the user named."""

    dataset: str
    audio: str
    start_s: float


def description_stimulus(dataset, *, stream: str) -> ReplayedStimulus | None:
    """The stimulus a replayed stream names in its ``desc/dataset`` element, or None (with a warning
    when the fields are there but unusable).

    Parameters
    ----------
    dataset : pylsl.XMLElement-like
        The ``desc/dataset`` element (``child_value(name)`` reads a field; "" when absent).
    """
    fields = {key: str(dataset.child_value(key)) for key in ("path", "stimulus", "stimulus_start_s")}
    if not fields["stimulus"]:
        return None
    problem = None
    for key in ("path", "stimulus"):
        if not fields[key] or len(fields[key]) > MAX_PATH_CHARS or not fields[key].isprintable():
            problem = f"{key} = {ascii(fields[key][:40])} is not a file path"
    try:
        start_s = float(fields["stimulus_start_s"] or "0")
    except ValueError:
        start_s = math.nan
    if not math.isfinite(start_s) or abs(start_s) > 1e6:
        problem = problem or f"stimulus_start_s = {ascii(fields['stimulus_start_s'][:40])} is not a time"
    if problem:
        logger.warning("stream %r: description field dataset/%s; ignored", stream, problem)
        return None
    return ReplayedStimulus(fields["path"], fields["stimulus"], start_s)


def channel_labels(labels, n_chans: int, *, stream: str) -> tuple[str, ...] | None:
    """Channel labels from a stream description, checked; None when the stream has none.

    Labels must be one per channel, non-empty strings of at most :data:`MAX_LABEL_CHARS`
    printable characters, with no duplicates.

    Raises
    ------
    StreamError
        Labels present but unusable; the message gives the stream's real channel count.
    """
    if labels is None or len(labels) == 0:
        return None
    labels = list(labels)
    problem = None
    if len(labels) != n_chans:
        problem = f"{len(labels)} labels for {n_chans} channels"
    elif any(not isinstance(label, str) or not label.strip() for label in labels):
        missing = sum(1 for label in labels if not isinstance(label, str) or not label.strip())
        problem = f"{missing} of {n_chans} channels have no label"
    elif any(len(label) > MAX_LABEL_CHARS or not label.isprintable() for label in labels):
        problem = f"a label is longer than {MAX_LABEL_CHARS} characters or not printable"
    elif len({label.strip().lower() for label in labels}) != n_chans:
        problem = "labels repeat"
    if problem is not None:
        from eegmusic.stream.channels import default_labels

        # a stream without labels is read only at a GSN net's counts, whose labels are assumed in order
        unlabelled = ", or send none" if default_labels(n_chans) is not None else ""
        raise StreamError(f"stream {stream!r} has {n_chans} channels but unusable labels ({problem}); label "
                          f"every channel once in the outlet's desc/channels/channel/label{unlabelled}")
    return tuple(label.strip() for label in labels)
