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
                "ratio_interpolate_over_copy_p50": NUMBER,
                "interpolated": int,
                "meets_goal": bool,
            },
            name,
        )
        assert case["baseline_copy_ms"]["p50"] > 0 and case["interpolated"] > 0
        assert "ratio_to_copy" not in case
    assert len(readme_tables.rows_montage(result)) == len(result["cases"])


def test_the_montage_row_reads_interpolation_over_copy():
    case = {"interpolate_ms": {"p50": 0.0097, "p99": 0.02}, "baseline_copy_ms": {"p50": 0.0073, "p99": 0.01},
            "ratio_interpolate_over_copy_p50": 1.33, "meets_goal": True}
    (row,) = readme_tables.rows_montage({"goal_ms": 0.1, "cases": {"BioSemi-64, 3 missing": case}})
    assert row[3] == "1.33× the time" and row[4] == "≤ 0.1 ms — met"
