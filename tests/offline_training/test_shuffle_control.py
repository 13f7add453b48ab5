"""The "model on shuffled EEG" control pairs every test window with EEG of another stimulus second.

Listeners of one song hear the same seconds, and the block split holds out the same seconds for every
listener: test windows of two listeners then share a target (song, start). A shuffle that hands a window
the EEG of its same-target partner is no control (with one held-out second and two listeners it scored
exactly like the model). :func:`baselines.shuffled_order` with ``targets`` never does so, and
``evaluate`` reports the control as not available when no such shuffle exists.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from eegmusic.decoder import melspec
from eegmusic.offline_training import metrics
from eegmusic.offline_training.baselines import shuffled_order
from eegmusic.offline_training.dataset import WindowDataset
from eegmusic.offline_training.evaluate import evaluate
from eegmusic.offline_training.inference import load_model, run_model
from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec
from onnx import TensorProto, helper


def _listeners_sharing_seconds(n_listeners: int, seconds: list[int], song: int = 21) -> np.ndarray:
    """(song, start) of the windows of ``n_listeners`` who all heard ``seconds`` of one song."""
    starts = np.tile(np.asarray(seconds) * 125, n_listeners)
    return np.stack([np.full(len(starts), song), starts], axis=1)


@pytest.mark.parametrize("targets", [
    _listeners_sharing_seconds(2, [3, 4, 5]),
    _listeners_sharing_seconds(2, [7, 8]),
    _listeners_sharing_seconds(5, list(range(10))),
    np.array([0, 0, 0, 1, 2, 3]),  # one target holds exactly half the windows
    np.array([4, 4, 1, 4, 2, 2, 3]),
], ids=["2x3", "2x2", "5x10", "half", "uneven"])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_no_window_gets_eeg_of_its_own_target(targets, seed):
    order = shuffled_order(len(targets), seed=seed, targets=targets)
    assert sorted(order.tolist()) == list(range(len(targets)))  # a permutation of the test windows
    same = np.all(targets[order].reshape(len(targets), -1) == targets.reshape(len(targets), -1), axis=1)
    assert not same.any()


def test_shuffle_with_targets_is_seeded():
    targets = _listeners_sharing_seconds(3, list(range(20)))
    first = shuffled_order(len(targets), seed=3, targets=targets)
    np.testing.assert_array_equal(first, shuffled_order(len(targets), seed=3, targets=targets))
    assert not np.array_equal(first, shuffled_order(len(targets), seed=4, targets=targets))


def test_distinct_targets_keep_the_plain_random_cycle():
    """Where no two windows share a target (one listener) the shuffle is the one it always was."""
    targets = _listeners_sharing_seconds(1, list(range(30)))
    for seed in (0, 5):
        np.testing.assert_array_equal(shuffled_order(30, seed=seed, targets=targets),
                                      shuffled_order(30, seed=seed))


@pytest.mark.parametrize("targets", [
    _listeners_sharing_seconds(2, [4]),  # the audit's case: one held-out second, two listeners
    np.array([0, 0, 0, 1, 2]),  # one target holds more than half the windows
    np.array([9]),
])
def test_no_shuffle_exists_when_one_target_holds_most_windows(targets):
    assert shuffled_order(len(targets), seed=0, targets=targets) is None


def test_targets_must_match_the_windows():
    with pytest.raises(ValueError, match="3 windows but 2 targets"):
        shuffled_order(3, targets=np.array([1, 2]))


# --- end to end: ``evaluate`` on a tiny simulated folder, 1 song x 2 listeners -----------------------

_CHANNEL_WEIGHTS = np.random.default_rng(0).normal(size=len(MODEL_CHANNELS))


def _write_model(path, data_dir, *, split="block"):
    """ONNX model ``mel = -60 + 20 · mean(channel weights · eeg)``: its output follows the EEG."""
    nodes = [
        helper.make_node("Mul", ["eeg", "weights"], ["weighted"]),
        helper.make_node("ReduceMean", ["weighted"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "axes"], ["mean_col"]),
        helper.make_node("Mul", ["mean_col", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "base"], ["mel_db"]),
    ]
    initializers = [
        helper.make_tensor("weights", TensorProto.FLOAT, [1, 125, 1], _CHANNEL_WEIGHTS.tolist()),
        helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2]),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [20.0]),
        helper.make_tensor("base", TensorProto.FLOAT, [1, 128, 44], [-60.0] * (128 * 44)),
    ]
    graph = helper.make_graph(
        nodes, "handmade", [helper.make_tensor_value_info("eeg", TensorProto.FLOAT, ["batch", 125, 125])],
        [helper.make_tensor_value_info("mel_db", TensorProto.FLOAT, ["batch", 128, 44])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    metadata = {
        "format_version": 1,
        "model": {"name": "handmade", "config": {}},
        "input": {"name": "eeg", "channels": list(MODEL_CHANNELS), "sfreq": 125.0, "window_samples": 125,
                  "subject_input": False, "subjects": []},
        "preprocessing": PreprocessingSpec().to_dict(),
        "output": {"name": "mel_db", "kind": "mel_db", "n_mels": 128, "n_frames": 44},
        "mel": melspec.mel_spec_dict(),
        "target_offset_s": 0.0,
        "audio_lag_s": 0.0,
        "training": {"data": str(data_dir), "songs": [21], "subjects": None, "split": split, "seed": 0,
                     "epochs": 0, "created": "2026-11-21T00:00:00"},
        "evaluation": {},
    }
    helper.set_model_props(model, {"eegmusic": json.dumps(metadata)})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def two_listeners(tmp_path_factory):
    """1 song x 2 listeners x 10 s (the audit's folder) and a model that reads the EEG."""
    from eegmusic.replay.simulate import simulate

    root = tmp_path_factory.mktemp("shuffle_control")
    data = simulate(root / "sim", n_songs=1, n_subjects=2, seconds=10.0, seed=0, progress=False)
    return data, _write_model(root / "model.onnx", data)


def test_evaluate_reports_the_control_unavailable_when_every_test_window_shares_one_target(two_listeners,
                                                                                           tmp_path):
    data, model = two_listeners
    summary = evaluate(data, model, "block", tmp_path / "eval", progress=False, max_wav_s=1)
    assert summary["n_test_windows"] == 2  # one held-out second, heard by both listeners
    assert summary["results"]["model"] is not None
    assert summary["results"]["shuffled_eeg"] is None
    assert any("shuffled EEG not available" in note for note in summary["notes"])
    table = (tmp_path / "eval" / "metrics.md").read_text()
    assert "| model on shuffled EEG | n/a | n/a | n/a | n/a | n/a | n/a |" in table


def test_evaluate_shuffles_every_window_onto_eeg_of_another_second(two_listeners, tmp_path):
    """Split ``all``: every window's second was also heard by the other listener."""
    data, model = two_listeners
    summary = evaluate(data, model, "all", tmp_path / "eval", progress=False, max_wav_s=1)
    dataset = WindowDataset(data, spec=PreprocessingSpec())
    rows = np.arange(len(dataset.index))
    assert summary["n_test_windows"] == len(rows) == 20
    targets = np.stack([dataset.index["song"], dataset.index["start"]], axis=1)
    order = shuffled_order(len(rows), seed=0, targets=targets)
    assert not np.all(targets[order] == targets, axis=1).any()
    session, info = load_model(model)
    target = dataset.mel(rows)
    shuffled = run_model(session, info, dataset.eeg(rows[order]))
    results = summary["results"]
    assert results["shuffled_eeg"]["mse"] == pytest.approx(metrics.mse(shuffled, target), rel=1e-5)
    assert results["shuffled_eeg"]["mse"] != pytest.approx(results["model"]["mse"], rel=1e-3)
    assert results["shuffled_eeg"]["dynamic_r"] != pytest.approx(results["model"]["dynamic_r"], abs=1e-3)
