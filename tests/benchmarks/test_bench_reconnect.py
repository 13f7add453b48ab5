"""``bench_reconnect --quick``: a lost source's return timed against a fresh inlet, in the same trials."""

from __future__ import annotations

import pytest
from eegmusic.benchmarks import bench_reconnect, readme_tables

from tests.benchmarks.schema import NUMBER, check


@pytest.mark.lsl
def test_quick_run_times_every_return_beside_a_fresh_connect():
    # two trials, one with an impostor (each trial runs 4-7 s of real time; --quick runs 6, the full 30)
    result = check(bench_reconnect.run(quick=True, trials=2), {
        "trials": int, "with_impostor": int, "missed": int,
        "reconnect_s": {"p50": NUMBER, "p90": NUMBER, "max": NUMBER}, "fresh_connect_s": {"p50": NUMBER},
        "reconnect_over_fresh_p50": NUMBER, "goals": {"every_reconnect_within_2s": bool},
    })
    assert result["trials"] == 2 and result["with_impostor"] == 1 and result["missed"] == 0
    assert 0 < result["reconnect_s"]["p50"] <= result["reconnect_s"]["p90"] <= result["reconnect_s"]["max"]
    assert result["reconnect_over_fresh_p50"] == pytest.approx(
        result["reconnect_s"]["p50"] / result["fresh_connect_s"]["p50"], abs=2e-3)
    (row,) = readme_tables.rows_reconnect(result)
    assert "impostor" in row[0] and "fresh `Inlet`" in row[2] and row[4].startswith("every one ≤ 2 s")


def test_fewer_than_one_trial_of_each_kind_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        bench_reconnect.run(quick=True, trials=1)
