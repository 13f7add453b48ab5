"""Recordings MNE reads (FIF, EDF, BDF, BrainVision, EEGLAB, a BIDS root) as eegmusic datasets.

The stimulus onsets come from the recording's annotations (or, when it has none, from the events of
its stim channel); which audio each onset played comes from a small sidecar JSON, because no EEG
format says it:

``<recording stem>.eegmusic.json`` beside the file (a BIDS root: ``eegmusic.json`` in the root)::

    {
      "stimuli": {"song1": "audio/song1.wav", "5": "audio/other.flac"},
      "subject": "P01",
      "audio_delay_s": 0.0
    }

- ``stimuli`` (required) maps an annotation description (BIDS: the ``trial_type``), or a stim-channel
  event code written as a string, to an audio file, relative to the sidecar's folder. Every onset
  whose description is listed becomes one song: the EEG from the onset for the audio's length
  (or the annotation's duration when it is longer than zero and shorter), the audio from its start.
- ``subject`` (optional) names the participant (default: the file's stem; BIDS: ``sub-XX``).
- ``audio_delay_s`` (optional) is how long after the marked onset the sound starts (e.g. the
  sound card's output latency when the trigger was sent at playback start).

The sidecar is checked by :mod:`eegmusic.replay.sidecar` (types, paths inside its folder, audio
present) before anything is read.

Only EEG channels are kept, in µV; electrode positions come from the recording's montage when it has
one (else the labels are looked up in the standard montages by the consumers).
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
from eegmusic.replay.plays import Play, PlayDataset
from eegmusic.replay.sidecar import read_sidecar
from eegmusic.replay.xdf import MAX_SFREQ, MIN_SFREQ
from eegmusic.stream.errors import DataFormatError, detail
from eegmusic.stream.stimulus import decoder_notes_aside

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".eegmusic.json"
BIDS_SIDECAR = "eegmusic.json"
BIDS_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif")
DAMAGE_WORDS = re.compile(r"invalid tag|truncat|end of file|corrupt|too short|missing \d+ samples|"
                          r"records from the header does not match the file size", re.I)
"""What MNE's warnings say of a damaged recording (a FIF cut short: "Invalid tag with only 0/16 bytes"; an
EDF/BDF cut short: "Number of records from the header does not match the file size")."""


EDF_RECORDS = re.compile(r"records from the header does not match the file size", re.I)
"""MNE's EDF/BDF warning whenever the header's record count and the file's size disagree: damage only when
the header promises more than the file holds (:func:`_edf_cut_short`)."""


def _edf_cut_short(path, seconds_read: float) -> bool:
    """Whether an EDF/BDF file's header promises more than the ``seconds_read`` MNE found in it: its record
    count (bytes 236-244) times its record duration (244-252). A count of -1 (a recording not yet
    finalised, which the format allows) or a longer file is no loss."""
    try:
        with open(path, "rb") as file:
            header = file.read(252)
        n_records, record_s = int(header[236:244].decode("ascii")), float(header[244:252].decode("ascii"))
    except (OSError, ValueError, UnicodeDecodeError):
        return True   # no readable count: keep MNE's word for it
    return n_records > 0 and n_records * record_s > seconds_read + 1e-6


def _mne():
    try:
        import mne
    except ImportError:
        raise DataFormatError("reading this recording needs MNE: pip install 'eegmusic[train]'") from None
    return mne


def sidecar_path(recording) -> Path:
    """``<stem>.eegmusic.json`` beside a recording (``x.fif.gz`` → ``x.eegmusic.json``)."""
    recording = Path(recording)
    stem = recording.name.split(".")[0]
    return recording.with_name(stem + SIDECAR_SUFFIX)


def _onsets(raw, recording: Path) -> list[tuple[str, float, float]]:
    """(description, onset s from the first sample, duration s) of every annotation or stim event."""
    mne = _mne()
    # With a measurement date, onsets count from it and the data start first_time later; without,
    # onsets count from the first sample.
    shift = raw.first_time if raw.annotations.orig_time is not None else 0.0
    out = [(str(a["description"]), float(a["onset"]) - shift, float(a["duration"])) for a in raw.annotations]
    if out:
        return out
    stim = mne.pick_types(raw.info, stim=True, eeg=False)
    if len(stim):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                events = mne.find_events(raw, stim_channel=raw.ch_names[stim[0]], verbose="error")
        except (ValueError, OSError) as error:   # a damaged file's last buffer (a FIF cut inside it)
            raise DataFormatError(f"{recording}: its stim channel cannot be read ({type(error).__name__}: "
                                  f"{detail(error, 80)}); check the file") from None
        return [(str(code), (sample - raw.first_samp) / raw.info["sfreq"], 0.0) for sample, _, code in events]
    raise DataFormatError(
        f"{recording}: no annotations and no stim-channel events, so no stimulus onsets; "
        "annotate each stimulus onset (mne Annotations / BIDS events.tsv) and name its audio "
        "in the sidecar"
    )


BIDS_TABLE_COLUMNS = {"electrodes": ("name", "x", "y", "z"), "channels": ("name", "type", "units"),
                      "events": ("onset", "duration")}
"""The columns BIDS requires of each table mne-bids reads beside an EEG recording."""


def _bids_table_problem(recording: Path) -> str | None:
    """The first table beside a BIDS recording that lacks a column BIDS requires, said with the fix; None
    when every table has its columns (the recording itself is then what MNE could not read)."""
    for table in sorted(recording.parent.glob("*.tsv")):
        kind = table.stem.rsplit("_", 1)[-1]
        if kind not in BIDS_TABLE_COLUMNS:
            continue
        try:
            with open(table, encoding="utf-8", errors="replace") as file:
                header = file.readline().rstrip("\r\n").split("\t")
        except OSError:
            continue
        lacking = [column for column in BIDS_TABLE_COLUMNS[kind] if column not in header]
        if lacking:
            return (f"{table}: no {', '.join(lacking)} column (a BIDS {kind}.tsv needs "
                    f"{', '.join(BIDS_TABLE_COLUMNS[kind])}, tab-separated); add it")
    return None


def _stimulus_before_the_recording(recording, stimuli) -> str | None:
    """The problem and the fix when a BIDS ``events.tsv`` row of a stimulus has a negative onset, else None.

    BIDS allows an event that began before the first sample, and MNE cuts its annotation to start there,
    so the play's EEG was paired with its audio from the start while the sound was seconds in (an onset
    of -5 s read "4.0 s from 0.00 s of s21.wav", problems: none). MNE says only that some annotation was
    limited to the data range, at either end, so the table itself is read.
    """
    eeg = Path(str(recording.fpath))
    events = eeg.with_name(eeg.name.rsplit("_", 1)[0] + "_events.tsv")
    if not events.is_file():
        return None
    try:
        with open(events, encoding="utf-8", errors="replace") as file:
            rows = [line.rstrip("\r\n").split("\t") for line in file]
    except OSError:
        return None
    if not rows or "onset" not in rows[0]:
        return None
    header = rows[0]
    for row in rows[1:]:
        fields = dict(zip(header, row, strict=False))
        try:
            onset = float(fields.get("onset", "n/a"))
        except ValueError:
            continue
        names = {fields.get("trial_type"), fields.get("value")} & set(stimuli)
        if onset < 0 and names:
            return (f"{events}: stimulus '{sorted(names)[0]}' has onset {onset:g} s, before the recording's "
                    f"first sample, and eegmusic pairs a play's EEG with its audio from the onset; cut the "
                    f"audio to begin {-onset:g} s in (a file of its own in the sidecar) and set the onset "
                    "to 0")
    return None


MAX_POSITION_M = 1.0
"""Farthest an electrode may lie from the head's centre (ten times a head's radius): a position beyond it is
damage or a unit error (millimetres read as metres), not a place on the scalp. One of 1e308 overflowed
numpy's norm into a raw warning, and reached the model's interpolation."""


def placed_positions(locs: np.ndarray) -> np.ndarray:
    """Which rows of electrode positions ``locs`` (metres, shape (n, 3)) place their electrode: finite,
    not MNE's all-zero "unknown", and within :data:`MAX_POSITION_M` of the head's centre."""
    locs = np.asarray(locs, dtype=np.float64).reshape(-1, 3)
    finite = np.all(np.isfinite(locs), axis=1)
    with np.errstate(over="ignore"):   # 1e308 squared: inf, which is then too far
        norms = np.linalg.norm(np.where(finite[:, None], locs, 0.0), axis=1)
    return finite & (norms > 0) & (norms <= MAX_POSITION_M)


class MNEDataset(PlayDataset):
    """One recording MNE reads, or every EEG recording of a BIDS root (one participant per file).

    Parameters
    ----------
    path : str or Path
        A ``.fif``/``.edf``/``.bdf``/``.vhdr``/``.set`` file with its sidecar, or a BIDS root with
        ``eegmusic.json``.

    Raises
    ------
    DataFormatError
        Unreadable file; no annotations/events; no sidecar, or one naming missing audio; no onset
        named in the sidecar.
    """

    kind = "MNE recording"

    def __init__(self, path) -> None:
        super().__init__(path)
        self._raws: dict[Path, object] = {}
        self.damage: dict[Path, str] = {}   # recording -> what MNE found damaged in it (DAMAGE_WORDS)
        self.positions: dict[Path, str] = {}   # recording -> which channels its positions file left out
        if self.path.is_dir():
            self.kind = "BIDS root"
            sidecar = self.path / BIDS_SIDECAR
            content = read_sidecar(sidecar, self.path)
            for recording, subject in self._bids_recordings():
                self._add_plays(recording, subject, content)
        else:
            if self.path.stat().st_size == 0:   # before the sidecar: writing one would not help
                raise DataFormatError(f"{self.path}: the file is empty (0 bytes); pass the recording itself")
            sidecar = sidecar_path(self.path)
            content = read_sidecar(sidecar, self.path)
            self._add_plays(self.path, str(content.get("subject") or self.path.name.split(".")[0]), content)
        if not self.plays and self.damage:   # the cut took the onsets the sidecar names
            raise DataFormatError(f"{next(iter(self.damage.values()))} (no stimulus onset in what it holds)")
        if not self.plays:
            raise DataFormatError(
                f"{self.path}: no annotation or event matches the sidecar's stimuli; make the "
                '"stimuli" keys the annotation descriptions (BIDS: trial_type)'
            )
        for said in (*self.damage.values(), *self.positions.values()):   # once the plays are read
            logger.warning("%s", said)

    def _bids_recordings(self) -> list[tuple[object, str]]:
        try:
            import mne_bids
        except ImportError:
            raise DataFormatError(
                "reading a BIDS root needs mne-bids: pip install 'eegmusic[train]'"
            ) from None
        paths = mne_bids.find_matching_paths(
            self.path, datatypes="eeg", suffixes="eeg", extensions=list(BIDS_EXTENSIONS)
        )
        if not paths:
            raise DataFormatError(
                f"{self.path}: no EEG recording (sub-*/eeg/*_eeg.vhdr|edf|bdf|set|fif) in this "
                "BIDS root; point --data at a BIDS dataset with EEG"
            )
        return [(p, f"sub-{p.subject}" + (f"_ses-{p.session}" if p.session else "")) for p in paths]

    def _raw(self, recording):
        key = Path(str(recording.fpath)) if hasattr(recording, "fpath") else Path(recording)
        if key not in self._raws:
            mne = _mne()
            try:
                # MNE's warnings are recorded, not shown: most are about a lab's conventions, but one
                # of damage means the recording ends early (a FIF cut short read as 5 s of 10, said
                # "problems: none", or blamed the annotations)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    if hasattr(recording, "fpath"):
                        import mne_bids

                        raw = mne_bids.read_raw_bids(recording, verbose="warning")
                    else:
                        raw = mne.io.read_raw(str(recording), preload=False, verbose="warning")
            except Exception as error:
                sidecar = _bids_table_problem(key) if hasattr(recording, "fpath") else None
                if sidecar is not None:   # mne-bids' KeyError: 'z' named the recording, not the table
                    raise DataFormatError(sidecar) from None
                raise DataFormatError(
                    f"{key}: MNE cannot read it ({type(error).__name__}: {detail(error, 100)}); "
                    "check the file"
                ) from None
            sfreq = float(raw.info["sfreq"])
            if not MIN_SFREQ <= sfreq <= MAX_SFREQ:   # an EDF record of NaN s: a traceback further on
                raise DataFormatError(f"{key}: its header gives a sampling rate of {sfreq:g} Hz, which no "
                                      f"EEG recording has (eegmusic reads {MIN_SFREQ:g}-{MAX_SFREQ:g} Hz): "
                                      "the header is damaged; export the recording again")
            damage = next((str(w.message) for w in caught if DAMAGE_WORDS.search(str(w.message))), None)
            seconds = raw.n_times / sfreq
            if damage is not None and EDF_RECORDS.search(damage) and not _edf_cut_short(recording, seconds):
                damage = None   # an unfinalised header (-1 records) or bytes beyond its count: nothing lost
            if damage is not None and key not in self.damage:
                # the warning's first sentence: EDF's goes on to say MNE infers the length from the size
                self.damage[key] = (f"{key}: damaged, MNE reads {seconds:.1f} s of it "
                                    f"({detail(damage.split('. ')[0])}); export the recording again")
            self._raws = {key: raw}  # one recording open at a time
        return self._raws[key]

    def _add_plays(self, recording, subject: str, content: dict) -> None:
        raw = self._raw(recording)
        self._check_positions(raw, recording)
        stimuli = content["stimuli"]          # checked by read_sidecar: key -> audio Path in the folder
        delay = content["audio_delay_s"]
        duration_s = raw.n_times / raw.info["sfreq"]
        key = Path(str(getattr(recording, "fpath", recording)))
        try:
            onsets = _onsets(raw, key)
        except DataFormatError:
            if key in self.damage:   # the damage lost them, not a recording made without onsets
                raise DataFormatError(f"{self.damage[key]} (no stimulus onset in what it holds)") from None
            raise
        if hasattr(recording, "fpath") and (problem := _stimulus_before_the_recording(recording, stimuli)):
            raise DataFormatError(problem)
        for description, onset, length in onsets:
            if description not in stimuli:
                continue
            audio = stimuli[description]
            song_id = len(self.plays) + 1
            self.plays[song_id] = Play(
                song_id=song_id,
                subject=subject,
                title=audio.name,
                audio_path=audio,
                audio_start_s=-delay,
                source=(recording, onset, length),
            )
            if onset >= duration_s:
                if key in self.damage:   # the file ends early, not the annotations wrong
                    raise DataFormatError(f"{self.damage[key]} (stimulus '{description}' at {onset:.1f} s is "
                                          "past what it holds)")
                raise DataFormatError(
                    f"{self.path}: stimulus '{description}' at {onset:.1f} s is after the "
                    f"recording's end ({duration_s:.1f} s); fix the annotations"
                )

    def read_problems(self) -> list[str]:
        """Each recording MNE found damaged (said once, not again by each play it cuts short), and each
        whose electrode positions leave some EEG channels out."""
        return [*self.damage.values(), *self.positions.values()]

    def _check_positions(self, raw, recording) -> None:
        """Note a recording whose positions cover some EEG channels but not all.

        A model takes a recording's positions for every channel or for none (:meth:`_load_eeg`), so one
        mistyped name or ``n/a`` in a BIDS ``electrodes.tsv`` put the standard montage's positions in the
        model in place of every measured one, while ``info`` said "problems: none".
        """
        mne = _mne()
        picks = mne.pick_types(raw.info, eeg=True, exclude=[])
        locs = np.array([raw.info["chs"][i]["loc"][:3] for i in picks], dtype=np.float64).reshape(-1, 3)
        placed = placed_positions(locs)
        if placed.all() or not placed.any():   # all measured, or none given (the standard montage's)
            return
        key = Path(str(getattr(recording, "fpath", recording)))
        files = sorted(key.parent.glob("*_electrodes.tsv")) if hasattr(recording, "fpath") else []
        where = files[0] if files else key
        missing = [raw.ch_names[i] for i, ok in zip(picks, placed, strict=True) if not ok]
        names = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        self.positions[key] = (
            f"{where}: no position for {names} (a row whose name matches no channel, n/a, or a position "
            f"over {MAX_POSITION_M:g} m from the head's centre), so the "
            f"standard montage's positions replace the {int(placed.sum())} measured ones; fix those rows")

    def _load_eeg(self, play: Play):
        import soundfile

        mne = _mne()
        recording, onset, length = play.source
        raw = self._raw(recording)
        sfreq = float(raw.info["sfreq"])
        try:
            with decoder_notes_aside(play.audio_path):
                audio_s = soundfile.info(str(play.audio_path)).duration
        except Exception:
            audio_s = len(self._read_audio(play.audio_path)) / 22050.0
        seconds = min(audio_s + max(-play.audio_start_s, 0.0), length) if length > 0 else audio_s
        start = int(round(onset * sfreq))
        stop = min(start + int(round(seconds * sfreq)), raw.n_times)
        picks = mne.pick_types(raw.info, eeg=True, exclude=[])
        if len(picks) == 0:
            raise DataFormatError(
                f"{self.path}: no EEG channels (channel types: "
                f"{sorted(set(raw.get_channel_types()))}); set the EEG channels' type to eeg"
            )
        try:
            data = raw.get_data(picks=picks, start=start, stop=stop, units="uV")
        except (ValueError, OSError) as error:   # a damaged file's last buffer (a FIF cut inside it)
            key = Path(str(getattr(recording, "fpath", recording)))
            said = self.damage.get(key, f"{key}: damaged; export the recording again")
            raise DataFormatError(f"{said} (reading song {play.song_id}: {type(error).__name__}: "
                                  f"{detail(error, 80)})") from None
        labels = tuple(raw.ch_names[i] for i in picks)
        locs = np.array([raw.info["chs"][i]["loc"][:3] for i in picks], dtype=np.float64)
        positions = locs if placed_positions(locs).all() else None
        return data, sfreq, labels, positions
