"""Live ground truth: the replay's markers say which stimulus second plays when; decoded frames are
scored against the true stimulus mel (dynamic r) as they come.

The marker format is the replay's (``song=21;t=12.000``: stimulus second 12 of song 21 plays at the
marker's LSL time). Scores are :func:`decoder.metrics.band_pearson`, the function offline evaluation
uses too. Stimulus audio comes from a :class:`StimulusLookup` the caller passes (the decoder never
reads a dataset format itself).

Beside the decoder's dynamic r, the same frames are scored for two baselines that know nothing of the
EEG, from the mean mel windows the model carries (metadata ``baselines``, computed on its training
part; :func:`read_baselines`): the **global mean** and the **song mean** (told which song plays, from
the markers). Each emitted frame came from one column (0…43) of its 1-s window, and each baseline
predicts that column of its mean window — so the baselines see exactly the frames the decoder is
scored on, and a constant prediction's once-per-window pattern is not mistaken for tracking.

Song numbers are a folder's own: song 21 of another folder may be other music. A model records the
content digest of each training song's stimulus beside its mean (``baselines.song_music``), and the
song mean is scored only where the truth folder's stimulus file has that digest (as ``evaluate`` calls
it "other music" and leaves the oracle undefined). A model made before digests were recorded is scored
by song number, as it was, and says so (:meth:`LiveTruth.song_identity_unchecked`).

A decoded frame with a non-finite value is not scored (by the decoder or the baselines) and is counted
(:attr:`LiveTruth.skipped_frames`): one such frame made the whole run's running sums NaN for good.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from eegmusic.decoder.melspec import AUDIO_SFREQ, FRAME_PERIOD_S, FRAMES_PER_WINDOW, N_MELS, mel_db
from eegmusic.decoder.metrics import RunningBandPearson, band_pearson
from eegmusic.decoder.scores import SHIFTED_KEY
from eegmusic.stream.errors import ConfigError, DataFormatError, EEGMusicError
from eegmusic.stream.stimulus import STIMULUS_EXTENSIONS, audio_inside
from eegmusic.stream.untrusted import REPLAY_END, MarkerParser

log = logging.getLogger(__name__)


BASELINE_ENCODING = "float16-le-base64"
"""How a mean mel window is stored in a model's ``baselines`` metadata: little-endian float16 as
base64 text (written by :func:`offline_training.baselines.training_baselines`)."""


def decode_mel(text: str, shape) -> np.ndarray:
    """One mean mel-dB window from its metadata text: ndarray of ``shape``, float32."""
    values = np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float32)
    return values.reshape(tuple(int(n) for n in shape))


def read_baselines(entry: dict) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """A model's ``baselines`` metadata: (global mean, {song id: song mean}), each (128, 44) mel-dB.

    Raises
    ------
    ValueError
        Unknown encoding or malformed entry.
    """
    if not isinstance(entry, dict) or entry.get("encoding") != BASELINE_ENCODING:
        raise ValueError(f"baselines are not encoded as {BASELINE_ENCODING}")
    shape = entry["shape"]
    songs = dict(entry.get("song_mean", {}))
    song_means = {int(song): decode_mel(text, shape) for song, text in songs.items()}
    return decode_mel(entry["global_mean"], shape), song_means


def read_song_music(entry: dict) -> dict[int, str] | None:
    """Which music each song of a model's ``baselines`` metadata was: {song id: stimulus content digest}.

    None for a model made before the digests were recorded (its song means are matched by number only).
    """
    music = entry.get("song_music") if isinstance(entry, dict) else None
    if not isinstance(music, dict):
        return None
    return {int(song): str(digest) for song, digest in music.items()}


def stimulus_digest(path: Path | None) -> str | None:
    """The sha256 of a stimulus file's bytes (the music identity ``evaluate`` compares), or None when
    there is no file to hash."""
    if path is None or not Path(path).is_file():
        return None
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


DATASET_FILE_SUFFIXES = (".xdf", ".xdfz", ".fif", ".fif.gz", ".edf", ".bdf", ".vhdr", ".set")
"""Files a replay plays as a dataset (an XDF session, EEG files MNE reads): ``--truth`` takes them as the
replay's ``--data`` names them, the stimulus read where the stream's description says
(:class:`ReplayStimulus`)."""

TRUTH_FIX = ("pass the dataset the replay plays, as its --data names it (an NMED-T folder with "
             "stimuli/songNN.wav, an XDF session or a folder of them, a BIDS root or an EEG file MNE reads), "
             "or for a virtual listener the music calibrate plays")


def has_audio(folder: Path, *, limit: int = 10_000) -> bool:
    """Whether ``folder`` holds an audio file (wav, flac, ogg, mp3) at any depth, looking at no more than
    ``limit`` entries (a home folder would take long to walk)."""
    import os

    seen = 0
    for _, _, files in os.walk(folder):
        if any(name.lower().endswith(STIMULUS_EXTENSIONS) for name in files):
            return True
        seen += len(files) + 1
        if seen > limit:
            return False
    return False


def _has_song_files(folder: Path) -> bool:
    """Whether ``folder`` holds an NMED-T stimulus, ``songNN.<wav|flac|ogg|mp3>``."""
    return folder.is_dir() and any(entry.name.startswith("song") and entry.suffix in STIMULUS_EXTENSIONS
               for entry in folder.iterdir() if entry.is_file())


def check_truth_dir(path: str | Path, *, flag: str = "--truth") -> Path:
    """Refuse a truth dataset that cannot give any stimulus audio, before a stream is opened.

    ``decode --truth`` and ``gui --truth`` name the dataset a replay plays: an NMED-T folder holding
    ``stimuli/songNN.<wav|flac|ogg|mp3>`` is read here (:class:`~stream.stimulus.StimulusFolder`); any
    other dataset ``eegmusic replay --data`` takes (an XDF session or a folder of them, a BIDS root, an
    EEG file MNE reads) is scored through what the replay's stream says it plays (:class:`ReplayStimulus`).
    A missing path, a file of no such kind, or a folder of none would otherwise only be noticed after
    connecting (a warning, then a run without any score).

    Returns
    -------
    Path
        The dataset, ``~`` expanded.

    Raises
    ------
    ConfigError
        One line naming what is wrong with ``path`` and what to pass instead.
    """
    target = Path(path).expanduser()
    if not target.exists():
        raise ConfigError(f"{flag} {path} does not exist; {TRUTH_FIX}")
    kind = truth_kind(target)
    if kind == "nmedt" and not (target / "stimuli").is_dir():
        raise ConfigError(f"{flag} {path} has no stimuli/ folder; put the songs' audio in "
                          f"stimuli/songNN.wav, or {TRUTH_FIX}")
    if kind == "nmedt" and not _has_song_files(target / "stimuli"):
        raise ConfigError(f"{flag} {path}: stimuli/ holds no songNN.wav (or .flac/.ogg/.mp3); put the "
                          f"songs' audio there, or {TRUTH_FIX}")
    if kind is not None:
        return target
    if not target.is_dir():
        raise ConfigError(f"{flag} {path} is a file of no dataset kind; {TRUTH_FIX}")
    hint = " (that is the stimuli folder itself)" if target.name == "stimuli" else ""
    raise ConfigError(f"{flag} {path} has no stimuli/ folder{hint}; {TRUTH_FIX}")


def truth_kind(target: Path) -> str | None:
    """What ``--truth`` names, in the order ``replay.dataset.open_dataset`` tells datasets apart: ``"file"``
    (an XDF session, an EEG file MNE reads), ``"bids"`` (a BIDS root, whose ``stimuli/`` holds its own
    files), ``"nmedt"`` (``song*.mat``, or a ``stimuli/`` folder and no sessions), ``"sessions"`` (a
    folder of XDF sessions), ``"music"`` (a folder of audio files, for a virtual listener), or None."""
    if not target.is_dir():
        return "file" if target.is_file() and target.name.lower().endswith(DATASET_FILE_SUFFIXES) else None
    names = [entry.name for entry in target.iterdir()]
    if "dataset_description.json" in names:
        return "bids"
    sessions = any(name.lower().endswith((".xdf", ".xdfz")) for name in names)
    if any(name.startswith("song") and name.endswith(".mat") for name in names) or (
            "stimuli" in names and (target / "stimuli").is_dir() and not sessions):
        return "nmedt"
    if sessions:
        return "sessions"
    # an NMED-T folder's stimuli/ (songNN.wav) is music too, but its replay's songs are the folder's
    if target.name == "stimuli" and _has_song_files(target):
        return None
    return "music" if has_audio(target) else None


def inside_truth(path: str | Path, truth: str | Path) -> bool:
    """Whether an output ``path`` would land on an input of the ``--truth`` dataset: inside a dataset
    folder; for a session file, the file, its audio folder (``<stem>_audio/``) or an audio file beside it
    (the stimuli a replay of it names)."""
    from eegmusic.stream.atomic import is_within

    truth = Path(truth).expanduser()
    if truth.is_dir():
        return is_within(path, truth)
    out = Path(path).expanduser()
    stimulus_beside = (out.suffix.lower() in STIMULUS_EXTENSIONS and out.exists()
                       and out.parent.resolve() == truth.parent.resolve())
    return (is_within(out, truth) or is_within(out, truth.with_name(f"{truth.stem}_audio"))
            or stimulus_beside)


class ReplayStimulus:
    """The song a replay of a dataset of any layout plays, read where its stream's description says.

    A replay of an XDF session, a BIDS root or an MNE file names, in its stream's ``desc/dataset``, the
    dataset (``path``), the song's audio file (``stimulus``) and the audio second heard at the song's
    first EEG sample (``stimulus_start_s``), so the decoder reads no dataset format itself. Those paths
    come from the network: the audio is read only when the dataset is the one the user named with
    ``--truth`` and the file lies inside it (beside it, for a session file).

    Parameters
    ----------
    truth : Path
        What ``--truth`` named (:func:`check_truth_dir`).
    meta : stream.inlet.StreamMeta
        The connected stream: its ``song`` and ``stimulus``.
    flag : str
        The option named in messages.

    Raises
    ------
    ConfigError
        The stream names no stimulus, another dataset, or a file outside the named one.
    """

    def __init__(self, truth: Path, meta, *, flag: str = "--truth") -> None:
        from eegmusic.stream.untrusted import printable

        named = meta.stimulus
        if named is None or meta.song is None:
            raise ConfigError(
                f"{flag} {truth} is no NMED-T folder (stimuli/songNN.wav), and stream {meta.name!r} does not "
                f"say which of its songs it plays; replay it with eegmusic replay --data {truth}")
        dataset = Path(named.dataset)
        if dataset != Path(truth).resolve():
            raise ConfigError(
                f"{flag} {truth}: stream {meta.name!r} replays {dataset}, whose song numbers are its own; "
                f"pass --truth {dataset}")
        inside = dataset if dataset.is_dir() else dataset.parent   # a session file: the folder holding it
        audio = audio_inside(named.audio, inside)
        if audio is None:
            said = printable(named.audio)[:200]
            raise ConfigError(f"{flag} {truth}: stream {meta.name!r} names its stimulus {said}, which is "
                              f"no audio file inside {inside} (links followed); replay the dataset with "
                              "eegmusic replay on this machine")
        self.path = Path(truth)
        self.song = int(meta.song)
        self._audio, self._start_s = audio, float(named.start_s)

    def stimulus_path(self, song_id: int) -> Path | None:
        """The replayed song's audio file (None for any other song, or when the file is gone)."""
        return self._audio if int(song_id) == self.song and self._audio.is_file() else None

    def load_stimulus(self, song_id: int) -> np.ndarray:
        """The replayed song's audio, sample 0 at its first EEG sample, float32 at 22050 Hz."""
        from eegmusic.stream.stimulus import from_start, read_audio

        if self.stimulus_path(song_id) is None:
            raise DataFormatError(self.missing(song_id))
        return from_start(read_audio(self._audio, sfreq=AUDIO_SFREQ), self._start_s, AUDIO_SFREQ)

    def missing(self, song_id: int) -> str:
        """Why there is no stimulus for ``song_id``, with the fix."""
        if int(song_id) != self.song:
            return (f"no stimulus for song {song_id}: the stream began replaying song {self.song} of "
                    f"{self.path} and names no other; decode each song's replay on its own")
        return f"{self._audio}: the stimulus of song {self.song} is gone; put it back or drop --truth"


class NamedStimuli:
    """Tracks a live source names on its marker stream (``song_audio=K;path=/abs/file``), as the virtual
    listener of ``simulate --live`` does for each track ``calibrate`` plays; read only inside the folder
    ``--truth`` names (the music calibrate plays, or the session's audio folder).

    Parameters
    ----------
    root : Path
        The folder ``--truth`` names.
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(root)
        self._named: dict[int, Path] = {}
        self._outside: set[int] = set()

    def name_audio(self, song: int, path: str) -> bool:
        """Take the marker's word for song ``song``'s audio file, if it lies inside :attr:`path`; return
        whether it names another file than before under that number."""
        from eegmusic.stream.untrusted import printable

        audio = audio_inside(path, self.path)
        if audio is not None:
            before = self._named.get(int(song))
            self._named[int(song)] = audio
            return before is not None and before != audio
        if int(song) not in self._outside:
            self._outside.add(int(song))
            log.warning("the stream names song %d's audio %s, which is no audio file inside --truth %s "
                        "(links followed): that song is not scored; pass the folder the music is played from",
                        song, printable(path)[:200], self.path)
        return False

    def stimulus_path(self, song_id: int) -> Path | None:
        """The audio file named for ``song_id`` inside the folder, or None."""
        audio = self._named.get(int(song_id))
        return audio if audio is not None and audio.is_file() else None

    def load_stimulus(self, song_id: int) -> np.ndarray:
        """The named track's audio from its start, float32 at 22050 Hz."""
        from eegmusic.stream.stimulus import read_audio

        if self.stimulus_path(song_id) is None:
            raise DataFormatError(self.missing(song_id))
        return read_audio(self._named[int(song_id)], sfreq=AUDIO_SFREQ)

    def missing(self, song_id: int) -> str:
        """Why there is no stimulus for ``song_id``, with the fix."""
        if int(song_id) in self._named:
            return f"{self._named[int(song_id)]}: song {song_id}'s audio is gone; put it back or drop --truth"
        return (f"no audio named for song {song_id} inside {self.path}; pass the folder the music is played "
                "from (a virtual listener names each track's file on its marker stream)")


def _refuse_other_music(folder, meta, flag: str) -> None:
    """Refuse an NMED-T ``--truth`` folder whose audio for the replayed song differs from the audio of the
    folder the replay plays, where both files are on this machine.

    Two folders number different music alike (simulated songs, ``simulate --music``): ``--truth`` naming
    another folder than the replay's scored the run against other music, with only a warning of its
    baselines. A copy of the folder holds the same files and is scored; so is a replay from another
    machine (its folder is not here), or a song ``--truth`` lacks (the run then says so). The replay's
    file is read only inside its folder, as :class:`ReplayStimulus` reads it.
    """
    named = meta.stimulus
    if named is None or meta.song is None:
        return
    played = Path(named.dataset)
    if not played.is_dir() or played.resolve() == Path(folder.path).resolve():
        return
    theirs, ours = audio_inside(named.audio, played), folder.stimulus_path(int(meta.song))
    if theirs is not None and ours is not None and stimulus_digest(theirs) != stimulus_digest(ours):
        raise ConfigError(f"{flag} {folder.path}: stream {meta.name!r} replays {played}, whose song "
                          f"{meta.song} is other music (its audio file differs from {ours}); pass --truth "
                          f"{played}")


def truth_stimuli(truth: str | Path, meta, *, flag: str = "--truth"):
    """The stimulus lookup for ``--truth``: an NMED-T folder's ``stimuli/``; a folder of music, for a stream
    that is no replay (the tracks its markers name); else what the replay names."""
    from eegmusic.stream.stimulus import StimulusFolder

    truth = Path(truth).expanduser()
    kind = truth_kind(truth)
    if kind == "nmedt":
        folder = StimulusFolder(truth, sfreq=AUDIO_SFREQ)
        _refuse_other_music(folder, meta, flag)
        return folder
    if kind == "music" and meta.stimulus is None:   # a live source naming its tracks
        return NamedStimuli(truth)
    return ReplayStimulus(truth, meta, flag=flag)


class StimulusLookup(Protocol):
    """Where a song's stimulus audio comes from (:class:`stream.stimulus.StimulusFolder` is one)."""

    path: Path | None
    """The folder named in messages; None for a live listener, whose tracks have no one folder."""

    def stimulus_path(self, song_id: int) -> Path | None:
        """The song's audio file, or None when there is none."""

    def load_stimulus(self, song_id: int) -> np.ndarray:
        """The song's audio, shape (n_samples,), float32 at 22050 Hz."""


NAME_WAIT_S = 12.0
"""How long a song of a named-tracks lookup (:class:`NamedStimuli`) waits for the marker naming its file
before it is said to go unscored (a virtual listener repeats the name every 5 s)."""


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
    keep_audio : bool
        Keep each song's stimulus audio for :meth:`stimulus_audio` (``decode --listen``).
    """

    def __init__(self, stimuli: StimulusLookup, *, recent_frames: int = 430, keep_audio: bool = False):
        self._stimuli = stimuli
        self.keep_audio = bool(keep_audio)
        self._audio: dict[int, np.ndarray] = {}   # stimulus audio by song, for --listen
        self.markers = MarkerParser()
        """Marker counts: good, other events, and malformed ones skipped (``bad``)."""
        self._mels: dict[int, np.ndarray] = {}
        self._requested: set[int] = set()
        # a named-tracks lookup: since when each song waits for its file's name (inf once said unscored)
        self._unnamed_since: dict[int, float] = {}
        self._named_as: dict[int, int] = {}   # how often a song was named anew for another file (_forget)
        self._loading = threading.Lock()
        self.error: str | None = None
        self.song: int | None = None
        self._anchor: tuple[float, float] | None = None   # (marker LSL time, stimulus seconds)
        self.recent = int(recent_frames)
        self._pred = np.zeros((N_MELS, self.recent), np.float32)
        self._true = np.zeros((N_MELS, self.recent), np.float32)
        # the stimulus half the song away from each recent frame, where the song has one (the control)
        self._shifted = np.zeros((N_MELS, self.recent), np.float32)
        self._has_shifted = np.zeros(self.recent, bool)
        self._n = 0
        # every scored frame, per song played, in constant memory; the run's figures merge them. The output
        # thread adds to them while the summary reads them: each side holds the lock
        self._by_song: dict[int, FrameScores] = {}
        self._scores_lock = threading.Lock()
        self._global_mean: np.ndarray | None = None
        self._song_means: dict[int, np.ndarray] = {}
        self._song_music: dict[int, str] | None = None   # the model's training music per song (digest)
        self._digests: dict[int, str | None] = {}        # the truth folder's stimulus digest per song
        self._mean_of_music: dict[str, np.ndarray] = {}   # a training music's mean by its digest
        self.skipped_frames = 0
        """Decoded frames not scored: a non-finite value (the vocoder plays them as silence)."""
        # frames no marker placed yet, scored once one does (:meth:`_hold`); none from before a replay_end
        self._held: collections.deque[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = collections.deque()
        self._ended_at = -np.inf
        self._anchor_until: float | None = None   # a replay_end's time: the anchor places no later frame

    def set_baselines(self, global_mean: np.ndarray, song_means: dict[int, np.ndarray],
                      song_music: dict[int, str] | None = None) -> None:
        """Score the global-mean and song-mean baselines on the decoder's frames from now on.

        Parameters
        ----------
        global_mean : ndarray, shape (128, 44)
            Mean mel-dB window of the model's training part.
        song_means : dict of int to ndarray, each shape (128, 44)
            Mean mel-dB window of each song in the training part.
        song_music : dict of int to str, optional
            Content digest of each training song's stimulus (:func:`read_song_music`): a song mean is
            scored only for a truth stimulus of the same digest. None (a model made before digests):
            matched by song number, unchecked.
        """
        self._global_mean = np.asarray(global_mean, np.float32)
        self._song_means = {int(k): np.asarray(v, np.float32) for k, v in song_means.items()}
        self._song_music = None if song_music is None else {int(k): str(v) for k, v in song_music.items()}
        # each training music's mean by its digest (its lowest song's), for a truth song of that music
        # under another number: found once here, not on every scored hop
        self._mean_of_music = {}
        for song, digest in sorted((self._song_music or {}).items()):
            if digest != "unknown" and song in self._song_means:
                self._mean_of_music.setdefault(digest, self._song_means[song])

    def song_identity_unchecked(self) -> bool:
        """Whether the song means are matched by song number only: the model carries baselines but no
        digests of its training music (made before they were recorded)."""
        return self._global_mean is not None and bool(self._song_means) and self._song_music is None

    def _song_mean(self, song: int) -> np.ndarray | None:
        """The model's mean window for the music ``song`` of the truth folder plays, or None: no training
        song of that music. With digests on both sides the music is found by digest, under whatever
        number it trained (a held-out listener's play is a song of its own in a folder of sessions, and
        another folder may number the same track otherwise); other music under the same number has none.
        Without them, by number."""
        mean = self._song_means.get(song)
        if self._song_music is None:
            return mean
        trained, truth = self._song_music.get(song), self._digests.get(song)
        if mean is not None and (trained in (None, "unknown") or truth is None or trained == truth):
            return mean   # the same music, or nothing tells them apart
        return None if truth is None else self._mean_of_music.get(truth)

    def load(self, song: int) -> np.ndarray:
        """Compute (once) and return the true mel-dB of a song's stimulus, shape (128, n_frames).

        Raises
        ------
        DataFormatError
            The folder has no stimulus for that song.
        """
        with self._loading:
            if song not in self._mels:
                named = self._named_as.get(song, 0)   # a file named anew meanwhile: this one is stale
                if self._stimuli.stimulus_path(song) is None:
                    if hasattr(self._stimuli, "missing"):
                        raise DataFormatError(self._stimuli.missing(song))
                    where = self._stimuli.path
                    raise DataFormatError(
                        f"no stimulus for song {song} in {where}/stimuli; put song{song}.wav there or drop "
                        "--truth" if where is not None else
                        f"no stimulus for song {song}: no track of that number was played; drop --truth")
                audio = self._stimuli.load_stimulus(song)
                digest = stimulus_digest(self._stimuli.stimulus_path(song))
                mel = mel_db(audio)
                if self._named_as.get(song, 0) != named:
                    return mel
                if self.keep_audio:
                    self._audio[song] = audio
                # before the mel: frames are scored once it is there, and the song mean needs the digest
                self._digests[song] = digest
                if song in self._song_means and self._song_mean(song) is None:
                    log.warning("song %d (%s) is other music than the model's training song %d (stimulus "
                                "digests differ): no song-mean baseline for it", song,
                                self._stimuli.stimulus_path(song), song)
                self._mels[song] = mel
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
        if self.markers.named is not None:   # song_audio=K;path=P: where a virtual listener's track K is
            song, path = self.markers.named
            self.markers.named = None
            if hasattr(self._stimuli, "name_audio"):
                if self._stimuli.name_audio(song, path):   # another file under a number heard before:
                    self._forget(song)                       # calibrate numbers each session's from 1
                if song == self.song:
                    self._request(song)
        if parsed is None:
            if text == REPLAY_END:   # as the pipeline and the marker inlet read it
                # the replay's clock ends here: it still places its own last frames (some are still being
                # decoded), and the next replay's are placed by that one's markers, not by this one's last
                # (a replay stopped mid-song scored the next one's first second against the rest of its song)
                self._anchor_until = self._ended_at = float(timestamp)
                self._held.clear()
            return
        song, seconds = parsed
        if song != self.song and self.song is not None and self._anchor_until is None:
            # held under another song's marker (its mel never came): not this song's frames
            self._held.clear()
        self._anchor_until = None
        if song != self.song:
            self.song = song
            self._n = 0
        self._request(song)
        self._anchor = (float(timestamp), seconds)

    def _request(self, song: int) -> None:
        """Load ``song``'s stimulus mel in the background, once; a lookup of named tracks waits for its
        name (a decode joining mid-track hears the song's number before the marker that names its file)."""
        if song in self._mels or song in self._requested:
            return
        if hasattr(self._stimuli, "name_audio") and self._stimuli.stimulus_path(song) is None:
            if time.monotonic() - self._unnamed_since.setdefault(song, time.monotonic()) > NAME_WAIT_S:
                self._unnamed_since[song] = np.inf   # said once
                log.warning("%s: no score for song %d yet", self._stimuli.missing(song), song)
            return
        self._requested.add(song)
        self._load_in_background(song)

    def _forget(self, song: int) -> None:
        """Drop what was loaded for ``song`` (its file changed): the next marker loads the new one.

        Called from the output thread, so it does not wait for a load in progress (a long track's mel takes
        a second): that load sees the new name when it ends and keeps nothing."""
        self._named_as[song] = self._named_as.get(song, 0) + 1
        self._mels.pop(song, None)
        self._audio.pop(song, None)
        self._digests.pop(song, None)
        self._requested.discard(song)
        if song == self.song:
            self._n = 0

    def stimulus_time(self, lsl_time: float | np.ndarray) -> float | np.ndarray | None:
        """Stimulus time in seconds at an LSL time, by the newest marker (None before any)."""
        if self._anchor is None:
            return None
        t_marker, seconds = self._anchor
        return seconds + (lsl_time - t_marker)

    def stimulus_audio(self, lsl_time: float, n_samples: int, *, follow_from: int | None = None,
                       tolerance: int = 512) -> tuple[np.ndarray, int] | None:
        """The true stimulus that played from LSL time ``lsl_time`` on (``decode --listen``).

        Parameters
        ----------
        lsl_time : float
            LSL time (seconds) of the first sample wanted, by the newest marker.
        n_samples : int
            Samples wanted at 22050 Hz.
        follow_from : int or None
            The stimulus sample that would continue the previous chunk: used instead of the
            marker's placement when within ``tolerance`` samples of it, so consecutive chunks
            play without seams; a farther placement (a seek, another song) is followed.

        Returns
        -------
        (audio, next_start) or None
            ``audio`` shape (n_samples,), float32, zeros outside the song; ``next_start`` the
            stimulus sample after it. None before the first marker, before the song's audio is
            loaded, or unless the scorer was made with ``keep_audio=True``.
        """
        if self._anchor is None or self.song is None or self.song not in self._audio:
            return None
        audio = self._audio[self.song]
        start = int(round(self.stimulus_time(lsl_time) * AUDIO_SFREQ))
        if follow_from is not None and abs(start - follow_from) <= tolerance:
            start = follow_from
        out = np.zeros(int(n_samples), np.float32)
        lo, hi = max(start, 0), min(start + int(n_samples), len(audio))
        if hi > lo:
            out[lo - start:hi - start] = audio[lo:hi]
        return out, start + int(n_samples)

    def truth_frames(self, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """True stimulus frames for decoded frames stamped at LSL times ``stamps``.

        Returns
        -------
        (valid, frames) or None
            Boolean mask of the frames inside the song and the true frames (128, n_valid); None
            before the first marker.
        """
        found = self._song_frames(stamps)
        if found is None:
            return None
        mel, index, valid = found
        return valid, mel[:, index[valid]]

    def _song_frames(self, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(the song's mel, the stimulus frame index of each stamp, which lie inside the song), or None."""
        if self._anchor is None or self.song is None or self.song not in self._mels:
            return None
        mel = self._mels[self.song]
        index = np.rint(self.stimulus_time(stamps) / FRAME_PERIOD_S).astype(np.int64)
        return mel, index, (index >= 0) & (index < mel.shape[1])

    def update(self, frames: np.ndarray, stamps: np.ndarray,
               window_frame: np.ndarray | None = None) -> np.ndarray | None:
        """Add decoded frames (128, n) stamped at LSL times ``stamps``; return their true frames.

        ``window_frame`` (n,) gives the window column (0…43) each frame came from; with it, and
        baselines set, the baselines are scored on the same frames.
        """
        stamps = np.asarray(stamps)
        placed = None if self._anchor_until is None else stamps <= self._anchor_until
        found = None if placed is not None and not placed.any() else self._song_frames(stamps)
        if found is None:
            self._hold(frames, stamps, window_frame)
            return None
        if placed is not None:   # the ended replay's last frames: scored; any later one waits for the next
            if not placed.all():
                self._hold(frames[:, ~placed], stamps[~placed],
                           None if window_frame is None else np.asarray(window_frame)[~placed])
            mel, index, valid = found
            return self._score(frames, stamps, window_frame, (mel, index, valid & placed))
        if self._held:   # frames from before the first marker (or before the song's mel was ready)
            held = list(self._held)
            self._held.clear()
            for args in held:
                again = self._song_frames(args[1])
                if again is not None:
                    self._score(*args, again)
        return self._score(frames, stamps, window_frame, found)

    def _hold(self, frames: np.ndarray, stamps: np.ndarray, window_frame: np.ndarray | None) -> None:
        """Keep frames no marker places yet, the newest :data:`HELD_S` of them, for the first marker to
        place: a replay sends its first markers as it starts, before a decode following it has found its
        marker stream (and a song's mel takes a moment to compute), so its first second went unscored."""
        after = np.asarray(stamps) > self._ended_at   # never a frame of a replay that said it ended
        if not after.any():
            return
        # boolean indexing copies: the caller's arrays may be reused
        self._held.append((frames[:, after], np.asarray(stamps)[after],
                           None if window_frame is None else np.asarray(window_frame)[after]))
        while len(self._held) > 1 and sum(held[1].size for held in self._held) > HELD_S / FRAME_PERIOD_S:
            self._held.popleft()   # a few dozen hops at most: counted, not kept in step

    def _score(self, frames: np.ndarray, stamps: np.ndarray, window_frame: np.ndarray | None,
               found: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Score frames the markers place (``found``: :meth:`_song_frames`); return their true frames."""
        mel, index, valid = found
        truth_valid = mel[:, index[valid]]
        # a non-finite frame is not scored (one would make the running sums NaN for the rest of the run)
        finite = np.isfinite(frames).all(axis=0)
        scored = valid & finite
        self.skipped_frames += int(np.count_nonzero(valid & ~finite))
        truth = truth_valid[:, finite[valid]]
        pred = frames[:, scored]
        n_song = mel.shape[1]
        # the control: the same frames against the stimulus half the song away (None for a song too short)
        shifted = mel[:, (index[scored] + n_song // 2) % n_song] if n_song >= SHIFT_MIN_FRAMES else None
        means = None
        if self._global_mean is not None and pred.shape[1]:
            means = {name: None for name in BASELINES}   # frames with no window column: none can be placed
            if window_frame is not None:
                columns = np.asarray(window_frame)[scored]
                song_mean = self._song_mean(self.song)
                means = {"global_mean": self._global_mean[:, columns],
                         "song_mean": None if song_mean is None else song_mean[:, columns]}
        for column in range(pred.shape[1]):
            slot = self._n % self.recent
            self._pred[:, slot] = pred[:, column]
            self._true[:, slot] = truth[:, column]
            self._has_shifted[slot] = shifted is not None
            if shifted is not None:
                self._shifted[:, slot] = shifted[:, column]
            self._n += 1
        if pred.shape[1]:
            with self._scores_lock:
                self._by_song.setdefault(self.song, FrameScores()).add(
                    pred, truth, means, None if window_frame is None else np.asarray(window_frame)[scored],
                    shifted=shifted)
        out = np.full(frames.shape, np.nan, np.float32)
        out[:, valid] = truth_valid
        return out

    def recent_scores(self) -> tuple[float | None, float | None]:
        """The live figure and its control, taken together over one count of recent frames.

        Returns
        -------
        dynamic_r : float or None
            Dynamic r over the last ``recent_frames`` scored frames (None before 2 frames).
        shifted_r : float or None
            The shifted-stimulus control over the same frames: they against the stimulus half their song
            away (None before 2 frames, or while any of them is of a song too short to have one,
            :data:`SHIFT_MIN_FRAMES`). Taken apart, a frame scored between the two put them on different
            frames; the dashboard also read this one from the summary, published about once a second,
            beside an r of its newest snapshot.
        """
        n = min(self._n, self.recent)
        if n < 2:
            return None, None
        pred = self._pred[:, :n]
        r = float(np.mean(band_pearson(pred, self._true[:, :n])))
        if not self._has_shifted[:n].all():
            return r, None
        return r, float(np.mean(band_pearson(pred, self._shifted[:, :n])))

    @property
    def scored_frames(self) -> int:
        """Decoded frames scored against the true stimulus so far (the whole-run figures' frames)."""
        return self.whole_run()["scored_frames"]

    def dynamic_r_total(self) -> float | None:
        """Dynamic r over every scored frame of the run (None before 2 frames)."""
        return self.whole_run()["dynamic_r_total"]

    def baseline_r_total(self) -> dict[str, float | None]:
        """Dynamic r of the baselines over the same frames as :meth:`dynamic_r_total`.

        Returns
        -------
        dict
            ``global_mean`` and ``song_mean``: r, or None without baselines (a model that carries
            none) or, for the song mean, once any scored frame's song is not in the model's training
            part (or is other music under the same number: :meth:`_song_mean`): scored on the other
            frames only, it would stand beside a decoder score over more frames (a playlist of a
            trained and a new song). :meth:`scores_by_song` scores it song by song.
        """
        return self.whole_run()["baseline_dynamic_r_total"]

    def shifted_r_total(self) -> float | None:
        """The control over the same frames as :meth:`dynamic_r_total`: the decoder's frames scored against
        the stimulus half their song away (:meth:`FrameScores.shifted_r`)."""
        return self.whole_run()[SHIFTED_KEY]

    def constant_baselines(self) -> list[str]:
        """The baselines whose prediction was one spectrum at most scored frames, so their r is None.

        A baseline is the model's mean training window, read at the window column each decoded frame
        came from. At a hop of one frame every emitted frame is a window's newest (column 43), so the
        baseline repeats one spectrum: it has no dynamics, and band Pearson's 0 for it would be a
        convention printed as a score (:data:`decoder.metrics.CONSTANT_NOTE`). Frames caught up after a
        stall come from older columns, but a few of them gave the baseline a "score" that measured the
        stalls, not a reference for the decoder: it was printed under load and n/a otherwise for the
        same run. So a baseline is scored only when no one column gave more than two thirds of its frames
        (a hop of 2 frames or more, ``decode --hop 0.0464``, gives each of its columns about half; a
        majority rule flipped there on one frame more of one column, at a song's start).
        """
        return self.whole_run()["baseline_constant"]

    def scores_by_song(self) -> dict[int, dict]:
        """The whole-run figures for each song played, on that song's scored frames alone.

        A playlist of a trained and a new song has no run-wide song mean (:meth:`baseline_r_total`);
        here the trained song's frames get theirs, beside the decoder's r on exactly those frames.

        Returns
        -------
        dict of int to dict
            Per song, in the order first scored, under the run summary's names so that
            :func:`decoder.scores.baseline_words` words it alike: ``scored_frames``, ``dynamic_r_total``,
            ``baseline_dynamic_r_total`` (``global_mean`` and ``song_mean``, each r or None by the rules of
            :meth:`baseline_r_total`), ``baseline_constant`` (:meth:`constant_baselines`) and
            ``shifted_stimulus_dynamic_r_total`` (:meth:`shifted_r_total`), each over that song's frames.
        """
        return self.whole_run()["scores_by_song"]

    def trained_music(self) -> list[int]:
        """The scored songs whose music the model trained on: those it carries a song mean of
        (:meth:`_song_mean`), in the order first scored. Their frames' targets were, some or all, training
        targets (a ``block`` split trains on most of a song's seconds, the others on all of them), so a score
        over them is not of unheard music. Empty for a model that carries no baselines (it cannot say)."""
        with self._scores_lock:
            songs = list(self._by_song)
        return [song for song in songs if self._song_mean(song) is not None]

    def whole_run(self) -> dict:
        """The run's figures, under the names :meth:`scores_by_song` gives a song's, and each song's under
        ``scores_by_song``: all read at one moment. Read one by one while the output thread scored hops, a
        summary's run total and its one song's total differed (-0.00653 against -0.00610). The run's
        figures combine its songs' scores when read (:func:`_run_figures`), not at every hop; the single
        figures above read this."""
        with self._scores_lock:   # the output thread adds to the songs' scores in place
            songs = list(self._by_song.items())
            return {**_run_figures([scores for _, scores in songs]),
                    "scores_by_song": {song: _figures(scores) for song, scores in songs}}


def _figures(scores: FrameScores) -> dict:
    """The whole-run figures of ``scores`` under the run summary's names (``LiveTruth.scores_by_song``)."""
    return {"scored_frames": scores.decoder.n, "dynamic_r_total": scores.decoder_r(),
            "baseline_dynamic_r_total": scores.baseline_r(), "baseline_constant": scores.constant(),
            SHIFTED_KEY: scores.shifted_r()}


def _run_figures(songs: list[FrameScores]) -> dict:
    """The run's figures from its songs' scores: each r is the songs' r averaged, weighted by their
    scored frames, as offline ``dynamic_r`` averages its blocks (one song and listener each, equally
    long in the benchmark and ``evaluate``), so that a run of one song scores as offline does.

    Not one Pearson over every song's frames together: there a decoder that put out only each song's
    mean spectrum, tracking nothing within a song, scored 0.27 over three songs (0.00 song by song and
    offline), and so did the song-mean baseline, which is constant within a song. Which baselines are
    reported at all (a song-mean for songs the model did not train on, constant baselines, the
    shifted-stimulus control's songs too short) still follows the rules over every frame
    (:meth:`FrameScores.baseline_r`, :meth:`FrameScores.shifted_r`)."""
    figures = _figures(FrameScores.merged(songs))
    scored = [(scores, scores.decoder.n) for scores in songs if scores.decoder.n >= 2]   # those with an r

    def averaged(r_of) -> float | None:
        values = [(r_of(scores), n) for scores, n in scored]
        values = [(r, n) for r, n in values if r is not None]
        if len(values) == 1:   # one song: its own figure, to the last bit
            return values[0][0]
        return float(np.average([r for r, _ in values], weights=[n for _, n in values])) if values else None

    figures["dynamic_r_total"] = averaged(FrameScores.decoder_r)
    if figures[SHIFTED_KEY] is not None:
        figures[SHIFTED_KEY] = averaged(FrameScores.shifted_r)
    for name, r in figures["baseline_dynamic_r_total"].items():
        if r is None:   # not reported for the run (above)
            continue
        if not any(scores.baselines[name].prediction_varies() for scores, _ in scored):
            # one spectrum within each song (a song's mean spectrum): it moves only where songs change,
            # which the songs' own r no longer credits, so its 0 there would be a convention, not a score
            figures["baseline_dynamic_r_total"][name] = None
            figures["baseline_constant"] = [*figures["baseline_constant"], name]
            continue
        figures["baseline_dynamic_r_total"][name] = averaged(
            lambda scores, name=name: scores.running_r(scores.baselines[name]))
    return figures


BASELINES = ("global_mean", "song_mean")
"""The baselines scored beside the decoder, in the order they are reported."""

HELD_S = 2.0
"""Seconds of decoded frames kept while no marker places them, for the first one to place
(:meth:`LiveTruth._hold`)."""

SHIFT_MIN_FRAMES = 4 * FRAMES_PER_WINDOW
"""Least frames of a song for the shifted-stimulus control: half of it must lie windows away (4 s)."""


class FrameScores:
    """The decoder's and the baselines' running band Pearson over one set of frames: a run, or one song."""

    def __init__(self):
        self.decoder = RunningBandPearson(N_MELS)
        self.baselines = {name: RunningBandPearson(N_MELS) for name in BASELINES}
        self.partial: set[str] = set()
        """Baselines that some of the decoder's scored frames lacked: reported as None."""
        self.columns = np.zeros(FRAMES_PER_WINDOW, np.int64)
        """Scored frames per window column they came from (:meth:`constant`): an array, not a Counter, so
        that a reader (the summary, in another thread) never iterates it while the output thread adds a
        column it had not seen."""
        self.shifted = RunningBandPearson(N_MELS)
        """The decoder's frames against the stimulus half their song away (:meth:`shifted_r`)."""
        self.shifted_partial = False
        """Some scored frames had no shifted stimulus (a song too short): :meth:`shifted_r` is None."""

    def add(self, pred: np.ndarray, truth: np.ndarray, means: dict[str, np.ndarray | None] | None,
            columns: np.ndarray | None = None, *, shifted: np.ndarray | None = None) -> None:
        """Add the decoder's frames ``pred`` against ``truth`` (each (128, n)) and each baseline's frames
        (``means``: None when the model carries no baselines; a baseline's None, it has no prediction
        for these frames), which came from window ``columns`` (n,) where known; ``shifted`` (128, n): the
        stimulus half the song away from each frame (None: the song is too short to have one)."""
        self.decoder.add(pred, truth)
        if shifted is None:
            self.shifted_partial = True
        else:
            self.shifted.add(pred, shifted)
        if columns is not None:
            np.add.at(self.columns, np.clip(np.asarray(columns, np.int64), 0, FRAMES_PER_WINDOW - 1), 1)
        for name, mean in (means or {}).items():
            if mean is None:
                self.partial.add(name)
            else:
                self.baselines[name].add(mean, truth)

    @classmethod
    def merged(cls, parts: list[FrameScores]) -> FrameScores:
        """The scores of every frame of ``parts`` together; a baseline some part lacked stays partial."""
        out = cls()
        out.decoder = RunningBandPearson.merged(part.decoder for part in parts)
        out.baselines = {name: RunningBandPearson.merged(part.baselines[name] for part in parts)
                         for name in BASELINES}
        out.partial = set().union(*(part.partial for part in parts))
        out.columns = sum((part.columns for part in parts), np.zeros(FRAMES_PER_WINDOW, np.int64))
        out.shifted = RunningBandPearson.merged(part.shifted for part in parts)
        out.shifted_partial = any(part.shifted_partial for part in parts)
        return out

    def decoder_r(self) -> float | None:
        """The decoder's dynamic r (None before 2 frames)."""
        return self.running_r(self.decoder)

    @staticmethod
    def running_r(running: RunningBandPearson) -> float | None:
        """``running``'s band Pearson averaged over bands (None before 2 frames)."""
        r = running.band_pearson()
        return None if r is None else float(np.mean(r))

    def shifted_r(self) -> float | None:
        """The shifted-stimulus control: the decoder's dynamic r against the stimulus half its song away,
        over the same frames as :meth:`decoder_r` (None before 2 frames, or when some frame's song was too
        short to have one). What the decoder's own output scores against music it is not hearing: how far
        the song's recurring spectra alone carry a score."""
        if self.shifted_partial:
            return None
        r = self.shifted.band_pearson()
        return None if r is None else float(np.mean(r))

    def baseline_r(self) -> dict[str, float | None]:
        """Each baseline's dynamic r: None where partial, constant, or never scored."""
        constant = self.constant()
        out = {}
        for name, running in self.baselines.items():
            r = None if name in self.partial or name in constant else running.band_pearson()
            out[name] = None if r is None else float(np.mean(r))
        return out

    def constant(self) -> list[str]:
        """The baselines whose prediction was one spectrum at every frame, or at more than two thirds of
        them (one window column gave them: see :meth:`LiveTruth.constant_baselines`)."""
        counts = self.columns.copy()   # one reading of what the output thread adds to
        one_column = counts.sum() > 0 and 3 * counts.max() > 2 * counts.sum()
        return [name for name, running in self.baselines.items()
                if name not in self.partial and running.n >= 2
                and (one_column or not running.prediction_varies())]
