"""``bench_runtime --quick``: every model on onnxruntime beside torch eager, and the live hop latency."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_runtime, readme_tables  # noqa: E402
from eegmusic.offline_training.models.registry import MODELS  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402

TIMES = {"p50_ms": NUMBER, "p99_ms": NUMBER}


@pytest.mark.lsl
@pytest.mark.slow  # exports every registry model and replays twice for 12 s: a few minutes
def test_quick_run_times_every_model_and_its_torch_baseline():
    result = check(bench_runtime.run(quick=True), {"models": dict, "live": dict, "live_linear": dict})
    assert set(result["models"]) == set(MODELS)
    for name, row in result["models"].items():
        check(row, {"torch_eager_1t": TIMES, "ort_cpu_1t": TIMES, "ort_cpu_2t": TIMES,
                    "ratio_torch_over_ort_1t_p50": NUMBER, "max_abs_diff_db_1t": NUMBER}, name)
        assert row["max_abs_diff_db_1t"] < 1e-3
        assert row["export_s"] > 0
    # the models with LSTMs are exported again through torch's own LSTM path, the baseline
    lstm_models = {name for name, row in result["models"].items() if "export_s_torch_lstm" in row}
    assert lstm_models == {"rcnn", "encdec"}
    for name in lstm_models:
        check(result["models"][name], {"ratio_export_torch_lstm_over_ours": NUMBER,
                                       "ort_cpu_1t_torch_lstm_file": TIMES}, name)
    assert result["live"]["counters"]["windows"] > 0
    # every goal figure ends in its unit, every ratio names its direction
    check(result["goals"], {
        "cnn_ratio_torch_over_ort_1t_p50": NUMBER, "cnn_ratio_torch_over_ort_1t_p50_ge_5": bool,
        "hop_to_audio_buffer_p99_ms": NUMBER, "hop_to_audio_buffer_linear_p99_ms": NUMBER,
    })
    assert len(readme_tables.rows_runtime(result)) == len(MODELS) + 3 + len(lstm_models)
