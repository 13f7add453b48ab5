"""simulate --montage: virtual listeners on any cap, written as XDF calibration sessions that the
dataset interface and the training windows read (channels and rates other than NMED-T's)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from eegmusic.replay.dataset import open_dataset
from eegmusic.replay.virtual_cap import cap_projection, simulate_sessions
from eegmusic.stream.montage import head_positions, montage_labels
from eegmusic.stream.spec import MODEL_CHANNELS

pytest.importorskip("mne")


def test_biosemi64_session_at_512_hz_reads_back(tmp_path):
    sessions = simulate_sessions(tmp_path / "bio", montage="biosemi64", sfreq=512.0, n_songs=2,
                                 n_subjects=2, seconds=4.0, snr=0.2, progress=False)
    assert [p.name for p in sessions] == ["S01.xdf", "S02.xdf"]
    dataset = open_dataset(sessions[1])
    assert dataset.song_ids == [1, 2]
    recording = dataset.load_song(1)
    assert recording.channels == montage_labels("biosemi64") and recording.sfreq == 512.0
    assert recording.data.shape == (64, 4 * 512, 1)
    np.testing.assert_allclose(recording.positions, head_positions(recording.channels, montage="biosemi64"),
                               atol=1e-7)
    eeg = recording.data[:, :, 0]
    assert 5.0 < eeg.std() < 100.0  # µV, EEG-sized
    np.testing.assert_allclose(eeg.mean(axis=0), 0.0, atol=1e-3)  # average reference
    assert dataset.load_stimulus(2).shape == (4 * 22050,)


def test_training_windows_for_a_32_channel_cap_at_250_hz(tmp_path):
    from eegmusic.offline_training.dataset import WindowDataset

    session, = simulate_sessions(tmp_path / "cap32", montage="standard_1020", n_channels=32, sfreq=250.0,
                                 n_songs=1, n_subjects=1, seconds=6.0, progress=False)
    windows = WindowDataset(session)
    labels = montage_labels("standard_1020", 32)
    assert windows.channels == labels and windows.n_chans == 32 and len(windows) == 6
    eeg = windows.eeg(np.arange(len(windows)))
    assert eeg.shape == (6, 32, 125) and np.isfinite(eeg).all()  # resampled 250 -> 125 Hz


def test_cap_projection_reproduces_the_net_where_electrodes_coincide(rng):
    """Projecting the GSN net onto its own 125 model electrodes gives back a smooth scalp field."""
    positions = head_positions(MODEL_CHANNELS)
    weights = cap_projection(positions)
    net = head_positions(tuple(f"E{i}" for i in range(1, 129)) + ("Cz",))
    field = np.sin(net @ np.array([[10.0], [-6.0], [12.0]]) + np.arange(5.0))
    truth = np.sin(positions @ np.array([[10.0], [-6.0], [12.0]]) + np.arange(5.0))
    error = np.sqrt(np.mean((weights @ field - truth) ** 2))
    assert error < 0.05 * truth.std()  # the smoothing spline (alpha 1e-5) is close, not exact


@pytest.mark.parametrize(("args", "message"), [
    (["--montage", "biosemi65"], "montage 'biosemi65' is not known; use one of"),
    # 1 is refused too (below), and the montage is named as typed, not as MNE renamed it
    (["--montage", "biosemi32", "--channels", "40"],
     "--channels 40 is outside 2 … 32 for montage 'biosemi32'; pick"),
    (["--montage", "STANDARD_1020", "--channels", "100000"], "outside 2 … 90 for montage 'STANDARD_1020'"),
    # the 129-electrode net's 125: NMED-T's channels, said so ("pick a count the montage has" misled)
    (["--montage", "GSN-HydroCel-129", "--channels", "129"],
     "outside 2 … 125 for montage 'GSN-HydroCel-129' (NMED-T's model channels: E1…E124 and Cz; its face "
     "electrodes E125–E128 are never used); pick"),
    # exit 0 and "problems: none", then train and decode refused the rate
    (["--montage", "biosemi16", "--sfreq", "333.3"], "--sfreq 333.3 Hz cannot be resampled to 125 Hz by a "
                                                     "short polyphase filter; use a device rate such as"),
    (["--sfreq", "250"], "--sfreq needs --montage"),
    (["--montage", "standard_1020", "--sfreq", "20"], "--sfreq 20 Hz is outside 125 … 4096"),
    # accepted, and then refused by the train command simulate advised
    (["--montage", "openbci8", "--sfreq", "64.5"], "--sfreq 64.5 Hz is outside 125 … 4096 (the models read"),
    # an average-referenced single electrode is all zeros
    (["--montage", "openbci8", "--channels", "1"], "--channels 1: the cap is average-referenced"),
    # 0 said "must be at least 1", and 1 was then refused
    (["--montage", "openbci8", "--channels", "0"],
     "--channels 0: the cap is average-referenced, which leaves no electrode; keep 2 or more"),
])
def test_bad_cap_options_one_line_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "eegmusic", "simulate", "--out", str(out), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()
