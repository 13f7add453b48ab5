"""Shared test set-up: an isolated LSL session, unique stream names, a seeded rng.

LSL is configured before anything imports pylsl: discovery stays on this machine
(``ResolveScope = machine``) and a per-run ``SessionID`` keeps concurrent test runs apart. Child
processes (replays in subprocesses) inherit the same configuration through ``LSLAPICFG``.
Package-specific fixtures live in ``tests/fixtures/`` and are loaded as plugins below.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

_SESSION = f"eegmusic-test-{uuid.uuid4().hex[:8]}"
_CFG = Path(tempfile.gettempdir()) / f"{_SESSION}.cfg"
_CFG.write_text(f"[lab]\nSessionID = {_SESSION}\n[multicast]\nResolveScope = machine\n")
os.environ["LSLAPICFG"] = str(_CFG)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest_plugins = [
    f"tests.fixtures.{name}"
    for name in ("data", "pulse")
    if (Path(__file__).parent / "fixtures" / f"{name}.py").exists()
]


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (tiny models train faster, and timings stay comparable)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator (the same numbers in every run)."""
    return np.random.default_rng(20261121)


@pytest.fixture
def stream_name(request) -> str:
    """A unique LSL stream name (and source_id stem) for this test."""
    return f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
