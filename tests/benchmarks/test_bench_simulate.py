"""``bench_simulate --quick``: the simulator beside savemat of the same array; the NMED-T estimate."""

from __future__ import annotations

from eegmusic.benchmarks import bench_simulate, readme_tables

from tests.benchmarks.schema import NUMBER, check


def test_quick_run_times_the_simulator_and_its_baseline():
    result = check(bench_simulate.run(quick=True), {
        "simulate_song": {"what": str, "median_s": NUMBER, "baseline_median_s": NUMBER, "ratio": NUMBER},
        "nmedt_size": {"what": str, "median_s": NUMBER, "baseline_s": NUMBER, "ratio": NUMBER},
    })
    song = result["simulate_song"]
    assert song["median_s"] > 0 and song["baseline_median_s"] > 0
    assert song["ratio"] == song["median_s"] / song["baseline_median_s"]
    assert len(readme_tables.rows_simulate(result)) == 2
