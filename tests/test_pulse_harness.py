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
    pulse._pactl("unload-module", pulse._BACKGROUND["module"])
    assert not pulse.sink_exists(lost)
    why = pulse.reroute_if_lost()
    assert why is not None and lost in why
    assert os.environ["PULSE_SINK"] == pulse._BACKGROUND["name"] != lost
    assert pulse.sink_exists(os.environ["PULSE_SINK"])
