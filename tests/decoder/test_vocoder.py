"""Streaming vocoders: quality, registry, streaming == block, librosa convention, gaps, bad frames."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from eegmusic.benchmarks.bench_vocoder import music_excerpt
from eegmusic.decoder.melspec import HOP_LENGTH, N_FFT, N_MELS, mel_db
from eegmusic.decoder.vocoder import (
    METHODS,
    N_BINS,
    StreamingVocoder,
    mel_db_to_magnitude,
    mel_db_to_magnitude_nnls,
    mel_log_spectral_distance,
    overlap_add,
    rtpghi_block,
    rtpghi_phase,
    spectral_convergence,
    stft_magnitude,
    vocode,
)
from eegmusic.stream.errors import ConfigError, ModelError


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return music_excerpt(4.0)


@pytest.fixture(scope="module")
def music_mel(music) -> np.ndarray:
    return mel_db(music)


def _random_phase_sc(magnitude: np.ndarray) -> float:
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, magnitude.shape)
    return spectral_convergence(overlap_add(magnitude * np.exp(1j * phase)), magnitude)


def test_rtpghi_true_magnitude_spectral_convergence(music):
    magnitude = stft_magnitude(music)
    sc = {}
    for lookahead in (0, 1):
        phase = rtpghi_phase(magnitude, lookahead=lookahead)
        sc[lookahead] = spectral_convergence(overlap_add(magnitude * np.exp(1j * phase)), magnitude)
    assert sc[1] < -18.0, sc
    # causal is worse but still far better than no phase information at all
    assert sc[1] < sc[0] < _random_phase_sc(magnitude) - 6.0, sc


def test_overlap_add_is_librosa_istft(music):
    stft = librosa.stft(music, n_fft=N_FFT, hop_length=HOP_LENGTH)
    ours = overlap_add(stft)
    theirs = librosa.istft(stft, n_fft=N_FFT, hop_length=HOP_LENGTH)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    # and it inverts the analysis: the phase convention is librosa's
    np.testing.assert_allclose(ours, music[:ours.size], atol=2e-6)


def test_early_synthesis_still_inverts_a_consistent_stft(music):
    """The early window is silent over each segment's first quarter, its gain periodic: still exact."""
    from eegmusic.decoder.vocoders.framing import EARLY_WINDOW

    assert not EARLY_WINDOW[:HOP_LENGTH].any() and EARLY_WINDOW[HOP_LENGTH + HOP_LENGTH // 2:].any()
    stft = librosa.stft(music, n_fft=N_FFT, hop_length=HOP_LENGTH)
    ours = overlap_add(stft, "early")
    np.testing.assert_allclose(ours, music[:ours.size], atol=2e-6)


def test_early_synthesis_costs_little_on_music_and_plays_a_frame_sooner(music, music_mel):
    lsd = {synthesis: mel_log_spectral_distance(vocode(music_mel, synthesis=synthesis, length=music.size),
                                                music_mel) for synthesis in ("hann", "early")}
    assert abs(lsd["early"] - lsd["hann"]) < 0.1, lsd
    early, hann = StreamingVocoder(synthesis="early"), StreamingVocoder(synthesis="hann")
    assert hann.latency_frames - early.latency_frames == 1
    played = {name: np.concatenate([v.process(music_mel[:, n]) for n in range(30)])
              for name, v in (("early", early), ("hann", hann))}
    # the same sound, one hop sooner (not equal: the synthesis windows differ)
    a, b = played["early"][HOP_LENGTH * 4:HOP_LENGTH * 28], played["hann"][HOP_LENGTH * 5:HOP_LENGTH * 29]
    sooner = np.corrcoef(a, b)[0, 1]
    same_time = np.corrcoef(played["early"][HOP_LENGTH * 5:HOP_LENGTH * 29], b)[0, 1]
    assert sooner > 0.9 and sooner > same_time + 0.2, (sooner, same_time)


def test_a_synthesis_window_the_method_lacks_is_one_line():
    with pytest.raises(ConfigError, match="has no synthesis window 'late'; use one of hann, early"):
        StreamingVocoder("rtisi", synthesis="late")


@pytest.mark.parametrize("synthesis", ["hann", "early"])
@pytest.mark.parametrize("lookahead", [0, 1])
def test_streaming_equals_block(music_mel, lookahead, synthesis):
    streamed = vocode(music_mel, method="rtpghi", lookahead=lookahead, synthesis=synthesis)
    block = rtpghi_block(music_mel, lookahead=lookahead, synthesis=synthesis)
    assert streamed.shape == block.shape == (HOP_LENGTH * (music_mel.shape[1] - 1),)
    assert np.abs(block).max() > 0.1
    np.testing.assert_allclose(streamed, block, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_vocode_lines_up_with_the_mel(music_mel, method):
    """The latency is removed exactly: shifting the result by one hop fits the mel's magnitude worse."""
    target = mel_db_to_magnitude(music_mel)
    out = vocode(music_mel, method=method)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    aligned = spectral_convergence(out, target)
    early = spectral_convergence(np.concatenate([out[HOP_LENGTH:], np.zeros(HOP_LENGTH, np.float32)]), target)
    late = spectral_convergence(np.concatenate([np.zeros(HOP_LENGTH, np.float32), out[:-HOP_LENGTH]]), target)
    assert aligned < -8.0
    assert aligned < early - 1.0 and aligned < late - 1.0


@pytest.mark.parametrize("method,lookahead,synthesis,latency",
                         [("rtpghi", 1, "hann", 3), ("rtpghi", 0, "hann", 2), ("griffinlim", 3, "hann", 5),
                          ("rtisi", 1, "hann", 3), ("rtisi", 2, "hann", 4), ("rtisi", 0, "hann", 2),
                          ("rtpghi", 1, "early", 2), ("griffinlim", 3, "early", 4), ("rtisi", 1, "early", 2),
                          ("rtisi", 2, "early", 3)])
def test_chunk_timing_and_latency(music_mel, method, lookahead, synthesis, latency):
    vocoder = StreamingVocoder(method, lookahead, synthesis=synthesis)
    assert vocoder.latency_frames == latency
    chunks = [vocoder.process(music_mel[:, n]) for n in range(12)]
    assert all(c.shape == (HOP_LENGTH,) and c.dtype == np.float32 for c in chunks)
    # nothing before the lookahead is filled; sound right after
    assert all(not np.any(c) for c in chunks[:lookahead])
    assert np.any(chunks[lookahead])


def test_reset_replays_identically(music_mel):
    vocoder = StreamingVocoder()
    first = np.concatenate([vocoder.process(music_mel[:, n]) for n in range(20)])
    vocoder.reset()
    second = np.concatenate([vocoder.process(music_mel[:, n]) for n in range(20)])
    np.testing.assert_array_equal(first, second)


def test_fade_out_and_restart_have_no_click(music_mel):
    vocoder = StreamingVocoder()
    played = np.concatenate([vocoder.process(music_mel[:, n]) for n in range(30)])
    tail = vocoder.fade_out()
    assert tail.shape == (HOP_LENGTH,)
    peak = np.abs(played).max()
    # continuous with what was playing, and silent at its end
    assert abs(tail[0] - played[-1]) < 0.05 * peak
    assert np.abs(tail[-16:]).max() < 1e-3 * peak
    # after a gap the sound starts from silence again (the first window is the fade-in)
    restart = np.concatenate([vocoder.process(music_mel[:, n]) for n in range(40, 44)])
    first = restart[np.flatnonzero(restart)[0]:][:64]
    assert np.abs(first).max() < 0.05 * peak


def test_non_finite_frames_play_as_silence(music_mel):
    vocoder = StreamingVocoder(lookahead=0)
    for n in range(5):
        vocoder.process(music_mel[:, n])
    broken = music_mel[:, 5].copy()
    broken[::3] = np.nan
    out = [vocoder.process(broken), vocoder.process(np.full(N_MELS, np.inf)),
           vocoder.process(music_mel[:, 7])]
    assert all(np.isfinite(chunk).all() for chunk in out)
    assert vocoder.nonfinite_frames == 2


def test_silence_in_silence_out():
    vocoder = StreamingVocoder()
    out = np.concatenate([vocoder.process(np.full(N_MELS, -80.0)) for _ in range(10)])
    assert np.isfinite(out).all() and np.abs(out).max() < 1e-3


@pytest.mark.parametrize("frame,message", [
    (np.zeros(127), r"mel frame has shape \(127,\); the vocoder needs \(128,\)"),
    (np.zeros((128, 2)), r"mel frame has shape \(128, 2\)"),
    (np.float32(0.0), r"mel frame has shape \(\)"),
])
def test_wrong_frame_size(frame, message):
    with pytest.raises(ModelError, match=message):
        StreamingVocoder().process(frame)


def test_wrong_mel_array():
    with pytest.raises(ModelError, match=r"mel-dB array has shape \(64, 10\)"):
        vocode(np.zeros((64, 10)))


@pytest.mark.parametrize("method,lookahead,message", [
    ("wavenet", None, "unknown vocoder method 'wavenet'; use one of rtisi, rtpghi, griffinlim"),
    ("rtpghi", 2, "--lookahead of the rtpghi vocoder must be 0 or 1 frames, got 2"),
    ("rtisi", 3, "--lookahead of the rtisi vocoder must be 0..2 frames, got 3"),
    ("griffinlim", -1, "--lookahead of the griffinlim vocoder must be 0..16 frames, got -1"),
])
def test_bad_options(method, lookahead, message):
    with pytest.raises(ConfigError, match=message):
        StreamingVocoder(method, lookahead)


def test_magnitude_is_clipped_pseudo_inverse():
    rng = np.random.default_rng(1)
    frame = rng.uniform(-80, 0, N_MELS)
    magnitude = mel_db_to_magnitude(frame)
    assert magnitude.shape == (N_BINS,) and (magnitude >= 0).all()
    # re-projecting onto the mel basis comes close to the frame where the pseudo-inverse is exact
    stft = np.abs(librosa.stft(music_excerpt(1.0), n_fft=N_FFT, hop_length=HOP_LENGTH))
    mel = mel_db(music_excerpt(1.0))
    recovered = mel_db_to_magnitude(mel)
    assert 20 * np.log10(np.linalg.norm(recovered - stft) / np.linalg.norm(stft)) < -3.0


def test_vocode_command(tmp_path, capsys):
    import soundfile
    from eegmusic.stream.cli import main

    source = tmp_path / "song.wav"
    soundfile.write(source, librosa.resample(music_excerpt(1.5), orig_sr=22050, target_sr=44100), 44100)
    out = tmp_path / "vocoded.wav"
    assert main(["vocode", str(source), "--out", str(out), "--lookahead", "0"]) == 0
    printed = capsys.readouterr().out
    assert "spectral convergence" in printed and "log-spectral distance" in printed
    assert "real-time factor" in printed
    sc = float(printed.split("spectral convergence")[1].split("dB")[0])
    assert sc < -3.0
    data, sfreq = soundfile.read(out)
    assert sfreq == 22050 and abs(data.size - int(1.5 * 22050)) <= 1 and np.abs(data).max() > 0.1
    assert "asked for more" not in printed
    # a --duration past the file's end: the whole file, and the line says so (it wrote 1.5 s silently)
    assert main(["vocode", str(source), "--out", str(out), "--lookahead", "0", "--duration", "30",
                 "--overwrite"]) == 0
    assert "1.5 s (all of it: --duration 30 asked for more)" in capsys.readouterr().out
    # decode's spelling of the option works here too, so a value tried here pastes into decode
    assert main(["vocode", str(source), "--out", str(out), "--vocoder-lookahead", "2", "--overwrite"]) == 0
    assert "lookahead 2," in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["vocode", "/nonexistent/song.wav", "--out", "x.wav"], "/nonexistent/song.wav: audio file not found"),
    (["vocode", "SRC", "--out", "x.wav", "--lookahead", "3"],
     "--lookahead of the rtisi vocoder must be 0..2 frames, got 3"),
    (["vocode", "SRC", "--out", "x.wav", "--duration", "-1"], "--duration must be > 0"),
    # an OverflowError traceback on a recording, "unreadable audio" on a file
    (["vocode", "SRC", "--out", "x.wav", "--duration", "1e308"], "--duration must be > 0 and at most 21600"),
    (["vocode", "SRC", "--out", "x.wav", "--seconds", "3"], "--seconds is now --duration"),
    (["vocode", "SRC", "--out", "x.wav"], "unreadable audio"),
])
def test_vocode_command_bad_input(tmp_path, capsys, argv, message):
    from eegmusic.stream.cli import main

    source = tmp_path / "not_audio.wav"
    source.write_text("this is not audio")
    argv = [str(source) if a == "SRC" else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_vocode_of_a_silent_file_is_refused(tmp_path, capsys):
    """Digital silence has no spectrum to compare with: the quality lines divided by a zero reference
    ("spectral convergence 379.69 dB")."""
    import soundfile
    from eegmusic.stream.cli import main

    source = tmp_path / "silent.wav"
    soundfile.write(source, np.zeros(22050, np.float32), 22050)
    assert main(["vocode", str(source), "--out", str(tmp_path / "x.wav")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and (f"audio file {source} is silent (no sample reaches 0.0001 of full scale); "
                              "nothing to vocode") in err[0]
    assert "spectral convergence" not in captured.out and not (tmp_path / "x.wav").exists()
    # silence only in the part --duration takes: that part is what is vocoded
    soundfile.write(source, np.r_[np.zeros(22050), music_excerpt(1.0)].astype(np.float32), 22050)
    assert main(["vocode", str(source), "--out", str(tmp_path / "x.wav"), "--duration", "0.5"]) == 2
    assert "the first 0.5 s of audio file" in capsys.readouterr().err


def test_bad_magnitude_and_options():
    with pytest.raises(ConfigError, match="unknown magnitude estimate 'svd'; use one of nnls, pinv"):
        StreamingVocoder(magnitude="svd")
    with pytest.raises(ConfigError, match="vocoder 'rtpghi' does not take these options"):
        StreamingVocoder("rtpghi", n_iter=4)


def test_nnls_magnitude_fits_the_mel(music_mel):
    """The NNLS magnitude's mel is closer to the frame's mel than the clipped pseudo-inverse's."""
    from eegmusic.decoder.melspec import mel_basis

    basis = mel_basis().astype(np.float64)
    target = 10.0 ** (music_mel.astype(np.float64) / 10.0)
    loud = music_mel > music_mel.max() - 60.0  # where both are above the noise of the fit

    def mel_error_db(magnitude):
        fitted = 10.0 * np.log10(basis @ magnitude ** 2 + 1e-12)
        return float(np.mean(np.abs(fitted - 10.0 * np.log10(target))[loud]))

    nnls, pinv = mel_db_to_magnitude_nnls(music_mel), mel_db_to_magnitude(music_mel)
    assert (nnls >= 0).all() and nnls.shape == pinv.shape == (N_BINS, music_mel.shape[1])
    # on this excerpt: 1.0 dB against 2.1 dB (the pseudo-inverse is exact in some bands, far off in others)
    assert mel_error_db(nnls) < 0.6 * mel_error_db(pinv)


def test_rtisi_beats_rtpghi_and_nears_offline_griffin_lim(music, music_mel):
    """The default vocoder: better than RTPGHI alone, close to offline GL-32 on the same magnitude."""
    magnitude = mel_db_to_magnitude_nnls(music_mel)
    offline = librosa.griffinlim(magnitude.astype(np.float32), n_iter=32, hop_length=HOP_LENGTH, n_fft=N_FFT,
                                 random_state=0, length=music.size)
    lsd = {method: mel_log_spectral_distance(vocode(music_mel, method=method, length=music.size), music_mel)
           for method in ("rtisi", "rtpghi")}
    lsd["gl32"] = mel_log_spectral_distance(offline, music_mel)
    assert lsd["rtisi"] < lsd["rtpghi"] - 0.2, lsd
    assert lsd["rtisi"] < lsd["gl32"] + 0.6, lsd
    # the magnitude estimate matters more than the phase: pinv costs every method dB
    pinv = mel_log_spectral_distance(vocode(music_mel, magnitude="pinv", length=music.size), music_mel)
    assert pinv > lsd["rtisi"] + 2.0


def test_default_is_rtisi_with_one_frame_of_lookahead():
    vocoder = StreamingVocoder()
    # the early synthesis window: a frame's samples one frame sooner than librosa's istft would allow
    assert (vocoder.method, vocoder.lookahead, vocoder.synthesis) == ("rtisi", 1, "early")
    assert vocoder.latency_frames == 2
    assert vocoder.magnitude == "nnls"
    assert METHODS[0] == "rtisi"


def test_a_new_vocoder_is_one_class_and_one_registration(monkeypatch, music_mel):
    """A vocoder that obeys the protocol plays through StreamingVocoder and vocode unchanged."""
    from eegmusic.decoder import vocoders
    from eegmusic.decoder.vocoders.framing import OverlapAdd

    class ZeroPhase:  # the simplest honest vocoder: every frame with phase 0
        def __init__(self, lookahead):
            self.lookahead = lookahead
            self.ola = OverlapAdd()

        def push(self, magnitude):
            return self.ola.add(magnitude.astype(complex))

        def drain(self):
            return self.ola.tail()

        def reset(self):
            self.ola.reset()

    monkeypatch.setattr(vocoders, "VOCODERS", dict(vocoders.VOCODERS))
    vocoders.register(vocoders.VocoderSpec("zerophase", ZeroPhase, (0,), 0, "phase 0 (test)"))
    from eegmusic.decoder import vocoder as facade

    monkeypatch.setattr(facade, "VOCODERS", vocoders.VOCODERS)
    out = vocode(music_mel, method="zerophase")
    assert out.shape == (HOP_LENGTH * (music_mel.shape[1] - 1),) and np.abs(out).max() > 0.01
    with pytest.raises(ValueError, match="registered twice"):
        vocoders.register(vocoders.VocoderSpec("zerophase", ZeroPhase, (0,), 0, "again"))


@pytest.mark.parametrize(("peak", "words"), [
    (1e20, "audio peaks at 1e+20 times full scale"),   # one sample: "mel log-spectral distance nan dB"
    (3e29, "audio peaks at 3e+29 times full scale"),   # all of it: a silent WAV written, exit 0
    (1e-40, "is silent"),                               # denormal "sound": no spectrum either
])
def test_vocode_of_audio_far_above_full_scale_or_silent_is_one_line(tmp_path, capsys, peak, words):
    import soundfile
    from eegmusic.stream.cli import main

    audio = music_excerpt(1.0)
    if peak > 1e25:
        audio = audio / np.abs(audio).max() * peak
    elif peak > 1:
        audio[1000] = peak
    else:
        audio = np.full_like(audio, peak)
    source = tmp_path / "spike.wav"
    soundfile.write(source, audio.astype(np.float32), 22050, subtype="FLOAT")
    assert main(["vocode", str(source), "--out", str(tmp_path / "x.wav")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and str(source) in err[0] and words in err[0], err
    assert "spectral convergence" not in captured.out and not (tmp_path / "x.wav").exists()


def test_vocode_scales_audio_louder_than_full_scale_instead_of_writing_it_clipped(tmp_path, caplog):
    """A helper's file fuzz: a float WAV peaking at 300 times full scale was vocoded at that level, so 99.8 %
    of the written samples were clipped while the printed distances (on the unclipped sound) looked fine."""
    import logging

    import soundfile
    from eegmusic.stream.cli import main

    audio = music_excerpt(2.0)
    audio = audio / np.abs(audio).max() * 300.0
    source = tmp_path / "loud.wav"
    soundfile.write(source, audio.astype(np.float32), 22050, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="eegmusic.decoder.cli_vocode"):
        assert main(["vocode", str(source), "--out", str(tmp_path / "x.wav")]) == 0
    assert "peaks at 300 times full scale, louder than a WAV holds: scaled by 0.0033 (to peak at 0.99)" \
        in caplog.text
    written, _ = soundfile.read(tmp_path / "x.wav", dtype="float32")
    clipped = np.mean(np.abs(written) >= 1.0 - 2.0**-15)
    assert clipped < 0.01, clipped
    scaled = audio * 0.99 / 300.0
    rms = float(np.sqrt(np.mean(written**2)))
    assert 0.5 < rms / float(np.sqrt(np.mean(scaled**2))) < 2.0   # the scaled level, not full-scale noise
