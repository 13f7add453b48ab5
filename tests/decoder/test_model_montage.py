"""The model file's montage contract: electrode positions and the tolerance of missing channels."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.decoder.modelfile import check_stream, default_max_missing, read_model_info
from eegmusic.stream.errors import ModelError
from eegmusic.stream.montage import head_positions, montage_labels
from eegmusic.stream.spec import MODEL_CHANNELS

from tests.decoder.onnx_models import make_model, metadata

TEN_TWENTY_8 = ["Fp1", "Fp2", "C3", "C4", "T5", "T6", "O1", "Cz"]
"""An 8-channel 10-20 cap (old names for P7/P8); only Cz is also an NMED-T model channel."""


def _model(tmp_path, channels=MODEL_CHANNELS, **input_entries):
    meta = metadata(channels=channels)
    meta["input"].update(input_entries)
    return read_model_info(make_model(tmp_path / "m.onnx", meta=meta, n_chans=len(channels)))


def test_nmedt_model_without_positions_gets_the_gsn_net(tmp_path):
    info = _model(tmp_path)
    assert info.positions is None and info.max_missing == default_max_missing(125) == 12
    positions = info.electrode_positions()
    np.testing.assert_array_equal(positions, head_positions(MODEL_CHANNELS, montage="GSN-HydroCel-129"))
    assert positions.shape == (125, 3) and np.isfinite(positions).all()


def test_positions_and_tolerance_round_trip(tmp_path):
    labels = montage_labels("biosemi64")
    positions = head_positions(labels, montage="biosemi64")
    info = _model(tmp_path, channels=labels, positions=positions.tolist(), max_missing=3)
    np.testing.assert_array_equal(info.electrode_positions(), positions)
    assert info.max_missing == 3


@pytest.mark.parametrize(("entries", "message"), [
    ({"positions": [[0.0, 0.0, 0.1]] * 3}, r"'input.positions' must hold one \[x, y, z\] per channel"),
    ({"positions": "nowhere"}, r"'input.positions' must hold one"),
    ({"positions": [[float("nan")] * 3] * 125},
     r"'input.positions' must hold finite numbers \(metres\), found \[nan, nan, nan\] for channel 1"),
    ({"max_missing": -1}, r"'input.max_missing' must be a whole number from 0 to 125, got -1"),
    ({"max_missing": 2.5}, r"'input.max_missing' must be a whole number"),
])
def test_bad_montage_metadata(tmp_path, entries, message):
    with pytest.raises(ModelError, match=message):
        _model(tmp_path, **entries)


@pytest.mark.parametrize(("max_missing", "impute", "message"), [
    (124, True, None),
    (123, True, r"lacks 124 the model needs \(E1, E2, E3, E4, E5 \.\.\.\); the model tolerates at most 123"),
    (124, False, r"lacks 124 of the model's channels .*pass --impute-missing"),
])
def test_eight_channel_cap_against_nmedt_model(tmp_path, max_missing, impute, message):
    info = _model(tmp_path, max_missing=max_missing)
    if message is None:
        check_stream(info, stream_name="cap8", labels=TEN_TWENTY_8, sfreq=250.0, impute_missing=impute)
        return
    with pytest.raises(ModelError, match=message):
        check_stream(info, stream_name="cap8", labels=TEN_TWENTY_8, sfreq=250.0, impute_missing=impute)
