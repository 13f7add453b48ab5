"""Hostile input found by an exploratory run of every command (stop 36): each is one line and exit 2 now.

Empty stream names, options that would be silently ignored, a corrupt model the dashboard only
warned about, a cut-short XDF session blamed on missing markers, and the demo's children that did not
hear its ``-q``.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from tests.faults.conftest import assert_one_line_error
from tests.fixtures.processes import wait_until


@pytest.mark.parametrize(("argv", "option"), [
    (["replay", "--data", "d", "--song", "21", "--subject", "1", "--name", ""], "--name"),
    (["replay", "--data", "d", "--song", "21", "--subject", "1", "--name", " cap"], "--name"),
    (["replay", "--data", "d", "--song", "21", "--subject", "1", "--source-id", "a\tb"], "--source-id"),
    (["calibrate", "--stream", "", "--music", "m", "--out", "s.xdf"], "--stream"),
    (["calibrate", "--stream", "cap", "--music", "m", "--out", "s.xdf", "--markers", " "], "--markers"),
    (["gui", "--stream", ""], "--stream"),
    (["simulate", "--out", "o", "--live", "--montage", "openbci8", "--name", ""], "--name"),
    (["simulate", "--out", "o", "--live", "--montage", "openbci8", "--markers", " "], "--markers"),
], ids=lambda value: value if isinstance(value, str) else " ".join(value[:1] + value[-2:]))
def test_an_empty_or_padded_stream_name_is_refused(argv, option, cli, tmp_path, monkeypatch):
    """An empty name matched every stream (decode, gui) or fell back to the default (replay)."""
    monkeypatch.chdir(tmp_path)
    status, _, err = cli(*argv)
    assert_one_line_error(status, err, option)


@pytest.mark.parametrize(("extra", "needle"), [
    (["--seed", "3"], "--seed only seeds --shuffle"),
    (["--no-audio", "--audio-device", "2"], "--audio-device"),
])
def test_a_calibrate_option_that_would_be_ignored_is_refused(extra, needle, cli, tmp_path):
    out = tmp_path / "s.xdf"
    status, _, err = cli("calibrate", "--stream", "nobody", "--music", tmp_path, "--out", out, *extra)
    assert_one_line_error(status, err, needle)
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.lsl
def test_calibrate_with_no_such_stream_is_one_line_and_writes_nothing(cli, tmp_path):
    """The stream is opened after the music is read: its failure is the same one line as decode's."""
    music = tmp_path / "music"
    music.mkdir()
    for name, period in (("a.wav", 10.0), ("b.wav", 7.0)):
        soundfile.write(music / name, (0.1 * np.sin(np.arange(22050 * 3) / period)).astype(np.float32), 22050)
    out = tmp_path / "s.xdf"
    status, _, err = cli("calibrate", "--stream", "nobody-47", "--music", music, "--out", out,
                         "--timeout", "0.5", "--no-audio")
    assert_one_line_error(status, err, "no LSL stream with name='nobody-47' appeared within 0.5 s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music"]


def test_the_dashboard_refuses_a_corrupt_model_before_any_window(cli, tmp_path):
    """It used to warn inside the window, save the screenshot and exit 0."""
    model = tmp_path / "model.onnx"
    model.write_bytes(bytes(range(256)) * 20)
    shot = tmp_path / "g.png"
    status, _, err = cli("gui", "--stream", "cap", "--model", model, "--screenshot", shot, "--duration", "1")
    assert_one_line_error(status, err, "model.onnx", "not a readable ONNX model")
    assert not shot.exists()


@pytest.fixture
def cut_session(tmp_path):
    """A simulated calibration session cut in half (its markers, written last, are lost)."""
    from eegmusic.replay.virtual_cap import simulate_sessions

    session, = simulate_sessions(tmp_path / "cap", montage="standard_1020", n_channels=8, sfreq=125.0,
                                 n_songs=1, n_subjects=1, seconds=4.0, progress=False)
    data = session.read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(data[: len(data) // 2])
    return cut


@pytest.mark.parametrize("command", [["info"], ["train", "--arch", "linear", "--out", "{tmp}/run", "--data"]])
def test_a_cut_short_session_is_named_damaged_in_one_line(command, cut_session, cli, tmp_path):
    """pyxdf printed its own ERROR and WARNING lines, and the refusal blamed missing markers alone."""
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in command]
    status, _, err = cli(*argv, cut_session)
    assert_one_line_error(status, err, "cut.xdf: damaged XDF file (pyxdf:", "no calibration markers")
    assert not (tmp_path / "run").exists()


def test_an_intact_session_loads_without_pyxdf_lines(tmp_path, caplog):
    from eegmusic.replay.virtual_cap import simulate_sessions
    from eegmusic.replay.xdf_session import XDFSession

    session, = simulate_sessions(tmp_path / "cap", montage="standard_1020", n_channels=8, sfreq=125.0,
                                 n_songs=1, n_subjects=1, seconds=4.0, progress=False)
    with caplog.at_level(logging.INFO):
        XDFSession(session)
    assert not [r for r in caplog.records if r.name.startswith("pyxdf")], caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize(("options", "flags"), [
    (["-vv"], ["-vv"]), (["-v"], ["-v"]), ([], []), (["-q"], ["-q"]), (["-qq"], ["-qq"]),
])
def test_the_demo_passes_its_verbosity_to_its_child_commands(options, flags):
    """``eegmusic -q demo`` printed its replay's INFO lines, and a default demo ran its children with -q
    (the root logger stays at WARNING without -v). A fresh interpreter, so the CLI's own logging set-up
    runs as it does for a user rather than under pytest's handlers."""
    script = ("import sys\nfrom eegmusic.stream.cli import configure_logging, log_level\n"
              "from eegmusic.gui.cli_demo import _log_flags\n"
              f"options = {options!r}\n"
              "verbose = sum(o.count('v') for o in options if o.startswith('-v'))\n"
              "quiet = sum(o.count('q') for o in options if o.startswith('-q'))\n"
              "configure_logging(verbose, quiet)\nprint(' '.join(_log_flags()))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == flags


@pytest.mark.parametrize(("verbose", "shown"), [(0, set()), (1, {"INFO"}), (2, {"INFO", "DEBUG"})])
def test_one_v_shows_the_libraries_info_lines_and_only_two_their_debug(verbose, shown):
    """Under a single -v numba's compiler and matplotlib's font search wrote thousands of DEBUG lines
    around eegmusic's own; eegmusic's debug lines still come with one."""
    script = ("import logging\nfrom eegmusic.stream.cli import configure_logging\n"
              f"configure_logging({verbose}, 0)\n"
              "for level in ('DEBUG', 'INFO'):\n"
              "    logging.getLogger('numba.core.ssa').log(getattr(logging, level), level)\n"
              "logging.getLogger('eegmusic.x').debug('own')\n")
    err = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stderr
    assert {line.split()[0] for line in err.splitlines() if "numba" in line} == shown
    assert ("own" in err) == (verbose >= 1)


def test_a_library_message_with_line_breaks_and_binary_bytes_is_printed_as_one_line(cli, tmp_path):
    """MNE quoted the bytes of a corrupt .vhdr in its message: three lines with raw bytes in them."""
    header = tmp_path / "rand.vhdr"
    header.write_bytes(b"\x7f\xc3\x8b\xc2\xb5/\x90*\n\x0e}8Up\xc3\xbf^\"\n" * 4)
    (tmp_path / "rand.eegmusic.json").write_text('{"stimuli": {"1": "song.wav"}}')  # the sidecar it needs
    soundfile.write(tmp_path / "song.wav", np.zeros(22050, np.float32), 22050)
    status, _, err = cli("info", header)
    line = assert_one_line_error(status, err, "rand.vhdr", "MNE cannot read it")
    assert line.isprintable(), line


def test_one_line_folds_breaks_and_hides_control_characters():
    from eegmusic.stream.errors import one_line

    assert one_line("a\nb\r\n  c\td\x00e\x1b[31m") == "a b c d?e?[31m"


@pytest.mark.parametrize(("value", "words"), [
    (np.nan, "NaN/Inf samples; export the audio again"),
    (1e30, "audio peaks at 1e+30 times full scale"),   # integers stored as float: train refused, info passed
])
def test_info_lists_a_stimulus_of_damaged_samples_as_a_problem(value, words, sim_dir, tmp_path, cli):
    """info read only the header: a NaN stimulus passed as fine there, while train refused it."""
    import shutil

    folder = tmp_path / "sim"
    shutil.copytree(sim_dir, folder)
    seconds = soundfile.info(folder / "stimuli" / "song21.wav").duration
    damaged = np.full(int(22050 * seconds), value, np.float32)
    soundfile.write(folder / "stimuli" / "song21.wav", damaged, 22050, subtype="FLOAT")
    status, out, _ = cli("info", folder)
    assert status == 1 and "song21.wav: audio" in out and words in out, out
    status, out, _ = cli("info", sim_dir)
    assert status == 0 and "problems: none" in out, out


@pytest.mark.parametrize(("make", "needle"), [
    (lambda p: p.mkdir(), "is a folder, not an audio file"),
    (lambda p: None, "audio file not found"),
])
def test_an_audio_path_that_is_no_file_is_named_for_what_it_is(make, needle, tmp_path):
    from eegmusic.stream.errors import DataFormatError
    from eegmusic.stream.stimulus import read_audio

    path = tmp_path / "song.wav"
    make(path)
    with pytest.raises(DataFormatError, match=needle):
        read_audio(path, sfreq=22050)


@pytest.mark.parametrize(("make", "needle"), [(lambda p: None, "does not exist"),
                                              (lambda p: p.write_text("x"), "is a file, not a folder")])
def test_the_demo_names_a_data_path_that_is_no_folder(make, needle, cli, tmp_path):
    """It said 'nope has 0 songNN_Imputed.mat files'."""
    data = tmp_path / "nope"
    make(data)
    status, _, err = cli("demo", "--data", data, "--cache", tmp_path / "cache")
    assert_one_line_error(status, err, needle, "NMED-T folder")


@pytest.mark.gui
def test_qt_platform_noise_goes_to_the_debug_log_and_real_qt_warnings_stay(caplog):
    """The offscreen plugin printed "This plugin does not support propagateSizeHints()" past -q."""
    from eegmusic.gui.app import make_app
    from PySide6 import QtCore

    make_app()
    try:
        with caplog.at_level(logging.DEBUG, logger="eegmusic.gui.app"):
            QtCore.qWarning("This plugin does not support propagateSizeHints()")
            QtCore.qWarning("QPainter::begin: Paint device returned engine == 0")
    finally:
        QtCore.qInstallMessageHandler(None)
    levels = {r.getMessage(): r.levelno for r in caplog.records if r.getMessage().startswith("Qt: ")}
    assert levels == {"Qt: This plugin does not support propagateSizeHints()": logging.DEBUG,
                      "Qt: QPainter::begin: Paint device returned engine == 0": logging.WARNING}, levels


def test_the_dashboard_refuses_listen_without_audio_as_decode_does(cli, tmp_path):
    status, _, err = cli("gui", "--no-audio", "--listen", "both", "--screenshot", tmp_path / "g.png")
    assert_one_line_error(status, err, "--listen both", "--no-audio")


def test_a_dashboard_forced_silent_starts_a_decode_that_decode_accepts(capsys):
    """With no sound device the window forces no_audio; its decode command must not then carry --listen,
    which decode refuses beside --no-audio."""
    from eegmusic.decoder.pipeline import PipelineConfig
    from eegmusic.gui.attach import decode_command
    from eegmusic.stream.cli import build_parser

    config = PipelineConfig(stream_name="cap", model_path="m.onnx", no_audio=True, listen="both")
    argv = decode_command(config, "pub")
    start = argv.index("decode")
    assert "--no-audio" in argv and "--listen" not in argv
    args = build_parser().parse_args(argv[start:])
    assert args.no_audio and args.listen == "decoded"


# -- second exploratory pass ---------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "needles"), [
    (["replay", "--xdf", "rec.xdf", "--xdf-stream", "E", "--data", "d", "--song", "21"], ("--xdf and --data",
                                                                                          "pass one")),
    (["replay", "--xdf", "rec.xdf", "--xdf-stream", "E", "--song", "21", "--subject", "1"],
     ("--song, --subject apply to --data only: drop them",)),
    (["replay", "--xdf", "rec.xdf", "--xdf-stream", "E", "--no-markers"],
     ("--no-markers applies", "drop it")),
    (["replay", "--data", "d", "--song", "21", "--subject", "1", "--xdf-stream", "E"], ("add --xdf",)),
    (["streams", "--type", ""], ("--type", "must not be empty")),
    (["decode", "--stream", "cap", "--model", "m.onnx", "--overwrite"], ("--overwrite", "neither")),
    (["demo", "--model", "m.onnx", "--arch", "linear"], ("--arch", "--model")),
], ids=lambda value: " ".join(value[:2]) if isinstance(value, list) else None)
def test_an_option_that_another_makes_meaningless_is_refused(argv, needles, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = cli(*argv)
    assert_one_line_error(status, err, *needles)


def test_simulate_takes_each_music_file_once(cli, tmp_path):
    """``--music a.wav ./a.wav`` made two songs of one file."""
    track = tmp_path / "a.wav"
    soundfile.write(track, 0.1 * np.ones(22050 * 3, np.float32), 22050)
    status, _, err = cli("simulate", "--out", tmp_path / "sim", "--music", track, tmp_path / "." / "a.wav",
                         "--n-subjects", "1", "--no-progress")
    assert_one_line_error(status, err, "a.wav again", "drop the repeat")
    assert not (tmp_path / "sim").exists()


def test_evaluate_and_screenshot_outputs_never_land_in_the_dataset(sim_dir, cli, tmp_path):
    import shutil

    data = shutil.copytree(sim_dir, tmp_path / "sim")
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    status, _, err = cli("evaluate", "--data", data, "--model", "m.onnx", "--out", data / "stimuli")
    assert_one_line_error(status, err, "--out", "inside it, an input")
    status, _, err = cli("gui", "--truth", data, "--screenshot", data / "shot.png")
    assert_one_line_error(status, err, "--screenshot", "inside the --truth dataset")
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_a_simulation_stopped_by_sigterm_removes_what_it_wrote(tmp_path):
    """SIGTERM (a scheduler's stop, `timeout`) left a half dataset that info called fine.

    The signal must land while the simulation writes: the manifest, read just after it was sent, still
    says unfinished. Under the suite's load its SIGTERM once reached the child only after the child's
    10-s run had finished (exit 0, nothing said); such an attempt proves nothing either way and is made
    again, up to three times.
    """
    import json
    import signal
    import subprocess
    import sys

    late = []
    for attempt in range(3):
        out = tmp_path / f"sim{attempt}"
        argv = ["simulate", "--out", str(out), "--n-songs", "4", "--n-subjects", "6", "--duration", "120",
                "--no-progress"]
        child = subprocess.Popen([sys.executable, "-m", "eegmusic", "-q", *argv], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        wait_until((out / "simulation.json").exists, child, what="simulation started writing")
        child.send_signal(signal.SIGTERM)
        try:
            mid_run = json.loads((out / "simulation.json").read_text()).get("complete") is False
        except FileNotFoundError:   # already removed by the stop
            mid_run = True
        except json.JSONDecodeError:   # being rewritten as finished: too late to tell
            mid_run = False
        output, err = child.communicate(timeout=60)
        if mid_run:
            break
        late.append(output.strip())
    else:
        pytest.fail(f"three simulations ended before this test's SIGTERM reached them: {late}")
    assert child.returncode == 130 and "interrupted" in err, (child.returncode, err)
    assert not out.exists()


@pytest.mark.parametrize("layout", ["nmedt", "xdf sessions"])
def test_info_names_a_simulation_that_did_not_finish(sim_dir, cli, tmp_path, layout):
    """Either layout: a folder of XDF sessions (simulate --montage) said "problems: none"."""
    import json
    import shutil

    if layout == "nmedt":
        data = shutil.copytree(sim_dir, tmp_path / "sim")
    else:
        data = tmp_path / "cap"
        assert cli("simulate", "--out", data, "--montage", "openbci8", "--n-songs", "1", "--n-subjects", "1",
                   "--duration", "2", "--no-progress")[0] == 0
        assert cli("info", data)[0] == 0
    manifest = json.loads((data / "simulation.json").read_text())
    (data / "simulation.json").write_text(json.dumps({**manifest, "complete": False}))
    status, out, _ = cli("info", data)
    assert status == 1 and "did not finish" in out, out


def test_outputs_written_through_a_temporary_file_get_the_umask_permissions(tmp_path):
    """mkstemp made them 0600 and the rename kept it: model.onnx, JSON summaries and WAVs were private."""
    import os
    import stat

    from eegmusic.stream.atomic import write_text

    previous = os.umask(0o022)
    try:
        write_text(tmp_path / "summary.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o644


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_leaves_no_temporary_file(small_disk):
    """torch.save's "unexpected pos" RuntimeError was a traceback, and its 40 MB .tmp file filled the disk."""
    import torch
    from eegmusic.offline_training.loop import save_checkpoint
    from eegmusic.stream.errors import OutputError

    with pytest.raises(OutputError, match="checkpoint.pt .*the disk may be full"):
        save_checkpoint(small_disk / "checkpoint.pt", {"weights": torch.zeros(200_000)})  # 800 KB
    assert list(small_disk.iterdir()) == []


# -- third exploratory pass (an audit of every command's bad input) -------------------------------------

@pytest.mark.parametrize(("argv", "prog"), [
    (["simulate", "--out", "sim", "--nosuch"], "eegmusic simulate"),
    (["--nosuch", "simulate", "--out", "sim"], "eegmusic"),       # before the command: the top level's
], ids=["after the command", "before it"])
def test_an_unknown_option_names_the_help_that_lists_the_options(argv, prog, cli, tmp_path, monkeypatch):
    """It said 'eegmusic: error: ... (see eegmusic --help)', which lists commands, not their options."""
    monkeypatch.chdir(tmp_path)
    status, _, err = cli(*argv)
    line = assert_one_line_error(status, err, "unrecognized arguments: --nosuch", f"(see {prog} --help)")
    assert line.startswith(f"{prog}: error:"), line
    assert not (tmp_path / "sim").exists()


@pytest.mark.parametrize("argv", [
    ["vocode", "--out", "{file}/x.wav", "in.wav"],
    ["decode", "--stream", "cap", "--model", "m.onnx", "--wav", "{file}/deeper/x.wav"],
    ["gui", "--screenshot", "{file}/x.png"],
], ids=lambda argv: argv[0])
def test_an_output_under_a_file_says_the_file_is_no_folder(argv, cli, tmp_path):
    """It said the folder 'does not exist; create it first', which a file in the way makes impossible."""
    (tmp_path / "notes.txt").write_text("kept")
    status, _, err = cli(*[a.replace("{file}", str(tmp_path / "notes.txt")) for a in argv])
    assert_one_line_error(status, err, "notes.txt'", "is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_an_option_of_eegmusic_itself_after_the_command_says_where_it_goes(cli, tmp_path):
    """`eegmusic info sim --lsl-local` said only 'unrecognized arguments'."""
    status, _, err = cli("info", tmp_path, "--lsl-local")
    assert_one_line_error(status, err, "--lsl-local is an option of eegmusic itself",
                          "eegmusic --lsl-local info")


@pytest.mark.parametrize(("argv", "needles", "not_said"), [
    (["streams", "--type", ""], ("--type must not be empty", "the one to look for"), "stream's name"),
    (["gui", "--attach", ""], ("--attach", "e.g. --attach cap1"), "--publish"),
    (["replay", "--data", "d", "--song", "21", "--subject", "1", "--name", ""],
     ("--name must not be empty", "name to publish under"), "look for"),
    (["calibrate", "--stream", "cap", "--music", "m", "--out", "s.xdf", "--markers", ""],
     ("--markers must not be empty", "name to publish under"), "look for"),
    (["decode", "--stream", "cap", "--model", "m.onnx", "--hop", "0.03"], ("(1 frame)",), "(1 frames)"),
    # --duration: before the refusal this opened a dashboard, which would otherwise run until killed
    (["gui", "--overwrite", "--duration", "1"], ("--overwrite", "no --screenshot"), None),
], ids=["empty type", "empty attach name", "replay name", "calibrate markers", "hop of one frame",
        "overwrite nothing"])
def test_a_refusal_names_the_option_given_and_a_fix_for_it(argv, needles, not_said, cli):
    status, _, err = cli(*argv)
    line = assert_one_line_error(status, err, *needles)
    assert not_said is None or not_said not in line, line


def test_a_folder_given_as_an_xdf_file_is_called_a_folder(cli, tmp_path):
    (tmp_path / "session.xdf").mkdir()
    status, _, err = cli("replay", "--xdf", tmp_path / "session.xdf", "--xdf-stream", "cap")
    assert_one_line_error(status, err, "session.xdf: a folder, not an XDF file")


def test_streams_help_says_what_its_exit_status_means(cli):
    status, out, _ = cli("streams", "--help")
    assert status == 0 and "1 when none is visible" in " ".join(out.split()), out


@pytest.mark.timeout(60)    # before the refusal this started every benchmark: fail, do not run for hours
def test_bench_only_with_no_name_is_refused_not_run_whole(cli, tmp_path):
    """`--only` with nothing after it ran every benchmark (hours on 2 cores)."""
    status, _, err = cli("bench", "--only", "--out", tmp_path / "b.json")
    assert_one_line_error(status, err, "--only", "expected at least one argument")
    assert not (tmp_path / "b.json").exists()


@pytest.mark.timeout(60)    # before the refusal, --arch nosuch simulated the demo's dataset first (minutes)
@pytest.mark.parametrize(("argv", "needles"), [
    (["--arch", "nosuch"], ("--arch nosuch is not a model", "convnet")),
    (["--model", "{tmp}/nosuch.onnx"], ("nosuch.onnx is not a file",)),
    (["--model", "{tmp}/junk.onnx"], ("junk.onnx",)),
], ids=["unknown arch", "missing model", "junk model"])
def test_demo_refuses_a_bad_arch_or_model_before_any_work(argv, needles, cli, tmp_path):
    """An unknown --arch was refused by train after the demo had simulated its dataset (270 MB); a
    missing --model after the replay had started and the output folder was made."""
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    status, _, err = cli("demo", "--no-gui", "--cache", tmp_path / "cache",
                         *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert_one_line_error(status, err, *needles)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("argv", [["vocode", "{path}", "--out", "{out}"],
                                  ["simulate", "--out", "{sim}", "--music", "{path}", "--n-subjects", "1"]])
def test_random_bytes_named_mp3_are_not_called_missing(cli, tmp_path, argv):
    """libsndfile calls a regular file it cannot decode as mp3 'does not exist or is not a regular file
    (possibly a pipe?)', which was passed on as the reason."""
    path = tmp_path / "garbage.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    argv = [arg.format(path=path, out=tmp_path / "o.wav", sim=tmp_path / "sim") for arg in argv]
    status, _, err = cli(*argv)
    line = assert_one_line_error(status, err, str(path), "found no audio it can decode in it")
    assert "does not exist" not in line and "pipe" not in line


def test_the_mp3_decoders_own_notes_stay_off_the_terminal(tmp_path):
    """mpg123, inside libsndfile, writes "Note: Illegal Audio-MPEG-Header …" lines to descriptor 2
    itself, so the in-process ``cli`` above, which captures Python's stderr, never saw them: a real
    command printed three lines before its one-line error. ``-v`` shows them as a debug line."""
    path = tmp_path / "garbage.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    argv = [sys.executable, "-m", "eegmusic", "simulate", "--out", str(tmp_path / "sim"),
            "--music", str(path), "--n-subjects", "1", "--no-progress"]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert_one_line_error(quiet.returncode, quiet.stderr, str(path), "found no audio it can decode in it")
    verbose = subprocess.run([*argv, "-v"], capture_output=True, text=True, timeout=120)
    assert "audio decoder: Note: Illegal Audio-MPEG-Header" in verbose.stderr, verbose.stderr


LONG = "a" * 300
"""A file name longer than the file system allows (255 bytes on ext4, tmpfs and most others)."""


@pytest.mark.parametrize(("argv", "needles"), [
    (["info", "{tmp}/" + LONG], ["cannot use {tmp}/a", "File name too long; choose a shorter name"]),
    (["replay", "--data", "{tmp}/" + LONG, "--song", "21", "--subject", "1"], ["File name too long"]),
    (["simulate", "--out", "{tmp}/" + LONG], ["--out", "File name too long; name another folder"]),
    (["decode", "--stream", "s", "--model", "m.onnx", "--json", "{tmp}/" + LONG + ".json"],
     ["--json", "File name too long; name another file"]),
    (["simulate", "--out", "{tmp}/loop"], ["--out", "Too many levels of symbolic links"]),
    (["evaluate", "--model", "m.onnx", "--data", "d", "--out", "{tmp}/loop/x"],
     ["--out", "Too many levels of symbolic links"]),
    (["train", "--data", "d", "--arch", "linear", "--out", "{tmp}/dangling"],
     ["--out", "is a symbolic link to nothing", "remove the link"]),
    (["train", "--data", "d", "--arch", "linear", "--out", "{tmp}/dangling/run"],
     ["--out", "dangling' in", "is a symbolic link to nothing"]),
    (["train", "--data", "{data}", "--arch", "linear", "--out", "/proc/eegmusic-run"],
     ["cannot create --out folder /proc/eegmusic-run: /proc takes no new folder", "choose another --out"]),
    (["simulate", "--out", "{tmp}/\udcff\udcfe"], ["--out", "holds bytes that are not UTF-8", "rename it"]),
    (["vocode", "in.wav", "--out", "{tmp}/\udcff.wav"], ["--out", "not UTF-8"]),
    (["decode", "--stream", "s", "--model", "m.onnx", "--record", "{tmp}/\udcffrec"],
     ["--record", "not UTF-8"]),
], ids=["info long", "replay long", "simulate long", "decode long", "simulate loop", "evaluate loop",
        "train dangling", "train dangling on the way", "train proc", "simulate bytes", "vocode bytes",
        "decode bytes"])
def test_a_path_the_file_system_refuses_is_one_line_and_creates_nothing(argv, needles, cli, tmp_path,
                                                                        sim_dir):
    """Names longer than the file system allows, loops of symbolic links, a link to nothing as a folder to
    create (or on the way to it), a folder that only looks writable (train's, before any data is read),
    and names of bytes that are not UTF-8 (which libsndfile and the JSON writer cannot encode) ended in
    tracebacks; ``decode --record`` with such a name left a half-written recording that every later run
    refused."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    before = sorted(p.name for p in tmp_path.iterdir())
    status, _, err = cli(*(arg.replace("{tmp}", str(tmp_path)).replace("{data}", str(sim_dir))
                           for arg in argv))
    assert_one_line_error(status, err, *(needle.replace("{tmp}", str(tmp_path)) for needle in needles))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


LOOP = "not found: a symbolic link on its path loops (too many levels of links)"
DANGLING = "not found: it is a symbolic link to {tmp}/missing, which does not exist"


@pytest.mark.parametrize(("argv", "needles"), [
    (["info", "{tmp}/loop"], ["{tmp}/loop: " + LOOP, "pass an NMED-T folder"]),
    (["train", "--data", "{tmp}/dangling", "--arch", "linear", "--out", "{tmp}/run"],
     ["{tmp}/dangling: " + DANGLING]),
    (["vocode", "{tmp}/loop", "--out", "{tmp}/o.wav"], ["{tmp}/loop: audio file " + LOOP, "check the path"]),
    (["decode", "--stream", "s", "--model", "{tmp}/dangling"],
     ["model file {tmp}/dangling does " + DANGLING.replace("not found", "not exist")]),
    (["calibrate", "--stream", "s", "--music", "{tmp}/loop/song.wav", "--out", "{tmp}/s.xdf"],
     ["{tmp}/loop/song.wav: " + LOOP]),
    (["simulate", "--music", "{tmp}/dangling", "--out", "{tmp}/sim"],
     ["{tmp}/dangling: no such file or folder: it is a symbolic link to {tmp}/missing"]),
], ids=["info loop", "train dangling", "vocode loop", "decode dangling", "calibrate loop on the way",
        "simulate dangling"])
def test_an_input_behind_a_broken_link_is_named_for_the_link(argv, needles, cli, tmp_path):
    """A loop of symbolic links, or a link to nothing, was reported as a plain "not found", which sent the
    user looking for a file whose name is right there."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    before = sorted(p.name for p in tmp_path.iterdir())
    status, _, err = cli(*(arg.replace("{tmp}", str(tmp_path)) for arg in argv))
    assert_one_line_error(status, err, *(needle.replace("{tmp}", str(tmp_path)) for needle in needles))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("command", [["simulate", "--out", "{tmp}/out", "--music"], ["vocode"]])
def test_an_audio_file_whose_name_is_not_utf8_is_named_for_that(command, cli, tmp_path):
    """libsndfile opens paths as UTF-8: a music file named in another encoding was "cannot be decoded as
    audio", and the fix offered (another format) could not help."""
    song = tmp_path / "\udcffsong.wav"                         # the byte 0xff, as Python holds it
    soundfile.write(tmp_path / "song.wav", np.zeros(22050, np.float32), 22050)
    (tmp_path / "song.wav").rename(song)                      # os functions take it; libsndfile not
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in command] + [str(song)]
    if command == ["vocode"]:
        argv += ["--out", str(tmp_path / "o.wav")]
    status, _, err = cli(*argv)
    assert_one_line_error(status, err, "its name holds bytes that are not UTF-8", "rename the file")
    assert "decoded" not in err and not (tmp_path / "out").exists() and not (tmp_path / "o.wav").exists()


def test_a_folder_to_create_under_a_linked_folder_is_accepted(tmp_path):
    """Only links between the folder and its nearest existing parent are on its way: a link above that
    one (a home folder reached through a link) is an ordinary path to write under."""
    from eegmusic.stream.options import output_dir

    (tmp_path / "real" / "runs").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    text = str(tmp_path / "link" / "runs" / "new")       # nearest existing: link/runs, under the link
    assert output_dir(text) == text


@pytest.mark.lsl
def test_a_dataset_folder_whose_name_is_not_utf8_replays(cli, sim_dir, tmp_path, stream_name):
    """pylsl sends stream metadata as UTF-8: ``replay --data`` of a folder named in another encoding
    ended in a UnicodeEncodeError traceback as it described the stream (a helper's option fuzz). The
    stream's metadata now names it with U+FFFD, and the replay runs to its end."""
    folder = tmp_path / "nmedt\udcff"                          # the byte 0xff, as Python holds it
    folder.symlink_to(sim_dir)
    status, out, err = cli("replay", "--data", folder, "--song", "21", "--subject", "1",
                           "--name", stream_name, "--speed", "200", "--no-markers")
    assert status == 0, err
    assert f"replay '{stream_name}' end of data after 2500 samples" in out, out + err
