"""Fixtures for the stream tests: test outlets in subprocesses (killable, restartable)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class OutletProcess:
    """A running ``tests.fixtures.lsl_source`` process."""

    def __init__(self, args: list[str]):
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.lsl_source", *args], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.process.stdout.readline()
        if line.strip() != "READY":
            self.kill()
            raise RuntimeError(f"test outlet did not start: {line!r}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.process.stdout.close()


@pytest.fixture
def lsl_source():
    """Start test outlets: ``lsl_source(name=..., source_id=..., rate=..., ...)`` → OutletProcess.

    Keyword arguments become command-line options (``index_channel=True`` → ``--index-channel``).
    Every outlet still running is killed at teardown (after the test closed its inlets).
    """
    started: list[OutletProcess] = []

    def start(**options) -> OutletProcess:
        args = []
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is not False and value is not None:
                args += [flag, str(value)]
        outlet = OutletProcess(args)
        started.append(outlet)
        return outlet

    yield start
    for outlet in started:
        outlet.kill()
