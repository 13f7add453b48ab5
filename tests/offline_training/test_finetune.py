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
from eegmusic.offline_training.finetune_fit import HEADS, LR_FACTORS
from eegmusic.offline_training.finetune_recipe import ALPHAS
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


@pytest.fixture(scope="module")
def tuned8(tmp_path_factory, pretrained, cap8_session):
    """The pretrained model fine-tuned (1 epoch per candidate) on the 8-channel listener: the start or the
    fine-tuned model alone (blend weights 0 and 1 only), so one adapted network whichever is chosen."""
    from eegmusic.offline_training import finetune_recipe

    out = tmp_path_factory.mktemp("tuned8") / "tuned"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finetune_recipe, "ALPHAS", TUNED8_ALPHAS)
        train(TrainConfig(data=str(cap8_session), out=str(out), epochs=1, progress=False,
                          init=str(pretrained / "model.onnx"), device="cpu"))
    return out


TUNED8_ALPHAS = (0.0, 1.0)


def _rewritten(source, target, *, meta=None, rename=None):
    """A copy of model file ``source`` at ``target`` with metadata changed by ``meta(dict)`` and/or one
    initializer renamed (``rename=(old, new)``, its uses too: what a folding exporter does)."""
    import onnx

    proto = onnx.load(str(source))
    if meta is not None:
        for prop in proto.metadata_props:
            if prop.key == "eegmusic":
                value = json.loads(prop.value)
                meta(value)
                prop.value = json.dumps(value)
    if rename is not None:
        for init in proto.graph.initializer:
            if init.name == rename[0]:
                init.name = rename[1]
        for node in proto.graph.node:
            node.input[:] = [rename[1] if name == rename[0] else name for name in node.input]
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(target))
    return target


def test_init_reads_the_weights_from_the_model_file_alone(pretrained, tmp_path):
    from eegmusic.offline_training.models.registry import load_checkpoint

    lonely = tmp_path / "lonely" / "model.onnx"
    lonely.parent.mkdir()
    lonely.write_bytes((pretrained / "model.onnx").read_bytes())
    source = load_pretrained(lonely)
    reference, _ = load_checkpoint(pretrained / "best.pt")
    assert type(source.model) is type(reference) and source.model.get_config() == reference.get_config()
    state = source.model.state_dict()
    checked = [k for k in state if k in dict(reference.named_parameters()) or "running_" in k]
    assert len(checked) > 10
    for key in checked:
        torch.testing.assert_close(state[key], reference.state_dict()[key], rtol=0, atol=0)
    assert source.channels == load_pretrained(pretrained / "best.pt").channels
    assert source.positions is not None and source.positions.shape == (32, 3)


def test_a_model_file_that_cannot_be_adapted_is_refused(pretrained, tmp_path):
    onnx_file = pretrained / "model.onnx"
    folded = _rewritten(onnx_file, tmp_path / "folded.onnx", rename=("head.weight", "val_999"))
    with pytest.raises(ModelError, match=r"no weight 'head.weight' of shape \(5632, 32\).*best.pt"):
        load_pretrained(folded)
    audio = _rewritten(onnx_file, tmp_path / "audio.onnx",
                       meta=lambda m: m["output"].update(kind="audio", name="audio"))
    with pytest.raises(ModelError, match="a audio decoder cannot be adapted"):
        load_pretrained(audio)
    narrow = _rewritten(onnx_file, tmp_path / "narrow.onnx",
                        meta=lambda m: m["model"]["config"].update(n_mels=64))
    with pytest.raises(ModelError, match="output 64x44, the data's targets are 128x44"):
        load_pretrained(narrow)
    unnamed = _rewritten(onnx_file, tmp_path / "unnamed.onnx", meta=lambda m: m.pop("model"))
    with pytest.raises(ModelError, match="names no model"):
        load_pretrained(unnamed)
    # metadata a user may have been handed: refused in one line, as decode refuses it (were tracebacks,
    # a misleading "not one eegmusic knows", or channels named by numbers taken silently)
    hostile = {
        "input_text": (lambda m: m.update(input="x"), "'input' must be a JSON object"),
        "channel_numbers": (lambda m: m["input"].update(channels=list(range(32))),
                            "'input.channels' must be a list of strings"),
        "negative_channels": (lambda m: m["model"]["config"].update(n_chans=-5), "bad configuration"),
        "config_text": (lambda m: m["model"].update(config="x"), "configuration of its 'convnet' model is a "
                                                                  "str, not a JSON object"),
    }
    for name, (edit, message) in hostile.items():
        bad = _rewritten(onnx_file, tmp_path / name / "model.onnx", meta=edit)
        with pytest.raises(ModelError, match=message):
            load_pretrained(bad)
        (tmp_path / name / "best.pt").write_bytes((pretrained / "best.pt").read_bytes())
        with pytest.raises(ModelError, match=message):  # read with the weights of the run beside it
            load_pretrained(bad)


def test_an_adapted_model_is_read_back_from_either_file(tuned8, pretrained, tmp_path, tracks):
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.replay.live_listener import listener_for_montage

    lonely = tmp_path / "lonely" / "model.onnx"  # no best.pt beside it: the weights come from the graph
    lonely.parent.mkdir()
    lonely.write_bytes((tuned8 / "model.onnx").read_bytes())
    from_pt, from_onnx = load_pretrained(tuned8 / "best.pt"), load_pretrained(lonely)
    assert isinstance(from_pt.model, AdaptedDecoder) and isinstance(from_onnx.model, AdaptedDecoder)
    assert from_onnx.channels == from_pt.channels == ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
    for key, value in from_pt.model.named_parameters():
        torch.testing.assert_close(from_onnx.model.state_dict()[key], value.detach(), rtol=0, atol=0)
    listener = listener_for_montage("standard_1020", channels=32, sfreq=250.0, name="r", snr=0.5, seed=5)
    dataset = WindowDataset(listener.record_session(tmp_path / "r.xdf", tracks[1:2], minutes=0.3))
    with pytest.raises(ModelError, match="itself adapted to a 8-channel montage"):
        initial_model(tuned8 / "model.onnx", dataset)


def test_a_blended_model_exports_both_parts_reads_back_and_is_not_fine_tuned_again(pretrained, cap8_session,
                                                                                  tmp_path, monkeypatch):
    import onnxruntime
    from eegmusic.offline_training import finetune_recipe
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.finetune import BlendedDecoder

    monkeypatch.setattr(finetune_recipe, "ALPHAS", (0.5,))  # a blend whatever the scores
    out = tmp_path / "blend"
    train(TrainConfig(data=str(cap8_session), out=str(out), epochs=1, progress=False,
                      init=str(pretrained / "model.onnx"), device="cpu"))
    assert json.loads((out / "metrics.json").read_text())["finetune"]["alpha"] == 0.5
    from_pt = load_pretrained(out / "best.pt")
    lonely = tmp_path / "lonely" / "model.onnx"  # no best.pt beside it: the weights come from the graph
    lonely.parent.mkdir()
    lonely.write_bytes((out / "model.onnx").read_bytes())
    from_onnx = load_pretrained(lonely)
    for source in (from_pt, from_onnx):
        assert isinstance(source.model, BlendedDecoder) and source.model.weight == 0.5
        assert all(isinstance(part, AdaptedDecoder) for part in (source.model.start, source.model.tuned))
    for key, value in from_pt.model.named_parameters():
        torch.testing.assert_close(from_onnx.model.state_dict()[key], value.detach(), rtol=0, atol=0)
    dataset = WindowDataset(cap8_session)
    eeg = torch.from_numpy(dataset.eeg(np.arange(4)))
    blend = from_pt.model.eval()
    with torch.no_grad():  # the file decodes the mean of its two networks' mel-dB
        expected = (0.5 * blend.start(eeg) + 0.5 * blend.tuned(eeg)).numpy()
        assert not torch.allclose(blend.start(eeg), blend.tuned(eeg))
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    np.testing.assert_allclose(session.run(None, {"eeg": eeg.numpy()})[0], expected, rtol=1e-4, atol=1e-3)
    with pytest.raises(ModelError, match="itself a blend .* fine-tune the original pretrained model"):
        initial_model(out / "model.onnx", dataset)


def test_a_finetuning_run_is_not_resumed(tuned8, pretrained, cap8_session):
    from eegmusic.stream.errors import ConfigError

    before = {p.name: p.read_bytes() for p in tuned8.iterdir()}
    with pytest.raises(ConfigError, match="--resume cannot continue a fine-tuning run"):
        train(TrainConfig(data=str(cap8_session), out=str(tuned8), epochs=2, progress=False,
                          init=str(pretrained / "model.onnx"), device="cpu"), resume=True)
    assert {p.name: p.read_bytes() for p in tuned8.iterdir()} == before


def test_train_init_on_another_montage_exports_a_model_for_that_cap(tuned8):
    import onnxruntime

    out = tuned8
    config = json.loads((out / "config.json").read_text())
    assert config["init"].endswith("model.onnx") and config["model"] == "convnet"
    metrics = json.loads((out / "metrics.json").read_text())
    choice = metrics["finetune"]  # one loop per candidate learning rate and head
    assert [(c["head"], c["lr"]) for c in choice["candidates"]] == [
        (head, pytest.approx(f * 1.5e-3)) for head in HEADS for f in LR_FACTORS
    ]
    # a one-track session has no track to hold out: chosen on its validation blocks, and it says so
    assert choice["selection"]["songs"] == [] and "holds 1 track" in choice["selection"]["reason"]
    assert not choice["refit"]
    scores = [c["held_out_r"] for c in choice["candidates"]]
    assert set(choice["alpha_r"]) == {str(a) for a in TUNED8_ALPHAS}
    alpha = choice["alpha"]
    assert choice["alpha_r"][str(alpha)] == max(choice["alpha_r"].values())
    if choice["soup"] is None:  # alpha 1 is the best candidate itself
        assert choice["alpha_r"]["1.0"] == pytest.approx(max(scores), abs=1e-6)
    if alpha == 0:  # the pretrained start as it is
        assert (choice["chosen_head"], choice["chosen_lr"]) == (None, None)
        assert choice["alpha_r"]["0.0"] == pytest.approx(choice["start_r"], abs=1e-6)
    else:
        # the best candidate, alone or first in a soup (greedy_soup starts from it)
        best = choice["candidates"][int(np.argmax(scores))]
        assert (choice["chosen_head"], choice["chosen_lr"]) == (best["head"], best["lr"])
        assert choice["soup"] is None or choice["soup"][0] == int(np.argmax(scores))
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    meta = json.loads(session.get_modelmeta().custom_metadata_map["eegmusic"])
    assert meta["input"]["channels"] == ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
    mel = session.run(None, {"eeg": np.zeros((2, 8, 125), np.float32)})[0]
    assert mel.shape == (2, 128, 44) and np.all(np.isfinite(mel))


def test_a_session_of_several_tracks_chooses_on_tracks_the_candidates_never_trained_on(pretrained, tmp_path):
    import soundfile
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.finetune_recipe import FOLDS, selection_folds
    from eegmusic.offline_training.splits import make_split
    from eegmusic.replay.live_listener import listener_for_montage
    from eegmusic.replay.music_sources import packaged_tracks

    music = []
    for track in packaged_tracks(4)[2:4]:  # the first 21 s of two real tracks
        audio, rate = soundfile.read(str(track), frames=21 * 44100, dtype="float32")
        music.append(str(tmp_path / f"{track.stem}.wav"))
        soundfile.write(music[-1], audio, rate)
    listener = listener_for_montage("standard_1020", channels=32, sfreq=250.0, name="s", snr=0.5, seed=6)
    session = listener.record_session(tmp_path / "s.xdf", music, minutes=39.9 / 60, excerpt_s=20.0)
    out = tmp_path / "tuned"
    train(TrainConfig(data=str(session), out=str(out), epochs=1, hop_s=0.5, progress=False,
                      init=str(pretrained / "model.onnx"), device="cpu"))
    choice = json.loads((out / "metrics.json").read_text())["finetune"]
    dataset = WindowDataset(session, hop_s=0.5)
    split = make_split(dataset.index, "block", seed=0, hop_s=0.5, music=dataset.music)
    # the run's own folds (same seed, same split); the first track plays again at the end, as song 3
    folds = selection_folds(dataset.index, split, seed=0, music=dataset.music)
    assert len(folds) == min(FOLDS, 2) and choice["selection"]["reason"] is None
    assert choice["selection"]["songs"] == [f.song for f in folds] and None not in [f.song for f in folds]
    assert choice["selection"]["n_train"] == [len(f.split.train) for f in folds]
    for fold in folds:   # every play of a held-out track is held out (song 3 trained while 1 was scored)
        assert fold.song not in set(dataset.music["music"][np.union1d(fold.split.train, fold.split.val)])
    assert all(n < len(split.train) for n in choice["selection"]["n_train"])
    assert choice["selection"]["n_windows"] == sum(len(f.scored) for f in folds)
    assert choice["refit"] == (choice["alpha"] > 0)  # a chosen recipe is retrained on every track
    assert choice["alpha"] in ALPHAS
    stats = choice["statistics"]  # the model file beside its best.pt holds the pretrained statistics
    assert stats["r"]["pretrained"] is not None
    assert stats["choice"] == max(stats["r"], key=stats["r"].get)
    assert choice["alpha_r"][str(choice["alpha"])] == max(choice["alpha_r"].values())
    assert choice["alpha_r"]["0.0"] == pytest.approx(choice["start_r"], abs=1e-6)


def test_unadaptable_init_is_refused(pretrained, cap8_session, tmp_path):
    linear = tmp_path / "linear"
    train(TrainConfig(data=str(cap8_session), model="linear", out=str(linear), progress=False))
    with pytest.raises(ModelError, match="'linear' model cannot be fine-tuned"):
        load_pretrained(linear / "model.onnx")
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


def _refused_init(tmp_path, flag: str) -> list[str]:
    """``train --init`` with ``flag`` (neither file exists: the refusal comes first): its stderr lines, once
    the command is seen to exit 2 and write no run folder."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "eegmusic", "train", "--data", str(tmp_path / "s.xdf"), "--init",
         str(tmp_path / "p.onnx"), "--out", str(tmp_path / "run"), flag],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2
    assert not (tmp_path / "run").exists()
    return run.stderr.strip().splitlines()


def test_cli_refuses_to_resume_a_finetuning_run_in_one_line(tmp_path):
    lines = _refused_init(tmp_path, "--resume")
    assert len(lines) == 1 and "--resume cannot continue a fine-tuning run (--init)" in lines[0]


def test_cli_refuses_subject_conditioning_with_init_in_one_line(tmp_path):
    """``--init … --subject-conditioning`` fine-tuned the pretrained model as it is (no embedding added),
    yet config.json recorded subject_conditioning true."""
    lines = _refused_init(tmp_path, "--subject-conditioning")
    assert len(lines) == 1, lines
    assert "--subject-conditioning adds a subject embedding to a new model" in lines[0], lines


def test_init_keeps_the_target_offset_of_a_model_that_places_its_frames_by_it(sim_dir, tmp_path, capsys):
    """``--init`` of a sourcenet trained at offset 0 with ``--target-offset 0.3`` fine-tuned the model as
    placed at 0 s (best.pt) on targets at 0.3 s, and the model file said 0.3: an explicit other offset is
    refused, and the default (auto) takes the pretrained model's, recorded as such."""
    from eegmusic.offline_training.export import read_metadata
    from eegmusic.offline_training.models.registry import read_checkpoint
    from eegmusic.stream.cli import main

    small = {"n_sources": 4, "n_features": 8, "hidden": 16}
    common = ["--data", str(sim_dir), "--songs", "21", "--epochs", "1", "--batch-size", "16", "--no-progress"]
    # 0.12 s: off the grid that --target-offset auto picks from, so only the pretrained model gives it
    assert main(["train", *common, "--arch", "sourcenet", "--arch-config", json.dumps(small),
                 "--target-offset", "0.12", "--out", str(tmp_path / "pre")]) == 0
    init = ["train", *common, "--init", str(tmp_path / "pre" / "model.onnx"), "--lr", "0.001"]
    capsys.readouterr()
    assert main([*init, "--target-offset", "0.3", "--out", str(tmp_path / "off")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--target-offset 0.3 differs from the target offset of --init" in err[0], err
    assert not (tmp_path / "off").exists()
    assert main([*init, "--out", str(tmp_path / "tuned")]) == 0
    out = capsys.readouterr().out
    assert "target offset 0.12 s, not chosen (the offset --init" in out
    # what the fine-tuning chose is said beside the summary (it was only in INFO lines and metrics.json)
    chosen = json.loads((tmp_path / "tuned" / "metrics.json").read_text())["finetune"]
    line = next(line for line in out.splitlines() if line.startswith("fine-tuned from "))
    assert str(tmp_path / "pre" / "model.onnx") in line and "chosen on " in line
    assert (f"blend weight {chosen['alpha']:g}" in line) == (chosen["alpha"] > 0), line
    tuned = tmp_path / "tuned"
    assert read_checkpoint(tuned / "best.pt")["model_config"]["target_offset_s"] == 0.12
    assert read_metadata(tuned / "model.onnx")["target_offset_s"] == 0.12
    assert json.loads((tuned / "metrics.json").read_text())["target_offset_s"] == 0.12


def test_init_from_a_subject_conditioned_model_is_refused_before_any_output(sim_dir, tmp_path, capsys):
    """--init of a --subject-conditioning model onto 3 listeners was an IndexError traceback after
    config.json was written, and onto as many listeners gave listener k pretrained listener k's embedding
    silently: refused in one line, nothing written."""
    from eegmusic.replay.simulate import simulate
    from eegmusic.stream.cli import main

    two = simulate(tmp_path / "two", n_songs=2, n_subjects=2, seconds=20.0, seed=0, progress=False)
    common = ["--epochs", "1", "--batch-size", "16", "--no-progress"]
    assert main(["train", "--data", str(two), *common, "--arch", "cnn", "--subject-conditioning",
                 "--arch-config", json.dumps({"filters": [2, 2, 2, 2, 2], "dense": 8}),
                 "--out", str(tmp_path / "pre")]) == 0
    capsys.readouterr()
    for data in (sim_dir, two):
        out = tmp_path / f"ft-{data.name}"
        assert main(["train", "--data", str(data), *common, "--init", str(tmp_path / "pre" / "model.onnx"),
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith(
            f"--init {tmp_path / 'pre' / 'model.onnx'}: a subject-conditioned model (2 listener embeddings "
            "of its own training data) cannot be fine-tuned on other listeners; use one trained without "
            "--subject-conditioning"), err
        assert not out.exists()
