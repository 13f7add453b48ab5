"""Volume and mute: the levelled sink's gain, alone and in the running dashboard."""

from __future__ import annotations

import numpy as np
import pytest


def test_levelled_sink_scales_and_mutes_after_the_limiter(tmp_path):
    """The volume acts after the level stage; the caller's samples are left alone."""
    import soundfile
    from eegmusic.decoder.audio import EDGE_FALL, WavSink
    from eegmusic.decoder.limiter import LevelledSink, LevelSettings, OutputLevel

    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(2205) / 22050)).astype(np.float32)
    original = tone.copy()
    level = OutputLevel(22050, LevelSettings(agc=False))  # below the ceiling: the limiter passes it as is
    sink = LevelledSink(WavSink(tmp_path / "out.wav", subtype="FLOAT"), level, gain=0.5)
    assert sink.write(tone) == tone.size
    sink.gain = 0.0
    sink.write(tone)
    assert sink.counters()["written"] == 2 * tone.size     # the wrapped sink's counters, plus the limiter's
    assert sink.counters()["limited_samples"] == 0
    sink.close()
    audio, rate = soundfile.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 22050
    np.testing.assert_allclose(audio[:2205], 0.5 * tone, atol=1e-6)
    # the mute is reached over the next block's first 64 samples (2.9 ms), then silence
    np.testing.assert_allclose(audio[2205:2205 + 64], 0.5 * tone[:64] * EDGE_FALL, atol=1e-6)
    assert not audio[2205 + 64:].any()
    np.testing.assert_array_equal(tone, original)


def test_a_change_of_volume_is_a_ramp_not_a_click(tmp_path):
    """A mute, an unmute or a slider's step was applied from a block's first sample on: a step of the
    sound, heard as a click, wherever the block boundary met the waveform away from zero."""
    import soundfile
    from eegmusic.decoder.audio import WavSink
    from eegmusic.decoder.limiter import LevelledSink, LevelSettings, OutputLevel

    tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(4 * 1024) / 22050)).astype(np.float32)
    assert min(abs(tone[k * 1024]) for k in (1, 2, 3)) > 0.2     # each change lands away from zero
    sink = LevelledSink(WavSink(tmp_path / "out.wav", subtype="FLOAT"),
                        OutputLevel(22050, LevelSettings(agc=False)))
    for block, gain in enumerate((1.0, 0.0, 1.0, 0.3)):
        sink.gain = gain
        sink.write(tone[block * 1024:(block + 1) * 1024])
    sink.close()
    audio, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    # a 220-Hz tone at 0.5 moves at most 0.031 a sample; a 64-sample ramp of 0.5 adds 0.008
    assert np.abs(np.diff(audio)).max() < 0.045, np.abs(np.diff(audio)).max()
    assert not audio[1024 + 64:2048].any()                       # muted once the ramp is over
    np.testing.assert_allclose(audio[3 * 1024 + 64:], 0.3 * tone[3 * 1024 + 64:], atol=1e-6)


@pytest.mark.gui
@pytest.mark.lsl
@pytest.mark.audio
def test_mute_silences_the_dashboard(qtbot, pulse_sink, sim_dir, stream_name, tmp_path):
    from eegmusic.gui.app import MainWindow
    from eegmusic.gui.controls import Settings
    from eegmusic.replay.song_player import Player

    from tests.decoder.onnx_models import make_model

    model = make_model(tmp_path / "model.onnx")
    with Player(sim_dir, 21, 1, name=stream_name, loop=True, markers=False):
        window = MainWindow(Settings(stream=stream_name, model=str(model), extra={"resolve_timeout_s": 2.0}))
        qtbot.addWidget(window)
        if window.controls.audio_reason is not None:
            pytest.fail(f"the PulseAudio null sink is not listed: {window.controls.audio_reason}")
        window.controls.volume.setValue(100)
        window.start()
        qtbot.waitUntil(lambda: window.state == "running" or window.last_error is not None, timeout=15000)
        assert window.state == "running", window.last_error
        qtbot.waitUntil(lambda: window.pipeline.counters()["audio_written"] > 11025, timeout=15000)
        with pulse_sink.recording() as loud:
            qtbot.wait(1000)
        window.controls.mute.setChecked(True)
        sink = window._gain_sink
        assert sink.gain == 0.0
        # what was queued before muting still plays: wait for it (ring buffer + device latency)
        qtbot.wait(int(1000 * (sink.queued_s + sink.output_latency_s)) + 400)
        with pulse_sink.recording() as muted:
            qtbot.wait(1000)
        window.shutdown()
    loud_rms = float(np.sqrt(np.mean(loud["audio"] ** 2)))
    muted_rms = float(np.sqrt(np.mean(muted["audio"] ** 2)))
    assert loud["audio"].size > 11025 and muted["audio"].size > 11025
    assert loud_rms > 1e-3, "nothing was heard at full volume"
    assert muted_rms < 0.01 * loud_rms, f"muted rms {muted_rms:.2e} vs loud {loud_rms:.2e}"


@pytest.mark.gui
@pytest.mark.lsl
@pytest.mark.audio
def test_volume_acts_on_a_pipeline_built_elsewhere(qtbot, pulse_sink, sim_dir, stream_name, tmp_path):
    """The demo's path: a pipeline started outside the window plays through a levelled sink whose
    volume the window sets."""
    from eegmusic.decoder.limiter import LevelledSink
    from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
    from eegmusic.gui.app import MainWindow
    from eegmusic.replay.song_player import Player

    from tests.decoder.onnx_models import make_model

    model = make_model(tmp_path / "model.onnx")
    with Player(sim_dir, 21, 1, name=stream_name, loop=True, markers=False):
        window = MainWindow()
        qtbot.addWidget(window)
        pipeline = LivePipeline(PipelineConfig(stream_name=stream_name, model_path=str(model),
                                               resolve_timeout_s=5.0))
        window.run_pipeline(pipeline)
        qtbot.waitUntil(lambda: window.state == "running" or window.last_error is not None, timeout=20000)
        assert window.state == "running", window.last_error
        assert isinstance(pipeline.sink, LevelledSink) and window.controls.volume.isEnabled()
        window.controls.volume.setValue(40)
        assert pipeline.sink.gain == pytest.approx(0.4)
        window.controls.mute.setChecked(True)
        assert pipeline.sink.gain == 0.0
        window.shutdown()
