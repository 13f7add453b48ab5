"""What replay's commands tell the user: the one line a bad input gets names a fix the command accepts,
and a summary counts what is there, in words that read right for one of a thing.

Each case was found by an audit: ``simulate --out`` a folder of other files advised ``--overwrite``,
which it then refused; ``--out /proc/x`` read "0 KiB free on the disk"; ``info`` on a truncated XDF file
said both that its marker stream was missing and that it had one, and advised recording with calibrate;
a calibration stopped by Ctrl-C during its first track said "recorded 0 tracks" of a session holding
one play; and "wrote 1 XDF sessions", "is a XDF session".
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.faults.conftest import assert_one_line_error

TINY = ["--n-songs", "1", "--n-subjects", "1", "--duration", "2", "--no-progress"]
CAP = ["--montage", "openbci8", "--sfreq", "125"]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout", [[], CAP], ids=["nmedt", "montage"])
def test_a_folder_of_other_files_is_refused_with_the_fix_that_works(cli, tmp_path, layout):
    """It said "pass --overwrite to replace it", and --overwrite was then refused: the first line now says
    what the folder holds and that another --out works, and that other --out does work."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    before = _snapshot(out)
    status, _, err = cli("simulate", "--out", out, *TINY, *layout)
    line = assert_one_line_error(status, err, "not written by eegmusic simulate", "notes.txt",
                                 "choose another --out")
    assert "pass --overwrite" not in line
    status, _, err = cli("simulate", "--out", out, *TINY, *layout, "--overwrite")  # refused the same way
    assert_one_line_error(status, err, "not written by eegmusic simulate", "notes.txt")
    assert _snapshot(out) == before
    status, _, err = cli("simulate", "--out", tmp_path / "other", *TINY, *layout)  # the advice works
    assert status == 0, err


def test_an_earlier_simulation_still_points_to_overwrite(cli, tmp_path):
    out = tmp_path / "sim"
    assert cli("simulate", "--out", out, *TINY)[0] == 0
    status, _, err = cli("simulate", "--out", out, *TINY)
    assert_one_line_error(status, err, "already exists", "--overwrite")
    assert cli("simulate", "--out", out, *TINY, "--overwrite")[0] == 0


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("layout", [[], CAP], ids=["nmedt", "montage"])
def test_a_folder_that_cannot_be_created_says_so_not_that_the_disk_is_full(cli, layout):
    """``/proc`` passes a permission check as root but takes no new folder: it read "writes about 330 KiB,
    0 KiB free on the disk of /proc"."""
    out = Path(f"/proc/eegmusic-audit-{uuid.uuid4().hex[:8]}")
    status, _, err = cli("simulate", "--out", out, *TINY, *layout)
    line = assert_one_line_error(status, err, f"cannot create --out folder {out}", "choose another --out")
    assert "free" not in line and "disk" not in line
    assert not out.exists()


def _session(cli, folder: Path) -> Path:
    """A simulated calibration session (one 4-s play of an 8-channel cap): a real XDF file."""
    status, _, err = cli("simulate", "--out", folder, "--n-songs", "1", "--n-subjects", "1", "--duration",
                         "4", "--no-progress", *CAP)
    assert status == 0, err
    return folder / "S01.xdf"


def test_a_truncated_session_is_called_damaged_with_where_it_stops_and_what_was_read(cli, tmp_path):
    """It read "damaged XDF file (...), so no calibration markers (no string stream with track_start events;
    has ... 'virtual-openbci8-calibration' (Markers ...)); record with eegmusic calibrate"."""
    whole = _session(cli, tmp_path / "sim").read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(whole[: len(whole) // 2])
    status, _, err = cli("info", cut)
    line = assert_one_line_error(status, err, f"{cut}: damaged XDF file", f"ends at byte {len(whole) // 2:,}",
                                 "'virtual-openbci8' (EEG", "no track_start marker")
    assert "record with eegmusic calibrate" not in line and "no string stream" not in line
    assert "copy" in line and "again" in line  # the fix for a cut-off file
    assert cut.read_bytes() == whole[: len(whole) // 2]


def test_a_truncated_session_that_keeps_its_plays_still_reads(cli, tmp_path):
    """Cut after its markers, a file still reads, with one warning saying where it stops."""
    whole = _session(cli, tmp_path / "sim").read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(whole[:-7])  # the footers' chunk cut short
    status, out, err = cli("info", cut)
    assert status == 0, err
    assert "song 1 'song21.wav'" in out


def test_counts_of_one_read_right(cli, tmp_path):
    status, out, err = cli("simulate", "--out", tmp_path / "sim", "--n-songs", "1", "--n-subjects", "1",
                           "--duration", "4", "--no-progress", *CAP)
    assert status == 0, err
    assert "wrote 1 XDF session (openbci8, 125 Hz)" in out
    status, _, err = cli("replay", "--data", tmp_path / "sim" / "S01.xdf", "--song", "1", "--subject", "1",
                         "--device-like", "1000")
    assert_one_line_error(status, err, "is an XDF session")


@pytest.mark.lsl
@pytest.mark.timeout(120)
def test_ctrl_c_during_the_first_track_counts_it_as_recorded(tmp_path, stream_name):
    """Stopped 2 s into a 6-s track it said "recorded 0 tracks"; the session holds that play."""
    from eegmusic.replay.xdf_session import XDFSession

    from tests.replay.test_calibrate import IndexCap, start_session

    music = tmp_path / "music"
    music.mkdir()
    soundfile.write(music / "long.wav", 0.1 * np.random.default_rng(5).standard_normal(6 * 44100), 44100)
    cap = IndexCap(stream_name)
    out = tmp_path / "s.xdf"
    process = start_session(stream_name, music, out, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the start is marked ~1 s into the track: stop ~2 s in
            time.sleep(0.1)
            if out.exists() and b'"event":"track_start"' in out.read_bytes():
                time.sleep(1.0)
                break
        os.kill(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        cap.close()
    assert process.returncode == 0, stderr
    assert "recorded 0 tracks" not in stdout
    recorded = XDFSession(out).load_song(1).duration_s
    cut = float(stdout.split("recorded 1 track (cut short at ")[1].split(" s")[0])
    assert abs(cut - recorded) < 0.5, (cut, recorded, stdout)
    assert "stopped during track 1 (Ctrl-C or SIGTERM): everything recorded until then is kept" in stdout


@pytest.mark.lsl
@pytest.mark.untimed     # how long the wait takes is not checked: the message names the --timeout given
def test_calibrate_waits_for_its_stream_as_long_as_timeout_says(cli, tmp_path, stream_name):
    """The wait for --stream was a fixed 5 s, neither documented nor settable (an amplifier's software
    can take longer to start its outlet)."""
    music = tmp_path / "music"
    music.mkdir()
    soundfile.write(music / "a.wav", np.full(22050, 0.1, dtype=np.float32), 22050)   # silence is refused
    status, _, err = cli("calibrate", "--stream", f"absent-{stream_name}", "--music", music, "--out",
                         tmp_path / "s.xdf", "--no-audio", "--timeout", "0.3")
    assert_one_line_error(status, err, f"absent-{stream_name}", "within 0.3 s")
    assert not (tmp_path / "s.xdf").exists()


def _tone_folder(tmp_path) -> Path:
    """A folder holding one 3-s tone (calibrate refuses silent tracks)."""
    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(22050 * 3) / 22050
    soundfile.write(music / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    return music


def _outlet(name: str, rate: float, source_id: str):
    import pylsl
    from eegmusic.stream.outlet import regular_stream_info

    return pylsl.StreamOutlet(regular_stream_info(name, "EEG", ["Fp1", "Fp2", "C3", "C4"], rate, source_id,
                                                  unit="microvolts"))


@pytest.mark.lsl
@pytest.mark.parametrize(("rate", "said"), [(100.0, "runs at 100 Hz, below the 125 Hz models are trained at"),
                                            (512.37, "cannot be resampled to 125 Hz")])
def test_calibrate_refuses_a_cap_rate_no_model_can_be_trained_from(cli, tmp_path, stream_name, rate, said):
    """A 100-Hz cap was recorded for the whole session, then refused by train ("below the model's 125 Hz"),
    while decode's refusal of it advised a model trained at the stream's rate, which train cannot make."""
    outlet = _outlet(stream_name, rate, f"{stream_name}-sid")
    try:
        status, _, err = cli("calibrate", "--stream", stream_name, "--music", _tone_folder(tmp_path),
                             "--out", tmp_path / "s.xdf", "--no-audio", "--duration", "5")
    finally:
        del outlet
    line = assert_one_line_error(status, err, f"stream '{stream_name}'", said,
                                 "train could not use the session")
    assert "device rate such as" in line
    assert not (tmp_path / "s.xdf").exists() and not (tmp_path / "s_audio").exists()


@pytest.mark.lsl
@pytest.mark.usefixtures("real_collision_wait")   # the twin is found by the resolver's full listen
def test_calibrate_takes_the_source_id_its_refusal_of_two_like_named_streams_asks_for(cli, tmp_path,
                                                                                     stream_name):
    """The refusal said "pass --source-id", which calibrate did not accept. The 100-Hz outlet is picked by
    its source_id and refused for its rate: proof that the option chose it, with nothing recorded."""
    outlets = [_outlet(stream_name, rate, f"{stream_name}-{rate:g}") for rate in (100.0, 250.0)]
    argv = ["calibrate", "--stream", stream_name, "--music", _tone_folder(tmp_path),
            "--out", tmp_path / "s.xdf", "--no-audio", "--duration", "5"]
    try:
        status, _, err = cli(*argv)
        assert_one_line_error(status, err, "2 LSL streams match",
                              f"pass --source-id with one of '{stream_name}-100'")
        status, _, err = cli(*argv, "--source-id", f"{stream_name}-100")
        assert_one_line_error(status, err, "runs at 100 Hz, below the 125 Hz")
    finally:
        del outlets
    assert not (tmp_path / "s.xdf").exists()


def test_the_next_command_simulate_suggests_for_a_cap_runs_as_printed(cli, tmp_path, monkeypatch):
    """It lacked --out, which train requires: pasted, the suggestion was refused."""
    import shlex

    from eegmusic.stream.cli import build_parser

    monkeypatch.chdir(tmp_path)
    status, out, _ = cli("simulate", "--out", "cap", *CAP, *TINY)
    assert status == 0, out
    suggestion = shlex.split(out.split("next: ", 1)[1].strip())
    assert suggestion[0] == "eegmusic"
    args = build_parser().parse_args(suggestion[1:])      # required options present, each value valid
    assert args.command == "train" and args.out and Path(args.data).is_file()


@pytest.mark.parametrize(("played", "cut", "said"), [
    (0, 0.7, "under the 1 s a play needs to be trained on; the session holds nothing to train on"),
    (2, 0.7, "under the 1 s a play needs to be trained on; the session trains on the tracks before it"),
    (0, 2.3, "that track cut short at 2.3 s; the session trains as it is"),
])
def test_a_track_cut_under_a_second_is_not_promised_to_training(played, cut, said):
    """Stopped 0.5-1 s into a track (its start marked) it said 'the session trains as it is' and offered
    `eegmusic train`, which refuses a session whose only play is under 1 s ('no track play has 1 s')."""
    from types import SimpleNamespace

    from eegmusic.replay.cli_calibrate import _stopped_line
    from eegmusic.replay.xdf_session import MIN_PIECE_S

    summary = SimpleNamespace(tracks_played=played, cut_short_s=cut)
    assert said in _stopped_line(summary, played + 1, MIN_PIECE_S)


def test_the_summary_names_the_montage_mne_resolved(cli, tmp_path):
    """``--montage STANDARD_1020`` was printed as typed; the sessions hold MNE's colin27_1020 cap."""
    status, out, err = cli("simulate", "--out", tmp_path / "sim", "--n-songs", "1", "--n-subjects", "1",
                           "--duration", "4", "--no-progress", "--montage", "STANDARD_1020",
                           "--channels", "8")
    assert status == 0, err
    assert "wrote 1 XDF session (colin27_1020, 250 Hz)" in out
