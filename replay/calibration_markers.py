"""The calibration marker format: what ``eegmusic calibrate`` publishes while music plays.

A marker stream of type ``Markers``, one string channel, irregular rate, named
``<EEG stream name>-calibration`` by default. Each sample is one JSON object; its LSL timestamp is the
moment the audio at ``position_s`` of the track reaches the listener: the sound card's DAC time
(PortAudio's audio clock) mapped to the LSL clock, plus nothing else (the device's output latency is
already inside the DAC time, and is reported as ``output_latency_s`` for reference).

Events (fields in brackets are optional)::

    {"event": "session_start", "version": 1, "tracks": N, "audio_dir": "s_audio"}
    {"event": "track_start", "track": K, "file": "a.wav", "path": "/abs/a.wav",
     "position_s": 0.0, "duration_s": D, "output_latency_s": L}
    {"event": "position", "track": K, "position_s": P}          # about once per second
    {"event": "track_end", "track": K, "position_s": P}
    {"event": "gap", "stream": "cap32", "start": T0, "end": T1}  # EEG outage seen by the recorder
    {"event": "session_end"}

``track`` counts plays from 0 (the same file may play twice). ``file`` is the name of the audio file
in the session's audio folder (``<session>_audio/`` beside the XDF file); ``path`` is where it was
played from. A LabRecorder session works the same if some program publishes these markers while
the music plays. Readers ignore unknown events and unknown fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from eegmusic.stream.errors import read_json

FORMAT_VERSION = 1
EVENTS = ("session_start", "track_start", "position", "track_end", "gap", "session_end")
TRACK_EVENTS = ("track_start", "position", "track_end")
"""The events of a track's play, each naming it by its play count (``track``)."""
DEFAULT_SUFFIX = "-calibration"
"""Default marker stream name: the EEG stream's name plus this."""

CLOCK_JUMP_S = 0.05
"""A change of more than this (s) in ``marker time - position`` between consecutive markers of one
play is a jump of the audio clock (the device stalled or skipped), not drift: readers split the play
there (:meth:`TrackPlay.steady_parts`). Measured: a sound server stalled 3.6 s mid-track on a loaded
machine; the drift of the sound card's clock against LSL's was 0.13 ms/s."""


def encode(event: str, **fields) -> str:
    """One marker sample: ``{"event": event, **fields}`` as compact JSON."""
    if event not in EVENTS:
        raise ValueError(f"unknown calibration event {event!r}")
    return json.dumps({"event": event, **fields}, separators=(",", ":"))


def decode(text: str) -> dict | None:
    """The marker as a dict, or None when ``text`` is not a calibration marker."""
    try:
        value = read_json(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(value, dict) or value.get("event") not in EVENTS:
        return None
    return value


@dataclass
class TrackPlay:
    """One play of a track, from its markers.

    Attributes
    ----------
    track : int
        Play counter from the markers.
    file, path : str
        Audio file name in the session's audio folder, and the path it was played from.
    times, positions : list of float
        Marker LSL timestamps and the track positions (s) heard at those times.
    duration_s : float
        Length of the audio file in seconds (NaN when not given).
    output_latency_s : float
    ended : bool
        A ``track_end`` marker was seen.
    """

    track: int
    file: str
    path: str
    times: list
    positions: list
    duration_s: float = float("nan")
    output_latency_s: float = 0.0
    ended: bool = False

    def position_at(self, lsl_time):
        """Track position (s) heard at LSL time(s), from a least-squares line through the markers.

        With one marker the audio clock is taken to run at the LSL clock's speed.
        """
        import numpy as np

        times = np.asarray(self.times, dtype=float)
        positions = np.asarray(self.positions, dtype=float)
        if len(times) >= 2 and np.ptp(times) > 0.5:
            slope, intercept = np.polyfit(times - times[0], positions, 1)
        else:
            slope, intercept = 1.0, positions[0]
        return intercept + slope * (np.asarray(lsl_time, dtype=float) - times[0])

    def steady_parts(self, jump_s: float = CLOCK_JUMP_S) -> list[TrackPlay]:
        """The play cut where its audio clock jumps by more than ``jump_s`` (a stall or a skip).

        Each part holds the markers of one steady stretch, so :meth:`position_at` fits each stretch on
        its own (one line through a stalled play misplaces every second of it). Only the last part
        keeps ``ended``; an earlier part is known to play until its last marker.

        Returns
        -------
        parts : list of TrackPlay
            In time order; ``[self]`` when the clock never jumps.
        """
        import numpy as np

        times = np.asarray(self.times, dtype=float)
        positions = np.asarray(self.positions, dtype=float)
        cuts = list(np.flatnonzero(np.abs(np.diff(times - positions)) > jump_s) + 1)
        if not cuts:
            return [self]
        bounds = [0, *cuts, len(times)]
        return [
            TrackPlay(track=self.track, file=self.file, path=self.path, times=list(times[lo:hi]),
                      positions=list(positions[lo:hi]), duration_s=self.duration_s,
                      output_latency_s=self.output_latency_s, ended=self.ended and hi == len(times))
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    @property
    def start_time(self) -> float:
        """LSL time of the first marker."""
        return float(self.times[0])

    @property
    def end_time(self) -> float:
        """LSL time of the last marker."""
        return float(self.times[-1])


NUMBER_FIELDS = ("position_s", "duration_s", "output_latency_s")
"""Fields of a track's markers that are numbers wherever they appear (finite ones: a NaN position
placed the play nowhere, and ``info`` said "problems: none")."""


def malformed(marker: dict) -> str | None:
    """Why a track's marker cannot be read (``track`` not a count, a number field not a finite number),
    or None when it can. Markers come from whatever program publishes them, so readers check."""
    track = marker["track"]
    whole = isinstance(track, int) or (isinstance(track, float) and track.is_integer())
    if isinstance(track, bool) or not whole or track < 0:
        return f"track {track!r} is not a play count (0, 1, …)"
    for field in NUMBER_FIELDS:
        value = marker.get(field, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"{field} {value!r} is not a finite number of seconds"
    return None


def track_plays(markers: list[tuple[float, str]], skipped: list | None = None) -> list[TrackPlay]:
    """Group calibration markers into plays, in play order.

    Parameters
    ----------
    markers : list of (timestamp, text)
    skipped : list, optional
        Receives ``(timestamp, text, reason)`` of each track marker skipped as :func:`malformed`.

    Returns
    -------
    plays : list of TrackPlay
        Plays that have a (well-formed) ``track_start``.
    """
    plays: dict[int, TrackPlay] = {}
    for stamp, text in sorted(markers, key=lambda item: item[0]):
        marker = decode(text)
        if marker is None or (marker["event"] not in TRACK_EVENTS and "track" not in marker):
            continue   # not a calibration marker, or a session's own (session_start, session_end)
        # a track's marker without its play count was dropped unsaid (its play vanished from info and
        # train alike), where one of "" or null was said as malformed
        reason = "no track field" if "track" not in marker else malformed(marker)
        if reason is not None:
            if skipped is not None:
                skipped.append((float(stamp), text, reason))
            continue
        track = int(marker["track"])
        if marker["event"] == "track_start":
            plays[track] = TrackPlay(
                track=track,
                file=str(marker.get("file", "")),
                path=str(marker.get("path", "")),
                times=[float(stamp)],
                positions=[float(marker.get("position_s", 0.0))],
                duration_s=float(marker.get("duration_s", float("nan"))),
                output_latency_s=float(marker.get("output_latency_s", 0.0)),
            )
        elif track in plays and "position_s" in marker:
            plays[track].times.append(float(stamp))
            plays[track].positions.append(float(marker["position_s"]))
            plays[track].ended |= marker["event"] == "track_end"
    return [plays[k] for k in sorted(plays)]
