"""``--target-offset auto``: the lag is chosen on the validation part and never reads the test part.

The folder is built so that the EEG answers the music 0.15 s late: every 0.25 s of each song has its
own loudness, and every channel carries that loudness 0.15 s after it is heard. A decoder whose
target ends at the window's end cannot see the last 0.15 s of music in the EEG; an offset of at least
0.15 s can.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import scipy.io
import soundfile
from eegmusic.decoder import melspec
from eegmusic.offline_training.dataset import WindowDataset
from eegmusic.offline_training.splits import Split, make_split
from eegmusic.offline_training.target_lag import choose_target_offset
from eegmusic.stream.errors import ConfigError

SONGS = (21, 22)
N_SUBJECTS = 2
SECONDS = 60
DELAY_S = 0.15
CANDIDATES = (0.0, 0.1, 0.2, 0.3)


@pytest.fixture(scope="module")
def delayed_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lag") / "data"
    (folder / "stimuli").mkdir(parents=True)
    rng = np.random.default_rng(3)
    sr = melspec.AUDIO_SFREQ
    for song in SONGS:
        loudness = rng.uniform(0.05, 1.0, SECONDS * 4)  # one value per 0.25 s
        audio = 0.3 * rng.normal(size=SECONDS * sr) * np.repeat(loudness, sr // 4 + 1)[: SECONDS * sr]
        soundfile.write(folder / "stimuli" / f"song{song}.wav", audio.astype(np.float32), sr)
        heard = np.repeat(loudness, 125 // 4 + 1)[: SECONDS * 125]
        delay = int(round(DELAY_S * 125))
        response = np.concatenate([np.full(delay, heard[0]), heard[:-delay]])
        eeg = 10.0 * response[None, :, None] + rng.normal(0, 0.5, (125, SECONDS * 125, N_SUBJECTS))
        scipy.io.savemat(folder / f"song{song}_Imputed.mat",
                         {f"data{song}": eeg, "fs": 125.0, f"subs{song}": np.arange(1, N_SUBJECTS + 1)})
    return folder


class PoisonedTest:
    """A dataset whose test targets are garbage, and which records every row it is asked for."""

    def __init__(self, inner, test_rows, read):
        self.inner, self.test_rows, self.read = inner, np.asarray(test_rows), read
        self.index, self.hop_s = inner.index, inner.hop_s

    def eeg(self, rows):
        self.read.update(np.atleast_1d(rows).tolist())
        return self.inner.eeg(rows)

    def mel(self, rows):
        rows = np.atleast_1d(rows)
        self.read.update(rows.tolist())
        out = self.inner.mel(rows)
        poisoned = np.isin(rows, self.test_rows)
        out[poisoned] = np.random.default_rng(0).uniform(-80, 20, out[poisoned].shape)
        return out

    def with_target_offset(self, offset):
        return PoisonedTest(self.inner.with_target_offset(offset), self.test_rows, self.read)


def test_auto_lag_finds_the_response_delay_on_validation(delayed_dir):
    dataset = WindowDataset(delayed_dir)
    split = make_split(dataset.index, "block", seed=0)
    choice = choose_target_offset(dataset, split, candidates=CANDIDATES)
    assert choice.offset_s >= DELAY_S  # a lag shorter than the response loses the last frames
    assert choice.scores[choice.offset_s] > choice.scores[0.0] + 0.02
    assert choice.n_val_windows <= len(split.val)


def test_auto_lag_never_reads_the_test_part(delayed_dir):
    dataset = WindowDataset(delayed_dir)
    split = make_split(dataset.index, "block", seed=0)
    clean = choose_target_offset(dataset, split, candidates=CANDIDATES)
    read: set[int] = set()
    poisoned = choose_target_offset(PoisonedTest(dataset, split.test, read), split, candidates=CANDIDATES)
    assert poisoned.offset_s == clean.offset_s
    assert poisoned.scores == clean.scores
    assert read and not read & set(split.test.tolist())
    assert read <= set(split.train.tolist()) | set(split.val.tolist())


def test_auto_lag_without_a_validation_part_is_a_one_line_error(delayed_dir):
    dataset = WindowDataset(delayed_dir)
    split = make_split(dataset.index, "block", seed=0)
    no_val = Split(split.train, np.empty(0, dtype=np.int64), split.test, split.test_block)
    with pytest.raises(ConfigError, match="validation part, and this split has none") as error:
        choose_target_offset(dataset, no_val)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("flag", [["--target-offset", "auto"], []], ids=["explicit", "default"])
def test_train_cli_with_auto_offset_records_the_choice_in_the_model(flag, delayed_dir, tmp_path, capsys):
    """``auto`` is also the default: ``train`` with no ``--target-offset`` picks the lag on validation."""
    from eegmusic.decoder.modelfile import read_model_info
    from eegmusic.stream.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", str(delayed_dir), "--arch", "linear", "--out", str(out),
                 *flag, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "chosen on the validation part" in printed
    info = read_model_info(out / "model.onnx")
    choice = info.metadata["training"]["target_offset"]
    assert info.target_offset_s == choice["chosen_s"] >= DELAY_S
    assert choice["validation_dynamic_r"] and not choice["method"].startswith("fallback")
    assert json.loads((out / "config.json").read_text())["target_offset_s"] == "auto"
    assert info.metadata["baselines"]["computed_on"] == "training part"


UNSCORABLE = ["--split", "random", "--seed", "1"]
"""A random split of ``sim_dir`` whose validation seconds are all apart (checked in the tests)."""


def _assert_nothing_to_score(sim_dir):
    """The precondition of the fallback tests: ``UNSCORABLE`` leaves no 2-s validation stretch."""
    dataset = WindowDataset(sim_dir)
    split = make_split(dataset.index, "random", seed=1)
    with pytest.raises(ConfigError, match="no 2-s stretch"):
        choose_target_offset(dataset, split)


def test_default_offset_falls_back_to_0_with_one_warning_where_no_lag_can_be_scored(sim_dir, tmp_path,
                                                                                     capsys, caplog):
    from eegmusic.decoder.modelfile import read_model_info
    from eegmusic.stream.cli import main

    _assert_nothing_to_score(sim_dir)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="eegmusic.offline_training.target_lag"):
        assert main(["train", "--data", str(sim_dir), "--arch", "linear", "--out", str(out), *UNSCORABLE,
                     "--no-progress"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "eegmusic.offline_training.target_lag"]
    assert len(warnings) == 1, warnings
    assert "not chosen" in warnings[0] and "--target-offset SECONDS" in warnings[0]
    assert "target offset 0 s, not chosen" in capsys.readouterr().out
    info = read_model_info(out / "model.onnx")
    assert info.target_offset_s == 0.0
    assert info.metadata["training"]["target_offset"]["method"].startswith("fallback: ")


def test_explicit_auto_where_no_lag_can_be_scored_is_refused_in_one_line(sim_dir, tmp_path, capsys):
    from eegmusic.stream.cli import main

    _assert_nothing_to_score(sim_dir)
    out = tmp_path / "run"
    capsys.readouterr()
    status = main(["train", "--data", str(sim_dir), "--arch", "linear", "--out", str(out), *UNSCORABLE,
                   "--target-offset", "auto", "--no-progress"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, lines
    assert "--target-offset auto found no 2-s stretch" in lines[0] and "--target-offset SECONDS" in lines[0]
    assert not out.exists()


def test_the_proxy_ridge_without_validation_takes_the_smallest_penalty(rng):
    """The lag proxy solves only the smallest penalty: what the whole grid picks on training data."""
    import torch
    from eegmusic.offline_training.models.linear import RIDGE_GRID, Linear
    from eegmusic.offline_training.target_lag import PROXY_LAGS

    eeg = torch.tensor(rng.normal(0.0, 10.0, (40, 8, 125)), dtype=torch.float32)
    mel = torch.tensor(rng.normal(-40.0, 10.0, (40, 128, 44)), dtype=torch.float32)
    model = Linear(lags=PROXY_LAGS, n_chans=8)
    model.fit_stats(eeg.numpy(), mel.numpy())
    info = model.fit_closed_form([(eeg, mel, torch.zeros(40, dtype=torch.long))], None)
    assert info["alpha"] == min(RIDGE_GRID)
    mse = [info["val_mse"][str(a)] for a in RIDGE_GRID]
    assert mse == sorted(mse)  # training error grows with the penalty


def test_train_cli_refuses_a_bad_offset(delayed_dir, tmp_path, capsys):
    from eegmusic.stream.cli import main

    status = main(["train", "--data", str(delayed_dir), "--out", str(tmp_path / "r"),
                   "--target-offset", "soon"])
    assert status == 2
    assert "neither seconds nor 'auto'" in capsys.readouterr().err
