"""``bench_training --quick``: the convnet epoch, ours beside plain torch, and torchrun scaling."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

pytest.importorskip("torch")

from eegmusic.benchmarks import bench_training, readme_tables  # noqa: E402

from tests.benchmarks.schema import NUMBER, check  # noqa: E402

EPOCH = {"windows": int, "batch": int, "train_pass_s": NUMBER, "windows_per_s": NUMBER, "train_loss": NUMBER}


def test_one_epoch_of_ours_beside_one_of_plain_torch_on_the_same_windows():
    data = bench_training.SyntheticWindows(songs=1, listeners=2, seconds=16)
    entry = check(bench_training.compare(data, batch=16), {
        "ours": {**EPOCH, "epoch_s_with_validation_and_checkpoint": NUMBER, "epochs": [dict]},
        "baseline_plain_torch": {**EPOCH, "epochs": [dict]}, "ratio_windows_per_s_ours_over_baseline": NUMBER,
        "ratio_cpu_s_baseline_over_ours": NUMBER,
    })
    # a bare "ratio" (ours / baseline) beside "cpu_ratio" (baseline / ours) read as the same direction
    assert {"ratio", "cpu_ratio"}.isdisjoint(entry)
    assert entry["ours"]["windows"] == entry["baseline_plain_torch"]["windows"] == len(data) == 32
    assert entry["ratio_windows_per_s_ours_over_baseline"] == pytest.approx(
        entry["ours"]["windows_per_s"] / entry["baseline_plain_torch"]["windows_per_s"])
    # alternated: ours, baseline, ours; each figure the median of its epochs, each epoch with its load
    ours, base = entry["ours"]["epochs"], entry["baseline_plain_torch"]["epochs"]
    assert len(ours) == 2 and len(base) == 1
    assert entry["ours"]["windows_per_s"] == pytest.approx(sum(e["windows_per_s"] for e in ours) / 2)
    for epoch in ours + base:
        check(epoch, {**EPOCH, "load_avg": [NUMBER]})
        cpu = epoch.get("cpu_s", epoch.get("cpu_s_with_validation_and_checkpoint"))
        assert 0 < cpu  # CPU time of the process's threads over the epoch
    assert ours[0]["train_loss"] == pytest.approx(ours[1]["train_loss"], rel=1e-4)  # same start, same epoch
    assert entry["ratio_cpu_s_baseline_over_ours"] == pytest.approx(
        entry["baseline_plain_torch"]["cpu_s"] / entry["ours"]["cpu_s_with_validation_and_checkpoint"])


@pytest.mark.slow  # two torchrun launches: about a minute and a half on a busy 2-core machine
def test_quick_run_measures_ours_and_the_plain_torch_baseline():
    before = set(Path(tempfile.gettempdir()).glob("torchelastic_*"))
    result = check(bench_training.run(quick=True), {
        "size": {"songs": int, "listeners": int, "seconds": NUMBER, "windows": int},
        "epoch": dict, "target_epoch_s": NUMBER, "torch_threads": int, "cores": int,
        "scaling": {"cores": int, "batch": int, "windows": int, "runs": dict},
    })
    windows = result["size"]["windows"]
    assert windows == 80
    (entry,) = result["epoch"].values()
    check(entry, {"ours": {**EPOCH, "epoch_s_with_validation_and_checkpoint": NUMBER},
                  "baseline_plain_torch": EPOCH, "ratio_windows_per_s_ours_over_baseline": NUMBER})
    # both trained a whole epoch over the same windows, from the same initial weights
    assert entry["ours"]["windows"] == entry["baseline_plain_torch"]["windows"] == windows
    assert entry["ratio_windows_per_s_ours_over_baseline"] == pytest.approx(
        entry["ours"]["windows_per_s"] / entry["baseline_plain_torch"]["windows_per_s"])
    runs = result["scaling"]["runs"]
    assert set(runs) == {"1", "2"} and runs["1"]["speedup_over_one_process"] == 1.0
    assert runs["2"]["processes"] == 2 and runs["2"]["windows"] == windows
    for n, run in runs.items():  # processes x threads = the cores where it can (at least 1 thread each)
        assert run["threads_per_process"] == max(1, result["cores"] // int(n))
        assert run["threads_total"] == int(n) * run["threads_per_process"]
        assert run["per_process_windows_per_s"] == pytest.approx(run["windows_per_s"] / int(n))
        assert run["oversubscribed"] == (int(n) > result["cores"])
        assert run["cpu_s_all_processes"] > 0 and run["windows_per_cpu_s"] > 0
    assert runs["1"]["cpu_efficiency"] == 1.0 and runs["2"]["cpu_efficiency"] > 0
    one_core = result["scaling"]["one_core"]  # the per-core reference: one process, one thread
    assert one_core["processes"] == 1 and one_core["threads_per_process"] == 1
    for run in runs.values():
        assert run["speedup_over_one_core"] == pytest.approx(run["windows_per_s"] / one_core["windows_per_s"])
    assert result["nmedt_epoch_s"] is None  # quick mode quotes no NMED-T figure
    assert "one core (1 process × 1 thread)" in readme_tables.rows_training(result)[-1][2]
    assert set(Path(tempfile.gettempdir()).glob("torchelastic_*")) <= before  # torchrun's logs went with it


def test_synthetic_windows_gather_matches_the_recording():
    data = bench_training.SyntheticWindows(songs=2, listeners=3, seconds=4, seed=1)
    assert len(data) == 2 * 3 * 4
    rows = [0, 5, 22]
    eeg, mel = data.eeg(rows), data.mel(rows)
    assert eeg.shape == (3, 125, 125) and mel.shape == (3, 128, 44)
    song, start = data.index["song"][22], data.index["start"][22]
    recording = data._windows[int(song)]
    assert (eeg[2] == recording[0, :, start]).all() and (eeg[2, :, 1] == recording[0, :, start + 1, 0]).all()


def test_the_scaling_row_quotes_each_run_beside_one_process_and_one_core():
    run = {"windows_per_s": 700.0, "threads_per_process": 1, "speedup_over_one_process": 1.15,
           "speedup_over_one_core": 1.6}
    result = {"size": {"songs": 1, "listeners": 2, "seconds": 40}, "epoch": {}, "nmedt_epoch_s": None,
              "scaling": {"cores": 2, "batch": 256, "windows": 5400, "one_core": {"windows_per_s": 437.5},
                          "runs": {"1": {**run, "windows_per_s": 608.7, "threads_per_process": 2,
                                         "speedup_over_one_process": 1.0, "speedup_over_one_core": 1.39},
                                   "2": run}}}
    (row,) = readme_tables.rows_training(result)
    assert row[1] == "1 proc. × 2 thr. 609 windows/s, 2 proc. × 1 thr. 700 windows/s"
    assert row[2] == "1 process 609 windows/s; one core (1 process × 1 thread) 438 windows/s"
    assert row[3] == "speed-up 1.00× / 1.15×; over one core 1.39× / 1.60×"


def test_the_target_offset_choice_is_timed_beside_whole_song_targets():
    result = check(bench_training.target_offset_choice(quick=True), {"size": dict, "hops": dict})
    assert set(result["hops"]) == {"1", "0.1"}
    for entry in result["hops"].values():
        timed = {"seconds": NUMBER, "chosen_s": NUMBER, "scores": dict}
        check(entry, {"windows": int, "ours": timed, "baseline_whole_song_targets": timed,
                      "ratio_baseline_over_ours": NUMBER, "same_choice": bool,
                      "max_score_difference": NUMBER})
        # the same choice on the same windows: the targets differ by float32 rounding at most
        assert entry["same_choice"] and entry["max_score_difference"] < 1e-3
        assert set(entry["ours"]["scores"]) == set(entry["baseline_whole_song_targets"]["scores"])
        # the baseline did compute whole songs: each of the 2 songs at each offset
        assert entry["baseline_whole_song_targets"]["songs_computed"] == 2 * len(entry["ours"]["scores"])
    assert result["hops"]["0.1"]["windows"] > 9 * result["hops"]["1"]["windows"]
    rows = readme_tables.rows_target_offset(result)
    assert len(rows) == 2
    assert all("target-offset choice" in row[0] and row[4].startswith("same choice,") for row in rows)


def test_the_epoch_row_reads_ours_over_the_plain_torch_windows_per_s():
    ours = {"windows": 54_000, "batch": 256, "train_pass_s": 75.1, "windows_per_s": 719.0}
    base = {**ours, "train_pass_s": 74.5, "windows_per_s": 725.0}
    one_process = {"windows_per_s": 600.0, "threads_per_process": 2, "speedup_over_one_process": 1.0,
                   "speedup_over_one_core": 1.2}
    result = {"size": {"songs": 10, "listeners": 20, "seconds": 285}, "torch_threads": 2,
              "nmedt_epoch_s": None,
              "scaling": {"cores": 2, "batch": 256, "windows": 5400, "one_core": {"windows_per_s": 500.0},
                          "runs": {"1": one_process}},
              "epoch": {"256": {"ours": ours, "baseline_plain_torch": base,
                                "ratio_windows_per_s_ours_over_baseline": 0.992,
                                "ratio_cpu_s_baseline_over_ours": 0.99}}}
    epoch_row = readme_tables.rows_training(result)[0]
    assert epoch_row[3] == "0.992× the windows/s"
