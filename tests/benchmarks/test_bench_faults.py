"""``bench_faults --quick``: a quarter hour at 120x; a stall, a loss and hostile markers every 5 min."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_faults  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402


@pytest.mark.lsl
@pytest.mark.slow  # about 40 s: a model export and two accelerated quarter hours
def test_quick_fault_soak_loses_nothing_and_counts_every_fault():
    result = check(bench_faults.run(quick=True), {
        "soak_with_faults": {"samples_pushed": int, "samples_received": int, "samples_lost": int,
                             "stalls_seen": int, "losses_seen": int, "bad_markers_counted": int,
                             "rss_growth_ratio_last_over_first": NUMBER},
        "soak_without_faults": {"samples_lost": int},
    })
    soak = result["soak_with_faults"]
    assert soak["faults_injected"] == {"hostile_markers": 6, "stalls": 2, "losses": 2}
    assert soak["samples_pushed"] == 0.25 * 3600 * 125 and soak["error"] is None
    assert soak["samples_lost_added_by_faults"] <= 0
    assert soak["losses_seen"] == 2 and soak["reconnects"] == 2 and soak["bad_markers_counted"] == 6
    assert soak["stalls_seen"] >= 2


def test_the_soak_without_faults_says_none_are_scheduled(monkeypatch):
    """The baseline reported its "no faults" as ``every_min: 1e+09``, a sentinel read as a figure."""
    monkeypatch.setattr(bench_faults, "soak_with_faults", lambda folder, **kw: {
        "every_min": kw.get("every_min", 5.0), "samples_lost": 0, "rss_growth_ratio_last_over_first": 1.0})
    result = bench_faults.run(quick=True)
    assert result["soak_without_faults"]["every_min"] is None
    assert result["soak_with_faults"]["every_min"] == 5.0
