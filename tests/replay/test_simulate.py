"""The simulator: NMED-T layout round trip, determinism, raw files, user audio, physiology, decodability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import soundfile
from eegmusic.replay import forward_model as fm
from eegmusic.replay.music import generate_song
from eegmusic.replay.nmedt import NMEDTFolder, describe_folder
from eegmusic.replay.simulate import DEFAULT_SNR, simulate
from eegmusic.stream.errors import ConfigError, DataFormatError
from eegmusic.stream.spec import MODEL_CHANNELS
from scipy.signal import butter, sosfiltfilt, welch

# ---------------------------------------------------------------------------------------------
# Layout


def test_files_have_the_nmedt_layout(sim_dir):
    names = sorted(p.name for p in sim_dir.iterdir())
    assert names == ["simulation.json", "song21_Imputed.mat", "song22_Imputed.mat", "stimuli"]
    variables = {name: (shape, cls) for name, shape, cls in scipy.io.whosmat(sim_dir / "song21_Imputed.mat")}
    assert variables == {"data21": ((125, 2500, 3), "double"), "fs": ((1, 1), "double"),
                         "subs21": ((1, 3), "cell")}
    content = scipy.io.loadmat(sim_dir / "song22_Imputed.mat")
    assert content["data22"].dtype == np.float64 and float(content["fs"][0, 0]) == 125.0
    info = soundfile.info(str(sim_dir / "stimuli" / "song21.wav"))
    assert (info.samplerate, info.channels, info.frames) == (22050, 1, 20 * 22050)


def test_eeg_looks_like_eeg(sim_dir):
    rec = NMEDTFolder(sim_dir).load_song(21)
    eeg = rec.eeg(0)
    rms = np.sqrt(np.mean(eeg**2, axis=1))
    assert 5.0 < np.median(rms) < 40.0  # µV
    np.testing.assert_allclose(eeg.mean(axis=0), 0.0, atol=1e-9)  # average reference
    corr = np.corrcoef(eeg)
    neighbours = [corr[i, j] for i, j in ((0, 1), (10, 15), (60, 61))]
    assert np.mean(neighbours) > 0.3  # spatially correlated background
    assert not np.allclose(rec.eeg(0), rec.eeg(1))


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    kwargs = dict(n_songs=1, n_subjects=2, seconds=4, progress=False)
    a = NMEDTFolder(simulate(tmp_path / "a", seed=3, **kwargs))
    b = NMEDTFolder(simulate(tmp_path / "b", seed=3, **kwargs))
    c = NMEDTFolder(simulate(tmp_path / "c", seed=4, **kwargs))
    np.testing.assert_array_equal(a.load_song(21).data, b.load_song(21).data)
    np.testing.assert_array_equal(a.load_stimulus(21), b.load_stimulus(21))
    assert not np.allclose(a.load_song(21).data, c.load_song(21).data)
    assert not np.allclose(a.load_stimulus(21), c.load_stimulus(21))


def test_participant_keeps_traits_across_songs(tmp_path, monkeypatch):
    """Every song of a run is recorded from the same heads: the simulator hands each listener's one
    participant (sources, latencies, gains) to every song, and the next run with that seed draws the
    same. A spy on ``_record`` (it calls the real one) sees which participant each recording used."""
    from eegmusic.replay import simulate as simulation

    seen: dict[tuple[int, int], fm.Participant] = {}
    record = simulation._record

    def spy(song, participant, index, **kwargs):
        seen[(song.song_id, index)] = participant  # recordings run in threads: keyed, not counted
        return record(song, participant, index, **kwargs)

    monkeypatch.setattr(simulation, "_record", spy)
    simulate(tmp_path / "a", n_songs=2, n_subjects=2, seconds=2.0, seed=5, progress=False)
    assert sorted(seen) == [(21, 0), (21, 1), (22, 0), (22, 1)]
    for index in (0, 1):
        first, second = seen[(21, index)], seen[(22, index)]
        assert first.latency_scale == second.latency_scale
        np.testing.assert_array_equal(first.auditory_pos, second.auditory_pos)
    assert seen[(21, 0)].latency_scale != seen[(21, 1)].latency_scale  # two listeners, two heads
    again = fm.draw_participant(np.random.default_rng([5, 1, 101]), fm.head_model())
    np.testing.assert_array_equal(again.auditory_pos, seen[(21, 1)].auditory_pos)


def test_a_failed_recording_stops_the_run_without_the_recordings_not_begun(tmp_path, monkeypatch):
    """A stop or a failure mid-song waited for every queued recording of that song before the run
    ended (a SIGTERM took up to 2.3 s to stop ``simulate`` under load). Now only the recordings under
    way finish. Participant 0 fails at once; the two workers may take participants 1 and 2 before the
    failure is seen (or not: they may be cancelled first); those record for 1 s, so 3 to 5 are still
    queued when it is seen, and must never start."""
    import time

    from eegmusic.replay import simulate as simulation

    started: list[int] = []

    def failing(song, participant, index, **kwargs):
        started.append(index)
        if index == 0:
            raise RuntimeError("a failed recording")
        time.sleep(1.0)

    monkeypatch.setattr(simulation, "_record", failing)
    monkeypatch.setattr(simulation.os, "cpu_count", lambda: 2)
    with pytest.raises(RuntimeError, match="a failed recording"):
        simulate(tmp_path / "a", n_songs=1, n_subjects=6, seconds=2.0, seed=5, progress=False)
    assert 0 in started and set(started) <= {0, 1, 2}, started
    assert not (tmp_path / "a").exists()


def test_raw_files_129_channels_1khz_line_noise(sim_raw_dir):
    out = sim_raw_dir
    assert (out / "song21_raw.mat").read_bytes()[:10] == b"MATLAB 7.3"
    folder = NMEDTFolder(out)
    raw = folder.load_song(21, raw=True)
    assert raw.data.shape == (129, 10000, 2) and raw.sfreq == 1000.0 and raw.channels[-1] == "Cz"
    assert raw.subjects == ["S01", "S02"]
    np.testing.assert_array_equal(raw.data[-1], 0.0)  # recorded against Cz
    lines, problems = describe_folder(out)
    assert "song 21 'First Fires' 55.97 BPM: raw song21_raw.mat: shape (129, 10000, 2) at 1000 Hz, 10.0 s" \
        in lines
    assert problems == []
    freqs, psd = welch(raw.eeg(0)[:124], fs=1000.0, nperseg=1000)
    line = psd[:, freqs == 60.0].mean()
    assert line > 20 * np.median(psd[:, (freqs > 50) & (freqs < 70) & (freqs != 60.0)])
    # the preprocessed file shows the same brain: decimated, average-referenced raw below 30 Hz
    imputed = folder.load_song(21).eeg(0)
    model = raw.eeg(0)[[raw.channels.index(c) for c in MODEL_CHANNELS], ::8]
    model = model - model.mean(axis=0)
    sos = butter(4, 30.0, fs=125.0, output="sos")
    r = np.corrcoef(sosfiltfilt(sos, model).ravel(), sosfiltfilt(sos, imputed).ravel())[0, 1]
    assert r > 0.95


def test_user_audio_resampled(tmp_path):
    t = np.arange(int(3.0 * 44100)) / 44100
    soundfile.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 330 * t) * (t % 0.5 < 0.1), 44100)
    soundfile.write(tmp_path / "b.flac", 0.2 * np.random.default_rng(0).standard_normal(2 * 16000), 16000)
    out = simulate(tmp_path / "sim", n_subjects=1, audio_files=[tmp_path / "a.wav", tmp_path / "b.flac"],
                   progress=False)
    folder = NMEDTFolder(out)
    assert folder.song_ids == [21, 22]
    assert folder.load_song(21).n_times == 375 and folder.load_song(22).n_times == 250
    assert folder.load_stimulus(21).size == 3 * 22050


def test_music_dataset_names_its_songs_after_the_files(tmp_path):
    """A --music dataset fills NMED-T's slots with other music: 'info' and the replayed stream name the
    files, and claim no tempo (they used to say song 21 'First Fires' 55.97 BPM)."""
    t = np.arange(int(3.0 * 22050)) / 22050
    soundfile.write(tmp_path / "Lava Lake.ogg", 0.3 * np.sin(2 * np.pi * 330 * t), 22050)
    out = simulate(tmp_path / "sim", n_subjects=1, audio_files=[tmp_path / "Lava Lake.ogg"], progress=False)
    info = NMEDTFolder(out).load_song(21).info
    assert (info.title, np.isnan(info.bpm)) == ("Lava Lake", True)
    lines, problems = describe_folder(out)
    assert any(line.startswith("song 21 'Lava Lake': ") for line in lines) and not problems
    # a procedural dataset keeps NMED-T's table
    assert NMEDTFolder(simulate(tmp_path / "proc", n_songs=1, n_subjects=1, seconds=2.0,
                                progress=False)).load_song(21).info.title == "First Fires"


@pytest.mark.parametrize("manifest", [
    "{not json", "[]", '{"generator": "someone else", "songs": [21], "audio_files": ["x.wav"]}',
    '{"generator": "eegmusic simulate", "songs": [21, 22], "audio_files": ["x.wav"]}',
    '{"generator": "eegmusic simulate", "songs": ["21"], "audio_files": ["x.wav"]}',
    '{"generator": "eegmusic simulate", "songs": [21], "audio_files": [null]}',
])
def test_an_edited_manifest_falls_back_to_nmedt_titles(sim_dir, tmp_path, manifest):
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "song21_Imputed.mat").symlink_to(sim_dir / "song21_Imputed.mat")
    (folder / "simulation.json").write_text(manifest)
    assert NMEDTFolder(folder).load_song(21).info.title == "First Fires"


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(n_songs=0), ConfigError, "--n-songs must be 1..10"),
    (dict(n_songs=11), ConfigError, "--n-songs must be 1..10"),
    (dict(n_subjects=0), ConfigError, "--n-subjects must be at least 1"),
    (dict(seconds=1.0), ConfigError, "--duration must be at least 2"),
    (dict(snr=0.0), ConfigError, "--snr is the evoked share"),
    (dict(snr=1.5), ConfigError, "--snr is the evoked share"),
    (dict(audio_files=["/nonexistent/x.wav"]), DataFormatError, "/nonexistent/x.wav: audio file not found"),
])
def test_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message.replace(".", r"\.")) as info:
        simulate(tmp_path / "x", **{"seconds": 3, "n_subjects": 1, "n_songs": 1, "progress": False, **kwargs})
    assert "\n" not in str(info.value)


def test_rerun_replaces_previous_simulation_but_never_real_data(tmp_path):
    out = simulate(tmp_path / "sim", n_songs=3, n_subjects=1, seconds=2, progress=False)
    simulate(out, n_songs=1, n_subjects=1, seconds=2, progress=False)
    assert NMEDTFolder(out).song_ids == [21]
    assert sorted(p.name for p in (out / "stimuli").iterdir()) == ["song21.wav"]
    assert json.loads((out / "simulation.json").read_text())["complete"] is True
    real = tmp_path / "real"
    real.mkdir()
    (real / "song21_Imputed.mat").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="not written by eegmusic simulate"):
        simulate(real, n_songs=1, n_subjects=1, seconds=2, progress=False)
    assert (real / "song21_Imputed.mat").read_bytes() == b"precious"
    # a damaged manifest of ours: named as what stops the overwrite, not as files of someone else's
    (out / "simulation.json").write_text('{"generator": "eegmusic sim')
    with pytest.raises(ConfigError, match=r"holds a simulation\.json that is not readable as eegmusic"):
        simulate(out, n_songs=1, n_subjects=1, seconds=2, progress=False)
    assert (out / "song21_Imputed.mat").is_file()


def test_cli_simulate(tmp_path, capsys):
    from eegmusic.stream.cli import main

    assert main(["simulate", "--out", str(tmp_path / "s"), "--n-songs", "1", "--n-subjects", "1",
                 "--duration", "3", "--no-progress"]) == 0
    assert "eegmusic info" in capsys.readouterr().out
    assert (tmp_path / "s" / "song21_Imputed.mat").is_file()
    assert main(["simulate", "--out", str(tmp_path / "t"), "--n-songs", "12"]) == 2


@pytest.mark.parametrize("snr", ["0", "1"])
def test_cli_snr_is_refused_at_the_ends_by_the_parser(tmp_path, capsys, snr):
    """The help said 0..1 and the parser took 1, which simulate then refused as outside (0, 1)."""
    from eegmusic.stream.cli import main

    assert main(["simulate", "--out", str(tmp_path / "s"), "--snr", snr]) == 2
    err = capsys.readouterr().err
    assert f"error: --snr must be > 0 and < 1 (got '{snr}')" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_cli_snr_help_says_the_open_interval(capsys):
    from eegmusic.stream.cli import main

    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "evoked share of EEG variance, between 0 and 1 (not 0 or 1;" in help_text


@pytest.mark.parametrize(("old", "new"), [("--songs", "--n-songs"), ("--subjects", "--n-subjects"),
                                          ("--seconds", "--duration")])
def test_cli_simulate_names_a_renamed_option(tmp_path, capsys, old, new):
    from eegmusic.stream.cli import main

    assert main(["simulate", "--out", str(tmp_path / "s"), old, "3"]) == 2
    err = capsys.readouterr().err
    assert f"{old} is now {new}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------------------------------
# Music


def test_songs_distinct_deterministic_and_sectioned():
    a = generate_song(27, bpm=108.7, seconds=40.0, seed=0)
    assert a.dtype == np.float32 and a.size == 40 * 22050
    assert np.max(np.abs(a)) == pytest.approx(0.9, abs=1e-3)
    np.testing.assert_array_equal(a, generate_song(27, bpm=108.7, seconds=40.0, seed=0))
    b = generate_song(28, bpm=120.0, seconds=40.0, seed=0)
    assert np.corrcoef(a, b)[0, 1] < 0.2
    # the spectrum changes with the sections: spectral centroid of 2-s blocks varies
    blocks = a[: 20 * 44100].reshape(20, 44100)
    spectra = np.abs(np.fft.rfft(blocks, axis=1))
    freqs = np.fft.rfftfreq(44100, 1 / 22050)
    centroid = (spectra * freqs).sum(axis=1) / spectra.sum(axis=1)
    assert centroid.max() > 1.5 * centroid.min()


def test_tempo_shows_in_onsets():
    audio = generate_song(30, bpm=150.0, seconds=30.0, seed=1)
    envelopes, onsets = fm.stimulus_features(audio, audio_sfreq=22050, sfreq=125.0, n_times=30 * 125)
    spectrum = np.abs(np.fft.rfft(onsets - onsets.mean()))
    freqs = np.fft.rfftfreq(onsets.size, 1 / 125.0)
    band = (freqs > 0.5) & (freqs < 6.0)
    peak = freqs[band][np.argmax(spectrum[band])]
    beat_hz = 150.0 / 60.0
    assert min(abs(peak - k * beat_hz / 2) for k in (1, 2, 4)) < 0.1  # half, one or two beats


# ---------------------------------------------------------------------------------------------
# Forward model


def test_sphere_leadfield_matches_centred_dipole_limit():
    rng = np.random.default_rng(0)
    radius = 0.09
    elec = rng.standard_normal((20, 3))
    elec = radius * elec / np.linalg.norm(elec, axis=1, keepdims=True)
    lf = fm.sphere_leadfield(np.array([[0.0, 0.0, 1e-6]]), elec, radius=radius, conductivity=0.33)
    # a dipole at the centre of a homogeneous sphere: 3 p·r̂ / (4π σ R²)
    expected = 3.0 * elec / radius / (4 * np.pi * 0.33 * radius**2)
    np.testing.assert_allclose(lf[:, 0, :], expected, rtol=1e-3)


def test_sphere_leadfield_matches_mne_sphere_model():
    mne = pytest.importorskip("mne")
    radius = 0.09
    rng = np.random.default_rng(1)
    elec = rng.standard_normal((24, 3))
    elec[:, 2] = np.abs(elec[:, 2])
    elec = radius * elec / np.linalg.norm(elec, axis=1, keepdims=True)
    names = [f"C{i}" for i in range(len(elec))]
    info = mne.create_info(names, 100.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage(ch_pos=dict(zip(names, elec, strict=True)),
                                                   coord_frame="head"))
    # one conductivity in two shells: a homogeneous sphere
    sphere = mne.make_sphere_model(r0=(0.0, 0.0, 0.0), head_radius=radius, relative_radii=(0.999, 1.0),
                                   sigmas=(0.33, 0.33), verbose="error")
    pos, ori = np.array([[0.03, -0.01, 0.04]]), np.array([[0.3, 0.2, 0.9]]) / np.linalg.norm([0.3, 0.2, 0.9])
    dipole = mne.Dipole(times=[0.0], pos=pos, amplitude=[1.0], ori=ori, gof=[100.0])
    fwd, _ = mne.make_forward_dipole(dipole, sphere, info, verbose="error")
    theirs = fwd["sol"]["data"][:, 0]
    mine = fm.sphere_leadfield(pos, elec, radius=radius)[:, 0] @ ori[0]
    # both are defined up to the reference: compare average-referenced
    np.testing.assert_allclose(mine - mine.mean(), theirs - theirs.mean(), rtol=1e-5,
                               atol=1e-6 * np.abs(theirs).max())


def test_trf_has_p1_n1_p2():
    kernel = fm.trf_kernel(1000.0)
    t_ms = np.arange(kernel.size)
    assert 40 <= t_ms[np.argmax(kernel[:75])] <= 60 and kernel[:75].max() > 0
    assert 90 <= t_ms[np.argmin(kernel)] <= 110 and kernel.min() < 0
    assert 160 <= t_ms[130 + np.argmax(kernel[130:])] <= 200
    later = fm.trf_kernel(1000.0, latency_scale=1.1)
    assert t_ms[np.argmin(later)] > t_ms[np.argmin(kernel)]


def test_auditory_topography_fronto_central_vs_mastoid():
    participant = fm.draw_participant(np.random.default_rng(0))
    head = fm.head_model()
    pattern = head.gain(participant.auditory_pos, participant.auditory_ori).sum(axis=1)
    pattern = fm.average_reference(pattern[:, None])[:, 0]
    label = {name: i for i, name in enumerate(MODEL_CHANNELS)}
    fronto_central = pattern[[label[c] for c in ("E6", "E7", "E106", "Cz")]].mean()
    mastoids = pattern[[label[c] for c in ("E57", "E100")]].mean()
    assert fronto_central > 0 > mastoids  # source up: vertex positive, so the N1 is negative there


def test_onset_locked_erp_p1_n1_p2_at_fronto_central_sites(tmp_path):
    folder = NMEDTFolder(simulate(tmp_path, n_songs=1, n_subjects=1, seconds=60, snr=0.3, progress=False))
    rec = folder.load_song(21)
    _, onsets = fm.stimulus_features(folder.load_stimulus(21), audio_sfreq=22050, sfreq=125.0,
                                     n_times=rec.n_times)
    middle = onsets[1:-1]
    peaks = np.flatnonzero((middle > onsets[:-2]) & (middle >= onsets[2:]) & (middle > 2.5)) + 1
    peaks = peaks[(peaks > 12) & (peaks < rec.n_times - 50)]
    assert peaks.size > 50
    site = rec.eeg(0)[[rec.channels.index(c) for c in ("E6", "E7", "E106", "Cz")]].mean(axis=0)
    erp = np.mean([site[i - 12:i + 50] - site[i - 12:i].mean() for i in peaks], axis=0)
    t_ms = np.arange(-12, 50) * 8
    n1 = np.argmin(erp)
    assert 80 <= t_ms[n1] <= 136 and erp[n1] < 0
    after = n1 + np.argmax(erp[n1:n1 + 20])
    assert 150 <= t_ms[after] <= 260 and erp[after] > erp[n1] + 0.5 * abs(erp[n1])
    before = 12 + np.argmax(erp[12:n1])
    assert 24 <= t_ms[before] <= 80 and erp[before] > erp[n1]


@pytest.mark.parametrize("snr", [0.01, 0.03, 0.3])
def test_snr_is_evoked_share_of_variance(snr):
    participant = fm.draw_participant(np.random.default_rng(5))
    audio = generate_song(23, bpm=74.26, seconds=12.0, seed=0)
    env, on = fm.stimulus_features(audio, audio_sfreq=22050, sfreq=125.0, n_times=1500)
    evoked, rest = fm.simulate_net(participant, env, on, sfreq=125.0, snr=snr, rng=np.random.default_rng(1))
    var_e = np.mean(fm.average_reference(evoked) ** 2)
    var_r = np.mean(fm.average_reference(rest) ** 2)
    assert var_e / (var_e + var_r) == pytest.approx(snr, rel=1e-6)


def test_background_alpha_posterior_blinks_frontal():
    participant = fm.draw_participant(np.random.default_rng(2))
    rest = fm.average_reference(fm.background(participant, 125 * 60, 125.0, np.random.default_rng(3)))
    label = {name: i for i, name in enumerate(MODEL_CHANNELS)}
    freqs, psd = welch(rest, fs=125.0, nperseg=500)
    oz = psd[label["E75"]]
    alpha = (freqs > participant.alpha_hz - 1.5) & (freqs < participant.alpha_hz + 1.5)
    flank = ((freqs > 5) & (freqs < 7)) | ((freqs > 15) & (freqs < 18))
    assert oz[alpha].mean() > 2 * oz[flank].mean()
    low = (freqs > 1) & (freqs < 3)
    assert psd[:, low].mean() > psd[:, (freqs > 20) & (freqs < 30)].mean() * 5  # 1/f
    # blinks: large slow deflections on the frontal pole, not at the back
    slow = sosfiltfilt(butter(2, 3.0, fs=125.0, output="sos"), rest, axis=1)
    frontal, occipital = np.abs(slow[label["E25"]]), np.abs(slow[label["E75"]])
    assert np.percentile(frontal, 99.5) > 2 * np.percentile(occipital, 99.5)


# ---------------------------------------------------------------------------------------------
# Decodability: a ridge backward model recovers the music's mel bands from the simulated EEG

N_MEL = 16
LAG_STEP = 2          # samples: lags 0, 16, …, 240 ms at 125 Hz
N_LAGS = 16
N_COMPONENTS = 16     # principal components of the EEG (fit on training data only) keep the model small


def _log_mel(audio: np.ndarray, n_times: int) -> np.ndarray:
    """16 log-mel bands (HTK mel scale, 30 Hz-11 kHz) of 2048-sample frames, at the EEG times."""
    hop, n_fft = 176, 2048  # 176 samples ≈ 1/125 s at 22050 Hz
    padded = np.pad(audio.astype(np.float64), (n_fft // 2, n_fft // 2))
    n_frames = 1 + (padded.size - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1 / 22050)
    mel_edges = np.linspace(2595 * np.log10(1 + 30 / 700), 2595 * np.log10(1 + 11025 / 700), N_MEL + 2)
    edges = 700 * (10 ** (mel_edges / 2595) - 1)
    bank = np.stack([np.clip(np.minimum((freqs - edges[b]) / (edges[b + 1] - edges[b]),
                                        (edges[b + 2] - freqs) / (edges[b + 2] - edges[b + 1])), 0, None)
                     for b in range(N_MEL)])
    log_mel = np.log10(power @ bank.T + 1e-6).T
    frame_t = np.arange(n_frames) * hop / 22050
    t = np.arange(n_times) / 125.0
    return np.stack([np.interp(t, frame_t, band) for band in log_mel])


def _backward_model_r(eeg: np.ndarray, target: np.ndarray, alpha: float = 1e3) -> float:
    """Mean Pearson r over mel bands on the last 20 % after training on the first 80 %."""
    eeg = sosfiltfilt(butter(2, [0.5, 20.0], btype="band", fs=125.0, output="sos"), eeg, axis=1)
    target = sosfiltfilt(butter(2, 0.5, btype="high", fs=125.0, output="sos"), target, axis=1)
    n = eeg.shape[1]
    split = int(0.8 * n)
    span = LAG_STEP * (N_LAGS - 1) + 1
    centred = eeg - eeg[:, :split].mean(axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(centred[:, :split] @ centred[:, :split].T / split)
    comps = (vectors[:, ::-1][:, :N_COMPONENTS].T @ centred) / np.sqrt(values[::-1][:N_COMPONENTS, None])
    # stimulus at t from EEG at t + lag (the brain responds after the sound)
    lagged = np.concatenate([comps[:, k * LAG_STEP:n - span + 1 + k * LAG_STEP] for k in range(N_LAGS)])
    x, y = lagged.T, target[:, :n - span + 1].T
    x_train, y_train, x_test, y_test = x[:split - span], y[:split - span], x[split:], y[split:]
    mx, my = x_train.mean(axis=0), y_train.mean(axis=0)
    xc = x_train - mx
    weights = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y_train - my))
    pred = (x_test - mx) @ weights
    return float(np.mean([np.corrcoef(pred[:, b], y_test[:, b])[0, 1] for b in range(N_MEL)]))


def _shuffle_blocks(eeg: np.ndarray, rng: np.random.Generator, block: int = 250) -> np.ndarray:
    n_blocks = eeg.shape[1] // block
    order = rng.permutation(n_blocks)
    blocks = eeg[:, : n_blocks * block].reshape(eeg.shape[0], n_blocks, block)
    return blocks[:, order].reshape(eeg.shape[0], -1)


def test_decodable_above_shuffled_and_rises_with_snr(tmp_path):
    seconds = 40
    results: dict[str, list[float]] = {}
    targets: dict[int, np.ndarray] = {}  # same seed, same music at every SNR
    for name, snr in (("low", 0.01), ("default", DEFAULT_SNR), ("high", 0.3)):
        folder = NMEDTFolder(simulate(tmp_path / name, n_songs=2, n_subjects=1, seconds=seconds, snr=snr,
                                      seed=0, progress=False))
        for song_id in folder.song_ids:
            rec = folder.load_song(song_id)
            if song_id not in targets:
                targets[song_id] = _log_mel(folder.load_stimulus(song_id), rec.n_times)
            target = targets[song_id]
            results.setdefault(name, []).append(_backward_model_r(rec.eeg(0), target))
            if name == "default":
                shuffled = _shuffle_blocks(rec.eeg(0), np.random.default_rng(song_id))
                results.setdefault("shuffled", []).append(
                    _backward_model_r(shuffled, target[:, : shuffled.shape[1]]))
    mean = {name: float(np.mean(r)) for name, r in results.items()}
    print("decodability mean r:", {k: round(v, 3) for k, v in mean.items()})
    assert abs(mean["shuffled"]) < 0.1
    assert mean["default"] > mean["shuffled"] + 0.1
    assert mean["low"] < mean["default"] < mean["high"]


@pytest.mark.parametrize(("early_edit", "later_edit", "expected"), [
    ({"music_start_s": "junk"}, {"music_start_s": "junk"}, None),   # raised in the formatting
    ({}, {"music_start_s": "junk"}, None),
    ({}, {"seed": None},
     "holds other listeners than --data (simulated with no seed recorded, --data with seed 0)"),
    # a cap against the NMED-T net: it printed "--data with None"
    ({}, {"montage": "openbci8"},
     "holds other listeners than --data (simulated with cap openbci8, --data with the NMED-T net)"),
    ({}, {"songs": "21"}, None),
    ({}, {"audio_files": 5},
     "was simulated from other music than --data (song 21: song21.wav against x.wav)"),
    ({}, {"songs": [21, "x"]}, None),
    ({}, {"generator": "other"}, None),
    ({}, {"music_start_s": 0}, "is the same excerpt as --data (music from 0 s in both)"),
    # the later excerpt starts inside --data's: validation would hear music the model trained on
    ({"seconds": 120}, {"seconds": 30}, "overlaps --data's excerpt (music 90-120 s against 0-120 s)"),
    ({"seconds": 90}, {"seconds": 30}, None),          # right after it: what train --val-data wants
    ({"seconds": "junk"}, {"seconds": 30}, None),
    ({"seconds": 120}, {"seconds": -5.0}, None),
    # a --music simulation without --duration runs to the end of its files
    ({"seconds": None}, {"seconds": 30},
     "overlaps --data's excerpt (music 90-120 s against 0 s to the files' end)"),
    ({"seconds": 90}, {"seconds": None}, None),
    ({"seconds": None, "audio_files": None}, {"seconds": 30, "audio_files": None}, None),  # unreadable
])
def test_excerpt_check_survives_an_edited_manifest(tmp_path, early_edit, later_edit, expected):
    """train --val-data reads both manifests; an edited value decides nothing it cannot read."""
    import json

    from eegmusic.replay.manifest import excerpt_mismatch

    base = {"generator": "eegmusic simulate", "songs": [21], "audio_files": ["x.wav"], "seed": 0,
            "music_start_s": 0.0}
    for name, manifest in (("early", {**base, **early_edit}),
                           ("later", {**base, "music_start_s": 90.0, **later_edit})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "simulation.json").write_text(json.dumps(manifest))
    assert excerpt_mismatch(tmp_path / "early", tmp_path / "later") == expected


def _float_wav(path: Path, audio: np.ndarray, sfreq: int = 22050) -> Path:
    soundfile.write(path, audio.astype(np.float32), sfreq, subtype="FLOAT")
    return path


@pytest.mark.parametrize(("peak", "words"), [
    (1e20, "audio peaks at 1e+20 times full scale"),   # a damaged sample: the dataset was all NaN, exit 0
    (0.0, "is silent"),   # written, then refused by train and evaluate ("stimulus of song 21 ... is silent")
    (2e-5, "is silent"),
])
def test_music_far_above_full_scale_or_silent_is_refused_before_anything_is_written(tmp_path, capsys, peak,
                                                                                    words):
    from eegmusic.stream.cli import main

    t = np.arange(3 * 22050) / 22050
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) if peak > 1 else peak * np.sin(2 * np.pi * 440 * t)
    if peak > 1:
        audio[22050] = peak   # one sample
    music = _float_wav(tmp_path / "spike.wav", audio)
    out = tmp_path / "sim"
    assert main(["simulate", "--music", str(music), "--n-subjects", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(music) in err[0] and words in err[0], err
    assert not out.exists()


def test_music_louder_than_full_scale_is_scaled_not_clipped(tmp_path, caplog):
    """A float file peaking at 1.5 was hard-clipped in the stored stimulus (23 % of samples at ±1), while
    the EEG was simulated from the unclipped audio: the targets were not what the listener heard."""
    t = np.arange(3 * 22050) / 22050
    audio = 1.5 * np.sin(2 * np.pi * 220 * t)
    loud = _float_wav(tmp_path / "loud.wav", audio)
    quiet = _float_wav(tmp_path / "quiet.wav", audio / 1.5 * 0.99)
    runs = {name: simulate(tmp_path / name, n_subjects=1, audio_files=[music], progress=False)
            for name, music in (("loud", loud), ("quiet", quiet))}
    said = [r.getMessage() for r in caplog.records if "louder than a 16-bit WAV" in r.getMessage()]
    assert said == [f"--music {loud} peaks at 1.5 times full scale, louder than a 16-bit WAV holds: scaled "
                    "by 0.66 (to peak at 0.99) for the stimulus and the EEG alike"], said
    stored = {name: NMEDTFolder(out).load_stimulus(21) for name, out in runs.items()}
    assert np.mean(np.abs(stored["loud"]) > 0.999) == 0.0
    np.testing.assert_allclose(stored["loud"], stored["quiet"], atol=1e-4)
    # the EEG heard the stored stimulus: the same as from the same music at full scale
    np.testing.assert_allclose(NMEDTFolder(runs["loud"]).load_song(21).data,
                               NMEDTFolder(runs["quiet"]).load_song(21).data, rtol=1e-6, atol=1e-6)
