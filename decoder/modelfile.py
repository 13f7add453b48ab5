"""Read and check an eegmusic model file (one self-contained ONNX file).

A model file carries its own contract in the ONNX metadata key ``eegmusic`` (JSON, see docs/design.md):
input channels and rate, window length, preprocessing, output kind and shape, and how far its
decoded audio lags the EEG window's end. :func:`read_model_info` reads that metadata through
onnxruntime, checks it against the graph's actual inputs and outputs, and returns a
:class:`ModelInfo`. :func:`check_stream` refuses a model that does not match a stream (channels,
rate). Every problem is a :class:`~stream.errors.ModelError` with a one-line message naming the
problem and the fix.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eegmusic.stream.channels import IMPUTE_ADVICE
from eegmusic.stream.errors import EEGMusicError, ModelError, missing, read_json, require_readable, utf8
from eegmusic.stream.spec import REFERENCES, WINDOW_S, PreprocessingSpec

log = logging.getLogger(__name__)

METADATA_KEY = "eegmusic"
FORMAT_VERSION = 1
OUTPUT_KINDS = ("mel_db", "audio")
EXPORT_FIX = "export it again with `eegmusic train`"
"""The fix every bad-model-file message ends with (also used by :mod:`decoder.runtime`)."""

DEFAULT_MISSING_FRACTION = 0.1
"""Share of a model's channels it tolerates missing (interpolated) when its metadata does not say:
12 of NMED-T's 125, about what a lab would interpolate in one recording."""


def default_max_missing(n_chans: int) -> int:
    """How many missing channels a model tolerates when its metadata does not state ``max_missing``."""
    return int(np.floor(DEFAULT_MISSING_FRACTION * n_chans))


@dataclass(frozen=True)
class ModelInfo:
    """What a model file declares about itself.

    Attributes
    ----------
    path : Path
        The ONNX file.
    model_name : str
        Registry name of the decoder (``"cnn"``, ...).
    channels : tuple of str
        Input channel labels, in model order (125 for NMED-T models).
    sfreq : float
        Input EEG rate in Hz.
    window_samples : int
        Input window length in samples.
    input_name : str
        Name of the EEG input (``"eeg"``).
    subject_input : bool
        Whether the graph has an int64 ``subject`` input.
    subjects : list
        Subjects the model knows (for the subject input).
    output_name : str
        Name of the output (``"mel_db"`` or ``"audio"``).
    output_kind : {"mel_db", "audio"}
        Mel-dB frames or a waveform.
    output_shape : tuple of int
        Output shape without the batch axis: ``(n_mels, n_frames)`` or ``(n_samples,)``.
    output_sfreq : float
        Audio rate of a waveform output in Hz (22050 for mel outputs too).
    audio_lag_s : float
        How far the decoded audio lags the window's end, in seconds.
    target_offset_s : float
        Offset of the training target (the window ending at EEG time T covers [T-1-off, T-off)).
    preprocessing : PreprocessingSpec
        Stream preprocessing the model was trained with.
    metadata : dict
        The whole parsed ``eegmusic`` metadata.
    positions : ndarray, shape (n_chans, 3), or None
        Electrode positions in metres, head frame, from the metadata (``input.positions``); None for
        files that do not state them (NMED-T models written before positions were stored): see
        :meth:`electrode_positions`.
    max_missing : int
        How many model channels a stream may lack and have interpolated (``input.max_missing``;
        :func:`default_max_missing` when the file does not say).
    """

    path: Path
    model_name: str
    channels: tuple[str, ...]
    sfreq: float
    window_samples: int
    input_name: str
    subject_input: bool
    subjects: list
    output_name: str
    output_kind: str
    output_shape: tuple[int, ...]
    output_sfreq: float
    audio_lag_s: float
    target_offset_s: float
    preprocessing: PreprocessingSpec
    metadata: dict = field(repr=False)
    positions: np.ndarray | None = field(default=None, repr=False, compare=False)
    max_missing: int = 0

    def electrode_positions(self) -> np.ndarray:
        """The model channels' positions in metres, head frame: the file's, else looked up by label.

        Labels E1…E129/Cz come from the GSN-HydroCel-129 net (no MNE needed), others from MNE's
        standard montages.

        Returns
        -------
        positions : ndarray, shape (n_chans, 3)
            NaN rows for labels no montage knows.
        """
        if self.positions is not None:
            return self.positions
        from eegmusic.stream.montage import head_positions

        return head_positions(self.channels, strict=False)

    @property
    def n_chans(self) -> int:
        """Number of input channels."""
        return len(self.channels)

    def summary(self) -> str:
        """One line describing the model (for logs and the CLI)."""
        out = "x".join(str(n) for n in self.output_shape)
        return (f"{self.path.name}: {self.model_name}, {self.n_chans} ch at {self.sfreq:g} Hz, "
                f"window {self.window_samples}, output {self.output_kind} {out}, "
                f"audio lag {self.audio_lag_s:g} s")


def open_session(path: str | Path, sess_options=None, providers=None):
    """Open an onnxruntime session on a model file with eegmusic's error messages.

    Parameters
    ----------
    path : str or Path
        The ONNX file.
    sess_options : onnxruntime.SessionOptions, optional
    providers : list of str, optional
        Execution providers in order of preference (default CPU).

    Returns
    -------
    onnxruntime.InferenceSession

    Raises
    ------
    ModelError
        The file is missing, not a file, empty, corrupt or truncated.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} {missing(path, 'does not exist')}; pass the path of a "
                         "model.onnx written by `eegmusic train`")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file; pass the model.onnx file itself")
    if path.stat().st_size == 0:
        raise ModelError(f"model file {path} is empty; {EXPORT_FIX}")
    require_readable(path)
    if not utf8(str(path)):   # onnxruntime takes paths as UTF-8: it raised a TypeError, called damage
        raise ModelError(f"model file {path}: its name holds bytes that are not UTF-8 (from a system with "
                         "another encoding), which onnxruntime cannot open; rename the file or its folder")
    try:
        return ort.InferenceSession(str(path), sess_options=sess_options,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
        reason = " ".join(str(error).split())[:160]
        raise ModelError(f"model file {path} is not a readable ONNX model (corrupt or truncated: "
                         f"{reason}); {EXPORT_FIX}") from error


def parse_metadata(custom_metadata: dict, path: str | Path) -> dict:
    """Return the parsed ``eegmusic`` metadata of a model's custom metadata map.

    Raises
    ------
    ModelError
        The key is missing, not JSON, or of an unsupported format version.
    """
    path = Path(path)
    text = custom_metadata.get(METADATA_KEY)
    if text is None:
        raise ModelError(f"model file {path} has no '{METADATA_KEY}' metadata (not an eegmusic model); "
                         f"{EXPORT_FIX}")
    try:
        metadata = read_json(text)
    except json.JSONDecodeError as error:
        raise ModelError(f"model file {path} has unreadable '{METADATA_KEY}' metadata (invalid JSON at "
                         f"char {error.pos}); {EXPORT_FIX}") from error
    if not isinstance(metadata, dict):
        raise ModelError(f"model file {path}: '{METADATA_KEY}' metadata is not a JSON object; {EXPORT_FIX}")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"model file {path} has metadata format_version {version!r}; this eegmusic reads "
                         f"version {FORMAT_VERSION}; {EXPORT_FIX} or upgrade eegmusic")
    return metadata


def _get(metadata: dict, path: Path, *keys: str):
    """Return metadata[keys[0]][keys[1]]... or raise a ModelError naming the missing key."""
    value = metadata
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            name = ".".join(keys[:depth + 1])
            raise ModelError(f"model file {path}: '{METADATA_KEY}' metadata lacks '{name}'; {EXPORT_FIX}")
        value = value[key]
    return value


_REQUIRED = object()

_KINDS = {
    "int": "a whole number", "float": "a finite number", "str": "a string", "bool": "true or false",
    "dict": "a JSON object", "list[str]": "a list of strings", "list[int]": "a list of whole numbers",
    "list": "a list",
}


def _typed(metadata: dict, path: Path, *keys: str, kind: str, default=_REQUIRED, low: float | None = None,
           high: float | None = None, nullable: bool = False):
    """metadata[keys...] checked to be ``kind`` (and within [low, high] for numbers); with ``nullable``,
    a ``null`` there is taken as ``None`` (a filter left out, a field a run did not use).

    Every value of the metadata comes from a file a user may have been handed, so a wrong type is
    refused here with one line naming the key, the expected type and the value found, never later
    as a traceback (``window_samples: "abc"``, ``sfreq: null``, ``channels: 5``, ``audio_lag_s: NaN``).
    """
    parent = metadata
    for key in keys[:-1]:
        parent = parent.get(key, {}) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or keys[-1] not in parent:
        if default is _REQUIRED:
            return _get(metadata, path, *keys)  # the one-line "lacks" message
        return default
    value = parent[keys[-1]]
    if value is None and nullable:
        return None
    ok = True
    if kind == "int":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
        value = int(value) if ok else value
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "dict":
        ok = isinstance(value, dict)
    elif kind == "list[str]":
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    elif kind == "list[int]":
        ok = isinstance(value, list) and all(isinstance(item, int) and not isinstance(item, bool)
                                             for item in value)
    elif kind == "list":
        ok = isinstance(value, list)
    in_range = ok and (low is None or value >= low) and (high is None or value <= high)
    if not in_range:
        shown = json.dumps(value, default=str)[:40] if not isinstance(value, float) else repr(value)
        bounds = ""
        if low is not None or high is not None:
            as_text = (lambda x: str(int(x))) if kind == "int" else (lambda x: f"{x:g}")  # not 4.29497e+09
            lower = "-inf" if low is None else as_text(low)
            upper = "inf" if high is None else as_text(high)
            bounds = f" in [{lower}, {upper}]"
        raise ModelError(f"model file {path}: metadata '{'.'.join(keys)}' must be {_KINDS[kind]}{bounds}, "
                         f"found {shown} ({type(parent[keys[-1]]).__name__}); {EXPORT_FIX}")
    return value


def _dims(node_arg) -> list:
    """Shape of an ONNX graph input/output (ints, or None for a symbolic dimension)."""
    return [d if isinstance(d, int) else None for d in (node_arg.shape or [])]


def info_from_session(session, path: str | Path) -> ModelInfo:
    """Build and check the :class:`ModelInfo` of an open session.

    The metadata must agree with the graph: the EEG input is float32 ``[batch, n_chans,
    window_samples]``, a ``subject`` input is int64 and declared, the output named in the metadata
    exists, float32, with the declared shape.

    Raises
    ------
    ModelError
        Missing or inconsistent metadata.
    """
    path = Path(path)
    try:
        stored = session.get_modelmeta().custom_metadata_map
    except UnicodeDecodeError as error:   # damaged bytes in it: a traceback from onnxruntime's binding
        raise ModelError(f"model file {path} holds metadata that is not UTF-8 text, so it is damaged; "
                         "export it again with eegmusic train") from error
    metadata = parse_metadata(stored, path)
    _typed(metadata, path, "input", kind="dict")
    _typed(metadata, path, "output", kind="dict")
    channels = tuple(_typed(metadata, path, "input", "channels", kind="list[str]"))
    sfreq = _typed(metadata, path, "input", "sfreq", kind="float", low=1.0, high=100000.0)
    window_samples = _typed(metadata, path, "input", "window_samples", kind="int", low=1, high=10**6)
    input_name = _typed(metadata, path, "input", "name", kind="str", default="eeg")
    subject_input = _typed(metadata, path, "input", "subject_input", kind="bool", default=False)
    subjects = list(_typed(metadata, path, "input", "subjects", kind="list", default=[]))
    output_name = _typed(metadata, path, "output", "name", kind="str")
    kind = _typed(metadata, path, "output", "kind", kind="str")
    if kind not in OUTPUT_KINDS:
        raise ModelError(f"model file {path} declares output kind {kind!r}; eegmusic decodes "
                         f"{' or '.join(OUTPUT_KINDS)}; {EXPORT_FIX}")
    if kind == "mel_db":
        output_shape = (_typed(metadata, path, "output", "n_mels", kind="int", low=1, high=4096),
                        _typed(metadata, path, "output", "n_frames", kind="int", low=1, high=10**6))
        _typed(metadata, path, "mel", kind="dict", default={})
        output_sfreq = _typed(metadata, path, "mel", "sr", kind="float", default=22050.0, low=1.0, high=10**6)
    else:
        output_shape = (_typed(metadata, path, "output", "n_samples", kind="int", low=1, high=10**8),)
        output_sfreq = _typed(metadata, path, "output", "sfreq", kind="float", low=1.0, high=10**6)
    offset = _typed(metadata, path, "target_offset_s", kind="float", default=0.0, low=-60.0, high=60.0)
    audio_lag_s = _typed(metadata, path, "audio_lag_s", kind="float", default=offset, low=-60.0, high=60.0)
    target_offset_s = _typed(metadata, path, "target_offset_s", kind="float", default=audio_lag_s)
    spec = _typed(metadata, path, "preprocessing", kind="dict", default={"channels": list(channels)})
    _check_preprocessing(metadata, path)
    try:
        preprocessing = PreprocessingSpec.from_dict(spec)
    except EEGMusicError as error:
        raise ModelError(f"model file {path}: metadata 'preprocessing' is invalid ({error}); {EXPORT_FIX}"
                         ) from None
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ModelError(f"model file {path}: metadata 'preprocessing' is invalid ({type(error).__name__}: "
                         f"{str(error)[:80]}); {EXPORT_FIX}") from None
    if len(channels) == 0 or len(set(channels)) != len(channels):
        raise ModelError(f"model file {path}: metadata channel list is empty or has duplicates; {EXPORT_FIX}")

    inputs = {arg.name: arg for arg in session.get_inputs()}
    if input_name not in inputs:
        raise ModelError(f"model file {path}: metadata names input '{input_name}' but the graph has "
                         f"{', '.join(inputs)}; {EXPORT_FIX}")
    eeg = inputs[input_name]
    if eeg.type != "tensor(float)":
        raise ModelError(f"model file {path}: input '{input_name}' is {eeg.type}, not float32; {EXPORT_FIX}")
    dims = _dims(eeg)
    if len(dims) != 3 or dims[1] not in (None, len(channels)) or dims[2] not in (None, window_samples):
        raise ModelError(f"model file {path}: input '{input_name}' has shape {eeg.shape}, metadata says "
                         f"[batch, {len(channels)}, {window_samples}]; {EXPORT_FIX}")
    if subject_input and "subject" not in inputs:
        raise ModelError(f"model file {path}: metadata declares a subject input the graph lacks; "
                         f"{EXPORT_FIX}")
    if "subject" in inputs:
        # the runtime feeds an int64 index only where the metadata declares the input: an undeclared one
        # would be left unfed, and another type fails the run; both were tracebacks from the first window
        if not subject_input:
            raise ModelError(f"model file {path}: graph has a 'subject' input its metadata does not declare "
                             f"(input.subject_input is false); {EXPORT_FIX}")
        if inputs["subject"].type != "tensor(int64)":
            raise ModelError(f"model file {path}: input 'subject' is {inputs['subject'].type}, not int64; "
                             f"{EXPORT_FIX}")
    extra = set(inputs) - {input_name, "subject"}
    if extra:
        raise ModelError(f"model file {path}: graph has unexpected inputs {sorted(extra)}; {EXPORT_FIX}")
    outputs = {arg.name: arg for arg in session.get_outputs()}
    if output_name not in outputs:
        raise ModelError(f"model file {path}: metadata names output '{output_name}' but the graph has "
                         f"{', '.join(outputs)}; {EXPORT_FIX}")
    if outputs[output_name].type != "tensor(float)":   # the runtime binds a float32 buffer
        raise ModelError(f"model file {path}: output '{output_name}' is {outputs[output_name].type}, not "
                         f"float32; {EXPORT_FIX}")
    out_dims = _dims(outputs[output_name])[1:]
    if len(out_dims) != len(output_shape) or any(
            d is not None and d != n for d, n in zip(out_dims, output_shape, strict=True)):
        raise ModelError(f"model file {path}: output '{output_name}' has shape "
                         f"{outputs[output_name].shape}, metadata says [batch, "
                         f"{', '.join(map(str, output_shape))}]; {EXPORT_FIX}")
    from eegmusic.decoder.melspec import FRAMES_PER_WINDOW, N_MELS  # librosa: imported where needed

    if kind == "mel_db" and output_shape != (N_MELS, FRAMES_PER_WINDOW):
        # evaluate refused such a model; decode took 1 frame (NaN frames, played as silence, and numpy's
        # divide-by-zero warnings) and 4096 bands (refused late, after the stream had connected)
        raise ModelError(f"model file {path} outputs mel-dB windows of {output_shape}; eegmusic decodes "
                         f"({N_MELS}, {FRAMES_PER_WINDOW}): {N_MELS} mel bands by the {FRAMES_PER_WINDOW} "
                         f"frames of 1 s; {EXPORT_FIX}")

    positions, max_missing = _montage_metadata(metadata["input"], len(channels), path)
    _typed(metadata, path, "model", kind="dict", default={})
    model_name = str(_typed(metadata, path, "model", "name", kind="str", default="unknown"))
    return ModelInfo(path=path, model_name=model_name, channels=channels, sfreq=sfreq,
                     window_samples=window_samples, input_name=input_name, subject_input=subject_input,
                     subjects=subjects, output_name=output_name, output_kind=kind,
                     output_shape=output_shape, output_sfreq=output_sfreq, audio_lag_s=audio_lag_s,
                     target_offset_s=target_offset_s, preprocessing=preprocessing, metadata=metadata,
                     positions=positions, max_missing=max_missing)


def _check_preprocessing(metadata: dict, path: Path) -> None:
    """Each field of ``preprocessing`` that the live path computes with has its type and range (an
    ``sfreq`` of "abc" or NaN, a ``highpass_hz`` of "x", were tracebacks in evaluate and in a running
    decode). A filter left out is ``null``."""
    _typed(metadata, path, "preprocessing", "sfreq", kind="float", default=None, low=1.0, high=100000.0)
    _typed(metadata, path, "preprocessing", "channels", kind="list[str]", default=None)
    reference = _typed(metadata, path, "preprocessing", "reference", kind="str", default="average")
    if reference not in REFERENCES:
        raise ModelError(f"model file {path}: metadata 'preprocessing.reference' is {reference!r}, not one "
                         f"of {', '.join(REFERENCES)}; {EXPORT_FIX}")
    for key in ("highpass_hz", "notch_hz"):
        _typed(metadata, path, "preprocessing", key, kind="float", default=None, nullable=True, low=1e-3,
               high=50000.0)


def training_metadata(info: ModelInfo) -> dict:
    """The model's ``training`` block, as ``train`` wrote it, with the fields ``evaluate`` reads checked
    (a ``seed`` of "abc" or a ``training`` that is a list were tracebacks; a ``hop_s`` of 0 blamed
    ``--phase``). A model without the block (another tool's export) gives ``{}``."""
    metadata, path = info.metadata, info.path
    if metadata.get("training") is None:
        return {}
    block = _typed(metadata, path, "training", kind="dict")
    for key in ("split", "data", "val_data"):
        _typed(metadata, path, "training", key, kind="str", default=None, nullable=True)
    _typed(metadata, path, "training", "songs", kind="list[int]", default=None, nullable=True)
    subjects = _typed(metadata, path, "training", "subjects", kind="list", default=None, nullable=True)
    if subjects is not None:
        if not all(isinstance(s, str) or (isinstance(s, int) and not isinstance(s, bool)) for s in subjects):
            found = json.dumps(subjects)[:40]
            raise ModelError(f"model file {path}: metadata 'training.subjects' must list participant ids "
                             f"(strings) or listener numbers, found {found}; {EXPORT_FIX}")
    _typed(metadata, path, "training", "seed", kind="int", default=0, low=0)  # numpy takes any: older runs
    _typed(metadata, path, "training", "hop_s", kind="float", default=1.0, low=0.008, high=60.0)
    return block


RESAMPLER = "centred"
"""``training.resampler`` of a model trained since the resampler's delay is compensated
(:mod:`stream.resample`: model sample *i* holds the EEG of *i*/125 s at every rate)."""

_RESAMPLED_SUFFIXES = (".xdf", ".xdfz", ".fif", ".edf", ".bdf", ".vhdr", ".set")
"""Training data that is usually above the model's rate: sessions of a real or virtual cap."""


def resampler_note(info: ModelInfo) -> str | None:
    """Why a model may read the EEG 80 ms off what it learnt, in one line, or None.

    Before the resampler's delay was compensated, EEG above 125 Hz reached training 80 ms late, and a
    model trained on it learnt that lag (its weights and target offset); it now reads the EEG on time.
    Such a model has no ``training.resampler``; one whose training data is a session file (or a folder of
    them), usually above 125 Hz, is named. NMED-T-layout folders are at the model rate: never resampled.
    """
    training = info.metadata.get("training")
    if not isinstance(training, dict) or "resampler" in training or not isinstance(training.get("data"), str):
        return None
    data = Path(training["data"])
    try:   # the data may be gone or unreadable here: then only its name can tell
        sessions = data.suffix.lower() in _RESAMPLED_SUFFIXES or (
            data.is_dir() and any(p.suffix.lower() in _RESAMPLED_SUFFIXES for p in data.iterdir()))
    except OSError:
        sessions = False
    if not sessions:
        return None
    return (f"model {Path(info.path).name} was trained on {data.name} before the resampler's 80-ms delay was "
            "compensated: from EEG above 125 Hz it learnt that delay, and it now reads the EEG on time, "
            "which costs it accuracy; train it again")


def _montage_metadata(entry: dict, n_chans: int, path: Path) -> tuple[np.ndarray | None, int]:
    """``input.positions`` (metres, one [x, y, z] per channel, optional) and ``input.max_missing``."""
    positions = entry.get("positions")
    if positions is not None:
        try:
            positions = np.asarray(positions, dtype=np.float64)
        except (TypeError, ValueError):
            positions = np.zeros(0)
        if positions.shape != (n_chans, 3):
            raise ModelError(f"model file {path}: metadata 'input.positions' must hold one [x, y, z] per "
                             f"channel ({n_chans}), got shape {positions.shape}; {EXPORT_FIX}")
        if not np.isfinite(positions).all():   # NaN made every missing channel's estimate NaN
            bad = int(np.flatnonzero(~np.isfinite(positions).all(axis=1))[0])
            raise ModelError(f"model file {path}: metadata 'input.positions' must hold finite numbers "
                             f"(metres), found {positions[bad].tolist()} for channel {bad + 1}; {EXPORT_FIX}")
    max_missing = entry.get("max_missing", default_max_missing(n_chans))
    if isinstance(max_missing, bool) or not isinstance(max_missing, int) or not 0 <= max_missing <= n_chans:
        raise ModelError(f"model file {path}: metadata 'input.max_missing' must be a whole number from 0 to "
                         f"{n_chans}, got {max_missing!r}; {EXPORT_FIX}")
    return positions, max_missing


def read_model_info(path: str | Path) -> ModelInfo:
    """Read and check a model file's ``eegmusic`` metadata.

    Parameters
    ----------
    path : str or Path
        The ONNX file written by ``eegmusic train``.

    Returns
    -------
    ModelInfo

    Raises
    ------
    ModelError
        Missing, corrupt or truncated file; missing or inconsistent metadata.
    """
    session = open_session(path)
    info = info_from_session(session, path)
    log.debug("model %s", info.summary())
    return info


def check_preprocessing_rate(info: ModelInfo) -> None:
    """Refuse a model whose preprocessing resamples to another rate than its graph reads.

    Live, the stream would be resampled to a rate the graph was not trained on; offline (``evaluate``),
    the recording would be, and the error would blame the recording's rate, which is fine.

    Raises
    ------
    ModelError
        The two rates differ.
    """
    if abs(info.preprocessing.sfreq - info.sfreq) > 1e-6:
        raise ModelError(f"model {info.path.name} reads EEG at {info.sfreq:g} Hz but its preprocessing "
                         f"resamples to {info.preprocessing.sfreq:g} Hz; {EXPORT_FIX}")


def check_live_contract(info: ModelInfo) -> None:
    """Refuse a model whose input the live stream stage cannot produce.

    The stream stage resamples any stream to the model's rate and cuts windows of the model's length;
    the decoder's frame clock needs 1-s windows (:data:`~stream.spec.WINDOW_S`: 44 mel frames), and
    the preprocessing must run at the model's rate.

    A waveform model's audio is resampled to 22050 Hz window by window, which needs its
    ``output.sfreq`` to be a short ratio of 22050 Hz (:func:`decoder.frameclock.waveform_resampling`).

    Raises
    ------
    ModelError
        A window other than 1 s, a preprocessing rate other than the model's, or a waveform rate the
        live decoder cannot resample.
    """
    check_preprocessing_rate(info)
    if abs(info.window_samples - WINDOW_S * info.sfreq) > 1e-6:
        seconds = info.window_samples / info.sfreq
        raise ModelError(f"model {info.path.name} reads EEG at {info.sfreq:g} Hz in windows of "
                         f"{info.window_samples} samples ({seconds:g} s); the live decoder takes "
                         f"{WINDOW_S:g}-s windows; use a model trained on {WINDOW_S:g}-s windows")
    if info.output_kind == "audio":
        from eegmusic.decoder.frameclock import waveform_resampling
        from eegmusic.decoder.melspec import AUDIO_SFREQ

        try:
            waveform_resampling(info.output_sfreq)
        except ValueError:
            raise ModelError(f"model {info.path.name} outputs audio at {info.output_sfreq:g} Hz, which the "
                             f"live decoder cannot resample to {AUDIO_SFREQ} Hz by a short filter; export it "
                             f"at {AUDIO_SFREQ} Hz (or 11025, 16000, 44100, 48000 Hz)") from None


def check_stream(info: ModelInfo, *, stream_name: str, labels: list[str] | tuple[str, ...],
                 sfreq: float, impute_missing: bool = False) -> None:
    """Refuse a model that does not match a stream.

    The stream must carry every model channel (by label, case-insensitively and through the standard
    aliases: ``E129``/``Cz`` on a 128/129 net, ``T3``/``T7``, …; a missing ``Cz`` is accepted as the zero
    reference of a GSN stream; a GSN stream of another net than the model's is refused), or, with
    ``impute_missing``, lack at most ``info.max_missing`` of them
    (they are interpolated), at a regular rate no lower than the model's.

    Parameters
    ----------
    info : ModelInfo
    stream_name : str
        For the message.
    labels : sequence of str
        The stream's channel labels.
    sfreq : float
        The stream's nominal rate in Hz (0 for irregular).
    impute_missing : bool
        Accept missing channels within the model's tolerance.

    Raises
    ------
    ModelError
        One line naming the mismatch and the fix.
    """
    from eegmusic.stream.channels import is_gsn_net, other_gsn_net
    from eegmusic.stream.montage import label_key, label_keys

    check_live_contract(info)
    if sfreq <= 0:
        raise ModelError(f"stream '{stream_name}' has an irregular rate; the model needs regular EEG at "
                         f"{info.sfreq:g} Hz or more; pick the EEG stream (eegmusic streams lists them)")
    if sfreq + 1e-6 < info.sfreq:
        from eegmusic.stream.spec import MODEL_SFREQ

        # `train` makes models at MODEL_SFREQ from faster data only: below it no model can be made
        other_model = "use a model trained at the stream's rate or " if sfreq >= MODEL_SFREQ else ""
        raise ModelError(f"stream '{stream_name}' runs at {sfreq:g} Hz; the model needs at least "
                         f"{info.sfreq:g} Hz; {other_model}raise the amplifier's rate to "
                         f"{max(info.sfreq, MODEL_SFREQ):g} Hz or more")
    other_net = other_gsn_net(labels, info.channels)
    if other_net:
        raise ModelError(f"stream '{stream_name}' {other_net}")
    have = set(label_keys(str(label) for label in labels))
    # a GSN amplifier's reference Cz is not sent: zero in its own reference
    excused = label_key("Cz") if is_gsn_net(labels) else None
    missing = [c for c, key in zip(info.channels, label_keys(info.channels), strict=True)
               if key not in have and key != excused]
    if not missing:
        return
    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    if len(missing) > info.max_missing:
        raise ModelError(f"stream '{stream_name}' has {len(labels)} channels and lacks {len(missing)} the "
                         f"model needs ({shown}); the model tolerates at most {info.max_missing} missing: "
                         f"use a model trained on this montage or a stream with "
                         f"{', '.join(info.channels[:2])} ... {info.channels[-1]}")
    if not impute_missing:
        raise ModelError(f"stream '{stream_name}' lacks {len(missing)} of the model's channels ({shown}); "
                         f"{IMPUTE_ADVICE} (the model tolerates "
                         f"{info.max_missing}), or use a model trained on this montage")

