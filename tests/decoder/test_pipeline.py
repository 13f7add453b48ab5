"""Live decoding end to end with real parts: a replay subprocess, LSL, onnxruntime, audio sinks.

The models are the tiny linear ONNX graphs of ``tests/decoder/onnx_models.py`` (every output value
depends on every input sample, so equal frames mean equal windows). The overload test slows the
model down with a runtime wrapper that sleeps in ``predict`` (a real DecoderRuntime underneath).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
from eegmusic.decoder.frameclock import segment_start_sample
from eegmusic.decoder.melspec import FRAME_PERIOD_S, MEL_DB_CEILING, MEL_DB_GUARD_FLOOR
from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
from eegmusic.decoder.recording import AUDIO_FILE, FrameRecorder, read_frames
from eegmusic.decoder.runtime import DecoderRuntime
from eegmusic.decoder.truth import LiveTruth
from eegmusic.stream.errors import ConfigError, StreamError
from eegmusic.stream.spec import MODEL_CHANNELS
from eegmusic.stream.stimulus import StimulusFolder

from tests.decoder.onnx_models import make_model
from tests.fixtures.processes import ended_within

ROOT = Path(__file__).resolve().parents[2]


def _start_replay(data_dir, name, *extra, song=21, subject=1):
    """``eegmusic replay`` in a subprocess; returns once its stream is published.

    The replay prints ``replaying '<name>' ...`` once its outlet exists (``run_replay``): that line is
    awaited, not an answer to a resolve. Under the tests' machine-only discovery an answer from another
    process comes only at the resolver's next wave (0.5 s, then 1.25 s, 1.75 s), so the resolve took
    about 1 s longer than the replay's own start-up; the decoder resolves the stream itself anyway.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "eegmusic", "replay", "--data", str(data_dir), "--song", str(song),
           "--subject", str(subject), "--name", name, "--source-id", name, *extra]
    with tempfile.TemporaryFile() as log:   # a file, not a pipe: an unread pipe would block the replay
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        published = f"replaying '{name}' ".encode()
        deadline = time.monotonic() + 20.0
        while published not in (text := os.pread(log.fileno(), 1 << 20, 0)):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"replay did not start: {text.decode(errors='replace')[-2000:]}")
            time.sleep(0.01)
    return proc


def _stop(proc, kill=False):
    """Stop a replay (SIGTERM, or SIGKILL as a dying amplifier); fail if SIGTERM does not end it in 10 s
    (it is killed first, so that it does not outlive the test)."""
    if proc.poll() is None:
        proc.kill() if kill else proc.terminate()
        if not ended_within(proc, 10):
            pytest.fail(f"replay {proc.pid} did not stop within 10 s of SIGTERM; killed")


@pytest.fixture
def replay(sim_dir, stream_name):
    """A running replay of song 21, participant 1 (looping), named ``stream_name``."""
    proc = _start_replay(sim_dir, stream_name, "--loop")
    yield proc
    _stop(proc)


@pytest.fixture
def mel_model(tmp_path):
    return make_model(tmp_path / "model.onnx")


def drops_no_stall_explains(drop_times, stalls, hop_s: float) -> list[float]:
    """The decoder drops (``time.monotonic()`` of each) that no machine stall explains.

    Stalls of several CPUs that overlap are one stall, from the first start to the last end. A stall
    of a whole hop or more excuses one drop per whole hop it lasted, among the drops that fell inside it
    or within :data:`benchmarks.machine_stalls.CATCH_UP_S` after it; each drop is excused once.
    """
    from eegmusic.benchmarks.machine_stalls import CATCH_UP_S

    merged: list[list[float]] = []
    for stall in sorted(stalls, key=lambda stall: stall.start):
        if merged and stall.start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stall.end)
        else:
            merged.append([stall.start, stall.end])
    left = sorted(drop_times)
    for start, end in merged:
        near = [t for t in left if start <= t <= end + CATCH_UP_S]
        excused = near[:int((end - start) // hop_s)]
        left = [t for t in left if t not in excused]
    return left


def _windows(config, seconds):
    """Windows the pipeline makes in ``seconds`` at its hop (the default hop is 1 frame, 23.2 ms)."""
    return int(np.ceil(seconds / config.hop_s))


def _wait(pipeline, windows, timeout=20.0):
    t_end = time.monotonic() + timeout
    while pipeline.counters()["windows"] < windows and time.monotonic() < t_end:
        assert pipeline.error is None, pipeline.error
        time.sleep(0.05)
    assert pipeline.counters()["windows"] >= windows, pipeline.summary()


# ---------------------------------------------------------------------------------------------------
# End to end: replay -> decode -> PulseAudio null sink (captured), LSL out, recording, truth


@pytest.mark.lsl
@pytest.mark.audio
def test_end_to_end_sound_lsl_recording_truth(sim_dir, stream_name, replay, mel_model, tmp_path, pulse_sink):
    record = tmp_path / "rec"
    config = PipelineConfig(stream_name=stream_name, model_path=mel_model, device="cpu",
                            record_dir=record, truth_dir=sim_dir, resolve_timeout_s=10)
    from eegmusic.benchmarks.machine_stalls import StallWatch

    # the watch lets a failed drops check say whether the machine itself stalled meanwhile
    with StallWatch() as watch, pulse_sink.recording() as captured, LivePipeline(config) as pipeline:
        mel_out = pylsl.resolve_bypred(f"name='{stream_name}-mel'", 1, 5.0)
        mel_inlet = pylsl.StreamInlet(mel_out[0])
        mel_inlet.open_stream(timeout=5.0)
        _wait(pipeline, _windows(config, 2.5))                  # 2.5 s of decoding
        snap = pipeline.snapshot()
        summary = pipeline.summary()
        lsl_frames, lsl_stamps = mel_inlet.pull_chunk(timeout=1.0, max_samples=4096)
        del mel_inlet                                            # inlets go before outlets
    audio = captured["audio"]

    # Sound reached the (null) sound card.
    assert np.sqrt(np.mean(audio ** 2)) > 1e-4, "captured audio is silent"
    # The MelSpectrogram outlet existed with the right shape.
    assert mel_out and mel_out[0].type() == "MelSpectrogram"
    assert mel_out[0].channel_count() == 128 and mel_out[0].nominal_srate() == pytest.approx(22050 / 512)
    # Frames sent on LSL are the recorded frames, stamped one frame period apart.
    lsl_frames = np.asarray(lsl_frames, dtype=np.float32)
    assert lsl_frames.shape[0] > 20 and lsl_frames.shape[1] == 128
    np.testing.assert_allclose(np.diff(lsl_stamps), 512 / 22050, atol=1e-3)
    # Snapshot for the GUI.
    assert snap.eeg.shape[0] == 125 and snap.eeg.shape[1] > 100 and snap.eeg_sfreq == 125.0
    assert snap.mel.shape[0] == 128 and snap.mel.shape[1] > 50 and snap.labels[0] == "E1"
    assert snap.error is None and snap.running
    assert snap.truth_mel is not None and np.isfinite(snap.truth_mel[:, -20:]).all()
    assert snap.dynamic_r is not None and -1 <= snap.dynamic_r <= 1
    # Latency of every stage was measured.
    for stage, row in summary["latency_ms"].items():
        assert row["n"] > 10, stage
    counters = summary["counters"]
    # A machine stall of a whole hop (23 ms) or more keeps the decoder from a window's turn whatever the
    # code does (a stalled CPU runs no thread, real-time or not): a stall excuses one decoder drop per
    # whole hop it lasted, among the drops inside it or while the decoder catches up after it, as the
    # latency bench counts underruns inside stalls. The pipeline decodes from its start, before the
    # test's own LSL inlet is open, so every drop of its life is matched to the stalls at its time. No
    # other window may be dropped, and the stream and output stages may drop none at all.
    drop_times = pipeline.decoder_drop_times   # the whole decode's, read once it has stopped
    assert len(drop_times) == pipeline.counters()["drops_decoder"]
    unexplained = drops_no_stall_explains(drop_times, watch.stalls, config.hop_s)
    origin = min([*drop_times, *(stall.start for stall in watch.stalls)], default=0.0)
    stalls = [f"{1e3 * stall.duration_s:.0f} ms at {stall.start - origin:.2f} s" for stall in watch.stalls
              if stall.duration_s >= 0.02]
    drops_at = [f"{t - origin:.2f} s" for t in drop_times]
    assert counters["drops_stream"] == counters["drops_output_queue"] == 0 and not unexplained and \
        counters["frames"] > 80, (
        f"drops: decoder {len(drop_times)} at {drops_at or '-'} ({len(unexplained)} at no machine stall), "
        f"stream {counters['drops_stream']}, output queue {counters['drops_output_queue']}; "
        f"frames {counters['frames']}; "
        f"machine stalls of 20 ms or more: {stalls or 'none'}; p99 ms: "
        + ", ".join(f"{stage} {row['p99']}" for stage, row in summary["latency_ms"].items()))
    # The recording: frames contiguous, WAV readable with the audio written.
    k, frames, _ = read_frames(record)
    np.testing.assert_array_equal(k, np.arange(k[0], k[0] + len(k)))
    assert frames.shape[0] == 128 and np.isfinite(frames).all()
    recorded = {tuple(np.round(column, 3)) for column in frames.T}
    assert all(tuple(np.round(row, 3)) in recorded for row in lsl_frames)
    import soundfile

    wav, rate = soundfile.read(record / AUDIO_FILE, dtype="float32")
    assert rate == 22050 and len(wav) >= 512 * (len(k) - 4)
    # the files say what they hold: the sidecar's units, the summary's vocoder and what the score read
    import json

    sidecar = json.loads((record / "mel_db.json").read_text())
    assert {"frames", "index", "n_end", "window_frame", "t_last"} <= set(sidecar["units"])
    assert "mel dB" in sidecar["units"]["frames"]
    assert summary["vocoder"] == {"method": config.vocoder_method, "lookahead": pipeline._vocoder.lookahead}
    truth = summary["truth"]
    assert truth["song"] == 21 and truth["scored_frames"] > 20
    assert truth["dynamic_r_window_s"] == pytest.approx(10.0, abs=0.1)     # the 'last 10 s' figure's window
    # the test model carries no training means, so no music it can say it trained on; its split it names
    assert truth["trained_music"] == [] and truth["training_split"] == "block"
    assert summary["shifted_stimulus_dynamic_r"] is not None    # the live figure's control (a 20-s song)
    assert snap.shifted_dynamic_r is not None                   # the snapshot's, taken with its r
    # one song played: its own figures are the run's (JSON keys are text)
    song = summary["scores_by_song"]["21"]
    assert list(summary["scores_by_song"]) == ["21"] and song["scored_frames"] == truth["scored_frames"]
    assert song["dynamic_r_total"] == summary["dynamic_r_total"]
    assert song["baseline_dynamic_r_total"] == summary["baseline_dynamic_r_total"]
    # the shifted-stimulus control, on the same frames, whatever the hop
    assert song["shifted_stimulus_dynamic_r_total"] == summary["shifted_stimulus_dynamic_r_total"] is not None


# ---------------------------------------------------------------------------------------------------
# Parity: live frames == eegmusic evaluate's offline predictions for the same windows


@pytest.mark.lsl
def test_parity_with_offline_predictions(sim_dir, stream_name, mel_model, tmp_path):
    from eegmusic.offline_training.inference import load_model, run_model
    from eegmusic.replay.nmedt import NMEDTFolder

    proc = _start_replay(sim_dir, stream_name)               # no loop: sample i is song sample i
    markers = pylsl.StreamInlet(pylsl.resolve_bypred(f"name='{stream_name}-markers'", 1, 10.0)[0],
                                processing_flags=pylsl.proc_clocksync)
    markers.open_stream(timeout=5.0)
    record = tmp_path / "rec"
    config = PipelineConfig(stream_name=stream_name, model_path=mel_model, device="cpu", no_audio=True,
                            record_dir=record, lsl_out=False, hop_s=4 * 512 / 22050)
    try:
        with LivePipeline(config) as pipeline:
            _wait(pipeline, 25)
        anchor = None
        while anchor is None:
            sample, stamp = markers.pull_sample(timeout=5.0)
            assert sample is not None, "no marker"
            if sample[0].startswith("song=21;t="):
                anchor = (stamp, float(sample[0].split("t=")[1]))
    finally:
        del markers
        _stop(proc)

    k, live, source = read_frames(record)
    assert len(k) > 80
    n_end, j, t_last = source[:, 0].astype(int), source[:, 1].astype(int), source[:, 2]
    # Song sample index one past each window's end, from the replay's marker clock.
    song_end = np.rint((t_last - anchor[0]) * 125 + anchor[1] * 125).astype(int) + 1
    offset = song_end - n_end
    assert np.all(offset == offset[0]), "one constant offset between stream and song samples"
    eeg = NMEDTFolder(sim_dir).load_song(21).eeg(0).astype(np.float32)
    ends = np.unique(song_end)
    windows = np.stack([eeg[:, e - 125:e] for e in ends])
    session, info = load_model(mel_model)
    offline = run_model(session, info, windows)              # the evaluate path
    rows = np.searchsorted(ends, song_end)
    expected = offline[rows, :, j].T                         # (128, n_frames)
    assert np.max(np.abs(live - expected)) < 1e-3
    # And each frame sits where the frame clock says: window frame j of segment start S is global k.
    starts = np.array([segment_start_sample(e) for e in n_end])
    assert np.all(np.abs(512 * k - (starts + 512 * j)) <= 256)


# ---------------------------------------------------------------------------------------------------
# Stream killed and restarted mid-run


@pytest.mark.lsl
@pytest.mark.parametrize("kind", ["mel_db", "audio"])
def test_stream_restart_resumes_and_counts(sim_dir, stream_name, mel_model, tmp_path, kind):
    """The outage is counted in the units of the model's output: frames, or a waveform model's samples
    (which were counted as frames, and a reset of its clock set its own count back to 0)."""
    proc = _start_replay(sim_dir, stream_name, "--loop")
    model = mel_model if kind == "mel_db" else make_model(tmp_path / "wave.onnx", kind="audio")
    config = PipelineConfig(stream_name=stream_name, model_path=model, device="cpu", no_audio=True,
                            lsl_out=False)
    try:
        with LivePipeline(config) as pipeline:
            _wait(pipeline, 10)
            _stop(proc, kill=True)                         # the amplifier dies
            gone = time.monotonic() + 1.5                  # its loss seen (or 1.5 s), not a fixed 1.5 s
            while pipeline.health().connected and time.monotonic() < gone:
                time.sleep(0.02)
            before = pipeline.counters()["windows"]
            proc = _start_replay(sim_dir, stream_name, "--loop")    # same name and source_id
            _wait(pipeline, before + 10, timeout=30)
            counters = pipeline.counters()
            assert pipeline.running and pipeline.error is None
    finally:
        _stop(proc)
    assert counters["reconnects"] >= 1
    assert counters["gaps"] + counters["time_jumps"] >= 1
    skipped, other = ("frames_skipped", "samples_skipped") if kind == "mel_db" else ("samples_skipped",
                                                                                       "frames_skipped")
    assert counters[skipped] > 0 and counters[other] == 0, counters


# ---------------------------------------------------------------------------------------------------
# Overload: a model slower than the hop


class SlowRuntime(DecoderRuntime):
    """A real DecoderRuntime whose predict sleeps first: a model 2.5x slower than a 0.1-s hop."""

    delay_s = 0.25

    def predict(self, window, out=None):
        time.sleep(self.delay_s)
        return super().predict(window, out)


@pytest.mark.lsl
def test_overload_latency_bounded_drops_counted(sim_dir, stream_name, replay, mel_model, tmp_path):
    runtime = SlowRuntime(mel_model, device="cpu")
    config = PipelineConfig(stream_name=stream_name, model_path=mel_model, wav_path=tmp_path / "out.wav",
                            lsl_out=False)
    started = time.monotonic()
    with LivePipeline(config, runtime=runtime) as pipeline:
        _wait(pipeline, 8, timeout=30)
        written = pipeline.counters()["audio_written"]
        _wait(pipeline, 12, timeout=30)
        summary = pipeline.summary()
        assert pipeline.running and pipeline.error is None
    ended = time.monotonic()
    counters = summary["counters"]
    assert counters["drops"] > 5                                  # most windows skipped, counted
    # each decoder drop is timed, within the run (read once the decoder has stopped: counts and times agree)
    drop_times = pipeline.decoder_drop_times
    assert 0 < len(drop_times) == pipeline.counters()["drops_decoder"]
    assert started < min(drop_times) <= max(drop_times) < ended
    assert counters["audio_written"] > written                     # audio kept flowing
    p99 = summary["latency_ms"]["ready_to_inferred"]["p99"]
    # Decoding the newest window only: a window waits at most one model run before its own run.
    assert p99 < 2 * SlowRuntime.delay_s * 1e3 + 150
    # No frame lost to the skipped windows: each decoded window covers the frames since the last.
    assert counters["frames_skipped"] == 0


class HiccupRuntime(DecoderRuntime):
    """A real DecoderRuntime whose 20th predict is held up for ``hiccup_s``.

    The hiccup a loaded machine gives the decode thread now and then (a full suite run: one decoder drop
    in 2.5 s, with no machine stall near it), made to happen once, on cue.
    """

    hiccup_s = 0.0
    calls = 0

    def predict(self, window, out=None):
        self.calls += 1
        if self.calls == 20:
            time.sleep(self.hiccup_s)
        return super().predict(window, out)


@pytest.mark.lsl
def test_a_decoder_held_up_two_hops_catches_up_instead_of_dropping(sim_dir, stream_name, replay, mel_model):
    from eegmusic.benchmarks.machine_stalls import StallWatch
    from eegmusic.decoder.cli_decode import format_summary

    runtime = HiccupRuntime(mel_model, device="cpu")
    config = PipelineConfig(stream_name=stream_name, model_path=mel_model, device="cpu", no_audio=True,
                            lsl_out=False)
    # 2.5 hops: the next two windows are complete when it ends (the second 0.5 hop before), the third
    # not for another 0.5 hop, and even a decoder that took the held window a hop late finds only two
    # lost ones (the newest is the third); a 1.9-hop hiccup (45 ms) may end before the second exists
    runtime.hiccup_s = 2.5 * config.hop_s
    with StallWatch() as watch, LivePipeline(config, runtime=runtime) as pipeline:
        _wait(pipeline, 60)
        summary = pipeline.summary()
    counters = pipeline.counters()
    assert runtime.calls >= 60 and 1 <= counters["windows_caught_up"], counters
    assert f"(caught up {summary['counters']['windows_caught_up']})" in format_summary(summary)
    # the window that waited out the hiccup was decoded, not dropped (a drop at a machine stall of a
    # whole hop is excused, as in the end-to-end test: no code can run through one)
    unexplained = drops_no_stall_explains(pipeline.decoder_drop_times, watch.stalls, config.hop_s)
    assert not unexplained and counters["frames_skipped"] == 0, (counters, watch.stalls)


def test_a_backlog_of_a_hop_or_two_is_decoded_and_a_longer_one_dropped():
    """``windows_to_decode`` with catch-up 2 (real Windower, 0.1-s hop, 12.5 samples)."""
    import collections

    from eegmusic.decoder.pipeline import windows_to_decode
    from eegmusic.stream.ringbuffer import RingBuffer
    from eegmusic.stream.windower import Windower

    ring = RingBuffer(2, 1000)
    windower = Windower(ring, hop_s=0.1, queue_windows=100)
    counters, drop_times = collections.Counter(), collections.deque()

    def feed(start, n, t_arrival):
        ring.write(np.zeros((2, n), np.float32), np.arange(start, start + n) / 125.0, 0)
        return windower.update(t_arrival=t_arrival)

    assert feed(0, 125, t_arrival=1.0) == 1
    assert [w.sample_index for w in windows_to_decode(windower, windower.next_window(0), counters,
                                                      drop_times, catch_up=2)] == [0]
    # two windows from two chunks left waiting (the decoder was held up a hop): both decoded, in order
    assert feed(125, 12, t_arrival=2.0) == 1 and feed(137, 13, t_arrival=2.1) == 1
    taken = windows_to_decode(windower, windower.next_window(0), counters, drop_times, catch_up=2)
    assert [w.sample_index for w in taken] == [12, 25]
    assert counters == {"windows_caught_up": 1} and not drop_times
    # three left waiting from three chunks (held up two hops): the two older ones are caught up
    for k, start in enumerate((150, 162, 175)):
        assert feed(start, 12 + (k == 1), t_arrival=3.0 + k / 10) == 1
    taken = windows_to_decode(windower, windower.next_window(0), counters, drop_times, catch_up=2)
    assert [w.sample_index for w in taken] == [37, 50, 62]
    assert counters == {"windows_caught_up": 3}
    # four waiting (three would be lost): more than the catch-up, so all three are dropped as before
    for k, start in enumerate((187, 200, 212, 225)):
        assert feed(start, 12 if k % 2 else 13, t_arrival=4.0 + k / 10) == 1
    taken = windows_to_decode(windower, windower.next_window(0), counters, drop_times, catch_up=2)
    assert [w.sample_index for w in taken] == [112]
    assert counters == {"windows_caught_up": 3, "drops_decoder": 3} and len(drop_times) == 3
    # without catch-up (a model too slow for it) one window left waiting is a drop, as it always was
    assert feed(237, 13, t_arrival=5.0) == 1 and feed(250, 12, t_arrival=5.1) == 1
    taken = windows_to_decode(windower, windower.next_window(0), counters, drop_times)
    assert [w.sample_index for w in taken] == [137]
    assert counters == {"windows_caught_up": 3, "drops_decoder": 4}


class StalledDevice:
    """A sound device that plays nothing for its first ``stall_s``, then drains at real time (an AudioSink).

    PulseAudio does this for about a second when a new stream starts, but not on demand, so this
    test stands in for the device (it keeps the NullSink's counting and sanitising).
    """

    stall_s = 1.0

    def __init__(self):
        from eegmusic.decoder.audio import NullSink

        self._sink = NullSink()
        self._t_start = None
        self.counters = self._sink.counters
        self.close = self._sink.close

    output_latency_s = 0.0
    plays_live = True
    latency_note = "audio device 'stalled' refused latency 'low'; playing at its default 80 ms instead"
    """As a SoundDeviceSink says when its device refused the latency asked for (none here does)."""

    def write(self, samples, *, block=True):
        self._t_start = self._t_start or time.monotonic()
        return self._sink.write(samples, block=block)

    @property
    def queued_s(self) -> float:
        if self._t_start is None:
            return 0.0
        played = max(0.0, time.monotonic() - self._t_start - self.stall_s)
        return max(0.0, self._sink.counters()["written"] / 22050 - played)


@pytest.mark.lsl
def test_a_stalled_device_leaves_no_standing_delay(sim_dir, stream_name, replay, mel_model):
    device = StalledDevice()
    config = PipelineConfig(stream_name=stream_name, model_path=mel_model, lsl_out=False)
    with LivePipeline(config, sink=device) as pipeline:
        _wait(pipeline, _windows(config, 1.4), timeout=30)     # past the 1-s stall
        summary = pipeline.summary()
    assert summary["counters"]["audio_dropped_late"] > 0            # the stall's backlog was dropped
    # after the stall the queue is back near the cushion the measured jitter asks for (plus the
    # immediate-trim allowance and a hop), not the stall's second
    cushion_s = summary["playback_cushion_ms"] / 1e3
    assert device.queued_s < min(0.5, cushion_s + 0.1 + config.hop_s + 0.05), (device.queued_s, cushion_s)
    # the device's own note reaches the summary, and stays there once the sink is closed
    assert summary["audio_device_note"] == pipeline.summary()["audio_device_note"] == device.latency_note


# ---------------------------------------------------------------------------------------------------
# Waveform model: no vocoder, crossfaded hops


@pytest.mark.lsl
@pytest.mark.parametrize("audio_sfreq", [22050.0, 11025.0])
def test_audio_model_bypasses_vocoder(sim_dir, stream_name, replay, tmp_path, audio_sfreq):
    # a model of another output.sfreq is resampled to the output's 22050 Hz: an 11025-Hz one played an
    # octave high with half of each second missing
    model = make_model(tmp_path / "wave.onnx", kind="audio", n_samples=int(audio_sfreq),
                       audio_sfreq=audio_sfreq)
    config = PipelineConfig(stream_name=stream_name, model_path=model, device="cpu",
                            wav_path=tmp_path / "out.wav", lsl_out=False)
    with LivePipeline(config) as pipeline:
        _wait(pipeline, _windows(config, 1.4))                  # 1.4 s of decoding
        summary = pipeline.summary()
    assert "vocoder_latency_ms" not in summary
    import soundfile

    audio, rate = soundfile.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 22050 and len(audio) > 22050 * 0.8
    # The tone is continuous across hops: no sample-to-sample jump beyond the tone's own slope.
    assert np.max(np.abs(np.diff(audio))) < 0.1 * 2 * np.pi * 440 / 22050 * 1.5
    # at its pitch: each window's 440-Hz tone starts at phase 0, so a hop's phase step moves the peak a
    # few Hz; played at the wrong rate it sat near 880 Hz
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert abs(np.argmax(spectrum) * 22050 / len(audio) - 440.0) < 25.0


@pytest.mark.lsl
def test_a_waveform_models_sound_after_skipped_samples_rises_from_the_last_one(stream_name, replay, tmp_path):
    """The decode thread held up for 1.3 s: the windows behind it are dropped, the sample clock skips the
    audio they covered, and the output loop tells the output stage (``SoundOutput.follows``) so that the
    next chunk rises from the last sample written. Without that call the chunk started where its window's
    tone stood: each window's 440-Hz tone starts at phase 0, and at a 3-frame hop the first sample after
    the skip sits 0.48 of a period from the last one played, a step of about 1.7 times the tone's height."""
    import soundfile
    from eegmusic.decoder.cli_decode import format_summary

    model = make_model(tmp_path / "wave.onnx", kind="audio")
    runtime = HiccupRuntime(model, device="cpu")
    runtime.hiccup_s = 1.3                     # more than a window's second: no later window overlaps
    config = PipelineConfig(stream_name=stream_name, model_path=model, device="cpu", lsl_out=False,
                            wav_path=tmp_path / "out.wav", hop_s=3 * FRAME_PERIOD_S)
    with LivePipeline(config, runtime=runtime) as pipeline:
        _wait(pipeline, 40)
        summary = pipeline.summary()
    # the summary says how much audio the dropped windows took with them (it was counted, never shown):
    # about the 1.3 s held up, since a window plays only its newest samples after such a skip
    skipped = summary["counters"]["samples_skipped"]
    assert 22050 * 0.9 < skipped < 22050 * 2.0, summary["counters"]
    assert summary["output_kind"] == "audio"
    assert f"  audio not decoded {1e3 * skipped / 22050:.0f} ms  flagged windows" in format_summary(summary)
    assert "  frames 0" not in format_summary(summary)      # a waveform model has no frames to count
    audio, rate = soundfile.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 22050 and len(audio) > 22050
    # no sample-to-sample step beyond the tone's own slope (0.1 the greatest height; 1.5 for the ramps)
    assert np.max(np.abs(np.diff(audio))) < 0.1 * 2 * np.pi * 440 / 22050 * 1.5


@pytest.mark.lsl
def test_sound_the_limiter_turned_down_is_counted_and_said(stream_name, replay, tmp_path):
    """A sound device's output passes a peak limiter (decoder.limiter), which counted the samples it turned
    down; neither the pipeline's counters nor the summary showed them. Here a real levelled sink, writing a
    WAV, with its ceiling at -30 dBFS under the test model's tone of about -20 dBFS."""
    import soundfile
    from eegmusic.decoder.audio import WavSink
    from eegmusic.decoder.cli_decode import format_summary
    from eegmusic.decoder.limiter import LevelledSink, LevelSettings, OutputLevel

    ceiling = 10 ** (-30 / 20)
    sink = LevelledSink(WavSink(tmp_path / "out.wav", subtype="FLOAT"),
                        OutputLevel(22050, LevelSettings(agc=False, target_dbfs=-40.0, ceiling_dbfs=-30.0)))
    model = make_model(tmp_path / "wave.onnx", kind="audio")
    config = PipelineConfig(stream_name=stream_name, model_path=model, device="cpu", lsl_out=False)
    with LivePipeline(config, sink=sink) as pipeline:
        _wait(pipeline, _windows(config, 1.0))
    summary = pipeline.summary()                         # after the sink was closed: its last counts
    limited, written = summary["counters"]["audio_limited"], summary["counters"]["audio_written"]
    assert written > 22050 // 2 and limited > 0.9 * written, summary["counters"]
    assert f"  limited {1e3 * limited / 22050:.0f} ms" in format_summary(summary)
    audio, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    assert np.abs(audio).max() <= ceiling * 1.0001


def test_options_a_waveform_model_would_ignore_are_refused(sim_dir, tmp_path, capsys):
    """A waveform model has no mel frames: the vocoder, its look-ahead, smoothing and the live score of
    --truth had nothing to act on, and were dropped silently (design: ignored options are refused)."""
    model = make_model(tmp_path / "wave.onnx", kind="audio")
    status, err = _cli(["--stream", "absent", "--model", str(model), "--no-audio", "--device", "cpu",
                        "--truth", str(sim_dir), "--vocoder", "rtpghi", "--vocoder-lookahead", "0",
                        "--smooth", "5"], capsys)
    assert status == 2 and len(err) == 1, err
    assert ("model wave.onnx outputs a waveform (output kind audio), not mel frames for --vocoder rtpghi, "
            "--vocoder-lookahead 0, --smooth 5 and --truth (live dynamic r) to act on; drop them") in err[0]
    for kwargs, flags in ((dict(smooth_frames=3), "--smooth 3 to act on; drop it"),
                          (dict(truth_dir=sim_dir), "--truth (live dynamic r) to act on; drop it (a waveform "
                                                    "model plays --truth only with --listen true or both)")):
        config = PipelineConfig(stream_name="absent", model_path=model, device="cpu", no_audio=True, **kwargs)
        with pytest.raises(ConfigError, match="^[^\n]*$") as caught:
            LivePipeline(config).start()
        assert flags in str(caught.value)
    # a dashboard's or demo's standing settings are left out for such a model, not refused
    from eegmusic.decoder.vocoders import DEFAULT_VOCODER

    kept = PipelineConfig(model_path=model, truth_dir=sim_dir, vocoder_method="rtpghi", smooth_frames=3,
                          vocoder_lookahead=0).for_model()
    assert (kept.truth_dir, kept.vocoder_method, kept.smooth_frames, kept.vocoder_lookahead) == (
        None, DEFAULT_VOCODER, 0, None)
    kept.refuse_ignored_by("audio", model)
    assert PipelineConfig(model_path=model, truth_dir=sim_dir, listen="true").for_model().truth_dir == sim_dir
    mel = PipelineConfig(model_path=make_model(tmp_path / "mel.onnx"), truth_dir=sim_dir, smooth_frames=3,
                         vocoder_method="rtpghi")
    assert mel.for_model() == mel
    # what it does use: the default vocoder a dashboard always passes, and --truth for --listen
    PipelineConfig(model_path=model, truth_dir=sim_dir, listen="true").refuse_ignored_by("audio", model)
    PipelineConfig(model_path=model, smooth_frames=3, vocoder_method="rtpghi").refuse_ignored_by("mel_db",
                                                                                                 model)


@pytest.mark.lsl
@pytest.mark.untimed     # a refusal and its one line: nothing here is timed
def test_a_typed_default_vocoder_is_refused_for_a_waveform_model(tmp_path, stream_name, capsys):
    """``--vocoder rtisi`` typed for a waveform model passed silently (it is the default), while
    --vocoder-lookahead and --smooth were refused: a vocoder the user names is refused alike. A dashboard's
    decode (--publish) always names the default vocoder, so there it still passes."""
    from eegmusic.decoder.vocoders import DEFAULT_VOCODER

    model = make_model(tmp_path / "wave.onnx", kind="audio")
    argv = ["--stream", f"{stream_name}-absent", "--model", str(model), "--no-audio", "--device", "cpu",
            "--timeout", "0.2", "--vocoder", DEFAULT_VOCODER]
    status, err = _cli(argv, capsys)
    assert status == 2 and len(err) == 1, err
    assert (f"model wave.onnx outputs a waveform (output kind audio), not mel frames for --vocoder "
            f"{DEFAULT_VOCODER} to act on; drop it") in err[0]
    # a dashboard's decode (--publish) names --vocoder only when its user did (gui.attach.decode_command):
    # typed beside --publish, it is refused alike
    status, err = _cli([*argv, "--publish", f"{stream_name}-pub"], capsys)
    assert status == 2 and len(err) == 1, err
    assert f"not mel frames for --vocoder {DEFAULT_VOCODER} to act on; drop it" in err[0], err


@pytest.mark.lsl
@pytest.mark.untimed     # a refusal and its one line: nothing here is timed
def test_a_subject_conditioned_model_decodes_the_listener_given_by_subject(tmp_path, stream_name, capsys):
    """decode had no --subject: a subject-conditioned model decoded every live listener as its first
    training listener, silently. --subject is checked against the model's listeners at start (before any
    stream or output opens), refused for a model without a subject input, and reaches the runtime."""
    from onnx import TensorProto

    model = make_model(tmp_path / "s.onnx", subject_type=TensorProto.INT64, subject_input=True,
                       subjects=("S01", "S02"), subject_weight=5.0)
    wav = tmp_path / "out.wav"
    argv = ["--stream", f"{stream_name}-absent", "--model", str(model), "--wav", str(wav), "--device", "cpu",
            "--timeout", "0.2"]
    status, err = _cli([*argv, "--subject", "S03"], capsys)
    assert status == 2 and len(err) == 1, err
    assert err[0] == ("eegmusic decode: error: --subject S03 is not a listener model s.onnx was trained on "
                      "(it knows S01, S02); pass one of those")
    assert not wav.exists()
    plain = make_model(tmp_path / "plain.onnx")
    status, err = _cli([*argv[:3], str(plain), *argv[4:], "--subject", "S01"], capsys)
    assert status == 2 and len(err) == 1 and "model plain.onnx has no subject input" in err[0], err
    config = PipelineConfig(stream_name=f"{stream_name}-absent", model_path=model, device="cpu",
                            no_audio=True, resolve_timeout_s=0.2, subject="S02")
    pipeline = LivePipeline(config)
    with pytest.raises(StreamError):      # no stream: the runtime was built first
        pipeline.start()
    assert pipeline.runtime.subject == "S02"


@pytest.mark.parametrize("flag", ["--wav", "--json"])
def test_an_output_that_is_no_regular_file_is_refused(flag, tmp_path, capsys):
    """``decode --wav FIFO --overwrite`` waited for a reader of the pipe forever, and its summary said
    'decoded ... for 0.0 s' once killed; a named pipe (or device, socket) is refused before any work."""
    fifo = tmp_path / ("pipe.wav" if flag == "--wav" else "pipe.json")
    os.mkfifo(fifo)
    audio = ["--no-audio"] if flag == "--json" else []
    status, err = _cli(["--stream", "absent", "--model", str(make_model(tmp_path / "m.onnx")), "--device",
                        "cpu", "--timeout", "0.2", *audio, flag, str(fifo), "--overwrite", "--duration", "3"],
                       capsys)
    assert status == 2 and len(err) == 1, err
    assert err[0] == (f"eegmusic decode: error: {flag} {fifo} is a named pipe (FIFO), not a regular file; "
                      f"name a new or regular file for {flag}")


# ---------------------------------------------------------------------------------------------------
# A stop that lands while the published block is being made


@pytest.mark.lsl
@pytest.mark.parametrize("when", ["after the block is made", "during the first publish"])
def test_a_stop_while_publishing_starts_leaves_no_block(when, replay, stream_name, tmp_path, monkeypatch,
                                                         capsys):
    """The dashboard may stop a decode (SIGINT) the moment its block appears: the decode still exits
    cleanly and removes the block, wherever in the publisher's start the interrupt lands."""
    import uuid

    from eegmusic.decoder import shared_snapshot
    from eegmusic.decoder.shared_snapshot import SnapshotPublisher, snapshot_path
    from eegmusic.stream.cli import main

    name = f"t{uuid.uuid4().hex[:10]}"
    made = SnapshotPublisher.__init__

    def init_then_interrupted(self, *args, **kwargs):
        made(self, *args, **kwargs)
        assert snapshot_path(name).exists()
        raise KeyboardInterrupt  # SIGINT's handler raises it here, as the signal can land

    def first_publish_interrupted(self):
        assert snapshot_path(name).exists()
        raise KeyboardInterrupt

    if when == "after the block is made":
        monkeypatch.setattr(SnapshotPublisher, "__init__", init_then_interrupted)
    else:
        monkeypatch.setattr(shared_snapshot.SnapshotPublisher, "_publish", first_publish_interrupted)
    model = make_model(tmp_path / "m.onnx")
    status = main(["decode", "--stream", stream_name, "--model", str(model), "--no-audio", "--no-lsl-out",
                   "--timeout", "10", "--publish", name])
    assert status == 0, capsys.readouterr().err
    assert not snapshot_path(name).exists()


# ---------------------------------------------------------------------------------------------------
# Bad input: every one a one-line error through the CLI (exit status 2)


def _cli(argv, capsys):
    from eegmusic.stream.cli import main

    status = main(["decode", *argv])
    captured = capsys.readouterr()
    return status, captured.err.strip().splitlines()


@pytest.mark.lsl
@pytest.mark.untimed     # a refusal and its one line: nothing here is timed
@pytest.mark.parametrize("case", ["missing model", "no metadata", "truncated", "mismatch", "cuda absent",
                                  "no stream", "record exists", "bad hop", "bad duration",
                                  "bad device latency", "bad vocoder lookahead"])
def test_bad_inputs(case, tmp_path, stream_name, capsys):
    from eegmusic.replay.player import ArrayPlayer

    model = make_model(tmp_path / "m.onnx")
    args = ["--stream", stream_name, "--model", str(model), "--no-audio", "--duration", "0.5",
            "--timeout", "3"]
    expected = {
        "missing model": "does not exist",
        "no metadata": "no 'eegmusic' metadata",
        "truncated": "corrupt or truncated",
        "mismatch": "has 64 channels and lacks 60 the model needs",  # Cz: the GSN reference
        "cuda absent": "--device cuda was asked for but onnxruntime has no CUDA provider",
        "no stream": f"name='{stream_name}-absent'",
        "record exists": "already holds mel_db.f32",
        "bad hop": "hop 2 s is longer than the 1-s window allows; pass --hop up to 0.9985",
        "bad duration": "--duration must be > 0",
        "bad device latency": "--device-latency must be low, high or seconds in (0, 1] (got 'fast')",
        "bad vocoder lookahead": "--vocoder-lookahead 5 is not one rtisi offers; pass one of 0, 1, 2",
    }[case]
    labels = list(MODEL_CHANNELS)
    if case == "missing model":
        args[3] = str(tmp_path / "absent.onnx")
    elif case == "no metadata":
        args[3] = str(make_model(tmp_path / "bare.onnx", meta=None))
    elif case == "truncated":
        (tmp_path / "cut.onnx").write_bytes(model.read_bytes()[:300])
        args[3] = str(tmp_path / "cut.onnx")
    elif case == "mismatch":
        labels = [f"E{i}" for i in range(1, 65)]
    elif case == "cuda absent":
        from eegmusic.decoder.runtime import cuda_available

        if cuda_available():
            pytest.skip("CUDA is present here: the absent-CUDA error cannot occur")
        args += ["--device", "cuda"]
    elif case == "no stream":
        args[1] = f"{stream_name}-absent"
        args[-1] = "0.5"
    elif case == "record exists":
        (tmp_path / "rec").mkdir()
        (tmp_path / "rec" / "mel_db.f32").write_bytes(b"precious")
        args += ["--record", str(tmp_path / "rec")]
    elif case == "bad hop":
        args += ["--hop", "2"]
    elif case == "bad duration":
        args[6] = "-1"
    elif case == "bad device latency":
        args += ["--device-latency", "fast"]
    elif case == "bad vocoder lookahead":
        args += ["--vocoder-lookahead", "5"]
    eeg = np.zeros((len(labels), 125 * 30), np.float32)
    with ArrayPlayer(eeg, 125.0, labels, name=stream_name, source_id=stream_name, check_clash=False):
        status, err = _cli(args, capsys)
    assert status == 2
    assert len(err) >= 1 and expected in err[-1], err
    assert err[-1].startswith("eegmusic decode: error: ")
    if case == "no stream":
        assert stream_name in err[-1]                      # the streams that do exist are listed
    if case == "record exists":
        assert (tmp_path / "rec" / "mel_db.f32").read_bytes() == b"precious"


@pytest.mark.parametrize("case,message", [
    ("float64 output", "output 'mel_db' is tensor(double), not float32"),
    ("int32 subject", "input 'subject' is tensor(int32), not int64"),
    ("undeclared subject", "graph has a 'subject' input its metadata does not declare"),
    ("computes 128x40", "fails on a window: it computes output 'mel_db' of shape [1, 128, 40], its metadata "
                        "declares [batch, 128, 44]"),
])
def test_a_model_file_whose_graph_breaks_its_contract_is_one_line(case, message, tmp_path, capsys):
    """Each was a traceback (exit 1) from the warm-up window; the model is refused before any stream."""
    from onnx import TensorProto

    build = {"float64 output": dict(output_type=TensorProto.DOUBLE),
             "int32 subject": dict(subject_type=TensorProto.INT32, subject_input=True),
             "undeclared subject": dict(subject_type=TensorProto.INT64),
             "computes 128x40": dict(computed_frames=40)}[case]
    model = make_model(tmp_path / "m.onnx", **build)
    status, err = _cli(["--stream", "absent", "--model", str(model), "--no-audio", "--device", "cpu"], capsys)
    assert status == 2 and len(err) == 1 and message in err[0], err


def test_a_json_summary_that_cannot_be_written_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    """The folder exists, but nothing can be created in it: the summary was lost after the whole run.
    The option's check makes and removes a file there (stream.atomic.write_probe); a permission check
    passes /proc for root, and here for any user."""
    import os

    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)
    model = make_model(tmp_path / "m.onnx")
    status, err = _cli(["--stream", "absent", "--model", str(model), "--no-audio", "--timeout", "0.5",
                        "--json", "/proc/summary.json"], capsys)
    assert status == 2 and len(err) == 1, err
    assert "/proc" in err[0] and "absent" not in err[0], err       # before any stream is looked for


def test_lost_after_without_on_lost_exit_is_refused(tmp_path, capsys):
    """--lost-after only times --on-lost exit: with the default wait it was dropped silently."""
    model = make_model(tmp_path / "m.onnx")
    args = ["--stream", "absent", "--model", str(model), "--no-audio", "--timeout", "0.5"]
    status, err = _cli([*args, "--lost-after", "5"], capsys)
    assert status == 2 and len(err) == 1, err
    assert ("--lost-after 5 s times --on-lost exit, not --on-lost wait (the default when not given); pass "
            "--on-lost exit, or drop --lost-after") in err[0]
    status, err = _cli([*args, "--on-lost", "wait", "--lost-after", "5"], capsys)
    assert status == 2 and "not --on-lost wait" in err[0], err
    status, err = _cli([*args, "--on-lost", "exit", "--lost-after", "5"], capsys)
    assert status == 2 and "absent" in err[-1], err                # accepted: on to the stream


@pytest.mark.parametrize("kwargs,message", [
    (dict(model_path=None), "no model given"),
    (dict(no_audio=True, wav_path="x.wav"), "--wav and --no-audio exclude each other"),
    (dict(hop_s=0.001), "hop 0.001 s is below one mel frame .23.2 ms.; pass --hop 0.0232"),
    (dict(hop_s=0.1), "hop 0.1 s is not a whole number of mel frames .23.2 ms each.; pass --hop 0.0929 .4 "
                      "frames. or 0.1161 .5."),
    (dict(hop_s=1.0), "longer than the 1-s window allows; pass --hop up to 0.9985 .43 frames."),
    (dict(threads=0), "--threads must be >= 1"),
    (dict(vocoder_method="rtpghi", vocoder_lookahead=2),
     "--vocoder-lookahead 2 is not one rtpghi offers; pass one of 0, 1"),
])
def test_bad_config(kwargs, message, tmp_path):
    config = dict(stream_name="x", model_path=tmp_path / "m.onnx") | kwargs
    with pytest.raises(ConfigError, match=message):
        LivePipeline(PipelineConfig(**config))


def test_cli_help_has_example(capsys):
    from eegmusic.stream.cli import main

    with pytest.raises(SystemExit):
        main(["decode", "--help"])
    out = capsys.readouterr().out
    assert "eegmusic decode --stream" in out and "--truth" in out and "--record" in out


# ---------------------------------------------------------------------------------------------------
# Pieces: crash-safe recording, live truth alignment


def test_recording_readable_after_crash(tmp_path, rng):
    """A process killed mid-recording leaves files every reader opens, holding what was appended."""
    script = f"""
import os, numpy as np
from eegmusic.decoder.recording import FrameRecorder
rec = FrameRecorder({str(tmp_path / 'rec')!r}, sidecar={{}})
rng = np.random.default_rng(0)
for i in range(5):
    rec.append_frames(100 + 4 * i, rng.standard_normal((128, 4)).astype(np.float32), np.arange(4), 200, 1.0)
    rec.append_audio(np.full(2048, 0.25, np.float32))
os._exit(9)   # no close, no flush at exit
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=60)
    assert result.returncode == 9
    k, frames, source = read_frames(tmp_path / "rec")
    np.testing.assert_array_equal(k, np.arange(100, 120))
    np.testing.assert_allclose(frames, np.random.default_rng(0).standard_normal((5, 128, 4)).transpose(
        1, 0, 2).reshape(128, 20), rtol=1e-6)
    assert source.shape == (20, 3)
    import soundfile

    audio, rate = soundfile.read(tmp_path / "rec" / AUDIO_FILE, dtype="float32")
    assert rate == 22050 and len(audio) == 5 * 2048 and np.all(audio == 0.25)


def test_the_recording_keeps_decoded_peaks_beyond_full_scale_and_sanitises_only_non_finite(tmp_path):
    """The raw vocoder output exceeds ±1 before the player's limiter; decoded.wav holds it as decoded."""
    import soundfile

    rec = FrameRecorder(tmp_path / "rec", sidecar={})
    rec.append_audio(np.array([0.5, 1.75, -2.5, np.nan], np.float32))
    rec.close()
    audio, _ = soundfile.read(tmp_path / "rec" / AUDIO_FILE, dtype="float32")
    np.testing.assert_array_equal(audio, [0.5, 1.75, -2.5, 0.0])
    assert rec.wav.counters()["sanitised"] == 1


def test_partial_last_frame_dropped(tmp_path):
    rec = FrameRecorder(tmp_path / "rec", sidecar={}, audio=False)
    rec.append_frames(7, np.ones((128, 3), np.float32), np.arange(3), 200, 1.0)
    rec.close()
    with open(tmp_path / "rec" / "mel_db.f32", "ab") as f:
        f.write(b"\x00" * 100)                                   # a write cut short by a crash
    k, frames, _ = read_frames(tmp_path / "rec")
    np.testing.assert_array_equal(k, [7, 8, 9])


def test_live_truth_alignment(sim_dir):
    from eegmusic.decoder.melspec import FRAME_PERIOD_S

    truth = LiveTruth(StimulusFolder(sim_dir, sfreq=22050), recent_frames=200)
    mel = truth.load(21)
    t_marker = 1000.0
    truth.marker("song=21;t=5.000", t_marker)
    truth.load(21)
    k = np.arange(300, 500)                                     # frames of stimulus seconds ~7..11.6
    stamps = t_marker - 5.0 + k * FRAME_PERIOD_S
    truth.update(mel[:, k], stamps)
    assert truth.recent_scores()[0] == pytest.approx(1.0, abs=1e-6)
    assert truth.dynamic_r_total() == pytest.approx(1.0, abs=1e-6)
    shifted = LiveTruth(StimulusFolder(sim_dir, sfreq=22050), recent_frames=200)
    shifted.load(21)
    shifted.marker("song=21;t=5.000", t_marker)
    shifted.update(mel[:, k + 20], stamps)                     # 0.46 s off
    assert shifted.recent_scores()[0] < 0.9
    truth.marker("song_end=21", t_marker + 20)                  # other markers are ignored
    assert truth.song == 21


def test_live_truth_missing_stimulus(tmp_path, sim_dir):
    import shutil

    from eegmusic.stream.errors import DataFormatError

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(sim_dir / "song21_Imputed.mat", folder)
    truth = LiveTruth(StimulusFolder(folder, sfreq=22050))
    with pytest.raises(DataFormatError, match="no stimulus for song 21"):
        truth.load(21)


def _unlabelled_outlet(name: str, n_chans: int):
    """An outlet of ``n_chans`` channels with no labels, pushing zeros at 125 Hz from a thread."""
    import threading

    info = pylsl.StreamInfo(name, "EEG", n_chans, 125.0, pylsl.cf_float32, f"{name}-sid")
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=10)
    stop = threading.Event()

    def push():
        while not stop.wait(0.08):
            outlet.push_chunk(np.zeros((10, n_chans), np.float32))

    thread = threading.Thread(target=push, daemon=True)
    thread.start()
    return outlet, stop, thread


@pytest.mark.lsl
@pytest.mark.parametrize("n_chans", [125, 128])
def test_an_unlabelled_stream_of_a_known_net_is_decoded(n_chans, tmp_path, stream_name, capsys):
    # the stream stage reads an unlabelled 125-channel stream in model order and 128 channels as
    # E1..E128 (stream.channels.default_labels); decode's model check read them as ch0..: "lacks 125"
    model = make_model(tmp_path / "m.onnx")
    outlet, stop, thread = _unlabelled_outlet(stream_name, n_chans)
    try:
        # 3 s, not 1: the first 1-s window fills 1 s after the inlet opens, so a 1-s run decoded nothing
        # whenever the pushing thread or the decode started late (seen once in make test, under load)
        status, err = _cli(["--stream", stream_name, "--model", str(model), "--no-audio", "--no-lsl-out",
                            "--duration", "3", "--timeout", "5", "--json", str(tmp_path / "s.json")], capsys)
    finally:
        stop.set()
        thread.join()
        del outlet
    assert status == 0, err
    counters = json.loads((tmp_path / "s.json").read_text())["counters"]
    assert counters["windows"] > 0 and counters["frames"] > 0, counters  # decoded, not only connected


@pytest.mark.lsl
def test_lower_case_gsn_labels_are_a_gsn_net_and_a_refused_stream_opens_no_recording(tmp_path, stream_name,
                                                                                     capsys):
    from eegmusic.replay.player import ArrayPlayer

    model = make_model(tmp_path / "m.onnx")
    # 3 s: the recording must hold frames, and the first 1-s window fills only 1 s after the inlet opens
    args = ["--stream", stream_name, "--model", str(model), "--no-audio", "--no-lsl-out", "--duration", "3",
            "--timeout", "5"]
    # e1..e128 without Cz: a GSN amplifier, whose reference Cz is zero (labels are case-insensitive). The
    # model check passed it and the channel map then refused it ("lacks 1 the model needs (Cz)")
    labels = [f"e{i}" for i in range(1, 129)]
    with ArrayPlayer(np.zeros((128, 125 * 30), np.float32), 125.0, labels, name=stream_name,
                     source_id=stream_name, check_clash=False):
        status, err = _cli([*args, "--record", str(tmp_path / "rec")], capsys)
    assert status == 0, err
    assert (tmp_path / "rec" / "mel_db.f32").stat().st_size > 0
    # a rate the model check passes (above the model's) and the stream stage refuses (no short
    # resampling filter): refused before the recording opens. It was refused after, leaving empty frame
    # files that made the same --record folder refused on the next try
    with ArrayPlayer(np.zeros((125, 512 * 30), np.float32), 512.37, list(MODEL_CHANNELS), name=stream_name,
                     source_id=stream_name, check_clash=False):
        status, err = _cli([*args, "--record", str(tmp_path / "rec2")], capsys)
    assert status == 2 and "512.37 Hz cannot be resampled" in err[-1], err
    assert not (tmp_path / "rec2").exists() or not any((tmp_path / "rec2").iterdir())


def test_stream_error_lists_streams(stream_name, mel_model):
    from eegmusic.replay.player import ArrayPlayer

    eeg = np.zeros((125, 125 * 10), np.float32)
    with ArrayPlayer(eeg, 125.0, MODEL_CHANNELS, name=stream_name, source_id=stream_name, check_clash=False):
        config = PipelineConfig(stream_name=f"{stream_name}-nope", model_path=mel_model, no_audio=True,
                                resolve_timeout_s=0.3)
        with pytest.raises(StreamError, match=stream_name):
            LivePipeline(config).start()


# ---------------------------------------------------------------------------------------------------
# Scheduling: the live threads at real-time priority, and only when asked


def _policies(pipeline) -> dict[str, int]:
    """Thread name -> scheduling policy of the pipeline's decode and output threads (from the kernel)."""
    return {thread.name: os.sched_getscheduler(thread.native_id) for thread in pipeline._threads}


@pytest.mark.lsl
@pytest.mark.skipif(not hasattr(os, "sched_setscheduler") or os.geteuid() != 0,
                    reason="real-time threads need Linux and the permission root has")
def test_the_live_threads_run_real_time_unless_told_not_to(stream_name, replay, mel_model):
    common = dict(stream_name=stream_name, model_path=mel_model, device="cpu", no_audio=True, lsl_out=False)
    with LivePipeline(PipelineConfig(**common)) as pipeline:
        _wait(pipeline, 5)
        assert pipeline.summary()["scheduling"] == {"acquisition": "fifo", "decode": "fifo", "output": "fifo"}
        assert set(_policies(pipeline).values()) == {os.SCHED_FIFO}
        # The acquisition thread preempts the decode thread, the output thread preempts both: a
        # decoder that falls behind must drop windows, not starve the stream (below the decode
        # thread, acquisition of a 120x replay got 86 297 of 112 500 samples in 30 s, bench_faults).
        acquisition = os.sched_getparam(pipeline._source.inlet._thread.native_id).sched_priority
        decode, output = (os.sched_getparam(thread.native_id).sched_priority for thread in pipeline._threads)
        assert output > acquisition > decode, (output, acquisition, decode)
    with LivePipeline(PipelineConfig(**common, realtime=False)) as pipeline:
        _wait(pipeline, 5)
        assert pipeline.summary()["scheduling"] == {}
        assert set(_policies(pipeline).values()) == {os.SCHED_OTHER}


def test_a_skipped_window_is_coalesced_only_if_the_newest_holds_the_frames_it_adds():
    """0.3-s hop: one 150-sample chunk completes windows at 37, 75, 112 and 150. The 37 window's frames
    start at the previous window's end, 125, before the newest (150) begins: lost, a drop. The frames of
    75 and 112 start at 162 and 200, inside the newest: coalesced. (Judged by overlap, all three were.)"""
    import collections

    from eegmusic.decoder.pipeline import windows_to_decode
    from eegmusic.stream.ringbuffer import RingBuffer
    from eegmusic.stream.windower import Windower

    ring = RingBuffer(2, 1000)
    windower = Windower(ring, hop_s=0.3, queue_windows=100)
    for start, n, t_arrival in ((0, 125, 1.0), (125, 150, 2.0)):
        ring.write(np.zeros((2, n), np.float32), np.arange(start, start + n) / 125.0, 0)
        windower.update(t_arrival=t_arrival)
        if start == 0:
            assert windower.next_window(0).sample_index == 0
    counters = collections.Counter()
    assert windows_to_decode(windower, windower.next_window(0), counters)[-1].sample_index == 150
    assert counters == {"windows_coalesced": 2, "drops_decoder": 1}


def test_windows_one_late_chunk_completes_together_are_coalesced_not_dropped():
    """Only a window that waited while the decoder was busy is a decoder drop (real Windower)."""
    import collections

    from eegmusic.decoder.pipeline import windows_to_decode
    from eegmusic.stream.ringbuffer import RingBuffer
    from eegmusic.stream.windower import Windower

    ring = RingBuffer(2, 1000)
    windower = Windower(ring, hop_s=0.1, queue_windows=100)
    counters = collections.Counter()

    def feed(start, n, t_arrival):
        data = np.tile(np.arange(start, start + n, dtype=np.float32), (2, 1))
        ring.write(data, np.arange(start, start + n) / 125.0, 0)
        return windower.update(t_arrival=t_arrival)

    assert feed(0, 125, t_arrival=1.0) == 1
    first = windower.next_window(0)
    # a late chunk of 25 samples completes two windows at once: the source's burst
    assert feed(125, 25, t_arrival=2.0) == 2
    newest = windows_to_decode(windower, windower.next_window(0), counters)[-1]
    assert newest.sample_index > first.sample_index
    assert counters == {"windows_coalesced": 1}
    # two windows from two chunks, left waiting (the decoder was busy): a drop
    assert feed(150, 12, t_arrival=3.0) == 1
    assert feed(162, 13, t_arrival=3.1) == 1
    newest = windows_to_decode(windower, windower.next_window(0), counters)[-1]
    assert counters == {"windows_coalesced": 1, "drops_decoder": 1}
    assert windower.next_window(0) is None and newest.sample_index == 50
    # a stall's backlog in one 2-s chunk completes 20 windows (starts 62, 75, ..., 300; hop 12.5
    # samples): the newest, [300, 425), overlaps the 9 that start after 175; the 10 from 62 to 175
    # end before it begins, so their frames are lost: drops, not coalesced
    assert feed(175, 250, t_arrival=5.0) == 20
    before = counters.copy()
    newest = windows_to_decode(windower, windower.next_window(0), counters)[-1]
    assert newest.sample_index == 300
    assert counters - before == {"windows_coalesced": 9, "drops_decoder": 10}

    # one late chunk completing more windows than the queue holds: the ones it pushes out are the
    # source's burst too, not drops (a 250-ms chunk at a one-frame hop made 10 windows, 2 "dropped")
    small = Windower(RingBuffer(2, 1000), hop_s=0.1, queue_windows=3)
    small.ring.write(np.zeros((2, 125)), np.arange(125) / 125.0, 0)
    assert small.update(t_arrival=1.0) == 1
    assert small.next_window(0) is not None
    small.ring.write(np.zeros((2, 62)), np.arange(125, 187) / 125.0, 0)
    assert small.update(t_arrival=2.0) == 5
    assert (small.coalesced, small.dropped, small.pending()) == (2, 0, 3)
    # a window left waiting from an earlier chunk and pushed out is still a drop
    small.ring.write(np.zeros((2, 13)), np.arange(187, 200) / 125.0, 0)
    assert small.update(t_arrival=3.0) == 1
    assert (small.coalesced, small.dropped) == (2, 1)


# ---------------------------------------------------------------------------------------------------
# Broken timestamps, a dead acquisition thread, a stream back in another shape


class _PushingOutlet:
    """A 125-Hz outlet of the model's channels pushing zeros from a thread; ``shift`` s is added to its
    stamps from when it is set (a clock that steps; ``inf``: broken stamps)."""

    def __init__(self, name: str, *, n_chans: int = 125, labels=MODEL_CHANNELS):
        import threading

        info = pylsl.StreamInfo(name, "EEG", n_chans, 125.0, pylsl.cf_float32, f"{name}-sid")
        if labels is not None:
            info.set_channel_labels(list(labels))
        self.outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=10)
        self.shift = 0.0
        self.stop = threading.Event()
        t_start = pylsl.local_clock()

        def push():
            n = 0
            while not self.stop.wait(0.04):
                due = int((pylsl.local_clock() - t_start) * 125.0)
                if due > n:
                    stamps = t_start + np.arange(n, due) / 125.0 + self.shift
                    self.outlet.push_chunk(np.zeros((due - n, n_chans), np.float32), list(stamps))
                    n = due

        self.thread = threading.Thread(target=push, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        del self.outlet


@pytest.mark.lsl
@pytest.mark.parametrize("shift_s", [1e6, -1000.0, np.inf])
def test_a_clock_step_is_a_time_jump_and_skips_no_frame(shift_s, tmp_path, stream_name):
    """A forward step added int(step / frame period) (billions) to frames_skipped though none was
    skipped, a backward step was not counted at all, and infinite stamps killed the acquisition thread
    (then int(inf) in the same count)."""
    config = PipelineConfig(stream_name=stream_name, model_path=make_model(tmp_path / "m.onnx"),
                            no_audio=True, lsl_out=False, resolve_timeout_s=5)
    source = _PushingOutlet(stream_name)
    try:
        with LivePipeline(config) as pipeline:
            _wait(pipeline, 10)
            source.shift = shift_s
            _wait(pipeline, pipeline.counters()["windows"] + 50)
            counters, summary, running = pipeline.counters(), pipeline.summary(), pipeline.running
    finally:
        source.close()
    assert running and summary["error"] is None, summary
    assert counters["time_jumps"] >= 1 and counters["frames_skipped"] == 0, counters


@pytest.mark.lsl
def test_a_dead_acquisition_thread_ends_the_decode_with_one_line(tmp_path, stream_name, capsys, monkeypatch):
    """The acquisition thread died (an OverflowError on an infinite stamp) and the decode ran on,
    "connected" with no input, and exited 0."""
    from eegmusic.stream.inlet import Inlet

    inspect = Inlet._inspect
    calls = []

    def breaks_later(self, *args):
        calls.append(1)
        if len(calls) > 20:
            raise OverflowError("cannot convert float infinity to integer")
        return inspect(self, *args)

    monkeypatch.setattr(Inlet, "_inspect", breaks_later)
    model = make_model(tmp_path / "m.onnx")
    source = _PushingOutlet(stream_name)
    t0 = time.monotonic()
    try:
        status, err = _cli(["--stream", stream_name, "--model", str(model), "--no-audio", "--no-lsl-out",
                            "--duration", "20", "--timeout", "5", "--on-lost", "exit"], capsys)
    finally:
        source.close()
    assert status == 2 and time.monotonic() - t0 < 10, err
    assert err[-1].startswith("eegmusic decode: error: ") and "OverflowError" in err[-1], err
    assert "acquisition" in err[-1]


@pytest.mark.lsl
def test_on_lost_exit_names_why_the_stream_that_came_back_was_refused(tmp_path, stream_name, capsys):
    import threading

    model = make_model(tmp_path / "m.onnx")
    sources = [_PushingOutlet(stream_name)]

    def swap():
        time.sleep(2.0)
        sources[0].close()
        sources.append(_PushingOutlet(stream_name, n_chans=64, labels=[f"E{i}" for i in range(1, 65)]))

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        status, err = _cli(["--stream", stream_name, "--model", str(model), "--no-audio", "--no-lsl-out",
                            "--duration", "15", "--timeout", "5", "--on-lost", "exit", "--lost-after", "2"],
                           capsys)
    finally:
        swapper.join()
        sources[-1].close()
    assert status == 2, err
    assert "--on-lost exit" in err[-1] and "64 ch" in err[-1] and "does not match" in err[-1], err


@pytest.mark.lsl
@pytest.mark.untimed     # a refusal and its one line: nothing here is timed
def test_a_name_already_published_is_refused_before_any_output_opens(tmp_path, stream_name, capsys):
    """The refusal came after the decode started: --wav was truncated and --record left empty files."""
    import uuid

    from eegmusic.decoder.shared_snapshot import SnapshotWriter

    name = f"t{uuid.uuid4().hex[:10]}"
    busy = SnapshotWriter(name, n_chans=4, eeg_cols=100, mel_cols=10)
    model = make_model(tmp_path / "m.onnx")
    (tmp_path / "old.wav").write_bytes(b"precious")
    source = _PushingOutlet(stream_name)
    try:
        status, err = _cli(["--stream", stream_name, "--model", str(model),
                            "--wav", str(tmp_path / "old.wav"), "--overwrite", "--no-lsl-out",
                            "--duration", "2", "--timeout", "5",
                            "--publish", name, "--record", str(tmp_path / "rec")], capsys)
    finally:
        source.close()
        busy.close()
    assert status == 2 and len(err) == 1 and "already publishes as" in err[0], err
    assert (tmp_path / "old.wav").read_bytes() == b"precious"
    assert not (tmp_path / "rec").exists()


@pytest.mark.parametrize("output", [["--no-audio"], ["--wav", "out.wav"]])
def test_no_agc_without_a_sound_device_is_refused(output, tmp_path, capsys, monkeypatch):
    """--no-agc levels only what a sound device plays: with --no-audio or --wav it was ignored."""
    monkeypatch.chdir(tmp_path)
    model = make_model(tmp_path / "m.onnx")
    status, err = _cli(["--stream", "absent", "--model", str(model), *output, "--timeout", "0.5", "--no-agc"],
                       capsys)
    assert status == 2 and len(err) == 1, err
    assert f"--no-agc turns off the sound device's levelling, and {output[0]} plays to no device" in err[0]


# ---------------------------------------------------------------------------------------------------
# A model whose output leaves the mel-dB range: clipped before the vocoder, the recording and the score


class WildRuntime(DecoderRuntime):
    """A real DecoderRuntime whose output goes wild: every third window 1e30 times too loud (as absurd EEG
    input made it: frames of ±3.9e28 dB recorded, NumPy overflow warnings from the vocoder), the fifth NaN."""

    calls = 0

    def predict(self, window, out=None):
        result = super().predict(window, out)
        self.calls += 1
        if self.calls % 3 == 0:
            result *= np.float32(1e30)
        if self.calls == 5:
            result[:] = np.nan
        return result


@pytest.mark.lsl
def test_model_output_beyond_the_mel_range_is_clipped_and_counted(sim_dir, stream_name, replay, mel_model,
                                                                   tmp_path):
    record = tmp_path / "rec"
    config = PipelineConfig(stream_name=stream_name, model_path=mel_model, device="cpu", no_audio=True,
                            record_dir=record, lsl_out=False, truth_dir=sim_dir)
    with LivePipeline(config, runtime=WildRuntime(mel_model, device="cpu")) as pipeline:
        _wait(pipeline, 30)
    summary = pipeline.summary()
    _, frames, _ = read_frames(record)
    finite = np.isfinite(frames).all(axis=0)
    assert frames[:, finite].min() >= MEL_DB_GUARD_FLOOR and frames[:, finite].max() <= MEL_DB_CEILING
    counters = summary["counters"]
    assert counters["frames_clipped"] >= 5                          # counted, one per emitted frame
    assert counters["nonfinite_frames"] == int((~finite).sum()) >= 1   # played as silence, counted
    assert summary["truth"]["skipped_frames"] == counters["nonfinite_frames"]   # and not scored
    assert summary["dynamic_r_total"] is not None and np.isfinite(summary["dynamic_r_total"])
    assert summary["bad_channels"] == {}                            # the stream itself was clean
