"""train --init: fine-tuning a pretrained decoder on a new listener, same or another montage.

Data: calibration sessions of virtual listeners (:meth:`replay.live_listener.LiveListener.record_session`,
the packaged real music). The comparison at 5 calibration minutes runs the benchmark's own code
(``benchmarks/bench_calibration.py``) and is ``slow``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eegmusic.offline_training.finetune import AdaptedDecoder, initial_model, load_pretrained
from eegmusic.offline_training.train import TrainConfig, train
from eegmusic.stream.errors import ModelError

SMALL = {"channels": [8, 8, 16, 16], "hidden": 32}


@pytest.fixture(scope="module")
def tracks():
    from eegmusic.replay.music_sources import packaged_tracks

    return packaged_tracks(3)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tracks):
    """A small convnet trained 2 epochs on 1.5 minutes of a 32-channel 10-20 listener."""
    from eegmusic.replay.live_listener import listener_for_montage

    work = tmp_path_factory.mktemp("pretrained")
    listener = listener_for_montage("standard_1020", channels=32, sfreq=250.0, name="p", snr=0.5, seed=3)
    session = listener.record_session(work / "p.xdf", tracks[:1], minutes=1.5)
    train(TrainConfig(data=str(session), model="convnet", out=str(work / "run"), epochs=2, progress=False,
                      model_config=SMALL, device="cpu"))
    return work / "run"


@pytest.fixture(scope="module")
def cap8_session(tmp_path_factory, tracks):
    from eegmusic.replay.live_listener import listener_for_montage

    listener = listener_for_montage("openbci8", channels=None, sfreq=250.0, name="n", snr=0.5, seed=9)
    return listener.record_session(tmp_path_factory.mktemp("new") / "n.xdf", tracks[1:2], minutes=1.0)


def test_same_montage_loads_the_weights_as_they_are(pretrained, tmp_path, tracks):
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.models.registry import load_checkpoint
    from eegmusic.replay.live_listener import listener_for_montage

    listener = listener_for_montage("standard_1020", channels=32, sfreq=250.0, name="q", snr=0.5, seed=4)
    dataset = WindowDataset(listener.record_session(tmp_path / "q.xdf", tracks[1:2], minutes=0.3))
    model = initial_model(pretrained / "model.onnx", dataset)
    reference, _ = load_checkpoint(pretrained / "best.pt")
    assert not isinstance(model, AdaptedDecoder)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_other_montage_starts_as_the_spline_interpolation(pretrained, cap8_session):
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.stream.interpolation import spline_matrix
    from eegmusic.stream.montage import head_positions

    dataset = WindowDataset(cap8_session)
    model = initial_model(pretrained / "model.onnx", dataset)
    assert isinstance(model, AdaptedDecoder) and model.n_chans == 8
    source = load_pretrained(pretrained / "model.onnx")
    weights = model.adapter.weight.detach().numpy()
    expected = spline_matrix(head_positions(dataset.channels), source.positions)
    for i, label in enumerate(source.channels):
        if label in dataset.channels:  # an electrode both caps have is copied
            row = np.zeros(8)
            row[dataset.channels.index(label)] = 1.0
            np.testing.assert_allclose(weights[i], row)
        else:
            np.testing.assert_allclose(weights[i], expected[i], atol=1e-5)  # float32
    eeg = torch.from_numpy(dataset.eeg(np.arange(4)))
    source.model.eval()
    model.eval()
    with torch.no_grad():
        mapped = torch.einsum("md,bdt->bmt", model.adapter.weight, eeg)
        torch.testing.assert_close(model(eeg), source.model(mapped))


def test_train_init_on_another_montage_exports_a_model_for_that_cap(pretrained, cap8_session, tmp_path):
    import onnxruntime

    out = tmp_path / "tuned"
    train(TrainConfig(data=str(cap8_session), out=str(out), epochs=1, progress=False,
                      init=str(pretrained / "model.onnx"), device="cpu"))
    config = json.loads((out / "config.json").read_text())
    assert config["init"].endswith("model.onnx") and config["model"] == "convnet"
    assert config["lr"] == pytest.approx(0.3 * 1.5e-3)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    meta = json.loads(session.get_modelmeta().custom_metadata_map["eegmusic"])
    assert meta["input"]["channels"] == ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
    mel = session.run(None, {"eeg": np.zeros((2, 8, 125), np.float32)})[0]
    assert mel.shape == (2, 128, 44) and np.all(np.isfinite(mel))


def test_unadaptable_init_is_refused(pretrained, cap8_session, tmp_path):
    linear = tmp_path / "linear"
    train(TrainConfig(data=str(cap8_session), model="linear", out=str(linear), progress=False))
    with pytest.raises(ModelError, match="'linear' model cannot be fine-tuned"):
        load_pretrained(linear / "model.onnx")
    lonely = tmp_path / "lonely" / "model.onnx"
    lonely.parent.mkdir()
    lonely.write_bytes((pretrained / "model.onnx").read_bytes())
    with pytest.raises(ModelError, match="no best.pt beside it"):
        load_pretrained(lonely)
    with pytest.raises(ModelError, match="not found"):
        load_pretrained(tmp_path / "nothing.onnx")
    assert not (tmp_path / "tuned").exists()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_finetuning_beats_pretrained_alone_and_from_scratch_at_5_minutes(tmp_path):
    from eegmusic.benchmarks.bench_calibration import compare

    # the quick bench's sizes; two training seeds per method (one run differs from the next by ~0.01 r)
    results = compare(tmp_path, (5,), pretrain_min=9.0, test_min=2.0, reference_min=None, seeds=(0, 1))
    at5 = results["by_minutes"]["5"]
    tuned, scratch = at5["fine_tuned"]["model"], at5["from_scratch"]["model"]
    alone = results["pretrained_alone"]["model"]
    print(json.dumps(results))
    assert tuned > alone and tuned > scratch
    assert tuned > at5["fine_tuned"]["shuffled_eeg"]
