"""``bench_calibration --quick``: fine-tuning a pretrained model beside training from scratch."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_calibration, readme_tables  # noqa: E402
from eegmusic.offline_training.finetune_recipe import ALPHAS  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402

SCORE = {"model": NUMBER, "shuffled_eeg": NUMBER, "global_mean": NUMBER}
PER_SEED = {**SCORE, "model_per_seed": [NUMBER], "model_spread": [NUMBER]}
PAIRED = {"tuned_minus_scratch": [NUMBER], "tuned_minus_alone": [NUMBER], "seeds_beating_both": int,
          "alpha_chosen": [NUMBER]}


def check_result(result: dict) -> dict:
    """The schema of a run's JSON (quick or full); returns it as ``eegmusic bench`` writes it."""
    schema = {"pretrained_alone": PER_SEED, "by_minutes": dict, "fine_tuning_recipes": dict,
              "setup": {"seeds": [int]}}
    result = check(result, schema)
    n_seeds = len(result["setup"]["seeds"])
    assert len(result["pretrained_alone"]["model_per_seed"]) == n_seeds   # a pretrained model per seed
    for minutes, entry in result["by_minutes"].items():
        check(entry, {"from_scratch": PER_SEED, "fine_tuned": PER_SEED, "paired": PAIRED},
              f"by_minutes.{minutes}")
        for method in ("from_scratch", "fine_tuned"):
            per_seed = entry[method]["model_per_seed"]
            assert len(per_seed) == n_seeds
            assert entry[method]["model_spread"] == [min(per_seed), max(per_seed)]
        recipes = result["fine_tuning_recipes"][minutes]
        assert len(recipes) == n_seeds == len(entry["paired"]["tuned_minus_scratch"])
        for recipe in recipes:  # chosen on the held-out track: a candidate, or the pretrained start (alpha 0)
            assert recipe["head"] in ("keep", "reset", None) and recipe["alpha"] in ALPHAS
            assert (recipe["lr"] is None) == (recipe["head"] is None) == (recipe["l2sp"] is None)
            assert (recipe["alpha"] == 0) == (recipe["head"] is None)
            assert recipe["statistics"] in ("pretrained", "refitted")
            # a choice made on a held-out track is retrained on every track
            assert recipe["refit"] == (recipe["alpha"] > 0 and len(recipe["held_out_tracks"]) > 0)
        assert entry["paired"]["alpha_chosen"] == [recipe["alpha"] for recipe in recipes]
    assert len(readme_tables.rows_calibration(result)) == len(result["by_minutes"])
    return result


@pytest.mark.slow  # simulates sessions and trains several models: minutes
@pytest.mark.timeout(1800)  # four candidates per fold (two folds), then the chosen one again
def test_quick_run_scores_fine_tuning_and_its_baselines():
    check_result(bench_calibration.run(quick=True))
