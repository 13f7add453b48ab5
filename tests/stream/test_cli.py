"""The dispatcher: -v/-q anywhere, renamed options, and a missing extra as one line, never a traceback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from eegmusic.stream.cli import build_parser, log_level, main
from eegmusic.stream.extras import EXTRA_OF, MissingExtraError, missing_extra, require

from tests.fixtures.processes import ended_within

REFUSING_MAIN = """
import sys
refused = set(sys.argv[1].split(","))
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in refused:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Refuse())
from eegmusic.stream.cli import main
sys.exit(main(sys.argv[2:]))
"""
"""``eegmusic`` as if the refused modules were not installed (argv[1]: comma-separated names)."""


def run_without(modules: str, *argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REFUSING_MAIN, modules, *argv], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(("argv", "verbose", "quiet"), [
    (["info", "x"], 0, 0),
    (["-v", "info", "x"], 1, 0),
    (["info", "x", "-v"], 1, 0),
    (["info", "-q", "x"], 0, 1),
    (["-q", "info", "x", "-q"], 0, 2),
    (["--verbose", "info", "x", "--quiet"], 1, 1),
])
def test_verbosity_before_or_after_the_command(argv, verbose, quiet):
    args = build_parser().parse_args(argv)
    assert args.verbose + args.verbose_command == verbose
    assert args.quiet + args.quiet_command == quiet


@pytest.mark.parametrize(("argv", "dest", "expected"), [
    (["train", "--data", "d", "--out", "o", "--songs", "21", "--songs", "22", "23"], "songs", [21, 22, 23]),
    (["train", "--data", "d", "--out", "o", "--subjects", "1", "--subjects", "3"], "subjects", [1, 3]),
    (["simulate", "--out", "o", "--music", "a.wav", "--music", "b"], "music", ["a.wav", "b"]),
    (["calibrate", "--stream", "s", "--out", "o.xdf", "--music", "a.wav", "--music", "b"], "music",
     ["a.wav", "b"]),
    (["bench", "--only", "inlet", "--only", "vocoder"], "only", ["inlet", "vocoder"]),
])
def test_a_list_option_given_twice_keeps_both_lists(argv, dest, expected):
    """``train --songs 21 --songs 22`` trained on song 22 alone, silently, where ``bench --only`` merged
    (a helper's option fuzz): every list option takes each use's values."""
    assert getattr(build_parser().parse_args(argv), dest) == expected


@pytest.mark.parametrize(("verbose", "quiet", "level"), [
    (0, 0, logging.INFO), (1, 0, logging.DEBUG), (3, 0, logging.DEBUG), (0, 1, logging.WARNING),
    (0, 2, logging.ERROR), (0, 5, logging.ERROR), (1, 1, logging.INFO),
])
def test_log_level(verbose, quiet, level):
    assert log_level(verbose, quiet) == level


def test_a_renamed_option_is_one_line_naming_the_new_one(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "s"), "--seconds", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seconds is now --duration" in err[0]


def test_missing_extra_maps_known_modules_only():
    error = missing_extra(ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn"))
    assert isinstance(error, MissingExtraError) and "pip install 'eegmusic[train]'" in str(error)
    assert "eegmusic[gui]" in str(missing_extra(ModuleNotFoundError("x", name="PySide6")))
    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None  # core: a real bug, not an extra
    assert missing_extra(ImportError("cannot import name 'x'")) is None
    assert {EXTRA_OF[m] for m in ("torch", "onnx", "mne", "h5py", "matplotlib")} == {"train"}
    assert {EXTRA_OF[m] for m in ("PySide6", "pyqtgraph")} == {"gui"}


def test_require(monkeypatch):
    assert require("json").dumps(1) == "1"
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"training extra: pip install 'eegmusic\[train\]'"):
        require("torch")
    with pytest.raises(ModuleNotFoundError):
        require("no_such_module_anywhere")  # not an extra: the plain error stays


def test_train_without_torch_is_one_line_naming_the_extra(sim_dir, tmp_path):
    result = run_without("torch", "train", "--data", str(sim_dir), "--arch", "linear", "--out",
                         str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["eegmusic train: error: torch is not installed; install the training extra: "
                     "pip install 'eegmusic[train]'"]
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_gui_without_qt_is_one_line_naming_the_extra(tmp_path):
    result = run_without("PySide6,pyqtgraph,shiboken6", "gui", "--duration", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'eegmusic[gui]'" in lines[0], result.stderr


def test_help_needs_no_extra():
    """``eegmusic --help`` and a command's ``--help`` work without torch and Qt."""
    result = run_without("torch,PySide6,pyqtgraph,matplotlib,mne,h5py,onnx", "train", "--help")
    assert result.returncode == 0 and "--arch" in result.stdout, result.stderr
    result = run_without("torch,PySide6,pyqtgraph,matplotlib,mne,h5py,onnx", "--help")
    assert result.returncode == 0 and "decode" in result.stdout


def test_train_help_names_every_architecture(capsys):
    """``train --help`` lists every registry model with its summary, read from the registry's table."""
    from eegmusic.offline_training.models.registry import ALL_MODELS, SPECS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    listing = " ".join(capsys.readouterr().out.split("architectures:")[1].split())  # unwrapped
    missing = [spec.name for spec in SPECS if f"{spec.name} ({spec.summary})" not in listing]
    assert not missing and set(ALL_MODELS) == {spec.name for spec in SPECS}, f"not in train --help: {missing}"


def test_only_eegmusic_logs_at_info_the_libraries_need_v(sim_dir, tmp_path):
    """A convnet train printed up to 27 INFO lines of onnx_ir's and onnxscript's export passes."""
    argv = [sys.executable, "-m", "eegmusic", "train", "--data", str(sim_dir), "--arch", "convnet",
            "--epochs", "1", "--target-offset", "0", "--songs", "21", "--out"]
    err = subprocess.run([*argv, str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stderr
    logged = [line.split(":")[0] for line in err.splitlines() if line.startswith(("INFO ", "DEBUG "))]
    assert logged and all(name.split()[1].startswith("eegmusic.") for name in logged), err
    # where the model is once the run is finished, not the hidden folder it was staged in
    final = tmp_path / "run" / "model.onnx"
    assert f"INFO eegmusic.offline_training.export: exported convnet model to {final}\n" in err, err


STOP_LOOP = """
import sys
from eegmusic.stream.cli import StopRequest, stop_signals
stop = StopRequest()
with stop_signals(stop):
    print("ready", flush=True)
    while not stop.wait(0):   # the busiest poll: a handler taking a lock would meet it held
        pass
"""


def test_a_stop_signal_always_ends_the_polling_loop():
    """SIGTERM ends a loop on ``StopRequest.wait`` every time (a ``threading.Event`` set from the
    handler hangs such a loop on about half of its stops: the handler lands inside ``Event.wait``
    while the main thread holds the Event's lock). Ten stops: with that bug, all ten end 1 in 1000."""
    for attempt in range(10):
        with subprocess.Popen([sys.executable, "-c", STOP_LOOP], stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout.readline().strip() == "ready"
            proc.terminate()
            if not ended_within(proc, 15):
                pytest.fail(f"stop {attempt + 1} of 10: the loop did not end within 15 s of SIGTERM")
        assert proc.returncode == 0


def test_a_repeated_stop_is_ignored_and_a_later_one_interrupts_again(monkeypatch):
    """The first stop signal raises KeyboardInterrupt; its repeats within REPEATED_STOP_S would land in
    the cleanup it started and are ignored; one after that interrupts again (a cleanup that hangs)."""
    import signal
    import time

    from eegmusic.stream import cli

    monkeypatch.setattr(cli._FirstStop, "at", None)
    with pytest.raises(KeyboardInterrupt):
        cli._interrupt(signal.SIGINT, None)
    assert cli.stop_under_way()
    cli._interrupt(signal.SIGTERM, None)  # a repeat: ignored
    monkeypatch.setattr(cli._FirstStop, "at", time.monotonic() - cli.REPEATED_STOP_S - 0.1)
    assert not cli.stop_under_way()
    with pytest.raises(KeyboardInterrupt):
        cli._interrupt(signal.SIGINT, None)


STOPPED_INSIDE_EXEC = """
import sys
import eegmusic.replay.cli_info as info
from eegmusic.stream.cli import run

def stopped_inside_exec(args):
    # the SIGTERM lands in code that exec() built from a string, as a dataclass's methods are
    exec("import os, signal, time\\nos.kill(os.getpid(), signal.SIGTERM)\\nwhile True: time.sleep(0.01)")

info.run_info = stopped_inside_exec
sys.exit(run())
"""


def test_a_stop_inside_code_built_by_exec_still_exits_130(tmp_path):
    """A SIGTERM to ``simulate`` ended it by SIGINT (status -2) in 14 of 107 stops under load: its
    KeyboardInterrupt passed through an ``exec`` of a string (dataclasses, scipy's imports), which CPython
    marks as an unhandled KeyboardInterrupt however ``main`` handles it, and ``python -m`` then ends the
    interpreter by SIGINT. ``run`` clears the mark once ``main`` has returned."""
    (tmp_path / "stopped.py").write_text(STOPPED_INSIDE_EXEC)
    # run with -m, as `python -m eegmusic`: a script's SystemExit ends the process before the mark is read
    done = subprocess.run([sys.executable, "-m", "stopped", "info", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (130, "eegmusic info: interrupted")


SWALLOWING_MODULE = """
import os, signal, time
def swallowed_stop(seconds):
    try:   # as Cython's registration with collections.abc as it imports: an error there is only a warning
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)   # the handler runs here
    except BaseException:
        pass
swallowed_stop(0.5)
if os.environ.get("SECOND_STOP"):   # an import that takes long: a second stop, past the repeats' 2 s
    time.sleep(2.0)
    swallowed_stop(0.5)
with open(os.environ["IMPORTED_MARK"], "w") as mark:
    mark.write("imported")
"""

STOPPED_IN_IMPORT = """
import os, sys, time
import eegmusic.replay.cli_info as info
from eegmusic.stream.cli import run

def stopped_in_import(args):
    import swallowing   # a module imported lazily, as numpy's np.random on its first use
    if not os.environ.get("SECOND_STOP"):
        time.sleep(60)   # a blocking call after the import (a child process's end, a lock): cut short

info.run_info = stopped_in_import
sys.exit(run())
"""


@pytest.mark.parametrize("second_stop", [False, True], ids=["held", "second stop swallowed too"])
def test_a_stop_landing_in_an_import_is_raised_once_the_import_is_done(second_stop, tmp_path):
    """A SIGTERM to ``simulate`` that landed in numpy's lazy import of ``np.random`` was lost: Cython's
    module set-up turned its KeyboardInterrupt into a warning, and the run went on to its end and exited 0
    (1 stop in 40 under load; CI failed on it). The stop is held until the import is done, then raised,
    also into a blocking call the command has gone on to. A second stop (an import that hangs) is raised
    at once; swallowed too, it ends the command as soon as the command returns."""
    (tmp_path / "swallowing.py").write_text(SWALLOWING_MODULE)
    (tmp_path / "stopped.py").write_text(STOPPED_IN_IMPORT)
    mark = tmp_path / "imported.txt"
    env = {**os.environ, "IMPORTED_MARK": str(mark), **({"SECOND_STOP": "1"} if second_stop else {})}
    with subprocess.Popen([sys.executable, "-m", "stopped", "info", str(tmp_path)], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        if not ended_within(child, 30):
            pytest.fail("the stop was lost: the command ran on 30 s after its SIGTERM")
        err = child.stderr.read()
    assert (child.returncode, err.strip()) == (130, "eegmusic info: interrupted")
    assert mark.read_text() == "imported"   # the import ran to its end: no module is left half made


def test_a_second_stop_interrupts_an_import_that_hangs(monkeypatch):
    """A stop held by an import that never ends would hold forever; a second stop later than
    REPEATED_STOP_S raises at once, inside the import, as every stop did before holds existed."""
    import signal
    import time

    from eegmusic.stream import cli

    monkeypatch.setattr(cli._FirstStop, "at", None)
    for name, value in (("signum", None), ("release", False), ("lost", False)):
        monkeypatch.setattr(cli._HeldStop, name, value)
    monkeypatch.setattr(cli, "IMPORT_RETRY_S", 3600.0)   # its watch never looks within this test
    frame = sys._getframe()
    monkeypatch.setattr(cli, "_importing", lambda _frame: True)
    cli._interrupt(signal.SIGTERM, frame)   # held
    assert cli._HeldStop.signum == signal.SIGTERM
    cli._interrupt(signal.SIGTERM, frame)   # a repeat: ignored, still held
    monkeypatch.setattr(cli._FirstStop, "at", time.monotonic() - cli.REPEATED_STOP_S - 0.1)
    with pytest.raises(KeyboardInterrupt):
        cli._interrupt(signal.SIGINT, frame)
    assert cli._HeldStop.signum is None and cli._HeldStop.lost   # main raises again if it was swallowed


def test_a_stop_held_as_a_stop_signals_block_begins_goes_to_that_blocks_handler(monkeypatch):
    """A stop held by an import just before ``replay`` or the dashboard installed their own handler was
    delivered to that handler once the import was done, which took it for a repeat of itself and dropped
    it; ``main`` then raised it after the command had run. The block's handler takes it as it begins."""
    import signal
    import time

    from eegmusic.stream import cli

    monkeypatch.setattr(cli._HeldStop, "signum", signal.SIGTERM)
    monkeypatch.setattr(cli._FirstStop, "at", time.monotonic())   # when the held stop arrived
    stop = cli.StopRequest()
    with cli.stop_signals(stop):
        assert stop.signum == signal.SIGTERM
        assert cli._HeldStop.signum is None
