"""``eegmusic vocode`` re-vocodes a ``decode --record`` recording offline; non-recordings get one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from eegmusic.decoder.melspec import AUDIO_SFREQ, HOP_LENGTH, N_MELS, mel_db
from eegmusic.decoder.recording import FrameRecorder

from tests.faults.conftest import assert_one_line_error, run_cli

TONE_HZ = 1000.0
FIRST_K = 300
"""The recording starts mid-stimulus (frame 300, 7 s in), as a decode of a running replay does."""


def _tone_mel(seconds: float = 0.5) -> np.ndarray:
    """Mel-dB frames, shape (128, n), of a 1-kHz tone: what a perfect decoder of that tone records."""
    t = np.arange(int(seconds * AUDIO_SFREQ)) / AUDIO_SFREQ
    return mel_db((0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32))


def _record(folder, mel: np.ndarray, ks: np.ndarray, *, chunk: int = 4):
    """Write frames ``mel[:, i]`` at global indices ``ks[i]`` with the decoder's own recorder."""
    recorder = FrameRecorder(folder, sidecar={"model": "m.onnx", "stream": "cap", "hop_s": 0.096,
                                              "output_kind": "mel_db"})
    for i in range(0, mel.shape[1], chunk):
        part = slice(i, min(i + chunk, mel.shape[1]))
        run = ks[part]
        # the recorder writes consecutive indices from k0: an append ends at a gap
        breaks = [0, *(np.flatnonzero(np.diff(run) != 1) + 1).tolist(), len(run)]
        for a, b in zip(breaks[:-1], breaks[1:], strict=True):
            recorder.append_frames(int(run[a]), mel[:, part][:, a:b], np.arange(b - a), 1000 + i, 1.0)
    recorder.append_audio(np.zeros(HOP_LENGTH * mel.shape[1], np.float32))
    recorder.close()
    return folder


def _band_profile(mel: np.ndarray) -> np.ndarray:
    return mel.mean(axis=1) - mel.mean()


@pytest.mark.parametrize("form", ["folder", "mel_db.f32"])
def test_vocode_turns_a_recording_back_into_its_sound(form, tmp_path, capsys):
    mel = _tone_mel()
    rec = _record(tmp_path / "rec", mel, FIRST_K + np.arange(mel.shape[1]))
    out = tmp_path / "x.wav"
    source = rec if form == "folder" else rec / "mel_db.f32"
    status, stdout, err = run_cli(["vocode", str(source), "--out", str(out), "--vocoder", "griffinlim"],
                                  capsys)
    assert status == 0, err
    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == AUDIO_SFREQ
    assert audio.size == mel.shape[1] * HOP_LENGTH          # frames x hop
    again = mel_db(audio)[:, 2:-2]                            # the edges see half a window
    tone_band = int(np.argmax(_band_profile(mel)))
    assert abs(int(np.argmax(_band_profile(again))) - tone_band) <= 1
    assert np.corrcoef(_band_profile(again), _band_profile(mel))[0, 1] > 0.9
    line = next(line for line in stdout.splitlines() if line.startswith("vocoded recording"))
    assert f"{mel.shape[1]} frames" in line and "griffinlim" in line and "0.5 s" in line
    assert "spectral convergence" not in stdout                # no input audio to compare against
    assert f"wrote {out}" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec", "x.wav"]   # no temporary file left


def test_frames_the_decode_skipped_become_silence(tmp_path, capsys):
    mel = _tone_mel()[:, :20]
    ks = FIRST_K + np.r_[np.arange(10), 15 + np.arange(10)]   # frames 310..314: no window covered them
    rec = _record(tmp_path / "rec", mel, ks)
    out = tmp_path / "x.wav"
    status, stdout, err = run_cli(["vocode", str(rec), "--out", str(out)], capsys)
    assert status == 0, err
    audio, _ = soundfile.read(out, dtype="float32")
    assert audio.size == 25 * HOP_LENGTH                        # the recording's span, gap included
    assert not audio[10 * HOP_LENGTH:15 * HOP_LENGTH].any()
    assert np.abs(audio[:10 * HOP_LENGTH]).max() > 0.01 and np.abs(audio[15 * HOP_LENGTH:]).max() > 0.01
    assert "5 skipped" in stdout


def test_vocode_help_shows_a_recording_example(capsys):
    status, stdout, _ = run_cli(["vocode", "--help"], capsys)
    assert status == 0
    assert "--record" in stdout and "mel_db.f32" in stdout


def test_a_folder_that_is_no_recording_is_one_line(tmp_path, capsys):
    folder = tmp_path / "songs"
    folder.mkdir()
    (folder / "notes.txt").write_text("kept")
    out = tmp_path / "x.wav"
    status, _, err = run_cli(["vocode", str(folder), "--out", str(out)], capsys)
    assert_one_line_error(status, err, str(folder), "is a folder", "mel_db.json", "decode --record")
    assert not out.exists()


@pytest.mark.parametrize("where", ["alone", "sidecar removed"])
def test_mel_frames_without_their_sidecar_are_one_line(where, tmp_path, capsys):
    rec = _record(tmp_path / "rec", _tone_mel()[:, :8], FIRST_K + np.arange(8))
    if where == "alone":
        (tmp_path / "copy").mkdir()
        frames = tmp_path / "copy" / "mel_db.f32"
        frames.write_bytes((rec / "mel_db.f32").read_bytes())
    else:
        (rec / "mel_db.json").unlink()
        frames = rec / "mel_db.f32"
    out = tmp_path / "x.wav"
    for source in ([frames, frames.parent] if where == "sidecar removed" else [frames]):
        status, _, err = run_cli(["vocode", str(source), "--out", str(out)], capsys)
        line = assert_one_line_error(status, err, "mel_db.json", "decode --record")
        assert "convert it to wav" not in line
    assert not out.exists()


@pytest.mark.parametrize(("key", "value", "said"), [
    ("n_mels", 80, str(N_MELS)),
    # NaN compares False both ways: a frame period of NaN passed the check (a fuzzing helper's case)
    ("frame_period_s", float("nan"), "frame_period_s is nan"),
])
def test_a_sidecar_of_another_shape_is_one_line(key, value, said, tmp_path, capsys):
    rec = _record(tmp_path / "rec", _tone_mel()[:, :8], FIRST_K + np.arange(8))
    meta = json.loads((rec / "mel_db.json").read_text())
    (rec / "mel_db.json").write_text(json.dumps({**meta, key: value}))
    status, _, err = run_cli(["vocode", str(rec), "--out", str(tmp_path / "x.wav")], capsys)
    assert_one_line_error(status, err, key, str(value), said)


def test_the_recordings_own_sound_is_never_replaced(tmp_path, capsys):
    rec = _record(tmp_path / "rec", _tone_mel()[:, :8], FIRST_K + np.arange(8))
    before = (rec / "decoded.wav").read_bytes()
    status, _, err = run_cli(["vocode", str(rec), "--out", str(rec / "decoded.wav"), "--overwrite"], capsys)
    assert_one_line_error(status, err, "decoded.wav", "never overwritten")
    assert (rec / "decoded.wav").read_bytes() == before


def test_a_frame_index_that_jumps_by_hours_is_one_line_not_a_huge_allocation(tmp_path, capsys):
    """Every gap becomes silence held in memory: a damaged index jumping 10 million frames (64.5 h) asked for
    11 GB and died in a MemoryError traceback."""
    mel = _tone_mel(0.1)
    ks = np.arange(mel.shape[1])
    ks[-1] = 10_000_000
    rec = _record(tmp_path / "rec", mel, ks)
    status, _, err = run_cli(["vocode", str(rec), "--out", str(tmp_path / "x.wav")], capsys)
    assert_one_line_error(status, err, "span 64.5 h", "frame index may be damaged", "--duration")
    assert not (tmp_path / "x.wav").exists()
    status, _, err = run_cli(["vocode", str(rec), "--out", str(tmp_path / "x.wav"), "--duration", "1"],
                             capsys)
    assert status == 0, err                        # the start of it, as the message says


def test_a_duration_beyond_any_timeline_is_one_line(tmp_path, capsys):
    """--duration 1e308 made ceil(duration / frame period) overflow: an OverflowError traceback."""
    mel = _tone_mel(0.1)
    rec = _record(tmp_path / "rec", mel, FIRST_K + np.arange(mel.shape[1]))
    status, _, err = run_cli(["vocode", str(rec), "--out", str(tmp_path / "x.wav"), "--duration", "1e308"],
                             capsys)
    assert_one_line_error(status, err, "--duration must be > 0 and at most 21600")
    assert not (tmp_path / "x.wav").exists()


def test_a_damaged_frame_index_or_a_recording_of_nan_frames_is_one_line(tmp_path, capsys):
    """Random bytes in frame_index.i64 leaked numpy's overflow warning before the error, and a recording
    whose frames were all NaN (a broken model's) was vocoded to silence with exit 0, without a word."""
    import warnings

    rec = _record(tmp_path / "rec", _tone_mel()[:, :8], FIRST_K + np.arange(8))
    damaged = np.array([3, -(1 << 62), 2 ** 62, 7, 8, 9, 10, 11], "<i8")
    (rec / "frame_index.i64").write_bytes(damaged.tobytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a warning would be a second line on the terminal
        status, _, err = run_cli(["vocode", str(rec), "--out", str(tmp_path / "x.wav")], capsys)
    assert_one_line_error(status, err, "frame_index.i64", "frame 1 has index", "damaged")
    nan = _record(tmp_path / "nan", np.full((N_MELS, 8), np.nan, np.float32), FIRST_K + np.arange(8))
    status, _, err = run_cli(["vocode", str(nan), "--out", str(tmp_path / "y.wav")], capsys)
    assert_one_line_error(status, err, "no finite mel frame", "eegmusic evaluate")
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()


@pytest.mark.parametrize("value", [3e38, -np.inf])
def test_a_frame_beyond_what_decode_records_is_one_line(value, tmp_path, capsys):
    """decode keeps every frame in [-200, 60] dB; 3e38 dB in mel_db.f32 (a fuzzing helper's damage) was
    vocoded with numpy's overflow warnings and exit 0."""
    import warnings

    mel = _tone_mel()[:, :8].copy()
    mel[5, 3] = value
    rec = _record(tmp_path / "rec", mel, FIRST_K + np.arange(8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a warning would be a second line on the terminal
        status, _, err = run_cli(["vocode", str(rec), "--out", str(tmp_path / "x.wav")], capsys)
    assert_one_line_error(status, err, "mel_db.f32", f"frame 3 holds {float(value):g} dB", "damaged")
    assert not (tmp_path / "x.wav").exists()
