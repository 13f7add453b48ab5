"""``bench_vocoder --quick``: every vocoder on real music beside offline Griffin-Lim (GL-32), warmed alike."""

from __future__ import annotations

import pytest
from eegmusic.benchmarks import bench_vocoder

from tests.benchmarks.schema import NUMBER, check


@pytest.mark.slow  # about a minute: every method over 5 s of music, GL-32 included
def test_quick_run_scores_every_method_and_the_gl32_baseline():
    result = check(
        bench_vocoder.run(quick=True),
        {
            "signal": dict,
            "methods": dict,
            "baseline": dict,
            "vs_baseline": dict,
            "goals": dict,
            "table": str,
        },
    )
    assert len(result["methods"]) >= 3
    for name, method in result["methods"].items():
        check(method, {"mel_lsd_db": NUMBER, "sc_db": NUMBER, "s_per_audio_s": NUMBER}, name)
    assert result["table"].startswith("| vocoder |") and "gl32" in result["table"]
