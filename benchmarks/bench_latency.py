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
runs; ``eegmusic bench latency --duration 600`` for the 10-minute underrun run at the default hop.
Needs PulseAudio (``pulseaudio``, ``pactl``, ``parec``). The test
``tests/decoder/test_latency_e2e.py`` runs the same harness for a few seconds.

Measured this round (2-core machine shared with three training runs, real-time scheduling on):
60 s per hop at load 9.2, default hop 1 frame p50/p95/p99 117.3/138.8/156.5 ms (2 underruns, 12
device underflows, 1 dropped window), 2 frames 127.9/188.5/206.9, 4 frames 176.4/241.5/297.7. On
the quiet machine, 10 minutes at the default hop (load 0.5 -> 0.3): 102.4/119.9/134.7 ms, 750/750
events, 0 underruns, 0 device underflows, 0 dropped windows, 0 machine stalls of 20 ms or more; the
same with two nice-19 spin loops keeping both CPUs busy: 99.6/111.9/114.7 ms, 0 underruns. With the
baseline measured in the same run (:data:`BASELINE`; stop 59, ``--quick``, quiet machine): default hop
p50/p99 100.6/150.4 ms against the baseline's 207.7/247.9 ms, 0.48× / 0.61×.

Machine stalls
    A run also watches every CPU for stalls of the machine itself
    (:mod:`benchmarks.machine_stalls`) and reports how many underruns fell inside one: 60 s while
    two training jobs ran at nice 19 (load 3.5) gave 4 underruns, all 4 inside the 26 stalls of
    20 ms or more (longest 67 ms) that a SCHED_FIFO watcher above every decoder thread saw.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import numpy as np
from eegmusic.benchmarks.latency_probe import EventStream, event_model, stimulus_onset_delay_s
from eegmusic.benchmarks.machine_stalls import StallWatch, underruns_in_stalls
from eegmusic.benchmarks.machine_stalls import summary as stall_summary
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

BASELINE = {"hop_frames": 4, "vocoder": "rtpghi", "device_latency": "high", "realtime": False}
"""The same-run baseline: the decoder as it was set before issue 15, as far as today's options reach — a hop
of 4 frames (92.9 ms; it was 0.1 s, not a whole number of frames), the ``rtpghi`` vocoder, PortAudio's
"high" suggested latency and no real-time threads. The fixed 0.15-0.25-s output queue it also had is gone
(the queue now follows the measured jitter in every configuration), so this baseline is, if anything,
faster than the pipeline it stands for (which an issue measured at p50 377 ms by its own estimate)."""

BASELINE_MAX_S = 60.0
"""Seconds the baseline decodes at most: a ``--duration`` soak compares its default hop with a minute."""

RUN_OPTIONS = ("duration_s",)
"""Options ``eegmusic bench`` passes to :func:`run` when given (``--duration``)."""

PARTS = (
    ("event_to_onset", "where the event falls between frames, and the burst's rise (offline)"),
    ("hop_wait", "the hop's first new frame waiting for the rest of the hop, less how far the newest "
                 "frame starts after the window's last EEG sample (here 2.5 ms: a one-frame hop waits for "
                 "nothing and reads -2.5 ms)"),
    ("vocoder_lookahead_ola", "the vocoder's look-ahead and overlap-add (latency_frames)"),
    ("transport", "EEG sample taken -> its chunk pulled by the inlet (LSL)"),
    ("stream_stage", "chunk pulled -> window made (filters, ring buffer)"),
    ("model", "window -> model output"),
    ("vocoder_compute", "model output -> samples"),
    ("to_buffer", "samples -> written to the sink's ring"),
    ("output_queue", "audio queued ahead of the chunk's first sample (cushion against jitter)"),
    ("device", "handed to PortAudio -> DAC, as PortAudio reports it"),
)
"""The parts of the EEG-sample -> audible-sample delay, in pipeline order, with what each is."""


def breakdown(summary: dict, onset_delay_s: np.ndarray, measured_p50_ms: float | None) -> dict:
    """Split the measured latency into its parts (medians, ms) from one decode's stage latencies.

    Parameters
    ----------
    summary : dict
        :meth:`decoder.pipeline.LivePipeline.summary` of the measured decode.
    onset_delay_s : ndarray, shape (n,)
        :func:`~benchmarks.latency_probe.stimulus_onset_delay_s` for the same hop and vocoder.
    measured_p50_ms : float or None
        The measured latency's median.

    Returns
    -------
    dict
        ``parts_ms`` (each part of :data:`PARTS`, p50), ``sum_ms`` (their sum), ``decoder_total_ms`` (the
        event's place before its onset plus the median of each window's whole ``audio_to_dac``: the
        decoder's own account of the delay measured), ``measured_p50_ms``, ``unattributed_ms`` (measured
        minus ``decoder_total_ms``, or minus ``sum_ms`` where a decode has no ``audio_to_dac``: the sound
        server beyond PortAudio's stated DAC time and the recording clock's error; negative where the
        decoder's account is the longer) and ``descriptions``.

    Why a total of its own: a sum of medians need not be the median of the sums, so ``unattributed_ms``
    compares like with like. In a quick run they agreed (default hop: parts 130.2 ms, decoder total
    130.0 ms, measured 117.9 ms; two frames 138.8 / 134.6 / 124.5 ms): what is left, about -10 ms, is the
    decoder's account being the longer. About half of it is the device part, the output latency PortAudio
    states: the same run's click calibration found the sink's monitor recording 5.1 ms before it.
    """
    stages = summary["latency_ms"]

    def p50(stage):
        return stages[stage]["p50"]

    vocoder = summary.get("vocoder_latency_ms") or 0.0
    parts = {
        "event_to_onset": round(float(np.nanmedian(onset_delay_s)) * 1e3, 2),
        "hop_wait": None if p50("audio_to_eeg") is None else round(p50("audio_to_eeg") - vocoder, 2),
        "vocoder_lookahead_ola": vocoder,
        "transport": p50("eeg_to_arrival"), "stream_stage": p50("arrival_to_ready"),
        "model": p50("ready_to_inferred"), "vocoder_compute": p50("inferred_to_vocoded"),
        "to_buffer": p50("vocoded_to_buffered"), "output_queue": p50("buffered_to_queued"),
        "device": p50("queued_to_dac"),
    }
    total = round(sum(v for v in parts.values() if v is not None), 2)
    whole = p50("audio_to_dac")
    decoder_total = None if whole is None else round(parts["event_to_onset"] + whole, 2)
    account = total if decoder_total is None else decoder_total
    return {"parts_ms": parts, "sum_ms": total, "decoder_total_ms": decoder_total,
            "measured_p50_ms": measured_p50_ms,
            "unattributed_ms": None if measured_p50_ms is None else round(measured_p50_ms - account, 2),
            "descriptions": dict(PARTS)}


def measure(model: str | Path, monitor: str, *, hop_s: float | None = None, seconds: float = 20.0,
            event_period_s: float = 0.8, shift_samples: int = 0, audio_device: str | int | None = None,
            vocoder: str | None = None, progress: bool = False, realtime: bool = True,
            device_latency: str | float | None = None) -> dict:
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
    progress : bool
        Show a progress bar over the seconds of events (long runs).
    realtime : bool
        The decoder's real-time scheduling and frozen start-up objects (``PipelineConfig.realtime``).
    device_latency : str, float or None
        The sound device's suggested latency (None: the decoder's default).

    Returns
    -------
    dict
        ``latency_ms`` (p50/p95/p99/n of the measured EEG-sample -> audible-sample latencies),
        ``latencies_s`` (per event, NaN if not found), ``shifts`` (samples each event was pushed
        late), ``events``, ``found``, ``estimate_ms`` (the decoder's own ``arrival_to_dac``),
        ``breakdown`` (:func:`breakdown`), ``underruns`` (the decoder's ring empty at a device
        callback), ``device_underflows`` (PortAudio reporting the device itself ran dry: a callback
        too late), ``device_restarts``, ``drops``, ``hop_s``, the recording's
        ``arrival_lateness_ms``, ``scheduling`` (role -> fifo/nice/normal; the audio callback
        raised or normal), ``machine_stalls`` (:func:`benchmarks.machine_stalls.summary` of the
        CPUs' own stalls over the same time) and ``underruns_in_machine_stalls`` (how many of the
        underruns fell in one: the machine's, not the decoder's).
    """
    from eegmusic.decoder.melspec import FRAME_PERIOD_S
    from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig

    name = f"eegmusic-latency-{uuid.uuid4().hex[:8]}"
    from eegmusic.decoder.realtime import process_threads, raise_priorities

    before = process_threads()
    stream = EventStream(name, event_period_s=event_period_s, shift_samples=shift_samples).start()
    recorder = MonitorRecorder(monitor)
    if realtime:
        # The simulated amplifier and the recorder's reader share the decoder's interpreter, which no
        # real amplifier or sound card does: at normal priority, one preempted while holding the GIL
        # stalls the decoder's real-time threads. They run at the acquisition threads' priority.
        raise_priorities("acquisition", process_threads() - before)
    options = {} if hop_s is None else {"hop_s": hop_s}
    if vocoder is not None:
        options["vocoder_method"] = vocoder
    if device_latency is not None:
        options["device_latency"] = device_latency
    config = PipelineConfig(stream_name=name, model_path=str(model), device="cpu", lsl_out=False,
                            audio_device=audio_device, resolve_timeout_s=10.0, realtime=realtime, **options)
    watch = StallWatch().start()
    started = time.monotonic()
    try:
        with LivePipeline(config) as pipeline:
            device_sink = _device_sink(pipeline.sink)
            stream.begin_events(SETTLE_S)       # an idle null sink starts a new stream up to 2 s late
            time.sleep(SETTLE_S)
            if progress:
                from eegmusic.stream.progress import progress_bar

                for _ in progress_bar(range(int(seconds)), desc="latency", unit="s"):
                    time.sleep(1.0)
                time.sleep(seconds - int(seconds))
            else:
                time.sleep(seconds)
            summary = pipeline.summary()
    finally:
        stream.stop()
        recording = recorder.stop()
        watch.stop()
    underrun_times = list(device_sink.underrun_times) if device_sink is not None else []
    # events whose burst had time to be heard before the decoder stopped
    last = max((t for t, _ in stream.events), default=0.0) - 0.6
    times = np.array([t for t, _ in stream.events if t <= last])
    shifts = np.array([s for t, s in stream.events if t <= last])
    onsets = find_onsets(recording, times)
    latency = onsets - times
    counters = summary["counters"]
    onset_delay = stimulus_onset_delay_s(int(round(config.hop_s / FRAME_PERIOD_S)), config.vocoder_method)
    measured = percentiles_ms(latency)
    return {
        "hop_s": round(config.hop_s, 5),
        "latency_ms": measured,
        "breakdown": breakdown(summary, onset_delay, measured["p50"]),
        "latencies_s": latency.tolist(), "shifts": shifts.tolist(),
        "events": int(len(times)), "found": int(np.isfinite(latency).sum()),
        "estimate_ms": {k: summary["latency_ms"]["arrival_to_dac"][k] for k in ("p50", "p95", "p99")},
        "underruns": counters["underruns"], "drops": counters["drops"],
        "windows_caught_up": counters["windows_caught_up"],
        "device_restarts": counters.get("device_restarts", 0),
        "device_underflows": counters.get("device_underflows", 0),
        "audio_padded": counters.get("audio_padded", 0), "audio_dropped_late": counters["audio_dropped_late"],
        "arrival_lateness_ms": recording.arrival_lateness_ms,
        "vocoder_latency_ms": summary.get("vocoder_latency_ms"),
        "playback_cushion_ms": summary.get("playback_cushion_ms"),
        "scheduling": {**summary.get("scheduling", {}),
                       "audio-callback": "raised" if counters.get("callback_realtime") else "normal"},
        "machine_stalls": stall_summary(watch.stalls, time.monotonic() - started, watch.realtime),
        "underruns_in_machine_stalls": underruns_in_stalls(underrun_times, watch.stalls),
    }


def _device_sink(sink):
    """The sound-device sink under the pipeline's levelling stage (None for any other sink)."""
    from eegmusic.decoder.audio import SoundDeviceSink
    from eegmusic.decoder.limiter import LevelledSink

    if isinstance(sink, LevelledSink):
        sink = sink.sink
    return sink if isinstance(sink, SoundDeviceSink) else None


def _hops(quick: bool, duration_s: float | None) -> dict[str, int]:
    """Label -> hop in frames: the default and the lowest, 2 frames, and 4 in a full run."""
    from eegmusic.decoder.frameclock import DEFAULT_HOP_FRAMES

    if duration_s is not None:
        return {"default": DEFAULT_HOP_FRAMES}
    if DEFAULT_HOP_FRAMES == 1:
        hops = {"default = lowest": 1}
    else:
        hops = {"lowest": 1, "default": DEFAULT_HOP_FRAMES}
    hops.update({f"{n} frames": n for n in ((2,) if quick else (2, 4)) if n not in hops.values()})
    return hops


def _without_events(result: dict) -> dict:
    """:func:`measure`'s result without its per-event lists (``latencies_s``, ``shifts``), as reported."""
    return {key: value for key, value in result.items() if key not in ("latencies_s", "shifts")}


def run(quick: bool, *, duration_s: float | None = None) -> dict:
    """Measured latency at the default and the lowest hop, beside the decoder's estimate.

    Parameters
    ----------
    quick : bool
        12 s per hop instead of 60 s, and only the default and the lowest hop.
    duration_s : float, optional
        Decode the default hop alone for this long (``eegmusic bench latency --duration 600``: the
        10-minute underrun run), with a progress bar.

    Returns
    -------
    dict
        ``measured`` (per hop: the distribution, the estimate, the breakdown, underruns), ``baseline``
        (:data:`BASELINE` measured the same way in the same run), ``ratios`` (the default hop's p50 and
        p99 over the baseline's), ``calibration``, ``goals``, ``load`` (the 1-minute load average before
        and after).
    """
    import os

    from eegmusic.decoder.melspec import FRAME_PERIOD_S
    from eegmusic.stream.atomic import temporary_directory

    seconds = float(duration_s) if duration_s is not None else 12.0 if quick else 60.0
    load_before = os.getloadavg()[0]
    with temporary_directory("eegmusic-bench-latency-") as folder, null_sink() as monitor:
        model = event_model(Path(folder) / "event.onnx")
        calibration = loopback_calibration(monitor)
        results = {}
        for label, frames in _hops(quick, duration_s).items():
            result = _without_events(measure(model, monitor, hop_s=frames * FRAME_PERIOD_S, seconds=seconds,
                                             progress=duration_s is not None))
            results[f"{label} ({frames} frames, {frames * FRAME_PERIOD_S * 1e3:.1f} ms)"] = result
            log.info("hop %d frames: measured %s, estimate %s, breakdown %s", frames, result["latency_ms"],
                     result["estimate_ms"], result["breakdown"]["parts_ms"])
        # the baseline in the same run, on the same sink, so the ratios share the machine's state
        base_seconds = min(seconds, BASELINE_MAX_S)
        base = _without_events(measure(
            model, monitor, hop_s=BASELINE["hop_frames"] * FRAME_PERIOD_S, seconds=base_seconds,
            vocoder=BASELINE["vocoder"], device_latency=BASELINE["device_latency"],
            realtime=BASELINE["realtime"]))
        baseline = {"settings": dict(BASELINE), "seconds": base_seconds, "result": base}
        log.info("baseline (pre-issue-15 settings): measured %s", base["latency_ms"])
    default = next(v for k, v in results.items() if k.startswith("default"))
    ratios = {}
    for q in ("p50", "p99"):
        ours, theirs = default["latency_ms"][q], base["latency_ms"][q]
        ratios[f"default_over_baseline_{q}"] = None if ours is None or not theirs else round(ours / theirs, 3)
    return {
        "measured": results,
        "baseline": baseline,
        "ratios": ratios,
        "calibration": calibration,
        "goals": {"p50_ms <= 120": default["latency_ms"]["p50"] is not None
                  and default["latency_ms"]["p50"] <= 120,
                  "p99_ms <= 160": default["latency_ms"]["p99"] is not None
                  and default["latency_ms"]["p99"] <= 160,
                  "underruns == 0": default["underruns"] == 0,
                  "underruns outside machine stalls == 0":
                      default["underruns"] - default["underruns_in_machine_stalls"] == 0,
                  "device underflows == 0": default["device_underflows"] == 0},
        "method": "EEG-sample -> audible-sample through PulseAudio (null sink monitor via parec); "
                  "estimate = decoder's arrival_to_dac (queue + PortAudio's reported latency); "
                  "breakdown = the decoder's stage medians plus the offline event-to-onset position, "
                  "and its total the median of each window's audio_to_dac plus that position",
        "seconds_per_hop": seconds,
        "load": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }
