"""SIGKILL during recording and training: what was written stays readable, nothing half-replaced.

The commands run as child processes (``python -m eegmusic``) and are killed with SIGKILL, which no
handler can catch, once they have written something. The EEG for ``decode`` comes from an outlet in
this test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.faults.test_stream_faults import Device

ROOT = Path(__file__).resolve().parents[2]


def _spawn(args, log):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "eegmusic", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)


def _wait_for(condition, proc, log, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log.seek(0)
            raise AssertionError(f"never got there (status {proc.returncode}): {log.read()[-2000:]}")
        time.sleep(0.1)


@pytest.mark.lsl
def test_sigkill_while_decode_records_leaves_readable_frames_and_audio(stream_name, tmp_path):
    from eegmusic.decoder.recording import FRAMES_FILE, read_frames
    from eegmusic.stream.spec import MODEL_CHANNELS

    from tests.decoder.onnx_models import make_model

    model = make_model(tmp_path / "model.onnx")
    record = tmp_path / "rec"
    device = Device(stream_name, labels=list(MODEL_CHANNELS))
    try:
        with open(tmp_path / "log.txt", "w+") as log:
            proc = _spawn(["decode", "--stream", stream_name, "--model", str(model), "--wav",
                           str(tmp_path / "out.wav"), "--record", str(record), "--no-lsl-out", "--device",
                           "cpu"], log)
            frames = record / FRAMES_FILE
            _wait_for(lambda: frames.exists() and frames.stat().st_size > 128 * 4 * 60, proc, log, 150)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        device.close()
    assert proc.returncode == -signal.SIGKILL
    index, mel, _ = read_frames(record)
    assert mel.shape[0] == 128 and mel.shape[1] >= 60 and np.isfinite(mel).all()
    np.testing.assert_array_equal(np.diff(index), 1)
    for wav in (tmp_path / "out.wav", record / "decoded.wav"):
        audio, rate = soundfile.read(wav)
        assert rate == 22050 and len(audio) > 0


@pytest.mark.slow  # ~25 s on 2 busy cores (torch start-up, data, two epochs): opt-in
def test_sigkill_during_training_leaves_a_loadable_checkpoint(sim_dir, tmp_path):
    from eegmusic.offline_training.models.registry import read_checkpoint

    out = tmp_path / "run"
    arch = json.dumps({"filters": [2, 2, 2, 2, 2], "dense": 8})
    with open(tmp_path / "log.txt", "w+") as log:
        argv = ["train", "--data", str(sim_dir), "--arch", "cnn", "--out", str(out), "--epochs", "200",
                "--batch-size", "16", "--patience", "200", "--no-progress", "--arch-config", arch]
        proc = _spawn(argv, log)
        checkpoint = out / "checkpoint.pt"
        _wait_for(lambda: checkpoint.exists(), proc, log, 120)
        first = checkpoint.stat().st_mtime_ns
        _wait_for(lambda: checkpoint.exists() and checkpoint.stat().st_mtime_ns != first, proc, log, 120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    content = read_checkpoint(checkpoint, model_name="cnn")      # weights_only: plain values only
    assert content["epoch"] >= 2
    assert json.loads((out / "config.json").read_text())["model"] == "cnn"
    assert not (out / "model.onnx").exists()                    # an unfinished run exports nothing
