"""The live decoder: LSL EEG in, mel frames and sound out, latency accounted per stage.

::

    EEGSource ──windows──▶ decode thread ──emissions──▶ output thread ──▶ audio sink
    (stream/)              newest window only,           vocoder (mel models),      (sounddevice /
                           ONNX model, frame clock       crossfade (audio models),   WAV / null)
                                                         LSL MelSpectrogram outlet,
                                                         recording, live dynamic r

Two threads and bounded queues. The decode thread always decodes the newest window the stream
stage has made and drops (and counts) older ones, so a slow model or a loaded CPU costs frames of
resolution, never growing latency: the frame clock still emits every frame the newest window
covers. The emission queue to the output thread drops its oldest item when full, also counted. The
audio sink's own callback plays silence when nothing new arrives (counted as underruns).

Every window carries stamps on the LSL clock (see :mod:`decoder.latency`). :meth:`LivePipeline.snapshot`
copies the recent state for the GUI without waiting on either thread.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eegmusic.decoder.audio import WavSink
from eegmusic.decoder.frameclock import FrameClock, SampleClock
from eegmusic.decoder.latency import LatencyTracker
from eegmusic.decoder.melspec import AUDIO_SFREQ, FRAME_PERIOD_S, HOP_LENGTH, N_MELS
from eegmusic.stream.errors import ConfigError, DataFormatError, EEGMusicError, StreamError
from eegmusic.stream.spec import MODEL_SFREQ, WINDOW_SAMPLES

log = logging.getLogger(__name__)

MEL_STREAM_TYPE = "MelSpectrogram"
MEL_RATE = AUDIO_SFREQ / HOP_LENGTH
"""Nominal rate of the decoded-frame LSL outlet in Hz (43.07)."""

FRAMES_FILE = "mel_db.f32"
FRAME_INDEX_FILE = "frame_index.i64"
FRAME_SOURCE_FILE = "frame_source.f64"
FRAMES_SIDECAR = "mel_db.json"
AUDIO_FILE = "decoded.wav"
_MARKER = re.compile(r"song=(\d+);t=([-0-9.]+)")


@dataclass
class PipelineConfig:
    """Everything a live decode needs; the CLI and the GUI build one.

    Parameters
    ----------
    stream_name, stream_type, source_id : str or None
        Which EEG stream to decode (all given properties must match; type ``EEG`` when none).
    model_path : str or Path
        The ONNX model file.
    hop_s : float
        Seconds between successive windows (0.1 s = ten windows a second).
    device : {"auto", "cpu", "cuda"}
        Where the model runs.
    audio_device : str or int or None
        sounddevice output device (None = system default).
    wav_path : str or Path or None
        Write the decoded audio to this WAV file instead of a sound card.
    no_audio : bool
        Decode without any audio output.
    record_dir : str or Path or None
        Append decoded frames (``mel_db.f32`` + ``frame_index.i64`` + ``mel_db.json``) and audio
        (``decoded.wav``) here; both stay readable after a crash.
    truth_dir : str or Path or None
        NMED-T folder with ``stimuli/songNN.wav``: with the replay's markers, score the decoded frames
        live against the true stimulus mel (dynamic r).
    lsl_out : bool
        Publish decoded frames as an LSL stream of type ``MelSpectrogram``.
    smooth_frames : int
        Average each frame over overlapping windows, emitted this many frames later.
    threads : int
        onnxruntime intra-op threads.
    resolve_timeout_s : float
        Seconds to wait for the EEG stream to appear.
    snapshot_s : float
        Seconds of EEG and frames kept for :meth:`LivePipeline.snapshot`.
    vocoder_method : str
        Phase reconstruction of :class:`decoder.vocoder.StreamingVocoder`.
    prebuffer_s : float
        Extra audio the first window hands to the sink beyond one hop, so that hop-to-hop jitter does
        not empty the device buffer; it stays in the buffer, adding this much latency.
    """

    stream_name: str | None = None
    stream_type: str | None = None
    source_id: str | None = None
    model_path: str | Path | None = None
    hop_s: float = 0.1
    device: str = "auto"
    audio_device: str | int | None = None
    wav_path: str | Path | None = None
    no_audio: bool = False
    record_dir: str | Path | None = None
    truth_dir: str | Path | None = None
    lsl_out: bool = True
    smooth_frames: int = 0
    threads: int = 1
    resolve_timeout_s: float = 5.0
    snapshot_s: float = 10.0
    vocoder_method: str = "rtpghi"
    prebuffer_s: float = 0.05

    def validate(self) -> None:
        """Raise :class:`ConfigError` for contradictory or out-of-range options."""
        if self.model_path is None:
            raise ConfigError("no model given; pass --model FILE (a model.onnx from `eegmusic train`)")
        if not 1 / MODEL_SFREQ <= self.hop_s <= 1.0:
            raise ConfigError(f"hop {self.hop_s} s is out of range; pass --hop between 0.008 and 1 "
                              f"(default 0.1)")
        outputs = [flag for flag, on in (("--audio-device", self.audio_device is not None),
                                         ("--wav", self.wav_path is not None), ("--no-audio", self.no_audio))
                   if on]
        if len(outputs) > 1:
            raise ConfigError(f"{' and '.join(outputs)} exclude each other; pass one audio output")
        if self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")


@dataclass
class PipelineSnapshot:
    """A copy of the live state for display (COMMON.md)."""

    eeg: np.ndarray
    eeg_sfreq: float
    labels: list
    channel_flags: np.ndarray
    mel: np.ndarray
    truth_mel: np.ndarray | None
    dynamic_r: float | None
    latency_ms: dict
    counters: dict
    health: object
    running: bool
    error: str | None
    frame_index: int | None = None
    model: str = ""
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Recording that survives a crash


class FrameRecorder:
    """Append decoded frames to raw files that are valid after every append.

    Files in ``folder``: ``mel_db.f32`` (float32 little-endian, frame after frame, 128 values each),
    ``frame_index.i64`` (int64 global frame index of each frame, stimulus time = k * 512 / 22050 s),
    ``frame_source.f64`` (float64 rows ``n_end, j, t_last``: the window each frame came from, by the
    model-sample index one past its end, the frame's index in that window's output and the LSL time
    of the window's last sample), ``mel_db.json`` (how to read them), and ``decoded.wav`` (the
    audio). :func:`read_frames` reads them back, dropping a partly written last frame.
    """

    def __init__(self, folder: str | Path, *, sidecar: dict, audio: bool = True):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create record folder {self.folder} ({error.strerror}); pass a "
                              f"writable --record DIR") from error
        for name in (FRAMES_FILE, FRAME_INDEX_FILE, FRAME_SOURCE_FILE, AUDIO_FILE):
            if (self.folder / name).exists():
                raise ConfigError(f"record folder {self.folder} already holds {name}; pass a new "
                                  f"--record DIR (recordings are never overwritten)")
        meta = {"format": "raw float32 little-endian, frame-major", "n_mels": N_MELS, "dtype": "<f4",
                "frames_file": FRAMES_FILE, "index_file": FRAME_INDEX_FILE, "index_dtype": "<i8",
                "source_file": FRAME_SOURCE_FILE, "source_columns": ["n_end", "window_frame", "t_last"],
                "frame_period_s": FRAME_PERIOD_S, "audio_file": AUDIO_FILE if audio else None, **sidecar}
        (self.folder / FRAMES_SIDECAR).write_text(json.dumps(meta, indent=1))
        self._frames = open(self.folder / FRAMES_FILE, "ab")  # noqa: SIM115
        self._index = open(self.folder / FRAME_INDEX_FILE, "ab")  # noqa: SIM115
        self._source = open(self.folder / FRAME_SOURCE_FILE, "ab")  # noqa: SIM115
        # float samples as decoded; the header is rewritten after every write (crash-safe)
        self.wav = WavSink(self.folder / AUDIO_FILE, subtype="FLOAT") if audio else None
        self.n_frames = 0

    def append_frames(self, k0: int, frames: np.ndarray, window_frame: np.ndarray, n_end: int,
                      t_last: float) -> None:
        """Append frames ``k0 .. k0 + n - 1`` (frames: shape (128, n)) and where they came from."""
        n = frames.shape[1]
        if n == 0:
            return
        source = np.empty((n, 3), dtype="<f8")
        source[:, 0] = n_end
        source[:, 1] = window_frame
        source[:, 2] = t_last
        self._frames.write(np.ascontiguousarray(frames.T, dtype="<f4").tobytes())
        self._index.write(np.arange(k0, k0 + n, dtype="<i8").tobytes())
        self._source.write(source.tobytes())
        for f in (self._frames, self._index, self._source):
            f.flush()
        self.n_frames += n

    def append_audio(self, samples: np.ndarray) -> None:
        """Append decoded audio samples."""
        if self.wav is not None:
            self.wav.write(samples)

    def close(self) -> None:
        """Close every file."""
        self._frames.close()
        self._index.close()
        self._source.close()
        if self.wav is not None:
            self.wav.close()


def read_frames(folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a recording made with ``--record``.

    Returns
    -------
    frame_index : ndarray, shape (n,), int64
        Global frame index of each frame.
    mel_db : ndarray, shape (128, n), float32
    source : ndarray, shape (n, 3), float64
        ``n_end, window_frame, t_last`` of the window each frame came from.
    """
    folder = Path(folder)
    if not (folder / FRAMES_FILE).exists():
        raise DataFormatError(f"{folder} holds no {FRAMES_FILE}; pass a folder written by "
                              f"`eegmusic decode --record`")
    frames = np.fromfile(folder / FRAMES_FILE, dtype="<f4")
    index = np.fromfile(folder / FRAME_INDEX_FILE, dtype="<i8")
    source = np.fromfile(folder / FRAME_SOURCE_FILE, dtype="<f8")
    n = min(len(frames) // N_MELS, len(index), len(source) // 3)
    return (index[:n].astype(np.int64), frames[: n * N_MELS].reshape(n, N_MELS).T.astype(np.float32),
            source[: 3 * n].reshape(n, 3).astype(np.float64))


# ---------------------------------------------------------------------------------------------------
# Live truth


def band_pearson_mean(pred: np.ndarray, target: np.ndarray) -> float | None:
    """Mean over mel bands of the Pearson correlation over time (0 for a constant band).

    Parameters
    ----------
    pred, target : ndarray, shape (n_mels, n_frames)

    Returns
    -------
    float or None
        None when fewer than 2 frames.
    """
    if pred.shape[1] < 2:
        return None
    a = pred.astype(np.float64) - pred.mean(axis=1, keepdims=True)
    b = target.astype(np.float64) - target.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    valid = den > 1e-12
    r = np.where(valid, np.sum(a * b, axis=1) / np.where(valid, den, 1.0), 0.0)
    return float(np.mean(r))


class LiveTruth:
    """Score decoded frames against the true stimulus mel, aligned by the replay's markers.

    The marker ``song=21;t=12.000`` stamped at LSL time ``tm`` says that stimulus second 12 of song
    21 played at ``tm``; a decoded frame stamped at LSL time ``x`` is therefore stimulus frame
    ``round((12 + x - tm) / (512 / 22050))``.

    Parameters
    ----------
    truth_dir : str or Path
        NMED-T folder with ``stimuli/songNN.<wav|flac|...>``.
    recent_frames : int
        Frames over which the live (recent) dynamic r is computed.
    """

    def __init__(self, truth_dir: str | Path, *, recent_frames: int = 430):
        from eegmusic.replay.nmedt import NMEDTFolder

        self.truth_dir = Path(truth_dir)
        self._folder = NMEDTFolder(truth_dir)
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
        self._sums = np.zeros((5, N_MELS))   # running sums x, y, xx, yy, xy over the whole run
        self._count = 0

    def load(self, song: int) -> np.ndarray:
        """Compute (once) and return the true mel-dB of a song's stimulus, shape (128, n_frames).

        Raises
        ------
        DataFormatError
            The folder has no stimulus for that song.
        """
        with self._loading:
            if song not in self._mels:
                from eegmusic.decoder.melspec import mel_db

                if self._folder.stimulus_path(song) is None:
                    raise DataFormatError(f"no stimulus for song {song} in {self.truth_dir}/stimuli; put "
                                          f"songNN.wav there or drop --truth")
                self._mels[song] = mel_db(self._folder.load_stimulus(song))
        return self._mels[song]

    def has_stimulus(self, song: int) -> bool:
        """Whether the truth folder holds a stimulus file for ``song``."""
        return self._folder.stimulus_path(song) is not None

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
        match = _MARKER.search(text)
        if match is None:
            return
        song, seconds = int(match.group(1)), float(match.group(2))
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
        x, y = pred.astype(np.float64), truth.astype(np.float64)
        self._sums += np.stack([x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)])
        self._count += pred.shape[1]
        out = np.full(frames.shape, np.nan, np.float32)
        out[:, valid] = truth
        return out

    def dynamic_r(self) -> float | None:
        """Dynamic r over the last ``recent_frames`` scored frames (None before 2 frames)."""
        n = min(self._n, self.recent)
        return band_pearson_mean(self._pred[:, :n], self._true[:, :n]) if n >= 2 else None

    def dynamic_r_total(self) -> float | None:
        """Dynamic r over every scored frame of the run (running sums)."""
        n = self._count
        if n < 2:
            return None
        sx, sy, sxx, syy, sxy = self._sums
        cov = sxy - sx * sy / n
        var = (sxx - sx * sx / n) * (syy - sy * sy / n)
        valid = var > 1e-9
        return float(np.mean(np.where(valid, cov / np.sqrt(np.where(valid, var, 1.0)), 0.0)))


# ---------------------------------------------------------------------------------------------------
# The pipeline


class _DropOldestQueue:
    """A bounded FIFO that drops its oldest item when full, counting drops."""

    def __init__(self, maxlen: int):
        self._items: collections.deque = collections.deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item) -> None:
        with self._cond:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float):
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None


def _sink_queued_s(sink) -> float:
    """Seconds of audio waiting in a sink's buffer ahead of newly written samples (0 if unknown)."""
    for attr in ("queued_s", "buffered_s"):
        value = getattr(sink, attr, None)
        if value is not None:
            return float(value() if callable(value) else value)
    for attr in ("queued_samples", "buffered_samples"):
        value = getattr(sink, attr, None)
        if value is not None:
            return float(value() if callable(value) else value) / AUDIO_SFREQ
    return 0.0


class LivePipeline:
    """Decode a live EEG stream into frames and sound.

    Parameters
    ----------
    config : PipelineConfig
    runtime : DecoderRuntime, optional
        A ready runtime (tests pass a deliberately slow one); built from the config when None.
    sink : object, optional
        An audio sink with ``write``/``close``/``counters``; built from the config when None.

    Examples
    --------
    >>> config = PipelineConfig(stream_name="cap-1", model_path="model.onnx", no_audio=True)  # doctest: +SKIP
    >>> with LivePipeline(config) as pipeline:                                           # doctest: +SKIP
    ...     time.sleep(10)
    ...     print(pipeline.summary()["counters"])
    """

    def __init__(self, config: PipelineConfig, *, runtime=None, sink=None):
        config.validate()
        self.config = config
        self._runtime = runtime
        self._sink = sink
        self._source = None
        self._outlet = None
        self._recorder = None
        self._truth = None
        self._marker_inlet = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.latency = LatencyTracker()
        self._queue = _DropOldestQueue(maxlen=32)
        self._counters = collections.Counter()
        self._max_queued_s = config.hop_s + config.prebuffer_s + 0.15   # normal + hop jitter margin
        self._draining = False
        self.error: str | None = None
        self.stream_label = ""
        n_keep = int(np.ceil(config.snapshot_s / FRAME_PERIOD_S))
        self._mel = np.full((N_MELS, n_keep), -80.0, np.float32)
        self._truth_mel = np.full((N_MELS, n_keep), np.nan, np.float32)
        self._mel_written = 0
        self._last_k: int | None = None
        self._started = False
        self._t_start = None
        self._described_song: int | None = None

    # -- set-up ------------------------------------------------------------------------------------

    @property
    def runtime(self):
        """The :class:`~decoder.runtime.DecoderRuntime` (after :meth:`start`)."""
        return self._runtime

    def _open_stream(self):
        import pylsl
        from eegmusic.decoder.modelfile import check_stream
        from eegmusic.stream.outlet import channel_info
        from eegmusic.stream.resolve import resolve_stream

        cfg = self.config
        info = resolve_stream(name=cfg.stream_name, stype=cfg.stream_type, source_id=cfg.source_id,
                              timeout=cfg.resolve_timeout_s)
        inlet = pylsl.StreamInlet(info)
        try:
            full = inlet.info(timeout=max(cfg.resolve_timeout_s, 1.0))
        except pylsl.TimeoutError as error:
            raise StreamError(f"stream '{info.name()}' did not send its description within "
                              f"{cfg.resolve_timeout_s:g} s; check the sender") from error
        finally:
            del inlet
        labels = channel_info(full)["label"] or [f"ch{i}" for i in range(full.channel_count())]
        song = full.desc().child("dataset").child_value("song")
        self._described_song = int(song) if song.strip().isdigit() else None
        check_stream(self._runtime.info, stream_name=info.name(), labels=labels, sfreq=info.nominal_srate())
        return info

    def _make_sink(self):
        from eegmusic.decoder import audio

        cfg = self.config
        if cfg.no_audio:
            return audio.NullSink()
        if cfg.wav_path is not None:
            return audio.WavSink(cfg.wav_path)
        return audio.SoundDeviceSink(device=cfg.audio_device)

    def start(self) -> LivePipeline:
        """Load the model, find the stream, check they match, open outputs and start decoding.

        Raises
        ------
        EEGMusicError
            ModelError (bad model, mismatch), StreamError (no stream: the message lists those that
            exist), AudioError (no device), ConfigError (bad options).
        """
        if self._started:
            return self
        try:
            self._start()
        except BaseException:
            self._close_outputs()
            raise
        return self

    def _start(self) -> None:
        from eegmusic.stream.source import EEGSource

        cfg = self.config
        if self._runtime is None:
            from eegmusic.decoder.runtime import DecoderRuntime

            self._runtime = DecoderRuntime(cfg.model_path, device=cfg.device, intra_op_threads=cfg.threads)
        info = self._runtime.info
        stream_info = self._open_stream()
        self.stream_label = stream_info.name()
        self._kind = info.output_kind
        if self._kind == "mel_db":
            initial = int(np.ceil((cfg.hop_s + cfg.prebuffer_s) / FRAME_PERIOD_S))
            self._clock = FrameClock(lag_s=info.audio_lag_s, n_mels=info.output_shape[0],
                                     n_frames=info.output_shape[1], smooth_frames=cfg.smooth_frames,
                                     initial_frames=min(max(initial, 1), info.output_shape[1]))
            from eegmusic.decoder.vocoder import StreamingVocoder

            self._vocoder = StreamingVocoder(method=cfg.vocoder_method)
            warm = np.random.default_rng(0).uniform(-70.0, -20.0, (8, N_MELS)).astype(np.float32)
            for frame in warm:        # compile / warm the phase reconstruction before audio starts
                self._vocoder.process(frame)
            self._vocoder.reset()
        else:
            self._clock = SampleClock(lag_s=info.audio_lag_s, n_samples=info.output_shape[0],
                                      initial_samples=int(round((cfg.hop_s + cfg.prebuffer_s) * AUDIO_SFREQ)))
            self._vocoder = None
        if cfg.truth_dir is not None:
            self._truth = LiveTruth(cfg.truth_dir)
            song = self._described_song
            if song is not None and self._truth.has_stimulus(song):
                self._truth.load(song)      # the replay names its song: ready before the first frame
            self._open_markers(stream_info)
        if self._sink is None:
            self._sink = self._make_sink()
        import inspect

        # A sound card sink must never block the output thread: what does not fit is dropped, counted.
        self._write_kwargs = ({"block": False} if "block" in inspect.signature(self._sink.write).parameters
                              else {})
        if cfg.record_dir is not None:
            self._recorder = FrameRecorder(cfg.record_dir, sidecar={
                "model": str(cfg.model_path), "stream": stream_info.name(),
                "source_id": stream_info.source_id(), "hop_s": cfg.hop_s, "output_kind": self._kind,
                "audio_lag_s": info.audio_lag_s, "smooth_frames": cfg.smooth_frames,
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        if cfg.lsl_out and self._kind == "mel_db":
            self._open_outlet(stream_info)
        self._source = EEGSource(name=stream_info.name(), source_id=stream_info.source_id(),
                                 spec=info.preprocessing, hop_s=cfg.hop_s)
        self._source.start()
        self._started = True
        self._t_start = time.monotonic()
        self._threads = [threading.Thread(target=self._guard, args=(self._decode_loop,), daemon=True,
                                          name="eegmusic-decode"),
                         threading.Thread(target=self._guard, args=(self._output_loop,), daemon=True,
                                          name="eegmusic-output")]
        for thread in self._threads:
            thread.start()
        log.info("decoding '%s' with %s on %s, hop %.3f s", stream_info.name(), info.model_name,
                 self._runtime.provider, cfg.hop_s)

    def _open_outlet(self, stream_info) -> None:
        import pylsl
        from eegmusic.stream.outlet import regular_stream_info

        name = f"{stream_info.name()}-mel"
        labels = [f"mel{i:03d}" for i in range(N_MELS)]
        desc = {"decoder": {"model": self._runtime.info.model_name, "eeg_stream": stream_info.name(),
                            "frame_period_s": f"{FRAME_PERIOD_S:.9f}",
                            "audio_lag_s": f"{self._runtime.info.audio_lag_s:g}"}}
        out_info = regular_stream_info(name, MEL_STREAM_TYPE, labels, MEL_RATE,
                                       f"{stream_info.source_id()}-mel", unit="dB",
                                       channel_type="MelSpectrogram", extra_desc=desc)
        self._outlet = pylsl.StreamOutlet(out_info, chunk_size=8, max_buffered=10)

    def _open_markers(self, stream_info) -> None:
        import pylsl
        from eegmusic.stream.resolve import find_streams

        found = find_streams(name=f"{stream_info.name()}-markers", stype="Markers", timeout=2.0)
        if not found:
            log.warning("no marker stream '%s-markers': live dynamic r is off", stream_info.name())
            return
        inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize)
        try:
            inlet.open_stream(timeout=2.0)    # connect now, not on the output thread's first pull
            inlet.time_correction(timeout=2.0)
        except pylsl.TimeoutError:
            log.warning("marker stream '%s-markers' did not answer: live dynamic r is off",
                        stream_info.name())
            return
        self._marker_inlet = inlet

    # -- threads -----------------------------------------------------------------------------------

    def _guard(self, loop) -> None:
        try:
            loop()
        except EEGMusicError as error:
            self.error = str(error)
            log.error("%s", error)
            self._stop.set()
        except Exception as error:  # a bug: keep the message for the user, the trace for the log
            self.error = f"{type(error).__name__}: {error}"
            log.exception("decoder thread failed")
            self._stop.set()

    def _decode_loop(self) -> None:
        from pylsl import local_clock

        source, runtime, clock = self._source, self._runtime, self._clock
        output = np.zeros(runtime.output_shape, np.float32)   # reused: the clocks copy what they keep
        last = None
        while not self._stop.is_set():
            window = source.next_window(timeout=0.1)
            if window is None:
                continue
            while True:               # decode only the newest window: latency stays bounded
                newer = source.next_window(timeout=0)
                if newer is None:
                    break
                self._counters["drops_decoder"] += 1
                window = newer
            if window.flagged:
                self._counters["flagged_windows"] += 1
            n_end = int(window.sample_index) + WINDOW_SAMPLES
            if last is not None:
                # A restarted source continues the sample index but not the time: start afresh.
                jump = (window.t_last - last[1]) - (n_end - last[0]) / MODEL_SFREQ
                if jump > max(0.5, 2 * self.config.hop_s):
                    self._counters["time_jumps"] += 1
                    self._counters["frames_skipped_time"] += int(jump / FRAME_PERIOD_S)
                    clock.reset()
            last = (n_end, window.t_last)
            runtime.predict(window.data, out=output)
            t_inferred = local_clock()
            emission = clock.push(n_end, output)
            self._counters["windows"] += 1
            stamps = {"arrival": window.t_arrival, "ready": window.t_ready, "inferred": t_inferred}
            # LSL time of EEG-stream time 0 (stimulus frame k sits at t0 + k * 512 / 22050).
            t0 = window.t_last - (n_end - 1) / MODEL_SFREQ
            self._queue.put((emission, stamps, t0, n_end, window.t_last))

    def _output_loop(self) -> None:
        from pylsl import local_clock

        while not self._stop.is_set():
            self._pull_markers()
            item = self._queue.get(timeout=0.1)
            if item is None:
                continue
            emission, stamps, t0, n_end, t_last = item
            if self._kind == "mel_db":
                samples, frames, k0 = self._vocode(emission)
                stamps["vocoded"] = local_clock()
            else:
                k0, samples = emission
                frames = None
                stamps["vocoded"] = stamps["inferred"]
                if self._clock.samples_skipped:
                    self._counters["samples_skipped"] = self._clock.samples_skipped
            queued = _sink_queued_s(self._sink) if len(samples) else 0.0
            # When the device stalls (PulseAudio takes ~1 s to start a new stream), audio piles up and
            # would stay a standing delay for the rest of the run: past the bound, drop new audio
            # (counted) until the device has drained to the normal prebuffer.
            if queued > self._max_queued_s:
                self._draining = True
            elif queued <= self.config.prebuffer_s + self.config.hop_s:
                self._draining = False
            if len(samples) and self._draining:
                self._counters["audio_dropped_late"] += len(samples)
            elif len(samples):
                self._sink.write(samples, **self._write_kwargs)
                stamps["buffered"] = local_clock()
                stamps["dac"] = stamps["buffered"] + _sink_queued_s(self._sink) + float(
                    getattr(self._sink, "output_latency_s", 0.0) or 0.0)
            if frames is not None and frames.shape[1]:
                self._publish(k0, frames, t0)
                if self._recorder is not None:
                    self._recorder.append_frames(k0, frames, emission.window_frame, n_end, t_last)
            if self._recorder is not None and len(samples):
                self._recorder.append_audio(samples)
            self.latency.record(stamps)

    def _vocode(self, emission):
        """Vocode an emission's frames; return (audio, frames, k0)."""
        frames = emission.frames
        if emission.skipped or (self._last_k is not None and emission.k0 != self._last_k + 1):
            self._counters["frames_skipped"] += emission.skipped
            self._counters["vocoder_resets"] += 1
            self._vocoder.reset()
        if frames.shape[1] == 0:
            return np.zeros(0, np.float32), frames, emission.k0
        self._last_k = emission.k0 + frames.shape[1] - 1
        audio = np.empty(frames.shape[1] * HOP_LENGTH, np.float32)
        for i in range(frames.shape[1]):
            audio[i * HOP_LENGTH:(i + 1) * HOP_LENGTH] = self._vocoder.process(frames[:, i])
        self._counters["frames"] += frames.shape[1]
        return audio, frames, emission.k0

    def _publish(self, k0: int, frames: np.ndarray, t0: float) -> None:
        """Send frames to the LSL outlet, the recording, the truth scorer and the snapshot buffer."""
        n = frames.shape[1]
        stamps = t0 + (k0 + np.arange(n)) * FRAME_PERIOD_S
        if self._outlet is not None:
            self._outlet.push_chunk(np.ascontiguousarray(frames.T), stamps.tolist())
        truth = self._truth.update(frames, stamps) if self._truth is not None else None
        keep = self._mel.shape[1]
        with self._lock:
            slots = (self._mel_written + np.arange(n)) % keep
            self._mel[:, slots] = frames
            self._truth_mel[:, slots] = np.nan if truth is None else truth
            self._mel_written += n

    def _pull_markers(self) -> None:
        if self._marker_inlet is None:
            return
        while True:
            sample, timestamp = self._marker_inlet.pull_sample(timeout=0.0)
            if sample is None:
                return
            self._truth.marker(str(sample[0]), timestamp)

    # -- control -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop decoding, flush and close every output (idempotent)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads = []
        if self._source is not None:
            self._health_at_stop = self._source.health()
            self._source.stop()
        self._close_outputs()
        self._started = False

    def _close_outputs(self) -> None:
        if self._vocoder_tail_ok():
            tail = self._vocoder.flush()
            if len(tail):
                self._sink.write(tail)
                if self._recorder is not None:
                    self._recorder.append_audio(tail)
        if self._sink is not None:
            self._counters_sink = dict(self._sink.counters())
            self._sink.close()
            self._sink = None
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        self._marker_inlet = None
        self._outlet = None

    def _vocoder_tail_ok(self) -> bool:
        return (getattr(self, "_vocoder", None) is not None and self._sink is not None
                and self._last_k is not None)

    def __enter__(self) -> LivePipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while both threads run."""
        return self._started and not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def health(self):
        """The stream stage's :class:`StreamHealth` (None before start)."""
        if self._source is None:
            return None
        if not self._started and hasattr(self, "_health_at_stop"):
            return self._health_at_stop
        return self._source.health()

    def counters(self) -> dict:
        """Windows, drops, gaps, reconnects, underruns and the finer counts behind them."""
        counts = dict(self._counters)
        health = self.health()
        sink_counts = dict(self._sink.counters()) if self._sink is not None else getattr(
            self, "_counters_sink", {})
        dropped_stream = int(getattr(health, "dropped_windows", 0) or 0)
        out = {
            "windows": counts.get("windows", 0),
            "drops": counts.get("drops_decoder", 0) + dropped_stream + self._queue.dropped,
            "gaps": int(getattr(health, "gaps", 0) or 0),
            "reconnects": int(getattr(health, "reconnects", 0) or 0),
            "underruns": int(sink_counts.get("underruns", 0)),
            "frames": counts.get("frames", 0),
            "frames_skipped": counts.get("frames_skipped", 0) + counts.get("frames_skipped_time", 0),
            "flagged_windows": counts.get("flagged_windows", 0),
            "drops_decoder": counts.get("drops_decoder", 0),
            "drops_stream": dropped_stream,
            "drops_output_queue": self._queue.dropped,
            "vocoder_resets": counts.get("vocoder_resets", 0),
            "time_jumps": counts.get("time_jumps", 0),
            "audio_written": int(sink_counts.get("written", 0)),
            "audio_dropped": int(sink_counts.get("dropped", 0)),
            "audio_sanitised": int(sink_counts.get("sanitised", 0)),
            "audio_dropped_late": counts.get("audio_dropped_late", 0),
        }
        return out

    def _recent_eeg(self):
        if self._source is None or not self._started:
            return np.zeros((0, 0), np.float32), []
        try:
            samples, labels = self._source.recent(self.config.snapshot_s)
        except EEGMusicError:
            return np.zeros((0, 0), np.float32), []
        return np.asarray(samples), list(labels)

    def snapshot(self) -> PipelineSnapshot:
        """A copy of the recent state; never waits on decoding or acquisition."""
        eeg, labels = self._recent_eeg()
        health = self.health()
        if eeg.size:
            finite = np.isfinite(eeg)
            flags = ~finite.all(axis=1) | (np.nanstd(np.where(finite, eeg, np.nan), axis=1) < 1e-6)
        else:
            flags = np.zeros(len(labels), bool)
        with self._lock:
            n = min(self._mel_written, self._mel.shape[1])
            order = (self._mel_written - n + np.arange(n)) % self._mel.shape[1]
            mel = self._mel[:, order].copy()
            truth_mel = self._truth_mel[:, order].copy() if self._truth is not None else None
            frame_index = self._last_k
        return PipelineSnapshot(
            eeg=eeg, eeg_sfreq=MODEL_SFREQ, labels=labels, channel_flags=flags, mel=mel,
            truth_mel=truth_mel, dynamic_r=self._truth.dynamic_r() if self._truth is not None else None,
            latency_ms=self.latency.percentiles(), counters=self.counters(), health=health,
            running=self.running, error=self.error or getattr(health, "error", None),
            frame_index=frame_index,
            model=self._runtime.info.model_name if self._runtime is not None else "")

    def summary(self) -> dict:
        """JSON-ready summary: counters, latency per stage, dynamic r, model and device."""
        health = self.health()
        out = {
            "stream": self.stream_label,
            "model": str(self.config.model_path),
            "provider": getattr(self._runtime, "provider", None),
            "seconds": round(time.monotonic() - self._t_start, 3) if self._t_start else 0.0,
            "counters": self.counters(),
            "latency_ms": self.latency.percentiles(),
            "dynamic_r": self._truth.dynamic_r() if self._truth is not None else None,
            "dynamic_r_total": self._truth.dynamic_r_total() if self._truth is not None else None,
            "error": self.error,
            "effective_rate": getattr(health, "effective_rate", None),
        }
        if getattr(self, "_vocoder", None) is not None:
            out["vocoder_latency_ms"] = round(self._vocoder.latency_frames * FRAME_PERIOD_S * 1e3, 2)
        if getattr(self, "_clock", None) is not None:
            out["smoothing_latency_ms"] = round(self._clock.added_latency_s * 1e3, 2)
        return out
