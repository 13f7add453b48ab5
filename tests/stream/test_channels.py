"""Channel mapping by label: aliases, ignored extras, missing channels, imputation."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.stream.channels import channel_map, default_labels
from eegmusic.stream.errors import StreamError
from eegmusic.stream.montage import head_positions
from eegmusic.stream.spec import DEVICE_CHANNELS_128, MODEL_CHANNELS


def test_model_order_is_identity(rng):
    mapping = channel_map(MODEL_CHANNELS)
    eeg = rng.standard_normal((125, 5))
    assert mapping.is_identity and mapping.apply(eeg) is eeg


def test_e129_alias_and_reordering(rng):
    labels = ["E129"] + [f"E{i}" for i in range(124, 0, -1)] + ["TRIG"]
    eeg = rng.standard_normal((126, 4))
    out = channel_map(labels).apply(eeg)
    np.testing.assert_array_equal(out[124], eeg[0])  # Cz from E129
    np.testing.assert_array_equal(out[0], eeg[124])  # E1 was 125th
    np.testing.assert_array_equal(out[:124], eeg[124:0:-1])


def test_128_channel_net_gets_zero_reference(rng):
    eeg = rng.standard_normal((128, 6))
    mapping = channel_map(DEVICE_CHANNELS_128)
    out = mapping.apply(eeg)
    assert out.shape == (125, 6) and mapping.zeroed == (124,)
    np.testing.assert_array_equal(out[:124], eeg[:124])
    assert np.all(out[124] == 0)


def test_missing_channels_error_names_them():
    labels = [f"E{i}" for i in range(1, 125) if i not in (17, 55)] + ["Cz"]
    with pytest.raises(StreamError, match=r"lacks 2 the model needs \(E17, E55\).*--impute-missing"):
        channel_map(labels, stream_name="stream 'cap'")


def test_impute_missing_interpolates_from_the_scalp_field():
    """E17 missing: the spherical spline (from GSN positions, no MNE) recovers a smooth scalp field,
    and its largest weights are on E17's neighbours."""
    labels = [f"E{i}" for i in range(1, 125) if i != 17] + ["Cz"]
    positions = head_positions(MODEL_CHANNELS)
    field = np.sin(positions @ np.array([[10.0], [-6.0], [12.0]]) + np.arange(8.0))  # (125, 8)
    mapping = channel_map(labels, impute_missing=True)
    row = MODEL_CHANNELS.index("E17")
    assert mapping.interpolated == (row,) and mapping.interpolated_labels == ("E17",)
    out = mapping.apply(np.delete(field, row, axis=0))
    np.testing.assert_allclose(out[row], field[row], atol=0.05 * np.ptp(field))
    np.testing.assert_array_equal(np.delete(out, row, axis=0), np.delete(field, row, axis=0))
    strongest = mapping.interpolate_from[np.argsort(-np.abs(mapping.weights[0]))[:3]]
    distance = np.linalg.norm(positions[[MODEL_CHANNELS.index(labels[i]) for i in strongest]]
                              - positions[row], axis=1)
    assert np.all(distance < 0.05)  # the two nearest rings (GSN spacing is 2-4 cm)


@pytest.mark.parametrize(("labels", "message"), [
    (["E1", "E2", "E1"], "label 'E1' twice"),
    (["Cz", "E129"], "label 'E129' twice"),
    ([f"X{i}" for i in range(125)], "lacks 125"),
])
def test_bad_labels_raise(labels, message):
    with pytest.raises(StreamError, match=message):
        channel_map(labels)


def test_default_labels():
    assert default_labels(125) == MODEL_CHANNELS
    assert default_labels(128) == DEVICE_CHANNELS_128
    assert default_labels(64) is None


def test_a_256_net_stream_is_refused_by_a_129_net_model():
    """Its E1…E124 fed the NMED-T model by number and its E129 the model's Cz, though electrodes of one
    number lie a median 10 cm apart on the two nets; a model of the 257 net reads it, E129 apart from Cz."""
    labels = [f"E{i}" for i in range(1, 257)] + ["Cz"]
    for impute in (False, True):
        with pytest.raises(StreamError, match=r"^stream 'egi' is a GSN net of 257 channels \(labels up to "
                                              r"E256\), not the 129-electrode net .*use a model trained on "
                                              r"this net[^\n]*$"):
            channel_map(labels, stream_name="stream 'egi'", impute_missing=impute)
    with pytest.raises(StreamError, match=r"labels up to E128\), not the 256/257-electrode net"):
        channel_map(DEVICE_CHANNELS_128, labels, stream_name="stream 'egi'")
    assert channel_map(labels, labels).is_identity
    mapping = channel_map(labels[:-1], labels)   # the 256 net without its reference
    assert mapping.zeroed == (256,) and mapping.source[128] == 128
