"""``train --val-data``: validation on a later excerpt of the same songs and listeners."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch")

from eegmusic.offline_training.dataset import EXCERPT_SONG_KEY, WindowDataset  # noqa: E402
from eegmusic.offline_training.export import read_metadata  # noqa: E402
from eegmusic.offline_training.inference import load_model, run_model  # noqa: E402
from eegmusic.stream.cli import main  # noqa: E402

from tests.fixtures.threads import torch_threads  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LATER_START_S = 14.0


@pytest.fixture(scope="module")
def early_dir(sim_dir, tmp_path_factory):
    """The first 14 s of ``sim_dir``'s songs 21 and 22, heard by three listeners (seed 0): the training
    data. (``sim_dir`` itself holds all 20 s of its music, which no later excerpt could follow.)"""
    from eegmusic.replay.simulate import simulate

    audio = [sim_dir / "stimuli" / "song21.wav", sim_dir / "stimuli" / "song22.wav"]
    return simulate(tmp_path_factory.mktemp("early"), n_subjects=3, seconds=LATER_START_S, seed=0,
                    audio_files=audio, music_start_s=0.0, progress=False)


@pytest.fixture(scope="module")
def later_dir(sim_dir, tmp_path_factory):
    """Songs 21 and 22 of ``early_dir`` from 14 s on (the 6 s after it), heard again by its three
    listeners (seed 0: the same heads), with their own background EEG."""
    from eegmusic.replay.simulate import simulate

    out = tmp_path_factory.mktemp("later")
    audio = [sim_dir / "stimuli" / "song21.wav", sim_dir / "stimuli" / "song22.wav"]
    return simulate(out, n_subjects=3, seconds=20.0 - LATER_START_S, seed=0, audio_files=audio,
                    music_start_s=LATER_START_S, progress=False)


def _args(data, out, *extra, arch="linear", config=None):
    return ["train", "--data", str(data), "--arch", arch, "--split", "block", "--out", str(out),
            "--epochs", "1", "--batch-size", "16", "--no-progress", "--target-offset", "0.1",
            "--arch-config", json.dumps(config or {"lags": [0, 8]}), *extra]


def test_an_appended_excerpt_keeps_every_row_and_keys_its_songs_apart(early_dir, later_dir):
    early = WindowDataset(early_dir, target_offset_s=0.1)
    later = WindowDataset(later_dir, subjects=["S03", "S01"], target_offset_s=0.1)
    joined, rows = early.with_excerpt(later)

    n = len(early.index)
    np.testing.assert_array_equal(joined.index[:n], early.index)
    np.testing.assert_array_equal(rows, np.arange(n, n + len(later.index)))
    assert joined.songs == early.songs and joined.subjects == early.subjects
    assert sorted(set(joined.index["song"][rows])) == [21 + EXCERPT_SONG_KEY, 22 + EXCERPT_SONG_KEY]
    # the later dataset's listener codes (S03 = 0, S01 = 1) are the early one's (S01 = 0, S03 = 2)
    np.testing.assert_array_equal(joined.index["subject"][rows], np.where(later.index["subject"] == 0, 2, 0))
    np.testing.assert_array_equal(joined.eeg(rows), later.eeg(np.arange(len(later.index))))
    np.testing.assert_allclose(joined.mel(rows), later.mel(np.arange(len(later.index))), atol=1e-5)
    np.testing.assert_array_equal(joined.eeg(np.arange(n)), early.eeg(np.arange(n)))
    # another target offset reads the later excerpt's own stimulus too
    shifted = joined.with_target_offset(0.2)
    np.testing.assert_allclose(shifted.mel(rows), later.with_target_offset(0.2).mel(np.arange(len(rows))),
                               atol=1e-5)


def test_the_summary_names_an_earlier_excerpt_earlier(early_dir, later_dir, tmp_path):
    """An excerpt before the training one is unseen music too, and taken; the summary called it "later"."""
    from eegmusic.replay.manifest import MANIFEST, excerpt_name

    assert excerpt_name(early_dir, later_dir) == "later excerpt"
    assert excerpt_name(later_dir, early_dir) == "earlier excerpt"
    recording = tmp_path / "recording"  # no simulation manifest: where its music starts is unknown
    shutil.copytree(later_dir, recording, ignore=shutil.ignore_patterns(MANIFEST))
    assert excerpt_name(early_dir, recording) == "excerpt"


@pytest.fixture(scope="module")
def early_ridge(early_dir, tmp_path_factory):
    """``_args``' ridge on ``early_dir``, validated on its own split (no --val-data): read only."""
    out = tmp_path_factory.mktemp("early-ridge") / "run"
    with torch_threads(1):  # as one_torch_thread, which is set up only after a module's fixtures
        assert main(_args(early_dir, out)) == 0
    return out


def test_validation_is_the_later_excerpt_and_training_is_unchanged(early_dir, later_dir, early_ridge,
                                                                    tmp_path, capsys):
    assert main(_args(early_dir, tmp_path / "later", "--val-data", str(later_dir))) == 0
    assert f"val (later excerpt {later_dir})" in capsys.readouterr().out
    before = json.loads((early_ridge / "metrics.json").read_text())
    after = json.loads((tmp_path / "later" / "metrics.json").read_text())
    assert after["n_windows"]["train"] == before["n_windows"]["train"]
    assert after["n_windows"]["test"] == before["n_windows"]["test"]
    later = WindowDataset(later_dir, target_offset_s=0.1)
    assert after["n_windows"]["val"] == len(later.index)  # block: every song and listener validates

    # the validation MSE the run reports is its model's on the later excerpt's windows, in dB²
    session, info = load_model(tmp_path / "later" / "model.onnx")
    rows = np.arange(len(later.index))
    mse = float(np.mean((run_model(session, info, later.eeg(rows)) - later.mel(rows)) ** 2))
    assert after["val_mse"] == pytest.approx(mse, rel=1e-3)
    assert abs(before["val_mse"] - mse) > 1e-3 * mse
    meta = read_metadata(tmp_path / "later" / "model.onnx")
    assert meta["training"]["val_data"] == str(later_dir.resolve())

    # scoring the model on the folder its choices were made on says its scores are not held out
    from eegmusic.offline_training.evaluate import evaluate

    for split in ("all", "block"):
        report = evaluate(later_dir, tmp_path / "later" / "model.onnx", split, tmp_path / f"ev-{split}")
        assert any("is the model's --val-data" in note and "not held out" in note
                   for note in report["notes"]), (split, report["notes"])
    report = evaluate(early_dir, tmp_path / "later" / "model.onnx", "block", tmp_path / "ev-train")
    assert not any("--val-data" in note for note in report["notes"])


def test_the_auto_offset_is_chosen_on_the_later_excerpt(early_dir, later_dir, tmp_path):
    """Poison the early excerpt's validation targets: with --val-data the lag must not move."""
    from eegmusic.offline_training.splits import make_split

    args = [a for a in _args(early_dir, tmp_path / "a", "--val-data", str(later_dir)) if a != "0.1"]
    args.remove("--target-offset")
    assert main(args) == 0
    chosen = json.loads((tmp_path / "a" / "metrics.json").read_text())["target_offset_choice"]

    # the same early EEG with the stimulus of every split-validation second replaced by noise
    poisoned = tmp_path / "poisoned"
    shutil.copytree(early_dir, poisoned)
    dataset = WindowDataset(early_dir)
    split = make_split(dataset.index, "block", seed=0)
    for song in (21, 22):
        path = poisoned / "stimuli" / f"song{song}.wav"
        audio, rate = soundfile.read(path)
        for start in dataset.index["start"][split.val][dataset.index["song"][split.val] == song]:
            a = int(start / 125 * rate)
            audio[a:a + rate] = np.random.default_rng(int(start)).normal(0, 0.3, len(audio[a:a + rate]))
        soundfile.write(path, audio, rate)
    args = [a if a != str(early_dir) else str(poisoned) for a in args]
    args[args.index("--out") + 1] = str(tmp_path / "b")
    assert main(args) == 0
    again = json.loads((tmp_path / "b" / "metrics.json").read_text())["target_offset_choice"]
    assert again["chosen_s"] == chosen["chosen_s"]
    assert again["validation_dynamic_r"] == pytest.approx(chosen["validation_dynamic_r"], abs=1e-6)

    # without --val-data the same poisoning does move what the choice reads (the check can fail)
    plain = [a for a in args if a not in ("--val-data", str(later_dir))]
    plain[plain.index("--out") + 1] = str(tmp_path / "c")
    assert main(plain) == 0
    unpoisoned = [a if a != str(poisoned) else str(early_dir) for a in plain]
    unpoisoned[unpoisoned.index("--out") + 1] = str(tmp_path / "d")
    assert main(unpoisoned) == 0
    read = [json.loads((tmp_path / k / "metrics.json").read_text())["target_offset_choice"] for k in "cd"]
    assert read[0]["validation_dynamic_r"] != pytest.approx(read[1]["validation_dynamic_r"], abs=1e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--val-data", "/nonexistent/later"], "--val-data /nonexistent/later does not exist; pass a later "
                                               "excerpt of the same songs and listeners"),
        (["--val-data", "LATER", "--unseen-song-check"], "--val-data cannot be combined with "
                                                         "--unseen-song-check"),
        (["--val-data", "ONE_SONG", "--songs", "22"],
         r"--val-data .* has no windows of the validation part's songs \[22\] heard by S01, S02, S03"),
    ],
)
def test_bad_val_data_is_a_one_line_error(extra, message, sim_dir, early_dir, later_dir, tmp_path_factory,
                                          tmp_path, capsys):
    from eegmusic.replay.simulate import simulate

    if "ONE_SONG" in extra:  # a later excerpt of song 21 only
        one = simulate(tmp_path_factory.mktemp("one"), n_subjects=3, seconds=4.0, seed=0,
                       audio_files=[sim_dir / "stimuli" / "song21.wav"], music_start_s=LATER_START_S,
                       progress=False)
        extra = [str(one) if e == "ONE_SONG" else e for e in extra]
    extra = [str(later_dir) if e == "LATER" else e for e in extra]
    assert main(_args(early_dir, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("music", "kwargs", "message"), [
    ("other", {}, r"was simulated from other music than --data \(song 21: other\.wav against song21\.wav\)"),
    ("same", {"seed": 1}, r"holds other listeners than --data \(simulated with seed 1, --data with seed 0\)"),
    ("same", {"music_start_s": 0.0}, r"is the same excerpt as --data \(music from 0 s in both\)"),
    ("same", {"music_start_s": 2.0}, r"overlaps --data's excerpt \(music 2-6 s against 0-4 s\)"),
])
def test_val_data_of_other_music_or_listeners_is_refused(music, kwargs, message, sim_dir, tmp_path, capsys):
    """Two --music simulations of one training run: the later one must share songs, listeners and not
    the excerpt (other music was taken, and chose the epochs and the lag on unrelated songs)."""
    import shutil

    from eegmusic.replay.simulate import simulate

    own = [sim_dir / "stimuli" / "song21.wav"]
    data = simulate(tmp_path / "early", n_subjects=3, seconds=4.0, seed=0, audio_files=own, progress=False)
    if music == "other":
        own = [shutil.copy(own[0], tmp_path / "other.wav")]
    later = simulate(tmp_path / "later", n_subjects=3, seconds=4.0, audio_files=own,
                     **{"seed": 0, "music_start_s": 8.0, **kwargs}, progress=False)
    assert main(_args(data, tmp_path / "run", "--val-data", str(later))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert "simulate the later excerpt with --data's --music, --seed and --montage" in err
    assert not (tmp_path / "run").exists()


def test_a_skip_network_keeps_its_start_when_the_later_excerpt_says_so(early_dir, later_dir, early_ridge,
                                                                       tmp_path):
    """A wrecking learning rate trains a convnet whose epochs lose to its skip path on the later excerpt."""
    skip = {"channels": [8, 8, 8, 8], "hidden": 16,
            "skip": {"name": "linear", "checkpoint": str(early_ridge / "best.pt")}}
    assert main(_args(early_dir, tmp_path / "net", "--val-data", str(later_dir), "--lr", "3", "--epochs", "2",
                      arch="convnet", config=skip)) == 0
    assert json.loads((tmp_path / "net" / "metrics.json").read_text())["best_epoch"] == 0


def test_only_an_xdf_val_data_is_read_as_a_session_file(tmp_path):
    """A ``--val-data`` folder with a dot in its name is that folder alone; scoring its parent folder is
    not scoring the validation data (until this fix any suffix made it a session file in its parent)."""
    from eegmusic.offline_training.evaluate import validation_folders

    assert validation_folders(str(tmp_path / "later.v2")) == [str(tmp_path / "later.v2")]
    session = tmp_path / "sessions" / "listener.XDF"
    assert validation_folders(str(session)) == [str(session), tmp_path / "sessions"]
    assert validation_folders(None) == [None]
