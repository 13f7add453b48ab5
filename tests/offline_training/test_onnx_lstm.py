"""LSTMs exported as one ONNX operator each, without torch tracing them step by step (the exported files:
``test_models_export.py``, one ``LSTM`` node per LSTM and parity with torch)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training import onnx_lstm  # noqa: E402
from eegmusic.offline_training.export import OPSET  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_stand_in_gives_the_lstms_outputs_and_states_to_the_bit(bidirectional):
    torch.manual_seed(0)
    source = torch.nn.LSTM(12, 7, batch_first=True, bidirectional=bidirectional).eval()
    stand_in = onnx_lstm.OnnxLSTM(source)
    x = torch.randn(3, 20, 12)
    with torch.no_grad():
        y, (h, c) = source(x)
        y2, (h2, c2) = stand_in(x)
    for expected, got in ((y, y2), (h, h2), (c, c2)):
        assert got.shape == expected.shape and torch.equal(got, expected)
    # the weights are only moved into ONNX's gate order, and moved back by the operator
    weight = source.weight_ih_l0
    assert torch.equal(onnx_lstm._torch_layout(onnx_lstm._onnx_layout(weight)), weight)
    assert not torch.equal(onnx_lstm._onnx_layout(weight), weight)


def test_only_lstms_the_stand_in_reproduces_are_swapped():
    model = torch.nn.ModuleDict({
        "plain": torch.nn.LSTM(4, 3, batch_first=True),
        "two_layers": torch.nn.LSTM(4, 3, num_layers=2, batch_first=True),
        "time_first": torch.nn.LSTM(4, 3),
        "projected": torch.nn.LSTM(4, 3, batch_first=True, proj_size=2),
        "no_bias": torch.nn.LSTM(4, 3, batch_first=True, bias=False),
    })
    assert onnx_lstm.use_onnx_lstms(model) is model
    assert isinstance(model["plain"], onnx_lstm.OnnxLSTM)
    kept = ("two_layers", "time_first", "projected", "no_bias")
    assert all(type(model[name]) is torch.nn.LSTM for name in kept)
    with pytest.raises(ValueError, match="zero state"):
        model["plain"](torch.zeros(1, 5, 4), (torch.zeros(1, 1, 3), torch.zeros(1, 1, 3)))


class _States(torch.nn.Module):
    """An LSTM's output and both last states, concatenated: every output of the ONNX node is compared."""

    def __init__(self, lstm):
        super().__init__()
        self.lstm = lstm

    def forward(self, x):
        y, (h, c) = self.lstm(x)
        return torch.cat([y.flatten(1), h.transpose(0, 1).flatten(1), c.transpose(0, 1).flatten(1)], dim=1)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_onnx_node_gives_the_output_and_last_states_of_torchs_lstm(bidirectional, tmp_path):
    """The translation's gate order, bias layout, direction stacking and output layout: the exported node
    against torch's LSTM, output and last hidden and cell states, at batch 1 and 7."""
    import onnxruntime

    torch.manual_seed(1)
    lstm = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=bidirectional).eval()
    model, exported = _States(lstm).eval(), _States(onnx_lstm.OnnxLSTM(lstm)).eval()
    with warnings.catch_warnings():  # torch's exporter warns about its own internals, as export_onnx knows
        warnings.simplefilter("ignore")
        program = torch.onnx.export(exported, (torch.zeros(2, 9, 6),), input_names=["x"],
                                    output_names=["out"],
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},),
                                    opset_version=OPSET, dynamo=True,
                                    custom_translation_table=onnx_lstm.TRANSLATIONS, verbose=False)
    path = tmp_path / "lstm.onnx"
    program.save(str(path))
    assert [node.op_type for node in program.model_proto.graph.node].count("LSTM") == 1
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = torch.randn(batch, 9, 6)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], expected, atol=1e-5)


def test_the_operator_passes_torchs_own_custom_operator_checks():
    """Schema, shape function (shapes and strides), autograd registration and tracing, as torch checks
    a custom operator (``torch.library.opcheck``)."""
    torch.manual_seed(2)
    stand_in = onnx_lstm.OnnxLSTM(torch.nn.LSTM(4, 3, batch_first=True, bidirectional=True))
    args = (torch.randn(2, 5, 4), stand_in.w, stand_in.r, stand_in.b, 3)
    torch.library.opcheck(torch.ops.eegmusic.lstm.default, args,
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static"))
