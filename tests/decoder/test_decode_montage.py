"""Decoding streams from other caps: a BioSemi-64 cap with 3 channels missing decoded live with
spherical-spline interpolation equal to MNE's, and an 8-channel 10-20 cap into an NMED-T model
through ``eegmusic decode --impute-missing``, accepted or refused per the model's tolerance.
Real pylsl outlets and inlets on loopback; the models are tiny linear ONNX graphs."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pylsl
import pytest
from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
from eegmusic.decoder.recording import read_frames
from eegmusic.stream.interpolation import fit_sphere
from eegmusic.stream.montage import head_positions, montage_labels
from eegmusic.stream.outlet import regular_stream_info
from eegmusic.stream.resample import resample_recording
from scipy.signal import butter, sosfilt

from tests.decoder.onnx_models import make_model, metadata

pytestmark = pytest.mark.lsl
mne = pytest.importorskip("mne")

CAP8 = ("Fp1", "Fp2", "C3", "C4", "T5", "T6", "O1", "Cz")


class PacedOutlet:
    """An EEG outlet sending a recording at its real rate from sample 0, in a thread, once started."""

    def __init__(self, name: str, labels, eeg: np.ndarray, sfreq: float, *, loop: bool = False):
        info = regular_stream_info(name, "EEG", labels, sfreq, f"{name}-sid", unit="microvolts")
        self.outlet = pylsl.StreamOutlet(info, chunk_size=16, max_buffered=30)
        self.eeg, self.sfreq, self.loop = eeg.astype(np.float32), sfreq, loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PacedOutlet:
        self._thread.start()
        return self

    def _run(self) -> None:
        t0, sent, n = pylsl.local_clock(), 0, self.eeg.shape[1]
        while not self._stop.is_set() and (self.loop or sent < n):
            due = int((pylsl.local_clock() - t0) * self.sfreq) + 1
            if due > sent:
                index = np.arange(sent, due)
                stamps = t0 + index / self.sfreq
                self.outlet.push_chunk(np.ascontiguousarray(self.eeg[:, index % n].T), stamps.tolist())
                sent = due
            time.sleep(0.005)

    def sending(self) -> bool:
        """Whether samples are still going out."""
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        del self.outlet


def _band_limited(rng, n_chans: int, n_times: int, sfreq: float) -> np.ndarray:
    white = rng.standard_normal((n_chans, n_times)) * 20.0
    return sosfilt(butter(4, 40.0, fs=sfreq, output="sos"), white, axis=1)


@pytest.mark.parametrize("model_sfreq", [125.0, 256.0])
def test_biosemi64_three_missing_decodes_as_with_mne_interpolation(stream_name, rng, tmp_path, model_sfreq):
    """A 512-Hz BioSemi cap lacking AF3, C4 and Oz into a BioSemi-64 model at the NMED-T rate and at
    256 Hz (a model states its own rate and 1-s window)."""
    labels = montage_labels("biosemi64")
    positions = head_positions(labels, montage="biosemi64")
    n_window = int(model_sfreq)
    meta = metadata(channels=labels, sfreq=model_sfreq, window_samples=n_window)
    meta["input"].update(positions=positions.tolist(), max_missing=3)
    model = make_model(tmp_path / "bio.onnx", meta=meta, n_chans=64, window_samples=n_window)
    bads = ("AF3", "C4", "Oz")
    sfreq = 512.0
    eeg = _band_limited(rng, 64, int(5 * sfreq), sfreq).astype(np.float32)
    sent = [i for i, label in enumerate(labels) if label not in bads]
    outlet = PacedOutlet(stream_name, [labels[i] for i in sent], eeg[sent], sfreq)
    record = tmp_path / "rec"
    config = PipelineConfig(stream_name=stream_name, model_path=model, device="cpu", no_audio=True,
                            record_dir=record, lsl_out=False, impute_missing=True, resolve_timeout_s=10)
    try:
        with LivePipeline(config) as pipeline:
            outlet.start()
            deadline = time.monotonic() + 60  # the recording lasts 5 s; a loaded machine decodes fewer
            while pipeline.counters()["windows"] < 25 and time.monotonic() < deadline and outlet.sending():
                time.sleep(0.1)
            time.sleep(0.5)
            summary = pipeline.summary()
    finally:
        outlet.close()
    assert set(summary["interpolated_channels"]) == set(bads)
    # MNE's interpolation of the whole recording (origin: the sphere through the cap), then the
    # model's preprocessing: resampling to 125 Hz and average reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        info = mne.create_info(list(labels), sfreq, "eeg")
        info.set_montage(mne.channels.make_standard_montage("biosemi64"))
    raw = mne.io.RawArray(eeg.astype(np.float64) * 1e-6, info, verbose=False)
    raw.info["bads"] = list(bads)
    raw.interpolate_bads(origin=fit_sphere(positions)[0], verbose=False)
    expected = resample_recording(raw.get_data() * 1e6, sfreq, model_sfreq)
    expected -= expected.mean(axis=0, keepdims=True)
    k, live, source = read_frames(record)
    assert len(k) > 20, (len(k), summary["counters"])
    n_end, j = source[:, 0].astype(int), source[:, 1].astype(int)
    assert n_end.max() <= expected.shape[1]
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ends = np.unique(n_end)
    windows = np.stack([expected[:, e - n_window:e] for e in ends]).astype(np.float32)
    offline = session.run(None, {"eeg": windows})[0]              # (n_windows, 128, 44)
    predicted = offline[np.searchsorted(ends, n_end), :, j].T     # (128, n_frames)
    np.testing.assert_allclose(live, predicted, atol=1e-3, rtol=0)
    # the model's inputs themselves: the live window of the last frame equals MNE's to 1e-5 of the EEG
    last = ends[-1]
    live_window = _window_fed(session, live[:, n_end == last], j[n_end == last], windows[-1])
    assert live_window < 1e-5


def _window_fed(session, live_frames, frame_index, expected_window) -> float:
    """Largest difference between the decoded frames and the model applied to the expected window,
    relative to the model's response to the window (a scale-free check of the window fed)."""
    out = session.run(None, {"eeg": expected_window[None]})[0][0]
    response = np.abs(out - session.run(None, {"eeg": np.zeros_like(expected_window)[None]})[0][0]).max()
    return float(np.abs(live_frames - out[:, frame_index]).max() / response)


def _cli(argv, capsys):
    from eegmusic.stream.cli import main

    status = main(["decode", *argv])
    captured = capsys.readouterr()
    return status, captured.out, [line for line in captured.err.splitlines() if line.strip()]


@pytest.mark.parametrize(("max_missing", "flag", "expected"), [
    (124, True, None),
    # the refusals: one line each, nothing timed
    pytest.param(123, True,
                 "lacks 124 the model needs (E1, E2, E3, E4, E5 ...); the model tolerates at most 123",
                 marks=pytest.mark.untimed),
    pytest.param(124, False, "pass --impute-missing", marks=pytest.mark.untimed),
])
def test_eight_channel_cap_into_nmedt_model(stream_name, rng, tmp_path, capsys, max_missing, flag,
                                            expected):
    meta = metadata()
    meta["input"]["max_missing"] = max_missing
    model = make_model(tmp_path / "nmedt.onnx", meta=meta)
    outlet = PacedOutlet(stream_name, CAP8, _band_limited(rng, 8, 2500, 250.0), 250.0, loop=True).start()
    args = ["--stream", stream_name, "--model", str(model), "--no-audio", "--no-lsl-out", "--duration", "2",
            "--timeout", "30", "--device", "cpu"] + (["--impute-missing"] if flag else [])
    try:
        status, out, err = _cli(args, capsys)
    finally:
        outlet.close()
    if expected is None:
        assert status == 0, err
        assert "interpolated 124 missing channels (spherical splines): E1, E2" in out
        return
    assert status == 2 and len(err) == 1 and err[0].startswith("eegmusic decode: error: ")
    assert expected in err[0]
