"""What ``train`` and ``evaluate`` tell the user: one line naming the problem and a fix the command accepts,
given before any data is read where the input allows it.

Each case was found by an audit: ``train --init`` a missing, empty, junk file, a folder (called "not
found") or a closed-form model was refused only after the data and seven ridge fits; an explicit ``--arch``
other than the ``--init`` model's was silently ignored; ``--augment shift=1,shift=2`` was taken; evaluate
on data too short for the split advised ``--split random`` and then ``--hop``, which evaluate lacks;
train on a few seconds sent ``--split block`` to ``--split random`` and back, then spoke of "1 training
windows for 1 processes"; and a folder holding a ``linear`` run advised ``--resume``, which is refused.
"""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")

from eegmusic.stream.errors import ConfigError, DataFormatError  # noqa: E402

from tests.faults.conftest import assert_one_line_error  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONVNET = json.dumps({"channels": [4, 4, 4, 4], "hidden": 8})
LINEAR = json.dumps({"lags": [0, 8]})
QUICK = ["--epochs", "1", "--batch-size", "16", "--no-progress", "--target-offset", "0", "--subjects", "1"]
DATA_READ = "the data was read"


@pytest.fixture
def no_data(monkeypatch):
    """Reading any window dataset stops the run with one line: a refusal given instead came before it, and
    a run that gives this line passed every check made before the data."""
    from eegmusic.offline_training import dataset

    def refuse(*args, **kwargs):
        raise DataFormatError(DATA_READ)

    monkeypatch.setattr(dataset, "WindowDataset", refuse)


def _train(data, out, *extra):
    return ["train", "--data", data, "--out", out, *QUICK, *extra]


@pytest.fixture(scope="module")
def runs(sim_dir, tmp_path_factory):
    """A tiny ``convnet`` run and a ``linear`` run on the simulated folder (one listener, one epoch)."""
    from eegmusic.stream.cli import main

    folder = tmp_path_factory.mktemp("advice_runs")
    for arch, config in (("convnet", CONVNET), ("linear", LINEAR)):
        args = _train(sim_dir, folder / arch, "--arch", arch, "--arch-config", config)
        assert main([str(a) for a in args]) == 0
    return folder


@pytest.fixture(scope="module")
def short_dirs(tmp_path_factory):
    """Simulated sessions of 3 and 5 s (one song, one listener): too short for a block split."""
    from eegmusic.replay.simulate import simulate

    return {seconds: simulate(tmp_path_factory.mktemp(f"short{seconds}"), n_songs=1, n_subjects=1,
                              seconds=float(seconds), seed=0, progress=False) for seconds in (3, 5)}


# ---- 1: --init (and --resume's checkpoint) are read before the data --------------------------------------
@pytest.mark.parametrize(("make", "needles"), [
    (lambda tmp, runs: tmp / "nonexistent.onnx", ["nonexistent.onnx: not found"]),
    (lambda tmp, runs: _write(tmp / "empty.onnx", b""), ["empty.onnx is an empty file"]),
    (lambda tmp, runs: _write(tmp / "junk.onnx", bytes(range(256)) * 3), ["junk.onnx: unreadable ONNX file"]),
    (lambda tmp, runs: _folder(tmp / "models"), ["models is a folder, not a model file",
                                                 "pass a model.onnx or a run's best.pt"]),
    (lambda tmp, runs: runs / "linear" / "model.onnx", ["a 'linear' model cannot be fine-tuned"]),
], ids=["missing", "empty", "junk", "folder", "linear"])
def test_a_bad_init_is_refused_before_the_data(make, needles, runs, sim_dir, cli, tmp_path, no_data):
    init = make(tmp_path, runs)
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--arch", "convnet", "--init", init))
    line = assert_one_line_error(status, err, f"--init {init}", *needles)
    assert DATA_READ not in line
    assert not (tmp_path / "run").exists()


def test_init_of_a_run_folder_names_its_model_file_and_that_one_is_taken(runs, sim_dir, cli, tmp_path,
                                                                        no_data):
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--init", runs / "convnet"))
    assert_one_line_error(status, err, "is a folder, not a model file",
                          f"--init {runs / 'convnet' / 'model.onnx'}")
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--init", runs / "convnet" / "model.onnx"))
    assert_one_line_error(status, err, DATA_READ)  # the advice passed every check made before the data


def test_resume_with_an_unreadable_checkpoint_is_refused_before_the_data(runs, sim_dir, cli, tmp_path,
                                                                         no_data):
    run = tmp_path / "run"
    shutil.copytree(runs / "convnet", run)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    status, _, err = cli(*_train(sim_dir, run, "--arch", "convnet", "--arch-config", CONVNET, "--resume"))
    assert_one_line_error(status, err, f"checkpoint {run / 'checkpoint.pt'} is unreadable")


# ---- 2: an explicit --arch must be the --init model's ----------------------------------------------------
def test_an_arch_other_than_the_init_models_is_refused(runs, sim_dir, cli, tmp_path, no_data):
    init = runs / "convnet" / "model.onnx"
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--arch", "cnn", "--init", init))
    assert_one_line_error(status, err, "--arch cnn differs from the architecture of --init", "('convnet')",
                          "drop --arch or pass --arch convnet")
    for arch in (["--arch", "convnet"], []):  # both fixes pass every check made before the data
        status, _, err = cli(*_train(sim_dir, tmp_path / "run", *arch, "--init", init))
        assert_one_line_error(status, err, DATA_READ)


def test_train_help_states_the_arch_default_with_init(cli):
    status, out, _ = cli("train", "--help")
    assert status == 0
    assert "default: cnn; with --init, the pretrained model's" in " ".join(out.split())


# ---- 3: --augment names each entry once ------------------------------------------------------------------
def test_an_augment_entry_given_twice_is_refused(sim_dir, cli, tmp_path, no_data):
    from eegmusic.offline_training.augment import parse_augment

    with pytest.raises(ConfigError, match="gives shift twice"):
        parse_augment("shift=1,dropout=0.1,shift=2")
    args = _train(sim_dir, tmp_path / "run", "--arch", "convnet", "--augment")
    status, _, err = cli(*args, "shift=1,shift=2")
    assert_one_line_error(status, err, "--augment gives shift twice in 'shift=1,shift=2'", "e.g. 'shift=2'")
    status, _, err = cli(*args, "shift=2")
    assert_one_line_error(status, err, DATA_READ)


# ---- 4: evaluate's advice on data too short for the split is evaluate's ----------------------------------
def test_evaluate_on_data_too_short_for_the_split_advises_split_all(runs, short_dirs, cli, tmp_path):
    model = runs / "linear" / "model.onnx"
    status, _, err = cli("evaluate", "--data", short_dirs[3], "--model", model, "--out", tmp_path / "ev",
                         "--no-progress")
    line = assert_one_line_error(status, err, "split 'block' leaves", "score every window with --split all")
    assert "--hop" not in line and "--split random" not in line
    status, _, err = cli("evaluate", "--data", short_dirs[3], "--model", model, "--out", tmp_path / "ev",
                         "--no-progress", "--split", "all")
    assert status == 0, err


# ---- 5: train's advice on a few seconds is not circular, and plain ---------------------------------------
def test_train_on_three_seconds_names_no_split_that_fails_too(short_dirs, cli, tmp_path):
    args = _train(short_dirs[3], tmp_path / "run", "--arch", "linear", "--arch-config", LINEAR)
    status, _, err = cli(*args, "--split", "block")
    line = assert_one_line_error(status, err, "split 'block' leaves the train part empty",
                                 "the data gives 3 windows of 1 s", "use longer recordings")
    assert "--split random" not in line  # it leaves 1 training window: refused too
    status, _, err = cli(*args, "--split", "random")
    line = assert_one_line_error(status, err, "gives only 3 windows of 1 s", "keeps 1 of them for training",
                                 "train needs at least 2: record longer")
    assert "processes" not in line


def test_train_on_five_seconds_advises_random_which_trains_without_sending_back(short_dirs, cli, tmp_path,
                                                                               caplog):
    args = _train(short_dirs[5], tmp_path / "run", "--arch", "linear", "--arch-config", LINEAR)
    status, _, err = cli(*args, "--split", "block")
    assert_one_line_error(status, err, "split 'block' leaves the validation part empty", "or --split random")
    args[args.index("--target-offset"):args.index("--target-offset") + 2] = []  # the default: auto, or 0
    status, _, err = cli(*args, "--split", "random")
    assert status == 0, err
    warning = [r.getMessage() for r in caplog.records if "target offset 0 s, not chosen" in r.getMessage()]
    assert warning and "--split block" not in warning[0], warning  # block was just refused for these data
    assert "use longer recordings" in warning[0]


# ---- 6: a used --out offers --resume only where it continues that run -------------------------------------
def test_a_folder_holding_a_linear_run_does_not_advise_resume(runs, sim_dir, cli, tmp_path):
    run = tmp_path / "lin"
    shutil.copytree(runs / "linear", run)
    args = _train(sim_dir, run, "--arch", "linear", "--arch-config", LINEAR)
    status, _, err = cli(*args)
    line = assert_one_line_error(status, err, f"{run} already holds a training run", "pass another --out",
                                 "--resume cannot continue it")
    assert "pass --resume" not in line
    status, _, err = cli(*args, "--resume")  # what the old advice led to
    assert_one_line_error(status, err, "cannot be resumed")


def test_a_folder_holding_a_resumable_run_still_advises_resume(runs, sim_dir, cli, tmp_path, no_data):
    run = tmp_path / "conv"
    shutil.copytree(runs / "convnet", run)
    args = _train(sim_dir, run, "--arch", "convnet", "--arch-config", CONVNET)
    status, _, err = cli(*args)
    assert_one_line_error(status, err, "pass --resume to continue it or another --out")
    status, _, err = cli(*args, "--resume")
    assert_one_line_error(status, err, DATA_READ)  # --resume passed every check made before the data
    status, _, err = cli(*_train(sim_dir, run, "--arch", "convnet", "--init", runs / "convnet" / "best.pt"))
    line = assert_one_line_error(status, err, "already holds a training run", "pass another --out")
    assert "pass --resume" not in line  # a fine-tuning run cannot be resumed


def _write(path, content: bytes):
    path.write_bytes(content)
    return path


def _folder(path):
    path.mkdir()
    return path
