"""End-to-end latency, measured: an EEG event at a known LSL time, found in the sound server's output.

What is measured
    A thread pushes 125-channel EEG at 125 Hz on a real LSL outlet, one sample at a time at its
    own timestamp ``t0 + n / 125``. Channel E1 carries events: 0.2 s at 1.0, else 0. The live
    decoder (:class:`decoder.pipeline.LivePipeline`, its defaults unless told) decodes the stream
    with a fixture model (:func:`event_model`) whose mel frame ``j`` is loud (-10 dB) when E1 at
    the frame's time in the window is 1 and silent (-80 dB) otherwise. The sound goes through
    sounddevice into a PulseAudio null sink whose monitor ``parec`` records. The latency of an
    event is the LSL time of its first audible sample (the recording's envelope crosses 10 % of
    the burst's plateau) minus the LSL time of its first EEG sample: EEG sample -> audible sample.

How the recording is put on the LSL clock, and that clock's error
    The reader thread stamps every block ``parec`` delivers with ``pylsl.local_clock()``. A block
    ending at recorded sample ``n`` and read at ``t`` was captured at ``t - n / 22050 + d`` with a
    delivery delay ``d >= 0``; the smallest ``t - n / 22050`` over the recording is taken as the
    clock offset (a lower envelope: it errs late by the smallest delivery delay seen). The
    loopback calibration (:func:`loopback_calibration`) plays clicks through the same device from
    a PortAudio callback that knows, on the LSL clock, when PortAudio expects each click at the
    DAC, and finds them in the same kind of recording: its residual (found - expected) is the
    measurement's error against PortAudio's own timing, reported as median and p5..p95 beside the
    latencies (not subtracted: PortAudio's DAC time is an estimate too).

The decoder's own figure (``arrival_to_dac``: queue + the latency PortAudio reports) is printed
beside the measurement as ``estimate``.

Run: ``eegmusic bench latency`` (or ``eegmusic bench --only bench_latency``); ``--quick`` for short
runs. Needs PulseAudio (``pulseaudio``, ``pactl``, ``parec``). The test
``tests/decoder/test_latency_e2e.py`` runs the same harness for a few seconds.

Above 500 lines because the harness (fixture model, event stream, clock-stamped recorder, onset
finder, calibration, null sink) has no other user; it moves to its own module when one appears.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

RATE = 22050
EEG_SFREQ = 125.0
EVENT_S = 0.2
"""Length of an EEG event (E1 at 1.0), seconds."""

LOUD_DB, QUIET_DB = -10.0, -80.0
SETTLE_S = 2.0
"""Seconds between the decoder's start and the first event."""

CLOCK_WINDOW_S = 1.0
"""Blocks of the recording over which the clock's lower envelope is taken, seconds ahead."""

ONSET_FRACTION = 0.1
"""An onset is where the envelope first reaches this fraction of the burst's plateau (-20 dB)."""


# ---------------------------------------------------------------------------------------------------
# The fixture model


def event_model(path: str | Path) -> Path:
    """Write an ONNX model whose mel frame j is loud exactly when E1 is 1 at frame j's time.

    Frame ``j`` of a 1-s window sits at ``512 j / 22050`` s after the window's first sample
    (docs/design.md, frame clock); the model reads E1 at the nearest EEG sample of that time,
    ``round(512 j / 22050 * 125)`` (clipped to 124), and outputs ``-80 + 70 * clip(E1, 0, 1)`` dB in
    every band: a silent frame for 0, a loud flat-spectrum frame for 1.

    Returns
    -------
    Path
        ``path``.
    """
    import json

    import onnx
    from eegmusic.decoder.melspec import mel_spec_dict
    from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec
    from onnx import TensorProto, helper, numpy_helper

    n_chans, n_times, n_frames = len(MODEL_CHANNELS), 125, 44
    index = np.minimum(np.rint(np.arange(n_frames) * 512 / RATE * EEG_SFREQ), n_times - 1).astype(np.int64)
    nodes = [
        helper.make_node("Gather", ["eeg", "channel"], ["e1"], axis=1),           # [B, 1, T]
        helper.make_node("Gather", ["e1", "frame_sample"], ["at_frames"], axis=2),  # [B, 1, 44]
        helper.make_node("Clip", ["at_frames", "zero", "one"], ["on"]),
        helper.make_node("Mul", ["on", "span_db"], ["scaled"]),
        helper.make_node("Add", ["scaled", "floor_db"], ["mel_db"]),                # [B, 128, 44]
    ]
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "channel"),
        numpy_helper.from_array(index, "frame_sample"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(LOUD_DB - QUIET_DB, np.float32), "span_db"),
        numpy_helper.from_array(np.full((1, 128, 1), QUIET_DB, np.float32), "floor_db"),
    ]
    eeg = helper.make_tensor_value_info("eeg", TensorProto.FLOAT, ["batch", n_chans, n_times])
    out = helper.make_tensor_value_info("mel_db", TensorProto.FLOAT, ["batch", 128, n_frames])
    model = helper.make_model(helper.make_graph(nodes, "eegmusic_event", [eeg], [out], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = PreprocessingSpec(sfreq=EEG_SFREQ, channels=tuple(MODEL_CHANNELS)).to_dict()
    meta = {
        "format_version": 1,
        "model": {"name": "latency-event-fixture", "config": {}},
        "input": {"name": "eeg", "channels": list(MODEL_CHANNELS), "sfreq": EEG_SFREQ,
                  "window_samples": n_times, "subject_input": False, "subjects": []},
        "preprocessing": spec,
        "output": {"name": "mel_db", "kind": "mel_db", "n_mels": 128, "n_frames": n_frames},
        "mel": mel_spec_dict(),
        "target_offset_s": 0.0,
        "audio_lag_s": 0.0,
        "training": {"data": "none: a fixture that turns E1 events into sound", "songs": [], "subjects": [],
                     "split": "block", "seed": 0, "epochs": 0, "created": "2026-12-01T00:00:00Z"},
        "evaluation": {},
    }
    helper.set_model_props(model, {"eegmusic": json.dumps(meta)})
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


# ---------------------------------------------------------------------------------------------------
# The live EEG with events


class EventStream:
    """Push model-montage EEG in real time with events on E1, each sample at its own timestamp.

    Parameters
    ----------
    name : str
        LSL stream name (source_id the same).
    event_period_s : float
        Seconds between event onsets, from :meth:`begin_events` on (quiet EEG until then).
    shift_samples : int
        Push every *odd* event this many samples later than its stated time (the others on time):
        the measured latency of those must grow by ``shift_samples / 125`` s.
    """

    def __init__(self, name: str, *, event_period_s: float = 0.8, shift_samples: int = 0):
        import pylsl
        from eegmusic.stream.outlet import eeg_stream_info
        from eegmusic.stream.spec import MODEL_CHANNELS

        self.name = name
        self.event_period_s = float(event_period_s)
        self._first_event: int | None = None
        self.shift_samples = int(shift_samples)
        self._outlet = pylsl.StreamOutlet(eeg_stream_info(name, MODEL_CHANNELS, EEG_SFREQ, name),
                                          chunk_size=1, max_buffered=10)
        self._n_chans = len(MODEL_CHANNELS)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0: float | None = None
        self.events: list[tuple[float, int]] = []
        """(stated LSL time of the event's first sample, samples it was pushed late by)."""

    def begin_events(self, delay_s: float) -> None:
        """Start events ``delay_s`` seconds from now (the decoder and the sound server are ready)."""
        import pylsl

        self._first_event = int(np.ceil((pylsl.local_clock() + delay_s - self.t0) * EEG_SFREQ))

    def start(self) -> EventStream:
        import pylsl

        self.t0 = pylsl.local_clock() + 0.05
        self._thread = threading.Thread(target=self._run, name="latency-eeg", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import pylsl

        period = int(round(self.event_period_s * EEG_SFREQ))
        width = int(round(EVENT_S * EEG_SFREQ))
        sample = np.zeros(self._n_chans, np.float32)
        n = 0
        while not self._stop.is_set():
            stamp = self.t0 + n / EEG_SFREQ
            delay = stamp - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            first = self._first_event
            k, phase = divmod(n - first, period) if first is not None and n >= first else (-1, 0)
            shift = self.shift_samples if k % 2 == 1 else 0
            if k >= 0 and phase == 0:
                self.events.append((self.t0 + n / EEG_SFREQ, shift))
            sample[0] = 1.0 if k >= 0 and shift <= phase < shift + width else 0.0
            self._outlet.push_sample(sample, stamp)
            n += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._outlet = None


# ---------------------------------------------------------------------------------------------------
# The sound server's monitor, on the LSL clock


@dataclass
class MonitorRecording:
    """What :class:`MonitorRecorder` captured: samples and their LSL times.

    ``offset`` is the LSL time of recorded sample 0 when the recording ran without a break; a
    sound server that suspends an idle sink delivers nothing meanwhile, so each block carries its
    own offset (``block_end``, ``block_offset``) and :meth:`lsl_time` uses the block a sample is in.
    """

    audio: np.ndarray
    offset: float
    arrival_lateness_ms: dict = field(default_factory=dict)
    """p50/p95 of how much later than the envelope blocks arrived (the reader's jitter), ms."""
    block_end: np.ndarray | None = None
    """Recorded sample index one past each block, shape (n_blocks,)."""
    block_offset: np.ndarray | None = None
    """LSL time of sample 0 by each block's clock, shape (n_blocks,)."""

    def lsl_time(self, sample: np.ndarray | float) -> np.ndarray | float:
        """LSL time of recorded sample index ``sample``."""
        sample = np.asarray(sample)
        if self.block_end is None:
            return self.offset + sample / RATE
        block = np.minimum(np.searchsorted(self.block_end, sample, side="right"), len(self.block_end) - 1)
        return self.block_offset[block] + sample / RATE

    def sample_at(self, lsl_time: float) -> int:
        """Recorded sample index at LSL time ``lsl_time`` (by the block clock there)."""
        if self.block_end is None:
            return int(round((lsl_time - self.offset) * RATE))
        starts = np.concatenate([[0], self.block_end[:-1]])
        block_times = self.block_offset + starts / RATE
        block = max(int(np.searchsorted(block_times, lsl_time, side="right")) - 1, 0)
        return int(round((lsl_time - self.block_offset[block]) * RATE))


class MonitorRecorder:
    """Record a PulseAudio source (a sink's ``.monitor``) with ``parec``, stamping each block read.

    ``parec`` runs with a 5-ms fragment and without any ``PULSE_LATENCY_MSEC`` (which would enlarge
    its blocks and so the clock's error).
    """

    def __init__(self, source: str):
        env = {k: v for k, v in os.environ.items() if k != "PULSE_LATENCY_MSEC"}
        self._process = subprocess.Popen(
            ["parec", f"--device={source}", "--format=float32le", f"--rate={RATE}", "--channels=1",
             "--latency-msec=5"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self._blocks: list[bytes] = []
        self._stamps: list[tuple[float, int]] = []
        self._thread = threading.Thread(target=self._read, name="latency-parec", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while sum(n for _, n in self._stamps[-1:]) < 0.1 * RATE and time.monotonic() < deadline:
            time.sleep(0.01)

    def _read(self) -> None:
        import pylsl

        n = 0
        partial = b""
        while True:
            chunk = self._process.stdout.read1(65536)
            if not chunk:
                return
            t = pylsl.local_clock()
            partial += chunk
            usable = len(partial) // 4 * 4
            self._blocks.append(partial[:usable])
            partial = partial[usable:]
            n += usable // 4
            self._stamps.append((t, n))

    def stop(self) -> MonitorRecording:
        """Stop recording; return the samples and their LSL clock."""
        self._process.terminate()
        self._thread.join(timeout=10.0)
        self._process.wait(timeout=10.0)
        self._process.stdout.close()
        audio = np.frombuffer(b"".join(self._blocks), dtype="<f4").astype(np.float32)
        stamps = np.array(self._stamps, dtype=np.float64).reshape(-1, 2)
        if len(stamps) == 0:
            raise RuntimeError("parec recorded nothing; is the PulseAudio sink's monitor there?")
        starts = stamps[:, 0] - stamps[:, 1] / RATE
        # A block's delivery delay is >= 0, so the clock is the lower envelope of block arrivals;
        # forward-looking (blocks up to CLOCK_WINDOW_S later), as a suspended sink only ever jumps
        # the offset up, and only blocks after the jump may define it there.
        window = max(1, int(np.searchsorted(stamps[:, 0], stamps[0, 0] + CLOCK_WINDOW_S)))
        from scipy.ndimage import minimum_filter1d

        padded = np.concatenate([starts, np.full(window, np.inf)])
        block_offset = minimum_filter1d(padded, size=window, origin=-(window // 2))[:len(starts)]
        late = (starts - block_offset) * 1e3
        return MonitorRecording(audio, float(block_offset[0]),
                                {"p50": round(float(np.percentile(late, 50)), 2),
                                 "p95": round(float(np.percentile(late, 95)), 2),
                                 "clock_jumps": int(np.sum(np.diff(block_offset) > 0.02))},
                                block_end=stamps[:, 1].astype(np.int64), block_offset=block_offset)


def find_onsets(recording: MonitorRecording, expected: np.ndarray, *, search_s: float = 0.6,
                quiet_s: float = 0.05) -> np.ndarray:
    """LSL time of the first audible sample after each expected time (NaN where none is found).

    A burst's peak is the largest ``|sample|`` in the search span; its onset is the first sample
    whose magnitude reaches :data:`ONSET_FRACTION` of that, in ``[t, t + search_s]``, preceded by
    ``quiet_s`` below it (so the tail of an earlier burst is not taken for an onset).

    Parameters
    ----------
    recording : MonitorRecording
    expected : ndarray, shape (n_events,)
        LSL times to search after (the events' EEG times).

    Returns
    -------
    ndarray, shape (n_events,)
    """
    env = np.abs(recording.audio)
    onsets = np.full(len(expected), np.nan)
    for i, t in enumerate(expected):
        a = recording.sample_at(t)
        b = a + int(search_s * RATE)
        if a < 0 or b > len(env):
            continue
        window = env[a:b]
        peak = float(window.max())
        if peak < 1e-3:                                  # nothing loud: not found
            continue
        threshold = ONSET_FRACTION * peak
        above = np.flatnonzero(window >= threshold)
        quiet = int(quiet_s * RATE)
        for j in above:
            if j >= quiet and np.all(window[j - quiet:j] < threshold):
                onsets[i] = recording.lsl_time(a + j)
                break
    return onsets


def percentiles_ms(latency_s: np.ndarray) -> dict:
    """p50/p95/p99 (ms) and count of the finite values."""
    values = latency_s[np.isfinite(latency_s)] * 1e3
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1),
            "n": int(values.size)}


# ---------------------------------------------------------------------------------------------------
# Calibration: clicks whose DAC time PortAudio states, found in the same kind of recording


def loopback_calibration(monitor: str, *, n_clicks: int = 12, period_s: float = 0.25,
                         device: str | int | None = None) -> dict:
    """Play clicks from a PortAudio callback and find them in the monitor recording.

    The callback writes a click at the start of its block and notes PortAudio's DAC time for that
    block, moved onto the LSL clock (``local_clock() + outputBufferDacTime - currentTime``). The
    stream is opened like the decoder's sink (:class:`decoder.audio.SoundDeviceSink` defaults:
    ``latency="low"``, 256-sample blocks).

    Returns
    -------
    dict
        ``residual_ms`` (found - PortAudio's DAC time: p5, p50, p95), ``found`` clicks of
        ``n_clicks``, the recording's ``arrival_lateness_ms`` and PortAudio's ``dac_latency_ms``.
    """
    import pylsl
    import sounddevice as sd
    from eegmusic.decoder.audio import resolve_output_device


    clicks: list[float] = []
    dac: list[float] = []
    state = {"due": None}

    def callback(outdata, frames, time_info, status):
        outdata[:] = 0.0
        now = pylsl.local_clock()
        dac.append(time_info.outputBufferDacTime - time_info.currentTime)
        if state["due"] is not None and now >= state["due"]:
            outdata[:32, 0] = 0.8
            clicks.append(now + time_info.outputBufferDacTime - time_info.currentTime)
            state["due"] = None

    recorder = MonitorRecorder(monitor)
    stream = sd.OutputStream(device=resolve_output_device(device), samplerate=RATE, blocksize=256, channels=1,
                             dtype="float32", latency="low", callback=callback)
    stream.start()
    try:
        time.sleep(1.0)                                   # PulseAudio settles a new stream
        for _ in range(n_clicks):
            state["due"] = pylsl.local_clock()
            time.sleep(period_s)
        time.sleep(0.3)
    finally:
        stream.abort()                                    # as SoundDeviceSink.close: never a hanging stop
        stream.close()
        recording = recorder.stop()
    found = find_onsets(recording, np.asarray(clicks) - 0.1, search_s=0.3, quiet_s=0.02)
    residual = (found - np.asarray(clicks)) * 1e3
    ok = residual[np.isfinite(residual)]
    return {
        "found": int(ok.size), "clicks": len(clicks), "clicks_asked": n_clicks,
        "residual_ms": ({"p5": round(float(np.percentile(ok, 5)), 2), "p50": round(float(np.median(ok)), 2),
                         "p95": round(float(np.percentile(ok, 95)), 2)} if ok.size else None),
        "arrival_lateness_ms": recording.arrival_lateness_ms,
        "dac_latency_ms": round(float(np.median(dac)) * 1e3, 2) if dac else None,
    }


# ---------------------------------------------------------------------------------------------------
# One measurement


def measure(model: str | Path, monitor: str, *, hop_s: float | None = None, seconds: float = 20.0,
            event_period_s: float = 0.8, shift_samples: int = 0,
            audio_device: str | int | None = None, vocoder: str | None = None) -> dict:
    """Decode a live event stream into the default sound device and measure every event's latency.

    Parameters
    ----------
    model : str or Path
        :func:`event_model`'s file.
    monitor : str
        PulseAudio source recording what the device plays (``<sink>.monitor``).
    hop_s : float or None
        Decoder hop (None: the decoder's default).
    seconds : float
        Seconds of events.
    shift_samples : int
        See :class:`EventStream`.
    vocoder : str or None
        A registered vocoder (None: the decoder's default).

    Returns
    -------
    dict
        ``latency_ms`` (p50/p95/p99/n of the measured EEG-sample -> audible-sample latencies),
        ``latencies_s`` (per event, NaN if not found), ``shifts`` (samples each event was pushed
        late), ``events``, ``found``, ``estimate_ms`` (the decoder's own ``arrival_to_dac``),
        ``underruns``, ``drops``, ``hop_s`` and the recording's ``arrival_lateness_ms``.
    """
    from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig

    name = f"eegmusic-latency-{uuid.uuid4().hex[:8]}"
    stream = EventStream(name, event_period_s=event_period_s, shift_samples=shift_samples).start()
    recorder = MonitorRecorder(monitor)
    options = {} if hop_s is None else {"hop_s": hop_s}
    if vocoder is not None:
        options["vocoder_method"] = vocoder
    config = PipelineConfig(stream_name=name, model_path=str(model), device="cpu", lsl_out=False,
                            audio_device=audio_device, resolve_timeout_s=10.0, **options)
    try:
        with LivePipeline(config) as pipeline:
            stream.begin_events(SETTLE_S)       # PulseAudio takes about a second to start a new stream
            time.sleep(SETTLE_S + seconds)
            summary = pipeline.summary()
    finally:
        stream.stop()
        recording = recorder.stop()
    # events whose burst had time to be heard before the decoder stopped
    last = max((t for t, _ in stream.events), default=0.0) - 0.6
    times = np.array([t for t, _ in stream.events if t <= last])
    shifts = np.array([s for t, s in stream.events if t <= last])
    onsets = find_onsets(recording, times)
    latency = onsets - times
    counters = summary["counters"]
    return {
        "hop_s": round(config.hop_s, 5),
        "latency_ms": percentiles_ms(latency),
        "latencies_s": latency.tolist(), "shifts": shifts.tolist(),
        "events": int(len(times)), "found": int(np.isfinite(latency).sum()),
        "estimate_ms": {k: summary["latency_ms"]["arrival_to_dac"][k] for k in ("p50", "p95", "p99")},
        "underruns": counters["underruns"], "drops": counters["drops"],
        "audio_padded": counters.get("audio_padded", 0), "audio_dropped_late": counters["audio_dropped_late"],
        "arrival_lateness_ms": recording.arrival_lateness_ms,
        "vocoder_latency_ms": summary.get("vocoder_latency_ms"),
        "playback_cushion_ms": summary.get("playback_cushion_ms"),
    }


# ---------------------------------------------------------------------------------------------------
# A PulseAudio null sink for the bench (tests use tests/fixtures/pulse.py)


@contextlib.contextmanager
def null_sink():
    """Load a PulseAudio null sink, make it this process's output; yield its monitor's name."""
    for tool in ("pulseaudio", "pactl", "parec"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: apt-get install pulseaudio pulseaudio-utils")
    if subprocess.run(["pactl", "info"], capture_output=True).returncode != 0:
        subprocess.run(["pulseaudio", "--start", "--exit-idle-time=-1"], capture_output=True, timeout=30)
        for _ in range(50):
            if subprocess.run(["pactl", "info"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
    name = f"eegmusic_bench_{uuid.uuid4().hex[:8]}"
    module = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}", f"rate={RATE}",
                             "channels=1", "format=float32le"], capture_output=True, text=True,
                            check=True).stdout.strip()
    previous = os.environ.get("PULSE_SINK")
    os.environ["PULSE_SINK"] = name
    try:
        from eegmusic.decoder.audio import refresh_devices

        refresh_devices()
        yield f"{name}.monitor"
    finally:
        if previous is None:
            os.environ.pop("PULSE_SINK", None)
        else:
            os.environ["PULSE_SINK"] = previous
        subprocess.run(["pactl", "unload-module", module], capture_output=True)


def run(quick: bool) -> dict:
    """Measured latency at the default and the lowest hop, beside the decoder's estimate."""
    import tempfile

    from eegmusic.decoder.frameclock import DEFAULT_HOP_FRAMES
    from eegmusic.decoder.melspec import FRAME_PERIOD_S

    seconds = 12.0 if quick else 60.0
    hops = {"lowest": 1, "default": DEFAULT_HOP_FRAMES, "4 frames": 4}
    if quick:
        hops.pop("4 frames")
    with tempfile.TemporaryDirectory() as folder, null_sink() as monitor:
        model = event_model(Path(folder) / "event.onnx")
        calibration = loopback_calibration(monitor)
        results = {}
        for label, frames in hops.items():
            result = measure(model, monitor, hop_s=frames * FRAME_PERIOD_S, seconds=seconds)
            result.pop("latencies_s")
            result.pop("shifts")
            results[f"{label} ({frames} frames, {frames * FRAME_PERIOD_S * 1e3:.1f} ms)"] = result
            log.info("hop %d frames: measured %s, estimate %s", frames, result["latency_ms"],
                     result["estimate_ms"])
    default = next(v for k, v in results.items() if k.startswith("default ("))
    return {
        "measured": results,
        "calibration": calibration,
        "goals": {"p50_ms <= 120": default["latency_ms"]["p50"] is not None
                  and default["latency_ms"]["p50"] <= 120,
                  "p99_ms <= 160": default["latency_ms"]["p99"] is not None
                  and default["latency_ms"]["p99"] <= 160,
                  "underruns == 0": default["underruns"] == 0},
        "method": "EEG-sample -> audible-sample through PulseAudio (null sink monitor via parec); "
                  "estimate = decoder's arrival_to_dac (queue + PortAudio's reported latency)",
        "seconds_per_hop": seconds,
    }
