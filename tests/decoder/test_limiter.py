"""Listening comfort: the limiter never lets a sample reach 0 dBFS, adds no clicks, and the slow
automatic gain brings quiet and loud music to the same loudness."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.benchmarks.bench_vocoder import music_excerpt
from eegmusic.decoder.limiter import LevelSettings, OutputLevel
from eegmusic.stream.errors import ConfigError

SFREQ = 22050
CEILING = 10.0 ** (-1.0 / 20.0)
BLOCK = 512


def _play(level: OutputLevel, signal: np.ndarray, block: int = BLOCK) -> np.ndarray:
    return np.concatenate([level.process(signal[i:i + block]) for i in range(0, signal.size, block)])


def _bursts(amplitude: float, *, seconds: float = 8.0, fade_s: float = 0.01):
    """A quiet two-tone signal with three 0.5-s bursts at ``amplitude`` (raised-cosine onsets)."""
    t = np.arange(int(seconds * SFREQ)) / SFREQ
    envelope = np.full(t.size, 0.05)
    steady = np.zeros(t.size, dtype=bool)
    for start in (2.0, 4.5, 6.0):
        i0, n, r = int(start * SFREQ), int(0.5 * SFREQ), int(fade_s * SFREQ)
        ramp = np.ones(n)
        ramp[:r] = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
        ramp[-r:] = ramp[:r][::-1]
        envelope[i0:i0 + n] = 0.05 + (amplitude - 0.05) * ramp
        steady[i0 + int(0.02 * SFREQ):i0 + n - r] = True
    signal = envelope * (np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 2000 * t + 1.0))
    return signal, steady


@pytest.mark.parametrize("amplitude", [1.0, 4.0, 10.0, 31.6])  # 0 to +30 dB over full scale
@pytest.mark.parametrize("agc", [True, False])
def test_full_scale_bursts_stay_below_0_dbfs_without_discontinuity(amplitude, agc):
    signal, steady = _bursts(amplitude)
    level = OutputLevel(SFREQ, LevelSettings(agc=agc))
    out = _play(level, signal)
    assert out.dtype == np.float32 and out.shape == signal.shape
    assert np.abs(out).max() <= CEILING + 1e-6 < 1.0
    assert level.limited_samples > 0
    jumps = np.abs(np.diff(out.astype(np.float64)))
    # never a bigger step than the input itself made (no click of its own) ...
    assert jumps.max() <= np.abs(np.diff(signal)).max() + 1e-6
    # ... and inside a loud passage no bigger than the same passage perfectly scaled to the ceiling
    reference = np.abs(np.diff(signal / np.abs(signal).max() * CEILING))
    assert jumps[steady[1:]].max() <= 1.1 * reference.max()


def test_vocoded_bursts_stay_below_0_dbfs():
    """Mel frames 30 dB too loud, through the default vocoder, come out under the ceiling."""
    from eegmusic.decoder.melspec import mel_db
    from eegmusic.decoder.vocoder import StreamingVocoder

    mel = mel_db(music_excerpt(3.0))
    mel[:, 40:70] += 30.0
    vocoder, level = StreamingVocoder(), OutputLevel(SFREQ)
    raw = np.concatenate([vocoder.process(mel[:, n]) for n in range(mel.shape[1])])
    out = np.concatenate([level.process(chunk) for chunk in raw.reshape(-1, BLOCK)])
    assert np.abs(raw).max() > 2.0  # the burst really is over full scale
    assert np.abs(out).max() <= CEILING + 1e-6


def test_automatic_gain_brings_quiet_and_loud_music_to_one_loudness():
    music = np.tile(music_excerpt(4.0, offset_s=0.0), 3).astype(np.float64)
    music /= np.sqrt(np.mean(music ** 2))  # 0 dBFS RMS
    loudness = {}
    for name, rms_db in (("quiet", -30.0), ("loud", -6.0)):
        out = _play(OutputLevel(SFREQ), music * 10.0 ** (rms_db / 20.0))
        tail = out[-4 * SFREQ:].astype(np.float64)
        loudness[name] = 10.0 * np.log10(np.mean(tail ** 2))
    # 24 dB apart going in, within 3 dB of each other and of the -20 dBFS target coming out
    assert abs(loudness["quiet"] - loudness["loud"]) < 3.0, loudness
    assert all(abs(value + 20.0) < 3.0 for value in loudness.values()), loudness


def test_silence_is_not_pumped_up():
    level = OutputLevel(SFREQ)
    noise = 10.0 ** (-70.0 / 20.0) * np.random.default_rng(0).standard_normal(5 * SFREQ)
    out = _play(level, noise)
    assert level.gain_db == 0.0
    np.testing.assert_allclose(out, noise.astype(np.float32), atol=1e-9)
    assert not np.any(_play(level, np.zeros(SFREQ)))


def test_non_finite_samples_play_as_silence():
    level = OutputLevel(SFREQ)
    out = level.process(np.array([0.1, np.nan, np.inf, -np.inf, 0.1]))
    assert np.isfinite(out).all() and out[1] == out[2] == out[3] == 0.0


def test_counters():
    level = OutputLevel(SFREQ, LevelSettings(agc=False))
    level.process(np.full(BLOCK, 2.0))
    counters = level.counters()
    assert counters["limited_samples"] == BLOCK
    assert counters["peak_in_dbfs"] == pytest.approx(6.02, abs=0.01)
    assert counters["gain_db"] == 0.0


@pytest.mark.parametrize("settings,message", [
    (LevelSettings(ceiling_dbfs=0.0), "limiter ceiling 0.0 dBFS must be below 0 dBFS"),
    (LevelSettings(target_dbfs=-0.5), "loudness target -0.5 dBFS must be below the ceiling"),
    (LevelSettings(release_s=0.0), "release_s must be > 0 s"),
    (LevelSettings(max_boost_db=-3.0), "max_boost_db and max_cut_db are magnitudes"),
])
def test_bad_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        OutputLevel(SFREQ, settings)


def test_levelled_sink_keeps_the_whole_audio_sink_contract(tmp_path):
    """Every member of decoder.audio.AudioSink is answered (a protocol member added later fails here)."""
    from eegmusic.decoder.audio import AudioSink, NullSink
    from eegmusic.decoder.limiter import LevelledSink

    sink = LevelledSink(NullSink())
    members = [name for name in vars(AudioSink) if not name.startswith("_")]
    assert {"write", "queued_s", "plays_live", "close"} <= set(members)
    for name in members:
        assert getattr(sink, name) is not None, name
    assert sink.plays_live == NullSink().plays_live and sink.queued_s == 0.0
    sink.close()


def test_the_level_stage_compiles_its_loop_when_built_not_at_the_first_block():
    """The limiter's loop was compiled (or loaded from numba's cache, 0.3-0.4 s) at the first block, after
    the sound device had started: the first sound came that much late and was skipped to hold the latency
    (222 ms in the median of nine decodes into a PulseAudio null sink, against 62 ms built first). A fresh
    process, so that nothing compiled it before; the first block must add no signature of its own."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from eegmusic.decoder.limiter import OutputLevel, _limit\n"
        "assert not _limit.signatures\n"
        "level = OutputLevel(22050)\n"
        "built = list(_limit.signatures)\n"
        "level.process(np.zeros(512, np.float32))\n"
        "level.process(np.zeros(512))\n"
        "print(len(built), len(_limit.signatures))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
