"""``bench_latency --quick``: EEG sample → audible sample through a PulseAudio null sink, beside the decoder's
own estimate, at the default and the lowest hop."""

from __future__ import annotations

import shutil

import pytest
from eegmusic.benchmarks import bench_latency, readme_tables

from tests.benchmarks.schema import NUMBER, check

PERCENTILES = {"p50": NUMBER, "p99": NUMBER}


@pytest.mark.audio
@pytest.mark.slow  # two 12-s live decodes into a null sink, recorded and searched: about a minute
@pytest.mark.skipif(shutil.which("pactl") is None, reason="needs PulseAudio (apt-get install pulseaudio)")
def test_quick_run_measures_latency_and_the_estimate():
    result = check(bench_latency.run(quick=True), {"measured": dict, "calibration": dict, "goals": dict})
    default = [entry for label, entry in result["measured"].items() if label.startswith("default")]
    assert len(default) == 1 and len(result["measured"]) >= 2
    # the default hop must be measured, beside the decoder's estimate; the lowest hop may find no event
    # on a loaded machine (its percentiles are then None), but it is reported
    check(default[0], {"latency_ms": PERCENTILES, "estimate_ms": PERCENTILES, "found": int}, "default")
    assert default[0]["found"] > 0
    for label, entry in result["measured"].items():
        assert {"latency_ms", "estimate_ms", "found", "events"} <= set(entry), label
    assert len(readme_tables.rows_latency(result)) == len(result["measured"])
