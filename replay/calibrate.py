"""The listening session: play known music, publish calibration markers, record EEG + markers to XDF.

:func:`calibrate` resolves the cap's LSL stream, waits for its first samples, then plays the playlist
through sounddevice. While a track plays, the audio callback notes, for the block it hands to the
device, the track position and the moment that block reaches the DAC (PortAudio's
``outputBufferDacTime`` on the audio clock, mapped to the LSL clock through ``currentTime`` and
:func:`pylsl.local_clock`; host APIs that do not report a DAC time get "now + the device's output
latency"). The main thread turns those notes into markers (:mod:`replay.calibration_markers`):
``track_start``, ``position`` about once a second and ``track_end``, pushed on an LSL outlet (so
LabRecorder can record them too) and written to the session file.

A recorder thread owns the EEG inlet and appends every chunk it pulls to the XDF file at once
(:class:`replay.xdf_writer.XDFWriter` flushes each chunk), together with the inlet's clock offsets.
When the stream goes silent for more than ``gap_s`` the outage is counted; when samples come back
a ``gap`` marker records it and the session goes on. A SIGKILL at any moment leaves every chunk
written so far readable by pyxdf. The audio files are copied into ``<session>_audio/`` beside the
XDF file, so the session is self-contained.

``no_audio=True`` plays nothing and paces the positions by the LSL clock: for a virtual listener
(``eegmusic simulate --live``) on a machine with no sound device.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eegmusic.replay.calibration_markers import DEFAULT_SUFFIX, FORMAT_VERSION, encode
from eegmusic.replay.nmedt import AUDIO_SFREQ, read_audio
from eegmusic.replay.session_recorder import SessionRecorder
from eegmusic.replay.track_player import TrackPlayer, output_device
from eegmusic.replay.xdf_session import MIN_PIECE_S, audio_folder
from eegmusic.replay.xdf_writer import XDFWriter, _next_free
from eegmusic.stream.atomic import atomic_path, disk_errors, output_locks
from eegmusic.stream.errors import (
    ConfigError,
    DataFormatError,
    EEGMusicError,
    OutputError,
    StreamError,
    missing,
)
from eegmusic.stream.stimulus import SILENT_PEAK, decoder_notes_aside, is_silent

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SETTLED_S = 0.5
"""Track position (s) after which the device plays steadily; the start time is measured from there."""
MIN_PLAY_S = 0.05
"""Shortest play (s) scheduled: a shorter track is skipped, and a session with less time left ends."""
POLL_S = 0.05
"""Seconds between two looks at the playing track (its markers, the progress bar): the next track starts
at most this long after one ends (a quarter second between every two tracks, at 0.25)."""

@dataclass
class CalibrationConfig:
    """What a listening session does (built by ``eegmusic calibrate``).

    Parameters
    ----------
    stream : str
        Name of the cap's LSL EEG stream.
    source_id : str or None
        Also require this LSL source_id (two outlets of one name: the refusal lists each one's).
    music : list of str
        Audio files and/or folders of audio files (wav, flac, ogg, mp3), in play order.
    out : str
        The ``.xdf`` file to create (never overwritten).
    minutes : float or None
        Session length; the playlist repeats until then (None: play it once).
    shuffle : bool
        Shuffle the playlist (again at each repetition).
    seed : int
        Seed of the shuffle.
    device : str or None
        Output device index or name (substring); None for the default.
    no_audio : bool
        Play nothing (positions paced by the LSL clock).
    marker_name : str or None
        Marker stream name (default ``<stream>-calibration``).
    gap_s : float
        EEG silence (s) counted as an outage.
    first_sample_timeout_s : float
        How long to wait for the stream's first samples before refusing to start.
    progress : bool
    """

    stream: str
    music: list
    out: str
    source_id: str | None = None
    minutes: float | None = None
    shuffle: bool = False
    seed: int = 0
    device: str | None = None
    no_audio: bool = False
    marker_name: str | None = None
    gap_s: float = 1.0
    first_sample_timeout_s: float = 5.0
    resolve_timeout_s: float = 5.0
    progress: bool = True


@dataclass
class CalibrationSummary:
    """What a session recorded."""

    path: Path
    audio_dir: Path
    tracks_played: int
    seconds_played: float
    eeg_samples: int
    gaps: list = field(default_factory=list)
    output_latency_s: float = 0.0
    stopped_early: bool = False
    """Stopped by Ctrl-C or SIGTERM during a track: the recording so far is kept, that track cut short."""
    cut_short_s: float | None = None
    """Where that stop cut the track (s into it), when the track's start was marked: the play is in the
    session up to there, besides the ``tracks_played`` whole ones. None when no play was cut."""
    eeg_missing_s: float = 0.0
    """Seconds of music at its end whose EEG had not arrived :data:`TAIL_WAIT_S` after it (a stalled cap)."""
    music_started_at: float | None = None
    """LSL time of the first track's marked start (None until one is marked)."""


def playlist_files(music) -> list[Path]:
    """Audio files of ``music`` (files and folders, folders sorted), checked to exist.

    Raises
    ------
    DataFormatError
        A missing path, or no audio file at all.
    """
    files: list[Path] = []
    for entry in music:
        path = Path(entry)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise DataFormatError(f"{path}: {missing(path)}; pass audio files or a folder of them with "
                                  "--music")
    if not files:
        raise DataFormatError(
            f"no audio file (wav, flac, ogg, mp3) in {', '.join(map(str, music))}; pass some with --music"
        )
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataFormatError(
            f"two audio files are both named {duplicates[0]}; rename one (the session keeps "
            "them side by side in one folder)"
        )
    return files


def audio_duration(path: Path) -> float:
    """Length of an audio file in seconds, from its header (decoded in full only if needed).

    Raises
    ------
    DataFormatError
        The file cannot be decoded.
    """
    import soundfile

    try:
        with decoder_notes_aside(path):
            info = soundfile.info(str(path))
        if info.frames > 0:
            return info.frames / info.samplerate
    except Exception:  # fall through: read_audio names the problem in one line
        pass
    return len(read_audio(path)) / AUDIO_SFREQ


def _check_trainable_rate(stream: str, sfreq: float) -> None:
    """Refuse, before anything is written, a cap whose rate ``train`` could never use: below the
    :data:`~stream.spec.MODEL_SFREQ` every model is trained at, or with no short filter to it (a 100-Hz
    session was recorded whole, then refused by ``train``)."""
    from eegmusic.stream.resample import SUPPORTED_RATES_HINT, resample_ratio
    from eegmusic.stream.spec import MODEL_SFREQ

    if sfreq < MODEL_SFREQ:
        raise StreamError(f"stream '{stream}' runs at {sfreq:g} Hz, below the {MODEL_SFREQ:g} Hz models are "
                          f"trained at, so train could not use the session; {SUPPORTED_RATES_HINT} in the "
                          "cap's settings")
    try:
        resample_ratio(sfreq)
    except StreamError as error:
        raise StreamError(f"stream '{stream}': {error}, so train could not use the session") from None


def _schedule(n_tracks: int, durations: list[float], minutes: float | None, shuffle: bool, seed: int):
    """Play order: (track index, seconds to play) until ``minutes`` (or the list once).

    A track of :data:`MIN_PLAY_S` or less is skipped (it once ended the whole playlist); the schedule
    ends when less than that is left. Empty when no track is longer, or ``minutes`` is that short.
    """
    rng = random.Random(seed)
    total = None if minutes is None else 60.0 * minutes
    if not any(seconds > MIN_PLAY_S for seconds in durations):
        return []
    order: list[tuple[int, float]] = []
    elapsed = 0.0
    while True:
        indices = list(range(n_tracks))
        if shuffle:
            rng.shuffle(indices)
        for k in indices:
            if durations[k] <= MIN_PLAY_S:
                continue
            if total is not None and total - elapsed <= MIN_PLAY_S:
                return order
            seconds = durations[k] if total is None else min(durations[k], total - elapsed)
            order.append((k, seconds))
            elapsed += seconds
        if total is None:
            return order


def _check_schedule(schedule, files: list[Path], durations: list[float], minutes: float | None) -> None:
    """Refuse a session with nothing to play; say once which tracks are too short to play."""
    short = [(files[k].name, seconds) for k, seconds in enumerate(durations) if seconds <= MIN_PLAY_S]
    more = f" and {len(short) - 5} more" if len(short) > 5 else ""
    if not schedule and len(short) == len(files):
        named = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in short[:5])
        raise DataFormatError(f"every track of --music lasts {MIN_PLAY_S:g} s or less ({named}{more}), too "
                              "short to play; pass longer audio files")
    if not schedule:
        raise ConfigError(f"--duration {60 * minutes:g} s is too short to play any music; pass a longer "
                          "--duration")
    if short:
        named = ", ".join(f"{name} ({seconds:.2f} s)" for name, seconds in short[:5])
        logger.warning("skipping %s%s: too short to play (%g s or less)", named, more, MIN_PLAY_S)


def _stream_positions(info) -> np.ndarray | None:
    """Electrode positions (m) from the LSL ``channel/location`` (mm), if every channel has one."""
    rows = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty():
        location = channel.child("location")
        try:
            rows.append([float(location.child_value(axis)) for axis in ("X", "Y", "Z")])
        except ValueError:
            return None
        channel = channel.next_sibling("channel")
    if len(rows) != info.channel_count() or not rows:
        return None
    return np.asarray(rows) / 1000.0


def _check_audio_dir(out: Path, files: list[Path]) -> None:
    """Refuse a ``<session>_audio/`` that cannot take the playlist (before recording).

    It must be a folder (or not exist yet), and a same-named file in it must hold the same bytes as the
    playlist's: a file of the same size but other music was kept, and the session silently paired the
    EEG with the wrong audio.
    """
    import filecmp

    folder = audio_folder(out)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}, where the session's audio goes, is a file, not a folder; move it or "
                          f"pass another --out (e.g. {_next_free(out).name})")
    for source in files:
        target = folder / source.name
        if target.exists() and not (target.is_file() and filecmp.cmp(target, source, shallow=False)):
            raise OutputError(
                f"{target} exists and differs from {source}; pass another --out (e.g. {_next_free(out).name})"
            )


def _prepare_audio_dir(out: Path, files: list[Path]) -> tuple[Path, list[Path]]:
    """Copy the playlist into ``<session>_audio/`` (an existing same-named file of the same bytes is kept).

    Each copy is atomic: a full disk leaves no truncated track, which refused the rerun as a clash.

    Returns
    -------
    folder : Path
    created : list of Path
        What this call created (the folder too, when it did), for :func:`_remove_created`.

    Raises
    ------
    OutputError
        The disk is full or the folder not writable (what was copied is removed again).
    """
    _check_audio_dir(out, files)
    folder = audio_folder(out)
    created = [] if folder.exists() else [folder]
    try:
        with disk_errors(folder):
            folder.mkdir(exist_ok=True)
        for source in files:
            target = folder / source.name
            if not target.exists():
                with atomic_path(target) as part:
                    shutil.copy2(source, part)
                created.append(target)
    except BaseException:
        _remove_created(created)
        raise
    return folder, created


def _remove_created(created: list[Path]) -> None:
    """Remove what :func:`_prepare_audio_dir` created (files, then their folder), as far as possible."""
    for path in reversed(created):
        with contextlib.suppress(OSError):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()


def _recording_failed(stream: str, recorder) -> EEGMusicError:
    """The error to raise for the recorder thread's failure: its own one line when it has one (a full
    disk), else the stream's name and what went wrong."""
    if isinstance(recorder.error, EEGMusicError):
        return recorder.error
    return StreamError(f"recording '{stream}' failed: {recorder.error}")


def calibrate(config: CalibrationConfig) -> CalibrationSummary:
    """Run one listening session (see the module docstring).

    Returns
    -------
    CalibrationSummary

    Raises
    ------
    OutputError
        The output file exists (never overwritten), or another eegmusic command is writing it: two
        sessions started on one ``--out`` both passed the check above and wrote one file.
    DataFormatError
        Missing or undecodable audio.
    AudioError
        No output device (the message names ``--device`` and ``--no-audio``).
    StreamError
        The EEG stream is not found, or stops before the first track.
    """
    # the file and its audio folder, for the whole session: s.xdf and s.XDF share s_audio/
    with output_locks([config.out, audio_folder(Path(config.out))], "calibrate"):
        return _calibrate(config)


def _calibrate(config: CalibrationConfig) -> CalibrationSummary:
    """:func:`calibrate` with its output held."""
    import pylsl
    from eegmusic.stream.outlet import channel_info, marker_stream_info
    from eegmusic.stream.progress import progress_bar
    from eegmusic.stream.resolve import resolve_and_open

    out = Path(config.out)
    if out.exists():
        raise OutputError(
            f"{out} exists; a recording is never overwritten: pass another --out (e.g. "
            f"{_next_free(out).name})"
        )
    if config.minutes is not None and not config.minutes > 0:
        raise ConfigError(f"--duration must be positive (got {60 * config.minutes:g} s)")
    files = playlist_files(config.music)
    durations = [audio_duration(f) for f in files]
    schedule = _schedule(len(files), durations, config.minutes, config.shuffle, config.seed)
    _check_schedule(schedule, files, durations, config.minutes)
    # every track that will play is decoded before anything is recorded (an undecodable file stops here)
    audio = {k: read_audio(files[k]) for k in sorted({k for k, _ in schedule})}
    # a silent track would record a session of EEG with nothing to decode (train refuses its stimulus)
    silent = [files[k] for k in audio if is_silent(audio[k])]
    if silent:
        raise DataFormatError(f"{silent[0]} is silent (no sample reaches {SILENT_PEAK:g} of full scale)"
                              + (f", and {len(silent) - 1} more track(s)" if len(silent) > 1 else "")
                              + "; a session needs music to hear: replace it or leave it out of --music")
    # and a clash in the audio folder too: found after the recording started, it left an XDF file with
    # no markers that blocked the corrected rerun
    _check_audio_dir(out, [files[k] for k in audio])
    sd, device = (None, None) if config.no_audio else output_device(config.device)

    def open_cap(info: pylsl.StreamInfo) -> tuple[pylsl.StreamInlet, pylsl.StreamInfo]:
        from pylsl.util import LostError
        from pylsl.util import TimeoutError as LSLTimeoutError

        inlet = pylsl.StreamInlet(info, max_buflen=360, processing_flags=0)
        try:
            full = inlet.info(timeout=5.0)
            if not full.nominal_srate() > 0:
                raise StreamError(f"stream '{config.stream}' has no regular rate ({full.type()}, irregular); "
                                  "pass the cap's EEG stream (eegmusic streams lists them)")
            _check_trainable_rate(config.stream, full.nominal_srate())
            inlet.open_stream(timeout=5.0)
        except (LostError, LSLTimeoutError) as error:   # answered, then gone or silent: one line, as decode
            raise StreamError(f"stream '{config.stream}' answered but did not open ({error or 'timed out'}); "
                              "check that its outlet still runs, then start calibrate again") from None
        return inlet, full

    # opened while the resolver listens for a same-named twin
    inlet, full = resolve_and_open(open_cap, name=config.stream, source_id=config.source_id,
                                   timeout=config.resolve_timeout_s)
    n_chans = full.channel_count()
    channels = channel_info(full)
    labels = (
        channels["label"] if len(channels["label"]) == n_chans else [f"ch{i + 1}" for i in range(n_chans)]
    )

    # the music is copied before the recording starts: a full disk then leaves no session without markers
    copied: list[Path] = []
    try:
        folder, copied = _prepare_audio_dir(out, [files[k] for k in audio])  # the tracks that play
        writer = XDFWriter(out)
    except BaseException:
        _remove_created(copied)
        inlet.close_stream()
        raise
    marker_outlet = None
    recorder = None
    summary = CalibrationSummary(
        path=out, audio_dir=audio_folder(out), tracks_played=0, seconds_played=0.0, eeg_samples=0
    )
    try:
        eeg_id = writer.add_stream(
            name=full.name(),
            stype=full.type(),
            channel_format="float32",
            nominal_srate=full.nominal_srate(),
            labels=labels,
            units=channels["unit"] if len(channels["unit"]) == n_chans else None,
            positions=_stream_positions(full),
            source_id=full.source_id(),
            created_at=full.created_at(),
            desc={"manufacturer": "recorded by eegmusic calibrate"},
        )
        marker_name = config.marker_name or f"{config.stream}{DEFAULT_SUFFIX}"
        marker_info = marker_stream_info(marker_name, f"{marker_name}@eegmusic-calibrate")
        marker_id = writer.add_stream(
            name=marker_name,
            stype="Markers",
            channel_format="string",
            nominal_srate=0.0,
            labels=["marker"],
            units=[""],
            source_id=marker_info.source_id(),
            desc={"format": "eegmusic calibration v1"},
        )
        marker_outlet = pylsl.StreamOutlet(marker_info)
        lock = threading.Lock()

        def publish(stamp: float, event: str, **fields) -> None:
            text = encode(event, **fields)
            with lock:
                marker_outlet.push_sample([text], stamp)
                writer.write_samples(marker_id, [stamp], [text])

        recorder = SessionRecorder(
            inlet,
            writer,
            eeg_id,
            n_chans,
            config.gap_s,
            lambda t0, t1: publish(pylsl.local_clock(), "gap", stream=config.stream, start=t0, end=t1),
            full.nominal_srate(),
        )
        recorder.start()
        bar = None
        try:
            recorder.first_sample.wait(config.first_sample_timeout_s)
            if recorder.error:
                raise _recording_failed(config.stream, recorder)
            if not recorder.first_sample.is_set():
                raise StreamError(
                    f"stream '{config.stream}' sent no samples within {config.first_sample_timeout_s:g} "
                    "s, before the first track; check the amplifier and its LSL app, then start again"
                )
            if recorder.error:
                raise _recording_failed(config.stream, recorder)
            publish(
                pylsl.local_clock(),
                "session_start",
                version=FORMAT_VERSION,
                tracks=len(schedule),
                audio_dir=folder.name,
            )
            total_s = sum(seconds for _, seconds in schedule)
            bar = progress_bar(total=round(total_s), unit="s", desc="calibration",
                               disable=not config.progress)
            with bar:   # a stop or an error ends it with no "(done)" line (a log's bar said it at Ctrl-C)
                for play, (k, seconds) in enumerate(schedule):
                    track_audio = audio[k][: int(round(seconds * AUDIO_SFREQ))]
                    fields = {"track": play, "file": files[k].name, "path": str(files[k].resolve())}
                    _play_track(sd, device, track_audio, fields, durations[k], publish, recorder, bar,
                                summary)
                    summary.tracks_played += 1
                    if recorder.error:
                        raise _recording_failed(config.stream, recorder)
        except KeyboardInterrupt:
            if not recorder.first_sample.is_set():
                raise   # stopped before anything was recorded: no session is left (below), "interrupted"
            # the researcher ends the session early (Ctrl-C, SIGTERM): keep what was recorded, also when
            # the stop came before the first track (it said "interrupted", exit 130, and kept the file).
            # The cut track has no track_end, as after a crash, and the session reader takes its EEG up
            # to the last sample, which is where its playback stopped too
            summary.stopped_early = True
        else:
            ended = pylsl.local_clock()
            publish(ended, "session_end")
            summary.eeg_missing_s = _record_the_tail(recorder, ended, summary.music_started_at)
        finally:
            if bar is not None:
                bar.close()
    finally:
        if recorder is not None:
            recorder.stop_event.set()
            recorder.join(timeout=5.0)
            summary.eeg_samples, summary.gaps = recorder.samples, list(recorder.gaps)
        started = recorder is not None and recorder.first_sample.is_set()
        writer.close()
        if not started:  # nothing was recorded: leave no empty session behind
            out.unlink(missing_ok=True)
            _remove_created(copied)
        marker_outlet = None  # close the outlet (after the inlet: liblsl wants inlets gone first)
        inlet.close_stream()
    if (lost := _lost_before_the_music(recorder, summary)) is not None:
        out.unlink(missing_ok=True)  # no play of it could be read: train and info refuse such a session
        _remove_created(copied)
        raise StreamError(f"stream '{config.stream}' stopped sending EEG {lost} and did not come back, so no "
                          f"track has {MIN_PIECE_S:g} s of EEG; the session was removed. Check the amplifier "
                          "and its LSL app, then start again")
    if summary.eeg_missing_s > 0:
        logger.warning("the EEG of the music's last %.1f s did not arrive within %g s of its end; the "
                       "session holds the music up to there", summary.eeg_missing_s, TAIL_WAIT_S)
    return summary


def _lost_before_the_music(recorder, summary: CalibrationSummary) -> str | None:
    """When the stream fell silent for good before a track had :data:`MIN_PIECE_S` of EEG: where it stopped
    ("0.4 s into the first track", "before the first track"), else None.

    A session whose stream disappears that early holds no play a reader takes, yet it ended with exit 0, a
    "next: eegmusic train" line and more seconds of music "never arrived" than had played. A stream that
    comes back, or stops later, leaves a session to keep; so does a stop while the stream still runs.
    """
    started = summary.music_started_at
    if started is None or recorder.last_stamp is None or not recorder.silent:
        return None
    into = recorder.last_stamp + recorder.offset - started
    if into >= MIN_PIECE_S:
        return None
    return "before the first track" if into < 0 else f"{into:.1f} s into the first track"


TAIL_WAIT_S = 10.0
"""How long calibrate goes on recording after the music ends, for EEG stamped before that end to arrive
(an amplifier sends its samples late: the virtual listener 1 s, ``--delay``)."""


def _record_the_tail(recorder, ended: float, music_from: float | None) -> float:
    """Record until the EEG reaches ``ended`` (LSL time the music ended) or :data:`TAIL_WAIT_S` pass; return
    how many seconds of music (from ``music_from``, the first track's start) before ``ended`` have no EEG (0
    when all arrived).

    The recorder was stopped as soon as the music ended, so every session lost its last seconds of music by
    the amplifier's delay (1 s of each virtual-listener session, 3 s with ``--delay 3``), with "10.0 s of
    music" in the summary and 7.0 s in the file.
    """
    deadline = time.monotonic() + TAIL_WAIT_S
    try:
        while not recorder.recorded_until(ended) and recorder.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
    except KeyboardInterrupt:   # the music was all played: a stop now ends only the wait for its EEG
        logger.warning("stopped while waiting for the EEG of the music's end")
    if recorder.recorded_until(ended) or recorder.last_stamp is None:
        return 0.0
    # EEG that stopped before the music began leaves the music's seconds missing, not more
    floor = -np.inf if music_from is None else music_from
    return float(ended - max(recorder.last_stamp + recorder.offset, floor))


def _play_track(
    sd,
    device,
    audio: np.ndarray,
    fields: dict,
    duration_s: float,
    publish,
    recorder,
    bar,
    summary: CalibrationSummary,
) -> None:
    """Play one track, publishing its markers; ``summary`` takes the seconds played and the device's
    output latency."""
    player = None if sd is None else TrackPlayer(sd, device, audio)
    try:
        _play_until_done(player, audio, fields, duration_s, publish, recorder, bar, summary)
    finally:  # after the track, and at once on a stop (Ctrl-C, SIGTERM) or a failure
        if player is not None:
            player.close()


def _play_until_done(player, audio: np.ndarray, fields: dict, duration_s: float, publish, recorder, bar,
                     summary: CalibrationSummary) -> None:
    """:func:`_play_track` once its player exists (or None: no audio): play, publish the markers."""
    import pylsl

    latency = 0.0 if player is None else player.latency_s
    length_s = len(audio) / AUDIO_SFREQ
    started_at = None
    last_marker = -np.inf
    seen = 0
    if player is not None:
        player.start()
    else:
        started_at = pylsl.local_clock() + 0.05
    shown = 0.0
    last_note = None
    steady: list[float] = []
    start_stamp = None
    try:
        while True:
            if player is None:
                now = pylsl.local_clock()
                position = min(max(now - started_at, 0.0), length_s)
                notes = [(position, started_at + position)]
                finished = position >= length_s
            else:
                notes = player.latest(seen)
                seen = player.n_notes
                finished = player.done.is_set()
            for position, heard in notes:
                if last_marker == -np.inf:
                    # The first callbacks prefill the device in a burst (and a sound server may stall
                    # at a stream's start): time the start from steady playback, 0.5 s in.
                    if position >= min(SETTLED_S, length_s / 2):
                        steady.append(heard - position)
                    if len(steady) < 3 and not finished:
                        continue
                    stamp = float(np.median(steady)) if steady else heard - position
                    publish(
                        stamp,
                        "track_start",
                        **fields,
                        position_s=0.0,
                        duration_s=duration_s,
                        output_latency_s=latency,
                    )
                    start_stamp, last_marker = stamp, 0.0
                    summary.output_latency_s = latency   # said even if the session stops during this track
                    if summary.music_started_at is None:
                        summary.music_started_at = stamp
                elif position - last_marker >= 1.0:
                    publish(heard, "position", track=fields["track"], position_s=float(position))
                    last_marker = position
            if notes:
                last_note = notes[-1]
                position = last_note[0]
                if int(position) > int(shown):  # whole seconds: the bar reads "12/300 s"
                    bar.update(int(position) - int(shown))
                    shown = position
                bar.set_postfix_str(
                    f"{fields['file']} {position:5.1f}/{length_s:.0f} s, "
                    f"{recorder.samples} samples, {len(recorder.gaps)} gap{'s' * (len(recorder.gaps) != 1)}"
                    f"{', STREAM SILENT' if recorder.silent else ''}",
                    refresh=False,
                )
            if finished:
                break
            time.sleep(POLL_S)
        end_heard = last_note[1] + (length_s - last_note[0]) if last_note else pylsl.local_clock()
        publish(end_heard, "track_end", track=fields["track"], position_s=length_s)
    except KeyboardInterrupt:  # stopped (Ctrl-C, SIGTERM): a play whose start is marked is in the session
        if start_stamp is not None:
            summary.cut_short_s = float(min(max(pylsl.local_clock() - start_stamp, 0.0), length_s))
            summary.seconds_played += summary.cut_short_s
        raise
    summary.seconds_played += length_s
