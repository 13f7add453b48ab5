"""The ensemble decoder: members trained in turn or joined from runs, weights chosen on validation, one
ONNX file."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training.export import run_onnx  # noqa: E402
from eegmusic.offline_training.models.registry import build_model, load_checkpoint  # noqa: E402
from eegmusic.offline_training.train import TrainConfig, train  # noqa: E402
from eegmusic.stream.errors import ConfigError  # noqa: E402

SMALL_SOURCENET = {"feature_norm": "batch", "n_sources": 4, "n_features": 8, "hidden": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_run(sim_dir, out, model, **options):
    return train(TrainConfig(data=str(sim_dir), model=model, split="block", out=str(out), epochs=1,
                             batch_size=16, target_offset_s=0.1, progress=False, **options))


@pytest.fixture(scope="module")
def ridge_run(sim_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ridge") / "run"
    small_run(sim_dir, out, "linear", model_config={"lags": [0, 8]})
    return out


def test_ensemble_of_a_trained_ridge_and_a_new_member_exports_their_weighted_mean(
        sim_dir, ridge_run, tmp_path, rng):
    out = tmp_path / "ensemble"
    members = [{"name": "linear", "checkpoint": str(ridge_run / "best.pt")},
               {"name": "sourcenet", "config": SMALL_SOURCENET}]
    metrics = small_run(sim_dir, out, "ensemble", loss="mse+pearson", model_config={"members": members})
    weights = metrics["weights"]
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)
    # the weight was chosen on validation from the grid, the best score there
    scores = {float(w): r for w, r in metrics["weight_scores"].items()}
    assert weights[0] == pytest.approx(max(scores, key=scores.get))
    assert metrics["members"][0] == {"trained_before": True} and metrics["members"][1]["epochs_run"] == 1
    ensemble, _ = load_checkpoint(out / "best.pt", model_name="ensemble")
    # the joined ridge kept its trained weights and statistics (not refitted on the ensemble's sample)
    ridge, _ = load_checkpoint(ridge_run / "best.pt", model_name="linear")
    for key, value in ridge.state_dict().items():
        assert torch.equal(ensemble.models[0].state_dict()[key], value), key
    # the ensemble's files do not refer back to the ridge's run: its config is the ridge's own
    assert ensemble.members[0]["trained"] and "checkpoint" not in json.dumps(ensemble.get_config())
    eeg = rng.normal(0.0, 20.0, (5, 125, 125)).astype(np.float32)
    with torch.no_grad():
        parts = [m(torch.from_numpy(eeg)).numpy() for m in ensemble.models]
    expected = weights[0] * parts[0] + weights[1] * parts[1]
    np.testing.assert_allclose(run_onnx(out / "model.onnx", eeg), expected, rtol=1e-4, atol=1e-3)
    assert np.abs(parts[0] - parts[1]).max() > 0.1  # two different members: the mix is a real mix


def test_fresh_ensemble_trains_each_member_with_its_own_seed(sim_dir, tmp_path):
    members = [{"name": "sourcenet", "config": SMALL_SOURCENET}] * 2
    metrics = small_run(sim_dir, tmp_path / "ens", "ensemble", model_config={"members": members})
    ensemble, _ = load_checkpoint(tmp_path / "ens" / "best.pt")
    first, second = (m.state_dict()["spatial.weight"] for m in ensemble.models)
    assert not torch.equal(first, second)
    assert [m["epochs_run"] for m in metrics["members"]] == [1, 1]
    # what the help says a member's folder holds: its last epoch's checkpoint, nothing else
    assert sorted(p.name for p in (tmp_path / "ens" / "member0").iterdir()) == ["checkpoint.pt"]
    # epochs_run means what it means for one model (epochs one model trained), not the members' sum;
    # each member's count is kept beside it, and the model file says the same
    assert metrics["epochs_run"] == 1 and metrics["member_epochs_run"] == [1, 1]
    from eegmusic.decoder.modelfile import read_model_info

    assert read_model_info(tmp_path / "ens" / "model.onnx").metadata["training"]["epochs"] == 1


def test_train_help_says_what_an_ensemble_folder_holds(sim_dir, tmp_path):
    """The epilog promised checkpoint.pt and training_curve.png in every run folder; an ensemble's has
    neither (its members' folders hold their checkpoints)."""
    import argparse

    from eegmusic.offline_training.cli_train import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    epilog = " ".join(parser.epilog.split())
    # it said "member<i>/ (each member's own run folder)"; a member's folder holds its checkpoint.pt only
    # (test_fresh_ensemble_trains_each_member_with_its_own_seed), a linear member's nothing
    assert ("ensemble: config.json, best.pt, metrics.json, model.onnx and member<i>/ for each member trained "
            "in the run: its checkpoint.pt (last epoch), empty for linear (fitted in closed form)") in epilog
    out = tmp_path / "ens"
    members = [{"name": "linear", "config": {"lags": [0]}}]
    small_run(sim_dir, out, "ensemble", model_config={"members": members})
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "best.pt", "config.json", "member0", "metrics.json", "model.onnx"]
    assert not any((out / "member0").iterdir())


def test_train_summary_of_an_ensemble_names_its_mixing_weights(sim_dir, tmp_path, capsys):
    """It printed "best epoch 0": an ensemble has no epoch of its own; validation chose its members'
    mixing weights."""
    from eegmusic.stream.cli import main

    members = [{"name": "linear", "config": {"lags": [0]}}, {"name": "linear", "config": {"lags": [0, 8]}}]
    status = main(["train", "--data", str(sim_dir), "--arch", "ensemble", "--arch-config",
                   json.dumps({"members": members}), "--split", "block", "--epochs", "1", "--batch-size",
                   "16", "--target-offset", "0.1", "--out", str(tmp_path / "ens"), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0, out
    weights = json.loads((tmp_path / "ens" / "metrics.json").read_text())["weights"]
    said = f"member weights {weights[0]:.3g}, {weights[1]:.3g} (chosen on validation)"
    assert said in out and "best epoch" not in out, out


def test_bad_members_are_refused():
    with pytest.raises(ConfigError, match="ensemble cannot hold an ensemble"):
        build_model("ensemble", members=[{"name": "ensemble"}])
    with pytest.raises(ConfigError, match="weights"):
        build_model("ensemble", members=[{"name": "linear"}], weights=[1.0, 2.0])


def test_resuming_an_ensemble_run_is_refused_in_one_line(sim_dir, tmp_path):
    out = tmp_path / "ens"
    members = [{"name": "linear", "config": {"lags": [0, 8]}}]
    small_run(sim_dir, out, "ensemble", model_config={"members": members})
    with pytest.raises(ConfigError, match="resume"):
        train(TrainConfig(data=str(sim_dir), model="ensemble", split="block", out=str(out), epochs=1,
                          batch_size=16, target_offset_s=0.1, progress=False,
                          model_config={"members": members}), resume=True)
