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
    assert len(readme_tables.rows_soak(result)) == 2
