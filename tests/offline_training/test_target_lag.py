"""``--target-offset auto``: the lag is chosen on the validation part and never reads the test part.

The folder is built so that the EEG answers the music 0.15 s late: every 0.25 s of each song has its
own loudness, and every channel carries that loudness 0.15 s after it is heard. A decoder whose
target ends at the window's end cannot see the last 0.15 s of music in the EEG; an offset of at least
0.15 s can.
"""

from __future__ import annotations

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


def test_train_cli_with_auto_offset_records_the_choice_in_the_model(delayed_dir, tmp_path, capsys):
    from eegmusic.decoder.modelfile import read_model_info
    from eegmusic.stream.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", str(delayed_dir), "--arch", "linear", "--out", str(out),
                 "--target-offset", "auto", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "chosen on the validation part" in printed
    info = read_model_info(out / "model.onnx")
    choice = info.metadata["training"]["target_offset"]
    assert info.target_offset_s == choice["chosen_s"] >= DELAY_S
    assert info.metadata["baselines"]["computed_on"] == "training part"


def test_train_cli_refuses_a_bad_offset(delayed_dir, tmp_path, capsys):
    from eegmusic.stream.cli import main

    status = main(["train", "--data", str(delayed_dir), "--out", str(tmp_path / "r"),
                   "--target-offset", "soon"])
    assert status == 2
    assert "neither seconds nor 'auto'" in capsys.readouterr().err
