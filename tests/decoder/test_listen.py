"""``decode --listen true|decoded|both``: the true stimulus, aligned to the same EEG time by the markers."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.decoder.melspec import FRAME_PERIOD_S
from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
from eegmusic.decoder.truth import LiveTruth
from eegmusic.stream.errors import ConfigError
from eegmusic.stream.stimulus import StimulusFolder

from tests.decoder.onnx_models import make_model
from tests.decoder.test_pipeline import _start_replay, _stop, _wait

RATE = 22050


def test_true_stimulus_follows_the_marker_to_the_sample(sim_dir):
    stimuli = StimulusFolder(sim_dir, sfreq=RATE)
    audio = stimuli.load_stimulus(21)
    truth = LiveTruth(stimuli, keep_audio=True)
    assert truth.stimulus_audio(1000.0, 512) is None                  # no marker yet
    truth.load(21)
    truth.marker("song=21;t=5.000", 1000.0)                          # second 5 played at LSL 1000.0
    np.testing.assert_array_equal(truth.stimulus_audio(1001.0, 2048)[0], audio[6 * RATE:6 * RATE + 2048])
    # a later marker re-anchors: second 7 at LSL 1001.5 (the replay paused half a second)
    truth.marker("song=21;t=7.000", 1001.5)
    np.testing.assert_array_equal(truth.stimulus_audio(1001.5 + FRAME_PERIOD_S, 512)[0],
                                  audio[7 * RATE + 512:7 * RATE + 1024])
    # before the song and past its end: silence, never another part of the song
    before, _ = truth.stimulus_audio(1001.5 - 7.0 - 256 / RATE, 441)
    assert before.shape == (441,) and not before[:256].any()
    np.testing.assert_array_equal(before[256:], audio[:441 - 256])
    tail, _ = truth.stimulus_audio(1001.5 - 7.0 + (len(audio) - 220) / RATE, 441)
    np.testing.assert_array_equal(tail[:220], audio[-220:])
    assert not tail[220:].any()
    # a chunk placed within a frame of where the previous one ended continues it seamlessly
    first, next_start = truth.stimulus_audio(1001.5 + 1.0, 1024)
    second, _ = truth.stimulus_audio(1001.5 + 1.0 + (1024 + 100) / RATE, 1024, follow_from=next_start)
    np.testing.assert_array_equal(np.concatenate([first, second]), audio[8 * RATE:8 * RATE + 2048])
    jumped, _ = truth.stimulus_audio(1001.5 + 2.0, 512, follow_from=next_start)    # a seek: followed
    np.testing.assert_array_equal(jumped, audio[9 * RATE:9 * RATE + 512])


def test_without_keep_audio_no_true_sound(sim_dir):
    truth = LiveTruth(StimulusFolder(sim_dir, sfreq=RATE))
    truth.load(21)
    truth.marker("song=21;t=5.000", 1000.0)
    assert truth.stimulus_audio(1001.0, 512) is None


@pytest.mark.parametrize("listen", ["true", "both"])
def test_listen_true_without_truth_is_refused(tmp_path, listen):
    config = PipelineConfig(stream_name="x", model_path=tmp_path / "m.onnx", listen=listen)
    with pytest.raises(ConfigError, match=f"^--listen {listen} plays the true stimulus .*pass --truth DATA"):
        LivePipeline(config)


def test_listen_true_cli_is_one_line_exit_2(tmp_path, capsys):
    from eegmusic.stream.cli import main

    status = main(["decode", "--stream", "x", "--model", str(tmp_path / "m.onnx"), "--listen", "true"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "pass --truth DATA" in err[0], err


def test_listen_with_no_audio_points_decode_to_wav(tmp_path, capsys):
    """decode has --wav: it keeps what is heard, so the message may offer it (gui, which has none, may not:
    tests/gui/test_app.py)."""
    from eegmusic.stream.cli import main

    status = main(["decode", "--stream", "x", "--model", str(tmp_path / "m.onnx"), "--no-audio", "--listen",
                   "both"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "drop --no-audio (or pass --wav FILE to keep what is heard), or drop --listen" in err[0]


@pytest.mark.lsl
@pytest.mark.untimed
def test_listen_true_without_markers_is_refused(sim_dir, stream_name, tmp_path):
    proc = _start_replay(sim_dir, stream_name, "--loop", "--no-markers")
    try:
        config = PipelineConfig(stream_name=stream_name, model_path=make_model(tmp_path / "m.onnx"),
                                device="cpu", no_audio=True, truth_dir=sim_dir, listen="true", lsl_out=False)
        with pytest.raises(ConfigError, match="needs the replay's marker stream"):
            LivePipeline(config).start()
    finally:
        _stop(proc)


def _listen_true(data, truth, stream_name, tmp_path, seconds: float) -> LivePipeline:
    """A looping replay of song 21 of ``data`` decoded for ``seconds`` with ``--listen true --truth truth``
    into ``tmp_path/ab.wav``; the stopped pipeline (its counters and summary stay readable)."""
    proc = _start_replay(data, stream_name, "--loop")
    try:
        config = PipelineConfig(stream_name=stream_name, model_path=make_model(tmp_path / "m.onnx"),
                                device="cpu", wav_path=tmp_path / "ab.wav", truth_dir=truth, listen="true",
                                lsl_out=False, resolve_timeout_s=10)
        with LivePipeline(config) as pipeline:
            _wait(pipeline, int(np.ceil(seconds / config.hop_s)), timeout=40)
    finally:
        _stop(proc)
    return pipeline


@pytest.mark.lsl
def test_listen_true_plays_the_stimulus_contiguously(sim_dir, stream_name, tmp_path):
    """Through the live pipeline: the WAV is the stimulus, chunk after chunk, aligned within one frame.

    Each chunk is placed by the markers independently of the others, so chunks that line up with
    each other across a second of played sound show the per-chunk alignment holds (the mapping
    itself is checked to the sample above).
    """
    import soundfile

    pipeline = _listen_true(sim_dir, sim_dir, stream_name, tmp_path, 2.5)   # 2.5 s of decoding
    counters = pipeline.counters()
    played, rate = soundfile.read(tmp_path / "ab.wav", dtype="float32")
    stimulus = StimulusFolder(sim_dir, sfreq=RATE).load_stimulus(21)
    assert rate == RATE and counters["frames"] > 100
    starts = []
    # two segments 1 s apart, and the file's last 0.25 s: the vocoder's tail written at the end (1,536
    # samples) was decoded sound whatever --listen said
    for at in (len(played) - 3 * RATE // 2, len(played) - RATE // 2, len(played) - RATE // 4):
        segment = played[at:at + RATE // 4]
        assert np.abs(segment).max() > 1e-3, "silence where the stimulus should play"
        corr = np.correlate(stimulus, segment, mode="valid")
        energy = np.convolve(stimulus.astype(np.float64) ** 2, np.ones(len(segment)), mode="valid")
        lag = int(np.argmax(corr / np.sqrt(np.maximum(energy, 1e-12))))     # normalised: not the loudest
        # chunks within a frame of their marker placement continue each other: the stimulus itself
        match = np.corrcoef(stimulus[lag:lag + len(segment)], segment)[0, 1]
        assert match > 0.99, (at, lag, match)
        starts.append(lag)
    drift = (starts[1] - starts[0]) - RATE
    loop = len(stimulus)                                              # the replay may loop in between
    assert min(abs(drift), abs(drift + loop), abs(drift - loop)) <= 512, starts


@pytest.mark.lsl
def test_listen_true_where_the_song_has_no_stimulus_plays_silence_and_says_how_long(sim_dir, stream_name,
                                                                                  tmp_path):
    """The replay's song has no stimulus in the --truth folder: what plays is silence, and the run's counters
    and summary say for how long (the output stage counted it; only its own tests showed the count). At the
    end the vocoder's tail (1,536 samples) was written as decoded sound whatever --listen said."""
    import shutil

    import soundfile
    from eegmusic.decoder.cli_decode import format_summary

    truth = shutil.copytree(sim_dir, tmp_path / "truth")
    (truth / "stimuli" / "song21.wav").unlink()            # song 22's stays: the folder is still a dataset
    summary = _listen_true(sim_dir, truth, stream_name, tmp_path, 1.5).summary()
    played, _ = soundfile.read(tmp_path / "ab.wav", dtype="float32")
    missing = summary["counters"]["listen_true_missing"]
    assert len(played) > RATE and not played.any()
    # every sample written was the missing stimulus's silence, or a stall's (a loaded machine's replay)
    assert missing == summary["counters"]["audio_written"] - summary["counters"]["audio_silence"] > RATE, \
        summary["counters"]
    said = f"  true stimulus not found {1e3 * missing / RATE:.0f} ms (silence instead)"
    assert said in format_summary(summary)
