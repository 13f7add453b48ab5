"""Channel mapping by label: aliases, ignored extras, missing channels, imputation."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.stream.channels import channel_map, default_labels
from eegmusic.stream.errors import StreamError
from eegmusic.stream.montage import electrode_positions
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


def test_impute_missing_uses_neighbours(rng):
    labels = [f"E{i}" for i in range(1, 125) if i != 17] + ["Cz"]
    eeg = rng.standard_normal((124, 8))
    mapping = channel_map(labels, impute_missing=True)
    out = mapping.apply(eeg)
    row = MODEL_CHANNELS.index("E17")
    sources = mapping.imputed[row]
    assert 2 <= sources.size <= 8
    positions = electrode_positions([labels[i] for i in sources])
    distance = np.linalg.norm(positions - electrode_positions(["E17"]), axis=1)
    assert np.all(distance < 0.045)
    np.testing.assert_allclose(out[row], eeg[sources].mean(axis=0))


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
