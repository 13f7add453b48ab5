"""Stalls, losses, returns and name collisions, with real pylsl outlets on loopback.

An outlet pushed from a thread of the test stands in for a device: it can stop pushing while staying
alive (a stall), disappear (a loss) and come back under the same source_id (a return).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pylsl
import pytest
from eegmusic.decoder.audio import EDGE_RAMP_SAMPLES
from eegmusic.stream.errors import StreamError
from eegmusic.stream.inlet import Inlet, stall_after_s
from eegmusic.stream.ringbuffer import FLAG_GAP

from tests.faults.conftest import run_cli

pytestmark = pytest.mark.lsl


class Device:
    """An LSL EEG outlet fed by a thread at ``rate`` Hz; ``pause()``/``resume()``/``close()``."""

    def __init__(self, name, *, rate=125.0, n_chans=4, source_id=None, labels=None, stype="EEG",
                 fmt=pylsl.cf_float32):
        from eegmusic.stream.outlet import regular_stream_info

        labels = labels or [f"E{i + 1}" for i in range(n_chans)]
        self.rate = rate
        self.info = regular_stream_info(name, stype, labels, rate, source_id or f"{name}-sid",
                                        channel_format=fmt)
        self.outlet = pylsl.StreamOutlet(self.info)
        self.n_chans = len(labels)
        self._pushing = threading.Event()
        self._pushing.set()
        self._stop = threading.Event()
        self.sent = 0
        self._skip = 0
        self._skip_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        chunk = max(1, int(self.rate * 0.02))
        t0 = pylsl.local_clock()
        while not self._stop.is_set():
            if not self._pushing.is_set():
                time.sleep(0.01)
                t0 = pylsl.local_clock() - self.sent / self.rate  # time stays continuous
                continue
            with self._skip_lock:
                self.sent, self._skip = self.sent + self._skip, 0
            due = int((pylsl.local_clock() - t0) * self.rate)
            if due > self.sent:
                n = min(due - self.sent, 4 * chunk)
                data = np.full((n, self.n_chans), 1.0, np.float32)
                data[:, 0] = np.arange(self.sent, self.sent + n)
                stamps = t0 + (self.sent + np.arange(n)) / self.rate
                self.outlet.push_chunk(data, stamps.tolist())
                self.sent += n
            time.sleep(0.01)

    def pause(self):
        self._pushing.clear()

    def skip(self, n: int):
        """Lose the next ``n`` samples: never sent, the timestamps after them as if they had been."""
        with self._skip_lock:
            self._skip += n

    def resume(self):
        self._pushing.set()

    def after_consumer(self, *steps):
        """In a thread: once an inlet subscribes, run ``(delay_s, action)`` steps in order."""

        def run():
            if self.outlet is None or not self.outlet.wait_for_consumers(30.0):
                return
            for delay, action in steps:
                time.sleep(delay)
                action()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.outlet = None


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@pytest.mark.parametrize(("rate", "pause_s", "stalls"), [
    (125.0, 1.2, 1), (500.0, 1.0, 1), (10.0, 1.2, 1), (125.0, 0.25, 0), (4.0, 1.0, 0),
])
def test_a_stall_is_a_state_counted_timed_and_flagged(rate, pause_s, stalls, stream_name):
    """No samples for more than max(0.5 s, 5 periods): stalled; samples again: connected, flagged."""
    device = Device(stream_name, rate=rate)
    inlet = Inlet(stream_name, resolve_timeout=5.0)
    try:
        with inlet:
            _wait(lambda: inlet.n_samples >= max(2, int(rate * 0.3)))
            assert inlet.state == "connected"
            device.pause()
            time.sleep(pause_s)
            state_during = inlet.state
            device.resume()
            n_before = inlet.n_samples
            _wait(lambda: inlet.n_samples > n_before + max(1, int(rate * 0.1)))
            time.sleep(0.05)
            totals = inlet.state_totals()
            data, _, flags = inlet.ring.read(0, inlet.ring.n_written)
    finally:
        device.close()
    assert stall_after_s(rate) == max(0.5, 5 / rate)
    assert totals["stalls"] == stalls and state_during == ("stalled" if stalls else "connected")
    assert totals["state"] == "connected" and totals["losses"] == 0
    if stalls:
        assert pause_s - stall_after_s(rate) - 0.3 < totals["stalled_s"] < pause_s + 0.3
        assert [s for _, s in inlet.transitions()] == ["connected", "stalled", "connected"]
        resumed = int(np.flatnonzero(flags & FLAG_GAP)[0])
        assert data[0, resumed] > data[0, resumed - 1]        # flagged where samples came back
    # no sample lost over the stall (counted from the first one the inlet saw)
    np.testing.assert_array_equal(data[0], data[0, 0] + np.arange(data.shape[1]))


def test_loss_and_return_under_the_same_source_id(stream_name):
    device = Device(stream_name, source_id=f"{stream_name}-amp")
    inlet = Inlet(stream_name, resolve_timeout=5.0)
    try:
        with inlet:
            _wait(lambda: inlet.n_samples > 20)
            device.close()
            del device
            _wait(lambda: inlet.state == "lost", timeout=10.0)
            assert inlet.state_totals()["losses"] == 1
            device = Device(stream_name, source_id=f"{stream_name}-amp")
            _wait(lambda: inlet.state == "reconnected", timeout=15.0)
            n_before = inlet.n_samples
            _wait(lambda: inlet.n_samples > n_before + 10)
            totals = inlet.state_totals()
    finally:
        device.close()
    assert totals["state"] == "reconnected" and totals["losses"] == 1 and inlet.reconnects == 1
    assert totals["lost_s"] > 0
    states = [s for _, s in inlet.transitions()]
    assert states[0] == "connected" and "lost" in states and states[-1] == "reconnected"


def test_two_streams_of_one_name_are_refused_with_the_candidates(stream_name, real_collision_wait):
    from eegmusic.stream.resolve import resolve_stream

    first = Device(stream_name, source_id=f"{stream_name}-a")
    second = Device(stream_name, source_id=f"{stream_name}-b")
    try:
        for _ in range(3):  # every time, never one of them at random; the inlet drops what it opened
            for connect in (lambda: resolve_stream(name=stream_name, timeout=3.0),
                            lambda: Inlet(name=stream_name, resolve_timeout=3.0).connect()):
                with pytest.raises(StreamError) as caught:
                    connect()
                message = str(caught.value)
                assert "2 LSL streams match" in message and "\n" not in message
                for sid in ("-a", "-b"):
                    assert f"source_id '{stream_name}{sid}'" in message
                assert "host" in message and "created_at" in message and "--source-id" in message
            # the inlet opened on the first answer is let go though the caller still holds the error
            deadline = time.monotonic() + 5.0
            while (first.outlet.have_consumers() or second.outlet.have_consumers()) and (
                    time.monotonic() < deadline):
                time.sleep(0.05)
            assert not first.outlet.have_consumers() and not second.outlet.have_consumers()
        picked = resolve_stream(name=stream_name, source_id=f"{stream_name}-b", timeout=3.0)
        assert picked.source_id() == f"{stream_name}-b"
    finally:
        first.close()
        second.close()


def test_same_name_and_source_id_twice_is_refused(stream_name, real_collision_wait):
    from eegmusic.stream.resolve import resolve_stream

    first = Device(stream_name, source_id="dup")
    second = Device(stream_name, source_id="dup")
    try:
        with pytest.raises(StreamError, match="stop the duplicate outlet"):
            resolve_stream(name=stream_name, source_id="dup", timeout=3.0)
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("other", ["markers", "irregular"])
def test_eeg_is_chosen_over_a_non_eeg_stream_of_the_same_name(other, stream_name, real_collision_wait):
    from eegmusic.stream.outlet import marker_stream_info
    from eegmusic.stream.resolve import resolve_stream

    if other == "markers":
        decoy = pylsl.StreamOutlet(marker_stream_info(stream_name, f"{stream_name}-markers"))
    else:
        decoy = pylsl.StreamOutlet(pylsl.StreamInfo(stream_name, "EEG", 4, pylsl.IRREGULAR_RATE,
                                                    pylsl.cf_float32, f"{stream_name}-irr"))
    device = Device(stream_name)
    try:
        for _ in range(3):
            info = resolve_stream(name=stream_name, timeout=3.0)
            assert info.source_id() == f"{stream_name}-sid" and info.nominal_srate() == 125.0
        meta = Inlet(name=stream_name, resolve_timeout=3.0).connect()  # opened while listening, or after
        assert meta.source_id == f"{stream_name}-sid" and meta.sfreq == 125.0
    finally:
        device.close()
        del decoy


@pytest.mark.parametrize("timeout", ["-1", "nan", "inf", "-0.5"])
def test_negative_or_endless_timeouts_never_hang(timeout, capsys):
    started = time.monotonic()
    status, _, err = run_cli(["streams", "--timeout", timeout], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1 and "--timeout" in err
    assert time.monotonic() - started < 5.0


def test_a_listing_that_never_listens_is_refused(capsys):
    """``streams --timeout 0`` answered "no LSL streams visible within 0 s" with a stream running: liblsl's
    listing reports what it heard within the wait, and a wait of 0 s hears nothing."""
    status, out, err = run_cli(["streams", "--timeout", "0"], capsys)
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--timeout must be > 0" in err


# ---- through eegmusic decode ---------------------------------------------------------------------------
def _model_device(stream_name, **kwargs):
    from eegmusic.stream.spec import MODEL_CHANNELS

    return Device(stream_name, labels=list(MODEL_CHANNELS), **kwargs)


@pytest.mark.untimed
def test_decode_on_lost_exit_ends_in_one_line(stream_name, tmp_path, capsys):
    from tests.decoder.onnx_models import make_model

    model = make_model(tmp_path / "model.onnx")
    device = _model_device(stream_name)
    device.after_consumer((1.5, device.close))
    started = time.monotonic()
    try:
        status, out, err = run_cli(["decode", "--stream", stream_name, "--model", str(model), "--no-audio",
                                    "--no-lsl-out", "--device", "cpu", "--on-lost", "exit", "--lost-after",
                                    "0.5", "--duration", "30", "--json", str(tmp_path / "s.json")], capsys)
    finally:
        device.close()
    assert status == 2 and time.monotonic() - started < 30
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "lost for" in errors[0] and "--on-lost" in errors[0]
    assert "Traceback" not in err and "stream lost" in out


def _longest_quiet_run(audio, threshold):
    """(start, length) in samples of the longest run with ``|audio| <= threshold``."""
    quiet = np.concatenate(([0], (np.abs(audio) <= threshold).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(quiet))
    starts, stops = edges[::2], edges[1::2]
    if len(starts) == 0:
        return 0, 0
    best = int(np.argmax(stops - starts))
    return int(starts[best]), int(stops[best] - starts[best])


def _stall_once_audio_flows(device, wav, pause_s):
    """In a thread: once ``wav`` holds 0.5 s of decoded sound, stop the outlet for ``pause_s``, resume."""

    def run():
        deadline = time.monotonic() + 120.0
        while not (wav.exists() and wav.stat().st_size > 44 + 2 * 11025):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        device.pause()
        time.sleep(pause_s)
        device.resume()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_decode_summary_json_and_wav_show_a_stall(stream_name, tmp_path, capsys):
    """A real outlet stops for 1.5 s mid-decode: a stall in the summary and the JSON, silence in --wav.

    A sound device plays silence by itself while its queue is dry; the --wav file must say the same,
    not close the gap (the sound after the stall glued to the sound before) nor play stale audio.
    The pause starts once decoded sound reaches the file, so a slow start cannot hide it.
    """
    import json

    import soundfile

    from tests.decoder.onnx_models import make_model

    model = make_model(tmp_path / "model.onnx")
    device = _model_device(stream_name)
    wav, pause_s = tmp_path / "out.wav", 1.5
    stall = _stall_once_audio_flows(device, wav, pause_s)
    try:
        status, out, err = run_cli(["decode", "--stream", stream_name, "--model", str(model), "--wav",
                                    str(wav), "--device", "cpu", "--duration", "6", "--json",
                                    str(tmp_path / "s.json")], capsys)
    finally:
        device.close()
        stall.join(timeout=5.0)
    assert status == 0, err
    summary = json.loads((tmp_path / "s.json").read_text())
    health = summary["stream_health"]
    assert health["stalls"] == 1 and health["losses"] == 0 and 0.6 < health["stalled_s"] < 2.0
    assert [state for _, state in health["transitions"]] == ["connected", "stalled", "connected"]
    assert summary["counters"]["flagged_windows"] >= 1 and summary["counters"]["stalls"] == 1
    assert "stalls 1" in out
    audio, rate = soundfile.read(wav, dtype="float32")
    start, length = _longest_quiet_run(audio, 10 ** (-80 / 20))            # below -80 dBFS
    assert pause_s - 0.6 < length / rate < pause_s + 0.5, (start / rate, length / rate)
    # silence, not noise: zeros, but for the edges. The sound falls to silence and rises from it over
    # EDGE_RAMP_SAMPLES; a fall from a sample near zero (or a rise to one) is itself below -80 dBFS at its
    # quiet end, so the quiet run may hold a few of its samples (3 and 1 LSB at its ends, in one run of many)
    nonzero = np.flatnonzero(audio[start:start + length])
    assert np.all((nonzero < EDGE_RAMP_SAMPLES) | (nonzero >= length - EDGE_RAMP_SAMPLES)), nonzero
    assert summary["counters"]["audio_silence_gaps"] == 1
    # decoded sound on both sides of the silence: the stall is inside the file, not at an end
    assert np.abs(audio[:start]).max() > 1e-3 and np.abs(audio[start + length:]).max() > 1e-3


def test_decode_summary_says_how_many_samples_the_gaps_lost(stream_name, tmp_path, capsys):
    """A real outlet loses 25 samples, then 40 (its timestamps go on as if it had sent them): the summary
    said "gaps 2" and not how much was missing, which the inlet counted."""
    import json

    from tests.decoder.onnx_models import make_model

    device = _model_device(stream_name)
    device.after_consumer((1.0, lambda: device.skip(25)), (0.6, lambda: device.skip(40)))
    try:
        status, out, err = run_cli(["decode", "--stream", stream_name, "--model",
                                    str(make_model(tmp_path / "model.onnx")), "--no-audio", "--no-lsl-out",
                                    "--device", "cpu", "--duration", "3", "--json", str(tmp_path / "s.json")],
                                   capsys)
    finally:
        device.close()
    assert status == 0, err
    counters = json.loads((tmp_path / "s.json").read_text())["counters"]
    assert counters["gaps"] == 2 and counters["missing_samples"] == 65 and counters["non_monotonic"] == 0
    assert "gaps 2 (65 samples missing)  reconnects" in out


@pytest.mark.gui
@pytest.mark.parametrize(("state", "since", "shown"), [
    ("connected", 12.0, "connected"), ("stalled", 3.2, "stalled (3 s)"), ("lost", 41.0, "lost (41 s)"),
    ("reconnected", 5.0, "reconnected (5 s)"),
])
def test_dashboard_counter_grid_shows_the_stream_state(state, since, shown):
    from eegmusic.gui.stats_panel import health_items
    from eegmusic.stream.source import StreamHealth

    health = StreamHealth(effective_rate=125.0, n_samples=10, gaps=0, dropped_windows=0, nan_runs=0,
                          reconnects=0, clock_offset=0.0, jitter_ms=0.1, connected=state != "lost",
                          state=state, state_s=since)
    assert health_items(health)["stream"] == shown



@pytest.mark.untimed
def test_decode_on_lost_exit_ends_cleanly_when_its_replay_says_it_finished(sim_dir, stream_name, tmp_path,
                                                                          capsys):
    """A replay that finished is no lost stream: --on-lost exit waited out --lost-after, then exited 2 with
    "lost … restart the stream". The replay's end marker now ends the run at once, status 0."""
    from eegmusic.replay.song_player import Player

    from tests.decoder.onnx_models import make_model

    model = make_model(tmp_path / "model.onnx")
    player = Player(sim_dir, 21, 1, speed=4.0, loop=True, name=stream_name).start()

    def stop_once_followed() -> None:   # the decode reads the marker stream: its end will be read
        deadline = time.monotonic() + 25.0
        while time.monotonic() < deadline and not player._marker_outlet.have_consumers():
            time.sleep(0.05)
        time.sleep(0.5)
        player.stop()

    stopper = threading.Thread(target=stop_once_followed, daemon=True)
    stopper.start()
    started = time.monotonic()
    try:
        status, out, err = run_cli(["decode", "--stream", stream_name, "--model", str(model), "--no-audio",
                                    "--no-lsl-out", "--device", "cpu", "--on-lost", "exit", "--lost-after",
                                    "20", "--duration", "30"], capsys)
    finally:
        player.stop()
    assert status == 0 and time.monotonic() - started < 20, err
    assert "error:" not in err and "stream lost" in out
