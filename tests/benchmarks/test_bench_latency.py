"""``bench_latency --quick``: EEG sample → audible sample through a PulseAudio null sink, beside the decoder's
own estimate, at the default and the lowest hop."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from eegmusic.benchmarks import bench_latency, latency_probe, readme_tables

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
    check(default[0], {"machine_stalls": {"count": int}, "underruns_in_machine_stalls": int}, "default")
    assert default[0]["underruns_in_machine_stalls"] <= default[0]["underruns"]
    for label, entry in result["measured"].items():
        assert {"latency_ms", "estimate_ms", "found", "events"} <= set(entry), label
    # the baseline, measured in the same run on the same sink, and the default hop's ratios to it
    assert result["baseline"]["settings"] == bench_latency.BASELINE
    base = check(result["baseline"]["result"], {"latency_ms": PERCENTILES, "found": int}, "baseline")
    # the bench prints the hop to 5 decimals (0.09288), which a relative 1e-6 never matched
    assert base["found"] > 0 and base["hop_s"] == pytest.approx(4 * 512 / 22050, abs=5e-6)
    assert result["ratios"]["default_over_baseline_p50"] == pytest.approx(
        default[0]["latency_ms"]["p50"] / base["latency_ms"]["p50"], abs=1e-3)
    rows = readme_tables.rows_latency(result)
    assert len(rows) == len(result["measured"]) and "pre-issue-15 settings, same run" in rows[0][2]


def test_the_latency_rows_put_each_hop_beside_the_same_runs_baseline():
    entry = {"latency_ms": {"p50": 100.0, "p99": 150.0}, "estimate_ms": {"p50": 60.0, "p99": 70.0}}
    result = {"measured": {"default = lowest (1 frames, 23.2 ms)": entry},
              "baseline": {"settings": bench_latency.BASELINE,
                           "result": {"latency_ms": {"p50": 200.0, "p99": 300.0}}}}
    (label, measured, baseline, ratio, goal), = readme_tables.rows_latency(result)
    assert measured == "100 ms p50, 150 ms p99" and "estimate 60 ms p50" in baseline
    assert "same run: 200 ms p50, 300 ms p99" in baseline and ratio == "0.5× / 0.5×"
    assert goal == "p50 ≤ 120 ms, p99 ≤ 160 ms"
    # a run saved before the baseline existed still renders, without a ratio
    del result["baseline"]
    assert readme_tables.rows_latency(result)[0][3] == ""


def _summary(**p50):
    """A decode summary whose stages have these medians (ms); the rest unmeasured."""
    from eegmusic.decoder.latency import STAGES

    stages = {stage: {"p50": p50.get(stage), "p95": None, "p99": None, "n": 0} for stage in STAGES}
    return {"latency_ms": stages, "vocoder_latency_ms": 69.66}


def test_breakdown_adds_the_parts_and_names_what_is_left():
    summary = _summary(audio_to_eeg=94.0, eeg_to_arrival=1.0, arrival_to_ready=0.5, ready_to_inferred=2.0,
                       inferred_to_vocoded=1.5, vocoded_to_buffered=0.2, buffered_to_queued=30.0,
                       queued_to_dac=23.0)
    result = bench_latency.breakdown(summary, np.array([0.008, 0.012, np.nan]), measured_p50_ms=170.0)
    parts = result["parts_ms"]
    assert set(parts) == {name for name, _ in bench_latency.PARTS} == set(result["descriptions"])
    assert parts["event_to_onset"] == pytest.approx(10.0) and parts["hop_wait"] == pytest.approx(94.0 - 69.66)
    assert parts["vocoder_lookahead_ola"] == 69.66 and parts["output_queue"] == 30.0
    assert result["sum_ms"] == pytest.approx(10 + 94 + 1 + 0.5 + 2 + 1.5 + 0.2 + 30 + 23)
    # without each window's whole audio_to_dac, what is left is measured less the parts' sum
    assert result["decoder_total_ms"] is None
    assert result["unattributed_ms"] == pytest.approx(170.0 - result["sum_ms"])
    assert bench_latency.breakdown(summary, np.array([0.01]), None)["unattributed_ms"] is None


def test_what_is_left_is_measured_less_the_decoders_own_total_not_less_a_sum_of_medians():
    """The parts' medians were summed and set against the measured median, which a sum of medians need not
    match: the decoder's own account is the median of each window's whole audio_to_dac."""
    summary = _summary(audio_to_eeg=94.0, buffered_to_queued=30.0, queued_to_dac=23.0, audio_to_dac=140.0)
    result = bench_latency.breakdown(summary, np.array([0.008, 0.012]), measured_p50_ms=145.0)
    assert result["sum_ms"] == pytest.approx(10 + 94 + 30 + 23)
    assert result["decoder_total_ms"] == pytest.approx(10 + 140.0)
    assert result["unattributed_ms"] == pytest.approx(145.0 - 150.0)


def test_offline_event_to_onset_follows_the_frame_grid_and_the_vocoder():
    delay = latency_probe.stimulus_onset_delay_s(2, "rtisi", n_events=12)
    assert np.isfinite(delay).all()
    # an event is decoded at the first frame whose nearest EEG sample carries it (up to a frame and
    # half a sample later); the synthesis window starts sounding up to 2 frames before that frame
    frame = 512 / 22050
    assert (delay > -2 * frame).all() and (delay < frame + 0.5 / 125 + 0.005).all(), delay
    assert np.ptp(delay) > 0.005            # events at different phases to the frame grid differ
