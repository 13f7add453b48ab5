"""The test harness's sound routing survives a lost sink (``tests/fixtures/pulse.py``)."""

from __future__ import annotations

import os

import pytest

from tests.fixtures import pulse

pytestmark = pytest.mark.audio


def test_a_lost_background_sink_is_replaced_before_the_next_real_time_test():
    """What a replaced PulseAudio daemon does to a worker (its sink disappears) is done here to this
    process's sink alone: the next check loads a new one and routes the process's sound to it."""
    if not pulse._BACKGROUND:
        pytest.skip("this process's sound was never routed (PulseAudio is not installed or will not start)")
    lost = os.environ["PULSE_SINK"]
    assert lost == pulse._BACKGROUND["name"] and pulse.sink_exists(lost)
    assert pulse.reroute_if_lost() is None  # present: nothing to do
    pulse.unload_sink(lost)
    assert not pulse.sink_exists(lost)
    why = pulse.reroute_if_lost()
    assert why is not None and lost in why
    assert os.environ["PULSE_SINK"] == pulse._BACKGROUND["name"] != lost
    assert pulse.sink_exists(os.environ["PULSE_SINK"])


_LOST: list[str] = []
"""The sink the next test unloads, for the test after it."""


def test_a_worker_loses_its_sink():
    """First half of the check below: this worker's sink disappears, as with a replaced daemon."""
    if not pulse._BACKGROUND:
        pytest.skip("this process's sound was never routed (PulseAudio is not installed or will not start)")
    _LOST.append(os.environ["PULSE_SINK"])
    pulse.unload_sink(_LOST[-1])
    assert not pulse.sink_exists(_LOST[-1])


def test_the_next_real_time_test_plays_into_a_new_sink():
    """Second half: before this test ran, the test set-up (``tests/conftest.py``) loaded a new sink."""
    if not _LOST:
        pytest.skip("runs after test_a_worker_loses_its_sink, in the same process")
    assert os.environ["PULSE_SINK"] != _LOST[-1]
    assert pulse.sink_exists(os.environ["PULSE_SINK"])
