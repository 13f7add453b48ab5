"""``eegmusic demo`` with given data and model: replay in a child process, live decode, summary.

The simulate and train steps are the tested ``eegmusic simulate`` / ``train`` commands; here the demo
gets ``--data`` and ``--model`` so it runs in seconds, through the real replay process and pipeline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
from eegmusic.decoder.scores import SHIFTED_WORDS

from tests.children import read_until
from tests.decoder.onnx_models import make_model

ROOT = Path(__file__).resolve().parents[2]


def _demo(*argv, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "eegmusic", "demo", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _demo_headless(sim_dir, tmp_path, model, seconds: float):
    """``demo --no-gui`` of ``model`` for ``seconds`` into ``tmp_path/run``, its WAV ``tmp_path/demo.wav``:
    (the finished process, its summary.json), once it is seen to exit 0 and write over a second of audio."""
    result = _demo("--data", str(sim_dir), "--model", str(model), "--duration", f"{seconds:g}", "--no-gui",
                   "--wav", str(tmp_path / "demo.wav"), "--out", str(tmp_path / "run"), "--cache",
                   str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-2000:]
    audio, rate = soundfile.read(tmp_path / "demo.wav")
    assert rate == 22050 and len(audio) > 22050
    return result, json.loads((tmp_path / "run" / "summary.json").read_text())


@pytest.mark.lsl
def test_demo_replays_decodes_and_summarises(sim_dir, tmp_path):
    out = tmp_path / "run"
    # 3 s: the first window needs 1 s of the stream, then some 80 windows and 2 s of audio (> 10, > 1 s asked)
    result, summary = _demo_headless(sim_dir, tmp_path, make_model(tmp_path / "model.onnx"), seconds=3)
    assert summary["counters"]["windows"] > 10 and summary["error"] is None
    assert summary["dynamic_r_total"] is not None          # scored against song 22's true mel
    assert "song-mean baseline" in result.stdout and "latency per stage" in result.stdout
    assert "global-mean baseline" in result.stdout and "by construction" not in result.stdout
    # each baseline is a score, or n/a with its reason (one spectrum at every scored frame), never a bare 0
    for key, label in (("global_mean", "global-mean"), ("song_mean", "song-mean")):
        value = summary["baseline_dynamic_r_total"][key]
        shown = f"{label} baseline n/a" if value is None else f"{label} baseline {value:.3f}"
        assert shown in result.stdout, result.stdout
        if value is None and key in summary["baseline_constant"]:
            assert "no dynamics to score" in result.stdout, result.stdout
    # and the control that needs no model metadata: a figure at the demo's one-frame hop
    control = summary["shifted_stimulus_dynamic_r_total"]
    assert control is not None and f"{SHIFTED_WORDS} {control:.3f}" in result.stdout, result.stdout
    # once: the demo printed decode's baselines line and then its own in other words
    assert result.stdout.count("global-mean baseline") == 1, result.stdout
    assert (out / "recording" / "mel_db.f32").stat().st_size > 0


@pytest.mark.lsl
def test_demo_plays_a_waveform_model(sim_dir, tmp_path):
    """The demo always hands decode its data as the truth; a waveform model scores no frame against it, and
    decode refuses that when typed: the demo leaves the truth out for such a model instead of failing."""
    model = make_model(tmp_path / "wave.onnx", kind="audio")
    _, summary = _demo_headless(sim_dir, tmp_path, model, seconds=3)
    assert summary["counters"]["windows"] > 5 and summary["error"] is None
    assert summary["dynamic_r_total"] is None        # no mel frames to score


def _no_file_past_64_kib():
    """In the demo's process (and its replay child): a file may not grow past 64 KiB, and a write past it
    fails with EFBIG, as on a full disk."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@pytest.mark.lsl
@pytest.mark.untimed
def test_a_demo_whose_decode_fails_says_so_in_one_line_and_exits_2(sim_dir, tmp_path):
    """The decode stops on an error once running (the recording's WAV cannot grow past 64 KiB): the summary
    still prints and names it, and the demo ends as ``decode`` does (it exited 1 with no error line)."""
    model = make_model(tmp_path / "model.onnx")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "eegmusic", "demo", "--data", str(sim_dir), "--model", str(model),
         "--duration", "4", "--no-gui", "--wav", str(tmp_path / "demo.wav"), "--out", str(out), "--cache",
         str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=_no_file_past_64_kib)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith("eegmusic demo: error: "), result.stderr[-2000:]
    assert "cannot write WAV file" in last and json.loads((out / "summary.json").read_text())["error"] in last
    assert "latency per stage" in result.stdout                        # the summary printed first


@pytest.mark.lsl
@pytest.mark.untimed
@pytest.mark.parametrize("out_on_that_disk", [False, True])
def test_a_full_disk_under_the_demos_wav_keeps_what_it_decoded(sim_dir, tmp_path, small_disk,
                                                               out_on_that_disk):
    """``--wav`` on a disk that fills: the decode stops, the summary prints, one line names what failed,
    and the audio decoded until then is kept under the WAV's name. The line said only "free space or
    choose another path", as if the demo removed the file, as ``vocode`` does with its own. With ``--out``
    on the same disk the recording failed too, and its close at the decode's stop raised: no summary, and
    the WAV went with the exception while the line said it stays readable."""
    (small_disk / "filler").write_bytes(bytes(200 * 1024))   # leaves about 1 s of 16-bit audio
    model = make_model(tmp_path / "model.onnx")
    wav = small_disk / "demo.wav"
    out = small_disk / "run" if out_on_that_disk else tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "eegmusic", "demo", "--data", str(sim_dir), "--model", str(model),
         "--duration", "6", "--no-gui", "--wav", str(wav), "--out", str(out), "--cache",
         str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith("eegmusic demo: error: "), result.stderr[-2000:]
    assert "latency per stage" in result.stdout                        # the summary printed first
    assert soundfile.info(wav).frames > 0
    assert not [p.name for p in small_disk.iterdir() if p.name.startswith(".")]   # no part file left
    if not out_on_that_disk:   # the WAV alone filled the disk: its line
        assert last.startswith(f"eegmusic demo: error: cannot write WAV file {wav} (the disk is full: "), last
        assert last.endswith("; what was written before stays readable: free space or choose another "
                             "path"), last


@pytest.mark.lsl
@pytest.mark.untimed
def test_a_demo_stopped_by_ctrl_c_keeps_what_it_decoded(sim_dir, tmp_path):
    """Ctrl-C ~10 s into ``demo --wav`` threw the decoded audio away (the WAV's temporary file went with
    the interrupt) and printed no summary: the WAV so far is kept and readable, the summary printed and
    written, and the demo ends interrupted (130), as decode keeps its --wav."""
    import signal
    import time

    model = make_model(tmp_path / "model.onnx")
    out, wav = tmp_path / "run", tmp_path / "dw.wav"
    child = subprocess.Popen(
        [sys.executable, "-m", "eegmusic", "demo", "--data", str(sim_dir), "--model", str(model),
         "--duration", "60", "--no-gui", "--wav", str(wav), "--out", str(out), "--cache",
         str(tmp_path / "cache")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(child, "eegmusic.decoder.pipeline: decoding")
        time.sleep(3.0)    # decoding
        child.send_signal(signal.SIGINT)
        stdout, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130 and err.strip().splitlines()[-1] == "eegmusic demo: interrupted", err
    audio, rate = soundfile.read(wav)
    assert rate == 22050 and len(audio) > 22050                     # seconds of it, not nothing
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counters"]["windows"] > 10 and "latency per stage" in stdout
    assert not [path.name for path in tmp_path.glob(".dw.*")]        # no temporary file left beside it


@pytest.mark.lsl
def test_the_demo_decodes_a_subject_conditioned_model_as_the_participant_it_replays(sim_dir, tmp_path):
    """The demo replays one participant (--subject 2 is S02 of the simulated data); a subject-conditioned
    model decoded it as its first training listener, S01."""
    from onnx import TensorProto

    model = make_model(tmp_path / "s.onnx", subject_type=TensorProto.INT64, subject_input=True,
                       subjects=("S01", "S02"))
    result = _demo("--data", str(sim_dir), "--model", str(model), "--subject", "2", "--duration", "2",
                   "--no-gui", "--wav", str(tmp_path / "demo.wav"), "--out", str(tmp_path / "run"), "--cache",
                   str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "as listener S02" in result.stderr and "no --subject was given" not in result.stderr, result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--duration", "0"], "--duration must be > 0"),
    (["--seconds", "4"], "--seconds is now --duration"),
    (["--model-name", "linear"], "--model-name is now --arch"),
    (["--song", "35"], "song 35 is not in"),
])
def test_demo_bad_options(sim_dir, tmp_path, argv, message):
    model = make_model(tmp_path / "model.onnx")
    result = _demo("--data", str(sim_dir), "--model", str(model), "--no-gui", "--cache", str(tmp_path), *argv)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_existing_out_is_refused_with_what_overwrite_does(sim_dir, tmp_path):
    """The refusal said "pass --overwrite to replace it", but --overwrite reuses the folder and keeps the
    recordings there (the help's word)."""
    model = make_model(tmp_path / "model.onnx")
    out = tmp_path / "dr"
    (out / "recording").mkdir(parents=True)
    result = _demo("--data", str(sim_dir), "--model", str(model), "--no-gui", "--cache", str(tmp_path),
                   "--out", str(out))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"--out folder {out} already exists; pass --overwrite to reuse it (its recordings are kept)" in (
        result.stderr)


@pytest.mark.parametrize(("n_songs", "said"), [(0, "has no songNN_Imputed.mat file"),
                                                (1, "has only 1 songNN_Imputed.mat file")])
def test_demo_needs_two_songs(tmp_path, n_songs, said):
    """One song is the boundary: none left to train on once it is held out."""
    data = tmp_path / "data"
    data.mkdir()
    for song in range(21, 21 + n_songs):
        (data / f"song{song}_Imputed.mat").write_bytes(b"")   # counted before any is read
    result = _demo("--data", str(data), "--no-gui", "--cache", str(tmp_path / "cache"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{said}; the demo needs 2 or more songs" in result.stderr, result.stderr


def test_demo_on_a_folder_of_calibration_sessions_says_it_replays_nmedt_folders_only(tmp_path):
    """A folder of two XDF sessions was said to have "no songNN_Imputed.mat file; the demo needs 2 or more
    songs", as if songs were missing."""
    data = tmp_path / "sessions"
    data.mkdir()
    for name in ("S01.xdf", "S02.xdf"):
        (data / name).write_bytes(b"")   # named before any is read
    result = _demo("--data", str(data), "--no-gui", "--cache", str(tmp_path / "cache"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    said = f"{data} holds recordings of another kind (S01.xdf, S02.xdf), and the demo replays NMED-T folders"
    assert said in result.stderr and "`eegmusic replay --data FILE`" in result.stderr, result.stderr


@pytest.mark.lsl
@pytest.mark.gui
def test_demo_with_the_dashboard_decodes_in_its_own_process(sim_dir, tmp_path):
    """With a display the demo's decode runs as a separate `eegmusic decode --publish` process that
    the dashboard shows and stops; the summary is that process's own."""
    import os

    model = make_model(tmp_path / "model.onnx")
    out = tmp_path / "run"
    env = {**os.environ, "DISPLAY": os.environ.get("DISPLAY", ":99"), "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(   # 3 s: after the first 1-s window, some 80 windows and 2 s of audio
        [sys.executable, "-m", "eegmusic", "demo", "--data", str(sim_dir), "--model", str(model),
         "--duration", "3", "--wav", str(tmp_path / "demo.wav"), "--out", str(out), "--cache",
         str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(its own process, shown by the dashboard)" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counters"]["windows"] > 10 and summary["error"] is None
    audio, rate = soundfile.read(tmp_path / "demo.wav")
    assert rate == 22050 and len(audio) > 22050


def _demo_until(argv, started: str, env=None, pipe="stdout", decoding_s: float = 2.0):
    """Start ``eegmusic demo argv``, read its ``pipe`` until a line holds ``started``, then SIGTERM it
    ``decoding_s`` later; return (status, stdout, stderr)."""
    import signal
    import time

    child = subprocess.Popen([sys.executable, "-m", "eegmusic", "demo", *argv], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = read_until(child, started, pipe)
        time.sleep(decoding_s)  # decoding (the first window needs 1 s of the stream)
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    return (child.returncode, seen + out, err) if pipe == "stdout" else (child.returncode, out, seen + err)


@pytest.mark.lsl
def test_sigterm_stops_the_demo_and_its_replay(sim_dir, tmp_path):
    """Killed by SIGTERM, the demo left its replay child publishing until the song ran out. It now
    stops as on Ctrl-C (exit 130) and terminates the replay; the recording so far stays."""
    model = make_model(tmp_path / "model.onnx")
    out = tmp_path / "run"
    status, stdout, err = _demo_until(
        ["--data", str(sim_dir), "--model", str(model), "--duration", "60", "--no-gui", "--out", str(out),
         "--cache", str(tmp_path / "cache")], started="eegmusic.decoder.pipeline: decoding '",
        pipe="stderr", decoding_s=1.0)   # no window counted here: stopped as it decodes, 1 s is enough
    assert status == 130 and err.strip().endswith("eegmusic demo: interrupted"), err[-2000:]
    assert "Traceback" not in err
    assert "replay 'eegmusic-demo-" in stdout and "stopped after" in stdout  # the child's own last line
    assert (out / "recording" / "mel_db.json").exists()  # the recording so far is kept


@pytest.mark.lsl
@pytest.mark.gui
def test_sigterm_closes_the_demos_dashboard_and_the_demo_reports(sim_dir, tmp_path):
    import os

    model = make_model(tmp_path / "model.onnx")
    out = tmp_path / "run"
    env = {**os.environ, "DISPLAY": os.environ.get("DISPLAY", ":99"), "QT_QPA_PLATFORM": "offscreen"}
    status, stdout, err = _demo_until(
        ["--data", str(sim_dir), "--model", str(model), "--duration", "60", "--out", str(out), "--cache",
         str(tmp_path / "cache")], started="pipeline started", env=env, pipe="stderr")
    assert status == 0, err[-2000:]
    assert "stopping on signal 15: closing the dashboard" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counters"]["windows"] > 10 and summary["error"] is None
    assert "(its own process, shown by the dashboard)" in stdout and "latency per stage" in stdout


def _copy_of(sim_dir: Path, tmp_path: Path) -> Path:
    """A copy of the shared simulated folder that a test may see harmed (the fixture is read-only)."""
    import shutil

    return Path(shutil.copytree(sim_dir, tmp_path / "data"))


@pytest.mark.parametrize("case, words", [
    ("wav-in-data", "--wav {data}/stimuli/song22.wav would write into the --data dataset folder"),
    ("out-in-data", "--out {data}/out would write into the --data dataset folder"),
    ("wav-is-model", "--wav {tmp}/model.wav is the input file itself"),
])
def test_demo_never_writes_into_its_data_or_over_its_model(sim_dir, tmp_path, case, words):
    """``--wav sim/stimuli/song22.wav --overwrite`` replaced a stimulus with decoded audio (decode refuses
    it); the demo now refuses, even with --overwrite, before anything runs."""
    data = _copy_of(sim_dir, tmp_path)
    model = make_model(tmp_path / ("model.wav" if case == "wav-is-model" else "model.onnx"))
    kept = {path: path.read_bytes() for path in (data / "stimuli" / "song22.wav", model)}
    target = {"wav-in-data": ["--wav", str(data / "stimuli" / "song22.wav"), "--overwrite"],
              "out-in-data": ["--out", str(data / "out")],
              "wav-is-model": ["--wav", str(model), "--overwrite"]}[case]
    result = _demo("--data", str(data), "--model", str(model), "--duration", "2", "--no-gui",
                   "--cache", str(tmp_path / "cache"), *target)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert words.format(data=data, tmp=tmp_path) in result.stderr, result.stderr
    assert all(path.read_bytes() == content for path, content in kept.items())
    assert not (data / "out").exists() and not (tmp_path / "cache").exists()


def test_a_cached_model_is_reused_only_for_the_same_unchanged_data(tmp_path):
    """The model cache was keyed on the data folder's name: another folder named alike, or the same one
    simulated again, got a model trained on other data. Its key now holds the full path and its
    ``.complete`` the data's fingerprint."""
    from eegmusic.gui import cli_demo

    def simulate(folder, *overwrite):
        subprocess.run([sys.executable, "-m", "eegmusic", "-q", "simulate", "--out", str(folder), "--n-songs",
                        "2", "--n-subjects", "1", "--duration", "5", "--seed", "0", *overwrite], check=True,
                       capture_output=True)

    first, second = tmp_path / "a" / "sim", tmp_path / "b" / "sim"
    for folder in (first, second):
        simulate(folder)
    cache = tmp_path / "cache"
    run = cli_demo.run_folder("linear", first, [21], cache, check=False)
    assert run != cli_demo.run_folder("linear", second, [21], cache, check=False)   # same name, other data
    run.mkdir(parents=True)
    (run / "model.onnx").write_bytes(b"trained on a/sim")
    (run / ".complete").write_text(cli_demo.data_fingerprint(first))
    assert cli_demo.cached_model(run, first) == run / "model.onnx"
    simulate(first, "--overwrite")                                              # simulated again in place
    assert cli_demo.cached_model(run, first) is None


def test_demo_arch_takes_the_model_the_default_demo_trained(tmp_path, capsys):
    """``demo --arch convnet`` after ``demo`` trained the convnet again (48 s): the default demo's run
    differs only by its unseen-song check, which trains a second model beside the same one."""
    import argparse

    from eegmusic.gui import cli_demo

    data = tmp_path / "sim"
    data.mkdir()
    cache = tmp_path / "cache"
    checked = cli_demo.run_folder("convnet", data, [21, 22], cache, check=True)
    checked.mkdir(parents=True)
    (checked / "model.onnx").write_bytes(b"the default demo's convnet")
    (checked / ".complete").write_text(cli_demo.data_fingerprint(data))
    args = argparse.Namespace(model=None, arch="convnet")
    assert cli_demo._ensure_model(args, data, [21, 22, 23], 23, cache) == checked / "model.onnx"
    assert f"model: cached {checked / 'model.onnx'}" in capsys.readouterr().out


def test_a_simulation_left_unfinished_is_made_again(tmp_path, monkeypatch):
    """A demo killed during its first simulation left the cached folder without ``.complete``, and every
    later demo failed ("--out folder ... already exists"); the leftover is now removed and simulated anew."""
    import argparse

    from eegmusic.gui import cli_demo

    monkeypatch.setattr(cli_demo, "DEMO_SIM", {**cli_demo.DEMO_SIM, "songs": 2, "subjects": 1, "seconds": 5})
    cache = tmp_path / "cache"
    args = argparse.Namespace(data=None)
    leftover = cli_demo.simulation_folder(cache)
    leftover.mkdir(parents=True)
    (leftover / "song21_Imputed.mat").write_bytes(b"half a file")
    folder = cli_demo._ensure_data(args, cache)
    assert folder == leftover and (folder / ".complete").exists()
    songs = sorted(p.name for p in folder.glob("song*_Imputed.mat"))
    assert songs == ["song21_Imputed.mat", "song22_Imputed.mat"]
    assert (folder / "song21_Imputed.mat").stat().st_size > 1000


def test_a_simulation_another_demo_is_making_is_left_alone(tmp_path, monkeypatch):
    """A second demo on the same cache found a first one's simulation still without ``.complete``, removed
    it as a leftover and broke both; it now says the other demo is making it, and touches nothing."""
    import argparse

    from eegmusic.gui import cli_demo
    from eegmusic.stream.atomic import output_lock
    from eegmusic.stream.errors import OutputError

    cache = tmp_path / "cache"
    making = cli_demo.simulation_folder(cache)
    making.mkdir(parents=True)
    (making / "song21_Imputed.mat").write_bytes(b"being written")
    with output_lock(making.with_name(making.name + ".demo"), "demo (making simulation)"):
        with pytest.raises(OutputError, match=r"is making the cached simulation there; wait for it to "
                                              r"finish, or pass another --cache DIR$"):
            cli_demo._ensure_data(argparse.Namespace(data=None), cache)
    assert (making / "song21_Imputed.mat").read_bytes() == b"being written"


def test_two_demos_in_the_same_second_get_their_own_output_folders(tmp_path):
    """The default output folder is named to the second: a second demo started in that second shared it
    and failed on the first one's recording. Each run now creates its folder for itself."""
    from eegmusic.gui.cli_demo import new_run_folder

    first = new_run_folder(tmp_path / "demo-output", "20250101-120000")
    second = new_run_folder(tmp_path / "demo-output", "20250101-120000")
    assert first != second and first.is_dir() and second.is_dir()
    assert second.name == "20250101-120000-2"


@pytest.mark.untimed
def test_a_participant_the_data_lacks_is_refused_before_any_work(sim_dir, tmp_path):
    """``--subject 9`` on 3 participants: the replay child died at once, and the demo waited 34 s to say
    no stream appeared. It is now refused up front, in one line."""
    import time

    model = make_model(tmp_path / "model.onnx")
    start = time.monotonic()
    result = _demo("--data", str(sim_dir), "--model", str(model), "--no-gui", "--duration", "2", "--subject",
                   "9", "--cache", str(tmp_path / "cache"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert "--subject 9: song 22" in result.stderr and "has 3 participants" in result.stderr, result.stderr
    assert time.monotonic() - start < 20 and not (tmp_path / "cache" / "demo-output").exists()


@pytest.mark.lsl
@pytest.mark.untimed
def test_a_replay_that_fails_ends_the_demo_with_its_reason(sim_dir, tmp_path):
    """The replay child fails on a song file it cannot read: the demo stops when the child ends, naming
    it, instead of waiting 30 s for its stream."""
    import time

    data = _copy_of(sim_dir, tmp_path)
    (data / "song22_Imputed.mat").write_bytes(b"not a MATLAB file")
    model = make_model(tmp_path / "model.onnx")
    start = time.monotonic()
    result = _demo("--data", str(data), "--model", str(model), "--no-gui", "--duration", "2", "--out",
                   str(tmp_path / "run"), "--cache", str(tmp_path / "cache"))
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith("eegmusic demo: error: "), result.stderr[-2000:]
    assert "`eegmusic replay` ended (exit 2) before its stream appeared" in last, last
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("flag", ["--out", "--cache"])
def test_a_demo_folder_that_cannot_be_made_is_one_line_before_any_work(flag, capsys):
    """/proc takes no new folder: the demo ended in a FileNotFoundError traceback at its first mkdir."""
    from tests.faults.conftest import assert_one_line_error, run_cli

    status, _, err = run_cli(["demo", flag, "/proc/eegmusic-demo", "--no-gui"], capsys)
    assert_one_line_error(status, err, f"cannot create {flag} folder /proc/eegmusic-demo: /proc takes no new "
                                       f"folder", f"choose another {flag} folder")
