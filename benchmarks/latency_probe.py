"""The latency probe: an EEG stream carrying events, and a fixture model that turns each event into sound.

- :class:`EventStream` pushes 125-channel EEG at 125 Hz on a real LSL outlet, one sample at a time at
  its own timestamp ``t0 + n / 125``. Channel E1 carries events: 0.2 s at 1.0, else 0.
- :func:`event_model` writes an ONNX model whose mel frame ``j`` is loud (-10 dB) when E1 at the
  frame's time in the window is 1 and silent (-80 dB) otherwise.

Used by ``benchmarks/bench_latency.py`` (``eegmusic bench latency``) and
``tests/decoder/test_latency_e2e.py``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

RATE = 22050
EEG_SFREQ = 125.0
EVENT_S = 0.2
"""Length of an EEG event (E1 at 1.0), seconds."""

LOUD_DB, QUIET_DB = -10.0, -80.0


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


def stimulus_onset_delay_s(hop_frames: int, vocoder: str | None = None, *, n_events: int = 40,
                           onset_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """How far after an EEG event its sound starts, in stimulus time, computed offline.

    The part of the measured latency that no clock sees: an event falls somewhere between the frames
    (the fixture model reads E1 at each frame's nearest EEG sample), and a burst of loud frames is
    audible before its first frame's time (the synthesis window rises over the 1024 samples before
    a frame's centre). Both are the same whatever the machine, so they are computed here by running
    the fixture model's arithmetic, the live :class:`decoder.frameclock.FrameClock` on the
    windower's hop grid as the live decoder aligns it (``grid_offset`` 0 for this lag-0 model) and
    the streaming vocoder on EEG with events at many phases; the onset is
    found by the same rule as the live measurement (``onset_fraction`` of the burst's peak).

    Parameters
    ----------
    hop_frames : int
        Decoder hop in mel frames.
    vocoder : str or None
        A registered vocoder (None: the default).
    n_events : int
        Events, at random phases to the frame grid.

    Returns
    -------
    ndarray, shape (n_events,)
        Stimulus time of each event's audible onset minus the event's time, seconds (negative: the
        sound starts before the event's time on the stimulus axis).
    """
    from eegmusic.decoder.frameclock import FrameClock
    from eegmusic.decoder.melspec import FRAME_PERIOD_S, HOP_LENGTH
    from eegmusic.decoder.vocoder import StreamingVocoder

    rng = np.random.default_rng(seed)
    window, period = 125, int(round(0.8 * EEG_SFREQ))
    width = int(round(EVENT_S * EEG_SFREQ))
    onsets = 2 * window + period * np.arange(n_events) + rng.integers(0, 8, n_events)
    e1 = np.zeros(int(onsets[-1] + 2 * period), np.float32)
    for n in onsets:
        e1[n:n + width] = 1.0
    index = np.minimum(np.rint(np.arange(44) * HOP_LENGTH / RATE * EEG_SFREQ), window - 1).astype(int)
    clock = FrameClock(initial_frames=hop_frames)
    vocoder_ = StreamingVocoder() if vocoder is None else StreamingVocoder(vocoder)
    hop_samples = hop_frames * FRAME_PERIOD_S * EEG_SFREQ
    chunks, first_k = [], None
    for k in range(int((len(e1) - window) / hop_samples)):
        n_end = window + int(np.ceil(k * hop_samples - 1e-9))   # the live windower's grid (on the frames)
        on = np.clip(e1[n_end - window + index], 0.0, 1.0)
        emission = clock.push(n_end, np.repeat(QUIET_DB + (LOUD_DB - QUIET_DB) * on[None, :], 128, axis=0))
        if first_k is None and emission.n_frames:
            first_k = emission.k0
        chunks += [vocoder_.process(emission.frames[:, i]) for i in range(emission.n_frames)]
    audio = np.abs(np.concatenate(chunks))
    start = (first_k - vocoder_.latency_frames) * HOP_LENGTH         # stimulus sample of audio[0]
    delays = np.full(n_events, np.nan)
    quiet = int(0.05 * RATE)
    for i, n in enumerate(onsets):
        t_event = n / EEG_SFREQ
        a = int(round((t_event - 0.2) * RATE)) - start
        span = audio[max(a, 0):a + int(0.6 * RATE)]
        above = np.flatnonzero(span >= onset_fraction * span.max())
        found = [j for j in above if j >= quiet and np.all(span[j - quiet:j] < onset_fraction * span.max())]
        if found:
            delays[i] = (start + max(a, 0) + found[0]) / RATE - t_event
    return delays
