"""``bench_faults --quick``: a quarter hour at 120x; a stall, a loss and hostile markers every 5 min."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_faults, bench_soak, readme_tables  # noqa: E402

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
    assert result["meets_goal"] is True
    assert all(set(sample) == {"t_s", "rss_mib"} for sample in soak["rss_over_time"])


def test_the_soak_without_faults_says_none_are_scheduled(monkeypatch):
    """The baseline reported its "no faults" as ``every_min: 1e+09``, a sentinel read as a figure."""
    monkeypatch.setattr(bench_faults, "soak_with_faults", lambda folder, **kw: {
        "every_min": kw.get("every_min", 5.0), "samples_lost": 0, "rss_growth_ratio_last_over_first": 1.0})
    result = bench_faults.run(quick=True)
    assert result["soak_without_faults"]["every_min"] is None
    assert result["soak_with_faults"]["every_min"] == 5.0


@pytest.mark.parametrize(("lost_with", "lost_without", "growth", "meets"), [
    (0, 0, 1.003, True),
    (5, 10, 1.01, True),      # fewer lost than without faults: the faults added none
    (12, 10, 1.0, False),     # the faults added two lost samples
    (0, 0, 1.2, False),       # memory grew by a fifth
])
def test_the_fault_soak_judges_its_goal(monkeypatch, lost_with, lost_without, growth, meets):
    """The goal (no loss added by the faults, flat memory) stood in the README only, with no verdict."""
    def fake(folder, **kw):
        faulty = kw.get("every_min", 5.0) is not None
        return {"every_min": kw.get("every_min", 5.0), "samples_lost": lost_with if faulty else lost_without,
                "rss_growth_ratio_last_over_first": growth if faulty else 1.0}

    monkeypatch.setattr(bench_faults, "soak_with_faults", fake)
    result = bench_faults.run(quick=True)
    assert result["goals"] == {"samples_lost_added_by_faults_max": 0,
                               "rss_growth_ratio_last_over_first_max": bench_soak.RSS_GROWTH_GOAL}
    assert result["meets_goal"] is meets
    faults = result["soak_with_faults"]
    assert faults["rss_growth_ratio_last_over_first_without_faults"] == 1.0
    assert "rss_growth_ratio_baseline" not in faults


def test_rss_samples_name_their_units():
    """``rss_over_time`` was bare (seconds, MiB) pairs."""
    samples = bench_soak.rss_over_time([(float(t), 900.0 + t) for t in range(30)])
    assert samples[0] == {"t_s": 0.0, "rss_mib": 900.0} and len(samples) == 15


def test_the_fault_row_shows_the_goal_and_its_verdict():
    soak = {"stream_hours": 1.0, "speed": 30.0, "every_min": 5.0, "model": "convnet", "samples_lost": 0,
            "samples_pushed": 450_000, "reconnects": 11, "bad_markers_counted": 33,
            "rss_growth_ratio_last_over_first": 1.01, "samples_lost_added_by_faults": 0}
    result = {"soak_with_faults": soak, "soak_without_faults": {"samples_lost": 0},
              "goals": {"samples_lost_added_by_faults_max": 0, "rss_growth_ratio_last_over_first_max": 1.05},
              "meets_goal": True}
    (row,) = readme_tables.rows_faults(result)
    assert row[4] == "faults add no loss; flat memory (RSS last/first ≤ 1.05) — met"
    (row,) = readme_tables.rows_faults({**result, "meets_goal": False})
    assert row[4].endswith("— **not met**")
