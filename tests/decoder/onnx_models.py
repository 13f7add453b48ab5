"""Tiny eegmusic model files for decoder tests, built directly as ONNX graphs.

The graphs are small linear maps (a few thousand weights), so they build in milliseconds without
torch, yet their outputs depend on every input sample: a live frame that equals the offline
prediction of the same window proves the window was the same. Metadata follows COMMON.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from eegmusic.decoder.melspec import mel_spec_dict
from eegmusic.stream.spec import MODEL_CHANNELS, PreprocessingSpec
from onnx import TensorProto, helper, numpy_helper


def metadata(*, kind: str = "mel_db", channels=MODEL_CHANNELS, sfreq: float = 125.0,
             window_samples: int = 125, lag_s: float = 0.0, n_samples: int = 22050,
             audio_sfreq: float = 22050.0, subject_input: bool = False,
             subjects: tuple = ("P1", "P2")) -> dict:
    """The ``eegmusic`` metadata dict of a test model (COMMON.md schema); ``subjects`` are the listener
    ids a model with ``subject_input`` knows."""
    output = ({"name": "mel_db", "kind": "mel_db", "n_mels": 128, "n_frames": 44} if kind == "mel_db"
              else {"name": "audio", "kind": "audio", "n_samples": n_samples, "sfreq": audio_sfreq})
    spec = PreprocessingSpec(sfreq=sfreq, channels=tuple(channels)).to_dict()
    return {
        "format_version": 1,
        "model": {"name": f"test-linear-{kind}", "config": {}},
        "input": {"name": "eeg", "channels": list(channels), "sfreq": sfreq,
                  "window_samples": window_samples, "subject_input": subject_input,
                  "subjects": list(subjects) if subject_input else []},
        "preprocessing": spec,
        "output": output,
        "mel": mel_spec_dict(),
        "target_offset_s": lag_s,
        "audio_lag_s": lag_s,
        "training": {"data": "test", "songs": [], "subjects": [], "split": "block", "seed": 0,
                     "epochs": 0, "created": "2026-11-21T00:00:00Z"},
        "evaluation": {},
    }


def _mel_graph(n_chans: int, window_samples: int, seed: int, n_frames: int = 44):
    """eeg [B, C, T] -> W_ch [128, C] @ eeg @ W_t [T, n_frames] * 0.01 - 40 dB: [B, 128, n_frames]
    (declared [B, 128, 44] whatever it computes)."""
    rng = np.random.default_rng(seed)
    w_t = (rng.standard_normal((window_samples, n_frames)) / np.sqrt(window_samples)).astype(np.float32)
    w_ch = (rng.standard_normal((128, n_chans)) / np.sqrt(n_chans)).astype(np.float32)
    bias = np.linspace(-20, -60, 128, dtype=np.float32).reshape(128, 1)
    nodes = [
        helper.make_node("MatMul", ["eeg", "w_t"], ["x_t"]),
        helper.make_node("MatMul", ["w_ch", "x_t"], ["x_ch"]),
        helper.make_node("Add", ["x_ch", "bias"], ["mel_db"]),
    ]
    inits = [numpy_helper.from_array(w_t, "w_t"), numpy_helper.from_array(w_ch, "w_ch"),
             numpy_helper.from_array(bias, "bias")]
    out = helper.make_tensor_value_info("mel_db", TensorProto.FLOAT, ["batch", 128, 44])
    return nodes, inits, out


def _audio_graph(n_samples: int, sfreq: float = 22050.0):
    """eeg [B, C, T] -> 0.1 * sigmoid(mean(eeg)) * sin(2 pi 440 t), t at ``sfreq``: [B, n_samples]."""
    t = np.arange(n_samples, dtype=np.float32) / sfreq
    tone = (0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["eeg"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Sigmoid", ["mean"], ["amp"]),
        helper.make_node("Unsqueeze", ["amp", "axis1"], ["amp2"]),
        helper.make_node("Mul", ["amp2", "tone"], ["audio"]),
    ]
    inits = [numpy_helper.from_array(tone, "tone"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    out = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", n_samples])
    return nodes, inits, out


def _retyped(nodes: list, out, *, output_type: int, subject_type: int | None) -> tuple[list, list]:
    """The graph's last node renamed, then a ``subject`` input added in (times the ``subject_weight``
    initializer) and a cast to ``output_type``: the graph inputs beside ``eeg`` and the nodes."""
    name = out.name
    nodes[-1].output[0] = "raw"
    last, inputs = "raw", []
    if subject_type is not None:
        inputs.append(helper.make_tensor_value_info("subject", subject_type, ["batch"]))
        nodes += [helper.make_node("Cast", ["subject"], ["subject_f"], to=TensorProto.FLOAT),
                  helper.make_node("ReduceSum", ["subject_f"], ["subject_sum"], keepdims=0),
                  helper.make_node("Mul", ["subject_sum", "subject_weight"], ["subject_term"]),
                  helper.make_node("Add", [last, "subject_term"], ["with_subject"])]
        last = "with_subject"
    nodes.append(helper.make_node("Cast", [last], [name], to=output_type))
    out.type.tensor_type.elem_type = output_type
    return inputs, nodes


def make_model(path: str | Path, *, kind: str = "mel_db", meta: dict | str | None = "default",
               n_chans: int = 125, window_samples: int = 125, seed: int = 0,
               output_type: int = TensorProto.FLOAT, subject_type: int | None = None,
               computed_frames: int = 44, subject_weight: float = 0.0, **meta_kwargs) -> Path:
    """Write a tiny model file.

    Parameters
    ----------
    path : str or Path
    kind : {"mel_db", "audio"}
    meta : dict, str or None
        ``"default"``: :func:`metadata` with ``meta_kwargs``; a dict or raw string: stored as is;
        None: no ``eegmusic`` metadata at all.
    n_chans, window_samples : int
        Graph input shape (may differ from the metadata on purpose).
    output_type : int
        ``onnx.TensorProto`` type of the output (float32; another to test a refusal).
    subject_type : int, optional
        ``onnx.TensorProto`` type of a ``subject`` input [batch] the graph reads; None: no such input.
    computed_frames : int
        Mel frames the graph computes (it declares 44 whatever: a model that lies about its shape).
    subject_weight : float
        Added to every output value per unit of the ``subject`` input (0: the subject changes nothing;
        else listener index k decodes ``k * subject_weight`` higher, so the index fed is seen).
    """
    path = Path(path)
    if kind == "mel_db":
        nodes, inits, out = _mel_graph(n_chans, window_samples, seed, computed_frames)
    else:
        nodes, inits, out = _audio_graph(meta_kwargs.get("n_samples", 22050),
                                         meta_kwargs.get("audio_sfreq", 22050.0))
    extra = []
    if output_type != TensorProto.FLOAT or subject_type is not None:
        extra, nodes = _retyped(nodes, out, output_type=output_type, subject_type=subject_type)
        inits.append(numpy_helper.from_array(np.array(subject_weight, np.float32), "subject_weight"))
    eeg = helper.make_tensor_value_info("eeg", TensorProto.FLOAT, ["batch", n_chans, window_samples])
    graph = helper.make_graph(nodes, "eegmusic_test", [eeg, *extra], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta == "default":
        meta = metadata(kind=kind, **meta_kwargs)
    if meta is not None:
        text = meta if isinstance(meta, str) else json.dumps(meta)
        onnx.helper.set_model_props(model, {"eegmusic": text})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
