"""Spherical-spline interpolation and montages against MNE-Python's own (offline, no streams)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from eegmusic.stream.channels import channel_map
from eegmusic.stream.errors import ConfigError, StreamError
from eegmusic.stream.interpolation import fit_sphere, spline_matrix
from eegmusic.stream.montage import head_positions, label_key, montage_labels, resolve_montage_name
from eegmusic.stream.spec import MODEL_CHANNELS

mne = pytest.importorskip("mne")


def _mne_info(name: str, sfreq: float = 512.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        montage = mne.channels.make_standard_montage(name)
    info = mne.create_info(montage.ch_names, sfreq, "eeg")
    info.set_montage(montage)
    return info


def _mne_interpolated(info, eeg: np.ndarray, bads: list[str], origin) -> np.ndarray:
    """MNE's own interpolation of ``bads`` (V in, the same units out)."""
    raw = mne.io.RawArray(eeg.copy(), info, verbose=False)
    raw.info["bads"] = list(bads)
    raw.interpolate_bads(origin=origin, verbose=False)
    return raw.get_data()


def test_fit_sphere_recovers_a_sphere(rng):
    direction = rng.standard_normal((40, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    centre, radius = fit_sphere(np.array([0.01, -0.02, 0.04]) + 0.09 * direction)
    np.testing.assert_allclose(centre, [0.01, -0.02, 0.04], atol=1e-12)
    assert radius == pytest.approx(0.09)


@pytest.mark.parametrize(("montage", "bads"), [
    ("biosemi64", ["AF3", "C4", "Oz"]),
    ("standard_1020", ["F3", "Cz", "P8", "O1"]),
    ("GSN-HydroCel-129", ["E17", "E55", "E100"]),
])
def test_spline_equals_mne_interpolate_bads(rng, montage, bads):
    info = _mne_info(montage)
    labels = info.ch_names
    positions = np.array([ch["loc"][:3] for ch in info["chs"]])
    good = [i for i, label in enumerate(labels) if label not in bads]
    bad = [labels.index(label) for label in bads]
    eeg = rng.standard_normal((len(labels), 200)) * 1e-5
    origin, _ = fit_sphere(positions[good + bad])
    expected = _mne_interpolated(info, eeg, bads, origin)[bad]
    weights = spline_matrix(positions[good], positions[bad])
    np.testing.assert_allclose(weights @ eeg[good], expected, atol=1e-5 * np.abs(eeg).max())
    # and MNE's positions are ours (head frame, metres)
    np.testing.assert_allclose(head_positions(labels, montage=montage), positions, atol=1e-6)


def test_gsn_positions_need_no_montage_name():
    info = _mne_info("GSN-HydroCel-129")
    expected = np.array([ch["loc"][:3] for ch in info["chs"]])
    np.testing.assert_allclose(head_positions([f"E{i}" for i in range(1, 129)] + ["E129"]), expected,
                               atol=1e-6)


def test_labels_and_aliases():
    assert label_key("FP1") == label_key(" fp1") == "fp1"
    for old, new in (("T3", "T7"), ("T4", "T8"), ("T5", "P7"), ("T6", "P8"), ("E129", "Cz")):
        assert label_key(old) == label_key(new)
    assert resolve_montage_name("Standard_1020") in ("colin27_1020", "standard_1020")
    assert len(montage_labels("standard_1020", 32)) == 32
    assert montage_labels("GSN-HydroCel-129") == MODEL_CHANNELS
    assert montage_labels("openbci8") == ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2")


def test_old_10_20_names_map_onto_a_modern_model(rng):
    model = ("Fp1", "T7", "T8", "P7", "P8", "Cz", "O1", "O2")
    stream = ("o2", "T3", "t4", "T5", "T6", "CZ", "FP1", "O1")
    eeg = rng.standard_normal((8, 5))
    out = channel_map(stream, model).apply(eeg)
    np.testing.assert_array_equal(out, eeg[[6, 1, 2, 3, 4, 5, 7, 0]])


def test_channel_map_interpolates_as_mne_does(rng):
    info = _mne_info("biosemi64")
    labels = info.ch_names
    positions = np.array([ch["loc"][:3] for ch in info["chs"]])
    bads = ["AF3", "C4", "Oz"]
    stream = [label for label in labels if label not in bads]
    eeg = rng.standard_normal((64, 100)) * 1e-5
    mapping = channel_map(stream, labels, impute_missing=True, model_positions=positions, max_missing=3)
    assert set(mapping.interpolated_labels) == set(bads)
    out = mapping.apply(eeg[[labels.index(label) for label in stream]])
    origin, _ = fit_sphere(positions)
    np.testing.assert_allclose(out, _mne_interpolated(info, eeg, bads, origin), atol=1e-5 * 1e-5 * 4)


def test_stream_positions_are_used_for_unknown_labels(rng):
    info = _mne_info("biosemi32")
    positions = np.array([ch["loc"][:3] for ch in info["chs"]])
    stream = [f"ch{i}" for i in range(31)]  # labels no montage knows, but positions sent
    mapping = channel_map(stream, info.ch_names, impute_missing=True, stream_positions=positions[:31],
                          model_positions=positions)
    assert mapping.interpolated_labels == tuple(info.ch_names)  # no label matches: all from positions
    eeg = rng.standard_normal((32, 50))
    out = mapping.apply(eeg[:31])
    np.testing.assert_allclose(out, spline_matrix(positions[:31], positions) @ eeg[:31])


@pytest.mark.parametrize(("stream", "kwargs", "error", "message"), [
    (["ch1", "ch2", "ch3"], {"impute_missing": True}, StreamError, r"ch1, ch2, ch3 match no montage"),
    (["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "Cz"], {"impute_missing": True, "max_missing": 123},
     StreamError, r"lacks 124 .*\(E1, E2.*tolerates at most 123"),
    (["Fp1", "FP1"], {}, StreamError, r"'FP1' twice"),
    (["T3", "T7"], {}, StreamError, r"'T7' twice"),
])
def test_bad_montage_input(stream, kwargs, error, message):
    with pytest.raises(error, match=message):
        channel_map(stream, MODEL_CHANNELS, **kwargs)


def test_unknown_montage_name():
    with pytest.raises(ConfigError, match=r"montage 'biosemi65' is not known; use one of .*biosemi64"):
        montage_labels("biosemi65")


def test_without_mne_gsn_interpolates_and_10_20_names_the_extra():
    """A live machine without MNE: GSN nets still interpolate (positions shipped); a 10-20 cap without
    positions in its stream gets one line naming the extra to install."""
    import subprocess
    import sys

    script = """
import sys
sys.modules["mne"] = None  # as if not installed
import numpy as np
from eegmusic.stream.channels import channel_map
from eegmusic.stream.extras import MissingExtraError
from eegmusic.stream.spec import MODEL_CHANNELS
mapping = channel_map([c for c in MODEL_CHANNELS if c != "E17"], impute_missing=True)
print("gsn", mapping.interpolated_labels)
try:
    channel_map(["Fp1", "Fp2", "C3", "C4", "Cz"], impute_missing=True)
except MissingExtraError as error:
    print("error", error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "gsn ('E17',)" in result.stdout, result.stderr
    error = [line for line in result.stdout.splitlines() if line.startswith("error")]
    assert len(error) == 1 and "needs MNE-Python, which is not installed" in error[0]
    assert "pip install 'eegmusic[train]'" in error[0]


def test_lsl_locations_round_trip_in_millimetres():
    from eegmusic.stream.montage import read_locations, write_locations
    from eegmusic.stream.outlet import regular_stream_info

    positions = np.array([[0.01, 0.09, 0.03], [np.nan, np.nan, np.nan], [0.0, 0.0, 0.0], [-0.05, 0.0, 0.08]])
    info = regular_stream_info("loc-test", "EEG", ["Fp1", "X", "Y", "T7"], 250.0, "loc-test-sid")
    assert read_locations(info) is None  # no channel has a location yet
    write_locations(info, positions)
    back = read_locations(info)
    np.testing.assert_allclose(back[[0, 3]], positions[[0, 3]], atol=1e-9)
    assert np.isnan(back[1]).all() and np.isnan(back[2]).all()  # absent, and 0, 0, 0 (unknown)
    channel = info.desc().child("channels").child("channel")
    assert channel.child("location").child_value("X") == "10.000000"  # millimetres, as XDF says


@pytest.mark.parametrize("net", ["GSN-HydroCel-257", "GSN-HydroCel-256"])
def test_the_256_nets_keep_e129_apart_from_cz(net):
    """On the 257 net E129 was folded into Cz: Cz was dropped and E129 placed at Cz, about 7 cm from
    where MNE puts it. The E129 = Cz alias is the 128/129 net's only."""
    info = _mne_info(net)
    labels = montage_labels(net)
    assert labels == tuple(info.ch_names) and "E129" in labels
    np.testing.assert_allclose(head_positions(labels, montage=net),
                               np.array([ch["loc"][:3] for ch in info["chs"]]), atol=1e-6)
    assert montage_labels("GSN-HydroCel-129") == MODEL_CHANNELS   # there E129 is still Cz


def test_positions_off_a_sphere_are_warned_of(rng, caplog):
    """The spread was ``|1 - mean(d / mean(d))|``, always 0: the warning could never fire."""
    import logging

    direction = rng.standard_normal((8, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    askew = 0.09 * direction
    askew[:4] *= 3.0   # four electrodes three times off the head
    with caplog.at_level(logging.WARNING, logger="eegmusic.stream.interpolation"):
        spline_matrix(askew[1:], askew[:1])
        assert "positions lie poorly on a sphere" in caplog.text
        caplog.clear()
        positions = head_positions(montage_labels("standard_1020"), montage="standard_1020")
        spline_matrix(positions[1:], positions[:1])
        assert caplog.text == ""
