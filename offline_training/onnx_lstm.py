"""Export an ``nn.LSTM`` as one ONNX ``LSTM`` node without torch tracing it step by step.

``torch.onnx.export(..., dynamo=True)`` writes an ``nn.LSTM`` as ONNX's own ``LSTM`` operator, but to
infer shapes on the way it runs torch's Python decomposition of ``aten.lstm`` on fake tensors, one cell
per time step and direction, three times (capture, decomposition, type promotion), each step with
symbolic batch arithmetic. For the ``rcnn`` (63 steps, two directions) that was 4-5 s of a 5-6 s export,
paid by every ``train --arch rcnn`` and ``encdec`` and by the suite's exports of them (41 s of its worker
time, measured with py-spy).

Here, for the export only, each plain LSTM (one layer, ``batch_first``, no projection) is swapped for
:class:`OnnxLSTM`, which calls one custom operator, ``eegmusic::lstm``. Torch infers its output shapes
from a shape function (:func:`_lstm_fake`) instead of unrolling it, and the exporter translates it with
:func:`translate_lstm` to the same ONNX ``LSTM`` node torch's own translation writes. The weights are
laid out as ONNX wants them once, in torch, before the export: gate order ``i, o, f, c`` where torch
keeps ``i, f, g, o``, directions stacked, input and recurrent biases concatenated. Values are only
moved, never recomputed, so the file holds the trained numbers exactly.
"""

from __future__ import annotations

import torch
from torch import nn

ONNX_FROM_TORCH_GATES = (0, 3, 1, 2)
"""ONNX's gate order (input, output, forget, cell) as indices into torch's (input, forget, cell, output)."""


def _onnx_layout(weight: torch.Tensor) -> torch.Tensor:
    """A torch LSTM weight or bias (4·hidden rows, gates i, f, g, o) in ONNX's gate order i, o, f, c."""
    gates = weight.detach().chunk(4, dim=0)
    return torch.cat([gates[i] for i in ONNX_FROM_TORCH_GATES], dim=0)


def _torch_layout(weight: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_onnx_layout`."""
    gates = weight.chunk(4, dim=0)
    order = [ONNX_FROM_TORCH_GATES.index(i) for i in range(4)]
    return torch.cat([gates[i] for i in order], dim=0)


@torch.library.custom_op("eegmusic::lstm", mutates_args=())
def lstm(x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor,
         hidden_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A one-layer, batch-first LSTM from zero state with ONNX-layout weights.

    Parameters
    ----------
    x : Tensor, shape (batch, steps, inputs)
    w : Tensor, shape (directions, 4·hidden, inputs)
        Input weights, ONNX gate order.
    r : Tensor, shape (directions, 4·hidden, hidden)
        Recurrent weights, ONNX gate order.
    b : Tensor, shape (directions, 8·hidden)
        Input then recurrent biases, ONNX gate order.
    hidden_size : int

    Returns
    -------
    y : Tensor, shape (batch, steps, directions·hidden)
    h, c : Tensor, shape (directions, batch, hidden)
        Last hidden and cell states, as ``nn.LSTM`` returns them.
    """
    directions = w.shape[0]
    params = []
    for d in range(directions):
        params += [_torch_layout(w[d]), _torch_layout(r[d]),
                   _torch_layout(b[d, : 4 * hidden_size]), _torch_layout(b[d, 4 * hidden_size :])]
    zeros = x.new_zeros(directions, x.shape[0], hidden_size)
    y, h, c = torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, False, directions == 2, True)
    return y.contiguous(), h, c  # torch's y is a strided view; the shape function's is contiguous


@lstm.register_fake
def _lstm_fake(x, w, r, b, hidden_size):
    directions = w.shape[0]
    state = x.new_empty(directions, x.shape[0], hidden_size)
    return x.new_empty(x.shape[0], x.shape[1], directions * hidden_size), state, state.clone()


def translate_lstm(x, w, r, b, hidden_size: int):
    """ONNX translation of ``eegmusic::lstm`` (onnxscript, traced by the exporter)."""
    from onnxscript import opset18 as op  # export.OPSET


    direction = "bidirectional" if w.shape[0] == 2 else "forward"
    y, h, c = op.LSTM(op.Transpose(x, perm=[1, 0, 2]), w, r, b, hidden_size=hidden_size,
                      direction=direction)
    # y: (steps, directions, batch, hidden) → (batch, steps, directions·hidden)
    y = op.Reshape(op.Transpose(y, perm=[2, 0, 1, 3]), op.Constant(value_ints=[0, 0, -1]))
    return y, h, c


TRANSLATIONS = {torch.ops.eegmusic.lstm.default: translate_lstm}
"""The exporter's ``custom_translation_table`` for graphs that hold :class:`OnnxLSTM`."""


class OnnxLSTM(nn.Module):
    """Stands in for an ``nn.LSTM`` during an export; same outputs from zero state."""

    def __init__(self, source: nn.LSTM):
        super().__init__()
        self.hidden_size = source.hidden_size
        suffixes = ["", "_reverse"][: 2 if source.bidirectional else 1]

        def stacked(name):
            return torch.stack([_onnx_layout(getattr(source, f"{name}_l0{s}")) for s in suffixes])

        self.register_buffer("w", stacked("weight_ih"))
        self.register_buffer("r", stacked("weight_hh"))
        self.register_buffer("b", torch.cat([stacked("bias_ih"), stacked("bias_hh")], dim=1))

    def forward(self, x, state=None):
        if state is not None:
            raise ValueError("the exported LSTM starts from zero state")
        y, h, c = torch.ops.eegmusic.lstm(x, self.w, self.r, self.b, self.hidden_size)
        return y, (h, c)


def exportable(lstm_module: nn.Module) -> bool:
    """Whether an LSTM is one :class:`OnnxLSTM` reproduces (any other keeps torch's own path)."""
    return (type(lstm_module) is nn.LSTM and lstm_module.num_layers == 1 and lstm_module.batch_first
            and lstm_module.bias and lstm_module.proj_size == 0)


def use_onnx_lstms(module: nn.Module) -> nn.Module:
    """Swap every :func:`exportable` LSTM of ``module`` for an :class:`OnnxLSTM`, in place (the exporter
    works on its own copy of the model); returns ``module``."""
    for name in [name for name, child in module.named_modules() if exportable(child)]:
        parent_name, _, attribute = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        setattr(parent, attribute, OnnxLSTM(getattr(parent, attribute)))
    return module
