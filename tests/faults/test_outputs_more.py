"""``gui --screenshot``, ``demo`` (--wav, --out, its summary) and ``bench --out``: an existing output is
refused before any work unless ``--overwrite``; what is written replaces the old file atomically.

Run in-process through ``eegmusic.stream.cli.main``; the dashboard is real Qt (offscreen), the benchmark
run is the real ``bench`` command over a one-function benchmark package made for the test.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.faults.conftest import assert_one_line_error

PRECIOUS = b"an earlier result that must survive\n"


@pytest.fixture
def precious(tmp_path):
    def make(name):
        path = tmp_path / name
        path.write_bytes(PRECIOUS)
        return path
    return make


def _leftovers(folder):
    """Temporary ``.part`` files left beside the outputs (an atomic write leaves none)."""
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


# -- gui --screenshot ----------------------------------------------------------------------------------

def test_gui_refuses_an_existing_screenshot_before_opening_a_window(precious, cli):
    target = precious("dashboard.png")
    status, _, err = cli("gui", "--screenshot", target, "--duration", "0.2")
    assert_one_line_error(status, err, str(target), "already exists", "--overwrite")
    assert target.read_bytes() == PRECIOUS


@pytest.mark.gui
def test_gui_screenshot_with_overwrite_replaces_the_file_atomically(precious, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    target = precious("dashboard.png")
    status, out, err = cli("gui", "--screenshot", target, "--duration", "0.3", "--overwrite", "--no-audio")
    assert status == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "screenshot saved" in out
    assert _leftovers(tmp_path) == []


SCREENSHOT_INTO_A_FULL_DISK = """
import resource, signal, sys
import pyqtgraph as pg
from eegmusic.gui.app import save_screenshot
from eegmusic.stream.errors import OutputError
from PySide6 import QtWidgets

pg.mkQApp("eegmusic-test")
widget = QtWidgets.QLabel("a picture of some size " * 20)
widget.resize(640, 480)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    save_screenshot(widget, sys.argv[1])
except OutputError as error:
    print("refused:", error)
"""


@pytest.mark.gui
def test_a_failed_screenshot_keeps_the_old_file(precious, tmp_path):
    """The PNG encoder writes its first 64 bytes and then fails for real: the process may not grow a file
    past 64 bytes (``RLIMIT_FSIZE``, set in a child process so pytest's own files are untouched)."""
    import os
    import subprocess

    target = precious("dashboard.png")
    done = subprocess.run([sys.executable, "-c", SCREENSHOT_INTO_A_FULL_DISK, str(target)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"refused: disk full while writing {target}"), done.stdout + done.stderr
    assert target.read_bytes() == PRECIOUS and _leftovers(tmp_path) == []


# -- demo ----------------------------------------------------------------------------------------------

def test_demo_refuses_an_existing_wav_before_any_work(precious, cli, tmp_path):
    target = precious("demo.wav")
    status, _, err = cli("demo", "--wav", target, "--cache", tmp_path / "cache", "--no-gui")
    assert_one_line_error(status, err, str(target), "--overwrite")
    assert target.read_bytes() == PRECIOUS
    assert not (tmp_path / "cache").exists()            # nothing simulated, trained or cached


def test_demo_refuses_a_folder_holding_an_earlier_run(cli, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_bytes(PRECIOUS)
    status, _, err = cli("demo", "--out", out, "--cache", tmp_path / "cache", "--no-gui")
    assert_one_line_error(status, err, str(out), "already exists", "--overwrite")
    assert (out / "summary.json").read_bytes() == PRECIOUS and not (tmp_path / "cache").exists()


def test_demo_refuses_a_wav_that_is_its_out_folder_before_any_work(cli, tmp_path):
    """``--wav same.wav --out same.wav``: the demo simulated, trained and decoded, then could not write
    the sound over the folder (exit 2), and the decoded sound and the summary were lost."""
    same = tmp_path / "same.wav"
    status, _, err = cli("demo", "--wav", same, "--out", same, "--cache", tmp_path / "cache", "--no-gui")
    line = assert_one_line_error(status, err, f"--wav {same} is the --out folder itself; pass another --wav "
                                              f"path (e.g. {tmp_path / 'decoded.wav'})")
    assert not same.exists() and not (tmp_path / "cache").exists()
    # the path it suggests is taken (the demo then stops at the next problem: no such --data)
    suggested = line.rsplit("(e.g. ", 1)[1].rstrip(")")
    status, _, err = cli("demo", "--wav", suggested, "--out", same, "--data", tmp_path / "none", "--no-gui")
    assert_one_line_error(status, err, f"{tmp_path / 'none'} does not exist; pass an NMED-T folder")


def test_demo_with_overwrite_gets_past_the_check_and_keeps_the_file_when_it_fails(precious, cli, tmp_path):
    target = precious("demo.wav")
    data = tmp_path / "not-nmedt"
    data.mkdir()
    status, _, err = cli("demo", "--wav", target, "--overwrite", "--data", data, "--cache", tmp_path / "c",
                         "--no-gui")
    line = assert_one_line_error(status, err, "songNN_Imputed.mat")   # the next problem, not the file
    assert "already exists" not in line and target.read_bytes() == PRECIOUS


def test_demo_never_records_over_an_earlier_recording(tmp_path):
    from eegmusic.gui.cli_demo import _new_folder

    (tmp_path / "recording").mkdir()
    assert _new_folder(tmp_path / "recording") == tmp_path / "recording"           # empty: used
    (tmp_path / "recording" / "mel_db.f32").write_bytes(PRECIOUS)
    (tmp_path / "recording-2").mkdir()
    (tmp_path / "recording-2" / "decoded.wav").write_bytes(PRECIOUS)
    assert _new_folder(tmp_path / "recording") == tmp_path / "recording-3"


# -- bench --out ---------------------------------------------------------------------------------------

@pytest.fixture
def tiny_benchmarks(tmp_path, monkeypatch):
    """A benchmark package with one instant benchmark, in place of ``eegmusic.benchmarks``."""
    package = tmp_path / "pkg" / "faults_tiny_bench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "bench_tiny.py").write_text("def run(quick):\n    return {'ratio': 1.5, 'baseline': 1.0}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    from eegmusic.benchmarks import cli_bench

    monkeypatch.setattr(cli_bench, "PACKAGES", ("faults_tiny_bench",))
    yield
    for name in [n for n in sys.modules if n.startswith("faults_tiny_bench")]:
        del sys.modules[name]


def test_bench_refuses_an_existing_out_before_running_anything(precious, cli, tiny_benchmarks):
    target = precious("bench.json")
    status, out, err = cli("bench", "--out", target, "tiny")
    assert_one_line_error(status, err, str(target), "--overwrite")
    assert target.read_bytes() == PRECIOUS and "bench_tiny" not in out


def test_bench_with_overwrite_replaces_the_results_atomically(precious, cli, tiny_benchmarks, tmp_path):
    target = precious("bench.json")
    status, out, err = cli("bench", "--out", target, "--overwrite", "tiny")
    assert status == 0, err
    results = json.loads(target.read_text())
    assert results["benchmarks"]["faults_tiny_bench.bench_tiny"]["result"] == {"ratio": 1.5, "baseline": 1.0}
    assert _leftovers(tmp_path) == []


def test_bench_to_a_new_file_needs_no_overwrite(cli, tiny_benchmarks, tmp_path):
    status, _, err = cli("bench", "--out", tmp_path / "new.json", "tiny")
    assert status == 0, err
    assert json.loads((tmp_path / "new.json").read_text())["quick"] is False
