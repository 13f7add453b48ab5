"""``bench_calibration --quick``: fine-tuning a pretrained model beside training from scratch."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_calibration, readme_tables  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402

SCORE = {"model": NUMBER, "shuffled_eeg": NUMBER, "global_mean": NUMBER}


@pytest.mark.slow  # simulates sessions and trains several models: minutes
def test_quick_run_scores_fine_tuning_and_its_baselines():
    result = check(
        bench_calibration.run(quick=True), {"pretrained_alone": SCORE, "by_minutes": dict, "setup": dict}
    )
    for minutes, entry in result["by_minutes"].items():
        check(entry, {"from_scratch": SCORE, "fine_tuned": SCORE}, f"by_minutes.{minutes}")
    assert len(readme_tables.rows_calibration(result)) == len(result["by_minutes"])
