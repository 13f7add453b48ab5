"""Every registry model: contract, config round trip, ONNX export parity with torch, checkpoint errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from eegmusic.decoder.melspec import mel_spec_dict  # noqa: E402
from eegmusic.offline_training.export import build_metadata, export_onnx, read_metadata, run_onnx  # noqa: E402
from eegmusic.offline_training.models.registry import MODELS, build_model, load_checkpoint  # noqa: E402
from eegmusic.stream.errors import ConfigError, ModelError  # noqa: E402
from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fitted_model(name, rng, n_subjects=0):
    torch.manual_seed(0)
    model = build_model(name, n_subjects=n_subjects)
    eeg = rng.normal(0.0, 20.0, (8, 125, 125)).astype(np.float32)
    mel = rng.normal(-40.0, 12.0, (8, 128, 44)).astype(np.float32)
    model.fit_stats(eeg, mel)
    with torch.no_grad():  # the heads start at zero (mean spectrum): give every output a real path
        for parameter in model.parameters():
            if parameter.ndim >= 1 and not parameter.abs().sum():
                parameter.normal_(0.0, 0.02)
    return model.eval()


def test_registry_names():
    assert {"linear", "cnn", "rcnn", "encdec", "transformer", "convnet"} <= set(MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_contract_and_config_round_trip(name, rng):
    model = fitted_model(name, rng)
    for attribute, value in (
        ("n_chans", 125),
        ("n_times", 125),
        ("sfreq", 125.0),
        ("n_mels", 128),
        ("n_frames", 44),
    ):
        assert getattr(model, attribute) == value
    config = json.loads(json.dumps(model.get_config()))
    clone = type(model).from_config(config)
    assert clone.get_config() == model.get_config()
    clone.load_state_dict(model.state_dict())
    clone.eval()
    x = torch.tensor(rng.normal(0.0, 20.0, (3, 125, 125)), dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())
        assert model(x).shape == (3, 128, 44)


@pytest.mark.parametrize("n_subjects", [0, 3])
@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_export_matches_torch(name, n_subjects, rng, tmp_path):
    model = fitted_model(name, rng, n_subjects=n_subjects)
    subjects = ["S01", "S02", "S03"]
    metadata = build_metadata(
        model,
        target_offset_s=0.25,
        subjects=subjects,
        training={"data": "/x", "songs": [21], "split": "block"},
    )
    path = export_onnx(model, tmp_path / f"{name}.onnx", metadata)
    # each LSTM is one ONNX LSTM node (offline_training/onnx_lstm.py), and the caller's model keeps its own
    n_lstms = sum(isinstance(module, torch.nn.LSTM) for module in model.modules())
    graph = onnx.load(str(path)).graph
    assert [node.op_type for node in graph.node].count("LSTM") == n_lstms
    assert n_lstms == {"rcnn": 1, "encdec": 2}.get(name, 0)
    # ... through eegmusic's operator: the weights in ONNX's layout (torch's own path keeps its names)
    initializers = {init.name for init in graph.initializer}
    assert not any("_ih_l0" in init for init in initializers)
    assert sum(init.endswith((".w", ".r", ".b")) for init in initializers) == 3 * n_lstms
    eeg = rng.normal(0.0, 20.0, (5, 125, 125)).astype(np.float32)
    eeg[0, 3, :] = 1e5  # far outside the training range: clamps and logs are exercised
    subject = np.array([0, 2, 1, 0, 2])
    with torch.no_grad():
        expected = model(torch.tensor(eeg), torch.tensor(subject) if n_subjects else None).numpy()
    got = run_onnx(path, eeg, subject if n_subjects else None)
    assert got.shape == (5, 128, 44)
    assert np.std(expected) > 0.1  # a real, non-constant output
    assert np.max(np.abs(got - expected)) < 1e-3

    meta = read_metadata(path)
    assert meta["format_version"] == 1
    assert meta["model"] == {"name": name, "config": json.loads(json.dumps(model.get_config()))}
    montage = {key: meta["input"].pop(key) for key in ("positions", "max_missing")}
    assert np.asarray(montage["positions"]).shape == (125, 3)
    from eegmusic.decoder.modelfile import default_max_missing

    # the default tolerance, a tenth of the channels: `max_missing or 0` would have passed a '>= 0'
    assert montage["max_missing"] == default_max_missing(125) == 12
    assert meta["input"] == {
        "name": "eeg",
        "channels": list(MODEL_CHANNELS),
        "sfreq": 125.0,
        "window_samples": 125,
        "subject_input": bool(n_subjects),
        "subjects": subjects if n_subjects else [],
    }
    assert meta["preprocessing"] == PreprocessingSpec().to_dict()
    assert meta["output"] == {"name": "mel_db", "kind": "mel_db", "n_mels": 128, "n_frames": 44}
    assert meta["mel"] == json.loads(json.dumps(mel_spec_dict()))
    assert meta["target_offset_s"] == meta["audio_lag_s"] == 0.25
    assert meta["training"]["songs"] == [21] and "created" in meta["training"]
    assert meta["evaluation"] == {}


def test_linear_closed_form_recovers_a_lagged_linear_map(rng):
    model = build_model("linear", lags=(0, 4))
    eeg = rng.normal(0.0, 5.0, (40, 125, 125)).astype(np.float32)
    model.fit_stats(eeg, np.zeros((40, 128, 44)))
    true_weight = torch.tensor(rng.normal(0.0, 1.0, (model.n_features, 128)), dtype=torch.float32)
    with torch.no_grad():
        mel = (model.design(torch.tensor(eeg)) @ true_weight + 3.0).transpose(1, 2)
    batches = [
        (torch.tensor(eeg[i : i + 10]), mel[i : i + 10], torch.zeros(10, dtype=torch.long))
        for i in (0, 10, 20)
    ]
    info = model.fit_closed_form(
        batches, [(torch.tensor(eeg[30:]), mel[30:], torch.zeros(10, dtype=torch.long))]
    )
    assert info["alpha"] == min(float(a) for a in info["val_mse"])
    with torch.no_grad():
        prediction = model(torch.tensor(eeg[30:]))
    assert float(((prediction - mel[30:]) ** 2).mean()) < 1e-3 * float(mel.var())


def test_linear_penalty_is_not_cut_short_at_ten_and_the_grid_edge_is_logged(rng, caplog):
    # targets unrelated to the EEG: the less the fit follows the training noise the better, so validation
    # wants a penalty above 10, where the grid used to stop (which held ridge back on music)
    model = build_model("linear", lags=(0, 4))
    eeg = rng.normal(0.0, 5.0, (40, 125, 125)).astype(np.float32)
    mel = torch.tensor(rng.normal(0.0, 1.0, (40, 128, 44)), dtype=torch.float32)
    model.fit_stats(eeg, mel.numpy())
    subjects = torch.zeros(20, dtype=torch.long)
    train = [(torch.tensor(eeg[:20]), mel[:20], subjects)]
    val = [(torch.tensor(eeg[20:]), mel[20:], subjects)]
    with caplog.at_level("WARNING", logger="eegmusic.offline_training.models.linear"):
        assert model.fit_closed_form(train, val)["alpha"] > 10.0
        assert "is the largest tried" not in caplog.text  # the default grid's minimum lies inside it
        assert model.fit_closed_form(train, val, alphas=(0.01, 0.1))["alpha"] == 0.1
    assert "ridge penalty 0.1 is the largest tried" in caplog.text


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model 'gru'; use one of linear, cnn"):
        build_model("gru")


def test_checkpoint_from_another_model(tmp_path, rng):
    model = fitted_model("convnet", rng)
    path = tmp_path / "checkpoint.pt"
    torch.save(
        {"model": "convnet", "model_config": model.get_config(), "state_dict": model.state_dict()}, path
    )
    loaded, config = load_checkpoint(path, model_name="convnet")
    assert config["model"] == "convnet" and isinstance(loaded, MODELS["convnet"])
    with pytest.raises(ModelError, match="holds a 'convnet' model, not 'rcnn'"):
        load_checkpoint(path, model_name="rcnn")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="unreadable"):
        load_checkpoint(tmp_path / "junk.pt")


def test_exports_build_torchs_translation_table_once_and_leave_torch_as_it_was(rng, tmp_path, monkeypatch):
    """torch.onnx.export rebuilt its ATen → ONNX table on every call (1.1 s, a quarter of a convnet's
    export); eegmusic builds it once per process. Torch's own builder is back in place after each export,
    and a model exported with the table reused still matches torch."""
    from eegmusic.offline_training import export
    from torch.onnx._internal.exporter import _registration

    build = _registration.ONNXRegistry.__dict__["from_torchlib"].__func__
    builds = []

    def counted(cls, *args, **kwargs):
        builds.append(args or tuple(kwargs.values()))
        return build(cls, *args, **kwargs)

    counting = classmethod(counted)
    monkeypatch.setattr(_registration.ONNXRegistry, "from_torchlib", counting)
    monkeypatch.setattr(export, "_TORCHLIB_REGISTRIES", {})
    model = fitted_model("linear", rng)
    eeg = rng.normal(0.0, 20.0, (3, 125, 125)).astype(np.float32)
    for index in range(2):
        path = export_onnx(model, tmp_path / f"m{index}.onnx", build_metadata(model))
        assert _registration.ONNXRegistry.__dict__["from_torchlib"] is counting
        with torch.no_grad():
            np.testing.assert_allclose(run_onnx(path, eeg), model(torch.tensor(eeg)).numpy(), atol=1e-3)
    assert len(builds) == 1
    # each export added eegmusic's LSTM translation to its own copy of the table, never to the one kept
    (kept,) = export._TORCHLIB_REGISTRIES.values()
    assert not any("eegmusic" in str(target) for target in kept.functions)
