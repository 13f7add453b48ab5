"""``evaluate`` end to end on a tiny NMED-T folder with hand-built ONNX models.

The folder is made so that the EEG carries the music: every second of each song has its own loudness
``a_k``, and every EEG channel holds ``10 · a_k`` during that second. A model whose mel output rises
with the mean EEG of its window therefore follows the music over time (dynamic r near 1), while the
same model on shuffled EEG, and the constant baselines, do not. The two songs differ in spectrum
(low-passed vs high-passed noise), so the song classifier can tell them apart.

The ONNX models are built with ``onnx.helper`` (no torch): ``mel = base + scale · mean(eeg)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import scipy.io
import scipy.signal
import soundfile
from eegmusic.decoder import melspec
from eegmusic.offline_training import metrics
from eegmusic.offline_training.baselines import shuffled_test_order
from eegmusic.offline_training.dataset import WindowDataset
from eegmusic.offline_training.evaluate import evaluate
from eegmusic.offline_training.inference import load_model, run_model
from eegmusic.offline_training.scoring import dynamic_blocks
from eegmusic.offline_training.splits import make_split
from eegmusic.stream.errors import ConfigError, DataFormatError, ModelError
from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec
from onnx import TensorProto, helper

SONGS = (21, 22)
N_SUBJECTS = 2
SECONDS = 20


def _write_folder(folder, *, stimuli=True, seed=0, songs=SONGS, seconds=SECONDS):
    """Write a tiny NMED-T folder: songs x N_SUBJECTS x seconds, EEG = 10 · loudness of the second."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sr = melspec.AUDIO_SFREQ
    for k, song in enumerate(songs):
        loudness = rng.uniform(0.05, 1.0, seconds)
        eeg = np.repeat(10.0 * loudness, 125)[None, :, None]
        eeg = eeg + rng.normal(0, 0.01, (125, seconds * 125, N_SUBJECTS))
        scipy.io.savemat(folder / f"song{song}_Imputed.mat",
                         {f"data{song}": eeg, "fs": 125.0, f"subs{song}": np.arange(1, N_SUBJECTS + 1)})
        if stimuli:
            kind = "lowpass" if k % 2 == 0 else "highpass"
            sos = scipy.signal.butter(4, 1500 if kind == "lowpass" else 5000, kind, fs=sr, output="sos")
            noise = scipy.signal.sosfilt(sos, rng.normal(size=seconds * sr))
            audio = 0.3 * noise / np.std(noise) * np.repeat(loudness, sr)
            (folder / "stimuli").mkdir(exist_ok=True)
            soundfile.write(folder / "stimuli" / f"song{song}.wav", audio.astype(np.float32), sr)
    return folder


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    return _write_folder(tmp_path_factory.mktemp("eval") / "data")


NO_REFERENCE = PreprocessingSpec(reference="none")


def _metadata(data_dir, *, kind="mel_db", split="block", seed=0, songs=SONGS, **overrides) -> dict:
    output = ({"name": "mel_db", "kind": "mel_db", "n_mels": 128, "n_frames": 44} if kind == "mel_db"
              else {"name": "audio", "kind": "audio", "n_samples": 22050, "sfreq": 22050})
    meta = {
        "format_version": 1,
        "model": {"name": "handmade", "config": {}},
        "input": {"name": "eeg", "channels": list(MODEL_CHANNELS), "sfreq": 125.0, "window_samples": 125,
                  "subject_input": False, "subjects": []},
        # the handmade EEG carries the music as a signal common to all channels, which an average
        # reference would remove: these models declare no re-reference
        "preprocessing": NO_REFERENCE.to_dict(),
        "output": output,
        "mel": melspec.mel_spec_dict(),
        "target_offset_s": 0.0,
        "audio_lag_s": 0.0,
        "training": {"data": str(data_dir), "songs": list(songs), "subjects": None, "split": split,
                     "seed": seed, "epochs": 0, "created": "2026-11-21T00:00:00"},
        "evaluation": {},
    }
    meta.update(overrides)
    return meta


def _write_model(path, *, base, scale, metadata=None, kind="mel_db", subject_db=None, channel_weights=None):
    """ONNX model ``out = base + scale · mean(eeg over channels and samples)``.

    ``base`` has shape (128, 44) for a mel model or (22050,) for a waveform model. With
    ``subject_db``, the model has an int64 ``subject`` input and adds ``subject_db · subject``. With
    ``channel_weights`` (125,), each channel is weighted before the mean, so the order of the channels
    matters.
    """
    base = np.asarray(base, dtype=np.float32)[None]
    out_name = "mel_db" if kind == "mel_db" else "audio"
    out_shape = ["batch", 128, 44] if kind == "mel_db" else ["batch", 22050]
    nodes = [
        helper.make_node("ReduceMean", ["eeg" if channel_weights is None else "weighted"], ["mean"],
                         axes=[1, 2], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "axes"], ["mean_col"]),
        helper.make_node("Mul", ["mean_col", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "base"], [out_name]),
    ]
    axes = [1, 2] if kind == "mel_db" else [1]
    initializers = [
        helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [float(scale)]),
        helper.make_tensor("base", TensorProto.FLOAT, list(base.shape), base.ravel().tolist()),
    ]
    if channel_weights is not None:
        nodes.insert(0, helper.make_node("Mul", ["eeg", "channel_weights"], ["weighted"]))
        initializers.append(helper.make_tensor("channel_weights", TensorProto.FLOAT, [1, 125, 1],
                                               np.asarray(channel_weights, dtype=np.float32).tolist()))
    inputs = [helper.make_tensor_value_info("eeg", TensorProto.FLOAT, ["batch", 125, 125])]
    if subject_db is not None:
        nodes[-1] = helper.make_node("Add", ["scaled", "base"], ["no_subject"])
        nodes += [
            helper.make_node("Cast", ["subject"], ["subject_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["subject_f", "axes"], ["subject_col"]),
            helper.make_node("Mul", ["subject_col", "subject_db"], ["subject_term"]),
            helper.make_node("Add", ["no_subject", "subject_term"], [out_name]),
        ]
        initializers.append(helper.make_tensor("subject_db", TensorProto.FLOAT, [], [float(subject_db)]))
        inputs.append(helper.make_tensor_value_info("subject", TensorProto.INT64, ["batch"]))
    graph = helper.make_graph(
        nodes, "handmade", inputs,
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, {"eegmusic": json.dumps(metadata)})
    onnx.save(model, str(path))
    return path


def _test_part(data_dir, split="block", seed=0):
    dataset = WindowDataset(data_dir, songs=list(SONGS), spec=NO_REFERENCE)
    return dataset, make_split(dataset.index, split, seed=seed)


@pytest.fixture(scope="module")
def tracking_run(eval_dir, tmp_path_factory):
    """A model that follows the music (mel rises 2 dB per EEG µV), evaluated on the block split."""
    root = tmp_path_factory.mktemp("tracking")
    model = _write_model(root / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir))
    summary = evaluate(eval_dir, model, None, root / "eval", progress=False, max_wav_s=3, chunk_windows=3)
    return summary, root / "eval"


def test_evaluate_writes_every_output(tracking_run):
    summary, out = tracking_run
    for name in ("metrics.json", "metrics.md", "reconstruction.png", "reconstruction.wav", "target.wav"):
        assert (out / name).stat().st_size > 0, name
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["results"] == summary["results"]
    assert set(summary["results"]) == {"model", "global_mean", "song_mean", "shuffled_eeg"}
    for row in summary["results"].values():
        assert set(row) == {"mse", "cosine", "pearson", "dynamic_r", "song_accuracy", "frechet"}
    table = (out / "metrics.md").read_text()
    assert "| predictor | MSE (dB²) | cosine | Pearson | dynamic r | song accuracy |" in table
    for title in ("| model |", "| global mean mel |", "| song mean mel (oracle identity) |",
                  "| model on shuffled EEG |"):
        assert title in table
    # song accuracy stands beside its chance level (a 0.083 read as 'no information' was below chance)
    chance, n_songs = summary["song_accuracy_chance"], summary["songs_classified"]
    assert n_songs >= 2 and chance == round(1 / n_songs, 4)
    assert f"chance {chance:.3f}, one of {n_songs} pieces of music" in table, table
    audio, sr = soundfile.read(out / "reconstruction.wav")
    assert sr == melspec.AUDIO_SFREQ and len(audio) >= 2 * sr and np.all(np.isfinite(audio))
    assert summary["split"] == "block" and summary["n_dynamic_blocks"] >= 1


def test_model_that_follows_the_music_beats_every_baseline_on_dynamic_r(tracking_run):
    results = tracking_run[0]["results"]
    assert results["model"]["dynamic_r"] > 0.5
    assert results["model"]["dynamic_r"] > results["shuffled_eeg"]["dynamic_r"] + 0.3
    # the mean windows are the same every second: at most a chance correlation over interior frames
    assert abs(results["global_mean"]["dynamic_r"]) < 0.15
    assert abs(results["song_mean"]["dynamic_r"]) < 0.15
    # identity of the song is obvious from the spectrum: the oracle and the true windows are classified
    assert results["song_mean"]["song_accuracy"] == 1.0
    assert results["song_mean"]["mse"] < results["global_mean"]["mse"]


def test_model_metrics_equal_a_direct_computation(tracking_run, eval_dir):
    """The test windows, targets and model outputs of evaluate are those of the training split."""
    summary = tracking_run[0]
    dataset, split = _test_part(eval_dir)
    assert summary["n_test_windows"] == len(split.test)
    target = dataset.mel(split.test)
    eeg_mean = dataset.eeg(split.test).mean(axis=(1, 2), dtype=np.float64)
    pred = (-60.0 + 2.0 * eeg_mean)[:, None, None] + np.zeros((1, 128, 44))
    model = summary["results"]["model"]
    assert model["mse"] == pytest.approx(metrics.mse(pred, target), rel=1e-5)
    assert model["cosine"] == pytest.approx(metrics.cosine(pred, target), rel=1e-5)
    assert model["pearson"] == pytest.approx(metrics.pearson(pred, target), abs=1e-5)
    position = {int(row): k for k, row in enumerate(split.test)}
    blocks = [[position[int(r)] for r in rows] for rows in dynamic_blocks(dataset.index, split.test,
                                                                          split.test_block)]
    interior = slice(2, 42)
    expected_r = metrics.dynamic_r([np.concatenate(list(pred[b][:, :, interior]), axis=1) for b in blocks],
                                   [np.concatenate(list(target[b][:, :, interior]), axis=1) for b in blocks])
    assert model["dynamic_r"] == pytest.approx(expected_r, abs=1e-5)
    assert summary["n_dynamic_blocks"] == len(blocks) > 1
    train_mean = dataset.mel(split.train).mean(axis=0)
    assert summary["results"]["global_mean"]["mse"] == pytest.approx(
        metrics.mse(np.broadcast_to(train_mean, target.shape), target), rel=1e-5)


def test_shuffled_eeg_is_the_model_on_permuted_windows(tracking_run, eval_dir):
    root = tracking_run[1].parent
    session, info = load_model(root / "model.onnx")
    dataset, split = _test_part(eval_dir)
    eeg = dataset.eeg(split.test)
    targets = np.stack([dataset.index["song"][split.test], dataset.index["start"][split.test]], axis=1)
    order, _ = shuffled_test_order(dataset.index, split.test, seed=0)   # evaluate's: never its own target
    assert not np.any(order == np.arange(len(eeg)))
    assert not np.any(np.all(targets[order] == targets, axis=1))
    shuffled = run_model(session, info, eeg[order])
    direct = run_model(session, info, eeg)
    np.testing.assert_allclose(shuffled, direct[order], atol=1e-4)  # float sums depend on batch layout
    target = dataset.mel(split.test)
    assert tracking_run[0]["results"]["shuffled_eeg"]["mse"] == pytest.approx(
        metrics.mse(shuffled, target), rel=1e-5)


def test_constant_model_scores_like_a_constant(eval_dir, tmp_path):
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -50.0), scale=0.0,
                         metadata=_metadata(eval_dir))
    results = evaluate(eval_dir, model, "block", tmp_path / "eval", progress=False, max_wav_s=1)["results"]
    assert results["model"] == results["shuffled_eeg"]
    assert results["model"]["dynamic_r"] == 0.0
    assert results["model"]["pearson"] == 0.0  # a flat window correlates with nothing


def test_waveform_model_is_scored_through_its_mel(eval_dir, tmp_path):
    t = np.arange(22050) / 22050
    tone = 0.1 * np.sin(2 * np.pi * 440.0 * t)
    model = _write_model(tmp_path / "model.onnx", base=tone, scale=0.0, kind="audio",
                         metadata=_metadata(eval_dir, kind="audio"))
    summary = evaluate(eval_dir, model, "block", tmp_path / "eval", progress=False, max_wav_s=2)
    expected = melspec.mel_db(tone.astype(np.float32))
    dataset, split = _test_part(eval_dir)
    target = dataset.mel(split.test)
    assert summary["results"]["model"]["mse"] == pytest.approx(
        metrics.mse(np.broadcast_to(expected, target.shape), target), rel=1e-4)
    assert summary["wav"]["reconstruction.wav"] == "model audio"
    audio, _ = soundfile.read(tmp_path / "eval" / "reconstruction.wav")
    np.testing.assert_allclose(audio[:22050], tone, atol=1e-6)


def test_subject_input_gets_the_model_position_of_each_subject(eval_dir, tmp_path):
    meta = _metadata(eval_dir)
    meta["input"].update(subject_input=True, subjects=["2", "1"])  # the model's own order
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=0.0, subject_db=10.0,
                         metadata=meta)
    summary = evaluate(eval_dir, model, "block", tmp_path / "eval", progress=False, max_wav_s=1)
    dataset, split = _test_part(eval_dir)
    ids = [dataset.subjects[k] for k in dataset.index["subject"][split.test]]
    pred = np.array([-60.0 + 10.0 * ["2", "1"].index(i) for i in ids])[:, None, None] + np.zeros((1, 128, 44))
    target = dataset.mel(split.test)
    assert summary["results"]["model"]["mse"] == pytest.approx(metrics.mse(pred, target), rel=1e-5)
    assert summary["notes"] == []


def test_split_all_scores_every_window_with_baselines_from_training_data(eval_dir, tmp_path):
    other = _write_folder(tmp_path / "other", seed=1)
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir))
    summary = evaluate(other, model, "all", tmp_path / "eval", progress=False, max_wav_s=1)
    assert summary["n_test_windows"] == len(SONGS) * N_SUBJECTS * SECONDS
    dataset, split = _test_part(eval_dir)
    assert summary["n_reference_windows"] == len(split.train)
    assert summary["results"]["model"]["dynamic_r"] > 0.5
    assert not any("in-sample" in note for note in summary["notes"])


def test_split_all_without_training_data_is_noted_in_sample(eval_dir, tmp_path):
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(tmp_path / "gone"))
    summary = evaluate(eval_dir, model, "all", tmp_path / "eval", progress=False, max_wav_s=1)
    assert summary["n_reference_windows"] == summary["n_test_windows"]
    assert any("in-sample" in note for note in summary["notes"])
    assert "in-sample" in (tmp_path / "eval" / "metrics.md").read_text()


def test_split_all_on_the_training_data_itself_is_noted_in_sample(eval_dir, tmp_path):
    """--split all on the folder the model trained on scores its training windows too: said nowhere."""
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir))
    summary = evaluate(eval_dir, model, "all", tmp_path / "eval", progress=False, max_wav_s=1)
    said = [note for note in summary["notes"] if "the model's own training data" in note]
    assert len(said) == 1 and "its training windows are among the scored ones (in-sample)" in said[0], said


def test_split_all_on_other_music_of_the_same_song_numbers_has_no_song_mean(eval_dir, tmp_path):
    """Songs were matched across folders by number alone: a model trained on another folder's song 21
    (other audio) got the song mean of that other music as the oracle of this one's song 21."""
    import shutil

    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir))
    other = _write_folder(tmp_path / "other", seed=1)   # songs 21, 22, ... of other audio
    summary = evaluate(other, model, "all", tmp_path / "eval", progress=False, max_wav_s=1)
    assert summary["results"]["song_mean"] is None
    assert all(row is None or row["song_accuracy"] is None for row in summary["results"].values())
    said = [note for note in summary["notes"] if "song mean baseline undefined" in note]
    assert len(said) == 1 and "other music than the training data's songs of that number" in said[0], said
    # the same music heard by other listeners (the audio files copied) keeps its oracle
    same = _write_folder(tmp_path / "same", seed=2)
    shutil.rmtree(same / "stimuli")
    shutil.copytree(eval_dir / "stimuli", same / "stimuli")
    summary = evaluate(same, model, "all", tmp_path / "eval-same", progress=False, max_wav_s=1)
    assert summary["results"]["song_mean"] is not None
    assert not any("other music than" in note for note in summary["notes"])


def test_song_split_has_no_oracle_and_no_song_accuracy(tmp_path):
    songs = (21, 22, 23, 24, 25)  # the song split holds out 1 for validation, 1 for test
    data = _write_folder(tmp_path / "five", songs=songs, seconds=8)
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(data, split="song", songs=songs))
    summary = evaluate(data, model, "song", tmp_path / "eval", progress=False, max_wav_s=1)
    assert summary["results"]["song_mean"] is None
    assert all(row is None or row["song_accuracy"] is None for row in summary["results"].values())
    assert summary["results"]["model"]["frechet"] is not None
    assert len(summary["test_songs"]) == 1
    table = (tmp_path / "eval" / "metrics.md").read_text()
    assert "| song mean mel (oracle identity) | n/a | n/a |" in table
    assert "song accuracy undefined" in table


def test_other_split_than_training_is_flagged(eval_dir, tmp_path):
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=0.0,
                         metadata=_metadata(eval_dir, split="block"))
    summary = evaluate(eval_dir, model, "random", tmp_path / "eval", progress=False, max_wav_s=1)
    assert any("differs from the model's training split" in note for note in summary["notes"])


def test_dynamic_blocks_take_one_window_per_second():
    index = np.zeros(12, dtype=[("song", np.int64), ("subject", np.int64), ("start", np.int64)])
    index["start"] = np.arange(12) * 25  # a 0.2-s hop: windows at 0, 25, ..., 275
    rows = np.arange(12)
    blocks = dynamic_blocks(index, rows, np.zeros(12, dtype=np.int64))
    assert [index["start"][b].tolist() for b in blocks] == [[0, 125, 250]]
    index["subject"][6:] = 1
    blocks = dynamic_blocks(index, rows, np.repeat([0, 1], 6))
    assert [index["start"][b].tolist() for b in blocks] == [[0, 125], [150, 275]]


def test_a_phase_scores_windows_that_start_that_much_off_the_training_grid(eval_dir, tmp_path):
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir))
    summary = evaluate(eval_dir, model, None, tmp_path / "eval", progress=False, max_wav_s=1, phase_s=0.5)
    dataset = WindowDataset(eval_dir, songs=list(SONGS), spec=NO_REFERENCE, phase_s=0.5)
    split = make_split(dataset.index, "block", seed=0)
    # scored: the split's test windows at that phase that keep the split's 1-s guard from every window the
    # model trained or chose its epoch on (its own split, at phase 0), whichever listener's
    on_grid = WindowDataset(eval_dir, songs=list(SONGS), spec=NO_REFERENCE)
    trained = make_split(on_grid.index, "block", seed=0)
    seen = on_grid.index[np.concatenate([trained.train, trained.val])]
    test = dataset.index[split.test]
    same_song = test["song"][:, None] == seen["song"][None, :]
    apart = np.abs(test["start"][:, None] - seen["start"][None, :]) >= 2 * 125   # a 1-s window, 1-s guard
    test_rows = split.test[(apart | ~same_song).all(axis=1)]
    assert 0 < len(test_rows) < len(split.test)    # the split at this phase alone came within the guard
    assert summary["phase_s"] == 0.5 and summary["n_test_windows"] == len(test_rows)
    assert any("within the split's 1-s guard" in note for note in summary["notes"]), summary["notes"]
    assert set(dataset.index["start"][test_rows] % 125) == {62}  # half a second (62.5 samples) in
    target = dataset.mel(test_rows)
    pred = (-60.0 + 2.0 * dataset.eeg(test_rows).mean(axis=(1, 2), dtype=np.float64))[:, None, None]
    assert summary["results"]["model"]["mse"] == pytest.approx(metrics.mse(pred + np.zeros((1, 128, 44)),
                                                                          target), rel=1e-5)
    report = (tmp_path / "eval" / "metrics.md").read_text()
    assert "test windows starting 0.5 s off the training grid" in report


def test_cli_prints_the_table(eval_dir, tmp_path, capsys):
    from eegmusic.stream.cli import main

    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir))
    status = main(["evaluate", "--data", str(eval_dir), "--model", str(model), "--split", "block",
                   "--out", str(tmp_path / "eval"), "--no-progress", "--wav-seconds", "1"])
    captured = capsys.readouterr()
    assert status == 0
    assert "| model on shuffled EEG |" in captured.out
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_an_interrupted_evaluate_leaves_the_earlier_results_whole(eval_dir, tmp_path, monkeypatch):
    """Ctrl-C while ``evaluate --overwrite`` wrote its files left its new metrics.md beside the earlier
    run's metrics.json, plot and WAVs, and a fresh --out held metrics.md alone, which blocked the rerun."""
    from eegmusic.offline_training import evaluate as evaluate_module

    names = ("metrics.json", "metrics.md", "reconstruction.png", "reconstruction.wav", "target.wav")
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir))
    out = tmp_path / "eval"
    evaluate(eval_dir, model, None, out, progress=False, max_wav_s=1)
    before = {name: (out / name).read_bytes() for name in names}
    write_wavs = evaluate_module.write_wavs

    def interrupted(folder, *args, **kwargs):   # Ctrl-C once the table and the plot are written
        write_wavs(folder, *args, **kwargs)
        assert (Path(folder) / "metrics.md").is_file() and (Path(folder) / "reconstruction.png").is_file()
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_module, "write_wavs", interrupted)
    for folder in (out, tmp_path / "fresh"):
        with pytest.raises(KeyboardInterrupt):
            evaluate(eval_dir, model, None, folder, progress=False, max_wav_s=1, phase_s=0.5)
    assert {name: (out / name).read_bytes() for name in names} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(names)   # no staging folder left behind
    assert list((tmp_path / "fresh").iterdir()) == []


def test_cli_help_has_an_example(capsys):
    from eegmusic.stream.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "Examples:" in capsys.readouterr().out


def _bad_model(kind, folder, data_dir):
    path = folder / "model.onnx"
    if kind == "missing":
        return folder / "nope.onnx"
    if kind == "not_onnx":
        path.write_bytes(b"this is not an onnx file at all")
    elif kind == "no_metadata":
        _write_model(path, base=np.zeros((128, 44)), scale=0.0, metadata=None)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "does not exist"),
        ("not_onnx", "is not a readable ONNX model"),
        ("no_metadata", "has no 'eegmusic' metadata"),
    ],
)
def test_bad_model_file(kind, message, eval_dir, tmp_path):
    path = _bad_model(kind, tmp_path, eval_dir)
    with pytest.raises(ModelError, match=message) as caught:
        evaluate(eval_dir, path, "block", tmp_path / "eval", progress=False)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_unknown_split(eval_dir, tmp_path):
    model = _write_model(tmp_path / "model.onnx", base=np.zeros((128, 44)), scale=0.0,
                         metadata=_metadata(eval_dir))
    with pytest.raises(ConfigError, match="unknown split 'sideways'; use one of random, block"):
        evaluate(eval_dir, model, "sideways", tmp_path / "eval", progress=False)


def test_data_without_stimuli(tmp_path):
    data = _write_folder(tmp_path / "nostim", stimuli=False)
    model = _write_model(tmp_path / "model.onnx", base=np.zeros((128, 44)), scale=0.0,
                         metadata=_metadata(data))
    with pytest.raises(DataFormatError, match="has no stimulus audio") as caught:
        evaluate(data, model, "block", tmp_path / "eval", progress=False)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("argv_extra", "message"),
    [
        (["--split", "sideways"], "--split invalid choice: 'sideways' (choose from 'random', 'block'"),
        (["--batch-size", "0"], "--batch-size must be at least 1 (got '0')"),
        (["--batch-size", "1e9"], "--batch-size must be an integer (got '1e9')"),   # as train's says it
        (["--phase", "1"], "--phase 1 s must be in [0, 1) (the model's training hop), e.g. --phase 0.5"),
        (["--phase", "-0.2"], "--phase must be in [0, 60] (got '-0.2')"),
    ],
)
def test_cli_bad_input_is_one_line_and_status_2(argv_extra, message, eval_dir, tmp_path, capsys):
    from eegmusic.stream.cli import main

    model = _write_model(tmp_path / "model.onnx", base=np.zeros((128, 44)), scale=0.0,
                         metadata=_metadata(eval_dir))
    status = main(["evaluate", "--data", str(eval_dir), "--model", str(model), "--out",
                   str(tmp_path / "eval"), "--no-progress", *argv_extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and message in err[0]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a /proc file system")
def test_an_out_that_cannot_be_created_is_refused_before_scoring(eval_dir, tmp_path, capsys, monkeypatch):
    """``--out /proc/ev`` passed the option's check (/proc looks writable to root), scored every window,
    then died in a FileNotFoundError traceback at the first mkdir."""
    from eegmusic.offline_training import evaluate as evaluate_module
    from eegmusic.stream.cli import main

    def scored(*args, **kwargs):
        raise AssertionError("scored before --out was checked")

    monkeypatch.setattr(evaluate_module, "evaluate", scored)
    model = _write_model(tmp_path / "model.onnx", base=np.zeros((128, 44)), scale=0.0,
                         metadata=_metadata(eval_dir))
    # /proc looks writable to root only: for any user, the option's check lets it through to the one tested
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)
    status = main(["evaluate", "--data", str(eval_dir), "--model", str(model), "--out", "/proc/eegmusic-ev",
                   "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and "/proc" in err[0], err


def test_griffin_lim_when_the_vocoder_is_absent(monkeypatch, tmp_path):
    import sys

    from eegmusic.offline_training.report import vocode, write_wavs

    monkeypatch.setitem(sys.modules, "eegmusic.decoder.vocoder", None)  # import fails: the fallback path
    t = np.arange(22050) / 22050
    frames = melspec.mel_db((0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32))
    audio, method = vocode(frames)
    assert method == "griffin-lim"
    spectrum = np.abs(np.fft.rfft(audio[2048:-2048]))
    peak_hz = np.argmax(spectrum) * 22050 / len(audio[2048:-2048])
    assert abs(peak_hz - 440.0) < 30.0
    written = write_wavs(tmp_path, frames[None], frames[None])
    assert written == {"target.wav": "griffin-lim", "reconstruction.wav": "griffin-lim"}


def _fif_session(data_dir, folder, labels, extra_uv=0.0):
    """One listener of ``data_dir`` as an MNE FIF recording with a sidecar: the model's channels under
    ``labels`` (which may reorder them and add more), each extra channel noise of ``extra_uv`` µV."""
    import shutil

    import mne

    folder.mkdir()
    rng = np.random.default_rng(5)
    pieces, onsets = [], []
    for song in SONGS:
        eeg = scipy.io.loadmat(data_dir / f"song{song}_Imputed.mat")[f"data{song}"][:, :, 0]
        onsets.append(sum(piece.shape[1] for piece in pieces) / 125.0)
        pieces += [eeg, np.zeros((125, 250))]
        shutil.copy(data_dir / "stimuli" / f"song{song}.wav", folder / f"song{song}.wav")
    model_order = np.concatenate(pieces, axis=1)
    index = {label: k for k, label in enumerate(MODEL_CHANNELS)}
    data = np.stack([model_order[index[label]] if label in index
                     else rng.normal(0.0, extra_uv, model_order.shape[1]) for label in labels])
    raw = mne.io.RawArray(data * 1e-6, mne.create_info(list(labels), 125.0, "eeg"), verbose="error")
    raw.set_annotations(mne.Annotations(onsets, [0.0] * len(SONGS), [f"song{song}" for song in SONGS]))
    raw.save(folder / "P01_raw.fif", verbose="error")
    stimuli = {f"song{song}": f"song{song}.wav" for song in SONGS}
    (folder / "P01_raw.eegmusic.json").write_text(json.dumps({"stimuli": stimuli, "subject": "P01"}))
    return folder / "P01_raw.fif"


def test_a_cap_with_more_channels_feeds_the_model_its_own_by_label(eval_dir, tmp_path):
    """An EGI 129 recording (the model's 125 in another order, plus 4 noisy ones) scores exactly as the
    same EEG recorded with only the model's channels: evaluate takes them by label, as live decoding
    does. It was refused ("evaluate feeds an NMED-T model the data's channels as they are")."""
    # the model reads mostly its first channels: fed the recording's first 125 by position (the noisy
    # extras, then the model's own reversed) it would score about nothing
    weights = np.zeros(125)
    weights[:10] = 12.5
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir), channel_weights=weights)
    exact = _fif_session(eval_dir, tmp_path / "exact", MODEL_CHANNELS)
    labels = ["E125", "E126", "E127", "E128"] + list(reversed(MODEL_CHANNELS))
    wider = _fif_session(eval_dir, tmp_path / "wider", labels, extra_uv=1000.0)
    scores = [evaluate(path, model, "all", tmp_path / f"eval_{path.parent.name}", progress=False,
                       max_wav_s=1)["results"] for path in (exact, wider)]
    assert scores[0]["model"]["dynamic_r"] > 0.5
    assert scores[1] == scores[0]


def test_a_cap_lacking_model_channels_is_refused_naming_them(eval_dir, tmp_path):
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir))
    fewer = _fif_session(eval_dir, tmp_path / "fewer", MODEL_CHANNELS[2:])
    with pytest.raises(DataFormatError, match=r"has 123 channels and lacks 2 of the 125 the model reads "
                                              r"\(E1, E2\); use data with those channels"):
        evaluate(fewer, model, "all", tmp_path / "eval", progress=False, max_wav_s=1)
    assert not (tmp_path / "eval").exists()


def test_the_reconstruction_plot_reads_the_seconds_its_title_names(monkeypatch, tmp_path):
    """Its title said '9-15 s' over a time axis of 0-6 s."""
    import matplotlib

    matplotlib.use("Agg")
    from eegmusic.offline_training.report import plot_reconstruction
    from matplotlib import pyplot as plt

    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)   # keep the figure to read its axes
    windows = np.full((6, melspec.N_MELS, melspec.FRAMES_PER_WINDOW), -40.0, np.float32)
    plot_reconstruction(windows, windows, tmp_path / "r.png", title="song 21, 9-15 s", start_s=9.0)
    axes = drawn[0].axes
    left, right = axes[1].get_xlim()
    assert left == pytest.approx(9.0) and right == pytest.approx(15.0)
    assert "recording" in axes[1].get_xlabel()


def test_the_reconstruction_plot_shows_the_models_score_beside_its_baselines():
    """Its title named the model and the excerpt only: no split, no data, no score, no baseline to read
    the picture against the table the same command printed."""
    import matplotlib.pyplot as plt
    from eegmusic.offline_training.report import draw_reconstruction, reconstruction_title

    summary = {"model_name": "linear", "data": "/tmp/sim/", "split": "block", "n_test_windows": 120,
               "results": {"model": {"dynamic_r": 0.2231}, "global_mean": {"dynamic_r": 0.071},
                           "song_mean": None, "shuffled_eeg": {"dynamic_r": -0.013}}}
    title = reconstruction_title(summary, "song 21, subject S01, 4-8 s")
    assert title == ("linear on sim, block split: song 21, subject S01, 4-8 s\n"
                     "dynamic r over all 120 test windows: model 0.223, shuffled EEG -0.013, "
                     "global mean 0.071, song mean n/a")
    windows = np.full((2, melspec.N_MELS, melspec.FRAMES_PER_WINDOW), -40.0, np.float32)
    fig = draw_reconstruction(windows, windows, title=title, start_s=4.0)
    try:
        assert fig.get_suptitle() == title
    finally:
        plt.close(fig)


def test_the_reconstruction_plot_draws_each_window_over_its_own_second(monkeypatch, tmp_path):
    """Windows drawn end to end at 44 frames (1.02 s) each drifted: six from 6 s ended at 12.13 s."""
    import matplotlib

    matplotlib.use("Agg")
    from eegmusic.offline_training.report import plot_reconstruction
    from matplotlib import pyplot as plt

    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)
    windows = np.full((6, melspec.N_MELS, melspec.FRAMES_PER_WINDOW), -40.0, np.float32)
    plot_reconstruction(windows, windows, tmp_path / "r.png", start_s=6.0)
    axes = drawn[0].axes[1]
    assert axes.get_xlim() == pytest.approx((6.0, 12.0))
    spans = np.array([image.get_extent()[:2] for image in axes.images])
    np.testing.assert_allclose(spans, [[6.0 + k, 7.0 + k] for k in range(6)])
    # windows 1.5 s apart (a hop that does not tile) sit at their own starts
    drawn.clear()
    plot_reconstruction(windows[:3], windows[:3], tmp_path / "r.png", starts_s=[6.0, 7.5, 9.0])
    axes = drawn[0].axes[1]
    assert [image.get_extent()[0] for image in axes.images] == pytest.approx([6.0, 7.5, 9.0])
    assert axes.get_xlim() == pytest.approx((6.0, 10.0))


def test_split_all_takes_the_baselines_from_a_training_recording_file(eval_dir, tmp_path):
    """A model trained on an XDF/FIF file: --split all said its training data "is not available" (it
    looked for a folder) and fitted the baselines in-sample."""
    session = _fif_session(eval_dir, tmp_path / "session", MODEL_CHANNELS)
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(session, songs=()))   # the recording numbers its own
    summary = evaluate(eval_dir, model, "all", tmp_path / "eval", progress=False, max_wav_s=1)
    assert summary["n_reference_windows"] < summary["n_test_windows"], summary["notes"]
    assert not any("in-sample" in note or "not available" in note for note in summary["notes"])


def test_evaluate_words_its_own_fix_for_a_folder_changed_since_training(eval_dir, tmp_path):
    """A folder simulated again with fewer songs got train's "pass one of those" (evaluate has no
    --songs), and a model file naming no training data was "not the model's training data None"."""
    model = _write_model(tmp_path / "model.onnx", base=np.full((128, 44), -60.0), scale=2.0,
                         metadata=_metadata(eval_dir, songs=(21, 22, 23)))
    with pytest.raises(ConfigError) as caught:
        evaluate(eval_dir, model, "block", tmp_path / "eval", progress=False, max_wav_s=1)
    assert str(caught.value) == (f"song 23 not in {eval_dir} (has 21, 22); the folder changed since the "
                                 "model was trained on it: pass --split all to score every window it holds "
                                 "now, or --data the folder the model was trained on")
    meta = _metadata(eval_dir)
    del meta["training"]["data"]
    model = _write_model(tmp_path / "unnamed.onnx", base=np.full((128, 44), -60.0), scale=2.0, metadata=meta)
    notes = evaluate(eval_dir, model, "block", tmp_path / "eval2", progress=False, max_wav_s=1)["notes"]
    assert not any("None" in note for note in notes), notes
    assert (f"scored on {eval_dir}; the model file does not name its training data (unknown), so the split "
            "is of this folder and may not hold out what training did") in notes, notes
