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
    # the offline baseline has no per-frame times: its figure is a mean, with no p99 copied from it
    assert result["methods"]["gl32_offline_nnls"]["frame_ms"].keys() == {"mean"}
    assert result["methods"][bench_vocoder.DEFAULT]["frame_ms"].keys() == {"median", "p99"}
    for name, versus in result["vs_baseline"].items():
        check(versus, {"mel_lsd_minus_baseline_db": NUMBER, "ratio_time_ours_over_baseline": NUMBER}, name)


def test_the_table_marks_the_offline_mean_apart_from_the_streaming_medians():
    """The offline GL-32 reported its run / frames as ``median`` and as ``p99`` alike."""
    def method(frame_ms):
        return {"lookahead": 1, "synthesis": "early", "latency_frames": 2, "magnitude": "nnls",
                "mel_lsd_db": 2.0, "mr_stft": 0.5, "sc_db": -3.0, "frame_ms": frame_ms}
    results = {"methods": {"rtisi": method({"median": 0.9, "p99": 1.4}),
                           "gl32_offline_nnls": {**method({"mean": 0.98}), "latency_frames": None}}}
    text = bench_vocoder.table(results)
    assert "ms/frame (median; offline: mean)" in text
    assert "| 0.900 |" in text and "| 0.980 (mean) |" in text


def _row(track, **settings):
    row = {"track": track}
    for name, (excess, frame_ms) in settings.items():
        row[f"{name}_minus_gl32_db"] = excess
        row[f"{name}_frame_ms"] = frame_ms
    return row


def test_per_track_goals_take_the_worst_track_and_the_slowest_median():
    goals = {"mel_lsd_within_db_of_gl32": 0.2, "lookahead_frames": 2, "frame_ms": 1.0}
    rows = [_row("a", rtisi_la1=(0.15, 0.7), rtisi_la2=(0.11, 0.8), rtisi_la1_hann=(0.1, 0.7)),
            _row("b", rtisi_la1=(0.26, 0.7), rtisi_la2=(0.18, 1.05), rtisi_la1_hann=(0.1, 0.7))]
    verdict = bench_vocoder.per_track_goals(rows, goals)
    assert verdict["rtisi_la1"]["worst_minus_gl32_db"] == 0.26 and not verdict["rtisi_la1"]["meets"]
    assert verdict["rtisi_la2"]["frame_ms"] == 1.05 and not verdict["rtisi_la2"]["meets"]   # too slow
    assert verdict["rtisi_la1_hann"]["meets"]
    assert bench_vocoder.per_track_goals([], goals) == {}


def test_a_newly_registered_vocoder_is_benchmarked_beside_the_others(monkeypatch):
    """README, "Extending": register a vocoder and bench_vocoder scores it (it used to list three by hand)."""
    import numpy as np
    from eegmusic.decoder.melspec import mel_db
    from eegmusic.decoder.vocoders import VOCODERS, VocoderSpec

    spec = VocoderSpec("mine", "eegmusic.decoder.vocoders.rtpghi:RTPGHI", (0, 1), 1, "a copy of rtpghi")
    monkeypatch.setitem(VOCODERS, "mine", spec)
    rows = {name: row for name, *row in bench_vocoder.configurations()}
    assert rows["mine_la1"] == ["mine", 1, "nnls", "hann"]   # hann: the only window the spec offers
    assert {row[0] for row in rows.values()} == set(VOCODERS)
    assert len(rows) == len(bench_vocoder.STREAMING) + 1      # the hand-picked table is kept as it is
    audio = bench_vocoder.music_excerpt(1.0)
    out, times = bench_vocoder._stream(mel_db(audio), "mine", 1, "nnls", audio.size, "hann")
    assert out.shape == audio.shape and np.abs(out).max() > 0.01 and times.size == mel_db(audio).shape[1]
