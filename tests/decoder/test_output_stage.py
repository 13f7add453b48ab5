"""The output thread's sound: the stamps of a chunk's first sample, and the sink a config opens.

The device is a stand-in that holds a fixed backlog (a real device drains in real time, which would
make the expected stamps move while the test reads them); the pipeline-level behaviour through a
real sound server is in test_pipeline.py and test_latency_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eegmusic.decoder.audio import NullSink, WavSink
from eegmusic.decoder.output_stage import SoundOutput, open_sink
from eegmusic.decoder.pipeline_config import PipelineConfig
from eegmusic.stream.errors import ConfigError


class BackloggedDevice(NullSink):
    """A live sink holding ``backlog_s`` of audio ahead of whatever is written next (an AudioSink)."""

    backlog_s = 0.04
    output_latency_s = 0.012
    plays_live = True

    def __init__(self):
        super().__init__()
        self.last_chunk = 0

    def write(self, samples, *, block=True):
        self.last_chunk = len(samples)
        return super().write(samples, block=block)

    @property
    def queued_s(self):
        return self.backlog_s + self.last_chunk / 22050


def test_a_chunk_is_stamped_at_its_first_sample_behind_the_backlog():
    device = BackloggedDevice()
    sound = SoundOutput(PipelineConfig(model_path="m.onnx"), device)
    stamps = {}
    sound.play(np.full(512, 0.1, np.float32), stamps)    # 40 ms ahead: above the floor, no top-up
    assert device.counters()["written"] == 512
    # the first sample waits behind the 40 ms ahead of it, not behind the chunk itself as well
    assert stamps["queued"] - stamps["buffered"] == pytest.approx(0.04, abs=1e-6)
    assert stamps["dac"] - stamps["queued"] == pytest.approx(0.012)


def test_the_audio_the_output_stage_skips_or_pads_is_in_the_summary():
    """A decode skipped about 0.9 s of late audio and its summary said only 'drops 0': the audio's
    own cuts and fills are printed."""
    from eegmusic.decoder.cli_decode import _audio_lines

    device = BackloggedDevice()
    sound = SoundOutput(PipelineConfig(model_path="m.onnx"), device)
    device.backlog_s = 0.0                         # running dry: padded
    sound.play(np.full(512, 0.1, np.float32), {})
    device.backlog_s = 1.0                         # a backlog far beyond any cushion: skipped
    sound.play(np.full(2048, 0.1, np.float32), {})
    counts = dict(sound.counters)
    assert counts["audio_dropped_late"] > 0 and counts["audio_padded"] > 0
    line = " ".join(_audio_lines(counts))
    assert f"skipped to hold latency {1e3 * counts['audio_dropped_late'] / 22050:.0f} ms" in line
    assert f"padded {1e3 * counts['audio_padded'] / 22050:.0f} ms" in line
    assert _audio_lines({}) == []                  # a file or no audio: nothing cut, no line


def test_a_file_or_no_sink_has_no_device_stages_to_estimate(tmp_path):
    """A decode into a WAV file or into nothing listed 'queued_to_dac (estimate)' and 'audio_to_dac
    (estimate)' rows (48 ms) in its summary: there is no device, so no such stage."""
    from eegmusic.decoder.latency import LatencyTracker, format_table

    tracker = LatencyTracker()
    for sink in (NullSink(), WavSink(tmp_path / "out.wav")):
        stamps = {"audio": 0.0, "arrival": 0.5}
        SoundOutput(PipelineConfig(model_path="m.onnx"), sink).play(np.zeros(512, np.float32), stamps)
        sink.close()
        assert "buffered" in stamps and "queued" not in stamps and "dac" not in stamps
        tracker.record(stamps)
    table = format_table(tracker.percentiles())
    assert "arrival_to_buffered" in table and "dac" not in table and "queued" not in table, table
    device = BackloggedDevice()                      # a device: the estimates are there
    stamps = {"audio": 0.0}
    SoundOutput(PipelineConfig(model_path="m.onnx"), device).play(np.zeros(512, np.float32), stamps)
    assert {"queued", "dac"} <= set(stamps)


def test_a_wav_falls_to_a_stalls_silence_and_rises_from_it(tmp_path):
    """The file sink got the stall's silence right after the last sample (a full-height cut) and the
    sound after it at full height: the clicks a sound device no longer makes. The silence comes in
    several small pieces, as the output thread writes it, so the fall must carry across them."""
    import time

    import soundfile

    t = np.arange(4410) / 22050
    tone = (0.5 * np.cos(2 * np.pi * 220.0 * t)).astype(np.float32)   # starts and ends near +0.5
    sink = WavSink(tmp_path / "out.wav")
    sound = SoundOutput(PipelineConfig(model_path="m.onnx"), sink)
    sound.play(tone, {})
    # just past the end of the file's audio in real time: the first piece of silence is a few samples
    time.sleep(max(sound._audio_wall_end - time.monotonic(), 0.0) + 0.001)
    for _ in range(10):
        sound.silence_while_stalled("stalled")
        time.sleep(0.005)             # about 110 samples a piece, the first a few: the fall spans pieces
    sound.silence_while_stalled("connected")
    for _ in range(3):                # a second stall before any sound: it started again at full height
        time.sleep(0.005)
        sound.silence_while_stalled("stalled")
    sound.silence_while_stalled("connected")
    sound.play(tone, {})
    sink.close()
    audio, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    assert sound.counters["audio_silence_gaps"] == 2 and np.abs(audio).max() > 0.45
    assert np.count_nonzero(audio == 0.0) > 500                         # the silence is there
    # a 220-Hz tone at 0.5 moves at most 0.031 a sample; a cut moved 0.5
    assert np.abs(np.diff(audio)).max() < 0.05, np.abs(np.diff(audio)).max()


def test_listen_true_plays_no_stimulus_from_before_a_gap_at_the_stop(sim_dir):
    """With --listen true the vocoder's tail at a stop plays the stimulus after the last chunk. After a gap
    that no frame followed (an emission with skipped frames and none of its own), the vocoder has started
    again from silence and holds nothing: the tail played the stimulus from before the gap."""
    from eegmusic.decoder.audio import EDGE_RAMP_SAMPLES
    from eegmusic.decoder.frameclock import FrameEmission
    from eegmusic.decoder.truth import LiveTruth
    from eegmusic.decoder.vocoder import StreamingVocoder
    from eegmusic.stream.stimulus import StimulusFolder

    class Kept(NullSink):
        def write(self, samples, *, block=True):
            self.last = np.array(samples)
            return super().write(samples, block=block)

    truth = LiveTruth(StimulusFolder(sim_dir, sfreq=22050), keep_audio=True)
    truth.load(21)
    truth.marker("song=21;t=5.000", 1000.0)
    frames = np.full((128, 20), -20.0, np.float32)
    for gap in (False, True):
        sink = Kept()
        sound = SoundOutput(PipelineConfig(model_path="m.onnx", listen="true"), sink,
                            vocoder=StreamingVocoder(), truth=truth)
        samples, _, k0 = sound.vocode(FrameEmission(0, frames, np.arange(20), 0))
        sound.play(sound.listened(samples, sound.audio_start(1001.0, k0)), {})
        if gap:
            sound.vocode(FrameEmission(30, frames[:, :0], np.arange(0), 10))
        tail = sound.flush()
        after_ramp = sink.last[EDGE_RAMP_SAMPLES:]      # past the fall from the sound before the gap
        assert len(tail) > EDGE_RAMP_SAMPLES
        assert not after_ramp.any() if gap else np.abs(after_ramp).max() > 1e-3


def test_one_gap_resets_the_vocoder_once_even_when_its_first_emission_is_empty():
    from eegmusic.decoder.frameclock import FrameEmission
    from eegmusic.decoder.vocoder import StreamingVocoder

    sound = SoundOutput(PipelineConfig(model_path="m.onnx"), NullSink(), vocoder=StreamingVocoder())
    frames = np.full((128, 2), -40.0, np.float32)

    def emission(k0, n, skipped=0):
        return FrameEmission(k0, frames[:, :n], np.arange(n), skipped)

    sound.vocode(emission(0, 2))
    sound.vocode(emission(2, 2))
    assert sound.counters["vocoder_resets"] == 0
    # a gap: 5 frames no window covered, announced by an emission with no frames yet (smoothing holds
    # them back); the emissions after it continue from frame 9 on
    sound.vocode(emission(9, 0, skipped=5))
    sound.vocode(emission(9, 2))
    sound.vocode(emission(11, 2))
    assert sound.counters["vocoder_resets"] == 1 and sound.counters["frames_skipped"] == 5
    assert sound.counters["frames"] == 8


def test_the_sink_follows_the_config(tmp_path):
    assert isinstance(open_sink(PipelineConfig(model_path="m.onnx", no_audio=True)), NullSink)
    wav = open_sink(PipelineConfig(model_path="m.onnx", wav_path=tmp_path / "out.wav"))
    assert isinstance(wav, WavSink) and not wav.plays_live
    wav.close()


def test_a_temporary_wav_is_named_in_messages_as_the_file_it_becomes(tmp_path, caplog, capsys):
    """The demo's --wav is written to a temporary file renamed once complete; what the user reads names
    the file they asked for, in this process and in the decode the dashboard starts."""
    from eegmusic.gui.attach import decode_command
    from eegmusic.stream.cli import build_parser

    part, final = tmp_path / ".out.x1.part.wav", tmp_path / "out.wav"
    config = PipelineConfig(model_path="m.onnx", wav_path=part, wav_shown_as=final)
    config.validate()
    sink = open_sink(config)
    with caplog.at_level("WARNING", logger="eegmusic.decoder"):
        sink.write(np.array([0.0, np.nan, 0.5], dtype=np.float32))
    sink.close()
    assert part.is_file() and not final.exists()      # only the name shown changes
    assert str(final) in caplog.text and part.name not in caplog.text, caplog.text
    argv = decode_command(config, "pub")
    args = build_parser().parse_args(argv[argv.index("decode"):])
    assert (Path(args.wav), Path(args.wav_shown_as)) == (part, final)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["decode", "--help"])
    assert "--wav-shown-as" not in capsys.readouterr().out     # for callers, not users


def test_a_shown_name_without_a_wav_is_refused():
    with pytest.raises(ConfigError, match="--wav-shown-as.*no --wav"):
        PipelineConfig(model_path="m.onnx", wav_shown_as="out.wav").validate()


def _summary(seconds: float) -> dict:
    """The parts of LivePipeline.summary() the terminal summary reads."""
    counters = {key: 0 for key in ("windows", "windows_caught_up", "drops", "drops_decoder", "drops_stream",
                                   "drops_output_queue", "gaps", "reconnects", "underruns", "frames",
                                   "frames_skipped", "flagged_windows")}
    return {"stream": "cap", "seconds": seconds, "model": "m.onnx", "provider": "CPU", "counters": counters,
            "latency_ms": {}, "vocoder_latency_ms": 69.7, "smoothing_latency_ms": 0.0,
            "dynamic_r": 0.21, "dynamic_r_total": 0.2,
            "truth": {"song": 21, "scored_frames": round(seconds * 22050 / 512), "dynamic_r_window_s": 9.98}}


def test_the_summary_says_how_long_the_true_stimulus_was_not_found():
    """``--listen true|both`` plays silence where no marker places the stimulus yet (or its song is not
    loaded): the output stage counted those samples, and neither the counters nor the summary said so."""
    from eegmusic.decoder.cli_decode import format_summary

    summary = _summary(5.0)
    assert "true stimulus not found" not in format_summary(summary)
    summary["counters"]["listen_true_missing"] = 11025
    assert "  true stimulus not found 500 ms (silence instead)" in format_summary(summary)


def test_the_summary_says_what_the_gaps_lost_and_timestamps_that_went_back():
    """The inlet counted the samples its gaps lost and the timestamps that went back in time; the summary
    said only how many gaps."""
    from eegmusic.decoder.cli_decode import format_summary

    summary = _summary(5.0)
    assert "missing" not in format_summary(summary) and "back in time" not in format_summary(summary)
    summary["counters"].update(gaps=2, missing_samples=50, non_monotonic=3)
    assert "gaps 2 (50 samples missing)  timestamps back in time 3  reconnects 0" in format_summary(summary)


@pytest.mark.parametrize(("seconds", "said", "not_said"), [
    (5.0, "whole run 0.200", "last 10 s"),          # a 5-s run has no 10 s of its own to show
    (30.0, "last 10 s 0.210, whole run 0.200", None),
])
def test_the_summary_names_what_its_figures_cover(seconds, said, not_said):
    """It said 'last 10 s' after a 3-s run, and 'vocoder look-ahead 23.2 ms' with --vocoder-lookahead 0
    (the figure is the vocoder's whole delay: look-ahead and the synthesis window's overlap)."""
    from eegmusic.decoder.cli_decode import format_summary

    text = format_summary(_summary(seconds))
    assert said in text and (not_said is None or not_said not in text), text
    assert "vocoder delay 69.7 ms" in text and "look-ahead 69.7" not in text
    # it is inside audio_to_eeg, and said so: not a '+' on top of the table
    assert "audio_to_eeg is stimulus time" in text and "+ vocoder" not in text


def test_constant_baselines_print_as_n_a_with_the_reason_not_as_a_score():
    from eegmusic.decoder.cli_decode import format_summary
    from eegmusic.decoder.metrics import CONSTANT_NOTE

    summary = {**_summary(5.0), "baseline_dynamic_r_total": {"global_mean": None, "song_mean": None},
               "baseline_constant": ["global_mean", "song_mean"]}
    text = format_summary(summary)
    assert f"global-mean baseline n/a, song-mean baseline n/a (both baselines: {CONSTANT_NOTE})" in text, text
    summary.update(baseline_dynamic_r_total={"global_mean": -0.01, "song_mean": 0.02}, baseline_constant=[])
    assert "global-mean baseline -0.010, song-mean baseline 0.020" in format_summary(summary)
    # a song outside the model's training part: why its song mean is missing, as the dashboard says it
    summary.update(baseline_dynamic_r_total={"global_mean": -0.01, "song_mean": None})
    assert "song-mean baseline n/a (a scored song is not in the model's training data)" in \
        format_summary(summary)


def test_a_playlist_summary_scores_each_song_beside_its_own_baselines():
    from eegmusic.decoder.cli_decode import format_summary

    one = {"21": {"scored_frames": 2000, "dynamic_r_total": 0.3, "baseline_constant": [],
                  "baseline_dynamic_r_total": {"global_mean": 0.01, "song_mean": 0.02}}}
    summary = {**_summary(30.0), "baseline_dynamic_r_total": {"global_mean": 0.01, "song_mean": None},
               "baseline_constant": [], "scores_by_song": one}
    assert "song 21 (" not in format_summary(summary)       # one song: the whole-run line says it all
    summary["scores_by_song"] = {**one, "22": {
        "scored_frames": 900, "dynamic_r_total": 0.1, "baseline_dynamic_r_total": {"global_mean": -0.02,
                                                                                   "song_mean": None},
        "baseline_constant": []}}
    text = format_summary(summary)
    assert "song 21 (2000 frames): decoder 0.300, global-mean baseline 0.010, song-mean baseline 0.020\n" \
        in text
    assert ("song 22 (900 frames): decoder 0.100, global-mean baseline -0.020, song-mean baseline n/a (a "
            "scored song is not in the model's training data)") in text, text


def test_the_summary_says_where_the_device_and_the_live_threads_run_otherwise_than_asked():
    """The README promised it ('a device that refuses falls back to high, and the summary says so'; 'the
    summary says when they did not' get real-time priority; 'watch the summary's device_restarts'), but
    each was only a log line or a JSON field."""
    from eegmusic.decoder.cli_decode import format_summary
    from eegmusic.decoder.realtime import REFUSED_HINT

    clean = format_summary({**_summary(30.0), "scheduling": {"decode": "fifo", "output": "fifo"},
                            "audio_device_note": None})
    assert "refused" not in clean and "reopened" not in clean
    summary = {**_summary(30.0), "scheduling": {"decode": "normal", "output": "nice", "acquisition": "fifo"},
               "audio_device_note": "audio device 'x' refused latency 'low' (err); playing at its default "
                                    "80 ms instead: pick another --audio-device for lower latency"}
    summary["counters"]["device_restarts"] = 2
    text = format_summary(summary)
    assert "  audio device 'x' refused latency 'low' (err); playing at its default 80 ms" in text, text
    assert "  audio device reopened 2 times at its default latency after it stopped calling back" in text
    assert (f"  real-time priority refused: decode thread at normal priority, output thread at nice -10; "
            f"{REFUSED_HINT}") in text


def test_the_summary_names_bad_channels_and_broken_frames_only_when_there_are_some():
    """A dead (NaN) electrode was named nowhere in the summary, and frames a broken model made
    (non-finite, or beyond the mel range) were counted nowhere on the terminal."""
    from eegmusic.decoder.cli_decode import format_summary

    clean = format_summary(_summary(30.0))
    assert "without a measurement" not in clean and "nonfinite" not in clean and "clipped" not in clean
    summary = _summary(30.0)
    summary["counters"].update(nonfinite_frames=3, frames_clipped=7)
    summary["bad_channels"] = {"E6": 30.0, "E12": 2.4}
    text = format_summary(summary)
    assert "flagged windows 0  nonfinite frames 3  frames clipped 7" in text, text
    said = "channels without a measurement for over 1 s (zeroed, their windows flagged): E6 30.0 s, E12 2.4 s"
    assert said in text, text


@pytest.mark.audio
def test_a_cushions_silence_after_a_dry_ring_does_not_click(pulse_sink):
    """After the device's ring ran dry, the next chunk comes behind silence the output stage writes as a
    cushion; the device's rise ramped only that silence, and the chunk behind it began at full height (a
    step of 0.5 here, measured on the sink's monitor). The stage now rises from its own silence. A 220-Hz
    tone at 0.5 moves at most 0.031 a sample; each chunk starts and ends at its peak."""
    import time

    from eegmusic.decoder.audio import SoundDeviceSink

    t = np.arange(4410) / 22050
    tone = (0.5 * np.cos(2 * np.pi * 220.0 * t)).astype(np.float32)   # starts and ends near +0.5

    def play():
        with SoundDeviceSink(device="default", blocksize=256) as sink:
            sound = SoundOutput(PipelineConfig(model_path="m.onnx"), sink)
            time.sleep(0.3)   # the device running (silent) first: a sound server may drop a stream's start
            sound.play(tone, {})
            deadline = time.monotonic() + 10.0
            while sink.counters()["underruns"] < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            sound.play(tone, {})
            sink.drain()
        return sound.counters

    recorded, counters = pulse_sink.record_whole(play, chunks=2, chunk_samples=tone.size)
    assert counters["audio_padded"] > 0                    # the second chunk came behind a cushion
    assert np.abs(recorded).max() > 0.4
    assert np.abs(np.diff(recorded)).max() < 0.1, np.abs(np.diff(recorded)).max()


def test_the_vocoders_tail_rises_from_a_stalls_silence_in_a_wav(tmp_path):
    """A stream that stalled and then ended: the file got the stall's silence, and then flush() wrote
    the vocoder's tail (what its look-ahead still held) at full height after it, a click."""
    import time

    import soundfile
    from eegmusic.decoder.frameclock import FrameEmission
    from eegmusic.decoder.vocoder import StreamingVocoder

    sink = WavSink(tmp_path / "out.wav")
    sound = SoundOutput(PipelineConfig(model_path="m.onnx"), sink, vocoder=StreamingVocoder())
    frames = np.full((128, 40), -10.0, np.float32)       # loud, broadband: a tail far from zero
    audio, _, _ = sound.vocode(FrameEmission(0, frames, np.arange(40), 0))
    sound.play(audio, {})
    time.sleep(max(sound._audio_wall_end - time.monotonic(), 0.0) + 0.05)
    sound.silence_while_stalled("lost")                  # about 0.05 s of silence, then the stream ends
    tail = sound.flush()
    sink.close()
    audio, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    written = sound.counters["audio_silence"]
    assert written > 500 and np.abs(tail).max() > 0.05   # both there: the test can see a step
    start = len(audio) - len(tail)                        # the tail's first sample in the file
    assert np.all(audio[start - 200:start] == 0.0)        # silence just before it
    # the tail's own first samples reach 0.8 of its peak; rising from the silence, its first 8 stay
    # under 8/65 of it
    head = np.abs(audio[start:start + 8]).max()
    assert head < 0.2 * np.abs(tail).max(), (head, np.abs(tail).max())


class KeptDevice(BackloggedDevice):
    """A live sink holding exactly ``backlog_s`` ahead of the next write, keeping what it is given."""

    backlog_s = 0.05

    def __init__(self):
        super().__init__()
        self.written: list[np.ndarray] = []

    def write(self, samples, *, block=True):
        self.written.append(np.array(samples))
        return super().write(samples, block=block)

    @property
    def queued_s(self):
        return self.backlog_s


def test_a_skip_to_hold_latency_is_crossfaded_not_a_click():
    """A chunk whose start was skipped (a stalled device's backlog: PulseAudio's start-up here) was
    written from its first kept sample on, a step from the sound before it of up to the whole
    waveform's height. It now rises from the last sample written, as the sound after silence does."""
    t = np.arange(2 * 4410) / 22050
    tone = (0.5 * np.cos(2 * np.pi * 220.0 * t)).astype(np.float32)
    device = KeptDevice()
    sound = SoundOutput(PipelineConfig(model_path="m.onnx"), device)
    sound.play(tone[:4410], {})                     # above the margin, within the cushion: as it is
    assert sound.counters["audio_dropped_late"] == 0
    device.backlog_s = 0.2                          # a backlog: most of the next chunk is skipped
    sound.play(tone[4410:], {})
    trim = sound.counters["audio_dropped_late"]
    assert 0 < trim < 4410 - 64                     # a skip inside the chunk, the rest written
    # the skip lands where the tone is far from where it was: a cut there is a click
    assert abs(tone[4410 + trim] - tone[4409]) > 0.2
    heard = np.concatenate(device.written)
    assert len(heard) == 2 * 4410 - trim
    # a 220-Hz tone at 0.5 moves at most 0.031 a sample; the 64-sample crossfade no more than that
    assert np.abs(np.diff(heard)).max() < 0.05, np.abs(np.diff(heard)).max()
    np.testing.assert_array_equal(heard[4410 + 64:], tone[4410 + trim + 64:])   # then the sound as it is


def _written(sink: WavSink) -> np.ndarray:
    """Everything ``sink`` was given, read back from its file (closed here)."""
    import soundfile

    sink.close()
    return soundfile.read(sink.path, dtype="float32")[0]


def test_the_ab_switch_and_a_lost_stimulus_are_crossfaded_not_clicks(tmp_path):
    """``--listen`` changed by the dashboard's A/B switch played the other sound from its next chunk on, a
    step of up to the waveform's height at every press; so did the stimulus found or lost. (A WAV sink:
    it takes every chunk as it is, with no cushion or skip of its own.)"""
    import soundfile
    from eegmusic.decoder.truth import LiveTruth
    from eegmusic.stream.stimulus import StimulusFolder

    (tmp_path / "stimuli").mkdir()
    t = np.arange(10 * 22050) / 22050
    stimulus = (0.5 * np.cos(2 * np.pi * 220.0 * t)).astype(np.float32)   # moves at most 0.031 a sample
    soundfile.write(tmp_path / "stimuli" / "song21.wav", stimulus, 22050, subtype="FLOAT")
    truth = LiveTruth(StimulusFolder(tmp_path, sfreq=22050), keep_audio=True)
    truth.load(21)
    truth.marker("song=21;t=5.000", 1000.0)                 # second 5 played at LSL 1000.0
    config = PipelineConfig(model_path="m.onnx")
    sink = WavSink(tmp_path / "heard.wav", subtype="FLOAT")
    sound = SoundOutput(config, sink, truth=truth)
    true = stimulus[6 * 22050:]                             # what plays from LSL 1001.0 on

    def chunk(at: int, listen: str, level: float) -> None:  # ``at``: samples past LSL 1001.0
        config.listen = listen
        sound.play(sound.listened(np.full(1024, level, np.float32), 1001.0 + at / 22050), {})

    # decoded sound on the far side of zero from the stimulus where each switch lands: a cut there is a
    # step of 0.5 or more
    before, after = -0.5 * np.sign(true[1024]), -0.5 * np.sign(true[2047])
    for i, (listen, level) in enumerate((("decoded", before), ("true", 0.0), ("decoded", after))):
        chunk(i * 1024, listen, level)
    # the stimulus lost (another song's marker, its audio not loaded): the stimulus chunk before it ends
    # at the tone's peak
    end = 3 * 1024 + int(np.argmax(true[3 * 1024:4 * 1024]))
    chunk(end - 1023, "true", 0.0)
    truth.marker("song=22;t=0.000", 1001.0 + (end + 1) / 22050)
    chunk(end + 1, "true", 0.0)
    assert sound.counters["listen_true_missing"] == 1024
    # and found again (the first song's marker back), coming back at the tone's peak
    start = 6 * 1024 + int(np.argmax(true[6 * 1024:7 * 1024]))
    truth.marker("song=21;t=5.000", 1000.0)
    chunk(start, "true", 0.0)
    heard = _written(sink)
    assert len(heard) == 6 * 1024
    np.testing.assert_array_equal(heard[1024 + 64:2048], true[1024 + 64:2048])   # the stimulus itself
    # the loss falls to silence, the return rises from it
    assert heard[4095] > 0.49 and not heard[4096 + 64:5120].any()
    assert heard[5120 + 64] == true[start + 64]
    # each seam moves over 64 samples: no step beyond the tone's own and 1/64 of the jump
    assert np.abs(np.diff(heard)).max() < 0.05, np.abs(np.diff(heard)).max()


def test_the_sound_after_a_vocoder_reset_or_a_waveform_gap_is_crossfaded_not_a_click(tmp_path):
    """Frames no window covered reset the vocoder, which starts again from silence: the sound fell to it
    in one sample (a step of up to 0.7 measured on a two-tone mel). So did a waveform model's chunk after
    samples its clock skipped."""
    from eegmusic.decoder.frameclock import FrameEmission
    from eegmusic.decoder.melspec import mel_db
    from eegmusic.decoder.vocoder import StreamingVocoder

    t = np.arange(3 * 22050) / 22050
    tones = (0.5 * np.sin(2 * np.pi * 220 * t) + 0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    mel = mel_db(tones).astype(np.float32)
    sink = WavSink(tmp_path / "vocoded.wav", subtype="FLOAT")
    sound = SoundOutput(PipelineConfig(model_path="m.onnx"), sink, vocoder=StreamingVocoder())
    gap = 46                        # a gap where the sound is far from silence (a step of 0.67 measured)

    def play(k0: int, n: int, skipped: int = 0) -> np.ndarray:
        audio, _, _ = sound.vocode(FrameEmission(k0, mel[:, k0:k0 + n], np.arange(n), skipped))
        sound.play(audio, {})
        return audio

    before = np.concatenate([play(k, 2) for k in range(0, gap, 2)])
    after = play(gap + 5, 20, skipped=5)
    assert sound.counters["vocoder_resets"] == 1
    natural = np.abs(np.diff(before)).max()
    assert abs(after[0] - before[-1]) > natural + 0.2                     # a cut here is a click
    heard = _written(sink)
    assert len(heard) == len(before) + len(after)
    assert np.abs(np.diff(heard)).max() < natural + 0.03, (np.abs(np.diff(heard)).max(), natural)

    # a waveform model: its chunks continue each other until the clock skips samples
    sink = WavSink(tmp_path / "waveform.wav", subtype="FLOAT")
    sound = SoundOutput(PipelineConfig(model_path="m.onnx"), sink)
    skip_to = 3072 + int(np.argmax(np.abs(tones[3072:6144] - tones[2047])))   # far from where it was
    assert abs(tones[skip_to] - tones[2047]) > 0.5
    for first in (0, 1024, skip_to):                # samples skipped before the third
        sound.follows(first, 1024)
        sound.play(tones[first:first + 1024], {})
    heard = _written(sink)
    np.testing.assert_array_equal(heard[:2048], tones[:2048])                  # continued as it is
    assert np.abs(np.diff(heard)).max() < np.abs(np.diff(tones)).max() + 0.03
