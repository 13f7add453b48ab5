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
        "wavegan": {"decode_per_window": TIMES, "baseline_convnet": TIMES, "ratio_ours_over_baseline": NUMBER,
                    "keeps_up": bool},
        "diffusion": {"by_steps": dict, "baseline_one_step": TIMES, "onnx_exported": {"steps": int, **TIMES}},
    })
    steps = result["diffusion"]["by_steps"]
    assert steps["1"]["ratio_over_one_step"] == 1.0 and steps["10"]["median_s"] > steps["1"]["median_s"]
    assert len(readme_tables.rows_generative(result)) == 2


def test_the_generative_rows_read_wavegan_over_convnet():
    times = {"median_s": 0.004, "p99_s": 0.006, "n": 10}
    result = {"wavegan": {"decode_per_window": times, "baseline_convnet": {**times, "median_s": 0.001},
                          "ratio_ours_over_baseline": 4.0, "hop_s": 0.1, "keeps_up": True},
              "diffusion": {"by_steps": {"1": {**times, "ratio_over_one_step": 1.0}},
                            "baseline_one_step": times, "onnx_exported": {"steps": 10, **times}}}
    wave, _ = readme_tables.rows_generative(result)
    assert wave[3] == "4× the time"
