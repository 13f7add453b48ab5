"""1-s EEG windows of any dataset (:func:`replay.dataset.open_dataset`) with their mel-dB targets.

The data may be an NMED-T folder, an XDF calibration session or a recording MNE reads; EEG at another
rate than 125 Hz is resampled exactly as the live stream resamples it
(:func:`stream.resample.resample_recording`), and the model channels are the recording's own.
A :class:`WindowDataset` reads the songs once (EEG as float32 in memory), lists every window in a
structured :attr:`WindowDataset.index` (song, subject, start sample), and computes the mel-dB targets
per song on first use (the slow part, cached). Window ↔ target alignment follows the design contract:
the EEG window of samples [s, s+125) at 125 Hz has target
``decoder.melspec.window_mel_db(audio, s / 125 - target_offset_s)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from eegmusic.decoder import melspec
from eegmusic.replay.dataset import open_dataset
from eegmusic.replay.nmedt import NMEDTFolder
from eegmusic.stream.errors import ConfigError, DataFormatError
from eegmusic.stream.spec import MODEL_CHANNELS, MODEL_SFREQ, WINDOW_SAMPLES, PreprocessingSpec

logger = logging.getLogger(__name__)

DEFAULT_SPEC = PreprocessingSpec()
"""The default (identity) preprocessing; frozen, so safe as a default argument."""

INDEX_DTYPE = np.dtype([("song", np.int64), ("subject", np.int64), ("start", np.int64)])
"""One row per window: song id, 0-based subject index into ``subjects``, first EEG sample (125 Hz)."""
MUSIC_DTYPE = np.dtype([("music", np.int64), ("start", np.int64)])
"""One row per window, beside :data:`INDEX_DTYPE`'s: which music it hears (rows of one id hear the same
audio) and its first sample on that audio's time axis (125 Hz). See :attr:`WindowDataset.music`."""

_MEL_BATCH = 256

EXCERPT_SONG_KEY = 1_000_000
"""Added to a song id to key a second excerpt's windows of that song (:meth:`WindowDataset.with_excerpt`):
the same song heard later is another recording with its own stimulus segment, never the same rows."""


def offline_preprocess(eeg: np.ndarray, spec: PreprocessingSpec, labels=MODEL_CHANNELS) -> np.ndarray:
    """Apply the stream's preprocessing to a whole recording, exactly as the live path does.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
        EEG in µV at the model rate, channels in the order of ``labels``.
    spec : PreprocessingSpec
    labels : sequence of str
        Channel labels of ``eeg``.

    Returns
    -------
    eeg : ndarray, shape (len(spec.channels), n_times), float32
    """
    from eegmusic.stream.preprocess import preprocess_recording

    return np.asarray(preprocess_recording(eeg, MODEL_SFREQ, labels, spec), dtype=np.float32)


class WindowDataset:
    """Every 1-s window of the chosen songs and subjects of an NMED-T folder.

    Parameters
    ----------
    folder : str or Path
        NMED-T folder (``songNN_Imputed.mat`` files plus ``stimuli/``), XDF session, BIDS root or EEG
        file MNE reads (see :func:`replay.dataset.open_dataset`).
    songs : list of int, optional
        Song ids to use (default: all in the folder).
    subjects : list of int or str, optional
        Subjects to use: ints are 1-based listener numbers (the folder's first participant is 1, as
        in ``eegmusic replay --subject`` and ``train --subjects``), strings are
        participant ids (default: all).
    hop_s : float
        Hop between successive windows in seconds.
    phase_s : float
        Start of the first window in seconds (rounded to a sample): windows start at
        ``phase_s + k * hop_s``. Scoring on a phase that no training window had tells a decoder that
        reads the stimulus' structure on the training grid (a beat that repeats at a divisor of the
        hop) from one that reads the EEG; live windows have no fixed phase.
    spec : PreprocessingSpec
        Preprocessing applied to each whole recording by :func:`stream.preprocess.preprocess_recording`,
        the same definition the live stream uses. When its channels are the default NMED-T ones and
        the data has other channels, the data's channels are used (what a training run wants), unless
        ``spec_channels`` is set.
    target_offset_s : float
        The target of the window ending at EEG time T covers stimulus [T - 1 - offset, T - offset).
    spec_channels : bool
        Always take ``spec``'s channels from the data, matched by label as the live stream matches them
        (what scoring a trained model wants: a 129-channel recording feeds an NMED-T model its 125).
    missing_fix : str
        The fix a song or subject id missing from the folder is refused with: ``train``'s "pass one of
        those" (its --songs, --subjects) by default; ``evaluate``, which has neither, passes its own.

    Attributes
    ----------
    index : ndarray, structured (song, subject, start), shape (n_windows,)
    music : ndarray, structured (music, start), shape (n_windows,)
        Which music each window hears, and its start on that music's time axis (:data:`MUSIC_DTYPE`):
        what the splits hold out seconds of music by (``make_split(..., music=dataset.music)``).
    songs : list of int
    subjects : list of str
        Participant ids; ``index["subject"]`` indexes this list.
    n_subjects : int
    channels : tuple of str
        The data's channel labels (the model's too unless ``spec`` names a subset of them).
    positions : ndarray, shape (n_chans, 3), or None
        Electrode positions in metres when the data states them.
    """

    def __init__(
        self,
        folder,
        *,
        songs=None,
        subjects=None,
        hop_s: float = 1.0,
        phase_s: float = 0.0,
        spec: PreprocessingSpec = DEFAULT_SPEC,
        target_offset_s: float = 0.0,
        allow_short_stimulus: bool = False,
        spec_channels: bool = False,
        missing_fix: str = "pass one of those",
    ):
        from eegmusic.offline_training.sanity import FlatReport, flat_channels

        self.folder = Path(folder)
        self._missing_fix = missing_fix
        self.allow_short_stimulus = bool(allow_short_stimulus)
        self.flat_report = FlatReport()
        self.hop_s = float(hop_s)
        self.hop = int(round(self.hop_s * MODEL_SFREQ))
        if self.hop < 1:
            raise ConfigError(
                f"hop {hop_s} s is shorter than one sample at {MODEL_SFREQ:g} Hz; use --hop >= 0.008"
            )
        self.phase = int(round(float(phase_s) * MODEL_SFREQ))
        if self.phase < 0:
            raise ConfigError(f"window phase {phase_s} s is negative; pass a phase >= 0")
        self.spec = spec
        self.spec_channels = bool(spec_channels)
        self.target_offset_s = float(target_offset_s)
        nmedt = open_dataset(self.folder)
        self._nmedt = nmedt
        available = sorted(nmedt.song_ids)
        self.songs = available if songs is None else [int(s) for s in songs]
        for song in self.songs:
            if song not in available:
                listed = ", ".join(str(s) for s in available)
                raise ConfigError(f"song {song} not in {self.folder} (has {listed}); {self._missing_fix}")
        if not self.songs:
            raise ConfigError(f"no songs selected from {self.folder}; pass at least one song id")
        for song in self.songs:
            if nmedt.stimulus_path(song) is None:
                # a folder of the file's name is no file: say so, rather than to put it where it is
                from eegmusic.stream.stimulus import STIMULUS_EXTENSIONS

                folders = [self.folder / "stimuli" / f"song{song}{ext}" for ext in STIMULUS_EXTENSIONS]
                folders = [path for path in folders if path.is_dir()]
                if folders:
                    raise DataFormatError(
                        f"song {song} in {self.folder} has no stimulus audio: {folders[0]} is a folder, not "
                        "an audio file; put the song's audio file there instead")
                # named by its title (only NMED-T's own folder is looked at): one naming rule, so the fix
                # is a rename
                candidate = nmedt.stimulus_candidate(song) if isinstance(nmedt, NMEDTFolder) else None
                if candidate is not None:
                    raise DataFormatError(
                        f"song {song} in {self.folder} has no stimulus audio: {candidate} is named by the "
                        f"song's title; rename it song{song}{candidate.suffix.lower()}")
                raise DataFormatError(
                    f"song {song} in {self.folder} has no stimulus audio; put it at "
                    f"{self.folder / 'stimuli'}/song{song}.wav (or .flac/.ogg/.mp3)"
                )
        self._eeg: dict[int, np.ndarray] = {}
        self._local: dict[int, dict[int, int]] = {}
        self._mel: dict[int, np.ndarray] = {}
        self._checked: set[int] = set()
        """Songs whose stimulus was checked (and warned about): shared by the copies
        :meth:`with_target_offset` makes, which read the same audio at another lag."""
        # song key -> (dataset it came from, its song id there, folder): an appended excerpt's own stimulus
        self._sources = {song: (nmedt, song, self.folder) for song in self.songs}
        all_ids: list[str] = []
        song_ids: dict[int, list[str]] = {}
        flat_seen: list[tuple[str, str, np.ndarray, tuple]] = []  # (subject, name, flags, labels)
        for song in self.songs:  # one float64 song at a time; keep float32 copies
            recording = nmedt.load_song(song)
            self._check_channels(song, recording)
            song_ids[song] = [str(s) for s in recording.subjects]
            all_ids += [sid for sid in song_ids[song] if sid not in all_ids]
            eeg = None
            for k in range(recording.n_subjects):
                subject_eeg = recording.eeg(k)
                flat_seen.append((str(recording.subjects[k]), f"song {song} {recording.subjects[k]}",
                                  flat_channels(subject_eeg), tuple(recording.channels)))
                if abs(float(recording.sfreq) - MODEL_SFREQ) > 1e-6:
                    from eegmusic.stream.resample import resample_recording

                    subject_eeg = resample_recording(subject_eeg, recording.sfreq, MODEL_SFREQ)
                if eeg is None:
                    shape = (recording.n_subjects, self.n_chans, subject_eeg.shape[-1])
                    eeg = np.empty(shape, dtype=np.float32)
                eeg[k] = offline_preprocess(subject_eeg, self.spec, recording.channels)
            self._eeg[song] = eeg
            del recording
        self.subjects = self._select_subjects(all_ids, subjects)
        position = {subject_id: i for i, subject_id in enumerate(self.subjects)}
        for subject_id, name, flags, labels in flat_seen:  # only the listeners trained on count
            if subject_id in position:
                self.flat_report.add_flags(name, flags, labels)
        for song in self.songs:
            chosen = [(position[sid], k) for k, sid in enumerate(song_ids[song]) if sid in position]
            if len(chosen) < len(song_ids[song]):
                self._eeg[song] = self._eeg[song][[k for _, k in chosen]]
            self._local[song] = {global_index: local for local, (global_index, _) in enumerate(chosen)}
        self.index = self._index_at(self.phase)
        for song in self.songs:   # such a song was counted among the songs and gave nothing (a file fuzz)
            n_times = self._eeg[song].shape[-1]
            if self._local[song] and n_times - self.phase < WINDOW_SAMPLES:
                raise DataFormatError(
                    f"song {song} in {self.folder}: its EEG holds {n_times} samples "
                    f"({n_times / MODEL_SFREQ:g} s at {MODEL_SFREQ:g} Hz), shorter than one "
                    f"{WINDOW_SAMPLES / MODEL_SFREQ:g}-s window: no window can be cut from it; record "
                    f"longer, or leave the song out (train --songs)")
        self._placed = self._placements(nmedt)
        self.music = self._music_of(self.index)
        self.flat_report.check(self.folder)  # all-zero / flat recordings: refused above a share
        if len(self.index) == 0:
            raise DataFormatError(
                f"{self.folder} has no complete 1-s window for songs {self.songs} and the chosen subjects"
            )
        n_songs = len(self.songs)
        logger.info("%d window%s from %d song%s x %d subject%s in %s", len(self.index),
                    "s" * (len(self.index) != 1), n_songs, "s" * (n_songs != 1), self.n_subjects,
                    "s" * (self.n_subjects != 1), self.folder)

    def windows_at_phase(self, phase_s: float) -> tuple[np.ndarray, np.ndarray]:
        """The window :attr:`index` and :attr:`music` of these songs and listeners at this hop, with the
        windows starting at ``phase_s + k * hop`` instead: the windows a model trained on at phase 0,
        beside this dataset read at another phase to score it (``evaluate --phase``)."""
        index = self._index_at(int(round(float(phase_s) * MODEL_SFREQ)))
        return index, self._music_of(index)

    def _index_at(self, phase: int) -> np.ndarray:
        """The window index of every song and chosen listener, windows starting at ``phase + k * hop``
        samples (:attr:`index` at this dataset's phase)."""
        rows = []
        for song in self.songs:
            n_times = self._eeg[song].shape[-1]
            starts = np.arange(phase, n_times - WINDOW_SAMPLES + 1, self.hop, dtype=np.int64)
            for global_index in self._local[song]:
                block = np.empty(len(starts), dtype=INDEX_DTYPE)
                block["song"], block["subject"], block["start"] = song, global_index, starts
                rows.append(block)
        return np.concatenate(rows) if rows else np.empty(0, dtype=INDEX_DTYPE)

    def _placements(self, nmedt) -> dict[int, tuple[int, int]]:
        """Each song's music id and the sample of that music heard at the song's sample 0 (for
        :attr:`music`).

        A folder of songs (NMED-T, ``simulate``) has one song per piece of music, heard by every
        listener from its start: the song and the start. A reader that makes one song per play (XDF
        sessions, MNE recordings) says through ``music_of`` which plays hear the same audio, and from
        which second. A piece of music is numbered by its lowest song, so where no two songs share
        music, music and start are the song and start (and every split is the one it was before).
        """
        music_of = getattr(nmedt, "music_of", None)
        placed = {song: music_of(song) if music_of else (song, 0.0) for song in self.songs}
        ids: dict = {}
        for song in sorted(placed):
            ids.setdefault(placed[song][0], song)
        return {song: (ids[key], int(round(start_s * MODEL_SFREQ)))
                for song, (key, start_s) in placed.items()}

    def _music_of(self, index: np.ndarray) -> np.ndarray:
        """The :attr:`music` rows of the windows ``index``: each window's music and its start on that
        music's time axis (:meth:`_placements`)."""
        music = np.empty(len(index), dtype=MUSIC_DTYPE)
        for song, (music_id, offset) in self._placed.items():
            rows = index["song"] == song
            music["music"][rows] = music_id
            music["start"][rows] = index["start"][rows] + offset
        return music

    def _check_channels(self, song: int, recording) -> None:
        """Take the model channels from the first song; every other song must have the same."""
        from dataclasses import replace

        from eegmusic.stream.montage import label_keys
        from eegmusic.stream.spec import MODEL_CHANNELS

        labels = tuple(recording.channels)
        if not hasattr(self, "channels"):
            self.channels = labels
            self.positions = recording.positions
            own_montage = tuple(self.spec.channels) == MODEL_CHANNELS and labels != MODEL_CHANNELS
            if own_montage and not self.spec_channels:
                self.spec = replace(self.spec, channels=labels)
            have = set(label_keys(labels))
            wanted = zip(self.spec.channels, label_keys(self.spec.channels), strict=True)
            missing = [label for label, key in wanted if key not in have]
            if missing:
                shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                raise DataFormatError(
                    f"{self.folder} has {len(labels)} channels and lacks {len(missing)} of the "
                    f"{len(self.spec.channels)} the model reads ({shown}); use data with those channels, or "
                    f"train a model on this montage (eegmusic train --data {self.folder})"
                )
            self.n_chans = len(self.spec.channels)
        elif labels != self.channels:
            raise DataFormatError(
                f"song {song} in {self.folder} has channels {', '.join(labels[:4])}… ({len(labels)}), not "
                f"the {len(self.channels)} of the first song; one dataset holds one montage"
            )

    def _select_subjects(self, all_ids: list[str], subjects) -> list[str]:
        if subjects is None:
            return list(all_ids)
        chosen = []
        for subject in subjects:
            if isinstance(subject, str):
                if subject not in all_ids:
                    raise ConfigError(
                        f"subject '{subject}' not in {self.folder} (has {', '.join(all_ids)}); "
                        f"{self._missing_fix}"
                    )
                chosen.append(subject)
            else:
                k = int(subject)
                if not 1 <= k <= len(all_ids):
                    raise ConfigError(
                        f"listener {k} is not in {self.folder} (it has listeners 1..{len(all_ids)}); "
                        "pass --subjects between 1 and that"
                    )
                chosen.append(all_ids[k - 1])
        if not chosen:
            raise ConfigError(f"no subjects selected from {self.folder}; pass at least one")
        return list(dict.fromkeys(chosen))

    @property
    def n_subjects(self) -> int:
        """Number of subjects (the size of a subject embedding)."""
        return len(self.subjects)

    def __len__(self) -> int:
        return len(self.index)

    def eeg(self, rows) -> np.ndarray:
        """EEG windows after offline preprocessing.

        Parameters
        ----------
        rows : array of int, shape (n,)
            Row numbers into :attr:`index`.

        Returns
        -------
        eeg : ndarray, shape (n, n_chans, 125), float32
            Channels × samples in µV.
        """
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        out = np.empty((len(rows), self.n_chans, WINDOW_SAMPLES), dtype=np.float32)
        entries = self.index[rows]
        for song in np.unique(entries["song"]):
            mask = entries["song"] == song
            local_map = self._local[int(song)]
            local = np.array([local_map[int(s)] for s in entries["subject"][mask]], dtype=np.int64)
            # every window of the song as a view (no copy): one gather of whole windows per batch,
            # about 5x faster than indexing each sample of each window
            windows = np.lib.stride_tricks.sliding_window_view(self._eeg[int(song)], WINDOW_SAMPLES, axis=-1)
            out[mask] = windows[local, :, entries["start"][mask]]
        return out

    def mel(self, rows, *, keep_songs: bool = True) -> np.ndarray:
        """Mel-dB targets of windows (cached per song).

        Parameters
        ----------
        rows : array of int, shape (n,)
            Row numbers into :attr:`index`.
        keep_songs : bool
            True: compute every window start of each song the rows touch and keep them (training reads
            every window, many epochs). False: compute the rows' own window starts only, each once,
            and keep nothing, for a reader that takes a sample once (the target-offset choice: 800
            training windows and the validation part, at seven offsets). A song already kept is read
            from the cache either way. The two agree to the STFT's float32 rounding, which depends on
            which windows are computed together (:func:`window_mels`, within 1e-4 dB).

        Returns
        -------
        mel_db : ndarray, shape (n, 128, 44), float32
        """
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        out = np.empty((len(rows), melspec.N_MELS, melspec.FRAMES_PER_WINDOW), dtype=np.float32)
        entries = self.index[rows]
        for song in np.unique(entries["song"]):
            mask = entries["song"] == song
            starts = entries["start"][mask]
            if keep_songs or int(song) in self._mel:
                out[mask] = self.song_mel(int(song))[(starts - self.phase) // self.hop]
            else:
                distinct, inverse = np.unique(starts, return_inverse=True)
                starts_s = distinct / MODEL_SFREQ - self.target_offset_s
                out[mask] = window_mels(self._checked_stimulus(int(song)), starts_s)[inverse]
        return out

    def song_mel(self, song: int) -> np.ndarray:
        """Mel-dB targets of every window start of a song, shape (n_starts, 128, 44), float32.

        Row k is the target of the window starting at sample ``phase + k * hop``.
        """
        if song not in self._mel:
            n_starts = max((self._eeg[song].shape[-1] - WINDOW_SAMPLES - self.phase) // self.hop + 1, 0)
            starts_s = (self.phase + np.arange(n_starts) * self.hop) / MODEL_SFREQ - self.target_offset_s
            self._mel[song] = window_mels(self._checked_stimulus(song), starts_s)
        return self._mel[song]

    def _checked_stimulus(self, song: int) -> np.ndarray:
        """A song's stimulus audio, checked against its EEG once per song (:func:`sanity.check_stimulus`)."""
        audio = self.stimulus(song)
        if song not in self._checked:
            from eegmusic.offline_training.sanity import check_stimulus

            _, song_id, folder = self._sources[song]
            check_stimulus(audio, song=song_id, folder=folder, eeg_s=self._eeg[song].shape[-1] / MODEL_SFREQ,
                           allow_short=self.allow_short_stimulus)
            self._checked.add(song)
        return audio

    def stimulus(self, song: int) -> np.ndarray:
        """The stimulus audio of a song key (an appended excerpt's key gives that excerpt's audio)."""
        source, song_id, _ = self._sources[int(song)]
        return source.load_stimulus(song_id)

    def music_identity(self, song: int) -> tuple[str, float]:
        """Which music a song key hears, comparable across folders: (content digest of its stimulus
        audio file, second of that audio heard at the song's start).

        Song numbers are a folder's own: song 21 of another folder may be other music. A reader that
        says which music a play hears (``music_of``: a session's plays) is asked; otherwise the
        stimulus file's bytes are hashed (the same policy: files of other bytes are other music).
        """
        import hashlib

        source, song_id, _ = self._sources[int(song)]
        music_of = getattr(source, "music_of", None)
        if music_of is not None:
            digest, start_s = music_of(song_id)
            return str(digest), float(start_s)
        path = source.stimulus_path(song_id)
        if path is None:  # no file to tell (the targets come from elsewhere): nothing says it differs
            return "unknown", 0.0
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest(), 0.0

    def fill_mel_cache(self) -> None:
        """Compute the mel targets of every song now (otherwise computed on first use)."""
        for song in self.song_keys:
            self.song_mel(song)

    @property
    def song_keys(self) -> list[int]:
        """Every song key of :attr:`index`: the songs, then an appended excerpt's (:meth:`with_excerpt`)."""
        return list(self._eeg)

    def with_target_offset(self, target_offset_s: float) -> WindowDataset:
        """The same windows (EEG shared, not copied) with targets at another offset.

        Parameters
        ----------
        target_offset_s : float
            See the class parameters.

        Returns
        -------
        WindowDataset
            A shallow copy with its own (empty) mel cache.
        """
        import copy

        other = copy.copy(self)
        other.target_offset_s = float(target_offset_s)
        other._mel = {}
        return other

    def with_excerpt(self, other: WindowDataset) -> tuple[WindowDataset, np.ndarray]:
        """This dataset with the windows of another excerpt of its songs and listeners appended.

        ``other`` is a later recording of the same songs heard by the same listeners (``train
        --val-data``): its rows follow this dataset's, so every row number of this dataset (a split's
        parts) keeps its meaning, and its songs are keyed ``song + EXCERPT_SONG_KEY`` so that no row of
        it shares a (song, start) with a row of this one. ``songs`` and ``subjects`` stay this
        dataset's; ``other``'s windows of listeners this dataset lacks are left out.

        Parameters
        ----------
        other : WindowDataset
            Read with this dataset's hop, phase, preprocessing and target offset.

        Returns
        -------
        joined : WindowDataset
            A shallow copy (EEG shared, not copied) holding both.
        rows : ndarray of int
            The rows of ``other``'s windows in ``joined`` (empty when it shares no listener).
        """
        import copy

        reading = ("hop", "phase", "spec", "target_offset_s")
        if any(getattr(other, name) != getattr(self, name) for name in reading):
            raise ValueError(f"an appended excerpt must be read with this dataset's {', '.join(reading)}")
        joined = copy.copy(self)
        joined._eeg, joined._local = dict(self._eeg), dict(self._local)
        joined._mel, joined._sources = dict(self._mel), dict(self._sources)
        position = np.array([self.subjects.index(s) if s in self.subjects else -1 for s in other.subjects],
                            dtype=np.int64)
        kept = position[other.index["subject"]] >= 0
        index = other.index[kept].copy()
        index["subject"] = position[index["subject"]]
        music = other.music[kept].copy()
        music["music"] += EXCERPT_SONG_KEY   # split apart from this dataset's music, like its songs
        index["song"] += EXCERPT_SONG_KEY
        for song in other.song_keys:
            key = song + EXCERPT_SONG_KEY
            joined._eeg[key] = other._eeg[song]
            joined._local[key] = {int(position[g]): local for g, local in other._local[song].items()
                                  if position[g] >= 0}
            joined._sources[key] = other._sources[song]
            if song in other._mel:
                joined._mel[key] = other._mel[song]
        joined.index = np.concatenate([self.index, index])
        joined.music = np.concatenate([self.music, music])
        return joined, np.arange(len(self.index), len(joined.index), dtype=np.int64)


def window_mels(audio: np.ndarray, starts_s: np.ndarray) -> np.ndarray:
    """Mel-dB targets of many 1-s segments, equal to :func:`decoder.melspec.window_mel_db` for each.

    Parameters
    ----------
    audio : ndarray, shape (n_samples,)
        Whole stimulus at 22050 Hz.
    starts_s : ndarray, shape (n,)
        Segment starts in seconds of stimulus time.

    Returns
    -------
    mel_db : ndarray, shape (n, 128, 44), float32
    """
    sr = melspec.AUDIO_SFREQ
    audio = np.asarray(audio, dtype=np.float32)
    out = np.empty((len(starts_s), melspec.N_MELS, melspec.FRAMES_PER_WINDOW), dtype=np.float32)
    for lo in range(0, len(starts_s), _MEL_BATCH):
        chunk = np.asarray(starts_s[lo : lo + _MEL_BATCH])
        segments = np.zeros((len(chunk), sr), dtype=np.float32)
        for i, start_s in enumerate(chunk):
            start = int(round(float(start_s) * sr))
            a, b = max(start, 0), min(start + sr, len(audio))
            if b > a:
                segments[i, a - start : b - start] = audio[a:b]
        out[lo : lo + len(chunk)] = melspec.mel_db(segments)
    return out
