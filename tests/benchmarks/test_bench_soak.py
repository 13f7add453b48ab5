"""``bench_soak --quick``: a quarter hour decoded at 120x, losses counted after draining; a whole song."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_soak, readme_tables  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402


@pytest.mark.lsl
@pytest.mark.slow  # about a minute: a model export, a quarter hour at 120x, a 60-s song
def test_quick_run_counts_losses_after_draining():
    result = check(bench_soak.run(quick=True), {
        "soak": {"samples_sent": int, "samples_received": int, "samples_lost": int, "drain_s": NUMBER,
                 "windows_decoded": int, "windows_dropped": int, "gaps": int, "rss_mib_first": NUMBER,
                 "rss_growth_ratio_last_over_first": NUMBER},
        "soak_nominal_queue": {"samples_sent": int, "samples_lost": int, "inlet_queue_samples": int},
        "full_song": {"batched_s": NUMBER, "one_at_a_time_s": NUMBER,
                      "ratio_one_at_a_time_over_batched": NUMBER},
    })
    soak = result["soak"]
    assert result["soak_nominal_queue"]["inlet_queue_samples"] == 60 * 125  # the baseline: the old queue
    assert soak["inlet_queue_samples"] >= 2**19  # today's: a floor in samples, whatever the speed
    assert soak["samples_sent"] == 0.25 * 3600 * 125  # the replay ran to its end before counting
    assert soak["samples_lost"] == soak["samples_sent"] - soak["samples_received"]  # not clamped
    assert soak["windows_decoded"] > 0
    assert result["meets_goal"] == bench_soak.soak_verdict(soak)[1]
    assert len(readme_tables.rows_soak(result)) == 2


@pytest.mark.parametrize(("lost", "growth", "meets"), [(0, 1.004, True), (1, 1.004, False), (0, 1.2, False)])
def test_the_soak_is_judged_flat_and_lossless_and_the_row_says_so(lost, growth, meets):
    """The soak's goal (flat memory, no loss) stood in its row with no verdict beside it."""
    soak = {"samples_lost": lost, "rss_growth_ratio_last_over_first": growth}
    goals, verdict = bench_soak.soak_verdict(soak)
    assert verdict is meets and goals["rss_growth_ratio_last_over_first_max"] == bench_soak.RSS_GROWTH_GOAL
    row = {"stream_hours": 0.25, "speed": 120.0, "model": "convnet", "samples_sent": 10,
           "samples_received": 10, "gaps": 0, "windows_decoded": 5, "windows_dropped": 0,
           "rss_mib_first": 900.0, **soak}
    song = {"song_s": 60.0, "model": "convnet", "batched_s": 1.0, "real_time_factor_batched": 0.02,
            "one_at_a_time_s": 3.0, "ratio_one_at_a_time_over_batched": 3.0}
    rows = readme_tables.rows_soak({"soak": row, "full_song": song, "goals": goals, "meets_goal": verdict})
    assert rows[0][4] == "flat memory, no loss" + (" — met" if meets else " — **not met**")
