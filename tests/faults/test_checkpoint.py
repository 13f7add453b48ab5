"""A checkpoint is data, never code: crafted pickles are refused before anything in them runs.

Each case plants a ``checkpoint.pt`` whose pickle would run something when unpickled with
``weights_only=False`` (``os.system`` touching a marker file, ``exec``, ``subprocess``, a class
instance, ``eval``). Loading it, directly or through ``eegmusic train --resume``, must leave the
marker file absent and end in one line.
"""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training.models.registry import plain_values, read_checkpoint  # noqa: E402
from eegmusic.stream.errors import ModelError  # noqa: E402

from tests.faults.conftest import assert_one_line_error, run_cli  # noqa: E402


class _Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


class _Exec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


class _Subprocess:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import subprocess

        return subprocess.call, (["touch", str(self.marker)],)


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",)


class Harmless:  # any class instance: weights_only refuses the global it names
    pass


def _payload(kind, marker):
    payloads = {
        "os.system": _Shell(marker), "exec": _Exec(marker), "subprocess": _Subprocess(marker),
        "eval": _Eval(marker), "class": Harmless(),
    }
    return payloads[kind]


KINDS = ["os.system", "exec", "subprocess", "eval", "class"]


@pytest.mark.parametrize("place", ["top", "state_dict", "history", "optimizer"])
@pytest.mark.parametrize("kind", KINDS)
def test_malicious_checkpoint_runs_nothing(kind, place, tmp_path):
    marker = tmp_path / "pwned"
    content = {"model": "cnn", "model_config": {}, "state_dict": {"w": torch.zeros(2)}, "history": [],
               "optimizer": {}}
    payload = _payload(kind, marker)
    if place == "top":
        content["extra"] = payload
    elif place == "state_dict":
        content["state_dict"]["w"] = payload
    elif place == "history":
        content["history"] = [{"epoch": 1, "val_loss": payload}]
    else:
        content["optimizer"] = {"state": {0: payload}}
    path = tmp_path / "checkpoint.pt"
    torch.save(content, path)
    with pytest.raises(ModelError) as caught:
        read_checkpoint(path)
    assert not marker.exists(), "the checkpoint ran code"
    message = str(caught.value)
    assert "\n" not in message and "could run code" in message and str(path) in message


@pytest.mark.parametrize("kind", ["os.system", "class"])
def test_raw_pickle_instead_of_torch_zip_runs_nothing(kind, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"model": "cnn", "state_dict": {}, "x": _payload(kind, marker)}))
    with pytest.raises(ModelError) as caught:
        read_checkpoint(path)
    assert not marker.exists() and "\n" not in str(caught.value)


@pytest.mark.parametrize("content,message", [
    (b"", "unreadable: it is empty"),
    (b"RIFF\x24\x00\x00\x00WAVE", "unreadable: it is an audio file; pass a run's best.pt"),   # was IndexError
    (b"\x08\x07\x12\x07pytorch", "unreadable: it is no file torch.save writes"),   # a model.onnx's start
    (b"PK\x03\x04 truncated zip", "unreadable"),
    (b"\x80\x04K\x01.", "unreadable|not an eegmusic checkpoint"),  # a pickled int (legacy format)
    ("list", "not an eegmusic checkpoint"),
    ("no_state", "not an eegmusic checkpoint"),
    ("model_not_str", "names its model with a"),
    ("unknown_model", "unknown model 'gru'"),
    ("state_not_dict", "malformed state_dict"),
])
def test_corrupt_checkpoint_is_one_line(content, message, tmp_path):
    path = tmp_path / "checkpoint.pt"
    shapes = {"list": [1, 2], "no_state": {"model": "cnn"}, "model_not_str": {"model": 5, "state_dict": {}},
              "unknown_model": {"model": "gru", "state_dict": {}},
              "state_not_dict": {"model": "cnn", "state_dict": [1]}}
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(shapes[content], path)
    with pytest.raises(ModelError, match=message) as caught:
        read_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_plain_values_makes_numpy_loadable(tmp_path):
    import numpy as np

    content = plain_values({"model": "cnn", "state_dict": {}, "best_val": np.float64(1.5),
                            "history": [{"val_loss": np.float32(2.0), "n": np.int64(3)}],
                            "stats": np.arange(3.0)})
    path = tmp_path / "checkpoint.pt"
    torch.save(content, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["best_val"] == 1.5 and type(loaded["best_val"]) is float
    assert loaded["history"][0]["n"] == 3
    assert torch.equal(loaded["stats"], torch.arange(3.0, dtype=torch.float64))


# ---- through the command: train --resume on a planted run folder ---------------------------------------
TINY = {"filters": [2, 2, 2, 2, 2], "dense": 8}


def _train_args(data, out, *extra):
    """A tiny run on one participant (a third of the windows of all three: what resume checks is the same)."""
    return ["train", "--data", str(data), "--arch", "cnn", "--split", "block", "--out", str(out),
            "--epochs", "1", "--batch-size", "16", "--no-progress", "--arch-config", json.dumps(TINY),
            "--subjects", "1", *extra]


@pytest.fixture(scope="module")
def trained_run(sim_dir, tmp_path_factory):
    """One tiny cnn run (1 epoch) shared by the resume cases; copy it before changing it."""
    import io
    from contextlib import redirect_stdout

    from eegmusic.stream.cli import main

    out = tmp_path_factory.mktemp("faults_run") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with redirect_stdout(io.StringIO()):
            assert main(_train_args(sim_dir, out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _copy(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize("kind", ["os.system", "class"])
def test_resume_refuses_a_planted_checkpoint(kind, trained_run, sim_dir, tmp_path, capsys):
    run = _copy(trained_run, tmp_path)
    marker = tmp_path / "pwned"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["extra"] = _payload(kind, marker)
    torch.save(state, run / "checkpoint.pt")
    before = sorted(p.name for p in run.iterdir())
    status, _, err = run_cli(_train_args(sim_dir, run, "--resume", "--epochs", "2"), capsys)
    assert_one_line_error(status, err, "could run code")
    assert not marker.exists()
    assert sorted(p.name for p in run.iterdir()) == before


def test_resume_of_a_checkpoint_with_damaged_tensor_bytes_is_one_line(trained_run, sim_dir, tmp_path, capsys):
    """torch.load reads the bytes of a tensor record as they are: 8 bytes of 0xff in one (a fuzzing helper's
    case) resumed into losses of NaN, exit 0, and a metrics.json holding bare NaN. Each record of torch's
    zip archive carries a CRC, which says so."""
    import zipfile

    run = _copy(trained_run, tmp_path)
    checkpoint = run / "checkpoint.pt"
    with zipfile.ZipFile(checkpoint) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)   # the largest tensor's bytes
    data = bytearray(checkpoint.read_bytes())
    at = record.header_offset + 30 + len(record.filename) + len(record.extra) + record.file_size // 2
    data[at:at + 8] = b"\xff" * 8
    checkpoint.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    status, _, err = run_cli(_train_args(sim_dir, run, "--resume", "--epochs", "2"), capsys)
    assert_one_line_error(status, err, f"checkpoint {checkpoint} is damaged ({record.filename} fails its "
                                       "checksum); use the run's other checkpoint (best.pt or checkpoint.pt)")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_reads_its_own_checkpoint_with_weights_only(trained_run, tmp_path):
    state = torch.load(trained_run / "checkpoint.pt", weights_only=True)   # raises if not plain
    assert state["model"] == "cnn" and state["epoch"] == 1


@pytest.mark.parametrize("config_text,message", [
    ("{not json", "not readable JSON"),
    ("\xff\xfe garbage", "not readable JSON"),
    ("[1, 2, 3]", "holds a list"),
    ("null", "holds a NoneType"),
    ('"a string"', "holds a str"),
    ('{"model": "nonexist"}', "names model 'nonexist', which no --arch is"),   # it blamed the checkpoint
    ('{"model": 7}', "names model 7, which no --arch is"),
])
def test_resume_with_a_corrupt_config_is_one_line(config_text, message, trained_run, sim_dir, tmp_path,
                                                   capsys):
    run = _copy(trained_run, tmp_path)
    (run / "config.json").write_bytes(config_text.encode("latin-1"))
    status, _, err = run_cli(_train_args(sim_dir, run, "--resume", "--epochs", "2"), capsys)
    assert_one_line_error(status, err, message)


def test_resume_accepts_a_moved_run_and_the_data_spelled_differently(trained_run, sim_dir, tmp_path, capsys,
                                                                      monkeypatch):
    moved = _copy(trained_run, tmp_path)          # another folder than the one the run was made in
    monkeypatch.chdir(sim_dir.parent)
    spelled = f"./{sim_dir.name}/"                 # the same data folder, relative, trailing slash
    torch.set_num_threads(1)
    status, out, err = run_cli(_train_args(spelled, moved, "--resume", "--epochs", "2"), capsys)
    assert status == 0, err
    history = json.loads((moved / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def _set_epoch(state):
    state["epoch"] = -5


def _drop_params(state):
    for group in state["optimizer"]["param_groups"]:
        del group["params"]


def _reshape_a_weight(state):
    key = next(k for k, v in state["state_dict"].items() if v.ndim == 2)
    state["state_dict"][key] = torch.zeros(3, 3)


@pytest.mark.parametrize(("change", "words"), [
    (_set_epoch, "holds a training state that cannot be resumed (ValueError: epoch -5)"),
    (_drop_params, "holds a training state that cannot be resumed (KeyError"),
])
def test_resume_of_a_checkpoint_with_a_damaged_training_state_is_one_line(change, words, trained_run, sim_dir,
                                                                          tmp_path, capsys):
    """Hand-edited or damaged values a weights-only checkpoint can hold: each was a traceback (ValueError
    from the epoch loop, KeyError 'params' from the optimiser, torch's size mismatch), and --init of a
    best.pt whose configuration holds an infinite size an OverflowError."""
    run = _copy(trained_run, tmp_path)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, run / "checkpoint.pt")
    status, _, err = run_cli(_train_args(sim_dir, run, "--resume", "--epochs", "2"), capsys)
    assert_one_line_error(status, err, f"{run / 'checkpoint.pt'} {words}")


def _infinite_size(state):
    state["model_config"]["dense"] = float("inf")


@pytest.mark.parametrize(("change", "words"), [
    (_infinite_size, "--init {best}: bad configuration of its 'cnn' model (cannot convert float infinity"),
    (_reshape_a_weight, "checkpoint {best} holds weights that do not fit its model (Error(s) in loading"),
])
def test_init_of_a_checkpoint_its_model_cannot_take_is_one_line(change, words, trained_run, sim_dir, tmp_path,
                                                                capsys):
    """A best.pt whose configuration holds an infinite size (OverflowError) or a weight of another shape
    (torch's size mismatch): tracebacks from --init."""
    best = tmp_path / "best.pt"
    state = torch.load(trained_run / "best.pt", weights_only=True)
    change(state)
    torch.save(state, best)
    status, _, err = run_cli(["train", "--data", str(sim_dir), "--init", str(best), "--out",
                              str(tmp_path / "tuned"), "--epochs", "1", "--no-progress"], capsys)
    assert_one_line_error(status, err, words.format(best=best))
