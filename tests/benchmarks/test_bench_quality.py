"""``bench_quality``: real music, a later unseen excerpt, every score beside its baselines (tiny run)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_quality  # noqa: E402
from eegmusic.replay.music_sources import PACKAGED_TRACKS  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402

TINY = {
    "n_tracks": 4, "n_subjects": 3, "train_s": 24.0, "test_start_s": 30.0, "test_s": 10.0,
    "shares": (0.10,), "splits": ("block",),
    "models": {"linear": {}, "sourcenet": {"epochs": 1}, "ensemble": bench_quality.ENSEMBLE},
    "hop_s": 1.0,
}
MODEL = {"dynamic_r": NUMBER, "shuffled_eeg": NUMBER, "over_ridge": NUMBER, "train_s": NUMBER}


@pytest.mark.skipif(sum(Path(t.path).is_file() for t in PACKAGED_TRACKS) < 4,
                    reason="singularity-music is not installed (make system-deps installs it as root)")
def test_tiny_run_scores_models_beside_baselines_on_a_later_excerpt():
    report = check(bench_quality.run_config(TINY), {
        "config": dict, "tracks": [{"file": str, "title": str, "licence": str}], "goals": dict, "table": str,
        "results": {"0.1": {"block": {
            "target_offset_s": NUMBER, "test_songs": [int], "test_subjects": [str],
            "models": {"linear": MODEL, "sourcenet": MODEL, "ensemble": MODEL},
            "baselines": {"global_mean": NUMBER, "song_mean": NUMBER},
            "n_test_windows": int, "n_test_blocks": int,
        }}},
    })
    block = report["results"]["0.1"]["block"]
    # the later excerpt of every track and listener, one block per recording, 10 one-second windows each
    assert block["n_test_blocks"] == 4 * 3 and block["n_test_windows"] == 4 * 3 * 10
    assert 0.0 <= block["target_offset_s"] <= 0.3
    ridge = block["models"]["linear"]
    assert ridge["over_ridge"] == pytest.approx(1.0)
    sourcenet = block["models"]["sourcenet"]
    assert sourcenet["over_ridge"] == pytest.approx(sourcenet["dynamic_r"] / ridge["dynamic_r"])
    # at a 10 % evoked share the ridge follows unseen music; the EEG-free controls do not
    assert ridge["dynamic_r"] > ridge["shuffled_eeg"] + 0.05
    assert ridge["dynamic_r"] > block["baselines"]["global_mean"] + 0.05
    # the ensemble mixes the split's own ridge and sourcenet (convnet did not run): its weights are
    # chosen on validation, so it may lean on either, and it is scored like every other row
    assert "| 10% | block |" in report["table"] and "| ensemble |" in report["table"].splitlines()[0]
    assert block["models"]["ensemble"]["shuffled_eeg"] < block["models"]["ensemble"]["dynamic_r"]
    assert set(report["goals"]["0.1"]) >= {"block_best_over_ridge", "block_every_deep_beats_ridge"}
