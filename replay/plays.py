"""Datasets made of stimulus plays: the base of the XDF-session and MNE readers.

Each play (one stimulus event of one participant) becomes one song of the dataset interface
(:mod:`replay.dataset`): its EEG from the event on, and the audio heard, aligned to EEG sample 0.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eegmusic.replay.nmedt import AUDIO_SFREQ, SongInfo, SongRecording, check_eeg_range, read_audio
from eegmusic.stream.atomic import is_within
from eegmusic.stream.channels import duplicate_label
from eegmusic.stream.errors import DataFormatError
from eegmusic.stream.stimulus import SHORT_SLACK_S, decoder_notes_aside, from_start, sample_problem

logger = logging.getLogger(__name__)


@dataclass
class Play:
    """One stimulus event of one participant, before its EEG is loaded.

    Attributes
    ----------
    song_id : int
        Number of the song this play becomes (1, 2, ...).
    subject : str
    title : str
        The stimulus's name (its file name).
    audio_path : Path
    audio_start_s : float
        Stimulus time (s into the audio file) heard at the play's first EEG sample.
    source : object
        Reader-specific handle of where the EEG is (file, sample range).
    """

    song_id: int
    subject: str
    title: str
    audio_path: Path
    audio_start_s: float
    source: object = None


class PlayDataset(abc.ABC):
    """Base of the readers that make one song per stimulus event (XDF sessions, MNE recordings).

    Subclasses fill :attr:`plays` and implement :meth:`_load_eeg`.
    """

    kind = "plays"

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.plays: dict[int, Play] = {}
        self._audio: dict[Path, np.ndarray] = {}
        self._digests: dict[Path, str] = {}   # audio file -> content digest (music_of)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, songs={self.song_ids})"

    @property
    def song_ids(self) -> list[int]:
        """Song numbers, one per stimulus play."""
        return sorted(self.plays)

    def play(self, song_id: int) -> Play:
        """The :class:`Play` of a song number; DataFormatError naming the valid ones."""
        if int(song_id) not in self.plays:
            have = ", ".join(str(s) for s in self.song_ids) or "none"
            raise DataFormatError(f"song {song_id} not in {self.path} (songs: {have}); pass one of those")
        return self.plays[int(song_id)]

    @abc.abstractmethod
    def _load_eeg(self, play: Play) -> tuple[np.ndarray, float, tuple[str, ...], np.ndarray | None]:
        """(eeg (n_chans, n_times) µV, sfreq, labels, positions (n_chans, 3) m or None)."""

    def load_song(self, song_id: int) -> SongRecording:
        """EEG of one play: data (n_chans, n_times, 1) in µV at the recording's rate."""
        play = self.play(song_id)
        eeg, sfreq, labels, positions = self._load_eeg(play)
        if not np.all(np.isfinite(eeg)):
            raise DataFormatError(
                f"{self.path}: song {song_id} holds NaN/Inf EEG samples; interpolate or "
                "drop the bad channels before use"
            )
        check_eeg_range(eeg, f"{self.path}: song {song_id}")
        recording = SongRecording(
            song_id=play.song_id,
            info=SongInfo(play.song_id, play.title, float("nan")),
            data=np.asarray(eeg, dtype=np.float64)[:, :, None],
            sfreq=float(sfreq),
            subjects=[play.subject],
            channels=tuple(labels),
            path=self.path,
            positions=positions,
        )
        return recording

    def music_of(self, song_id: int) -> tuple[str, float]:
        """Which music a play hears, and from when: (its audio file's content digest, audio_start_s).

        Every play is a song of its own here, so two listeners' plays of one track (each session keeps
        its own copy of the file), one listener's two plays of it, or the pieces of a play split at a
        clock jump are different songs that hear the same seconds of the same music. The splits that
        hold out seconds of music group them by this (``music`` of
        :func:`eegmusic.offline_training.splits.make_split`): by song they held out a second for one
        listener and trained on it through another. Files of other bytes count as other music.
        """
        import hashlib

        play = self.play(song_id)
        path = play.audio_path
        if path not in self._digests:
            with open(path, "rb") as file:
                self._digests[path] = hashlib.file_digest(file, "sha256").hexdigest()
        return self._digests[path], float(play.audio_start_s)

    def stimulus_path(self, song_id: int) -> Path | None:
        """The audio file of a play."""
        path = self.play(song_id).audio_path
        return path if path.is_file() else None

    def _read_audio(self, path: Path) -> np.ndarray:
        if path not in self._audio:
            self._audio = {path: read_audio(path)}  # keep one file decoded: tracks repeat in a row
        return self._audio[path]

    def load_stimulus(self, song_id: int) -> np.ndarray:
        """The audio heard during a play, sample 0 at EEG sample 0, float32 at 22050 Hz.

        Runs to the end of the audio file (the EEG may be shorter or longer).
        """
        play = self.play(song_id)
        return from_start(self._read_audio(play.audio_path), self.stimulus_start_s(song_id), AUDIO_SFREQ)

    def stimulus_start_s(self, song_id: int) -> float:
        """The audio second heard at the play's first EEG sample (:attr:`Play.audio_start_s`)."""
        return float(self.play(song_id).audio_start_s)

    def read_problems(self) -> list[str]:
        """What reading the files found wrong beyond any one play (malformed markers, a damaged file, a
        simulation killed midway): :meth:`describe` lists these first."""
        return []

    def describe(self) -> tuple[list[str], list[str]]:
        """Description lines (one per play) and problems: :meth:`read_problems`, then each play's (a play's
        error that repeats one of those is not said again)."""
        lines = [f"{self.kind}: {self.path}"]
        found = self.read_problems()
        problems = list(found)
        samples: dict[Path, str | None] = {}   # each audio file's samples checked once: tracks repeat
        said: set[tuple[str, str]] = set()   # a duplicate label is said once a participant, not once a play
        root = self.path if self.path.is_dir() else self.path.parent
        for song_id in self.song_ids:
            play = self.plays[song_id]
            try:
                recording = self.load_song(song_id)
            except DataFormatError as error:
                if not any(str(error).startswith(said) for said in found):
                    problems.append(str(error))
                continue
            labels = recording.channels
            # a session's markers may name where the music was played from (LabRecorder sessions, no
            # audio folder): read there, and said in full, since it is not among the dataset's files
            audio = (play.audio_path.name if is_within(play.audio_path, root)
                     else f"{play.audio_path} (read from outside {root})")
            lines.append(
                f"song {song_id} '{play.title}': participant {play.subject}, {recording.duration_s:.1f} s "
                f"from {play.audio_start_s:z.2f} s of {audio}, "
                f"{len(labels)} channel{'s' * (len(labels) != 1)} "
                f"({', '.join(labels[:4])}{', …' if len(labels) > 4 else ''}) at {recording.sfreq:g} Hz"
            )
            flat = recording.flat_problem(song_id)
            if flat:
                problems.append(f"{self.path}: {flat}")
            twice = duplicate_label(labels)   # train's channel map refuses it, at its first read
            if twice and (play.subject, twice) not in said:
                said.add((play.subject, twice))
                problems.append(f"{self.path}: the recording of participant {play.subject} has {twice}; fix "
                                "the amplifier's channel labels")
            if self.stimulus_path(song_id) is None:
                problems.append(f"{play.audio_path}: stimulus of song {song_id} not found; put it there")
                continue
            if play.audio_path not in samples:
                samples[play.audio_path] = _sample_problem(play.audio_path)
                if samples[play.audio_path]:
                    problems.append(samples[play.audio_path])
            short = _short_stimulus(play, song_id, recording.duration_s)
            if short and not samples[play.audio_path]:
                problems.append(f"{self.path}: {short}")
        return lines, problems


def _short_stimulus(play: Play, song_id: int, eeg_s: float) -> str | None:
    """Why train would refuse the play's stimulus as shorter than its EEG (read from the audio's header),
    or None: ``info`` said "problems: none" of a session whose audio file had been cut short."""
    import soundfile

    try:
        with decoder_notes_aside(play.audio_path):
            total_s = soundfile.info(str(play.audio_path)).duration
    except Exception:  # noqa: BLE001 - an unreadable file is the sample check's problem
        return None
    stimulus_s = total_s - play.audio_start_s   # heard from audio_start_s on (before 0: silence first)
    if stimulus_s + SHORT_SLACK_S >= eeg_s:
        return None
    return (f"the stimulus of song {song_id} ({play.audio_path.name} from {play.audio_start_s:z.2f} s) lasts "
            f"{stimulus_s:.1f} s but its EEG {eeg_s:.1f} s, which train refuses unless "
            "--allow-short-stimulus; put the whole track there")


def _sample_problem(path: Path) -> str | None:
    """What ``train`` would refuse in the samples of the audio file ``path`` (NaN/Inf, a damaged peak,
    an undecodable file), without decoding a file libsndfile reads in blocks whole."""
    try:
        return sample_problem(path)
    except Exception:  # noqa: BLE001 - what soundfile cannot open in blocks is decoded whole, as train does
        try:
            read_audio(path)
        except DataFormatError as error:
            return str(error)
        return None
