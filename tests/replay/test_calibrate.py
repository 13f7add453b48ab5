"""eegmusic calibrate: real pylsl outlets on loopback, a PulseAudio null sink, pyxdf read-back.

The cap is an in-process LSL outlet (:class:`IndexCap`) whose every channel carries the running
sample index, pushed with known per-sample timestamps, so the read-back is checked sample by sample.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import pyxdf
import soundfile
from eegmusic.replay.calibrate import CalibrationConfig, calibrate
from eegmusic.replay.calibration_markers import decode
from eegmusic.replay.xdf_session import XDFSession
from eegmusic.stream.errors import AudioError, DataFormatError, OutputError, StreamError

SFREQ = 250.0
LABELS = ["Fz", "Cz", "Pz", "Oz"]


class IndexCap:
    """An LSL EEG outlet pushing sample k = [k, k, k, k] at LSL time t0 + k / 250 (every 10 ms)."""

    def __init__(self, name: str, *, pause_at_s: float | None = None, pause_s: float = 0.0) -> None:
        import pylsl
        from eegmusic.stream.outlet import eeg_stream_info

        self.outlet = pylsl.StreamOutlet(eeg_stream_info(name, LABELS, SFREQ, f"{name}-src"))
        self.pause_at_s, self.pause_s = pause_at_s, pause_s
        self.sent = 0
        self.t0 = pylsl.local_clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pylsl

        paused = False
        while not self._stop.is_set():
            elapsed = pylsl.local_clock() - self.t0
            if self.pause_at_s is not None and self.pause_at_s <= elapsed < self.pause_at_s + self.pause_s:
                paused = True
            elif paused:  # skip the samples of the outage, as a lost amplifier link would
                self.sent = int(elapsed * SFREQ)
                paused = False
            target = int(elapsed * SFREQ)
            if not paused and target > self.sent:
                index = np.arange(self.sent, target)
                self.outlet.push_chunk(np.repeat(index[:, None], len(LABELS), axis=1).astype(np.float32),
                                       self.t0 + index / SFREQ)
                self.sent = target
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        del self.outlet


@pytest.fixture
def music(tmp_path) -> Path:
    """A folder with two short tracks (1.5 s and 1.0 s of noise at 44.1 kHz)."""
    folder = tmp_path / "music"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name, seconds in (("a.wav", 1.5), ("b.flac", 1.0)):
        noise = 0.1 * rng.standard_normal(int(44100 * seconds)).astype(np.float32)
        soundfile.write(folder / name, noise, 44100)
    return folder


def start_session(stream_name: str, music: Path, out: Path, **popen) -> subprocess.Popen:
    """``eegmusic calibrate`` of a 300-s session with no sound, in a child process a test then stops."""
    return subprocess.Popen(
        [sys.executable, "-m", "eegmusic", "calibrate", "--stream", stream_name, "--music", str(music),
         "--duration", "300", "--no-audio", "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen,
    )


def _check_exact(path: Path, cap: IndexCap) -> np.ndarray:
    """Every recorded sample is [k]*4 at t0 + k/250, k contiguous; return the index column."""
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    eeg = [s for s in streams if s["info"]["type"][0] == "EEG"][0]
    values = np.asarray(eeg["time_series"])
    assert values.shape[1] == len(LABELS)
    index = values[:, 0].astype(np.int64)
    np.testing.assert_array_equal(values, np.repeat(index[:, None], len(LABELS), axis=1))
    np.testing.assert_array_equal(eeg["time_stamps"], cap.t0 + index / SFREQ)
    labels = [c["label"][0] for c in eeg["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels == LABELS
    return index


@pytest.mark.lsl
def test_session_reads_back_sample_exactly(music, tmp_path, stream_name):
    cap = IndexCap(stream_name)
    out = tmp_path / "s.xdf"
    try:
        summary = calibrate(CalibrationConfig(stream=stream_name, music=[str(music)], out=str(out),
                                              no_audio=True, progress=False))
    finally:
        cap.close()
    index = _check_exact(out, cap)
    assert np.all(np.diff(index) == 1)
    assert summary.eeg_samples == len(index) and summary.tracks_played == 2 and not summary.gaps
    assert sorted(p.name for p in (tmp_path / "s_audio").iterdir()) == ["a.wav", "b.flac"]
    session = XDFSession(out)
    assert session.song_ids == [1, 2] and session.labels == LABELS
    first = session.load_song(1)
    assert first.data.shape[0] == 4 and abs(first.duration_s - 1.5) < 0.1
    assert session.plays[1].audio_path == tmp_path / "s_audio" / "a.wav"
    assert abs(session.plays[1].audio_start_s) < 1.5 / SFREQ


@pytest.mark.lsl
@pytest.mark.audio
def test_session_with_sound_plays_the_music_and_times_it(music, tmp_path, stream_name, pulse_sink):
    cap = IndexCap(stream_name)
    out = tmp_path / "s.xdf"
    try:
        with pulse_sink.recording() as heard:
            summary = calibrate(CalibrationConfig(stream=stream_name, music=[str(music / "a.wav")],
                                                  out=str(out), progress=False))
    finally:
        cap.close()
    _check_exact(out, cap)
    assert summary.output_latency_s > 0
    assert np.sqrt(np.mean(heard["audio"] ** 2)) > 0.02  # the noise track reached the sink
    streams, _ = pyxdf.load_xdf(str(out), dejitter_timestamps=False)
    markers = [(t, decode(v[0])) for s in streams if s["info"]["type"][0] == "Markers"
               for t, v in zip(s["time_stamps"], s["time_series"], strict=True)]
    start = [t for t, m in markers if m["event"] == "track_start"][0]
    end = [t for t, m in markers if m["event"] == "track_end"][0]
    assert abs((end - start) - 1.5) < 0.05  # the audio clock and the LSL clock agree on the track length
    assert markers[0][1]["event"] == "session_start" and markers[-1][1]["event"] == "session_end"


@pytest.mark.lsl
@pytest.mark.audio
@pytest.mark.timeout(120)
def test_a_session_stopped_in_its_first_track_says_the_devices_latency(tmp_path, stream_name, pulse_sink):
    """The summary's output latency was set when a track ended: a session with sound stopped during its
    first track said "output latency 0 ms", while its own track_start marker held the device's. Its
    progress (logged lines, as stderr is no terminal) ended "(done)"."""
    track = tmp_path / "long.wav"
    soundfile.write(track, 0.1 * np.random.default_rng(6).standard_normal(20 * 22050).astype("f4"), 22050)
    cap = IndexCap(stream_name)
    out = tmp_path / "s.xdf"
    process = subprocess.Popen(
        [sys.executable, "-m", "eegmusic", "calibrate", "--stream", stream_name, "--music", str(track),
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b'"event":"track_start"' not in (
                out.read_bytes() if out.exists() else b""):
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        cap.close()
    assert process.returncode == 0 and "recorded 1 track (cut short at" in stdout, stdout + stderr
    streams, _ = pyxdf.load_xdf(str(out), dejitter_timestamps=False)
    start = next(m for s in streams if s["info"]["type"][0] == "Markers" for v in s["time_series"]
                 if (m := decode(v[0]))["event"] == "track_start")
    assert start["output_latency_s"] > 0
    assert f"output latency {start['output_latency_s'] * 1e3:.0f} ms" in stdout
    assert "(done)" not in stderr, stderr   # the progress is on: without --no-progress, stderr no terminal


@pytest.mark.lsl
def test_outage_is_recorded_as_a_gap_and_the_session_goes_on(tmp_path, stream_name):
    track = tmp_path / "long.wav"
    soundfile.write(track, 0.1 * np.random.default_rng(4).standard_normal(8 * 22050).astype("f4"), 22050)
    cap = IndexCap(stream_name, pause_at_s=4.0, pause_s=1.5)  # the track starts 0.5-2.5 s in
    out = tmp_path / "s.xdf"
    try:
        summary = calibrate(CalibrationConfig(stream=stream_name, music=[str(track)], out=str(out),
                                              no_audio=True, progress=False))
    finally:
        cap.close()
    index = _check_exact(out, cap)
    jumps = np.flatnonzero(np.diff(index) != 1)
    assert len(jumps) == 1 and len(summary.gaps) == 1
    gap_start, gap_end = summary.gaps[0]
    assert gap_end - gap_start > 1.0
    session = XDFSession(out)
    assert len(session.gaps) == 1
    assert len(session.song_ids) == 2  # the play cut by the outage is two pieces, aligned by the markers
    first, second = (session.plays[k] for k in session.song_ids)
    resumed = session.load_song(2).n_times / SFREQ
    assert abs(second.audio_start_s + resumed - 8.0) < 0.1 and second.audio_start_s > first.audio_start_s + 2


@pytest.mark.lsl
def test_a_stream_that_stops_before_the_first_track_is_refused_and_leaves_nothing(tmp_path, stream_name,
                                                                                 monkeypatch, caplog):
    """A cap whose samples stop as the session starts, for good: the session ended with exit 0, "next:
    eegmusic train", and more seconds of music "never arrived" than had played, in a file train and info
    refuse."""
    import pylsl
    from eegmusic.replay import calibrate as calibrate_module

    monkeypatch.setattr(calibrate_module, "TAIL_WAIT_S", 0.5)
    track = tmp_path / "t.wav"
    soundfile.write(track, 0.1 * np.random.default_rng(5).standard_normal(3 * 22050).astype("f4"), 22050)
    cap = IndexCap(stream_name)
    markers = pylsl.resolve_byprop("name", f"{stream_name}-calibration", timeout=0)  # none yet

    def stop_the_cap_at_the_first_marker():
        nonlocal markers
        while not markers:
            markers = pylsl.resolve_byprop("name", f"{stream_name}-calibration", timeout=0.2)
        inlet = pylsl.StreamInlet(markers[0])
        while inlet.pull_sample(timeout=0.2)[0] is None:
            pass
        cap.pause_at_s, cap.pause_s = pylsl.local_clock() - cap.t0, np.inf  # the amplifier goes silent

    watcher = threading.Thread(target=stop_the_cap_at_the_first_marker, daemon=True)
    watcher.start()
    out = tmp_path / "s.xdf"
    try:
        with pytest.raises(StreamError, match=rf"stream '{stream_name}' stopped sending EEG (before the "
                                              r"first track|0\.\d s into the first track) and did not come "
                                              r"back, so no track has 1 s of EEG; the session was removed\."):
            calibrate(CalibrationConfig(stream=stream_name, music=[str(track)], out=str(out), no_audio=True,
                                        progress=False))
    finally:
        cap.close()
    assert not watcher.is_alive()
    assert not out.exists() and not (tmp_path / "s_audio").exists()
    assert "did not arrive" not in caplog.text   # no "the session holds the music up to there" either


@pytest.mark.lsl
@pytest.mark.timeout(120)
def test_sigkilled_session_leaves_a_readable_file(music, tmp_path, stream_name):
    cap = IndexCap(stream_name)
    out = tmp_path / "s.xdf"
    process = start_session(stream_name, music, out)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # killed ~1 s into the first track
            time.sleep(0.25)
            if out.exists() and b'"event":"track_start"' in out.read_bytes():
                time.sleep(1.0)
                break
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.stdout.close()
        process.stderr.close()
        cap.close()
    assert process.returncode == -signal.SIGKILL
    index = _check_exact(out, cap)
    assert len(index) > SFREQ and np.all(np.diff(index) == 1)
    session = XDFSession(out)  # plays without a track_end are read up to the last sample
    assert session.song_ids


@pytest.mark.lsl
@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_session_stopped_early_keeps_what_was_recorded_and_says_so(signum, music, tmp_path, stream_name):
    """Ctrl-C or SIGTERM ends the session like a recorder's stop button: exit 0, the summary, a line
    naming the cut track, and an XDF that reads as a session (was "interrupted", exit 130 or -15)."""
    cap = IndexCap(stream_name)
    out = tmp_path / "s.xdf"
    process = start_session(stream_name, music, out, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # stopped ~0.5 s into the second track
            time.sleep(0.1)
            if out.exists() and out.read_bytes().count(b'"event":"track_start"') >= 2:
                time.sleep(0.5)
                break
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        cap.close()
    assert process.returncode == 0, stderr
    recorded = re.search(r"recorded (\d+) tracks?( \((the last )?cut short at [\d.]+ s\))?, ", stdout)
    played = int(recorded.group(1)) - (recorded.group(2) is not None)  # whole ones: a cut track counts too
    assert played >= 1  # the first track (1.5 s) ended before the stop
    assert (f"stopped during track {played + 1} (Ctrl-C or SIGTERM): everything recorded until then is kept"
            in stdout)
    index = _check_exact(out, cap)
    assert np.all(np.diff(index) == 1)
    session = XDFSession(out)
    assert session.song_ids[:1] == [1] and abs(session.load_song(1).duration_s - 1.5) < 0.1



@pytest.mark.lsl
@pytest.mark.timeout(120)
def test_a_stop_after_the_first_sample_but_before_the_first_track_keeps_the_session(music, tmp_path,
                                                                                   stream_name, monkeypatch,
                                                                                   capsys):
    """A stop between the first EEG sample and the first track said "eegmusic calibrate: interrupted"
    (exit 130) yet kept the XDF it had begun (a helper's SIGINT 3.3 s into a session, 2 runs in 9). It is
    the stop button there too: exit 0, the summary, and the line saying no track play was recorded. The
    stop is raised where the tracks' progress begins, the last step before the first track."""
    from eegmusic.stream import progress

    from tests.faults.conftest import run_cli

    real = progress.progress_bar

    def stopped_as_the_tracks_begin(*args, **kwargs):
        if kwargs.get("desc") == "calibration":
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(progress, "progress_bar", stopped_as_the_tracks_begin)
    cap = IndexCap(stream_name)
    out = tmp_path / "s.xdf"
    try:
        status, stdout, err = run_cli(["calibrate", "--stream", stream_name, "--music", str(music), "--out",
                                       str(out), "--no-audio"], capsys)
    finally:
        cap.close()
    assert status == 0, err
    assert "stopped during track 1 (Ctrl-C or SIGTERM)" in stdout
    assert "the session holds no track play to train on: record it again" in stdout
    assert _check_exact(out, cap).size > 0   # what was recorded is kept, readable

@pytest.mark.lsl
def test_refusals_leave_nothing_behind_and_overwrite_nothing(music, tmp_path, stream_name):
    existing = tmp_path / "old.xdf"
    existing.write_bytes(b"precious")
    with pytest.raises(OutputError, match="never overwritten.*old-2.xdf"):
        calibrate(CalibrationConfig(stream=stream_name, music=[str(music)], out=str(existing), no_audio=True))
    assert existing.read_bytes() == b"precious"

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEnot audio")
    with pytest.raises(DataFormatError, match="unreadable audio"):
        calibrate(CalibrationConfig(stream=stream_name, music=[str(broken)], out=str(tmp_path / "x.xdf"),
                                    no_audio=True))
    # a silent track: a whole session of EEG with no music to decode, recorded without a word
    quiet = tmp_path / "quiet.wav"
    soundfile.write(quiet, np.zeros(22050, np.float32), 22050)
    with pytest.raises(DataFormatError, match=f"{quiet} is silent.*replace it or leave it out of --music"):
        calibrate(CalibrationConfig(stream=stream_name, music=[str(music), str(quiet)],
                                    out=str(tmp_path / "x.xdf"), no_audio=True))
    assert not (tmp_path / "x.xdf").exists()

    import pylsl
    from eegmusic.stream.outlet import eeg_stream_info

    silent = pylsl.StreamOutlet(eeg_stream_info(stream_name, LABELS, SFREQ, f"{stream_name}-silent"))
    out = tmp_path / "never.xdf"
    with pytest.raises(StreamError, match="sent no samples.*before the first track"):
        calibrate(CalibrationConfig(stream=stream_name, music=[str(music)], out=str(out), no_audio=True,
                                    first_sample_timeout_s=1.0, progress=False))
    del silent
    assert not out.exists() and not (tmp_path / "never_audio").exists()


def test_markers_named_as_the_eeg_stream_are_refused(music, tmp_path, capsys):
    """``--markers`` equal to ``--stream`` published the markers under the EEG stream's name, which the EEG
    inlet could then resolve: refused in one line before anything is recorded."""
    from eegmusic.stream.cli import main

    out = tmp_path / "x.xdf"
    status = main(["calibrate", "--stream", "cap", "--markers", "cap", "--music", str(music),
                   "--out", str(out), "--no-audio", "--timeout", "0.2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "--markers cap is the name of the EEG stream --stream records" in err[0]
    assert not out.exists()


@pytest.mark.audio
def test_unknown_output_device_names_the_alternatives(music, tmp_path, pulse_sink):
    with pytest.raises(AudioError, match="--no-audio"):
        calibrate(CalibrationConfig(stream="nobody", music=[str(music)], out=str(tmp_path / "x.xdf"),
                                    device="no such device 42"))
    assert not (tmp_path / "x.xdf").exists()


def test_a_clash_in_the_audio_folder_is_refused_before_anything_is_recorded(music, tmp_path):
    """Found after the recording had started, it left a session with no markers that blocked the rerun."""
    track = sorted(music.iterdir())[0]
    clash = tmp_path / "x_audio" / track.name
    clash.parent.mkdir()
    clash.write_bytes(b"another track")
    with pytest.raises(OutputError, match="exists and differs.*pass another --out"):  # before any stream
        calibrate(CalibrationConfig(stream="nobody", music=[str(music)], out=str(tmp_path / "x.xdf"),
                                    no_audio=True))
    assert not (tmp_path / "x.xdf").exists() and clash.read_bytes() == b"another track"
    # other music of the very same size: a comparison of sizes kept it, and paired the EEG with it
    same_size = bytearray(track.read_bytes())
    same_size[-2:] = bytes(255 - b for b in same_size[-2:])
    clash.write_bytes(bytes(same_size))
    with pytest.raises(OutputError, match="exists and differs.*pass another --out"):
        calibrate(CalibrationConfig(stream="nobody", music=[str(music)], out=str(tmp_path / "x.xdf"),
                                    no_audio=True))
    assert not (tmp_path / "x.xdf").exists() and clash.read_bytes() == bytes(same_size)


def test_an_audio_folder_that_is_a_file_is_refused_before_anything_is_recorded(music, tmp_path):
    """``<out>_audio`` a file: the check saw no clash in it, and the recording failed with a traceback
    after it had started, leaving a session with no markers that blocked the rerun."""
    (tmp_path / "x_audio").write_text("notes")
    with pytest.raises(OutputError, match="x_audio, where the session's audio goes, is a file, not a folder"):
        calibrate(CalibrationConfig(stream="nobody", music=[str(music)], out=str(tmp_path / "x.xdf"),
                                    no_audio=True))
    assert not (tmp_path / "x.xdf").exists() and (tmp_path / "x_audio").read_text() == "notes"


def test_a_track_too_short_to_play_is_skipped_not_the_end_of_the_playlist():
    """A track of 0.05 s or less ended the whole schedule: a 12-s session of tracks 3 s, 0.04 s and 3 s
    recorded only the first."""
    from eegmusic.replay.calibrate import _schedule

    assert _schedule(3, [3.0, 0.04, 3.0], 12 / 60, False, 0) == [(0, 3.0), (2, 3.0), (0, 3.0), (2, 3.0)]
    assert _schedule(3, [3.0, 0.04, 3.0], None, False, 0) == [(0, 3.0), (2, 3.0)]
    assert _schedule(2, [0.04, 0.01], 1.0, False, 0) == []          # nothing to play, and no endless loop
    assert _schedule(1, [3.0], 0.03 / 60, False, 0) == []           # no time to play anything


@pytest.mark.parametrize(("lengths", "duration", "words"), [
    ((1.5,), "0.03", "--duration 0.03 s is too short to play any music; pass a longer --duration"),
    ((0.04, 0.02), None, "every track of --music lasts 0.05 s or less (a.wav 0.04 s, b.wav 0.02 s), too "
                         "short to play; pass longer audio files"),
])
def test_a_session_with_nothing_to_play_is_refused_before_anything_is_recorded(tmp_path, lengths, duration,
                                                                               words):
    """``--duration 0.03`` recorded no track, exited 0 and said "next: eegmusic train"."""
    for name, seconds in zip("ab", lengths, strict=False):
        soundfile.write(tmp_path / f"{name}.wav", np.zeros(int(44100 * seconds), np.float32), 44100)
    out = tmp_path / "x.xdf"
    result = subprocess.run(
        [sys.executable, "-m", "eegmusic", "calibrate", "--stream", "nobody", "--music",
         *(str(tmp_path / f"{name}.wav") for name in "ab"[: len(lengths)]), "--no-audio", "--out", str(out),
         "--no-progress", *(["--duration", duration] if duration else [])],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr.strip().splitlines() == [f"eegmusic calibrate: error: {words}"], result.stderr
    assert not out.exists() and not (tmp_path / "x_audio").exists()


@pytest.mark.lsl
def test_a_skipped_short_track_is_said_once(tmp_path, stream_name, caplog):
    folder = tmp_path / "music"
    folder.mkdir()
    for name, seconds in (("a.wav", 1.0), ("b.wav", 0.04), ("c.wav", 1.0)):
        soundfile.write(folder / name, 0.1 * np.ones(int(44100 * seconds), np.float32), 44100)
    cap = IndexCap(stream_name)
    try:
        summary = calibrate(CalibrationConfig(stream=stream_name, music=[str(folder)],
                                              out=str(tmp_path / "s.xdf"), no_audio=True, progress=False))
    finally:
        cap.close()
    assert summary.tracks_played == 2
    said = [r.getMessage() for r in caplog.records if "too short to play" in r.getMessage()]
    assert said == ["skipping b.wav (0.04 s): too short to play (0.05 s or less)"], said


def _limit_file_size(limit: int):
    """A ``preexec_fn`` giving the child ``ulimit -f``: a write past ``limit`` bytes fails (EFBIG), as on a
    full disk."""
    def limit_file_size() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_file_size


@pytest.mark.lsl
@pytest.mark.timeout(120)
@pytest.mark.parametrize("full_at", ["recording", "audio copy"])
def test_a_full_disk_is_one_line_and_leaves_a_whole_recording_or_nothing(full_at, tmp_path, stream_name):
    """Filled during the recording, the disk gave two chained tracebacks (the marker write, then the
    footers) and an XDF that ended partway through a chunk; filled while the music was copied, a
    traceback, a session with no markers and a truncated copy that refused the rerun."""
    from eegmusic.replay.xdf import where_it_breaks

    folder = tmp_path / "music"
    folder.mkdir()
    soundfile.write(folder / "a.wav", 0.1 * np.ones(16000, np.float32), 16000, subtype="PCM_16")  # 32 kB
    limit = 40_000 if full_at == "recording" else 20_000   # the recording fills 40 kB in about 6 s
    out = tmp_path / "s.xdf"
    cap = IndexCap(stream_name)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "eegmusic", "calibrate", "--stream", stream_name, "--music", str(folder),
             "--duration", "60", "--no-audio", "--out", str(out), "--no-progress"],
            capture_output=True, text=True, timeout=100, preexec_fn=_limit_file_size(limit))
    finally:
        cap.close()
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    written = out if full_at == "recording" else tmp_path / "s_audio" / "a.wav"
    assert err[-1].startswith(f"eegmusic calibrate: error: disk full while writing {written} (File too "
                              "large); ") and err[-1].endswith("; free space or choose another folder"), err
    if full_at == "recording":
        assert "what was written before stays readable" in err[-1]
        assert 30_000 < out.stat().st_size <= limit and where_it_breaks(out) == ""
        index = _check_exact(out, cap)
        assert np.all(np.diff(index) == 1)
        assert XDFSession(out).song_ids[:1] == [1]   # the markers of the plays so far are in it
        assert (tmp_path / "s_audio" / "a.wav").read_bytes() == (folder / "a.wav").read_bytes()
    else:   # nothing left behind to refuse the rerun
        assert not out.exists() and not (tmp_path / "s_audio").exists()


def test_a_cap_that_stalls_as_the_music_ends_is_waited_for_then_said(monkeypatch, caplog):
    """calibrate records on after the music until the EEG stamped before its end arrives; a cap whose
    last seconds never come is waited for :data:`TAIL_WAIT_S`, then the missing seconds are said. (The
    recorder's state is set by hand: an amplifier that stalls exactly at the music's end cannot be timed
    through LSL here.)"""
    from eegmusic.replay import calibrate as calibrate_module
    from eegmusic.replay.session_recorder import SessionRecorder

    class Stalled:
        last_stamp, offset, error = 5.0, 0.5, None
        recorded_until = SessionRecorder.recorded_until

    monkeypatch.setattr(calibrate_module, "TAIL_WAIT_S", 0.1)
    assert calibrate_module._record_the_tail(Stalled(), 8.0, 3.0) == pytest.approx(2.5)
    assert calibrate_module._record_the_tail(Stalled(), 5.5, 3.0) == 0.0
    # EEG that stopped before the music began: the music's seconds are missing, not more (it said 18.2 s
    # of a 15-s session)
    assert calibrate_module._record_the_tail(Stalled(), 8.0, 7.0) == pytest.approx(1.0)

    def ctrl_c(_seconds):
        raise KeyboardInterrupt

    # Ctrl-C in the wait ends the wait, not the finished session (it escaped as "interrupted")
    monkeypatch.setattr(calibrate_module.time, "sleep", ctrl_c)
    assert calibrate_module._record_the_tail(Stalled(), 8.0, None) == pytest.approx(2.5)
    assert "stopped while waiting for the EEG of the music's end" in caplog.text
