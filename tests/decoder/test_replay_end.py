"""A decode that follows a replay to its end, and on to the next replay of the same name.

A replay's last marker is ``replay_end``; the decode closes its streams on it before the replay's
outlets go. Before, liblsl printed "ERR| Stream transmission broke off (Input stream error.);
re-connecting..." on the decode's terminal at the end of every replay it followed (written to file
descriptor 2 by liblsl itself, so ``capfd`` sees it). Real replays and a real pipeline, in this process.
"""

from __future__ import annotations

import time

import pytest
from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
from eegmusic.replay.song_player import Player

from tests.decoder.onnx_models import make_model

pytestmark = pytest.mark.lsl

SPEED = 8.0
"""The simulated song's 20 s in 2.5 s."""


def _until(condition, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what} within {timeout_s} s")
        time.sleep(0.02)


@pytest.mark.parametrize("truth", [True, False], ids=["truth", "no-truth"])
def test_a_replay_that_ends_is_let_go_without_liblsl_error_and_its_successor_followed(
        sim_dir, stream_name, tmp_path, capfd, truth):
    """The first replay is stopped (Ctrl-C's path), the second runs to the end of its data (with --truth:
    the marker stream is followed again, and its frames scored)."""
    config = PipelineConfig(stream_name=stream_name, model_path=make_model(tmp_path / "model.onnx"),
                            device="cpu", no_audio=True, lsl_out=False,
                            truth_dir=sim_dir if truth else None)
    first = Player(sim_dir, 21, 1, speed=SPEED, loop=True, name=stream_name).start()
    second = Player(sim_dir, 21, 1, speed=SPEED, name=stream_name)    # the same source id
    try:
        with LivePipeline(config) as pipeline:
            scored = (lambda: pipeline.summary()["truth"]["scored_frames"]) if truth else (lambda: 0)
            _until(lambda: pipeline.counters()["windows"] >= 10 and (scored() > 0 or not truth), 20.0,
                   "no decoded (and scored) windows")
            _until(lambda: pipeline.follows_markers, 5.0, "the replay's markers not followed")
            first.stop()
            _until(lambda: pipeline.health().losses == 1, 5.0, "the stopped replay not let go")
            assert pipeline.health().ended          # an end its source said, not a failure
            before = after = scored()
            if truth:   # the second replay (to the end of its data) takes the same path without --truth
                second.start()
                _until(lambda: pipeline.health().reconnects == 1, 10.0, "the next replay not followed")
                assert not pipeline.health().ended
                second.wait(10.0)
                _until(lambda: pipeline.health().losses == 2, 5.0, "the replay at its end not let go")
                after = scored()
    finally:
        first.stop()
        second.stop()
    assert "broke off" not in capfd.readouterr().err
    if truth:   # the second replay's markers were read: its frames were scored against its song
        assert after > before > 0


class _EndReadBeforeTheReplayAsks:
    """The replay's marker outlet, whose ``push_sample`` of ``replay_end`` returns only once no inlet is
    connected to it: the replay's thread held up (by a loaded machine) between saying its end and asking
    who hears it, while the decode reads the end and closes its marker stream. Every call goes to the real
    outlet."""

    def __init__(self, outlet):
        self._outlet = outlet

    def push_sample(self, sample, *args):
        self._outlet.push_sample(sample, *args)
        if sample == ["replay_end"]:
            _until(lambda: not self._outlet.have_consumers(), 5.0, "the marker stream not closed on its end")

    def __getattr__(self, name):
        return getattr(self._outlet, name)


def test_a_replay_stopped_while_its_end_is_read_waits_for_the_decode_to_let_its_eeg_go(
        sim_dir, stream_name, tmp_path, capfd):
    """The replay asked its marker outlet who hears ``replay_end`` after saying it. A decode that read it
    first had closed its marker stream, so the replay closed its EEG outlet at once, under the decode's
    EEG inlet, which lets go only after it has taken every sample (about 0.1 s later): liblsl printed
    "broke off" and the end counted as a loss (once in six runs of the suite)."""
    config = PipelineConfig(stream_name=stream_name, model_path=make_model(tmp_path / "model.onnx"),
                            device="cpu", no_audio=True, lsl_out=False)
    replay = Player(sim_dir, 21, 1, speed=SPEED, loop=True, name=stream_name).start()
    replay._marker_outlet = _EndReadBeforeTheReplayAsks(replay._marker_outlet)
    try:
        with LivePipeline(config) as pipeline:
            _until(lambda: pipeline.counters()["windows"] >= 10 and pipeline.follows_markers, 20.0,
                   "no decoded windows, or the replay's markers not followed")
            replay.stop()
            _until(lambda: pipeline.health().losses == 1, 5.0, "the stopped replay not let go")
            assert pipeline.health().ended
    finally:
        replay.stop()
    assert "broke off" not in capfd.readouterr().err


def test_a_lost_marker_stream_is_followed_to_the_next_one_and_closing_ends_the_follower(stream_name):
    """A replay killed sends no replay_end: its marker stream is lost. pull raised LostError from the
    output thread (ending the decode) once liblsl's own recovery was off; now the loss ends that stream as
    replay_end does, and the next stream of the name is followed. close() stops the follower."""
    import threading

    import pylsl
    from eegmusic.stream.markers import MarkerInlet
    from eegmusic.stream.outlet import marker_stream_info

    name = f"{stream_name}-markers"
    outlet = pylsl.StreamOutlet(marker_stream_info(name, f"{stream_name}@test-markers"))
    markers = MarkerInlet.open(name, timeout=5.0)
    assert markers is not None
    outlet.push_sample(["song=21;t=0.000"])
    _until(lambda: markers.pull() or markers.ended, 5.0, "no marker")
    del outlet                                   # killed: no replay_end
    _until(lambda: markers.pull() == [] and markers.ended, 5.0, "the lost stream not ended")
    outlet = pylsl.StreamOutlet(marker_stream_info(name, f"{stream_name}@test-markers"))
    got: list = []

    def more() -> bool:
        outlet.push_sample(["song=21;t=1.000"])
        got.extend(markers.pull())
        return bool(got)

    _until(more, 10.0, "the next marker stream not followed")
    assert got[0][0] == "song=21;t=1.000"
    outlet.push_sample(["replay_end"])
    _until(lambda: any(text == "replay_end" for text, _ in markers.pull()), 5.0, "no replay_end")
    markers.close()
    followers = lambda: [t for t in threading.enumerate() if t.name == "eegmusic-markers-next"]  # noqa: E731
    _until(lambda: not followers(), 3.0, "the follower outlived close()")
