"""``eegmusic train`` stopped while it writes a run's final files, and a run folder that lost its checkpoint.

A Ctrl-C during the final stage of a ``--resume`` removed the earlier run's best.pt, model.onnx and
training curve (its working model) and left its stale metrics.json; the only word was "interrupted".
A person's Ctrl-C cannot be timed to land in that stage, so these tests raise KeyboardInterrupt from a
function of the stage (monkeypatched to do so) or send a real SIGINT during its renames: the same
exception at a known point.
"""

from __future__ import annotations

import json
import shutil
import signal

import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training import train as train_module  # noqa: E402
from eegmusic.offline_training.export import read_metadata  # noqa: E402
from eegmusic.stream import atomic  # noqa: E402
from eegmusic.stream.cli import main  # noqa: E402

from tests.offline_training.test_train import train_args  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FINISHED = ("best.pt", "model.onnx", "training_curve.png", "metrics.json")


@pytest.fixture(scope="module")
def finished_run(sim_dir, tmp_path_factory):
    """A finished one-epoch convnet run (``train_args``), trained once for the module: copy it to use it."""
    from tests.fixtures.threads import torch_threads

    out = tmp_path_factory.mktemp("interrupt") / "run"
    with torch_threads(1):
        assert main(train_args(sim_dir, out, "convnet")) == 0
    return out


def _contents(folder):
    return {name: (folder / name).read_bytes() for name in FINISHED}


def _resume_args(sim_dir, out, epochs="2"):
    args = train_args(sim_dir, out, "convnet", "--resume")
    args[args.index("--epochs") + 1] = epochs
    return args


def _interrupt_at(monkeypatch, where):
    """Make the final stage raise KeyboardInterrupt at ``where``: at the curve (best.pt and model.onnx are
    written by then) or at metrics.json (the whole new set is written, not yet in place)."""
    if where == "curve":
        def curve(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(train_module, "_plot_curve", curve)
        return
    real_write_text = train_module.write_text

    def write_text(path, text):
        if path.name == "metrics.json":
            raise KeyboardInterrupt
        real_write_text(path, text)

    monkeypatch.setattr(train_module, "write_text", write_text)


@pytest.mark.parametrize("where", ["curve", "metrics"])
def test_an_interrupted_resume_keeps_the_earlier_model_and_resume_finishes(where, finished_run, sim_dir,
                                                                           tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = _contents(out)
    _interrupt_at(monkeypatch, where)
    assert main(_resume_args(sim_dir, out)) == 130
    assert sorted(p.name for p in out.iterdir()) == sorted(("config.json", "checkpoint.pt", *FINISHED))
    assert _contents(out) == before   # byte for byte: the earlier model and the metrics that describe it
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "eegmusic train: interrupted", err
    assert err[-2] == (f"eegmusic train: {out}: stopped while writing the run's final files (the earlier "
                       "best.pt, model.onnx, training_curve.png and metrics.json are unchanged); run the "
                       "same command again to finish it (--resume trains no more epochs)"), err
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 2   # the epoch trained

    monkeypatch.undo()   # the advice, followed: the same command finishes the run without training more
    assert main(_resume_args(sim_dir, out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and metrics["epochs_run"] == 2
    assert read_metadata(out / "model.onnx")["training"]["epochs"] == 2
    assert (out / "model.onnx").read_bytes() != before["model.onnx"]
    assert sorted(p.name for p in out.iterdir()) == sorted(("config.json", "checkpoint.pt", *FINISHED))


def test_an_interrupted_new_run_leaves_a_run_stopped_after_its_last_epoch(sim_dir, tmp_path, monkeypatch,
                                                                          capsys):
    """As before: no final file of a new run stays (no metrics.json beside no model), --resume finishes."""
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, "curve")
    assert main(train_args(sim_dir, out, "convnet")) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2:] == [f"eegmusic train: {out}: stopped while writing the run's final files (best.pt and "
                        "model.onnx are not written); add --resume to the same command to finish it",
                        "eegmusic train: interrupted"], err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json"]
    monkeypatch.undo()
    assert main(train_args(sim_dir, out, "convnet", "--resume")) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(("config.json", "checkpoint.pt", *FINISHED))


def test_a_ctrl_c_during_the_renames_lands_after_the_whole_new_set(finished_run, sim_dir, tmp_path,
                                                                     monkeypatch, capsys):
    """A real SIGINT sent as the first file of the new set is renamed into place: it is held until all
    are, so the folder holds the new set whole (metrics.json of the new model), and the note says so."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = _contents(out)
    real_replace = atomic.os.replace
    sent = []

    def replace(source, target):
        if ".staged-" in str(source) and ".staged-" not in str(target) and not sent:   # into the run
            sent.append(target)
            signal.raise_signal(signal.SIGINT)
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace)
    assert main(_resume_args(sim_dir, out)) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert sent and err[-2:] == [f"eegmusic train: {out}: the run's final files were all written before it "
                                 "stopped; it is complete", "eegmusic train: interrupted"], err
    after = _contents(out)
    assert all(after[name] != before[name] for name in ("best.pt", "model.onnx", "metrics.json"))
    metrics = json.loads(after["metrics.json"])
    assert metrics["epochs_run"] == 2 == read_metadata(out / "model.onnx")["training"]["epochs"]
    assert sorted(p.name for p in out.iterdir()) == sorted(("config.json", "checkpoint.pt", *FINISHED))


def test_a_finished_run_without_its_checkpoint_names_a_fix_that_works(finished_run, sim_dir, tmp_path,
                                                                      capsys):
    """--resume said "no epoch of the run ended; drop --resume", and without --resume the run was refused
    ("--resume cannot continue it with these options"): a circle. Both name another --out now, which
    trains; a folder whose run ended no epoch still says to drop --resume."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (out / "checkpoint.pt").unlink()
    before = _contents(out)
    assert main(_resume_args(sim_dir, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"eegmusic train: error: --resume: {out} holds a run's best.pt and model.onnx but not its "
                   "checkpoint.pt, which --resume continues from, so the run cannot go on (its model stays "
                   "usable as it is); to train again, pass another --out"], err
    assert main(train_args(sim_dir, out, "convnet")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"eegmusic train: error: {out} already holds a training run (best.pt, model.onnx); pass "
                   "another --out (it has no checkpoint.pt, so --resume cannot continue it)"], err
    assert _contents(out) == before
    assert main(train_args(sim_dir, tmp_path / "another", "convnet")) == 0   # the fix named

    for name in FINISHED:   # config.json alone: the run ended no epoch, and dropping --resume starts it
        (out / name).unlink()
    assert main(_resume_args(sim_dir, out)) == 2
    assert "holds config.json but no checkpoint.pt (the run ended no epoch" in capsys.readouterr().err
    assert main(train_args(sim_dir, out, "convnet")) == 0


@pytest.mark.parametrize("failing", ["model.onnx", "best.pt", "metrics.json"])
def test_a_full_disk_at_a_resumed_export_keeps_the_earlier_model(failing, finished_run, sim_dir, tmp_path,
                                                                monkeypatch, capsys):
    """A full disk while a resumed run writes any of its final files: one line saying the earlier set is
    unchanged and how to finish (best.pt's and metrics.json's writers said "no best.pt is left" of a
    file that was there). The disk cannot be made to fill at one file of the stage, so that file's writer
    meets ENOSPC from a stand-in for the library call that writes it; the rest is real."""
    import errno
    import os

    import onnx

    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = _contents(out)
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full(*args, **kwargs):
        raise enospc

    if failing == "model.onnx":
        monkeypatch.setattr(onnx, "save", full)
    elif failing == "best.pt":
        real_save = torch.save

        def save(state, path, *args, **kwargs):
            if ".best." in str(path):   # atomic_path's temporary name for best.pt
                raise enospc
            real_save(state, path, *args, **kwargs)

        monkeypatch.setattr(torch, "save", save)
    else:
        real_fsync = atomic.os.fsync

        def fsync(fd):   # write_bytes syncs before its rename; the file's name from the descriptor
            if ".metrics." in os.readlink(f"/proc/self/fd/{fd}"):
                raise enospc
            real_fsync(fd)

        monkeypatch.setattr(atomic.os, "fsync", fsync)
    assert main(_resume_args(sim_dir, out)) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(("config.json", "checkpoint.pt", *FINISHED))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"eegmusic train: error: disk full while writing {out / failing} (No space left on "
                   "device); the earlier best.pt, model.onnx, training_curve.png and metrics.json are "
                   "unchanged; free space, then run the same command again to finish it (--resume trains no "
                   "more epochs)"], err
    assert _contents(out) == before
