"""``bench_montage --quick``: interpolating missing channels per window beside a plain channel copy."""

from __future__ import annotations

from eegmusic.benchmarks import bench_montage, readme_tables

from tests.benchmarks.schema import NUMBER, check

TIMES = {"p50": NUMBER, "p99": NUMBER}


def test_quick_run_times_interpolation_and_the_copy_baseline():
    result = check(bench_montage.run(quick=True), {"goal_ms": NUMBER, "cases": dict})
    assert len(result["cases"]) >= 3
    for name, case in result["cases"].items():
        check(
            case,
            {
                "interpolate_ms": TIMES,
                "baseline_copy_ms": TIMES,
                "ratio_to_copy": NUMBER,
                "interpolated": int,
                "meets_goal": bool,
            },
            name,
        )
        assert case["baseline_copy_ms"]["p50"] > 0 and case["interpolated"] > 0
    assert len(readme_tables.rows_montage(result)) == len(result["cases"])
