"""Replay as live LSL streams: real pylsl outlets and inlets on loopback.

Every streaming test plays seconds of data accelerated with ``speed`` and carries the sample-index
channel, so continuity is checked exactly. Players wait for the test's inlet before sending
(``wait_for_consumer_s``) so that no sample goes out before anyone listens.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eegmusic.replay.device_like import device_like_eeg, face_channel_weights
from eegmusic.replay.nmedt import NMEDTFolder
from eegmusic.replay.player import ArrayPlayer
from eegmusic.replay.song_player import Player, song_markers
from eegmusic.stream.errors import ConfigError, DataFormatError
from eegmusic.stream.outlet import channel_info
from eegmusic.stream.spec import DEVICE_CHANNELS_128, MODEL_CHANNELS

REPO = Path(__file__).resolve().parents[2]


def _inlet(name: str, timeout: float = 5.0):
    import pylsl

    infos = pylsl.resolve_byprop("name", name, 1, timeout)
    assert infos, f"stream '{name}' not visible after {timeout} s"
    inlet = pylsl.StreamInlet(infos[0], max_buflen=60, recover=False)
    inlet.open_stream(timeout)
    return inlet


def _pull(inlet, n_samples: int, timeout: float = 10.0):
    """Pull exactly ``n_samples``; return samples (n, n_chans), timestamps (n,), chunk lateness (s)."""
    import pylsl

    chunks, stamps, lateness = [], [], []
    got = 0
    deadline = time.monotonic() + timeout
    while got < n_samples:
        assert time.monotonic() < deadline, f"received {got} of {n_samples} samples in {timeout} s"
        chunk, ts = inlet.pull_chunk(timeout=0.5, max_samples=8192, min_samples=1, as_numpy=True)
        if len(ts):
            lateness.append(pylsl.local_clock() - ts[-1])
            chunks.append(np.array(chunk))
            stamps.append(np.array(ts))
            got += len(ts)
    return np.concatenate(chunks)[:n_samples], np.concatenate(stamps)[:n_samples], np.array(lateness)


def _pull_markers(inlet, last: str, timeout: float = 10.0):
    texts, stamps = [], []
    deadline = time.monotonic() + timeout
    while last not in texts:
        assert time.monotonic() < deadline, f"no '{last}' marker within {timeout} s (got {texts[-3:]})"
        chunk, ts = inlet.pull_chunk(timeout=0.5, min_samples=1)
        texts += [sample[0] for sample in chunk]
        stamps += list(ts)
    return texts, np.array(stamps)


@pytest.mark.lsl
def test_song_replay_delivers_the_file_with_markers_at_rate(sim_dir, stream_name):
    speed = 8.0
    recording = NMEDTFolder(sim_dir).load_song(21)
    eeg = recording.eeg(1)
    n_times = eeg.shape[1]
    player = Player(sim_dir, 21, 2, speed=speed, name=stream_name, index_channel=True,
                    wait_for_consumer_s=5.0, check_clash=False)
    with player:
        markers_inlet = _inlet(player.marker_name)
        inlet = _inlet(stream_name)
        full = inlet.info(5.0)
        data, stamps, lateness = _pull(inlet, n_times)
        texts, marker_stamps = _pull_markers(markers_inlet, "replay_end")
        del inlet, markers_inlet

    # a 125-channel EEG device in NMED-T order, plus the index channel
    import pylsl

    channels = channel_info(full)
    assert full.type() == "EEG" and full.channel_format() == pylsl.cf_float32
    assert full.nominal_srate() == 125.0
    assert full.source_id() == player.source_id
    assert channels["label"] == [*MODEL_CHANNELS, "index"]
    assert channels["unit"] == ["microvolts"] * 125 + ["samples"]
    assert channels["type"] == ["EEG"] * 125 + ["MISC"]
    dataset = full.desc().child("dataset")
    assert dataset.child_value("song") == "21" and dataset.child_value("subject") == recording.subjects[1]
    assert full.desc().child_value("manufacturer")

    # exactly the file's samples, in order, nothing lost
    np.testing.assert_array_equal(data[:, -1], np.arange(n_times))
    np.testing.assert_allclose(data[:, :-1], eeg.T, rtol=1e-6, atol=1e-5)

    # each sample its own timestamp, at the nominal rate (x speed) and without drift
    rate = (n_times - 1) / (stamps[-1] - stamps[0])
    assert abs(rate / (125.0 * speed) - 1) < 1e-3
    np.testing.assert_allclose(np.diff(stamps), 1 / (125.0 * speed), atol=1e-9)
    # wall-clock pacing: lateness (arrival - timestamp) must not grow. Each half is summarised by its
    # 10th percentile: scheduling delays on a busy machine only ever add lateness, so the low end of
    # each half tracks the player's pacing and rides out a reader that was held up (a median moved by
    # 5 ms under load while the pacing held).
    half = len(lateness) // 2
    drift = np.percentile(lateness[half:], 10) - np.percentile(lateness[:half], 10)
    assert abs(drift) < 1e-3 * (n_times / 2) / (125.0 * speed), f"lateness grew by {drift * 1e3:.2f} ms"

    # markers: song start, every second of stimulus time, song end, stamped on the EEG clock, then the
    # replay's end (its outlets go after it)
    expected = [text for _, text in song_markers(21, n_times / 125.0)]
    assert texts == [*expected, "replay_end"]
    assert expected[:2] == ["song_start=21", "song=21;t=0.000"] and expected[-2:] == ["song=21;t=19.000",
                                                                                     "song_end=21"]
    t12 = texts.index("song=21;t=12.000")
    assert marker_stamps[t12] == pytest.approx(stamps[12 * 125], abs=1e-6)
    assert marker_stamps[0] == pytest.approx(stamps[0], abs=1e-6)
    assert marker_stamps[-2] == pytest.approx(stamps[-1] + 1 / (125.0 * speed), abs=1e-6)


@pytest.mark.lsl
def test_loop_keeps_index_timestamps_and_markers_continuous(rng, stream_name):
    sfreq, n_times, speed = 125.0, 50, 4.0
    data = rng.standard_normal((3, n_times)) * 5
    player = ArrayPlayer(data, sfreq, ["a", "b", "c"], name=stream_name, loop=True, speed=speed,
                         index_channel=True, markers=[(0.0, "start"), (0.2, "middle")],
                         wait_for_consumer_s=5.0, check_clash=False)
    with player:
        markers_inlet = _inlet(player.marker_name)
        inlet = _inlet(stream_name)
        received, stamps, _ = _pull(inlet, 3 * n_times + 10)
        texts, marker_stamps = _pull_markers(markers_inlet, "middle")
        while texts.count("start") < 3:
            more, more_stamps = _pull_markers(markers_inlet, "start")
            texts += more
            marker_stamps = np.concatenate([marker_stamps, more_stamps])
        del inlet, markers_inlet
    index = np.arange(3 * n_times + 10)
    np.testing.assert_array_equal(received[:, -1], index)
    np.testing.assert_allclose(received[:, :-1], data.T[index % n_times], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.diff(stamps), 1 / (sfreq * speed), atol=1e-9)  # no jump at the wrap
    assert texts[:5] == ["start", "middle", "start", "middle", "start"]
    np.testing.assert_allclose(marker_stamps[[0, 2, 4]], stamps[[0, n_times, 2 * n_times]], atol=1e-6)


@pytest.mark.lsl
def test_two_concurrent_replays_stay_apart(sim_dir, stream_name):
    folder = NMEDTFolder(sim_dir)
    expected = {"a": folder.load_song(21).eeg(0), "b": folder.load_song(22).eeg(2)}
    players = {
        "a": Player(sim_dir, 21, 1, speed=20.0, name=f"{stream_name}-a", index_channel=True,
                    markers=False, wait_for_consumer_s=5.0),
        "b": Player(sim_dir, 22, 3, speed=20.0, name=f"{stream_name}-b", index_channel=True,
                    markers=False, wait_for_consumer_s=5.0),
    }
    try:
        for player in players.values():
            player.start()
        inlets = {key: _inlet(player.name) for key, player in players.items()}
        received = {key: _pull(inlet, 500)[0] for key, inlet in inlets.items()}
        source_ids = {key: inlet.info(5.0).source_id() for key, inlet in inlets.items()}
        del inlets
    finally:
        for player in players.values():
            player.stop()
    assert source_ids["a"] != source_ids["b"]
    for key in players:
        np.testing.assert_array_equal(received[key][:, -1], np.arange(500))
        np.testing.assert_allclose(received[key][:, :-1], expected[key][:, :500].T, rtol=1e-6, atol=1e-5)


@pytest.mark.lsl
def test_device_like_is_the_upsampled_128_channel_net(sim_dir, stream_name):
    from scipy.signal import resample_poly

    eeg = NMEDTFolder(sim_dir).load_song(21).eeg(0)
    n_check = 4000  # 4 s at 1 kHz
    player = Player(sim_dir, 21, 1, speed=20.0, device_like=1000, name=stream_name, index_channel=True,
                    markers=False, wait_for_consumer_s=5.0, check_clash=False)
    with player:
        inlet = _inlet(stream_name)
        full = inlet.info(5.0)
        received, stamps, _ = _pull(inlet, n_check)
        del inlet
    assert full.nominal_srate() == 1000.0
    labels = channel_info(full)["label"]
    assert labels == [*DEVICE_CHANNELS_128, "index"] and "Cz" not in labels and "E129" not in labels
    np.testing.assert_array_equal(received[:, -1], np.arange(n_check))
    upsampled = resample_poly(eeg[:124] - eeg[124], 8, 1, axis=-1)[:, :n_check]  # Cz-referenced
    np.testing.assert_allclose(received[:, :124], upsampled.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.diff(stamps), 1 / 20000.0, atol=1e-9)
    # face channels E125..E128: plausible EEG made of their nearest scalp electrodes
    face = received[:, 124:128].T.astype(np.float64)
    scalp_std = upsampled.std(axis=1)
    assert np.all(face.std(axis=1) > 0.2 * scalp_std.min())
    assert np.all(face.std(axis=1) < 2.0 * scalp_std.max())
    weights = face_channel_weights([f"E{i}" for i in range(1, 125)])
    for row in range(4):
        nearest = int(np.argmax(weights[row]))
        assert np.corrcoef(face[row], upsampled[nearest])[0, 1] > 0.3


def test_outlet_descriptions_round_trip():
    import pylsl
    from eegmusic.stream.outlet import marker_stream_info, regular_stream_info

    labels = [f"mel{i}" for i in range(128)]
    info = regular_stream_info("dec-1", "MelSpectrogram", labels, 22050 / 512, "dec-1@host", unit="dB",
                               extra_desc={"model": {"name": "cnn"}})
    assert info.type() == "MelSpectrogram" and info.nominal_srate() == pytest.approx(22050 / 512)
    assert info.channel_format() == pylsl.cf_float32 and info.channel_count() == 128
    assert channel_info(info) == {"label": labels, "unit": ["dB"] * 128, "type": ["MelSpectrogram"] * 128}
    assert info.desc().child("model").child_value("name") == "cnn"
    markers = marker_stream_info("dec-1-markers", "dec-1@host-markers")
    assert markers.type() == "Markers" and markers.channel_format() == pylsl.cf_string
    assert markers.nominal_srate() == pylsl.IRREGULAR_RATE and markers.channel_count() == 1
    with pytest.raises(ValueError, match="nominal rate > 0"):
        regular_stream_info("x", "EEG", ["a"], 0.0, "x")
    with pytest.raises(ValueError, match="unit has 1 entries for 2 channels"):
        regular_stream_info("x", "EEG", ["a", "b"], 100.0, "x", unit=["uV"])


def test_device_like_length_and_labels(rng):
    eeg = rng.standard_normal((125, 250))
    out, labels = device_like_eeg(eeg, 125.0, 500.0)
    assert out.shape == (128, 1000) and out.dtype == np.float32
    assert labels == DEVICE_CHANNELS_128


def test_device_like_that_does_not_fit_in_memory_is_refused_before_allocating(rng, monkeypatch):
    """``--device-like 100000`` on a 60-s song allocated 2.9 GB unchecked: a MemoryError's traceback, or
    the OOM killer."""
    from eegmusic.replay import simulate

    monkeypatch.setattr(simulate, "available_memory", lambda: 50 * 2**20)
    eeg = rng.standard_normal((125, 250))  # 2 s: 128 x 200,000 samples of float32 at 100 kHz, 98 MiB
    with pytest.raises(ConfigError, match=r"--device-like 100000 Hz .* of memory, 50 MiB available; pass a "
                       r"lower rate") as info:
        device_like_eeg(eeg, 125.0, 100000.0)
    assert "\n" not in str(info.value)
    device_like_eeg(eeg, 125.0, 250.0)  # 4 MiB: fits


@pytest.mark.lsl
def test_mne_lsl_stream_reads_the_same_data(rng, stream_name):
    from mne_lsl.stream import StreamLSL

    sfreq, n_times = 250.0, 250
    labels = [f"E{i}" for i in range(1, 9)]
    data = rng.standard_normal((8, n_times)) * 10
    player = ArrayPlayer(data, sfreq, labels, name=stream_name, speed=2.0, index_channel=True,
                         wait_for_consumer_s=5.0, check_clash=False)
    with player:
        stream = StreamLSL(bufsize=4.0, name=stream_name, source_id=player.source_id)
        stream.connect(acquisition_delay=0.01, timeout=5.0)
        assert player.wait(10.0), "replay did not finish"
        time.sleep(0.1)
        received, stamps = stream.get_data()
        info = stream.info
        types = stream.get_channel_types()
        stream.disconnect()
    assert info["sfreq"] == sfreq
    assert info["ch_names"] == [*labels, "index"]
    assert types == ["eeg"] * 8 + ["misc"]
    received, stamps = received[:, -n_times:], stamps[-n_times:]
    np.testing.assert_array_equal(received[-1], np.arange(n_times))
    # mne-lsl keeps the values as sent and reads the unit: microvolts (unit_mul -6)
    assert [ch["unit_mul"] for ch in info["chs"][:8]] == [-6] * 8
    np.testing.assert_allclose(received[:-1], data.astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.diff(stamps), 1 / (sfreq * 2.0), atol=1e-6)


@pytest.mark.lsl
def test_name_clash_warns_and_makes_source_id_unique(rng, stream_name, caplog):
    data = rng.standard_normal((2, 100))
    first = ArrayPlayer(data, 100.0, ["a", "b"], name=stream_name, loop=True)
    second = ArrayPlayer(data, 100.0, ["a", "b"], name=stream_name, loop=True)
    try:
        first.start()
        with caplog.at_level(logging.WARNING, logger="eegmusic.replay.player"):
            second.start()
    finally:
        second.stop()
        first.stop()
    assert second.source_id != first.source_id and second.source_id.startswith(first.source_id)
    assert "already in use" in caplog.text and stream_name in caplog.text


@pytest.mark.lsl
def test_cli_replay_stops_cleanly_on_sigterm(sim_dir, stream_name):
    import pylsl

    command = [sys.executable, "-m", "eegmusic", "replay", "--data", str(sim_dir), "--song", "21",
               "--subject", "1", "--loop", "--name", stream_name]
    process = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        inlet = _inlet(stream_name, timeout=30.0)
        assert channel_info(inlet.info(5.0))["label"] == list(MODEL_CHANNELS)
        _pull(inlet, 10)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
        with pytest.raises(pylsl.util.LostError):  # the inlet sees the stream end
            for _ in range(20):
                inlet.pull_chunk(timeout=0.5)
        del inlet
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert f"replay '{stream_name}' stopped" in out


@pytest.fixture
def corrupt_dir(tmp_path):
    (tmp_path / "song21_Imputed.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated" + bytes(20))
    return tmp_path


@pytest.mark.parametrize(
    ("case", "kwargs", "error", "message"),
    [
        ("sim", {"song": 35}, ConfigError, r"song 35 not in .* \(has 21, 22\); pass one of those"),
        ("sim", {"subject": 4}, ConfigError, r"subject 4 not in song 21 .*\(has 1\.\.3"),
        ("sim", {"subject": 0}, ConfigError, r"subject 0 not in song 21"),
        ("sim", {"speed": 0}, ConfigError, r"speed must be in \[0.001, 1000\]"),
        ("sim", {"speed": -2.0}, ConfigError, r"speed must be in \[0.001, 1000\]"),
        ("sim", {"speed": float("nan")}, ConfigError, r"speed must be in \[0.001, 1000\]"),
        # the wait for the first chunk overflowed time_t, with a traceback from the replay thread
        ("sim", {"speed": 1e-13}, ConfigError, r"speed must be in \[0.001, 1000\] \(got 1e-13\)"),
        ("sim", {"chunk_ms": 0}, ConfigError, "chunk_ms must be > 0"),
        ("sim", {"device_like": 0}, ConfigError, "--device-like rate must be > 0"),
        ("sim", {"device_like": 1000 / 3 + 0.001}, ConfigError, "not a simple ratio"),
        # "upsampled" to 1.5 Hz, a stream no decoder accepts
        ("sim", {"device_like": 1.5}, ConfigError, r"--device-like 1.5 Hz is below the data's 125 Hz"),
        ("corrupt", {}, DataFormatError, "truncated or unreadable MATLAB file"),
        ("missing", {}, DataFormatError, "folder not found"),
    ],
)
def test_bad_player_input(sim_dir, corrupt_dir, tmp_path, case, kwargs, error, message):
    path = {"sim": sim_dir, "corrupt": corrupt_dir, "missing": tmp_path / "nowhere"}[case]
    args = {"song": 21, "subject": 1} | kwargs
    song, subject = args.pop("song"), args.pop("subject")
    with pytest.raises(error, match=message) as info:
        Player(path, song, subject, **args)
    assert "\n" not in str(info.value)


def test_values_beyond_float32_are_refused_not_sent_as_inf(stream_name):
    """A float64 recording of 1e300 µV was cast to the stream's float32 with numpy's overflow warning and
    replayed as inf, exit 0."""
    import warnings

    data = np.zeros((2, 100))
    data[1, 50] = 1e300
    data[0, 10] = np.nan   # a NaN sample is a fault to replay, not a scale to refuse
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataFormatError, match=r"values up to 1e\+300, beyond float32"):
            ArrayPlayer(data, 100.0, ["a", "b"], name=stream_name)
        data[1, 50] = 1e30
        ArrayPlayer(data, 100.0, ["a", "b"], name=stream_name, check_clash=False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--song", "21", "--subject", "1"], "replay needs --data"),
        (["--data", "{sim}", "--song", "21"], "replay needs --subject"),
        (["--data", "{sim}", "--song", "21", "--subject", "1", "--speed", "0"], "speed must be"),
        (["--data", "{sim}", "--song", "21", "--subject", "1", "--speed", "1e-13"], "--speed must be in"),
        (["--data", "{sim}", "--song", "29", "--subject", "1"], "song 29 not in"),
        (["--xdf", "rec.xdf"], "--xdf needs --xdf-stream"),
    ],
)
def test_cli_bad_input_is_one_line_and_status_2(sim_dir, capsys, argv, message):
    from eegmusic.stream.cli import main

    status = main(["replay", *[arg.format(sim=sim_dir) for arg in argv]])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.lsl
def test_a_held_replay_sends_nothing_until_released_then_everything_from_sample_0(stream_name):
    import threading

    go = threading.Event()
    eeg = np.zeros((2, 250), np.float32)
    player = ArrayPlayer(eeg, 125.0, ["E1", "E2"], name=stream_name, source_id=f"{stream_name}-sid",
                         speed=4.0, index_channel=True, wait_for_consumer_s=5.0, release=go,
                         check_clash=False)
    with player:
        inlet = _inlet(stream_name)
        chunk, _ = inlet.pull_chunk(timeout=0.8, min_samples=1)
        assert len(chunk) == 0 and player.samples_sent == 0  # a consumer is there, but the stream is held
        go.set()
        data, _, _ = _pull(inlet, 250)
        del inlet
    np.testing.assert_array_equal(data[:, -1], np.arange(250))
