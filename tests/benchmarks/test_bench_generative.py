"""``bench_generative --quick``: wavegan beside convnet; diffusion by DDIM steps beside one step."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_generative, readme_tables  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402

TIMES = {"median_s": NUMBER, "p99_s": NUMBER, "n": int}


@pytest.mark.slow  # exports the default-size diffusion sampler (10 unrolled steps): minutes
def test_quick_run_times_both_models_and_their_baselines():
    result = check(bench_generative.run(quick=True), {
        "wavegan": {"decode_per_window": TIMES, "baseline_convnet": TIMES, "ratio": NUMBER, "keeps_up": bool},
        "diffusion": {"by_steps": dict, "baseline_one_step": TIMES, "onnx_exported": {"steps": int, **TIMES}},
    })
    steps = result["diffusion"]["by_steps"]
    assert steps["1"]["ratio"] == 1.0 and steps["10"]["median_s"] > steps["1"]["median_s"]
    assert len(readme_tables.rows_generative(result)) == 2
