"""A virtual listener: an LSL EEG device whose brain responds to the music actually being played.

``eegmusic simulate --live --montage standard_1020 --channels 32 --sfreq 250 --name cap32`` opens an
EEG outlet ``cap32`` with the montage's labels and positions (``desc/channels/channel/location``)
and streams the simulator's background activity (:mod:`replay.forward_model`: 1/f cortical
dipoles, alpha, blinks, drift, sensor noise) at the montage's electrodes. It also listens for the
calibration marker stream (``cap32-calibration``, :mod:`replay.calibration_markers`): when a track
starts it reads the track's audio (from the marker's ``path``, else from ``--music`` by file name),
derives the auditory-cortex response to it (band envelopes and onsets through the participant's
P1-N1-P2 response functions, four dipoles in a spherical head) and adds it to the EEG at the
moments the markers say each part of the track is heard.

As in ``simulate --montage`` (:mod:`replay.virtual_cap`), the scalp potential is simulated on the
GSN-HydroCel-129 net and carried to the cap's electrodes by spherical-spline interpolation, plus
each electrode's own white noise; the device sends average-referenced µV. Each sample leaves
``delay_s`` (default 1 s) after its timestamp, as from an amplifier with a transmission delay, so
that a marker that arrives late (calibrate times a track's start from steady playback, ~0.6 s in)
still shapes the samples it concerns. The response to a track's first seconds is derived at once
and the whole track's replaces it when ready (:data:`FIRST_RESPONSE_S`).

The device also sends ``<name>-markers`` like ``eegmusic replay`` (``song=K;t=S``: second S of play
K - 1 is heard at the marker's time), so live decoding can score itself against what was heard.

So ``simulate --live`` → ``calibrate`` → ``train`` → ``decode`` runs on one machine with no cap.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eegmusic.replay import forward_model as fm
from eegmusic.replay.calibration_markers import DEFAULT_SUFFIX, decode
from eegmusic.stream.errors import ConfigError, DataFormatError, detail, utf8

logger = logging.getLogger(__name__)

BLOCK_S = 20.0
"""Background is drawn in blocks of this many seconds, cross-faded over :data:`FADE_S`."""
FADE_S = 0.5
AUDIO_SFREQ = 22050
NAME_EVERY_S = 5.0
"""How often ``song_audio=K;path=…`` repeats during a play: a decode joining mid-track waits at most this long
to score it."""
FIRST_RESPONSE_S = 20.0
"""When a track starts, the response to its first this-many seconds is derived at once (from those
seconds alone, ~0.1 s of work) and heard while the response to the whole track is computed (decoding
and deriving a 5-minute file took 5.5 s on 2 loaded cores, longer than :attr:`LiveListener.delay_s`,
so the track's first seconds were missing from the EEG); the whole track's response then replaces it."""


def _average_reference(uv: np.ndarray) -> np.ndarray:
    return uv - uv.mean(axis=0, keepdims=True)


@dataclass
class _Track:
    """The evoked response to one track and where it is in LSL time."""

    track: int
    evoked: np.ndarray  # (n_chans, n_times) µV at the device rate, stimulus time 0 at column 0
    zero_time: float  # LSL time at which stimulus time 0 is heard
    end_time: float = np.inf
    path: Path | None = None


def _read_head(path: Path, seconds: float) -> np.ndarray | None:
    """The first ``seconds`` of an audio file, mono float32 at 22050 Hz; None if it cannot be read."""
    import soundfile
    from eegmusic.stream.stimulus import decoder_notes_aside, downmix
    from scipy.signal import resample_poly

    try:
        with decoder_notes_aside(path):
            audio_file = soundfile.SoundFile(str(path))
        with audio_file:
            rate = int(audio_file.samplerate)
            head = downmix(audio_file.read(int(seconds * rate), dtype="float32", always_2d=True))
    except Exception:  # the whole-file read names the problem
        return None
    if head.size == 0 or not np.isfinite(head).all():  # the whole-file read names a NaN too
        return None
    if rate != AUDIO_SFREQ:
        from math import gcd

        g = gcd(AUDIO_SFREQ, rate)
        head = resample_poly(head, AUDIO_SFREQ // g, rate // g).astype(np.float32)
    return head


class LiveListener:
    """The virtual listener's device (see the module docstring).

    Parameters
    ----------
    name : str
        Stream name (and the stem of the marker stream listened to).
    labels : sequence of str
        Electrode labels.
    positions : ndarray, shape (n_chans, 3)
        Head-frame positions in metres.
    sfreq : float
        Device rate in Hz.
    snr : float
        Evoked share of the EEG variance while music plays, in (0, 1).
    seed : int
        Seed of the participant and the background.
    markers : str, optional
        Marker stream to follow (default ``<name>-calibration``).
    music : list of str, optional
        Folders/files where a track's audio is looked for by name when its marker ``path`` is absent.
    delay_s : float
        Transmission delay (see the module docstring).
    chunk_ms : float
        Push interval.
    """

    def __init__(
        self,
        name: str,
        labels,
        positions: np.ndarray,
        sfreq: float,
        *,
        snr: float = 0.2,
        seed: int = 0,
        markers: str | None = None,
        music=None,
        delay_s: float = 1.0,
        chunk_ms: float = 20.0,
        source_id: str | None = None,
    ) -> None:
        if not 0.0 < snr < 1.0:
            raise ConfigError(f"--snr {snr:g} must be between 0 and 1 (the evoked share of the variance)")
        self.name, self.labels, self.sfreq = name, list(labels), float(sfreq)
        self.positions = np.asarray(positions, dtype=float)
        self.snr, self.delay_s, self.chunk_s = float(snr), float(delay_s), chunk_ms / 1000.0
        self.marker_name = markers or f"{name}{DEFAULT_SUFFIX}"
        self.music = [Path(m) for m in (music or [])]
        self.source_id = source_id or f"{name}@eegmusic-live"
        self.rng = np.random.default_rng(seed)
        from eegmusic.replay.virtual_cap import cap_projection

        self.projection = cap_projection(self.positions)  # (n_chans, 129) net -> cap
        self.participant = fm.draw_participant(self.rng)
        self.tracks: dict[int, _Track] = {}
        self._named_at: dict[int, float] = {}   # song number -> LSL time its song_audio marker last went out
        self._unnamed: set[int] = set()          # songs whose path no marker can carry
        self.samples_sent = 0
        self.tracks_heard = 0
        self._sent_until = -np.inf  # LSL time of the last sample made (eeg)
        self._decoded: dict[Path, np.ndarray] = {}  # tracks record_session decoded, by resolved path
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._block = self._background_block()
        self._block_start = 0
        self._bg_var = float(np.mean(np.var(self._block, axis=1)))

    # ---- signals ---------------------------------------------------------------------------------
    def _background_block(self) -> np.ndarray:
        n = int(round((BLOCK_S + FADE_S) * self.sfreq))
        from eegmusic.replay.virtual_cap import ELECTRODE_NOISE_UV

        uv = self.projection @ fm.background(self.participant, n, self.sfreq, self.rng)
        uv += self.rng.normal(0.0, ELECTRODE_NOISE_UV, uv.shape)
        return _average_reference(uv).astype(np.float32)

    def _next_background(self, n: int) -> np.ndarray:
        """The next ``n`` background samples (n_chans, n), blocks cross-faded."""
        out = np.empty((len(self.labels), n), dtype=np.float32)
        filled = 0
        block_len = int(round(BLOCK_S * self.sfreq))
        while filled < n:
            if self._block_start >= block_len:
                nxt = self._background_block()
                fade = int(round(FADE_S * self.sfreq))
                ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
                nxt[:, :fade] = nxt[:, :fade] * ramp + self._block[:, block_len : block_len + fade] * (
                    1 - ramp
                )
                self._block, self._block_start = nxt, 0
            take = min(n - filled, block_len - self._block_start)
            out[:, filled : filled + take] = self._block[:, self._block_start : self._block_start + take]
            self._block_start += take
            filled += take
        return out

    def evoked_response(self, audio: np.ndarray) -> np.ndarray:
        """The participant's evoked EEG (n_chans, n_times) to a whole track (22050 Hz mono), in µV."""
        n_times = int(len(audio) / AUDIO_SFREQ * self.sfreq)
        envelopes, onsets = fm.stimulus_features(
            audio, audio_sfreq=AUDIO_SFREQ, sfreq=self.sfreq, n_times=n_times
        )
        sources = fm.evoked_sources(self.participant, envelopes, onsets, self.sfreq)
        net_gain = fm.head_model().gain(self.participant.auditory_pos, self.participant.auditory_ori)
        evoked = _average_reference(self.projection @ (net_gain @ sources))
        var = float(np.mean(np.var(evoked, axis=1)))
        scale = np.sqrt(self.snr / (1.0 - self.snr) * self._bg_var / max(var, 1e-30))
        return (evoked * scale).astype(np.float32)

    def _find_audio(self, marker: dict) -> Path | None:
        """The audio file a ``track_start`` names. Markers come from the network, so the ``path`` they carry
        is followed only to an audio file, and with ``--music`` only to one inside it; else the file is
        looked for in ``--music`` by name (a marker once made the listener open any file on the disk)."""
        from eegmusic.stream.stimulus import audio_inside

        path = Path(str(marker.get("path", "")))
        for root in self.music or [Path("/")]:
            if root.is_file():  # a --music file: the marker's path must be that very file
                if path.is_file() and path.resolve() == root.resolve():
                    return root
            elif (found := audio_inside(str(path), root)) is not None:
                return found
        name = Path(str(marker.get("file", path.name))).name
        for entry in self.music:
            candidate = entry / name if entry.is_dir() else entry
            if candidate.is_file() and candidate.name == name:
                return candidate
        return None

    def on_marker(self, stamp: float, text: str) -> str | None:
        """Follow one calibration marker (public for tests and replays of recorded markers); return its
        event (``track_start``, ``session_end``, …), or None for a marker that is not one."""
        marker = decode(text)
        if marker is not None and "track" in marker:
            try:
                self._follow(stamp, marker)
            except Exception as error:  # noqa: BLE001 - a marker from the network must not stop the device
                logger.warning("ignored a %s marker the listener cannot follow (%s: %s)", marker.get("event"),
                               type(error).__name__, detail(error))
        return None if marker is None else marker.get("event")

    def _follow(self, stamp: float, marker: dict) -> None:
        """:meth:`on_marker` for a marker of one track."""
        from eegmusic.replay.nmedt import read_audio

        track = int(marker["track"])
        if marker["event"] == "track_start":
            path = self._find_audio(marker)
            if path is None:
                logger.warning(
                    "track %d: audio %r not found (pass --music DIR); the listener hears nothing",
                    track,
                    marker.get("file"),
                )
                return
            head = _read_head(path, FIRST_RESPONSE_S)
            if head is None:  # the track is not heard; on_marker says why (the whole-file read's words)
                read_audio(path)
                raise DataFormatError(f"{path.name}: its first {FIRST_RESPONSE_S:g} s cannot be read")
            first = self.evoked_response(head)
            entry = _Track(track, first, stamp - float(marker.get("position_s", 0.0)), path=path)
            with self._lock:
                # keep memory flat over long sessions: drop the response of a track whose every sample
                # was sent a minute ago (not merely one that ended: record_session sends all markers
                # before the first sample, and every track must still be heard then)
                for old in self.tracks.values():
                    if old.end_time < min(stamp, self._sent_until) - 60.0:
                        old.evoked = old.evoked[:, :0]
                self.tracks[track] = entry
                self.tracks_heard += 1
            audio = self._decoded.get(path.resolve())   # record_session has decoded it already
            # the whole track: seconds of work
            evoked = self.evoked_response(read_audio(path) if audio is None else audio)
            with self._lock:
                entry.evoked = evoked
            logger.info("hearing track %d: %s", track, path.name)
        elif track in self.tracks and "position_s" in marker:
            with self._lock:
                if marker["event"] == "track_end":
                    self.tracks[track].end_time = stamp
                else:  # follow the audio clock
                    self.tracks[track].zero_time = stamp - float(marker["position_s"])

    def eeg(self, stamps: np.ndarray) -> np.ndarray:
        """The device's samples (n_chans, n) at LSL times ``stamps`` (consecutive samples)."""
        out = self._next_background(len(stamps))
        with self._lock:
            tracks = list(self.tracks.values())
            if len(stamps):
                self._sent_until = max(self._sent_until, float(stamps[-1]))
        for track in tracks:
            index = np.round((stamps - track.zero_time) * self.sfreq).astype(np.int64)
            inside = (index >= 0) & (index < track.evoked.shape[1]) & (stamps < track.end_time)
            if inside.any():
                out[:, inside] += track.evoked[:, index[inside]]
        return out

    def record_session(
        self, path, music, *, minutes: float, t0: float = 1000.0, excerpt_s: float | None = None
    ) -> Path:
        """Write a calibration session of this listener without waiting: what ``calibrate`` would record.

        The playlist plays back to back from LSL time ``t0`` on a virtual clock; the markers are
        :mod:`replay.calibration_markers`'s; the audio is referenced by its path. For tests and
        benchmarks that need minutes of calibration in seconds (the same participant as live).

        Parameters
        ----------
        path : str or Path
            The ``.xdf`` file to create.
        music : list of str
            Audio files and/or folders, as for ``calibrate --music``.
        minutes : float
            Session length (the playlist repeats).
        t0 : float
            LSL time of the session's first sample, in seconds.
        excerpt_s : float, optional
            Play only each track's first ``excerpt_s`` seconds, so a short session covers several
            tracks (default: whole tracks).

        Returns
        -------
        path : Path
        """
        from eegmusic.replay.calibrate import playlist_files
        from eegmusic.replay.nmedt import read_audio

        files = playlist_files(music)
        audio = [read_audio(f) for f in files]
        self._decoded = {f.resolve(): a for f, a in zip(files, audio, strict=True)}
        try:
            return self._record(path, files, audio, minutes, t0, excerpt_s)
        finally:
            self._decoded = {}

    def _record(self, path, files: list[Path], audio: list[np.ndarray], minutes: float, t0: float,
                excerpt_s: float | None) -> Path:
        """:meth:`record_session`'s writing, the playlist's tracks decoded (``audio``)."""
        from eegmusic.replay.calibrate import _schedule
        from eegmusic.replay.calibration_markers import encode
        from eegmusic.replay.xdf_writer import XDFWriter

        self._sent_until = -np.inf  # a new virtual clock: no sample of this session is made yet
        durations = [len(a) / AUDIO_SFREQ for a in audio]
        if excerpt_s is not None:
            durations = [min(seconds, float(excerpt_s)) for seconds in durations]
        schedule = _schedule(len(files), durations, minutes, False, 0)
        with XDFWriter(path) as writer:
            eeg_id = writer.add_stream(
                name=self.name,
                stype="EEG",
                channel_format="float32",
                nominal_srate=self.sfreq,
                labels=self.labels,
                positions=self.positions,
                source_id=self.source_id,
            )
            marker_id = writer.add_stream(
                name=self.marker_name,
                stype="Markers",
                channel_format="string",
                nominal_srate=0.0,
                labels=["marker"],
                units=[""],
            )
            start = t0 + 1.0
            for play, (k, seconds) in enumerate(schedule):
                texts = [
                    encode(
                        "track_start",
                        track=play,
                        file=files[k].name,
                        path=str(files[k].resolve()),
                        position_s=0.0,
                        duration_s=len(audio[k]) / AUDIO_SFREQ,
                        output_latency_s=0.0,
                    ),
                    encode("track_end", track=play, position_s=seconds),
                ]
                writer.write_samples(marker_id, [start, start + seconds], texts)
                for stamp, text in zip([start, start + seconds], texts, strict=True):
                    self.on_marker(stamp, text)
                start += seconds + 0.5
            n = int((start + 1.0 - t0) * self.sfreq)
            block = int(self.sfreq * 10)
            for lo in range(0, n, block):
                stamps = t0 + np.arange(lo, min(lo + block, n)) / self.sfreq
                writer.write_samples(eeg_id, stamps, self.eeg(stamps).T)
        return Path(path)

    # ---- threads ---------------------------------------------------------------------------------
    def start(self) -> LiveListener:
        """Open the outlet and start streaming and listening."""
        import pylsl
        from eegmusic.stream.montage import write_locations
        from eegmusic.stream.outlet import eeg_stream_info, marker_source_id, marker_stream_info

        info = eeg_stream_info(
            self.name, self.labels, self.sfreq, self.source_id, manufacturer="eegmusic virtual listener"
        )
        write_locations(info, self.positions)
        self._outlet = pylsl.StreamOutlet(info, chunk_size=max(int(self.chunk_s * self.sfreq), 1))
        self._truth_outlet = pylsl.StreamOutlet(
            marker_stream_info(f"{self.name}-markers", marker_source_id(self.source_id))
        )
        for target in (self._stream, self._listen):
            thread = threading.Thread(target=self._guard(target), daemon=True, name=f"live-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def _guard(self, target):
        def run():
            try:
                target()
            except BaseException as error:  # reported by the owner (the CLI prints it)
                self.error = error
                self._stop.set()

        return run

    def _stream(self) -> None:
        import pylsl

        t0 = pylsl.local_clock()
        next_truth = -np.inf
        while not self._stop.is_set():
            due = int((pylsl.local_clock() - self.delay_s - t0) * self.sfreq)
            if due > self.samples_sent:
                stamps = t0 + np.arange(self.samples_sent, due) / self.sfreq
                self._outlet.push_chunk(np.ascontiguousarray(self.eeg(stamps).T), stamps)
                self.samples_sent = due
                if stamps[-1] >= next_truth:
                    self._publish_truth(float(stamps[-1]))
                    next_truth = stamps[-1] + 1.0
            self._stop.wait(self.chunk_s)

    def _publish_truth(self, stamp: float) -> None:
        """``song=K;t=S`` on ``<name>-markers``, as ``eegmusic replay`` sends: what is heard at ``stamp``.

        K is the calibration play number + 1; live decoding scores its frames against it
        (:mod:`decoder.truth`) with :meth:`stimulus_path` as the stimulus lookup in-process, or, from
        ``decode --truth MUSIC``, with the file ``song_audio=K;path=/abs/file`` names, sent before the
        play's first ``song=K`` marker and every :data:`NAME_EVERY_S` after.
        """
        with self._lock:
            heard = [
                t
                for t in self.tracks.values()
                if t.zero_time <= stamp < t.end_time and stamp - t.zero_time < t.evoked.shape[1] / self.sfreq
            ]
        if heard:
            track = max(heard, key=lambda t: t.zero_time)
            song = track.track + 1
            if stamp - self._named_at.get(song, -np.inf) >= NAME_EVERY_S and track.path is not None:
                # which file song K is, first and then now and then (a decode may join mid-track)
                self._named_at[song] = stamp
                named = f"song_audio={song};path={Path(track.path).resolve()}"
                if named.isprintable() and utf8(named):
                    self._truth_outlet.push_sample([named], stamp)
                elif song not in self._unnamed:   # LSL strings are UTF-8: the track goes unscored, said once
                    self._unnamed.add(song)
                    logger.warning("track %d's path is not UTF-8 text, so decode --truth cannot be told its "
                                   "file; rename it to score it", song)
            self._truth_outlet.push_sample([f"song={song};t={stamp - track.zero_time:.3f}"], stamp)

    path: Path | None = None
    """No one folder holds the tracks heard: live truth names none in its messages."""

    def stimulus_path(self, song_id: int) -> Path | None:
        """Audio file of play ``song_id - 1`` (the song numbers of ``<name>-markers``), or None."""
        track = self.tracks.get(int(song_id) - 1)
        return None if track is None else track.path

    def load_stimulus(self, song_id: int) -> np.ndarray:
        """Audio of play ``song_id - 1`` as float32 at 22050 Hz (stimulus lookup of live truth)."""
        from eegmusic.replay.nmedt import read_audio

        return read_audio(self.stimulus_path(song_id))

    def _listen(self) -> None:
        import pylsl

        inlet, uid, ended = None, None, set()
        while not self._stop.is_set():
            if inlet is None:
                # a session that ended is let go before its outlet closes: followed to the end, liblsl
                # printed "ERR| Stream transmission broke off" after every session that went well
                answered = pylsl.resolve_byprop("name", self.marker_name, minimum=1, timeout=1.0)
                found = [info for info in answered if info.uid() not in ended]
                if not found:   # the ended session's outlet answers at once until calibrate closes it
                    self._stop.wait(0.5)
                    continue
                uid = found[0].uid()
                inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=pylsl.proc_clocksync)
                logger.info("following markers '%s'", self.marker_name)
            samples, stamps = inlet.pull_chunk(timeout=0.2)
            events = [self.on_marker(float(stamp), str(sample[0]))
                      for sample, stamp in zip(samples, stamps, strict=True)]
            if "session_end" in events:
                inlet.close_stream()
                inlet = None
                ended.add(uid)
        del inlet

    @property
    def running(self) -> bool:
        """Streaming and not stopped by an error."""
        return bool(self._threads) and not self._stop.is_set()

    def stop(self) -> None:
        """Stop the threads and close the outlet."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads = []
        self._outlet = self._truth_outlet = None


def listener_for_montage(
    montage: str, *, channels: int | None, sfreq: float, name: str, **kwargs
) -> LiveListener:
    """A :class:`LiveListener` with the labels and positions of a standard montage.

    Parameters
    ----------
    montage : str
        ``standard_1020``, ``biosemi64``, ``openbci8``, ``GSN-HydroCel-129`` ... (:mod:`stream.montage`).
    channels : int, optional
        Keep this many electrodes spread over the scalp.
    sfreq : float
        Device rate in Hz, 125 … 4096 (:func:`replay.virtual_cap.check_cap`).
    name : str
    **kwargs
        Passed to :class:`LiveListener`.
    """
    from eegmusic.replay.virtual_cap import check_cap
    from eegmusic.stream.montage import head_positions

    # the checks of the dataset mode (simulate --montage): one electrode, average-referenced, streamed
    # zeros, and a rate past 4096 Hz was taken
    montage, labels = check_cap(montage, channels, sfreq)
    positions = head_positions(list(labels), montage=montage)
    return LiveListener(name, list(labels), positions, sfreq, **kwargs)


def run_live(
    montage: str, channels: int | None, sfreq: float, name: str, *, status_every_s: float = 10.0, **kwargs
) -> int:
    """Stream a virtual listener until SIGINT/SIGTERM (``eegmusic simulate --live``); return 0."""
    from eegmusic.stream.cli import StopRequest, stop_signals
    from eegmusic.stream.errors import StreamError

    listener = listener_for_montage(montage, channels=channels, sfreq=sfreq, name=name, **kwargs)
    stop = StopRequest()
    with stop_signals(stop):
        listener.start()
        more = ", …" if len(listener.labels) > 4 else ""
        print(
            f"virtual listener '{name}': {len(listener.labels)} channels "
            f"({', '.join(listener.labels[:4])}{more}) at {sfreq:g} Hz, evoked share {listener.snr:g}; "
            f"following markers '{listener.marker_name}'; Ctrl-C to stop",
            flush=True,
        )
        try:
            last = time.monotonic()
            while listener.running and not stop.wait(0.2):
                if time.monotonic() - last >= status_every_s:
                    last = time.monotonic()
                    logger.info("%d samples sent, %d track%s heard", listener.samples_sent,
                                listener.tracks_heard, "s" * (listener.tracks_heard != 1))
        finally:
            listener.stop()
    if listener.error:
        raise StreamError(f"virtual listener '{name}' stopped on an error: {listener.error}")
    print(
        f"virtual listener '{name}' stopped after {listener.samples_sent} samples, "
        f"{listener.tracks_heard} track{'s' * (listener.tracks_heard != 1)} heard",
        flush=True,
    )
    return 0
