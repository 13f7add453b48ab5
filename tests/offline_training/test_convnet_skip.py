"""``convnet`` and ``rcnn`` with a frozen ridge skip path: start as that ridge, learn a residual,
export as one file."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training.export import build_metadata, export_onnx, run_onnx  # noqa: E402
from eegmusic.offline_training.models.registry import build_model, load_checkpoint  # noqa: E402
from eegmusic.stream.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def ridge_run(rng, tmp_path):
    """A 'trained' linear model saved as a run's best.pt: (path, model, eeg, mel)."""
    torch.manual_seed(0)
    eeg = rng.normal(0.0, 20.0, (16, 125, 125)).astype(np.float32)
    mel = rng.normal(-40.0, 12.0, (16, 128, 44)).astype(np.float32)
    ridge = build_model("linear", target_offset_s=0.1)
    ridge.fit_stats(eeg, mel)
    with torch.no_grad():
        ridge.weight.normal_(0.0, 0.05)
        ridge.bias.fill_(-35.0)
    path = tmp_path / "best.pt"
    content = {"model": "linear", "model_config": ridge.get_config(), "state_dict": ridge.state_dict()}
    torch.save(content, path)
    return path, ridge.eval(), eeg, mel


SMALL = {"convnet": {"channels": (16, 16), "strides": (2, 2), "hidden": 32},
         "rcnn": {"conv_channels": 8, "hidden": 8}}
"""Small versions of the two models that take a skip path."""


@pytest.fixture(params=sorted(SMALL))
def name(request):
    return request.param


def skip_model(name, path, eeg, mel):
    torch.manual_seed(1)
    model = build_model(name, **SMALL[name], skip={"name": "linear", "checkpoint": str(path)})
    model.fit_stats(eeg, mel)
    return model


def test_an_untrained_model_with_a_ridge_skip_decodes_as_that_ridge(ridge_run, name):
    path, ridge, eeg, mel = ridge_run
    model = skip_model(name, path, eeg, mel).eval()
    x = torch.tensor(eeg[:4])
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), ridge(x).numpy(), atol=1e-4)
        plain = build_model(name, **SMALL[name])
        plain.fit_stats(eeg, mel)
        assert not np.allclose(plain.eval()(x).numpy(), ridge(x).numpy(), atol=1.0)  # the skip made it so


def test_training_moves_the_residual_only_and_the_file_carries_the_ridge(ridge_run, rng, tmp_path, name):
    path, ridge, eeg, mel = ridge_run
    model = skip_model(name, path, eeg, mel)
    frozen = {k: v.clone() for k, v in model.skip_model.state_dict().items()}
    head = model.head.weight.clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        loss = ((model(torch.tensor(eeg)) - torch.tensor(mel)) ** 2).mean()
        loss.backward()
        optimizer.step()
    assert not torch.equal(model.head.weight, head)
    for key, value in model.skip_model.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    # the configuration holds the ridge itself, not the path of the run it came from
    config = json.loads(json.dumps(model.get_config()))
    assert config["skip"]["trained"] is True and "checkpoint" not in config["skip"]
    path.unlink()
    clone = type(model).from_config(config)
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    x = torch.tensor(rng.normal(0.0, 20.0, (3, 125, 125)).astype(np.float32))
    with torch.no_grad():
        expected = model(x).numpy()
        np.testing.assert_array_equal(clone(x).numpy(), expected)
    metadata = build_metadata(model, target_offset_s=0.1, subjects=[],
                              training={"data": "/x", "split": "block"})
    onnx = export_onnx(model, tmp_path / "skip.onnx", metadata)
    assert np.max(np.abs(run_onnx(onnx, x.numpy()) - expected)) < 1e-3


def test_the_skip_must_be_a_trained_model(ridge_run, name):
    with pytest.raises(ConfigError, match=f"{name} skip .* is not a trained model"):
        build_model(name, skip={"name": "linear"})
    saved, _ = load_checkpoint(ridge_run[0])
    assert saved.name == "linear"


def test_epochs_that_lose_to_the_skip_on_validation_are_not_kept(sim_dir, tmp_path):
    """The untrained network (= its skip model) is scored as epoch 0: with a learning rate that wrecks
    the residual, no epoch beats it and the result decodes exactly as the ridge does."""
    from eegmusic.offline_training.train import TrainConfig, train

    def run(out, model, **options):
        return train(TrainConfig(data=str(sim_dir), model=model, split="block", out=str(tmp_path / out),
                                 batch_size=16, target_offset_s=0.1, progress=False, **options))

    run("ridge", "linear", model_config={"lags": [0, 8]})
    skip = {"skip": {"name": "linear", "checkpoint": str(tmp_path / "ridge" / "best.pt")}}
    wrecked = run("wrecked", "convnet", epochs=2, patience=2, lr=10.0,
                  model_config={**SMALL["convnet"], **skip})
    assert wrecked["best_epoch"] == 0 and wrecked["epochs_run"] == 2
    assert all(h["val_loss"] > wrecked["best_val_loss"] for h in wrecked["history"])
    ridge, _ = load_checkpoint(tmp_path / "ridge" / "best.pt")
    kept, _ = load_checkpoint(tmp_path / "wrecked" / "best.pt")
    x = torch.tensor(np.random.default_rng(3).normal(0.0, 20.0, (4, 125, 125)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(kept.eval()(x).numpy(), ridge.eval()(x).numpy(), atol=1e-4)
    # a start that is easy to beat (the ridge 60 dB too loud) is left behind by the first epoch
    loud = torch.load(tmp_path / "ridge" / "best.pt", weights_only=False)
    loud["state_dict"]["bias"] = loud["state_dict"]["bias"] + 60.0
    torch.save(loud, tmp_path / "loud.pt")
    skip = {"skip": {"name": "linear", "checkpoint": str(tmp_path / "loud.pt")}}
    fixed = run("fixed", "convnet", epochs=1, patience=2, lr=1e-2, model_config={**SMALL["convnet"], **skip})
    assert fixed["best_epoch"] == 1 and fixed["best_val_loss"] == fixed["history"][0]["val_loss"]
