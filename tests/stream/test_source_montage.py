"""Live streams from caps other than NMED-T's, through real pylsl on loopback: label matching,
resampling and spherical-spline interpolation of missing channels against MNE's own, tolerance."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pylsl
import pytest
from eegmusic.stream.errors import StreamError
from eegmusic.stream.montage import head_positions, montage_labels, write_locations
from eegmusic.stream.outlet import regular_stream_info
from eegmusic.stream.resample import resample_recording
from eegmusic.stream.source import EEGSource
from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec

pytestmark = pytest.mark.lsl

TEN_TWENTY_8 = ("Fp1", "Fp2", "C3", "C4", "T5", "T6", "O1", "Cz")


def _outlet(name: str, labels, sfreq: float, positions=None) -> pylsl.StreamOutlet:
    info = regular_stream_info(name, "EEG", labels, sfreq, f"{name}-sid", unit="microvolts")
    if positions is not None:
        write_locations(info, positions)
    return pylsl.StreamOutlet(info, chunk_size=32, max_buffered=60)


def _push(outlet: pylsl.StreamOutlet, eeg: np.ndarray, sfreq: float) -> None:
    """Send a whole recording (n_chans, n) with per-sample timestamps, as fast as the inlet takes it."""
    t0 = pylsl.local_clock()
    stamps = t0 + np.arange(eeg.shape[1]) / sfreq
    for start in range(0, eeg.shape[1], 64):
        outlet.push_chunk(np.ascontiguousarray(eeg[:, start:start + 64].T.astype(np.float32)),
                          stamps[start:start + 64].tolist())


def _windows(source: EEGSource, n_last: int, timeout: float = 40.0) -> list:
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        window = source.next_window(timeout=0.2)
        if window is not None:
            out.append(window)
            if window.sample_index >= n_last:
                return out
    raise AssertionError(f"no window past sample {n_last} within {timeout} s ({len(out)} came)")


def _mne_interpolated(labels, eeg_uv: np.ndarray, sfreq: float, bads, montage: str) -> np.ndarray:
    mne = pytest.importorskip("mne")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        info = mne.create_info(list(labels), sfreq, "eeg")
        info.set_montage(mne.channels.make_standard_montage(montage))
    raw = mne.io.RawArray(eeg_uv * 1e-6, info, verbose=False)
    raw.info["bads"] = list(bads)
    positions = np.array([ch["loc"][:3] for ch in info["chs"]])
    centre = _sphere_centre(positions)
    raw.interpolate_bads(origin=centre, verbose=False)
    return raw.get_data() * 1e6


def _sphere_centre(positions: np.ndarray) -> np.ndarray:
    from eegmusic.stream.interpolation import fit_sphere

    return fit_sphere(positions)[0]


def _scalp_eeg(rng, n_chans: int, n_times: int, sfreq: float) -> np.ndarray:
    """Band-limited random EEG in µV (below 40 Hz, so resampling to 125 Hz keeps it)."""
    from scipy.signal import butter, sosfilt

    white = rng.standard_normal((n_chans, n_times)) * 20.0
    return sosfilt(butter(4, 40.0, fs=sfreq, output="sos"), white, axis=1)


def test_biosemi64_with_three_missing_equals_mne_interpolation(stream_name, rng):
    """A 64-channel BioSemi cap at 512 Hz lacks AF3, C4 and Oz; the model (BioSemi 64 at 125 Hz,
    positions in its file) gets them by spherical splines: equal to MNE's interpolate_bads on the
    whole recording, resampled, within 1e-5 µV."""
    labels = montage_labels("biosemi64")
    bads = ("AF3", "C4", "Oz")
    sfreq = 512.0
    eeg = _scalp_eeg(rng, 64, int(4 * sfreq), sfreq)
    sent = [i for i, label in enumerate(labels) if label not in bads]
    outlet = _outlet(stream_name, [labels[i] for i in sent], sfreq)
    spec = PreprocessingSpec(channels=labels, reference="none")
    model_positions = head_positions(labels, montage="biosemi64")
    with EEGSource(stream_name, spec=spec, impute_missing=True, model_positions=model_positions,
                   max_missing=3, queue_windows=256, resolve_timeout=30.0) as source:
        assert set(source.interpolated_labels) == set(bads)
        _push(outlet, eeg[sent].astype(np.float32), sfreq)
        windows = _windows(source, n_last=300)
        assert set(source.health().interpolated_channels) == set(bads)
    expected = resample_recording(_mne_interpolated(labels, eeg.astype(np.float32).astype(np.float64),
                                                    sfreq, bads, "biosemi64"), sfreq, 125.0)
    rows = [labels.index(label) for label in bads]
    for window in windows:
        block = expected[:, window.sample_index:window.sample_index + 125]
        np.testing.assert_allclose(window.data[rows], block[rows], atol=1e-5 * 20.0, rtol=0)
        np.testing.assert_allclose(window.data, block, atol=1e-5 * 20.0, rtol=0)
    del outlet


@pytest.mark.parametrize(("max_missing", "accepted"), [
    (124, True),
    pytest.param(123, False, marks=pytest.mark.untimed),    # a refusal: nothing timed
])
def test_eight_channel_cap_into_nmedt_model_per_tolerance(stream_name, rng, max_missing, accepted):
    """Fp1 … O2 + Cz at 250 Hz, with LSL electrode locations, into the 125-channel NMED-T layout:
    124 channels are missing; a model tolerating 124 gets them interpolated, one tolerating 123 is
    refused with a line naming them."""
    positions = head_positions(["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "Cz"], montage="standard_1020")
    outlet = _outlet(stream_name, TEN_TWENTY_8, 250.0, positions=positions)
    source = EEGSource(stream_name, spec=PreprocessingSpec(), impute_missing=True, max_missing=max_missing,
                       resolve_timeout=30.0, queue_windows=64)
    if not accepted:
        with pytest.raises(StreamError, match=r"lacks 124 the model needs \(E1, E2.*at most 123 missing"):
            source.start()
        source.stop()
        del outlet
        return
    with source:
        assert len(source.interpolated_labels) == 124 and "Cz" not in source.interpolated_labels
        eeg = _scalp_eeg(rng, 8, 750, 250.0)
        _push(outlet, eeg, 250.0)
        windows = _windows(source, n_last=100)
    assert windows[-1].data.shape == (125, 125) and np.isfinite(windows[-1].data).all()
    assert np.std(windows[-1].data[:124]) > 0.1  # interpolated, not zero
    del outlet


def test_eight_channel_cap_into_nmedt_layout_equals_mne_interpolation(stream_name, rng):
    """The accepted case above checked only that the 124 rows were not zero. Here they must equal MNE's
    interpolate_bads from the same 8 electrodes (positions from the stream's LSL description) into the
    GSN layout, resampled: a row filled from the wrong target position, or stream positions ignored,
    would not."""
    mne = pytest.importorskip("mne")
    given = ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "Cz"]
    positions = head_positions(given, montage="standard_1020")
    outlet = _outlet(stream_name, TEN_TWENTY_8, 250.0, positions=positions)
    eeg = _scalp_eeg(rng, 8, 1000, 250.0)
    spec = PreprocessingSpec(reference="none")   # the comparison is of the interpolation alone
    with EEGSource(stream_name, spec=spec, impute_missing=True, max_missing=124, resolve_timeout=30.0,
                   queue_windows=256) as source:
        _push(outlet, eeg, 250.0)
        windows = _windows(source, n_last=200)
    missing = list(MODEL_CHANNELS[:-1])                          # E1 … E124; Cz comes from the stream
    all_positions = np.concatenate([positions, head_positions(missing, strict=False)])
    labels = [*TEN_TWENTY_8, *missing]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        info = mne.create_info(labels, 250.0, "eeg")
        info.set_montage(mne.channels.make_dig_montage(dict(zip(labels, all_positions, strict=True)),
                                                       coord_frame="head"))
    raw = mne.io.RawArray(np.concatenate([eeg, np.zeros((len(missing), eeg.shape[1]))]) * 1e-6, info,
                          verbose=False)
    raw.info["bads"] = missing
    raw.interpolate_bads(origin=_sphere_centre(all_positions), verbose=False)
    expected = resample_recording(raw.get_data() * 1e6, 250.0, 125.0)
    rows = [labels.index(label) for label in MODEL_CHANNELS[:-1]] + [labels.index("Cz")]
    scale = float(np.std(expected[rows]))
    for window in windows:
        block = expected[rows, window.sample_index:window.sample_index + 125]
        np.testing.assert_allclose(window.data, block, atol=1e-3 * scale, rtol=0)
    del outlet


@pytest.mark.untimed     # a refusal and its reason: nothing here is timed
def test_eight_channel_cap_without_impute_names_the_flag(stream_name):
    outlet = _outlet(stream_name, TEN_TWENTY_8, 250.0)
    source = EEGSource(stream_name, spec=PreprocessingSpec(channels=MODEL_CHANNELS), resolve_timeout=30.0)
    with pytest.raises(StreamError, match=r"lacks 124 the model needs.*pass --impute-missing"):
        source.start()
    source.stop()
    del outlet
