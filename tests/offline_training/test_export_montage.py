"""An exported model states its electrode positions and tolerance, for any montage."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.decoder.modelfile import read_model_info  # noqa: E402
from eegmusic.offline_training.export import build_metadata, export_onnx  # noqa: E402
from eegmusic.offline_training.models.registry import build_model  # noqa: E402
from eegmusic.stream.montage import head_positions, montage_labels  # noqa: E402
from eegmusic.stream.spec import PreprocessingSpec  # noqa: E402


def test_biosemi_model_file_states_positions_and_tolerance(tmp_path, rng):
    labels = montage_labels("biosemi64")
    torch.manual_seed(0)
    model = build_model("linear", n_chans=len(labels)).eval()
    stated = {"Fp1": [0.01, 0.09, 0.03]}  # the dataset's own position wins over the montage's
    metadata = build_metadata(model, spec=PreprocessingSpec(channels=labels), positions=stated, max_missing=5)
    info = read_model_info(export_onnx(model, tmp_path / "m.onnx", metadata))
    expected = head_positions(labels)
    expected[0] = stated["Fp1"]
    np.testing.assert_allclose(info.positions, expected, atol=1e-7)
    assert info.max_missing == 5 and info.channels == labels


def test_unknown_labels_state_no_positions(tmp_path):
    labels = tuple(f"X{i}" for i in range(8))
    torch.manual_seed(0)
    model = build_model("linear", n_chans=8).eval()
    info = read_model_info(export_onnx(model, tmp_path / "m.onnx",
                                       build_metadata(model, spec=PreprocessingSpec(channels=labels))))
    assert info.positions is None and info.max_missing == 0


def test_a_257_net_model_keeps_e129_apart_from_cz(tmp_path):
    """The stated positions were keyed with E129 folded into Cz, true on the 129 net only: a model of the
    257 net stored Cz's position for E129 (or E129's for Cz), 7 cm apart."""
    labels = montage_labels("GSN-HydroCel-257")
    stated = dict(zip(labels, head_positions(labels, montage="GSN-HydroCel-257").tolist(), strict=True))
    torch.manual_seed(0)
    model = build_model("linear", n_chans=len(labels)).eval()
    metadata = build_metadata(model, spec=PreprocessingSpec(channels=labels), positions=stated)
    info = read_model_info(export_onnx(model, tmp_path / "m.onnx", metadata))
    e129, cz = info.positions[labels.index("E129")], info.positions[labels.index("Cz")]
    np.testing.assert_allclose(e129, stated["E129"], atol=1e-7)
    np.testing.assert_allclose(cz, stated["Cz"], atol=1e-7)
    assert np.linalg.norm(e129 - cz) > 0.05
