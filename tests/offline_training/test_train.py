"""``eegmusic train`` end to end on the simulated folder: every model, resume, bad inputs."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training.export import read_metadata, run_onnx  # noqa: E402
from eegmusic.offline_training.models.registry import ALL_MODELS, load_checkpoint  # noqa: E402
from eegmusic.stream.cli import main  # noqa: E402

from tests.fixtures.threads import torch_threads  # noqa: E402

TINY = {
    "linear": {"lags": [0, 8]},
    "cnn": {"filters": [2, 2, 2, 2, 2], "dense": 8},
    "rcnn": {"conv_channels": 8, "hidden": 8},
    "encdec": {"conv_channels": 8, "hidden": 8, "latent": 8},
    "transformer": {"d_model": 16, "n_heads": 2, "n_layers": 1, "ff": 16},
    "convnet": {"channels": [8, 8, 8, 8], "hidden": 16},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train_args(data, out, model="cnn", *extra):
    return [
        "train",
        "--data",
        str(data),
        "--arch",
        model,
        "--split",
        "block",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--no-progress",
        "--arch-config",
        json.dumps(TINY[model]),
        *extra,
    ]


@pytest.fixture(scope="module")
def convnet_run(sim_dir, tmp_path_factory):
    """``train_args``' one-epoch convnet run, trained once for the module: (run folder, what train printed).
    Read it, or copy it to resume."""
    import contextlib
    import io

    printed = io.StringIO()
    out = tmp_path_factory.mktemp("convnet") / "run"
    # one thread, as one_torch_thread, which is set up only after a module's fixtures
    with torch_threads(1), contextlib.redirect_stdout(printed):
        assert main(train_args(sim_dir, out, "convnet")) == 0
    return out, printed.getvalue()


@pytest.mark.parametrize("model", list(TINY))
def test_train_writes_a_complete_run(model, sim_dir, tmp_path, capsys, rng, request):
    extra = ["--subject-conditioning"] if model in ("cnn", "linear") else []
    if model == "convnet":  # train_args' convnet run: the module's
        out, printed = request.getfixturevalue("convnet_run")
    else:
        out = tmp_path / "run"
        assert main(train_args(sim_dir, out, model, *extra)) == 0
        printed = capsys.readouterr().out
    assert "model.onnx" in printed
    # a closed-form fit has no epochs ("best epoch 0"): its line names the penalty validation chose
    if model == "linear":
        alpha = json.loads((out / "metrics.json").read_text())["ridge"]["alpha"]
        assert f"ridge penalty {alpha:g}, validation MSE" in printed and "best epoch" not in printed, printed
    else:
        assert "best epoch" in printed, printed
    for name in ("config.json", "best.pt", "metrics.json", "training_curve.png", "model.onnx"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == model and np.isfinite(metrics["val_mse"]) and np.isfinite(metrics["test_mse"])
    assert metrics["n_windows"]["train"] > metrics["n_windows"]["test"] > 0
    if model != "linear":
        assert (out / "checkpoint.pt").is_file() and len(metrics["history"]) == 1
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == model and config["model_config"] == TINY[model]

    meta = read_metadata(out / "model.onnx")
    assert meta["model"]["name"] == model
    assert meta["training"]["songs"] == [21, 22] and meta["training"]["split"] == "block"
    assert meta["training"]["resampler"] == "centred"   # EEG above 125 Hz read on time (modelfile.RESAMPLER)
    assert meta["input"]["subject_input"] == bool(extra)
    assert meta["input"]["subjects"] == (["S01", "S02", "S03"] if extra else [])
    assert meta["evaluation"]["test_mse"] == pytest.approx(metrics["test_mse"])

    # the ONNX file is the best checkpoint's model, features and scaling included
    net, _ = load_checkpoint(out / "best.pt", model_name=model)
    eeg = rng.normal(0.0, 20.0, (3, 125, 125)).astype(np.float32)
    subject = np.array([0, 1, 2])
    with torch.no_grad():
        expected = net(torch.tensor(eeg), torch.tensor(subject) if extra else None).numpy()
    assert np.max(np.abs(run_onnx(out / "model.onnx", eeg, subject) - expected)) < 1e-3


def test_linear_beats_nothing_on_training_data(sim_dir, tmp_path):
    """The ridge fit must lower the error below the mean-spectrum prediction on its own training part."""
    out = tmp_path / "linear"
    assert main(train_args(sim_dir, out, "linear")) == 0
    ridge = json.loads((out / "metrics.json").read_text())["ridge"]
    net, _ = load_checkpoint(out / "best.pt")
    mean_only = float(torch.mean(net.mel_std**2))  # the per-band variance: MSE of predicting the band means
    assert ridge["train_mse"] < mean_only


def test_resume_continues_and_checks_the_config(sim_dir, convnet_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(convnet_run[0], out)  # a run folder may be moved: it resumes where it now lies
    first = torch.load(out / "checkpoint.pt", weights_only=False)
    assert first["epoch"] == 1
    args = train_args(sim_dir, out, "convnet")
    args[args.index("--epochs") + 1] = "2"
    assert main([*args, "--resume"]) == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0] == pytest.approx(first["history"][0])
    capsys.readouterr()

    assert main([*args, "--resume", "--lr", "0.01"]) == 2
    assert "option 'lr' changed (None" in capsys.readouterr().err
    # a run written before an option existed resumes at that option's default, and only at it
    saved = json.loads((out / "config.json").read_text())
    del saved["epoch_fraction"]
    (out / "config.json").write_text(json.dumps(saved))
    args[args.index("--epochs") + 1] = "3"
    assert main([*args, "--resume", "--epoch-fraction", "0.5"]) == 2
    assert "option 'epoch_fraction' changed (1.0 in" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert [h["epoch"] for h in json.loads((out / "metrics.json").read_text())["history"]] == [1, 2, 3]
    other = train_args(sim_dir, out, "rcnn")
    assert main([*other, "--resume"]) == 2
    assert "is from model 'convnet', not 'rcnn'; use --arch convnet" in capsys.readouterr().err
    assert main(train_args(sim_dir, out, "convnet")) == 2
    refusal = "already holds a training run (checkpoint.pt, best.pt, model.onnx); pass --resume"
    assert refusal in capsys.readouterr().err


def test_resume_with_fewer_epochs_than_already_ran_is_refused(sim_dir, tmp_path, capsys):
    """--epochs is the total to reach: a --resume asking for fewer than the run already trained recorded
    the smaller number beside the epochs that ran; it is refused in one line, and the run is untouched."""
    out = tmp_path / "run"
    args = train_args(sim_dir, out, "convnet")
    args[args.index("--epochs") + 1] = "2"
    assert main(args) == 0
    before = {name: (out / name).read_bytes() for name in ("config.json", "metrics.json", "model.onnx")}
    capsys.readouterr()
    args[args.index("--epochs") + 1] = "1"
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and (f"--resume --epochs 1: the run in {out} already ran 2 epochs; --epochs is the "
                              "total to reach: pass --epochs 2 or more") in err[0], err
    assert before == {name: (out / name).read_bytes() for name in before}


def test_resume_from_another_working_directory_knows_the_same_data(sim_dir, tmp_path, monkeypatch, capsys):
    """config.json kept --data as typed and --resume resolved it in the new working directory: "option
    'data' changed ('sim' …, now 'x/sim')", of the very same folder, with advice that could not work."""
    import os

    out = tmp_path / "run"
    monkeypatch.chdir(sim_dir.parent)
    assert main(train_args(sim_dir.name, out, "convnet")) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = train_args(os.path.relpath(sim_dir, elsewhere), out, "convnet")
    args[args.index("--epochs") + 1] = "2"
    assert main([*args, "--resume"]) == 0, capsys.readouterr().err
    assert [h["epoch"] for h in json.loads((out / "metrics.json").read_text())["history"]] == [1, 2]
    # another folder is still another folder
    other = tmp_path / "other"
    shutil.copytree(sim_dir, other)
    args = train_args(str(other), out, "convnet")
    args[args.index("--epochs") + 1] = "3"
    assert main([*args, "--resume"]) == 2 and "option 'data' changed" in capsys.readouterr().err


def test_init_into_the_folder_of_its_own_best_pt_is_refused(sim_dir, convnet_run, tmp_path, capsys):
    """``--init pre/best.pt --out pre`` wrote the new run's weights over the pretrained ones (a run folder
    may hold only best.pt: it is all --init needs); now any weights file in --out refuses a new run."""
    folder = tmp_path / "pre"
    folder.mkdir()
    shutil.copy(convnet_run[0] / "best.pt", folder / "best.pt")
    before = (folder / "best.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--data", str(sim_dir), "--init", str(folder / "best.pt"), "--out", str(folder),
                 "--epochs", "1", "--batch-size", "16", "--no-progress"]) == 2
    err = capsys.readouterr().err
    # --resume is not offered: a fine-tuning run (--init) is never resumed
    assert "already holds a training run (best.pt); pass another --out" in err, err
    assert "\n" not in err.strip(), err
    assert (folder / "best.pt").read_bytes() == before
    assert sorted(path.name for path in folder.iterdir()) == ["best.pt"]


def test_a_folder_of_evaluate_results_is_refused_as_out(sim_dir, tmp_path, capsys):
    """train --out into a folder of evaluate results replaced evaluate's metrics.json (exit 0); evaluate
    refuses the reverse (a training run's folder) already."""
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "metrics.json").write_text('{"results": {}}\n')
    (folder / "metrics.md").write_text("| predictor |\n")
    assert main(train_args(sim_dir, folder, "linear")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"--out {folder} holds an evaluate result (metrics.json, metrics.md) and the run's metrics.json " \
           "would replace it" in err, err
    assert (folder / "metrics.json").read_text() == '{"results": {}}\n'
    assert sorted(path.name for path in folder.iterdir()) == ["metrics.json", "metrics.md"]


def test_a_folder_of_the_users_files_of_a_runs_names_is_refused_as_out(sim_dir, tmp_path, capsys):
    """train --out into a folder holding a config.json and a metrics.json of the user's replaced both (exit
    0): only weight files counted as a run there. A run that ended no epoch leaves its own config.json,
    which the next run may replace (below)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text('{"my": "precious"}\n')
    (folder / "metrics.json").write_text("mine\n")
    assert main(train_args(sim_dir, folder, "linear")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"--out {folder} holds config.json, metrics.json of no eegmusic training run, which the run " \
           f"would replace; train into another folder, e.g. --out {tmp_path / 'mine-run'}" in err, err
    assert (folder / "config.json").read_text() == '{"my": "precious"}\n'
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "metrics.json"]
    # a run's own config.json, left by a run that ended no epoch: a new run goes ahead there
    (folder / "metrics.json").unlink()
    run = tmp_path / "run"
    assert main(train_args(sim_dir, run, "linear")) == 0
    shutil.copy(run / "config.json", folder / "config.json")
    assert main(train_args(sim_dir, folder, "linear")) == 0
    assert (folder / "model.onnx").is_file()


@pytest.mark.parametrize("split", ["subject", "subject-block"])
def test_subject_conditioning_on_held_out_listeners_is_refused(split, sim_dir, tmp_path, capsys):
    """The held-out listeners of these splits have no trained subject parameters: they were decoded with an
    untrained intercept (linear: 0 dB, validation MSE 1709 against 573 without) or a random embedding."""
    args = train_args(sim_dir, tmp_path / "run", "linear", "--subject-conditioning")
    args[args.index("--split") + 1] = split
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"--subject-conditioning with --split {split}: the held-out listeners have no trained subject " \
           "parameters" in err, err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def no_stimuli_dir(sim_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("no_stimuli")
    shutil.copy(sim_dir / "song21_Imputed.mat", folder / "song21_Imputed.mat")
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"--arch": "gru"},
            "unknown model 'gru'; use one of linear, cnn, rcnn, encdec, transformer, convnet",
        ),
        ({"--split": "sideways"}, "--split invalid choice: 'sideways' \\(choose from 'random', 'block', "
                                  "'subject', 'song', 'subject-block'\\)"),
        ({"--split": "song"}, r"split 'song' leaves the validation part empty \(2 songs; needs at least 3\)"),
        ({"--split": "all"}, "--split invalid choice: 'all'"),
        ({"--loss": "huber"}, "--loss invalid choice: 'huber'"),
        ({"--model": "linear"}, "--model is a model file in every command; name the architecture with "),
        ({"--model-config": "{}"}, "--model-config is now --arch-config"),
        ({"--subjects": "9"}, r"listener 9 is not in .* \(it has listeners 1\.\.[0-9]+\)"),
        ({"--epochs": "0"}, "--epochs must be at least 1"),
        # batches of one window were all skipped (batch norm needs 2): an untrained model, exit 0
        ({"--batch-size": "1"}, r"--batch-size 1 makes batches of 1 window, and model 'cnn' trains on "
                                r"batches of at least 2 \(smaller ones are skipped\): it would train "
                                r"nothing; pass --batch-size 2 or more"),
        ({"--arch-config": "{nope"}, "--arch-config is not valid JSON"),
        # past Python's JSON reader: a ValueError and a RecursionError escaped as tracebacks
        ({"--arch-config": '{"dense": ' + "9" * 5000 + "}"},
         r"--arch-config is not valid JSON \(a number of more digits than Python reads\)"),
        ({"--arch-config": "[" * 5000 + "]" * 5000},
         r"--arch-config is not valid JSON \(nested too deep to read\)"),
        ({"--arch-config": '{"widht": 3}'}, "bad configuration for model 'cnn'"),
        ({"--data": "NO_STIMULI"}, "song 21 in .* has no stimulus audio"),
        ({"--data": "/nonexistent/folder"}, "/nonexistent/folder: not found; pass an NMED-T folder"),
    ],
)
def test_bad_inputs_are_one_line_errors(change, message, sim_dir, no_stimuli_dir, tmp_path, capsys):
    args = train_args(sim_dir, tmp_path / "run", "cnn")
    for option, value in change.items():
        value = str(no_stimuli_dir) if value == "NO_STIMULI" else value
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err
    assert not (tmp_path / "run" / "model.onnx").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(sim_dir, tmp_path, capsys):
    assert main([*train_args(sim_dir, tmp_path / "run", "linear"), "--device", "cuda"]) == 2
    assert "--device cuda asked but no CUDA GPU is visible" in capsys.readouterr().err


@pytest.mark.parametrize("loss", ["pearson", "mse+pearson"])
def test_val_loss_of_a_pearson_loss_is_that_loss(loss, sim_dir, tmp_path):
    """metrics.json ``val_loss`` is the loss trained on (the best epoch's), not the validation MSE."""
    out = tmp_path / "run"
    assert main(train_args(sim_dir, out, "cnn", "--loss", loss)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"] == loss
    assert metrics["val_loss"] == pytest.approx(metrics["best_val_loss"], rel=1e-4)
    assert metrics["val_loss"] != pytest.approx(metrics["val_mse"], rel=1e-3)


def test_training_curve_marks_the_kept_epoch_on_whole_epochs_and_names_its_data():
    """The curve read epochs 1.25, 1.5, …, did not mark which epoch's weights model.onnx holds, and its
    title named no data."""
    import matplotlib.pyplot as plt
    from eegmusic.offline_training.train import TrainConfig, curve_title, draw_curve

    history = [{"epoch": k, "train_loss": 200.0 - 20 * k, "val_loss": 205.0 - 15 * k} for k in (1, 2, 3)]
    fig = draw_curve(history, "t", "mse", best_epoch=2)
    try:
        ax = fig.axes[0]
        fig.canvas.draw()
        ticks = [tick for tick in ax.get_xticks() if ax.get_xlim()[0] <= tick <= ax.get_xlim()[1]]
        assert ticks == [1, 2, 3]
        kept = [line for line in ax.lines if list(line.get_xdata()) == [2, 2]]
        assert len(kept) == 1
        assert "weights kept: epoch 2" in [t.get_text() for t in ax.get_legend().get_texts()]
    finally:
        plt.close(fig)
    config = TrainConfig(data="/tmp/sim/", model="convnet", split="subject")
    assert curve_title(config, "mse") == "convnet on sim (subject split, mse loss)"
    assert curve_title(config) == "convnet on sim (subject split)"


def test_ridge_figure_says_its_penalty_axis_is_logarithmic():
    import matplotlib.pyplot as plt
    from eegmusic.offline_training.train import draw_ridge

    fig = draw_ridge({"alpha": 30.0, "val_mse": {"1.0": 170.0, "30.0": 163.0, "1000.0": 164.0}}, "t")
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel()
    finally:
        plt.close(fig)


def test_training_curve_is_labelled_by_its_loss():
    from eegmusic.offline_training.train import loss_axis_label

    assert loss_axis_label("mse") == "loss (dB²)"
    assert loss_axis_label("l1") == "loss (dB)"
    assert "dB" not in loss_axis_label("pearson") and "r" in loss_axis_label("pearson")
    assert "dB" not in loss_axis_label("mse+pearson")


@pytest.mark.parametrize("model", ["linear", "convnet"])
def test_a_full_disk_at_the_export_leaves_a_run_to_finish(model, sim_dir, tmp_path, capsys, monkeypatch):
    """A full disk at the ONNX export was a traceback that left config.json and best.pt, for which a rerun
    was refused, and --resume too (a linear run has no checkpoint): one line now, and the folder is a run
    stopped after its last epoch, which the same command (linear) or --resume (checkpoint.pt) finishes."""
    import errno
    import os

    import onnx

    out = tmp_path / "run"
    real_save = onnx.save

    def full(*args, **kwargs):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(onnx, "save", full)
    assert main(train_args(sim_dir, out, model)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    fix = ("run the same command again" if model == "linear"
           else "add --resume to the same command to finish it")
    assert len(err) == 1 and err[0].endswith(
        f"error: disk full while writing {out / 'model.onnx'} (File too large); best.pt and model.onnx are "
        f"not written; free space, then {fix}"), err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json"] + ([] if model == "linear" else ["checkpoint.pt"]))
    monkeypatch.setattr(onnx, "save", real_save)
    assert main([*train_args(sim_dir, out, model), *([] if model == "linear" else ["--resume"])]) == 0
    assert read_metadata(out / "model.onnx")["model"]["name"] == model and (out / "best.pt").is_file()


def test_resume_on_data_with_more_listeners_is_refused(sim_dir, tmp_path, capsys):
    """--resume --subject-conditioning after the data folder was re-simulated with 3 listeners instead of
    2 was load_state_dict's size-mismatch traceback: one line naming both counts now."""
    from eegmusic.replay.simulate import simulate

    two = simulate(tmp_path / "two", n_songs=2, n_subjects=2, seconds=20.0, seed=0, progress=False)
    data = tmp_path / "data"
    data.symlink_to(two, target_is_directory=True)
    out = tmp_path / "run"
    args = train_args(data, out, "cnn", "--subject-conditioning")
    assert main(args) == 0
    capsys.readouterr()
    data.unlink()
    data.symlink_to(sim_dir, target_is_directory=True)   # the same --data, now 3 listeners
    args[args.index("--epochs") + 1] = "2"
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        f"--resume: the run in {out} was trained on other data (2 listeners (--subject-conditioning) in the "
        f"checkpoint, 3 in --data {data}); resume on the data it was trained on, or drop --resume and train "
        "into a new --out"), err


@pytest.mark.parametrize("arch", sorted(ALL_MODELS))
def test_the_config_a_json_refusal_suggests_is_one_of_that_architectures(arch, sim_dir, tmp_path, capsys):
    """A bad ``--arch-config`` suggested '{"dense": 64}' whatever ``--arch`` was, a cnn key every other
    architecture refuses (a helper's option fuzz). The example is the architecture's own, and passes its
    check."""
    from eegmusic.offline_training.train import check_model_config

    assert main(["train", "--data", str(sim_dir), "--arch", arch, "--out", str(tmp_path / "run"),
                 "--arch-config", "{nope"]) == 2
    err = capsys.readouterr().err.strip()
    example = re.search(r"pass e\.g\. '(\{.*\})' for --arch " + arch + "$", err)
    assert example is not None and len(err.splitlines()) == 1, err
    suggested = json.loads(example.group(1))
    assert suggested, err
    check_model_config(arch, suggested)
