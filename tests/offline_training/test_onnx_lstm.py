"""LSTMs exported as one ONNX operator each, without torch tracing them step by step (the exported files:
``test_models_export.py``, one ``LSTM`` node per LSTM and parity with torch)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training import onnx_lstm  # noqa: E402

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
