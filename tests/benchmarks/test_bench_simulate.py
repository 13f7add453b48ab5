"""``bench_simulate --quick``: the simulator beside savemat of the same array; the NMED-T estimate."""

from __future__ import annotations

from eegmusic.benchmarks import bench_simulate, readme_tables

from tests.benchmarks.schema import NUMBER, check


def test_quick_run_times_the_simulator_and_its_baseline():
    result = check(bench_simulate.run(quick=True), {
        "simulate_song": {"what": str, "median_s": NUMBER, "baseline_median_s": NUMBER,
                          "ratio_ours_over_baseline": NUMBER},
        "nmedt_size": {"what": str, "extrapolated_s": NUMBER, "target_s": NUMBER,
                       "ratio_extrapolated_over_target": NUMBER, "meets_target": bool,
                       "per_recording_s": NUMBER, "extrapolation": str},
    })
    # the estimate is not a median of runs, nor the target a measured baseline: the keys say so
    assert {"median_s", "baseline_s", "baseline", "ratio"}.isdisjoint(result["nmedt_size"])
    # a recording never costs nothing: quick runs' timing noise made it 0 s, the estimate 10x one song's
    # fixed cost (20-40 s where the full run measured 73 s)
    full = result["nmedt_size"]
    assert full["per_recording_s"] > 0 and full["extrapolated_s"] >= 20 * full["per_recording_s"]
    assert full["ratio_extrapolated_over_target"] == full["extrapolated_s"] / full["target_s"]
    assert full["meets_target"] == (full["extrapolated_s"] < full["target_s"])
    song = result["simulate_song"]
    assert song["median_s"] > 0 and song["baseline_median_s"] > 0
    assert song["ratio_ours_over_baseline"] == song["median_s"] / song["baseline_median_s"]
    assert "ratio" not in song
    assert len(readme_tables.rows_simulate(result)) == 2


def test_the_simulate_rows_quote_the_estimate_and_the_target_verdict():
    result = {
        "simulate_song": {"what": "1 song x 3 participants x 30 s", "median_s": 0.289,
                          "baseline_median_s": 0.02071, "ratio_ours_over_baseline": 13.95},
        "nmedt_size": {"what": "10 songs x 20 participants x 285 s (extrapolated)", "extrapolated_s": 73.0,
                       "target_s": 300.0, "ratio_extrapolated_over_target": 0.243, "meets_target": True},
    }
    (_, full, target, ratio, goal), (_, _, _, song_ratio, _) = readme_tables.rows_simulate(result)
    assert (full, target, ratio, goal) == ("73 s", "target 300 s", "0.243×", "< 5 min — met")
    assert song_ratio == "13.9× the time"
    result["nmedt_size"].update(extrapolated_s=400.0, meets_target=False)
    assert readme_tables.rows_simulate(result)[0][4] == "< 5 min — **not met**"


def test_the_estimate_is_an_upper_bound_when_more_participants_took_no_longer():
    # the ordinary case: linear in participants, 1 s fixed and 2 s a recording
    assert bench_simulate.extrapolate(3.0, 7.0, 3) == (2.0, 1.0, "linear in participants from 1 and k")
    # timing noise: 3 participants measured faster than 1. It read 0 s a recording (the estimate 10x one
    # song's fixed cost); now the whole 3-participant run is counted per recording
    per_recording, fixed, how = bench_simulate.extrapolate(5.0, 4.5, 3)
    assert (per_recording, fixed) == (1.5, 0.0) and how.startswith("upper bound")
