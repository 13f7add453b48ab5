"""The installed wheel, as a user gets it: ``pip install eegmusic`` into a fresh virtualenv, no ``-e``.

One module-scoped scenario builds the wheel from the working tree (tracked and untracked files git
does not ignore, copied away from the repository so nothing resolves to the source folders), makes a
fresh virtualenv, and then, from an empty working directory:

1. installs the core only, and checks ``import eegmusic``, ``eegmusic --version``, ``--help`` of every
   command documented in the README (each with an example), ``simulate`` on the core, and that
   ``train`` says in one line to install ``eegmusic[train]``;
2. installs ``eegmusic[train]`` (torch from ``constraints.txt``, the CPU build where pip is pointed at
   it), trains ``--arch linear``, evaluates the model, and decodes a replayed stream for 5 s headless
   (``--no-audio``) with torch, Qt, MNE, matplotlib and h5py blocked from import: the live path needs
   the core only.

Each test checks one recorded step, so they can run in any order. The scenario costs about a minute
and a half on 2 cores (pip's cache keeps a second run's downloads local); ``make wheel-check`` runs
this file alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.processes import ended_within

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.wheel, pytest.mark.lsl, pytest.mark.timeout(900)]

BLOCK_EXTRAS = ("torch", "onnx", "mne", "h5py", "matplotlib", "PySide6", "pyqtgraph")
"""Optional modules the live decode must not need (they are installed; the import is refused)."""

BLOCKING_MAIN = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCK_EXTRAS!r}:
            raise ModuleNotFoundError(f"blocked by the wheel check: {{name}}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
from eegmusic.stream.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``eegmusic`` with every optional module refused at import (a finder that raises, so that a
library probing ``sys.modules`` for torch, as scipy does, finds nothing rather than ``None``)."""


def documented_commands() -> list[str]:
    """Command names of the README's "Commands" table (first cell of each row, in backticks)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z][a-z-]*)` \|", section, flags=re.MULTILINE)


@dataclass
class Step:
    """One command run in the installed environment: its argv, exit status and output."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return f"$ {' '.join(self.argv)}\n-> {self.returncode}\n{self.stdout[-2000:]}\n{self.stderr[-3000:]}"


@dataclass
class Installed:
    """The wheel scenario's results (see the module docstring)."""

    wheel: Path
    source: Path
    venv: Path
    work: Path
    steps: dict[str, Step] = field(default_factory=dict)
    help: dict[str, Step] = field(default_factory=dict)
    decode_summary: dict | None = None


def _source_copy(dest: Path) -> Path:
    """Copy the files of the working tree that git tracks or would track (no .venv, no caches).

    Outside a git checkout (an unpacked sdist) the whole tree is copied, less the usual build debris.
    """
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        debris = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build", "dist",
                                        ".pytest_cache", ".ruff_cache", ".hypothesis")
        shutil.copytree(ROOT, dest, ignore=debris)
        return dest
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _run(env: dict, argv: list[str], cwd: Path, timeout: float = 300) -> Step:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return Step(argv, result.returncode, result.stdout, result.stderr)


def _pip_install(python: Path, requirement: str, env: dict, cwd: Path) -> None:
    # --no-compile: byte-compiling all of torch up front is most of an install's time; Python compiles
    # what it imports anyway
    # TORCH_INDEX (Makefile): where the CPU build of torch comes from when no local wheel offers it
    index = ["--extra-index-url", os.environ["TORCH_INDEX"]] if os.environ.get("TORCH_INDEX") else []
    step = _run(env, [str(python), "-m", "pip", "install", "-q", "--no-compile", "-c",
                      str(ROOT / "constraints.txt"), *index, requirement], cwd, timeout=600)
    assert step.returncode == 0, step.explain()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    source = _source_copy(base / "src")
    dist = base / "dist"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    built = _run(env, [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)], base)
    assert built.returncode == 0, built.explain()
    (wheel,) = dist.glob("eegmusic-*.whl")

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    eegmusic = str(venv / "bin" / "eegmusic")
    work = base / "work"  # an empty folder: nothing here shadows the installed package
    work.mkdir()
    env = dict(env, PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv))
    result = Installed(wheel=wheel, source=source, venv=venv, work=work)
    steps = result.steps

    # 1. the core only
    _pip_install(python, str(wheel), env, work)
    steps["import"] = _run(env, [str(python), "-c", "import eegmusic, eegmusic.stream.cli as c; "
                                 "print(eegmusic.__version__, eegmusic.__file__, c.__file__)"], work)
    steps["version"] = _run(env, [eegmusic, "--version"], work)
    for command in documented_commands():
        result.help[command] = _run(env, [eegmusic, command, "--help"], work, timeout=60)
    steps["simulate"] = _run(env, [eegmusic, "simulate", "--out", "sim", "--n-songs", "2",
                                   "--n-subjects", "3", "--duration", "20", "--seed", "0"], work)
    steps["train_core"] = _run(env, [eegmusic, "train", "--data", "sim", "--arch", "linear", "--out", "core"],
                               work)

    # 2. with the training extra
    _pip_install(python, f"{wheel}[train]", env, work)
    steps["train"] = _run(env, [eegmusic, "train", "--data", "sim", "--arch", "linear", "--split", "block",
                                "--out", "run"], work)
    steps["evaluate"] = _run(env, [eegmusic, "evaluate", "--data", "sim", "--model", "run/model.onnx",
                                   "--out", "eval"], work)
    name = f"wheel-check-{uuid.uuid4().hex[:8]}"
    with open(work / "replay.log", "w") as replay_log:
        replay = subprocess.Popen([eegmusic, "replay", "--data", "sim", "--song", "21", "--subject", "1",
                                   "--name", name, "--loop"], cwd=work, env=env, stdout=replay_log,
                                  stderr=subprocess.STDOUT)
    try:
        steps["decode"] = _run(env, [
            str(python), "-c", BLOCKING_MAIN,
            "decode", "--stream", name, "--model", "run/model.onnx", "--duration", "5", "--no-audio",
            "--no-lsl-out", "--timeout", "30", "--json", "decode.json"], work, timeout=120)
    finally:
        replay.terminate()
        ended_within(replay, 10)
    steps["decode"].stderr += "\n--- replay.log ---\n" + (work / "replay.log").read_text()[-2000:]
    if (work / "decode.json").is_file():
        result.decode_summary = json.loads((work / "decode.json").read_text())
    yield result
    shutil.rmtree(venv, ignore_errors=True)  # about a gigabyte with torch


def test_readme_documents_every_command():
    """The README's command table and the dispatcher's COMMANDS list the same commands."""
    from eegmusic.stream.cli import COMMANDS

    assert sorted(documented_commands()) == sorted(COMMANDS)


def test_the_wheel_holds_every_package_and_data_file_and_no_tests(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = set()
    for stage in ("stream", "decoder", "gui", "offline_training", "replay", "benchmarks"):
        for path in (installed.source / stage).rglob("*"):  # the tree the wheel was built from
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add("eegmusic/" + path.relative_to(installed.source).as_posix())
    assert expected - names == set()
    assert {"eegmusic/__init__.py", "eegmusic/__main__.py"} <= names
    assert not any(n.startswith(("tests/", "eegmusic/tests/")) or n.endswith("/setup.py") for n in names)


def test_import_and_version_from_the_installed_wheel(installed):
    import eegmusic

    step = installed.steps["import"]
    assert step.returncode == 0, step.explain()
    version, package_file, cli_file = step.stdout.split()
    assert version == eegmusic.__version__
    assert Path(package_file).is_relative_to(installed.venv) and Path(cli_file).is_relative_to(installed.venv)
    assert installed.steps["version"].stdout.strip() == f"eegmusic {eegmusic.__version__}"


@pytest.mark.parametrize("command", documented_commands())
def test_every_documented_command_has_help_with_an_example_on_the_core(installed, command):
    """``--help`` works with the core only (no torch, no Qt) and shows an example of the command."""
    step = installed.help[command]
    assert step.returncode == 0, step.explain()
    assert f"usage: eegmusic {command}" in step.stdout
    after_usage = step.stdout.split("\n\n", 1)[1]
    assert re.search(rf"\beegmusic {command}\b", after_usage), step.stdout


def test_simulate_runs_on_the_core(installed):
    step = installed.steps["simulate"]
    assert step.returncode == 0, step.explain()
    assert (installed.work / "sim" / "song22_Imputed.mat").is_file()


def test_train_without_the_extra_says_what_to_install(installed):
    step = installed.steps["train_core"]
    assert step.returncode == 2, step.explain()
    lines = step.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'eegmusic[train]'" in lines[0], step.explain()
    assert "Traceback" not in step.stderr and not (installed.work / "core").exists()


def test_train_and_evaluate_from_the_installed_wheel(installed):
    train, evaluate = installed.steps["train"], installed.steps["evaluate"]
    assert train.returncode == 0, train.explain()
    assert (installed.work / "run" / "model.onnx").is_file()
    assert evaluate.returncode == 0, evaluate.explain()
    metrics = json.loads((installed.work / "eval" / "metrics.json").read_text())
    assert metrics  # the scores themselves are tested in tests/offline_training


def test_headless_decode_of_a_replay_needs_the_core_only(installed):
    step = installed.steps["decode"]
    assert step.returncode == 0, step.explain()
    summary = installed.decode_summary
    assert summary is not None and not summary.get("error"), step.explain()
    assert summary["counters"]["windows"] >= 20, summary["counters"]  # 5 s at a 0.1-s hop, less start-up
    assert summary["counters"]["frames"] > 0
