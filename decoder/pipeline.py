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
covers. One exception: a fast model held up so that one or two windows would be dropped (a
scheduling hiccup of two or three hops) decodes them first, counted as ``windows_caught_up``
(:data:`CATCH_UP_WINDOWS`).
Windows that one chunk of the stream completed together (a late chunk at a one-frame hop)
and that the newest window overlaps are counted apart, as ``windows_coalesced``: the source was
late, not the decoder, and no frame is lost. The emission
queue to the output thread drops its oldest item when full, also counted. The audio sink's own
callback plays silence when nothing new arrives (counted as underruns).

Every window carries stamps on the LSL clock (see :mod:`decoder.latency`). :meth:`LivePipeline.snapshot`
copies the recent state for the GUI without waiting on either thread.

The rooms around it: :mod:`decoder.pipeline_config` (the options), :mod:`decoder.output_stage`
(the output thread's sound: vocoder, ``--listen``, the cushion ahead of the sink),
:mod:`decoder.frame_outlets` (the LSL frame and status outlets), :mod:`decoder.recording`
(crash-safe ``--record``), :mod:`decoder.truth` (live dynamic r against the replay's stimulus),
:mod:`decoder.output_queue` (the bounded queues), :mod:`decoder.snapshot` (what a display reads),
:mod:`decoder.audio` (the :class:`AudioSink` contract), :mod:`decoder.realtime` (thread priorities),
and in ``stream/`` the EEG source and the marker inlet. (About 600 lines: start-up, the two loops
and the summary all read the same state.)
"""

from __future__ import annotations

import collections
import gc
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
from eegmusic.decoder.audio import AudioSink
from eegmusic.decoder.frame_outlets import FrameOutlets
from eegmusic.decoder.frameclock import FrameClock, SampleClock
from eegmusic.decoder.latency import ESTIMATED_STAGES, LatencyTracker
from eegmusic.decoder.melspec import (
    AUDIO_SFREQ,
    FRAME_PERIOD_S,
    MEL_DB_CEILING,
    MEL_DB_GUARD_FLOOR,
    N_MELS,
    guard_mel_db,
)
from eegmusic.decoder.modelfile import check_live_contract
from eegmusic.decoder.output_queue import EmissionQueue
from eegmusic.decoder.output_stage import SoundOutput, open_sink
from eegmusic.decoder.pipeline_config import PipelineConfig
from eegmusic.decoder.realtime import (
    freeze_start_up_objects,
    process_threads,
    raise_priorities,
    raise_priority,
)
from eegmusic.decoder.recording import AUDIO_FILE, FrameRecorder, read_frames
from eegmusic.decoder.scores import RECENT_SHIFTED_KEY, SHIFTED_KEY
from eegmusic.decoder.snapshot import PipelineSnapshot
from eegmusic.decoder.truth import LiveTruth, StimulusLookup
from eegmusic.stream.background import in_a_thread
from eegmusic.stream.errors import ConfigError, EEGMusicError, StreamError, detail
from eegmusic.stream.markers import REPLAY_END, MarkerInlet
from eegmusic.stream.outlet import marker_source_id
from eegmusic.stream.source import EEGSource, StreamHealth, stream_labels
from eegmusic.stream.spec import MODEL_SFREQ
from pylsl import local_clock  # loaded with the stream stage anyway; once here, not per window

__all__ = ["AUDIO_FILE", "FrameRecorder", "LivePipeline", "LiveTruth", "PipelineConfig", "PipelineSnapshot",
           "read_frames"]

log = logging.getLogger(__name__)

DROP_TIMES_KEPT = 4096
"""How many of the latest decoder drops :attr:`LivePipeline.decoder_drop_times` keeps."""

CATCH_UP_WINDOWS = 2
"""A decoder that finds this many windows or fewer lost behind the newest (it was held up for under about
four hops) decodes them instead of dropping them; a longer backlog is dropped whole."""

CATCH_UP_BUDGET = 0.5
"""...provided ``CATCH_UP_WINDOWS`` windows and the newest would take under this share of a hop to decode,
at the median decode time (model and frame clock) of the latest 15 windows, and 5 have been measured:
the rest of the hop is the output thread's and the stream's. A model whose median is slower never
catches up, so a backlog costs it resolution, not latency; one whose decode slows suddenly may catch
up once at its new cost (at most two extra decodes, never accumulating) until the median follows."""


def windows_to_decode(source, window, counters: collections.Counter,
                      drop_times: collections.deque | None = None,
                      catch_up: int | Callable[[], int] = 0) -> list:
    """The windows to decode now, oldest first: the newest ``source`` has queued, after a short backlog.

    Every older window skipped is counted in ``counters``: as ``windows_coalesced`` when the same
    chunk of the stream completed it and the newest window covers the frames it adds, those after the
    previous window's end (the source was late, not the decoder; nothing is lost), else as
    ``drops_decoder``, a window skipped to stay current whose frames are lost: it waited while the
    decoder was busy, or a stall's backlog arrived as one chunk longer than a window and the newest
    window starts after their frames. Each is judged against the window returned, not its next neighbour:
    within such a backlog every window overlaps the next.

    Parameters
    ----------
    source : object with ``next_window(timeout)``
        The stream stage (:class:`stream.source.EEGSource` or its :class:`stream.windower.Windower`).
    window : stream.windower.Window
        The window just taken.
    counters : collections.Counter
        Updated in place.
    drop_times : collections.deque, optional
        Gets the ``time.monotonic()`` of each ``drops_decoder`` counted.
    catch_up : int or callable
        A backlog of at most this many windows that would be dropped is decoded instead, before the
        newest, and counted as ``windows_caught_up``: a scheduling hiccup on a loaded machine costs
        no window's prediction. A longer backlog is dropped whole, as with 0, so latency stays
        bounded. The caller passes 0 unless its model is fast enough to
        decode the backlog and the newest within a hop. A callable, ``catch_up() -> int``, is asked
        only when there is a backlog to drop (the decode loop's judgement of its model's speed, not
        worked out on every window).

    Returns
    -------
    list of stream.windower.Window
        The caught-up windows, then the newest (``window`` itself when none is newer).
    """
    skipped = []
    while (newer := source.next_window(timeout=0)) is not None:
        skipped.append(window)
        window = newer
    length = window.data.shape[1]
    lost = []
    for k, old in enumerate(skipped):
        # the frames ``old`` adds start where the window before it ended (the first skipped one's
        # predecessor was decoded earlier: one hop, its step to the next window, before its own end);
        # the newest covers them if it starts there or earlier
        if k:
            frames_start = skipped[k - 1].sample_index + length
        else:
            following = skipped[1] if len(skipped) > 1 else window
            frames_start = 2 * old.sample_index + length - following.sample_index
        covered = old.t_arrival == window.t_arrival and window.sample_index <= frames_start
        if covered:
            counters["windows_coalesced"] += 1
        else:
            lost.append(old)
    if lost and len(lost) <= (catch_up() if callable(catch_up) else catch_up):
        counters["windows_caught_up"] += len(lost)
        return [*lost, window]
    if lost:
        counters["drops_decoder"] += len(lost)
        if drop_times is not None:
            drop_times.extend([time.monotonic()] * len(lost))
    return [window]


def _marker_source(meta) -> str | None:
    """The source id of a replay's marker stream (the EEG stream's plus ``-markers``, as the replay names
    it), or None for a stream without a source id."""
    return marker_source_id(meta.source_id) if meta.source_id else None


def _ready_vocoder(cfg: PipelineConfig) -> Future:
    """The live vocoder, built and warmed up (numba compiles, FFT plans) in a thread while the stream is found
    and opened: that takes a second (the listen for a same-named twin), the vocoder 0.4 s here, and a
    decode's first sound waited for both in turn. Its module is imported first, here: the build and
    warm-up then start no thread of their own that the pipeline would take for one of liblsl's
    (``stream_threads``)."""
    from eegmusic.decoder.vocoder import StreamingVocoder

    def build() -> StreamingVocoder:
        # the stream's filters need scipy.signal (0.7-1 s to import, which a decode's start paid before
        # anything else): imported here it overlaps the stream's opening, and it comes first, so that every
        # scipy module the vocoder's libraries import next is imported by this one thread
        import scipy.signal  # noqa: F401

        vocoder = StreamingVocoder(method=cfg.vocoder_method, lookahead=cfg.vocoder_lookahead)
        vocoder.warm_up()   # compile before audio starts
        return vocoder

    return in_a_thread(build, "eegmusic-vocoder")


class LivePipeline:
    """Decode a live EEG stream into frames and sound.

    Parameters
    ----------
    config : PipelineConfig
    runtime : DecoderRuntime, optional
        A ready runtime (tests pass a deliberately slow one); built from the config when None.
    sink : AudioSink, optional
        Where decoded audio goes; built from the config when None.
    stimuli : StimulusLookup, optional
        Where live truth finds each song's stimulus audio; with ``config.truth_dir`` and no lookup,
        the folder's ``stimuli/songNN.<ext>`` files.

    Examples
    --------
    >>> config = PipelineConfig(stream_name="cap-1", model_path="model.onnx", no_audio=True)  # doctest: +SKIP
    >>> with LivePipeline(config) as pipeline:                                           # doctest: +SKIP
    ...     time.sleep(10)
    ...     print(pipeline.summary()["counters"])
    """

    def __init__(self, config: PipelineConfig, *, runtime=None, sink: AudioSink | None = None,
                 stimuli: StimulusLookup | None = None):
        config.validate()
        self.config = config
        self._runtime = runtime
        self._sink = sink
        self._stimuli = stimuli
        self._source: EEGSource | None = None
        self._outlets: FrameOutlets | None = None
        self._recorder: FrameRecorder | None = None
        self._truth: LiveTruth | None = None
        self._markers: MarkerInlet | None = None
        self._markers_lock = threading.Lock()   # the marker stream a background open hands over, or closes
        self._outputs_closed = False
        self._clock: FrameClock | SampleClock | None = None
        self._vocoder = None
        self._sound: SoundOutput | None = None
        self._kind = ""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.latency = LatencyTracker()
        self._queue: EmissionQueue[tuple] = EmissionQueue(maxlen=32)
        self._counters: collections.Counter = collections.Counter()
        self.decoder_drop_times: collections.deque[float] = collections.deque(maxlen=DROP_TIMES_KEPT)
        """``time.monotonic()`` of each of the latest ``drops_decoder``, to set beside the machine's stalls
        (:mod:`benchmarks.machine_stalls`), as the sound device's underrun times are."""
        self.error: str | None = None
        self.stream_label = ""
        n_keep = int(np.ceil(config.snapshot_s / FRAME_PERIOD_S))
        self._mel = np.full((N_MELS, n_keep), -80.0, np.float32)
        self._truth_mel = np.full((N_MELS, n_keep), np.nan, np.float32)
        self._mel_written = 0
        self._started = False
        self._t_start: float | None = None
        self._health_at_stop: StreamHealth | None = None
        self._counters_sink: dict[str, int] = {}
        self._sink_note: str | None = None   # the closed sink's latency_note, for the summary
        self.scheduling: dict[str, str] = {}
        """Role -> how its thread is scheduled (:func:`decoder.realtime.raise_priority`)."""

    # -- set-up ------------------------------------------------------------------------------------

    @property
    def runtime(self):
        """The :class:`~decoder.runtime.DecoderRuntime` (after :meth:`start`)."""
        return self._runtime

    def _open_stream(self) -> EEGSource:
        """Connect to the EEG stream (not yet acquiring) and check it against the model."""
        from eegmusic.decoder.modelfile import check_stream

        cfg = self.config
        info = self._runtime.info
        source = EEGSource(name=cfg.stream_name, stype=cfg.stream_type, source_id=cfg.source_id,
                           spec=info.preprocessing, hop_s=cfg.hop_s, resolve_timeout=cfg.resolve_timeout_s,
                           impute_missing=cfg.impute_missing, model_positions=info.positions,
                           max_missing=info.max_missing, window_samples=info.window_samples,
                           # windows end right after the frame they complete (frame m of the
                           # stimulus needs EEG up to (m * 512 / 22050 + audio_lag_s) s)
                           window_grid_offset=info.audio_lag_s * info.sfreq)
        meta = source.connect()
        try:
            # the labels the source reads the channels by: an unlabelled 125- or 128-channel stream is
            # a known net (stream.channels.default_labels); one of no known count is refused by prepare
            labels = stream_labels(meta)
            if labels is not None:
                check_stream(info, stream_name=meta.name, labels=labels, sfreq=meta.sfreq,
                             impute_missing=cfg.impute_missing)
            source.prepare()   # what start() would refuse (duplicate labels, ...), before any output opens
        except BaseException:
            source.stop()
            raise
        return source

    @property
    def sink(self) -> AudioSink | None:
        """The audio sink decoded samples go to (None before start and after stop)."""
        return self._sink

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
            if self._source is not None:
                self._source.stop()
            self._close_outputs()
            if self.config.realtime:
                gc.unfreeze()    # as stop() does: only what this start froze
            raise
        return self

    def _start(self) -> None:
        cfg = self.config
        self._outputs_closed = False
        if self._runtime is None:
            from eegmusic.decoder.runtime import DecoderRuntime

            self._runtime = DecoderRuntime(cfg.model_path, device=cfg.device, intra_op_threads=cfg.threads,
                                           subject=cfg.subject)
        info = self._runtime.info
        # before any stream or output opens (check_stream repeats the first with the stream's labels)
        check_live_contract(info)
        cfg.refuse_ignored_by(info.output_kind, cfg.model_path)
        self._kind = info.output_kind
        vocoder = _ready_vocoder(cfg) if self._kind == "mel_db" else None   # built while the stream opens
        threads_before = process_threads()
        try:
            self._source = self._open_stream()
        finally:
            if vocoder is not None:
                vocoder.exception()   # a refused stream waits the warm-up out: no thread outlives the start
        meta = self._source.connect()    # already connected: what the stream is
        stream_threads = process_threads() - threads_before      # liblsl's receiving threads
        self.stream_label = meta.name
        if vocoder is not None:
            initial = int(np.ceil(cfg.hop_s / FRAME_PERIOD_S - 1e-9))   # the cushion is AdaptivePlayback's
            self._clock = FrameClock(lag_s=info.audio_lag_s, n_mels=info.output_shape[0],
                                     n_frames=info.output_shape[1], smooth_frames=cfg.smooth_frames,
                                     initial_frames=min(max(initial, 1), info.output_shape[1]),
                                     sfreq=info.sfreq, window_samples=info.window_samples)
            self._vocoder = vocoder.result()   # an unknown method or look-ahead is raised here, as before
        else:
            self._clock = SampleClock(lag_s=info.audio_lag_s, n_samples=info.output_shape[0],
                                      initial_samples=int(round(cfg.hop_s * AUDIO_SFREQ)),
                                      sfreq=info.sfreq, window_samples=info.window_samples,
                                      output_sfreq=info.output_sfreq)   # resampled to 22050 Hz
            self._vocoder = None
        if cfg.truth_dir is not None:
            # the marker stream is found and opened (0.6 s here) while the stimuli are read
            markers = in_a_thread(lambda: MarkerInlet.open(f"{meta.name}-markers", timeout=2.0,
                                                            source_id=_marker_source(meta)),
                                   "eegmusic-markers")
            try:
                self._truth = self._read_truth(meta)
            finally:
                self._markers = markers.result()
            if self._markers is None and cfg.listen != "decoded":
                raise ConfigError(f"--listen {cfg.listen} needs the replay's marker stream "
                                  f"'{meta.name}-markers' (which stimulus second plays when), and none "
                                  f"answered; replay a dataset with markers (eegmusic replay) or drop "
                                  f"--listen")
            if self._markers is None:
                log.warning("no marker stream '%s-markers' answered: live dynamic r is off", meta.name)
        elif meta.song is not None or meta.stimulus is not None:   # a replay: its markers say when it ends
            threading.Thread(target=self._follow_replay_end, args=(meta,), daemon=True,
                             name="eegmusic-replay-end").start()
        if cfg.realtime:   # before the device plays: a full collection holds the GIL the callback needs
            log.debug("%d start-up objects kept out of garbage collection", freeze_start_up_objects())
        if self._sink is None:
            self._sink = open_sink(cfg)
        self._sound = SoundOutput(cfg, self._sink, vocoder=self._vocoder, truth=self._truth,
                                  counters=self._counters)
        if cfg.record_dir is not None:
            self._recorder = FrameRecorder(cfg.record_dir, sidecar={
                "model": str(cfg.model_path), "stream": meta.name,
                "source_id": meta.source_id, "hop_s": cfg.hop_s, "output_kind": self._kind,
                "audio_lag_s": info.audio_lag_s, "smooth_frames": cfg.smooth_frames,
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        if cfg.lsl_out and self._kind == "mel_db":
            self._outlets = FrameOutlets(meta.name, meta.source_id, model_name=info.model_name,
                                         audio_lag_s=info.audio_lag_s)
        threads_before = process_threads()
        self._source.start()
        if cfg.realtime:
            # the acquisition thread and liblsl's: a window waits for them, and the decode thread waits
            # for the GIL whenever one was preempted while holding it
            outcome = raise_priorities("acquisition", stream_threads | (process_threads() - threads_before))
            if outcome is not None:
                self.scheduling["acquisition"] = outcome
        self._started = True
        self._t_start = time.monotonic()
        self._threads = [threading.Thread(target=self._guard, args=(self._decode_loop, "decode"), daemon=True,
                                          name="eegmusic-decode"),
                         threading.Thread(target=self._guard, args=(self._output_loop, "output"), daemon=True,
                                          name="eegmusic-output")]
        for thread in self._threads:
            thread.start()
        log.info("decoding '%s' with %s on %s, hop %.3f s", meta.name, info.model_name,
                 self._runtime.provider, cfg.hop_s)

    def _training_split(self) -> str | None:
        """The split the model's ``training`` metadata names, or None (no such block, or not a name: the
        summary reads it, and a summary must not fail on a field only ``evaluate`` checks)."""
        training = self._runtime.info.metadata.get("training") if self._runtime is not None else None
        split = training.get("split") if isinstance(training, dict) else None
        return split if isinstance(split, str) else None

    def _read_truth(self, meta) -> LiveTruth:
        """The live truth of ``--truth``: the stimuli, the model's baselines, the replay's song loaded."""
        cfg, info = self.config, self._runtime.info
        if self._stimuli is None:
            from eegmusic.decoder.truth import truth_stimuli

            self._stimuli = truth_stimuli(cfg.truth_dir, meta)
        truth = LiveTruth(self._stimuli, keep_audio=cfg.listen != "decoded")
        if info.metadata.get("baselines"):   # the model's training-part means: baselines, same frames
            from eegmusic.decoder.truth import read_baselines

            try:
                from eegmusic.decoder.truth import read_song_music

                entry = info.metadata["baselines"]
                truth.set_baselines(*read_baselines(entry), song_music=read_song_music(entry))
            except (ValueError, KeyError, TypeError) as error:
                log.warning("model baselines unreadable (%s): live baselines are off", error)
            if truth.song_identity_unchecked():
                log.warning("song identity unchecked: the model predates stimulus digests, so its "
                            "song-mean baseline is scored for any song of the same number in %s",
                            cfg.truth_dir)
        song = meta.song
        if song is not None and truth.has_stimulus(song):
            truth.load(song)      # the replay names its song: ready before the first frame
        return truth

    # -- threads -----------------------------------------------------------------------------------

    def _guard(self, loop, role: str) -> None:
        if self.config.realtime:
            self.scheduling[role] = raise_priority(role)
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
        source = self._source
        output = np.zeros(self._runtime.output_shape, np.float32)   # reused: the clocks copy what they keep
        last = None
        costs: collections.deque[float] = collections.deque(maxlen=15)   # the latest windows' decode times
        hop_s = self.config.hop_s

        def catch_up() -> int:
            """CATCH_UP_WINDOWS when they and the newest decode well within a hop, else 0."""
            if len(costs) < 5:
                return 0
            typical = sorted(costs)[len(costs) // 2]    # a median: one hiccup does not move it
            return CATCH_UP_WINDOWS if (CATCH_UP_WINDOWS + 1) * typical < CATCH_UP_BUDGET * hop_s else 0

        while not self._stop.is_set():
            if source.inlet.error is not None:   # nothing will come in again: end the decode, say why
                raise StreamError(f"reading stream '{self.stream_label}' stopped: the acquisition thread "
                                  f"failed ({source.inlet.error}); start the decode again, and report this")
            if self._outlets is not None:
                self._outlets.push_state(self._source.inlet.state)
            taken = source.next_window(timeout=0.1)
            if taken is None:
                continue
            # the newest window, after a short backlog only when the model is fast (catch_up)
            for window in windows_to_decode(source, taken, self._counters, self.decoder_drop_times,
                                            catch_up=catch_up):
                t_start = time.perf_counter()
                last = self._decode_one(window, last, output)
                costs.append(time.perf_counter() - t_start)

    def _decode_one(self, window, last: tuple | None, output: np.ndarray) -> tuple[int, float, float]:
        """Decode one window into the frame clock and queue its emission; return ``last`` for the next."""
        runtime, clock = self._runtime, self._clock
        sfreq, window_samples = runtime.info.sfreq, runtime.info.window_samples   # the model's
        if window.flagged:
            self._counters["flagged_windows"] += 1
        n_end = int(window.sample_index) + window_samples
        if last is not None:
            # A restarted source continues the sample index but not the time: start afresh.
            expected = (n_end - last[0]) / sfreq
            jump = (window.t_last - last[1]) - expected
            # a step of the stamps either way (or a non-finite stamp) is a time jump. Frames were
            # skipped only over time that really passed without samples (a restart: the arrival clock
            # moved as far), never over a clock step of the source (its samples kept arriving)
            longest = max(0.5, 2 * self.config.hop_s)   # of a hiccup in the stamps or in the arrivals
            if not abs(jump) <= longest:
                self._counters["time_jumps"] += 1
                outage = min(jump, (window.t_arrival - last[2]) - expected)
                if np.isfinite(outage) and outage > longest:   # in the units the model's clock counts
                    if self._kind == "mel_db":
                        self._counters["frames_skipped_time"] += int(outage / FRAME_PERIOD_S)
                    else:
                        self._counters["samples_skipped_time"] += int(outage * AUDIO_SFREQ)
                clock.reset()
        last = (n_end, window.t_last, window.t_arrival)
        runtime.predict(window.data, out=output)
        # before the frame clock: the vocoder, the recording and the score never see a broken model's
        # ±1e28 dB (evaluate's run_model guards its frames alike)
        clipped = guard_mel_db(output) if self._kind == "mel_db" else None
        t_inferred = local_clock()
        emission = clock.push(n_end, output)
        if clipped is not None and emission.n_frames:
            # an emitted frame counts when the window column it came from was clipped (with smoothing,
            # the newest window's column: the frame mixes it with older windows' ones)
            columns = np.clip(emission.window_frame, 0, clipped.size - 1)
            n_clipped = int(np.count_nonzero(clipped[columns]))
            if n_clipped and not self._counters["frames_clipped"]:
                log.warning("model output outside %g … %g mel-dB (the EEG or the model is broken): clipped "
                            "to it and counted as frames_clipped", MEL_DB_GUARD_FLOOR, MEL_DB_CEILING)
            self._counters["frames_clipped"] += n_clipped
        self._counters["windows"] += 1
        stamps = {"eeg": window.t_last, "arrival": window.t_arrival, "ready": window.t_ready,
                  "inferred": t_inferred}
        # LSL time of EEG-stream time 0 (stimulus frame k sits at t0 + k * 512 / 22050).
        t0 = window.t_last - (n_end - 1) / sfreq
        self._queue.put((emission, stamps, t0, n_end, window.t_last))
        return last

    def _output_loop(self) -> None:
        sound = self._sound
        while not self._stop.is_set():
            self._pull_markers()
            item = self._queue.get(timeout=0.1)
            sound.silence_while_stalled(self._source.inlet.state if self._source is not None else None)
            if item is None:
                continue
            emission, stamps, t0, n_end, t_last = item
            if self._kind == "mel_db":
                samples, frames, k0 = sound.vocode(emission)
                stamps["vocoded"] = local_clock()
                t_audio = sound.audio_start(t0, k0)
            else:
                k0, samples = emission
                sound.follows(k0, len(samples))
                t_audio = t0 + k0 / AUDIO_SFREQ
                frames = None
                stamps["vocoded"] = stamps["inferred"]
            stamps["audio"] = t_audio
            if len(samples):
                sound.play(sound.listened(samples, t_audio), stamps)
            if frames is not None and frames.shape[1]:
                self._publish(k0, frames, t0, emission.window_frame)
                if self._recorder is not None:
                    self._recorder.append_frames(k0, frames, emission.window_frame, n_end, t_last)
            if self._recorder is not None and len(samples):
                self._recorder.append_audio(samples)
            self.latency.record(stamps)

    def _publish(self, k0: int, frames: np.ndarray, t0: float,
                 window_frame: np.ndarray | None = None) -> None:
        """Send frames to the LSL outlet, the recording, the truth scorer and the snapshot buffer."""
        n = frames.shape[1]
        stamps = t0 + (k0 + np.arange(n)) * FRAME_PERIOD_S
        if self._outlets is not None:
            self._outlets.push_frames(frames, stamps)
        truth = self._truth.update(frames, stamps, window_frame) if self._truth is not None else None
        keep = self._mel.shape[1]
        with self._lock:
            slots = (self._mel_written + np.arange(n)) % keep
            self._mel[:, slots] = frames
            self._truth_mel[:, slots] = np.nan if truth is None else truth
            self._mel_written += n

    def _follow_replay_end(self, meta) -> None:
        """Open a replay's marker stream for its ``replay_end`` alone (a decode without ``--truth``), so
        that its end is let go quietly too (:meth:`_pull_markers`); no marker stream, no word. One that
        comes after the outputs were closed (a stop, a start that failed) is closed at once: kept open,
        it made liblsl print its error line at that replay's end after all."""
        markers = MarkerInlet.open(f"{meta.name}-markers", source_id=_marker_source(meta), timeout=2.0,
                                   quiet=True)
        with self._markers_lock:
            if markers is not None and (self._outputs_closed or self._stop.is_set()):
                markers.close()
            elif markers is not None:
                self._markers = markers

    def _pull_markers(self) -> None:
        markers = self._markers
        if markers is None:
            return
        for text, timestamp in markers.pull():
            if text == REPLAY_END:   # both streams close before the replay's outlets go: no liblsl error
                self._source.inlet.let_go(timestamp)
            if self._truth is not None:
                self._truth.marker(text, timestamp)

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
        if self._started and self.config.realtime:
            gc.unfreeze()        # what start-up froze is collectable again (a process runs many decodes)
        self._started = False

    def _close_outputs(self) -> None:
        """Flush the vocoder's tail, close the sink and the recording: each step also when one before it
        failed, and a failure is the run's error (the first kept), not an exception out of :meth:`stop`.

        A full disk fails a WAV write in the output thread, then again the tail's write and the
        recording's close here. Raised from ``stop``, that second failure hid the run's summary and made
        the demo drop the WAV decoded so far (its temporary file is renamed into place only when the
        decode's block ends cleanly), while the line it printed said that WAV stays readable.
        """
        sound, sink, recorder = self._sound, self._sink, self._recorder
        if sound is not None and sink is not None:
            def flush_tail():
                tail = sound.flush()
                if len(tail) and recorder is not None:
                    recorder.append_audio(tail)
            self._closing("the vocoder's tail", flush_tail)
        if sink is not None:
            self._counters_sink = dict(sink.counters())
            self._sink_note = getattr(sink, "latency_note", None)
            self._closing("the audio output", sink.close)
            self._sink = None
        if recorder is not None:
            self._closing("the recording", recorder.close)
            self._recorder = None
        with self._markers_lock:
            self._outputs_closed = True
            if self._markers is not None:
                self._markers.close()
                self._markers = None
        self._outlets = None

    def _closing(self, what: str, step: Callable[[], object]) -> None:
        """One closing step of :meth:`_close_outputs`; its failure becomes :attr:`error` if none is yet."""
        try:
            step()
        except (EEGMusicError, OSError) as error:
            message = (str(error) if isinstance(error, EEGMusicError)
                       else f"closing {what}: {detail(error)}; free space or choose another output folder")
            log.error("%s", message)
            if self.error is None:
                self.error = message

    def __enter__(self) -> LivePipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while both threads run."""
        return self._started and not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    @property
    def follows_markers(self) -> bool:
        """Whether the stream's marker stream is read (``--truth``; a replay's, for its end, otherwise)."""
        return self._markers is not None

    def health(self) -> StreamHealth | None:
        """The stream stage's :class:`StreamHealth` (None before start)."""
        if self._source is None:
            return None
        if not self._started and self._health_at_stop is not None:
            return self._health_at_stop
        return self._source.health()

    def counters(self) -> dict[str, int]:
        """Windows, drops, gaps, reconnects, underruns and the finer counts behind them."""
        counts = dict(self._counters)
        health = self.health()
        sink = self._sink   # once: stop() may close and clear it from another thread meanwhile
        sink_counts = dict(sink.counters()) if sink is not None else self._counters_sink
        dropped_stream = health.dropped_windows if health is not None else 0
        out = {
            "windows": counts.get("windows", 0),
            "drops": counts.get("drops_decoder", 0) + dropped_stream + self._queue.dropped,
            "gaps": health.gaps if health is not None else 0,
            # the stream's samples the gaps lost (at the stream's rate), and timestamps that went back
            "missing_samples": health.missing_samples if health is not None else 0,
            "non_monotonic": health.non_monotonic if health is not None else 0,
            "reconnects": health.reconnects if health is not None else 0,
            "stalls": health.stalls if health is not None else 0,
            "losses": health.losses if health is not None else 0,
            "bad_markers": self._truth.markers.bad if self._truth is not None else 0,
            "underruns": int(sink_counts.get("underruns", 0)),
            "device_underflows": int(sink_counts.get("device_underflows", 0)),
            "device_restarts": int(sink_counts.get("device_restarts", 0)),
            "callback_realtime": int(sink_counts.get("callback_realtime", 0)),
            "frames": counts.get("frames", 0),
            "frames_skipped": counts.get("frames_skipped", 0) + counts.get("frames_skipped_time", 0),
            # a waveform model's: audio samples never played where windows were dropped (behind a stall;
            # read from its clock, so those of an emission still queued count too) or over an outage
            "samples_skipped": (self._clock.samples_skipped if isinstance(self._clock, SampleClock) else 0)
            + counts.get("samples_skipped_time", 0),
            "flagged_windows": counts.get("flagged_windows", 0),
            "drops_decoder": counts.get("drops_decoder", 0),
            "drops_stream": dropped_stream,
            "drops_output_queue": self._queue.dropped,
            "windows_coalesced": counts.get("windows_coalesced", 0)
            + (health.coalesced_windows if health is not None else 0),
            "windows_caught_up": counts.get("windows_caught_up", 0),
            "vocoder_resets": counts.get("vocoder_resets", 0),
            "frames_clipped": counts.get("frames_clipped", 0),
            # played as silence (decoder.vocoder); not scored either (truth skipped_frames)
            "nonfinite_frames": self._vocoder.nonfinite_frames if self._vocoder is not None else 0,
            "time_jumps": counts.get("time_jumps", 0),
            "audio_written": int(sink_counts.get("written", 0)),
            "audio_dropped": int(sink_counts.get("dropped", 0)),
            "audio_sanitised": int(sink_counts.get("sanitised", 0)),
            # a sound device's: samples whose level the peak limiter reduced (decoder.limiter)
            "audio_limited": int(sink_counts.get("limited_samples", 0)),
            "audio_dropped_late": counts.get("audio_dropped_late", 0),
            "audio_padded": counts.get("audio_padded", 0),
            "audio_silence_gaps": counts.get("audio_silence_gaps", 0),
            "audio_silence": counts.get("audio_silence", 0),
            # --listen true|both: samples the true stimulus was not found for (no marker yet, a song not
            # loaded) and silence took its place
            "listen_true_missing": counts.get("listen_true_missing", 0),
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
            frame_index = self._sound.last_k if self._sound is not None else None
        dynamic_r, shifted_r = self._truth.recent_scores() if self._truth is not None else (None, None)
        return PipelineSnapshot(
            eeg=eeg, eeg_sfreq=self._runtime.info.sfreq if self._runtime is not None else MODEL_SFREQ,
            labels=labels, channel_flags=flags, mel=mel,
            truth_mel=truth_mel, dynamic_r=dynamic_r, shifted_dynamic_r=shifted_r,
            latency_ms=self.latency.percentiles(), counters=self.counters(), health=health,
            running=self.running, error=self.error or (health.error if health is not None else None),
            frame_index=frame_index,
            model=self._runtime.info.model_name if self._runtime is not None else "")

    def summary(self) -> dict:
        """JSON-ready summary: counters, latency per stage, dynamic r, model and device."""
        health = self.health()
        run = self._truth.whole_run() if self._truth is not None else None   # every figure at one moment
        recent, recent_shifted = self._truth.recent_scores() if self._truth is not None else (None, None)
        out = {
            "stream": self.stream_label,
            "model": str(self.config.model_path),
            "provider": self._runtime.provider if self._runtime is not None else None,
            "output_kind": self._kind or None,   # mel_db or audio (a waveform model); None before start
            "seconds": round(time.monotonic() - self._t_start, 3) if self._t_start else 0.0,
            "counters": self.counters(),
            "latency_ms": self.latency.percentiles(),
            "dynamic_r": recent,
            # the live figure's control, on its frames (the whole run's is SHIFTED_KEY)
            RECENT_SHIFTED_KEY: recent_shifted,
            "dynamic_r_total": run["dynamic_r_total"] if run is not None else None,
            "baseline_dynamic_r_total": run["baseline_dynamic_r_total"] if run is not None else None,
            "baseline_constant": run["baseline_constant"] if run is not None else [],
            SHIFTED_KEY: run[SHIFTED_KEY] if run is not None else None,
            # the same figures song by song (a playlist's trained song keeps its song mean beside a new one)
            "scores_by_song": {} if run is None else {
                str(song): scores for song, scores in run["scores_by_song"].items()},
            # what the scores read: the truth song, how many frames, and the live figure's window
            "truth": None if run is None else {
                "song": self._truth.song, "scored_frames": run["scored_frames"],
                "skipped_frames": self._truth.skipped_frames,
                "song_identity": "unchecked" if self._truth.song_identity_unchecked() else "checked",
                # scored songs of trained music, and the split that trained on them: said beside the scores
                "trained_music": self._truth.trained_music(),
                "training_split": self._training_split(),
                "dynamic_r_window_s": round(self._truth.recent * FRAME_PERIOD_S, 2)},
            "error": self.error or (health.error if health is not None else None),
            "effective_rate": health.effective_rate if health is not None else None,
            "interpolated_channels": list(health.interpolated_channels) if health is not None else [],
            # channels without a measurement for over a second at a stretch: label -> seconds bad in all
            "bad_channels": {} if health is None else {label: round(seconds, 2) for label, seconds
                                                        in health.bad_channel_seconds.items()},
            "stream_health": None if health is None else {
                "state": health.state, "state_s": round(health.state_s, 3), "stalls": health.stalls,
                "stalled_s": round(health.stalled_s, 3), "losses": health.losses,
                "lost_s": round(health.lost_s, 3), "reconnects": health.reconnects,
                "transitions": [[round(t, 3), state] for t, state in self._source.inlet.transitions()],
            },
        }
        out["scheduling"] = dict(self.scheduling)   # the audio callback's: counters' callback_realtime
        # a device that refused the latency asked for, or was reopened at its default after it stopped
        sink = self._sink   # once, as in counters()
        out["audio_device_note"] = self._sink_note if sink is None else getattr(sink, "latency_note", None)
        out["latency_estimated_stages"] = list(ESTIMATED_STAGES)   # not measured: `eegmusic bench latency`
        if self._sound is not None and (sink is not None and sink.plays_live or self._sound.playback.padded):
            out["playback_cushion_ms"] = round(self._sound.playback.target_s * 1e3, 2)
        if self._vocoder is not None:
            out["vocoder_latency_ms"] = round(self._vocoder.latency_frames * FRAME_PERIOD_S * 1e3, 2)
            out["vocoder"] = {"method": self.config.vocoder_method, "lookahead": self._vocoder.lookahead}
        if self._clock is not None:
            out["smoothing_latency_ms"] = round(self._clock.added_latency_s * 1e3, 2)
        return out
