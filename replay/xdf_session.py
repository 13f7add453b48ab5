"""Read a calibration session: an XDF file with an EEG stream and the calibration markers.

Written by ``eegmusic calibrate`` or by LabRecorder while something publishes the markers of
:mod:`replay.calibration_markers`. Each track play becomes a song of the dataset interface
(:mod:`replay.dataset`); a play interrupted by an EEG outage (a gap in the timestamps longer than
1.5 samples) or by a jump of the audio clock (the sound device stalled:
:data:`replay.calibration_markers.CLOCK_JUMP_S`) becomes one song per uninterrupted piece, each aligned
to the audio by its own markers.

The audio of a play is looked for, in this order, as ``<session>_audio/<file>`` beside the XDF
file, as ``<file>`` beside it, and at the ``path`` the marker gives (where it was played from).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from eegmusic.replay.calibration_markers import decode, track_plays
from eegmusic.replay.manifest import unfinished_simulation
from eegmusic.replay.plays import Play, PlayDataset
from eegmusic.replay.xdf import (
    _channels,
    _describe,
    _first,
    check_nominal_rate,
    check_xdf_file,
    cut_in_trailing_chunk,
    damaged_words,
    load_xdf,
    warn_damaged,
    where_it_breaks,
)
from eegmusic.stream.errors import DataFormatError, missing

logger = logging.getLogger(__name__)

MIN_PIECE_S = 1.0
"""Pieces of a play shorter than this (s) are dropped (they hold no complete model window)."""


class _Missing(DataFormatError):
    """A session without something that a damaged file may have lost (its markers, its EEG).

    ``missing`` says what, for the message that blames the damage instead (:func:`_damaged`).
    """

    def __init__(self, message: str, missing: str) -> None:
        super().__init__(message)
        self.missing = missing


def _what_was_read(streams: list[dict]) -> str:
    """Each stream pyxdf read, with how much of it: ``'cap' (EEG, 500 samples = 2.0 s), 'm' (Markers, 0
    markers)``."""
    parts = []
    for s in streams:
        info = s["info"]
        n = len(s["time_stamps"])
        sfreq = float(_first(info.get("nominal_srate"), 0) or 0)
        if str(_first(info.get("channel_format"))) == "string":
            amount = f"{n} marker{'s' * (n != 1)}"
        else:
            amount = f"{n:,} sample{'s' * (n != 1)}" + (f" = {n / sfreq:.1f} s" if sfreq > 0 and n else "")
        parts.append(f"'{_first(info.get('name'))}' ({_first(info.get('type'))}, {amount})")
    return ", ".join(parts) or "no stream"


def _damaged(path: Path, damage: str, streams: list[dict], missing: str) -> str:
    """The one line for a damaged file that lacks what a session needs: the damage, where the file
    breaks, what was read before it, and the fix (another copy, or another recording)."""
    where = where_it_breaks(path)
    how = "cut off (an interrupted copy or recording)" if where.startswith("the file ends") else "corrupted"
    return (f"{damaged_words(path, damage, where)}; what could be read "
            f"holds {missing}: {_what_was_read(streams)}; the file was {how}: copy it again from where it "
            "was recorded, or record the session again")


def _not_a_file(path: Path) -> str:
    """What stands at ``path`` (which exists as a name) in place of an audio file."""
    if path.is_dir():
        return f"{path} is a folder"
    if path.exists():
        return f"{path} is no regular file (a FIFO, socket or device)"
    return missing(path, f"{path} is unreadable")


def audio_folder(xdf_path) -> Path:
    """Where a session's audio files go: ``<stem>_audio/`` beside the XDF file."""
    xdf_path = Path(xdf_path)
    return xdf_path.with_name(f"{xdf_path.stem}_audio")


def _positions(info: dict, n_chans: int) -> np.ndarray | None:
    """Electrode positions (m) from ``desc/channels/channel/location/X,Y,Z`` (mm), if all present."""
    desc = _first(info.get("desc"), None)
    block = _first(desc.get("channels"), None) if isinstance(desc, dict) else None
    channels = (block.get("channel") or []) if isinstance(block, dict) else []
    if len(channels) != n_chans:
        return None
    out = np.empty((n_chans, 3))
    for k, channel in enumerate(channels):
        location = _first(channel.get("location"), None) if isinstance(channel, dict) else None
        if not isinstance(location, dict):
            return None
        try:
            out[k] = [float(_first(location.get(axis), "nan")) for axis in ("X", "Y", "Z")]
        except (TypeError, ValueError):
            return None
    if not np.all(np.isfinite(out)) or not np.any(out):
        return None
    return out / 1000.0


class XDFSession(PlayDataset):
    """A calibration session in one XDF file (one participant).

    Parameters
    ----------
    path : str or Path
        The ``.xdf`` file.
    stream : str, optional
        Name of the EEG stream (default: the first stream of type EEG).
    subject : str, optional
        Participant id (default: the file's stem).

    Raises
    ------
    DataFormatError
        Not an XDF file; no EEG stream; no calibration markers; a marker naming an audio file that
        is nowhere to be found; no play with at least 1 s of EEG.
    """

    kind = "XDF session"

    def __init__(self, path, *, stream: str | None = None, subject: str | None = None) -> None:
        super().__init__(path)
        check_xdf_file(self.path)
        streams, damage = load_xdf(self.path, dejitter_timestamps=False)
        try:
            self._read(streams, stream, subject)
        except _Missing as error:
            if not damage:
                raise DataFormatError(str(error)) from None
            # a cut-short file loses what was written last (a simulated session's markers, say): the
            # damage is the problem, not a session recorded without markers
            raise DataFormatError(_damaged(self.path, damage, streams, error.missing)) from None
        self.damage_problem = None
        if damage and cut_in_trailing_chunk(self.path):  # its footers cut: nothing recorded is lost
            warn_damaged(self.path, damage, "read what could be read (only its footers are lost)")
        elif damage:   # what the cut left is read, and the damage is a problem of the dataset (info lists it)
            where = where_it_breaks(self.path)
            self.damage_problem = (f"{damaged_words(self.path, damage, where)}; read what could be read; "
                                   "copy it again from where it was recorded, or record the session again")
            logger.warning("%s", self.damage_problem)

    def _read(self, streams: list[dict], stream: str | None, subject: str | None) -> None:
        """Take the EEG stream, the calibration markers and the plays from pyxdf's ``streams``."""
        headers = [
            {
                "name": str(_first(s["info"].get("name"))),
                "type": str(_first(s["info"].get("type"))),
                "channel_count": int(_first(s["info"].get("channel_count"), 0)),
                "nominal_srate": float(_first(s["info"].get("nominal_srate"), 0)),
            }
            for s in streams
        ]
        eeg = [
            s
            for s, h in zip(streams, headers, strict=True)
            if h["type"].upper() == "EEG"
            and h["nominal_srate"] > 0
            and (stream is None or h["name"] == stream)
        ]
        if not eeg:
            wanted = f"EEG stream named '{stream}'" if stream else "EEG stream (type EEG, regular rate)"
            raise _Missing(
                f"{self.path}: no {wanted} (has {_describe(headers)}); record the cap's "
                "stream in the session (eegmusic calibrate --stream NAME)",
                f"no {wanted}",
            )
        eeg_stream = eeg[0]
        self.stream_name = str(_first(eeg_stream["info"].get("name")))
        markers = []
        for s in streams:
            if str(_first(s["info"].get("channel_format"))) != "string":
                continue
            for stamp, row in zip(s["time_stamps"], s["time_series"], strict=False):
                text = row[0] if isinstance(row, list | tuple | np.ndarray) and len(row) else row
                if decode(str(text)) is not None:
                    markers.append((float(stamp), str(text)))
        skipped: list = []
        plays = track_plays(markers, skipped)
        self.marker_problem = None
        if skipped:
            said = (f"{len(skipped)} malformed calibration marker{'s' * (len(skipped) != 1)} "
                    f"({skipped[0][2]}, in {skipped[0][1][:100]})")
            fix = "fix the program that published them (docs/calibration.md)"
            if not plays:
                raise _Missing(f"{self.path}: no readable track_start marker: {said}; {fix}",
                               f"no readable track_start marker ({len(skipped)} malformed)")
            self.marker_problem = f"{self.path}: skipped {said}; their plays may be shorter or missing, {fix}"
            logger.warning("%s", self.marker_problem)
        if not plays:
            raise _Missing(
                f"{self.path}: no calibration markers (no string stream with track_start events; has "
                f"{_describe(headers)}); record with eegmusic calibrate, or publish the markers of "
                "docs/calibration.md while recording",
                "no calibration markers (no track_start marker)",
            )
        self.gaps = [decode(text) for _, text in markers if decode(text)["event"] == "gap"]
        data = np.asarray(eeg_stream["time_series"], dtype=np.float64)
        if data.ndim != 2 or data.shape[0] == 0:
            raise _Missing(f"{self.path}: EEG stream '{self.stream_name}' holds no samples; re-record",
                           f"no sample of EEG stream '{self.stream_name}'")
        info = eeg_stream["info"]
        self.sfreq = float(_first(info.get("nominal_srate")))
        check_nominal_rate(self.path, self.stream_name, self.sfreq)
        labels, _, types = _channels(info, data.shape[1], "EEG")
        positions = _positions(info, data.shape[1])
        # a trigger or AUX channel is no model input: it entered the average reference and every live
        # stream was then asked for it (as mne_dataset's pick_types(eeg=True) keeps EEG only)
        eeg_channels = [k for k, kind in enumerate(types) if kind.upper() == "EEG"]
        if not eeg_channels:
            raise DataFormatError(
                f"{self.path}: EEG stream '{self.stream_name}' has no channel of type EEG (types "
                f"{', '.join(sorted(set(types)))}); record the cap's channels with type EEG")
        if len(eeg_channels) < len(labels):
            dropped = [f"{label} ({kind})" for label, kind in zip(labels, types, strict=True)
                       if kind.upper() != "EEG"]
            logger.info("%s: left out %d channel%s that %s not EEG: %s", self.path, len(dropped),
                        "s" * (len(dropped) != 1), "are" if len(dropped) != 1 else "is", ", ".join(dropped))
        self.labels = [labels[k] for k in eeg_channels]
        self.positions = None if positions is None else positions[eeg_channels]
        self._eeg = data.T[eeg_channels]
        self._stamps = np.asarray(eeg_stream["time_stamps"], dtype=np.float64)
        self.subject = subject or self.path.stem
        self._build_plays(plays)

    def read_problems(self) -> list[str]:
        """The file's damage, when pyxdf read it only in part, and malformed calibration markers, when some
        were skipped."""
        return [problem for problem in (self.damage_problem, self.marker_problem) if problem]

    def _find_audio(self, play) -> Path:
        name = Path(play.file).name if play.file else Path(play.path).name
        candidates = [audio_folder(self.path) / name, self.path.parent / name]
        if play.path:
            candidates.append(Path(play.path))
        # a place that holds something else than the file is said: a link to nothing there was reported as
        # plainly missing, and a folder or FIFO there was passed over for the marker's path without a word
        unusable = []
        for candidate in candidates:
            if candidate.is_file():
                if unusable:
                    logger.warning("%s: track %d's audio: %s; read %s instead", self.path, play.track,
                                   "; ".join(unusable), candidate)
                return candidate
            if os.path.lexists(candidate):
                unusable.append(_not_a_file(candidate))
        why = f" ({'; '.join(unusable)})" if unusable else ""
        raise DataFormatError(
            f"{self.path}: track {play.track} names audio '{name}', found in none of "
            f"{', '.join(str(c) for c in candidates)}{why}; put the file in {audio_folder(self.path)}"
        )

    def _build_plays(self, plays) -> None:
        stamps = self._stamps
        breaks = np.flatnonzero(np.diff(stamps) > 1.5 / self.sfreq) + 1
        pieces_of_recording = np.split(np.arange(len(stamps)), breaks)
        song_id = 1
        for whole_play in plays:
            audio = self._find_audio(whole_play)
            parts = whole_play.steady_parts()
            if len(parts) > 1:
                logger.info("%s: track %d's audio clock jumps %d time(s) (the device stalled); each steady "
                            "stretch is aligned on its own", self.path, whole_play.track, len(parts) - 1)
            for k, play in enumerate(parts):
                # an earlier part is known to play until its last marker; the stall lies after it
                end = play.end_time if play.ended or k < len(parts) - 1 else np.inf
                if np.isfinite(play.duration_s):
                    end = min(end, play.start_time + play.duration_s - play.positions[0])
                for piece in pieces_of_recording:
                    inside = piece[(stamps[piece] >= play.start_time) & (stamps[piece] < end)]
                    if len(inside) < MIN_PIECE_S * self.sfreq:
                        continue
                    self.plays[song_id] = Play(
                        song_id=song_id,
                        subject=self.subject,
                        title=Path(audio).name,
                        audio_path=audio,
                        audio_start_s=float(play.position_at(stamps[inside[0]])),
                        source=(int(inside[0]), int(inside[-1]) + 1),
                    )
                    song_id += 1
        if not self.plays:
            raise _Missing(
                f"{self.path}: no track play has {MIN_PIECE_S:g} s of EEG recorded while "
                "it played; check that the EEG stream ran during the session",
                f"no track play with {MIN_PIECE_S:g} s of EEG",
            )
        logger.info("%s: %d play%s, %d EEG channel%s at %g Hz", self.path, len(self.plays),
                    "s" * (len(self.plays) != 1), len(self.labels), "s" * (len(self.labels) != 1), self.sfreq)

    def _load_eeg(self, play: Play):
        start, stop = play.source
        return self._eeg[:, start:stop], self.sfreq, tuple(self.labels), self.positions


class XDFSessionFolder(PlayDataset):
    """Every calibration session (``*.xdf``) of a folder: one participant per file (its stem).

    ``eegmusic simulate --montage`` writes such a folder; a lab's sessions of several listeners on one
    cap make one. All sessions must have the same channels (one dataset holds one montage).

    Parameters
    ----------
    path : str or Path
        A folder holding ``.xdf`` calibration sessions.

    Raises
    ------
    DataFormatError
        No session in the folder, a session that cannot be read (as :class:`XDFSession`), or
        sessions with different channels.
    """

    kind = "folder of XDF sessions"

    def __init__(self, path) -> None:
        super().__init__(path)
        files = sorted(
            p for p in self.path.iterdir() if p.suffix.lower() in (".xdf", ".xdfz") and p.is_file()
        )
        if not files:
            raise DataFormatError(
                f"{self.path}: no .xdf calibration session here; pass a folder of sessions "
                "recorded by eegmusic calibrate, or one session file"
            )
        self.sessions = [XDFSession(f) for f in files]
        first = self.sessions[0]
        for session in self.sessions[1:]:
            if list(session.labels) != list(first.labels):
                raise DataFormatError(
                    f"{session.path}: channels {', '.join(session.labels[:4])}… differ from "
                    f"{first.path.name}'s; one dataset holds one montage (move it elsewhere)"
                )
        self._owner: dict[int, tuple[XDFSession, int]] = {}
        for session in self.sessions:
            for song_id in session.song_ids:
                new_id = len(self.plays) + 1
                play = session.plays[song_id]
                self.plays[new_id] = Play(
                    song_id=new_id,
                    subject=play.subject,
                    title=play.title,
                    audio_path=play.audio_path,
                    audio_start_s=play.audio_start_s,
                    source=play.source,
                )
                self._owner[new_id] = (session, song_id)

    def read_problems(self) -> list[str]:
        """A simulation killed midway, then each session's."""
        unfinished = unfinished_simulation(self.path)
        return [*([unfinished] if unfinished else []), *(p for s in self.sessions for p in s.read_problems())]

    def _load_eeg(self, play: Play):
        session, song_id = self._owner[play.song_id]
        return session._load_eeg(session.plays[song_id])
