"""Live ground truth: the replay's markers say which stimulus second plays when; decoded frames are
scored against the true stimulus mel (dynamic r) as they come.

The marker format is the replay's (``song=21;t=12.000``: stimulus second 12 of song 21 plays at the
marker's LSL time). Scores are :func:`decoder.metrics.band_pearson`, the function offline evaluation
uses too. Stimulus audio comes from a :class:`StimulusLookup` the caller passes (the decoder never
reads a dataset format itself).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np
from eegmusic.decoder.melspec import FRAME_PERIOD_S, N_MELS, mel_db
from eegmusic.decoder.metrics import RunningBandPearson, band_pearson
from eegmusic.stream.errors import DataFormatError, EEGMusicError
from eegmusic.stream.untrusted import MarkerParser

log = logging.getLogger(__name__)


class StimulusLookup(Protocol):
    """Where a song's stimulus audio comes from (:class:`stream.stimulus.StimulusFolder` is one)."""

    path: Path
    """The folder named in messages."""

    def stimulus_path(self, song_id: int) -> Path | None:
        """The song's audio file, or None when there is none."""

    def load_stimulus(self, song_id: int) -> np.ndarray:
        """The song's audio, shape (n_samples,), float32 at 22050 Hz."""


class LiveTruth:
    """Score decoded frames against the true stimulus mel, aligned by the replay's markers.

    The marker ``song=21;t=12.000`` stamped at LSL time ``tm`` says that stimulus second 12 of song
    21 played at ``tm``; a decoded frame stamped at LSL time ``x`` is therefore stimulus frame
    ``round((12 + x - tm) / (512 / 22050))``.

    Parameters
    ----------
    stimuli : StimulusLookup
        Where each song's stimulus audio comes from, e.g.
        ``StimulusFolder(truth_dir, sfreq=22050)`` for an NMED-T folder with ``stimuli/songNN.wav``.
    recent_frames : int
        Frames over which the live (recent) dynamic r is computed.
    """

    def __init__(self, stimuli: StimulusLookup, *, recent_frames: int = 430):
        self._stimuli = stimuli
        self.markers = MarkerParser()
        """Marker counts: good, other events, and malformed ones skipped (``bad``)."""
        self._mels: dict[int, np.ndarray] = {}
        self._requested: set[int] = set()
        self._loading = threading.Lock()
        self.error: str | None = None
        self.song: int | None = None
        self._anchor: tuple[float, float] | None = None   # (marker LSL time, stimulus seconds)
        self.recent = int(recent_frames)
        self._pred = np.zeros((N_MELS, self.recent), np.float32)
        self._true = np.zeros((N_MELS, self.recent), np.float32)
        self._n = 0
        self._total = RunningBandPearson(N_MELS)   # over the whole run, in constant memory

    def load(self, song: int) -> np.ndarray:
        """Compute (once) and return the true mel-dB of a song's stimulus, shape (128, n_frames).

        Raises
        ------
        DataFormatError
            The folder has no stimulus for that song.
        """
        with self._loading:
            if song not in self._mels:
                if self._stimuli.stimulus_path(song) is None:
                    raise DataFormatError(f"no stimulus for song {song} in {self._stimuli.path}/stimuli; put "
                                          f"song{song}.wav there or drop --truth")
                self._mels[song] = mel_db(self._stimuli.load_stimulus(song))
        return self._mels[song]

    def has_stimulus(self, song: int) -> bool:
        """Whether the truth folder holds a stimulus file for ``song``."""
        return self._stimuli.stimulus_path(song) is not None

    def _load_in_background(self, song: int) -> None:
        def load():
            try:
                self.load(song)
            except EEGMusicError as error:
                self.error = str(error)
                log.warning("%s", error)

        threading.Thread(target=load, daemon=True, name=f"eegmusic-truth-{song}").start()

    def marker(self, text: str, timestamp: float) -> None:
        """Take one marker string with its (clock-corrected) LSL timestamp.

        A song seen for the first time has its stimulus mel computed in the background; frames are
        scored once it is ready.
        """
        parsed = self.markers.parse(text)  # malformed markers (any host can send them) are counted, skipped
        if parsed is None:
            return
        song, seconds = parsed
        if song != self.song:
            if song not in self._mels and song not in self._requested:
                self._requested.add(song)
                self._load_in_background(song)
            self.song = song
            self._n = 0
        self._anchor = (float(timestamp), seconds)

    def stimulus_time(self, lsl_time: float | np.ndarray) -> float | np.ndarray | None:
        """Stimulus time in seconds at an LSL time, by the newest marker (None before any)."""
        if self._anchor is None:
            return None
        t_marker, seconds = self._anchor
        return seconds + (lsl_time - t_marker)

    def truth_frames(self, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """True stimulus frames for decoded frames stamped at LSL times ``stamps``.

        Returns
        -------
        (valid, frames) or None
            Boolean mask of the frames inside the song and the true frames (128, n_valid); None
            before the first marker.
        """
        if self._anchor is None or self.song is None or self.song not in self._mels:
            return None
        mel = self._mels[self.song]
        index = np.rint(self.stimulus_time(stamps) / FRAME_PERIOD_S).astype(np.int64)
        valid = (index >= 0) & (index < mel.shape[1])
        return valid, mel[:, index[valid]]

    def update(self, frames: np.ndarray, stamps: np.ndarray) -> np.ndarray | None:
        """Add decoded frames (128, n) stamped at LSL times ``stamps``; return their true frames."""
        found = self.truth_frames(stamps)
        if found is None:
            return None
        valid, truth = found
        pred = frames[:, valid]
        for column in range(pred.shape[1]):
            slot = self._n % self.recent
            self._pred[:, slot] = pred[:, column]
            self._true[:, slot] = truth[:, column]
            self._n += 1
        self._total.add(pred, truth)
        out = np.full(frames.shape, np.nan, np.float32)
        out[:, valid] = truth
        return out

    def dynamic_r(self) -> float | None:
        """Dynamic r over the last ``recent_frames`` scored frames (None before 2 frames)."""
        n = min(self._n, self.recent)
        return float(np.mean(band_pearson(self._pred[:, :n], self._true[:, :n]))) if n >= 2 else None

    def dynamic_r_total(self) -> float | None:
        """Dynamic r over every scored frame of the run (None before 2 frames)."""
        r = self._total.band_pearson()
        return None if r is None else float(np.mean(r))
