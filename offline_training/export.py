"""Export a trained decoder to one self-contained ONNX file with the ``eegmusic`` metadata.

Features and fitted statistics are inside the graph (model buffers); the metadata key ``eegmusic``
holds the JSON the live decoder reads (docs/design.md, "Model file"). The file is written next to
its destination and renamed into place, so a failed export never leaves a broken model behind.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import io
import json
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np
from eegmusic.decoder.melspec import mel_spec_dict
from eegmusic.stream.errors import ModelError, read_json
from eegmusic.stream.spec import PreprocessingSpec

logger = logging.getLogger(__name__)

DEFAULT_SPEC = PreprocessingSpec()
"""The default (identity) preprocessing; frozen, so safe as a default argument."""

FORMAT_VERSION = 1
METADATA_KEY = "eegmusic"
OPSET = 18
"""ONNX opset of exported files (the lowest the dynamo exporter writes)."""
MAX_BATCH = 4096
"""Largest batch the exported graph declares (its batch dimension is symbolic)."""


def build_metadata(
    model,
    *,
    spec: PreprocessingSpec = DEFAULT_SPEC,
    target_offset_s: float = 0.0,
    subjects=(),
    training: dict | None = None,
    evaluation: dict | None = None,
    positions: dict | None = None,
    max_missing: int | None = None,
) -> dict:
    """The ``eegmusic`` metadata of a model (JSON-ready).

    Parameters
    ----------
    model : MelDecoder
    spec : PreprocessingSpec
        Preprocessing the model was trained with (the stream must apply the same).
    target_offset_s : float
        Target offset of training: the window ending at EEG time T decodes stimulus
        [T - 1 - offset, T - offset); it is also the decoded audio's lag (``audio_lag_s``).
    subjects : sequence of str
        Participant ids, in the order of the ``subject`` input (empty for no subject input).
    training, evaluation : dict, optional
        Provenance (data, songs, subjects, split, seed, epochs, created) and evaluation summary.
    positions : dict of str to (x, y, z), optional
        Electrode positions in metres, head frame, by label (as the dataset states them); channels it
        does not name are looked up in the standard montages. Stored as ``input.positions`` when
        every model channel has one.
    max_missing : int, optional
        How many model channels a live stream may lack and have interpolated (``input.max_missing``;
        default: :func:`decoder.modelfile.default_max_missing`).
    """
    training = dict(training or {})
    montage = _montage_entries(spec.channels, positions, max_missing)
    training.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": model.name, "config": model.get_config()},
        "input": {
            "name": "eeg",
            "channels": list(spec.channels),
            "sfreq": float(model.sfreq),
            "window_samples": int(model.n_times),
            "subject_input": bool(model.subject_input),
            "subjects": [str(s) for s in subjects] if model.subject_input else [],
            **montage,
        },
        "preprocessing": spec.to_dict(),
        "output": _output_metadata(model),
        "mel": mel_spec_dict(),
        "target_offset_s": float(target_offset_s),
        "audio_lag_s": float(target_offset_s),
        "training": training,
        "evaluation": dict(evaluation or {}),
    }


def _montage_entries(channels, positions: dict | None, max_missing: int | None) -> dict:
    """``positions`` (when every channel has one) and ``max_missing`` of the metadata's ``input``."""
    from eegmusic.decoder.modelfile import default_max_missing
    from eegmusic.stream.errors import EEGMusicError
    from eegmusic.stream.montage import head_positions, label_keys

    positions = positions or {}
    # keyed per channel list: E129 is Cz only on a 128/129 net (on a 257 net both are electrodes)
    given = dict(zip(label_keys(positions), positions.values(), strict=True))
    try:
        looked_up = head_positions(channels, strict=False)
    except EEGMusicError as error:  # MNE missing for non-GSN labels: the file states no positions
        logger.warning("model channel positions not stored: %s", error)
        looked_up = np.full((len(channels), 3), np.nan)
    rows = zip(label_keys(channels), looked_up, strict=True)
    table = np.array([given.get(key, row) for key, row in rows], dtype=np.float64)
    tolerance = default_max_missing(len(channels)) if max_missing is None else max_missing
    out: dict = {"max_missing": int(tolerance)}
    if np.isfinite(table).all():
        out["positions"] = np.round(table, 7).tolist()
    else:
        logger.warning("model channel positions not stored: %d labels match no montage",
                       int((~np.isfinite(table).all(axis=1)).sum()))
    return out


def _output_metadata(model) -> dict:
    """The ``output`` entry: mel-dB by default; a waveform model describes its own (``output_metadata()``)."""
    if hasattr(model, "output_metadata"):
        return dict(model.output_metadata())
    return {"name": "mel_db", "kind": "mel_db", "n_mels": int(model.n_mels), "n_frames": int(model.n_frames)}


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's progress prints, warnings and optional-package log lines (torchvision)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


_TORCHLIB_REGISTRIES: dict = {}
"""Torch's ATen → ONNX translation tables built so far in this process, by opset (see below)."""
_TORCHLIB_LOCK = threading.Lock()


@contextlib.contextmanager
def _torchlib_registry_built_once():
    """During one export, let torch reuse the translation table it built on an earlier export.

    ``torch.onnx.export(..., dynamo=True)`` rebuilds its table of ATen → ONNX translations on every
    call: 1.1 s here, a quarter of exporting a ``convnet``, paid again by every export of a ``train``
    run, a benchmark or the test suite. Torch offers no public way to pass a table in, so this swaps
    the private builder (``ONNXRegistry.from_torchlib``) for a cached one for the length of the export,
    under a lock, and puts it back after. Each export gets its own copy of the table's lists (about
    1 ms), since the exporter adds the ``custom_translation_table`` it is given (eegmusic's LSTM,
    :mod:`offline_training.onnx_lstm`) to the table. Where that private name is missing (another
    torch), the export runs as torch ships it.
    """
    try:
        from torch.onnx._internal.exporter import _registration

        registry_class = _registration.ONNXRegistry
        original = registry_class.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _TORCHLIB_REGISTRIES:
            _TORCHLIB_REGISTRIES[key] = build(cls, *args, **kwargs)
        built = _TORCHLIB_REGISTRIES[key]
        # a copy of the lists: the exporter adds eegmusic's own translations to the table it is given
        table = copy.copy(built)
        table.functions = {target: list(entries) for target, entries in built.functions.items()}
        return table

    with _TORCHLIB_LOCK:
        registry_class.from_torchlib = classmethod(from_torchlib)
        try:
            yield
        finally:
            registry_class.from_torchlib = original


def export_onnx(model, path, metadata: dict, *, full_disk: str | None = None, lstm_op: bool = True,
                shown_as=None) -> Path:
    """Write ``model`` as ONNX with inputs ``eeg`` (+ ``subject``), output ``mel_db``, dynamic batch.

    The graph is captured with ``torch.export`` and translated by torch's maintained ONNX exporter
    (``torch.onnx.export(..., dynamo=True)``, which needs the ``onnxscript`` package of the
    ``train`` extra). A model with ``export_module()`` exports that module instead (output named by
    ``metadata["output"]["name"]``, e.g. ``audio``).

    Parameters
    ----------
    model : MelDecoder
        Exported in eval mode, on the CPU (the caller's model is not modified).
    path : str or Path
        Destination ``.onnx`` file.
    metadata : dict
        From :func:`build_metadata`; stored as JSON under the key ``eegmusic``.
    full_disk : str, optional
        How a full-disk message ends (what is left and the fix; :func:`stream.atomic.disk_errors`);
        by default that ``path`` is unchanged (or that none is left, where there was none).
    lstm_op : bool
        Export each plain LSTM through :mod:`offline_training.onnx_lstm` (the default); False takes
        torch's own path, which writes the same ONNX operator after tracing every step (the export
        benchmark's baseline, ``benchmarks/bench_runtime.py``).
    shown_as : str or Path, optional
        The path the log names: where the file will be, for a caller that writes it elsewhere first
        (``train`` stages its final files and renames them into the run folder).

    Returns
    -------
    path : Path
    """
    import onnx
    import torch
    from eegmusic.offline_training.onnx_lstm import TRANSLATIONS, use_onnx_lstms
    from eegmusic.stream.atomic import FREE_SPACE, disk_errors
    from eegmusic.stream.extras import require

    require("onnxscript")  # the exporter's translator: a one-line "install eegmusic[train]" when absent
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()
    # a model may export a different graph than its training forward (a waveform generator's audio)
    graph = model.export_module().eval() if hasattr(model, "export_module") else model
    if lstm_op:  # its LSTMs as one operator each, which torch does not trace step by step
        use_onnx_lstms(graph)
    output_name = metadata.get("output", {}).get("name", "mel_db")
    eeg = torch.zeros(2, model.n_chans, model.n_times)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    inputs: tuple = (eeg,)
    names = ["eeg"]
    shapes: tuple = ({0: batch},)
    if model.subject_input:
        inputs = (eeg, torch.zeros(2, dtype=torch.long))
        names.append("subject")
        shapes = ({0: batch}, {0: batch})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with _quiet_exporter(), _torchlib_registry_built_once():
            program = torch.onnx.export(
                graph,
                inputs,
                input_names=names,
                output_names=[output_name],
                dynamic_shapes=shapes,
                opset_version=OPSET,
                dynamo=True,
                custom_translation_table=TRANSLATIONS,
                external_data=False,
                verbose=False,
            )
        # a full disk or a refused write is one line; the part file is removed and never renamed
        left = f"{path.name} is unchanged" if os.path.lexists(path) else f"no {path.name} is left"
        with disk_errors(path, tail=full_disk or f"{left}; {FREE_SPACE}"):
            program.save(str(tmp))
            proto = onnx.load(str(tmp))
            entry = proto.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
            proto.producer_name = "eegmusic"
            onnx.save(proto, str(tmp))
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.info("exported %s model to %s", model.name, shown_as or path)
    return path


def read_metadata(path) -> dict:
    """The ``eegmusic`` metadata of an ONNX model file.

    Raises
    ------
    ModelError
        Missing or unreadable file, or no ``eegmusic`` metadata.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found; train one with: eegmusic train --out RUN")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise ModelError(
            f"model file {path} is not readable ONNX ({type(error).__name__}); re-export it"
        ) from error
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return read_json(entry.value)
    raise ModelError(f"model file {path} has no '{METADATA_KEY}' metadata; export it with eegmusic train")


def run_onnx(path, eeg: np.ndarray, subject: np.ndarray | None = None) -> np.ndarray:
    """Run an exported model with onnxruntime on the CPU.

    Parameters
    ----------
    path : str or Path
    eeg : ndarray, shape (batch, n_chans, n_times)
    subject : ndarray of int, shape (batch,), optional

    Returns
    -------
    output : ndarray, float32
        The model's first output: mel_db (batch, n_mels, n_frames), or audio (batch, n_samples).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {"eeg": np.ascontiguousarray(eeg, dtype=np.float32)}
    if subject is not None and any(i.name == "subject" for i in session.get_inputs()):
        feeds["subject"] = np.asarray(subject, dtype=np.int64)
    return session.run(None, feeds)[0]
