"""Which weights a gradient run keeps: the moving average of its weights (``--ema``) and the best epoch
chosen by validation dynamic r (``--select-by dynamic_r``); what each epoch trains on
(``--epoch-fraction``); real training on the simulated folder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training.export import read_metadata  # noqa: E402
from eegmusic.offline_training.loop_regression import validation_dynamic_r  # noqa: E402
from eegmusic.offline_training.metrics import dynamic_r  # noqa: E402
from eegmusic.offline_training.models.registry import load_checkpoint  # noqa: E402
from eegmusic.offline_training.scoring import INTERIOR_FRAMES, concat_frames  # noqa: E402
from eegmusic.stream.cli import main  # noqa: E402

from tests.offline_training.test_train import train_args  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def history(out) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["history"]


def test_ema_validates_and_keeps_the_average_while_training_follows_its_own_weights(sim_dir, tmp_path):
    """Same seed with and without ``--ema``: the training losses (the model's own weights) are equal epoch
    by epoch, so the average never feeds back into training; the validation losses and the kept weights
    (the average's) differ."""
    runs = {}
    for name, extra in (("plain", ()), ("ema", ("--ema", "0.9"))):
        out = tmp_path / name
        args = train_args(sim_dir, out, "convnet", *extra)
        args[args.index("--epochs") + 1] = "2"
        assert main([*args, "--patience", "5"]) == 0
        runs[name] = out
    plain, ema = history(runs["plain"]), history(runs["ema"])
    assert [h["train_loss"] for h in ema] == pytest.approx([h["train_loss"] for h in plain], rel=1e-6)
    for a, b in zip(ema, plain, strict=True):
        assert a["val_loss"] != pytest.approx(b["val_loss"], rel=1e-4)
    kept = {name: load_checkpoint(out / "best.pt")[0].state_dict() for name, out in runs.items()}
    assert any(not torch.allclose(kept["ema"][k].float(), kept["plain"][k].float()) for k in kept["plain"])
    assert json.loads((runs["ema"] / "config.json").read_text())["ema"] == 0.9
    assert read_metadata(runs["ema"] / "model.onnx")["training"]["ema"] == 0.9


def test_select_by_dynamic_r_keeps_the_epoch_of_the_best_validation_dynamic_r(sim_dir, tmp_path):
    out = tmp_path / "run"
    args = train_args(sim_dir, out, "convnet", "--select-by", "dynamic_r", "--patience", "5")
    args[args.index("--epochs") + 1] = "4"
    assert main(args) == 0
    epochs = history(out)
    scores = [h["val_dynamic_r"] for h in epochs]
    assert len(scores) == 4 and all(-1.0 <= r <= 1.0 for r in scores)
    best = json.loads((out / "metrics.json").read_text())["best_epoch"]
    assert best == epochs[int(np.argmax(scores))]["epoch"]
    # on this run the two criteria disagree, so a selection by the loss would fail the line above
    assert best != epochs[int(np.argmin([h["val_loss"] for h in epochs]))]["epoch"]
    assert read_metadata(out / "model.onnx")["training"]["select_by"] == "dynamic_r"


def test_an_epoch_fraction_trains_each_epoch_on_that_share_of_the_windows(sim_dir, tmp_path):
    """``--hop 0.25 --epoch-fraction 0.25``: four times the windows of a 1-s hop, each epoch a quarter."""
    out = tmp_path / "run"
    args = train_args(sim_dir, out, "convnet", "--hop", "0.25", "--epoch-fraction", "0.25", "--patience", "5")
    args[args.index("--epochs") + 1] = "2"
    assert main(args) == 0
    n_train = json.loads((out / "metrics.json").read_text())["n_windows"]["train"]
    assert [h["windows"] for h in history(out)] == [round(0.25 * n_train)] * 2
    assert json.loads((out / "config.json").read_text())["epoch_fraction"] == 0.25
    assert read_metadata(out / "model.onnx")["training"]["epoch_fraction"] == 0.25  # README: "recorded"


def test_validation_dynamic_r_is_the_evaluations_dynamic_r_on_one_recording(rng):
    """On the windows of one recording in time order, the selection criterion equals
    :func:`offline_training.metrics.dynamic_r` of the concatenated interior frames."""
    target = rng.normal(size=(12, 16, 44))
    pred = 0.5 * target + rng.normal(size=target.shape) + 3.0  # an offset the centring removes
    group = torch.zeros(12, dtype=torch.long)
    got = validation_dynamic_r(torch.from_numpy(pred).float(), torch.from_numpy(target).float(), group)

    block = [concat_frames(x[:, :, INTERIOR_FRAMES]) for x in (pred, target)]
    assert got == pytest.approx(dynamic_r([block[0]], [block[1]]), abs=1e-5)
    # two recordings: each centred on its own means, so a per-recording offset changes nothing
    pred2 = np.concatenate([pred, pred + 40.0])
    target2 = np.concatenate([target, target])
    group2 = torch.tensor([0] * 12 + [1] * 12)
    both = validation_dynamic_r(torch.from_numpy(pred2).float(), torch.from_numpy(target2).float(), group2)
    assert both == pytest.approx(got, abs=1e-5)


def test_ridge_says_the_epoch_options_it_ignores_and_does_not_record_them(sim_dir, tmp_path, caplog):
    """``--arch linear --loss l1 --augment …`` fitted the very same ridge as without them, and its
    metrics.json and model metadata recorded them as the recipe; said nowhere."""
    import json
    import logging

    import onnx

    runs = {}
    for name, extra in (("plain", ()), ("options", ("--loss", "l1", "--augment", "shift=25,dropout=0.9",
                                                    "--lr", "9"))):
        with caplog.at_level(logging.WARNING, logger="eegmusic.offline_training.train"):
            assert main(train_args(sim_dir, tmp_path / name, "linear", *extra)) == 0
        runs[name] = tmp_path / name
    said = [r.getMessage() for r in caplog.records if "closed-form" in r.getMessage()]
    assert said == ["--arch linear is fitted in one closed-form step and does not use --loss --augment "
                    "--lr: ignored, and recorded as not used"], said
    metrics = {name: json.loads((run / "metrics.json").read_text()) for name, run in runs.items()}
    assert metrics["options"]["val_mse"] == metrics["plain"]["val_mse"]   # the same ridge
    assert metrics["options"]["loss"] is None
    props = onnx.load(runs["options"] / "model.onnx").metadata_props
    meta = json.loads({p.key: p.value for p in props}["eegmusic"])
    assert meta["training"]["loss"] is None and meta["training"]["augment"] is None
    # a gradient model records its recipe
    assert main(train_args(sim_dir, tmp_path / "cnn", "cnn", "--loss", "l1")) == 0
    assert json.loads((tmp_path / "cnn" / "metrics.json").read_text())["loss"] == "l1"


def test_a_train_config_refuses_a_decay_of_one():
    """The API refuses what the CLI's range refuses: decay 1 would never move the average."""
    from eegmusic.offline_training.train import TrainConfig
    from eegmusic.stream.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--ema must be a decay in \[0, 1\), e\.g\. 0\.9 \(got 1\.0\)"):
        TrainConfig(data="x", model="convnet", ema=1.0).check()


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("convnet", ("--ema", "1.0"), r"--ema must be in \[0, 0\.9999\] \(got '1\.0'\)"),
        ("convnet", ("--ema", "-0.1"), r"--ema must be in \[0, 0\.9999\] \(got '-0\.1'\)"),
        ("linear", ("--ema", "0.9"), r"--ema applies to the Adam epochs of regression models; model 'linear' "
                                     r"\(closed form\) does not use it, drop --ema"),
        ("linear", ("--select-by", "dynamic_r"), r"model 'linear' \(closed form\) does not use it, drop "
                                                 r"--select-by"),
        ("convnet", ("--select-by", "r"), r"--select-by invalid choice: 'r'"),
        ("convnet", ("--epoch-fraction", "0"), r"--epoch-fraction must be in \[0\.001, 1\] \(got '0'\)"),
        ("linear", ("--epoch-fraction", "0.5"), r"--epoch-fraction applies to the Adam epochs of regression "
                                                r"models; model 'linear' \(closed form\) does not use it"),
    ],
)
def test_bad_weight_options_are_one_line_errors(model, extra, message, sim_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(sim_dir, out, model, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err
    assert not (out / "model.onnx").exists()
