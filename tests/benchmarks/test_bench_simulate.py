"""``bench_simulate --quick``: the simulator beside savemat of the same array; the NMED-T estimate."""

from __future__ import annotations

from eegmusic.benchmarks import bench_simulate, readme_tables

from tests.benchmarks.schema import NUMBER, check


def test_quick_run_times_the_simulator_and_its_baseline():
    result = check(bench_simulate.run(quick=True), {
        "simulate_song": {"what": str, "median_s": NUMBER, "baseline_median_s": NUMBER, "ratio": NUMBER},
        "nmedt_size": {"what": str, "median_s": NUMBER, "baseline_s": NUMBER, "ratio": NUMBER,
                       "per_recording_s": NUMBER, "extrapolation": str},
    })
    # a recording never costs nothing: quick runs' timing noise made it 0 s, the estimate 10x one song's
    # fixed cost (20-40 s where the full run measured 73 s)
    full = result["nmedt_size"]
    assert full["per_recording_s"] > 0 and full["median_s"] >= 20 * full["per_recording_s"]
    song = result["simulate_song"]
    assert song["median_s"] > 0 and song["baseline_median_s"] > 0
    assert song["ratio"] == song["median_s"] / song["baseline_median_s"]
    assert len(readme_tables.rows_simulate(result)) == 2


def test_the_estimate_is_an_upper_bound_when_more_participants_took_no_longer():
    # the ordinary case: linear in participants, 1 s fixed and 2 s a recording
    assert bench_simulate.extrapolate(3.0, 7.0, 3) == (2.0, 1.0, "linear in participants from 1 and k")
    # timing noise: 3 participants measured faster than 1. It read 0 s a recording (the estimate 10x one
    # song's fixed cost); now the whole 3-participant run is counted per recording
    per_recording, fixed, how = bench_simulate.extrapolate(5.0, 4.5, 3)
    assert (per_recording, fixed) == (1.5, 0.0) and how.startswith("upper bound")
