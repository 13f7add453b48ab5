"""End-to-end latency, measured: an EEG event at a known LSL time, found in the sound server's output.

What is measured
    :class:`~benchmarks.latency_probe.EventStream` pushes 125-channel EEG in real time with 0.2-s
    events on E1. The live decoder (:class:`decoder.pipeline.LivePipeline`, its defaults unless
    told) decodes the stream with the fixture model :func:`~benchmarks.latency_probe.event_model`,
    whose frames are loud while E1 is 1. The sound goes through sounddevice into a PulseAudio null
    sink whose monitor ``parec`` records (:mod:`benchmarks.pulse_monitor`, which also states how the
    recording is put on the LSL clock and calibrated). The latency of an event is the LSL time of
    its first audible sample (the recording's envelope crosses 10 % of the burst's plateau) minus
    the LSL time of its first EEG sample: EEG sample -> audible sample.

The decoder's own figure (``arrival_to_dac``: queue + the latency PortAudio reports) is printed
beside the measurement as ``estimate``.

Run: ``eegmusic bench latency`` (or ``eegmusic bench --only bench_latency``); ``--quick`` for short
runs. Needs PulseAudio (``pulseaudio``, ``pactl``, ``parec``). The test
``tests/decoder/test_latency_e2e.py`` runs the same harness for a few seconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import numpy as np
from eegmusic.benchmarks.latency_probe import EventStream, event_model
from eegmusic.benchmarks.pulse_monitor import (
    MonitorRecorder,
    find_onsets,
    loopback_calibration,
    null_sink,
    percentiles_ms,
)

log = logging.getLogger(__name__)

SETTLE_S = 2.0
"""Seconds between the decoder's start and the first event."""


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
