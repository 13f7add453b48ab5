"""The dashboard and the decoder in separate processes: attach, start, stop, volume, isolation.

Real parts throughout: a replayed LSL stream, ``eegmusic decode --publish`` in a subprocess, the
shared-memory snapshot block, the Qt window offscreen, and (for the volume) a PulseAudio null sink.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.lsl]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    from tests.decoder.onnx_models import make_model

    return make_model(tmp_path_factory.mktemp("attach_model") / "model.onnx")


@pytest.fixture(scope="module")
def replay(sim_dir):
    """One replayed song shared by the tests that only decode it (a new one costs a quarter second each):
    every decode reads it under a publish name of its own, and none stops or changes it."""
    from eegmusic.replay.song_player import Player

    name = f"t-attach-{uuid.uuid4().hex[:8]}"
    player = Player(sim_dir, 21, 1, name=name, source_id=f"{name}-src", loop=True, chunk_ms=20, markers=False)
    player.start()
    yield player
    player.stop()


def _publish_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _start_decode(stream: str, model: Path, name: str, *extra: str, sigint_ignored: bool = False
                  ) -> subprocess.Popen:
    from eegmusic.decoder.shared_snapshot import snapshot_path

    argv = [sys.executable, "-m", "eegmusic", "decode", "--stream", stream, "--model", str(model),
            "--publish", name, "--timeout", "10", *extra]
    # sigint_ignored: as a script's background job (`cmd &`) starts it, with SIGINT inherited as ignored
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ignore)
    deadline = time.monotonic() + 60.0
    while not snapshot_path(name).exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"decode exited early ({process.returncode}): {err[-2000:]}")
        assert time.monotonic() < deadline, "decode never published"
        time.sleep(0.05)
    return process


def _stop(process: subprocess.Popen) -> tuple[int, str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


def _window(qtbot, **settings):
    from eegmusic.gui.app import MainWindow
    from eegmusic.gui.controls import Settings

    window = MainWindow(Settings(**settings))
    qtbot.addWidget(window)
    window.show()
    return window


def _windows_seen(window) -> int:
    snapshot = window.last_snapshot
    return 0 if snapshot is None else int(snapshot.counters.get("windows", 0))


def _attached_window(qtbot, name: str):
    """A window attached to the decode published as ``name``, once it runs."""
    window = _window(qtbot)
    window.attach(name)
    qtbot.waitUntil(lambda: window.state == "running" or window.last_error is not None, timeout=10000)
    assert window.state == "running", window.last_error
    return window


def _started_window(qtbot, stream: str, model: Path):
    """A window running a decode it started in its own process, once it runs."""
    window = _window(qtbot, stream=stream, model=str(model), no_audio=True, isolated=True,
                     extra={"resolve_timeout_s": 10.0})
    window.start()
    qtbot.waitUntil(lambda: window.state == "running" or window.last_error is not None, timeout=60000)
    assert window.state == "running", window.last_error
    return window


def test_attached_dashboard_follows_the_decode_and_leaves_it_running(qtbot, replay, model_file):
    from eegmusic.decoder.shared_snapshot import snapshot_path

    name = _publish_name()
    decode = _start_decode(replay.name, model_file, name, "--no-audio")
    try:
        window = _attached_window(qtbot, name)
        assert window.controls.stream_box.currentText() == replay.name  # the decode says what it decodes
        assert window.controls.start_button.text() == "Detach"
        qtbot.waitUntil(lambda: _windows_seen(window) > 5, timeout=15000)
        first = _windows_seen(window)
        qtbot.waitUntil(lambda: _windows_seen(window) > first + 5, timeout=15000)  # it keeps following
        assert window.last_snapshot.eeg.shape[0] == 125 and window.last_snapshot.mel.shape[0] == 128
        assert not window.controls.volume.isEnabled()  # a decode without sound: nothing to turn up
        window.close()
        assert decode.poll() is None and snapshot_path(name).exists()  # closing only let go
    finally:
        returncode, out, err = _stop(decode)
    assert returncode == 0, err[-2000:]
    assert "decoded" in out and not snapshot_path(name).exists()


def test_attach_waits_for_a_decode_started_on_the_same_command_line(replay, model_file, tmp_path):
    """`decode ... --publish N & gui --attach N`, the help's example: the window looked for the block
    before the decode had published it, and refused ("no running decode publishes as ...")."""
    import os

    from eegmusic.decoder.shared_snapshot import snapshot_path

    name = _publish_name()
    decode = subprocess.Popen([sys.executable, "-m", "eegmusic", "decode", "--stream", replay.name, "--model",
                               str(model_file), "--publish", name, "--timeout", "10", "--no-audio"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert not snapshot_path(name).exists()                # the window starts before the decode publishes
        # 1 s: a name nobody publishes is refused before the window opens; attaching then takes milliseconds
        gui = subprocess.run([sys.executable, "-m", "eegmusic", "gui", "--attach", name, "--duration", "1"],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        assert gui.returncode == 0, gui.stderr[-2000:]
        assert decode.poll() is None                            # it attached, then let go
    finally:
        returncode, _, err = _stop(decode)
    assert returncode == 0, err[-2000:]


def test_dashboard_started_decode_stops_with_the_window(qtbot, replay, model_file):
    window = _started_window(qtbot, replay.name, model_file)
    attached = window.pipeline
    assert attached.owned and attached.process.poll() is None
    qtbot.waitUntil(lambda: _windows_seen(window) > 5, timeout=15000)
    window.close()
    assert attached.process.poll() is not None  # stopped with the window
    assert attached.process.returncode == 0
    summary = attached.summary()  # the decode's own final summary
    assert summary["counters"]["windows"] >= 5 and summary["stream"] == replay.name


def test_a_killed_decode_is_said_as_such_and_the_window_stops(qtbot, replay, model_file):
    """The dashboard's decode killed (an OOM kill, a crash) stayed a zombie of the window, counted alive:
    the status bar said the stream was lost, for ever, and Stop left the snapshot block behind."""
    from eegmusic.decoder.shared_snapshot import snapshot_path

    window = _started_window(qtbot, replay.name, model_file)
    attached = window.pipeline
    qtbot.waitUntil(lambda: _windows_seen(window) > 3, timeout=15000)
    attached.process.send_signal(signal.SIGKILL)
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=10000)
    assert "decode process was killed by signal 9; its log: " in window.last_error, window.last_error
    assert "stopped — the dashboard's decode process was killed" in window.status.health_label.text()
    assert not snapshot_path(attached.name).exists()           # the block the dead writer left: removed
    assert window.controls.start_button.text() == "Start" and window.controls.start_button.isEnabled()
    log_path = Path(window.last_error.split("its log: ")[1])
    assert log_path.is_file()                                  # kept, for the user to read
    shutil.rmtree(log_path.parent, ignore_errors=True)


@pytest.mark.untimed  # an exit status, a summary and a removed block: nothing timed
def test_the_dashboards_decode_that_ends_with_status_0_has_ended_not_failed(replay, model_file):
    """The dashboard's decode ended by itself with status 0 (a Ctrl-C from the terminal reaches it too)
    and its block went before the window read its last snapshot: the window said 'the dashboard's
    decode process exited with status 0; its log: <path>' as a failure, and then stop() removed that
    log's folder, as after a clean stop."""
    from eegmusic.decoder.pipeline_config import PipelineConfig
    from eegmusic.gui.attach import spawn_decode

    attached = spawn_decode(PipelineConfig(model_path=str(model_file), stream_name=replay.name,
                                           no_audio=True, resolve_timeout_s=10.0))
    folder = attached.summary_path.parent
    try:
        attached.process.send_signal(signal.SIGINT)
        assert attached.process.wait(30) == 0
        snapshot = attached.snapshot()                   # its block is gone: the process is what is left
        assert not snapshot.running and snapshot.error is None, snapshot.error
    finally:
        attached.stop()
    assert attached.summary()["stream"] == replay.name   # its final summary, read before the folder went
    assert not folder.exists()                           # a clean end: no log kept, none named


def test_an_attached_decode_that_ends_stops_the_window_without_an_error(qtbot, replay, model_file):
    """It said 'has ended' in a dialog but stayed 'running' (Detach enabled, pickers locked), Detach then
    logged 'it keeps running', and `gui --attach` exited 2 for a decode that ended normally."""
    name = _publish_name()
    decode = _start_decode(replay.name, model_file, name, "--no-audio")
    try:
        window = _attached_window(qtbot, name)
    finally:
        returncode, _, err = _stop(decode)
    assert returncode == 0, err[-2000:]
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=10000)
    assert window.last_error is None and window.error_box is None
    assert "has ended" in window.status.health_label.text() and name in window.status.health_label.text()
    assert window.controls.stream_box.isEnabled() and window.controls.start_button.text() == "Start"


def test_a_start_can_be_cancelled_and_leaves_nothing(qtbot, model_file, stream_name):
    """The button sat disabled at 'Starting…' while the decode looked for a stream that never came (up to
    its timeout plus 30 s); now it reads 'Cancel', and cancelling stops the decode and removes its folder."""
    def our_decode() -> tuple[int, Path] | None:
        """(pid, folder) of the decode process looking for this test's stream, from its command line."""
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = cmdline.read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if "decode" in argv and stream_name in argv and "--json" in argv:
                return int(cmdline.parent.name), Path(argv[argv.index("--json") + 1]).parent
        return None

    window = _window(qtbot, stream=stream_name, model=str(model_file), no_audio=True, isolated=True,
                     extra={"resolve_timeout_s": 60.0})
    window.start()
    button = window.controls.start_button
    assert window.state == "starting" and button.text() == "Cancel" and button.isEnabled()
    qtbot.waitUntil(lambda: our_decode() is not None, timeout=10000)   # the decode process is on its way
    pid, folder = our_decode()
    assert folder.is_dir()
    button.click()
    qtbot.waitUntil(lambda: window.state == "stopped", timeout=15000)
    assert window.last_error is None and window.error_box is None
    assert window.status.health_label.text() == "stopped — start cancelled"
    assert not folder.exists() and not Path(f"/proc/{pid}").exists()   # stopped, reaped, folder removed
    assert button.text() == "Start" and button.isEnabled()


_DYING_DASHBOARD = """
import sys
from eegmusic.decoder.pipeline import PipelineConfig
from eegmusic.gui.attach import spawn_decode
attached = spawn_decode(PipelineConfig(stream_name={stream!r}, model_path={model!r}, no_audio=True,
                                       resolve_timeout_s=10.0))
print(attached.name, attached.process.pid, attached.summary_path, flush=True)
sys.stdin.read()  # until killed
"""


@pytest.mark.untimed  # an exit status, a summary and a removed block: nothing timed
def test_a_decode_that_inherited_sigint_ignored_still_stops_on_it(replay, model_file):
    """A decode started from a script's background job inherits SIGINT ignored; the dashboard's stop
    (SIGINT) must still end it cleanly, with its summary, not after the dashboard's kill timeout."""
    from eegmusic.decoder.shared_snapshot import snapshot_path

    name = _publish_name()
    decode = _start_decode(replay.name, model_file, name, "--no-audio", sigint_ignored=True)
    returncode, out, err = _stop(decode)
    assert returncode == 0, err[-2000:]
    assert "windows" in out  # the summary printed on the way out
    assert not snapshot_path(name).exists()


def test_a_decode_stops_when_the_dashboard_that_started_it_dies(replay, model_file):
    """Killed, the dashboard cannot stop its decode: the decode notices its owner is gone and stops."""
    from eegmusic.decoder.shared_snapshot import _pid_alive, snapshot_path

    code = _DYING_DASHBOARD.format(stream=replay.name, model=str(model_file))
    dashboard = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
    try:
        name, pid, summary_path = dashboard.stdout.readline().split()
        pid, summary_path = int(pid), Path(summary_path)
        assert _pid_alive(pid) and snapshot_path(name).exists()
    finally:
        dashboard.kill()  # no chance to stop anything
        dashboard.communicate(timeout=30)
    deadline = time.monotonic() + 20.0
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pid_alive(pid), "the decode outlived the dashboard that started it"
    assert not snapshot_path(name).exists()  # it stopped cleanly: the block is gone
    # it wrote its summary on the way out; that and its log stay for whoever looks into the dead dashboard
    assert json.loads(summary_path.read_text())["stream"] == replay.name
    shutil.rmtree(summary_path.parent)


@pytest.mark.untimed
def test_start_failure_in_the_decode_process_is_one_line(qtbot, model_file, stream_name, tmp_path,
                                                         monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where spawn_decode keeps the decode's log
    window = _window(qtbot, stream=stream_name, model=str(model_file), no_audio=True, isolated=True,
                     extra={"resolve_timeout_s": 1.0})
    window.start()
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=60000)
    assert window.state == "stopped"
    assert stream_name in window.last_error and "\n" not in window.last_error
    assert not list(tmp_path.glob("eegmusic-gui-*"))  # the reason is shown; its log folder is not left behind


@pytest.mark.parametrize("argv,words", [
    (["gui", "--attach", "nobody-here"], "no running decode publishes as 'nobody-here'"),
    (["gui", "--attach", "x", "--stream", "s"], "--attach shows a decode that already runs"),
    (["gui", "--attach", "bad/name"], "publish name 'bad/name' is not usable"),
    # the attached decode's own truth, listen mode and sound are shown; these were silently dropped
    (["gui", "--attach", "x", "--truth", "sim"], "leave out --truth"),
    (["gui", "--attach", "x", "--listen", "true"], "leave out --listen"),
    (["gui", "--attach", "x", "--no-audio"], "leave out --no-audio"),
    (["gui", "--attach", "x", "--no-audio", "--listen", "both"], "leave out --listen and --no-audio"),
])
def test_gui_attach_bad_input(argv, words, capsys, monkeypatch):
    from eegmusic.gui import cli_gui
    from eegmusic.stream.cli import main

    # a name nobody publishes is refused once the wait for a decode starting beside it ends (10 s; the
    # wait itself is test_attach_waits_for_a_decode_started_on_the_same_command_line's)
    monkeypatch.setattr(cli_gui, "ATTACH_WAIT_S", 0.5)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_parsing_attach_loads_no_pylsl():
    """``eegmusic --lsl-local gui --attach NAME`` warned "pylsl is already loaded; --lsl-local cannot change
    its configuration now": the --attach name check imported pylsl while the command line was parsed."""
    code = ("import sys; from eegmusic.stream.cli import build_parser; "
            "build_parser().parse_args(['--lsl-local', 'gui', '--attach', 'cap1']); "
            "print('pylsl' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


_SLOW_DASHBOARD = """
import os, sys, time
from eegmusic.decoder.shared_snapshot import SnapshotReader
reader = SnapshotReader({name!r})
print("attached", flush=True)
reads = 0
while reader.writer_alive:
    if reader.read() is not None:
        reads += 1
    t_end = time.perf_counter() + 0.005   # a little drawing that holds this process's GIL ...
    while time.perf_counter() < t_end:
        pass
    time.sleep(0.1)                       # ... and a redraw that takes 100 ms to come back
print(reads, flush=True)
"""


def _spawn_decode(stream: str, model: Path, name: str, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "eegmusic", "decode", "--stream", stream, "--model", str(model),
            "--publish", name, "--timeout", "10", *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _side_by_side_p99(stream: str, model: Path, tmp_path: Path) -> tuple[dict, int]:
    """p99 of two decodes run at once, the second watched by the slow dashboard; and its reads."""
    from eegmusic.decoder.shared_snapshot import snapshot_path

    names = {"alone": _publish_name(), "watched": _publish_name()}
    summaries = {key: tmp_path / f"{name}.json" for key, name in names.items()}
    decodes = {key: _spawn_decode(stream, model, name, "--no-audio", "--no-lsl-out", "--hop", "0.0232",
                                  "--duration", "6", "--json", str(summaries[key]))
               for key, name in names.items()}
    try:
        deadline = time.monotonic() + 60.0
        while not snapshot_path(names["watched"]).exists():
            if decodes["watched"].poll() is not None or time.monotonic() > deadline:
                decodes["watched"].kill()
                pytest.fail(f"decode did not start: {decodes['watched'].communicate()[1][-2000:]}")
            time.sleep(0.02)
        dashboard = subprocess.run([sys.executable, "-c", _SLOW_DASHBOARD.format(name=names["watched"])],
                                   capture_output=True, text=True, timeout=60)
        lines = dashboard.stdout.split()
        assert lines and lines[0] == "attached", dashboard.stderr[-2000:]
    finally:
        errors = {key: process.communicate(timeout=60)[1] for key, process in decodes.items()}
    assert all(process.returncode == 0 for process in decodes.values()), errors
    p99 = {key: float(json.loads(path.read_text())["latency_ms"]["arrival_to_buffered"]["p99"])
           for key, path in summaries.items()}
    return p99, int(lines[1])


def test_a_slow_dashboard_does_not_move_decode_p99(replay, model_file, tmp_path):
    """Two decodes of the same stream started together, one watched by a dashboard that takes 100 ms
    per redraw: the watched one's p99 (arrival → buffered) stays with the other's.

    Side by side, the machine's load falls on both alike; on a 2-core machine shared with other work
    one pair can still be hit unevenly, so up to three pairs are run and one in bound suffices. A
    design where the dashboard made the decoder wait (a lock, a pipe the reader must drain, the
    decoder in its interpreter) shows its 100-ms redraws in every pair. The CPU cost of real drawing
    is measured by benchmarks/bench_gui.py (the real window attached, against the decode alone).
    """
    seen = []
    for _ in range(3):
        p99, reads = _side_by_side_p99(replay.name, model_file, tmp_path)
        assert reads > 20  # the dashboard really was attached and reading all along
        seen.append(p99)
        print(f"decode p99 arrival_to_buffered: alone {p99['alone']:.2f} ms, watched {p99['watched']:.2f} ms")
        if p99["watched"] <= 1.5 * p99["alone"] + 2.0:
            break
    assert seen[-1]["watched"] <= 1.5 * seen[-1]["alone"] + 2.0, seen


def _wav_frames(path) -> int:
    """Samples in a WAV file being written (0 before it exists)."""
    import soundfile

    try:
        return soundfile.info(str(path)).frames
    except (soundfile.LibsndfileError, RuntimeError):
        return 0


def test_ab_switch_reaches_a_decode_in_another_process(qtbot, sim_dir, stream_name, model_file, tmp_path):
    """A decode started with --listen true plays the true stimulus; the window's Listen box switches it
    to the decoded sound: from then on what it plays is, sample for sample, what it decoded."""
    import soundfile
    from eegmusic.replay.song_player import Player

    name = _publish_name()
    played, record = tmp_path / "played.wav", tmp_path / "record"
    with Player(sim_dir, 21, 1, name=stream_name, source_id=f"{stream_name}-src", loop=True, chunk_ms=20):
        decode = _start_decode(stream_name, model_file, name, "--truth", str(sim_dir), "--listen", "true",
                               "--wav", str(played), "--record", str(record))
        try:
            window = _window(qtbot)
            window.attach(name)
            qtbot.waitUntil(lambda: window.state == "running" or window.last_error is not None, timeout=10000)
            assert window.state == "running", window.last_error
            listen_box = window.controls.listen_box
            assert listen_box.isEnabled() and listen_box.currentData() == "true"
            # the true stimulus plays: 2.5 s of it in the file (the header follows every write), however
            # long a loaded machine takes to start writing
            qtbot.waitUntil(lambda: _wav_frames(played) > 2.5 * 22050, timeout=20000)
            window.controls.listen_box.setCurrentIndex(window.controls.listen_box.findData("decoded"))
            qtbot.waitUntil(lambda: window.pipeline.listen == "decoded", timeout=5000)
            switched_at = _wav_frames(played)
            qtbot.waitUntil(lambda: _wav_frames(played) > switched_at + 2 * 22050, timeout=20000)  # decoded
            window.close()
        finally:
            returncode, _, err = _stop(decode)
    assert returncode == 0, err[-2000:]
    ours, _ = soundfile.read(played, dtype="float32")
    decoded, _ = soundfile.read(record / "decoded.wav", dtype="float32")
    n = min(ours.size, decoded.size)
    same = np.abs(ours[:n] - np.clip(decoded[:n], -1.0, 1.0)) < 2e-4
    switch = int(np.flatnonzero(~same).max()) + 1  # after the last difference: the decoded sound
    assert n - switch > 22050  # more than a second of the decoded sound at the end ...
    before = slice(switch - 2 * 22050, switch)
    assert np.sqrt(np.mean(ours[before] ** 2)) > 1e-3  # ... after seconds of the (audible) true stimulus
    assert np.mean(same[before]) < 0.5


def test_attached_dashboard_shows_the_run_r_beside_its_baselines(qtbot, sim_dir, stream_name, baseline_model):
    """Attached to a ``decode --truth`` process, the window shows the decode's dynamic r over the run
    beside the global-mean and song-mean baselines it scored on the same frames."""
    from eegmusic.replay.song_player import Player

    from tests.gui.scores_check import assert_scores_shown, scored, scores_in

    name = _publish_name()
    player = Player(sim_dir, 21, 1, name=stream_name, source_id=f"{stream_name}-src", chunk_ms=20).start()
    decode = _start_decode(stream_name, baseline_model, name, "--truth", str(sim_dir), "--no-audio")
    try:
        window = _attached_window(qtbot, name)
        qtbot.waitUntil(lambda: scored(window), timeout=20000)
        player.stop()  # no more frames: the scores over the run stop changing
        qtbot.wait(2500)  # the decode publishes its summary once a second
        summary = window.pipeline.summary()  # the decode's figures, as published
        qtbot.waitUntil(lambda: window.mel_panel.scores == scores_in(summary), timeout=5000)
        assert_scores_shown(window, summary)
        window.close()
    finally:
        player.stop()
        returncode, _, err = _stop(decode)
    assert returncode == 0, err[-2000:]


@pytest.mark.audio
def test_volume_and_mute_reach_a_decode_in_another_process(qtbot, pulse_sink, replay, model_file):
    window = _window(qtbot, stream=replay.name, model=str(model_file), isolated=True,
                     extra={"resolve_timeout_s": 10.0})
    if window.controls.audio_reason is not None:
        pytest.fail(f"the PulseAudio null sink is not listed: {window.controls.audio_reason}")
    window.controls.volume.setValue(100)
    window.start()
    qtbot.waitUntil(lambda: window.state == "running" or window.last_error is not None, timeout=60000)
    assert window.state == "running", window.last_error
    assert window.controls.volume.isEnabled()
    qtbot.waitUntil(lambda: int(window.last_snapshot.counters.get("audio_written", 0)) > 22050
                    if window.last_snapshot else False, timeout=20000)
    with pulse_sink.recording() as loud:
        qtbot.wait(1200)
    window.controls.mute.setChecked(True)
    assert window.pipeline.gain == 0.0
    qtbot.wait(1200)  # the decode applies it within a publish period; what was queued plays out
    with pulse_sink.recording() as muted:
        qtbot.wait(1200)
    window.close()
    loud_rms = float(np.sqrt(np.mean(loud["audio"] ** 2)))
    muted_rms = float(np.sqrt(np.mean(muted["audio"] ** 2)))
    assert loud_rms > 1e-3, loud_rms
    assert muted_rms < 0.01 * loud_rms, (loud_rms, muted_rms)
    assert np.abs(loud["audio"]).max() < 1.0  # the limiter: never full scale


def test_the_dashboards_decode_is_given_the_vocoder_and_listener_only_when_chosen():
    """The dashboard's decode command always carried ``--vocoder <default>``, so decode could not tell a
    typed --vocoder from the dashboard's default and let one pass for a waveform model under --publish.
    It names the vocoder only when one other than the default (or a typed one) was chosen, and the
    listener (--subject) of a subject-conditioned model when one was given."""
    from eegmusic.decoder.pipeline import PipelineConfig
    from eegmusic.gui.attach import decode_command
    from eegmusic.stream.cli import build_parser

    def parsed(**kwargs):
        argv = decode_command(PipelineConfig(stream_name="cap", model_path="m.onnx", **kwargs), "pub")
        return build_parser().parse_args(argv[argv.index("decode"):])

    default = parsed()
    assert default.vocoder is None and default.subject is None
    assert parsed(vocoder_method="griffinlim").vocoder == "griffinlim"
    assert parsed(vocoder_method="rtisi", vocoder_named=True).vocoder == "rtisi"
    assert parsed(subject="S02").subject == "S02"
