"""``--target-offset auto``: the lag is chosen on the validation part and never reads the test part.

The folder is built so that the EEG answers the music 0.15 s late: every 0.25 s of each song has its
own loudness, and every channel carries that loudness 0.15 s after it is heard (positive on half the
channels, negative on the others, so that the average reference keeps it). A decoder whose
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
TOPOGRAPHY = np.where(np.arange(125) < 62, 1.0, -1.0)


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
        # a dipole-like map (half the channels positive, half negative): a response common to every
        # channel would vanish in the average reference the preprocessing applies
        eeg = 10.0 * TOPOGRAPHY[:, None, None] * response[None, :, None] + rng.normal(
            0, 0.5, (125, SECONDS * 125, N_SUBJECTS))
        scipy.io.savemat(folder / f"song{song}_Imputed.mat",
                         {f"data{song}": eeg, "fs": 125.0, f"subs{song}": np.arange(1, N_SUBJECTS + 1)})
    return folder


class PoisonedTest:
    """A dataset whose test targets are garbage, and which records every row it is asked for."""

    def __init__(self, inner, test_rows, read):
        self.inner, self.test_rows, self.read = inner, np.asarray(test_rows), read
        self.index, self.hop_s, self.music = inner.index, inner.hop_s, inner.music

    def eeg(self, rows):
        self.read.update(np.atleast_1d(rows).tolist())
        return self.inner.eeg(rows)

    def mel(self, rows, **options):
        rows = np.atleast_1d(rows)
        self.read.update(rows.tolist())
        out = self.inner.mel(rows, **options)
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


def test_the_proxy_ridge_without_validation_takes_the_smallest_penalty(rng, caplog):
    """The lag proxy solves only the smallest penalty: what the whole grid picks on training data."""
    import torch
    from eegmusic.offline_training.models.linear import RIDGE_GRID, Linear
    from eegmusic.offline_training.target_lag import PROXY_LAGS

    eeg = torch.tensor(rng.normal(0.0, 10.0, (40, 8, 125)), dtype=torch.float32)
    mel = torch.tensor(rng.normal(-40.0, 10.0, (40, 128, 44)), dtype=torch.float32)
    model = Linear(lags=PROXY_LAGS, n_chans=8)
    model.fit_stats(eeg.numpy(), mel.numpy())
    with caplog.at_level("INFO", logger="eegmusic.offline_training.models.linear"):
        batches = [(eeg, mel, torch.zeros(40, dtype=torch.long))]
        info = model.fit_closed_form(batches, None)
        model.fit_closed_form(batches, None, alphas=(min(RIDGE_GRID),))
    assert info["alpha"] == min(RIDGE_GRID)
    mse = [info["val_mse"][str(a)] for a in RIDGE_GRID]
    assert mse == sorted(mse)  # training error grows with the penalty
    # the log said "chosen (validation MSE …)" of the proxy's one penalty, fitted on training data alone
    first, second = (r.getMessage() for r in caplog.records if "ridge penalty" in r.getMessage())
    assert "chosen (training MSE" in first and "given (training MSE" in second, (first, second)


def test_train_cli_refuses_a_bad_offset(delayed_dir, tmp_path, capsys):
    from eegmusic.stream.cli import main

    status = main(["train", "--data", str(delayed_dir), "--out", str(tmp_path / "r"),
                   "--target-offset", "soon"])
    assert status == 2
    assert "neither seconds nor 'auto'" in capsys.readouterr().err


# ---- the unseen-song check (offline_training.unseen_song) ----------------------------------------------
def _ridge_fit(dataset, seen: list):
    """``fit(fold_split)`` of a closed-form lagged ridge that records the fold it was given."""
    import torch
    from eegmusic.offline_training.models.linear import RIDGE_GRID, Linear
    from eegmusic.offline_training.target_lag import PROXY_LAGS

    def part(rows):
        return [(torch.from_numpy(dataset.eeg(rows)), torch.from_numpy(dataset.mel(rows)),
                 torch.from_numpy(dataset.index["subject"][rows]))]

    def fit(fold, data):  # the penalty chosen on the fold's validation rows, as train's linear does
        seen.append(fold)
        assert data.target_offset_s == dataset.target_offset_s  # no offset chooser: the run's
        (eeg, mel, _), = part(fold.train)
        model = Linear(lags=PROXY_LAGS, target_offset_s=dataset.target_offset_s, n_chans=eeg.shape[1])
        model.fit_stats(eeg.numpy(), mel.numpy())
        model.fit_closed_form(part(fold.train), part(fold.val), alphas=RIDGE_GRID)
        return model

    return fit


def test_unseen_song_check_trains_without_the_song_it_scores_and_never_reads_the_test_part(delayed_dir):
    from eegmusic.offline_training.unseen_song import unseen_song_score

    dataset = WindowDataset(delayed_dir).with_target_offset(0.2)
    split = make_split(dataset.index, "block", seed=0)
    seen, read = [], set()
    poisoned = PoisonedTest(dataset, split.test, read)
    poisoned.target_offset_s = dataset.target_offset_s
    check = unseen_song_score(_ridge_fit(poisoned, seen), poisoned, split, seed=0)
    assert check["song"] in SONGS and check["reason"] is None and check["n_windows"] >= 2 * N_SUBJECTS
    (fold,) = seen
    songs = dataset.index["song"]
    assert len(fold.train) and not (songs[fold.train] == check["song"]).any()  # never trained on it
    assert len(fold.val) and not (songs[fold.val] == check["song"]).any()
    assert set(fold.train.tolist()) <= set(split.train.tolist())
    assert read and not read & set(split.test.tolist())  # the test part stays unseen
    clean = unseen_song_score(_ridge_fit(dataset, []), dataset, split, seed=0)
    assert clean["dynamic_r"] == check["dynamic_r"]


def test_unseen_song_check_scores_a_lag_that_brings_the_response_into_the_window_higher(delayed_dir):
    """The EEG answers 0.15 s late: on a song it never heard, a ridge decodes the newest frames at a
    0.2-s lag better than at 0 s (their response is not in the window yet)."""
    from eegmusic.offline_training.unseen_song import unseen_song_score

    base = WindowDataset(delayed_dir)
    split = make_split(base.index, "block", seed=0)
    scores = {}
    for offset in (0.0, 0.2):
        dataset = base.with_target_offset(offset)
        scores[offset] = unseen_song_score(_ridge_fit(dataset, []), dataset, split, seed=0)["dynamic_r"]
    assert scores[0.2] > 0.1 and scores[0.2] > scores[0.0] + 0.03, scores  # measured 0.18 and 0.13


def test_the_unseen_song_control_rolls_each_play_on_its_own(rng):
    """Two listeners' plays of one song hold the same music at the same times: rolled together, one
    play's frames would meet the other's at their own times, and the "control" would score the decoder."""
    from eegmusic.offline_training.unseen_song import shifted_control

    music = rng.normal(size=(128, 200))
    blocks = [music[:, :120], music[:, 120:]]        # one play in two stretches; the other the same music
    pred = {43: [b.copy() for b in blocks] * 2}      # a perfect decoder
    true = {43: [b.copy() for b in blocks] * 2}
    control = shifted_control(pred, true, {43: [0, 0, 1, 1]})
    assert abs(control) < 0.1, control                # mixed across plays it read 1.0
    short = {43: [b[:, :80] for b in blocks]}         # 80 frames each at 48 ms: under 4 s a play
    assert shifted_control(short, short, {43: [0, 1]}) is None


def test_unseen_song_check_needs_two_training_songs(delayed_dir, caplog):
    from eegmusic.offline_training.unseen_song import unseen_song_score

    dataset = WindowDataset(delayed_dir, songs=[SONGS[0]])
    split = make_split(dataset.index, "block", seed=0)
    with caplog.at_level(logging.WARNING, logger="eegmusic.offline_training.unseen_song"):
        check = unseen_song_score(_ridge_fit(dataset, []), dataset, split)
    assert check["dynamic_r"] is None and "needs 2 or more" in check["reason"]
    assert any("unseen-song check skipped" in r.getMessage() for r in caplog.records)


def test_train_cli_unseen_song_check_records_the_score(delayed_dir, tmp_path, capsys):
    from eegmusic.decoder.modelfile import read_model_info
    from eegmusic.stream.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", str(delayed_dir), "--arch", "linear", "--out", str(out),
                 "--target-offset", "0.2", "--unseen-song-check", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    check = metrics["unseen_song"]
    assert check["song"] in SONGS and check["dynamic_r"] > 0.1
    assert f"trained without song {check['song']}, the model decodes it at live dynamic r" in printed
    # beside it the control: the same frames against the stimulus half their play away (chance)
    control = check["shifted_dynamic_r"]
    assert abs(control) < 0.1 and check["dynamic_r"] > control + 0.1, check
    assert (f"shifted-stimulus control {control:.3f}, the same frames against the stimulus half their play "
            "away)") in printed
    info = read_model_info(out / "model.onnx")
    assert info.metadata["training"]["unseen_song_check"]["dynamic_r"] == check["dynamic_r"]


def test_a_chosen_lag_is_chosen_again_without_the_held_out_song(delayed_dir, tmp_path, capsys, monkeypatch):
    """``--target-offset auto`` chose the run's lag on validation seconds of every training song, the
    held-out one among them: the check scored that song at a lag picked partly on it (a science audit).
    The fold's lag is chosen on the fold's rows alone, and the fold model trains and is scored at it."""
    from eegmusic.offline_training import target_lag
    from eegmusic.stream.cli import main

    calls = []
    real = target_lag.choose_target_offset

    def spy(dataset, split, **kwargs):  # the real choice, its rows recorded
        calls.append((dataset.index["song"][split.train], dataset.index["song"][split.val]))
        return real(dataset, split, **kwargs)

    monkeypatch.setattr(target_lag, "choose_target_offset", spy)
    out = tmp_path / "run"
    assert main(["train", "--data", str(delayed_dir), "--arch", "linear", "--out", str(out),
                 "--target-offset", "auto", "--unseen-song-check", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check = metrics["unseen_song"]
    assert len(calls) == 2, "the run's choice, then the fold's"
    (run_train, run_val), (fold_train, fold_val) = calls
    assert check["song"] in run_val and check["song"] not in np.union1d(fold_train, fold_val)
    choice = check["offset_choice"]
    assert choice["n_val_windows"] < metrics["target_offset_choice"]["n_val_windows"]
    assert check["target_offset_s"] == choice["chosen_s"] > 0.0 and check["dynamic_r"] > 0.1, check
    assert f"at target offset {check['target_offset_s']:g} s chosen without it" in capsys.readouterr().out


def test_a_fold_without_a_stretch_to_choose_a_lag_on_is_not_scored(delayed_dir):
    from eegmusic.offline_training.unseen_song import unseen_song_score

    dataset = WindowDataset(delayed_dir).with_target_offset(0.2)
    split = make_split(dataset.index, "block", seed=0)

    def refuse(fold_split):
        raise ConfigError("the validation part has no 2-s stretch")

    check = unseen_song_score(_ridge_fit(dataset, []), dataset, split, seed=0, choose_offset=refuse)
    assert check["dynamic_r"] is None and check["target_offset_s"] is None
    assert check["reason"].startswith("without song ") and "no 2-s stretch" in check["reason"], check


def test_train_cli_refuses_an_unseen_song_check_of_a_fine_tuning_run(delayed_dir, tmp_path, capsys):
    from eegmusic.stream.cli import main

    out = tmp_path / "r"
    status = main(["train", "--data", str(delayed_dir), "--out", str(out), "--init", str(tmp_path / "m.onnx"),
                   "--unseen-song-check"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, lines
    assert "cannot check a fine-tuning run (--init); drop one of them" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("hop_s", [0.1, 0.5])
def test_auto_lag_and_unseen_song_check_at_a_hop_that_does_not_divide_a_second(hop_s, delayed_dir):
    """At a hop of 12 or 62 samples no two windows start exactly 125 samples apart: the lag was
    refused ("no 2-s stretch ... use longer recordings") and the unseen-song check not scored."""
    from eegmusic.offline_training.unseen_song import unseen_song_score

    dataset = WindowDataset(delayed_dir, hop_s=hop_s)
    split = make_split(dataset.index, "block", seed=0, hop_s=hop_s)
    choice = choose_target_offset(dataset, split, candidates=CANDIDATES)
    assert choice.fallback is None and choice.n_val_windows == 24  # the seconds that hop 1 scores
    assert choice.offset_s > 0.0 and choice.scores[choice.offset_s] > choice.scores[0.0]
    shifted = dataset.with_target_offset(0.2)
    check = unseen_song_score(_ridge_fit(shifted, []), shifted, split, seed=0)
    assert check["reason"] is None and check["dynamic_r"] > 0.1, check


def test_windows_a_second_apart_keep_to_the_second_grid_at_any_hop():
    from eegmusic.offline_training.scoring import one_per_second

    index = np.zeros(40, dtype=[("song", np.int64), ("subject", np.int64), ("start", np.int64)])
    rows = np.arange(40)
    index["start"] = rows * 62  # --hop 0.5: 62 samples; the nearest window to each second
    assert index["start"][one_per_second(index, rows)].tolist()[:6] == [0, 124, 248, 372, 496, 620]
    index["start"] = rows * 25  # a hop that divides a second: exactly 1 s apart, as before
    assert index["start"][one_per_second(index, rows)].tolist() == [0, 125, 250, 375, 500, 625, 750, 875]
    index["start"] = [0, 125, 400, 525] + [700 + 125 * k for k in range(36)]  # gaps: the next after them
    assert index["start"][one_per_second(index, rows)].tolist()[:6] == [0, 125, 400, 525, 700, 825]


def test_a_hop_longer_than_a_window_is_told_to_shorten_the_hop(delayed_dir, tmp_path, capsys):
    """Windows 2 s apart never tile a stretch of consecutive seconds, whatever the recording's length: the
    refusal said "use longer recordings", which cannot help (a helper's option fuzz). It names the hop, and
    the hop it names trains."""
    from eegmusic.stream.cli import main

    def train(hop: str, out: str) -> tuple[int, list[str]]:
        status = main(["train", "--data", str(delayed_dir), "--arch", "linear", "--hop", hop,
                       "--target-offset", "auto", "--out", str(tmp_path / out), "--no-progress"])
        return status, [line for line in capsys.readouterr().err.splitlines() if "error" in line]

    status, errors = train("2", "a")
    assert status == 2 and len(errors) == 1, errors
    assert "no 2-s stretch" in errors[0] and "pass --hop 1 or less" in errors[0], errors
    assert "longer recordings" not in errors[0] and not (tmp_path / "a").exists()
    assert train("1", "b") == (0, [])
