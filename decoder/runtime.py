"""Run a decoder model on one window at a time with onnxruntime, on the GPU or the CPU.

:class:`DecoderRuntime` opens the model file once, picks the execution provider (``device="auto"``:
CUDA when onnxruntime has it, else CPU), sets thread counts, preallocates the input and output
buffers, binds them to the session (I/O binding: no allocation per call, and on the GPU a single
host-to-device and device-to-host copy), and runs a few warm-up windows so the first live window is
not the slow one.

The live path imports no torch: this module needs only numpy and onnxruntime.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from eegmusic.decoder.modelfile import EXPORT_FIX, ModelInfo, info_from_session, open_session, resampler_note
from eegmusic.stream.errors import ConfigError, ModelError, detail

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    """Execution providers this onnxruntime build offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def cuda_available() -> bool:
    """Whether onnxruntime can run on CUDA here (the ``gpu`` extra installed)."""
    return CUDA in available_providers()


def choose_providers(device: str) -> list[str]:
    """Execution providers for a ``--device`` choice.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    list of str
        Providers in order of preference.

    Raises
    ------
    ModelError
        ``device="cuda"`` but onnxruntime has no CUDA provider here.
    """
    if device not in DEVICES:
        raise ModelError(f"device {device!r} is not one of {', '.join(DEVICES)}; pass --device auto")
    have = available_providers()
    if device == "cpu":
        return [CPU]
    if device == "cuda" and CUDA not in have:
        raise ModelError(f"--device cuda was asked for but onnxruntime has no CUDA provider here (it has "
                         f"{', '.join(p.removesuffix('ExecutionProvider') for p in have)}); install the "
                         f"gpu extra (pip install '.[gpu]') or pass --device cpu")
    if CUDA in have:
        return [CUDA, CPU]
    return [CPU]


def _number(listener_id: str) -> int | None:
    """The number a listener id ends in (``S02`` -> 2), or None."""
    digits = re.search(r"(\d+)$", listener_id)
    return int(digits.group(1)) if digits else None


def subject_index(info: ModelInfo, subject: str | None) -> int:
    """The ``subject`` input that makes a model decode as listener ``subject``: its place in
    ``info.subjects``, the listeners it was trained on (``train --subject-conditioning``).

    A subject-conditioned model decodes each of its training listeners through that listener's own
    parameters; fed another's, it decodes a live listener as someone else. ``subject=None`` feeds the
    first, and says so once (a warning naming it): every live listener was decoded as training listener
    1 without a word.

    Parameters
    ----------
    info : ModelInfo
    subject : str or None
        A listener id as the model lists it (``decode --subject``), e.g. ``S02``, or the listener's
        number as ``replay --subject`` takes it (``2`` for ``S02``: the one id whose digits read 2).

    Returns
    -------
    int
        0 for a model without a subject input (and ``subject=None``).

    Raises
    ------
    ConfigError
        ``subject`` is not one the model knows, or the model has no subject input.
    """
    name = Path(info.path).name
    known = [str(s) for s in info.subjects]
    if subject is not None:
        if not info.subject_input:
            raise ConfigError(f"--subject {subject}: model {name} has no subject input (trained without "
                              "--subject-conditioning) and decodes every listener alike; drop --subject")
        if str(subject) in known:
            return known.index(str(subject))
        numbered = [i for i, s in enumerate(known) if str(subject).isdigit() and _number(s) == int(subject)]
        if len(numbered) == 1:   # replay --subject 2 plays S02: the same listener, named the same way
            return numbered[0]
        listed = ", ".join(known) if known else "no listener ids"
        raise ConfigError(f"--subject {subject} is not a listener model {name} was trained on (it knows "
                          f"{listed}); pass one of those")
    if info.subject_input:
        first = known[0] if known else "index 0"
        log.warning("model %s is subject-conditioned and no --subject was given: it decodes as listener %s "
                    "(its first of %s); pass --subject ID for the listener being decoded", name, first,
                    ", ".join(known) or "none listed")
    return 0


class DecoderRuntime:
    """An onnxruntime session over one model file, fed one window at a time.

    Parameters
    ----------
    model_path : str or Path
        The ONNX model file.
    device : {"auto", "cpu", "cuda"}
        Where to run: ``auto`` uses CUDA when available, else the CPU.
    intra_op_threads : int
        Threads inside one operator (1 keeps a live machine's other threads free).
    inter_op_threads : int
        Threads across independent operators.
    warmup : int
        Windows run at start-up (their outputs are discarded).
    iobinding : bool or None
        Bind preallocated buffers to the session (``run_with_iobinding``). None: on (measured the
        faster path on both CPU and GPU by ``decoder.bench_runtime``).
    subject : str, optional
        The listener (one of the model's ``subjects``, e.g. ``S02``) fed to a subject-conditioned model
        (``train --subject-conditioning``); see :func:`subject_index`. None: its first training
        listener, with a warning naming it.

    Attributes
    ----------
    info : ModelInfo
    provider : str
        The execution provider actually running the model.
    output_shape : tuple of int
        Output shape of one window: ``(128, 44)`` for mel models, ``(n_samples,)`` for waveform ones.
    subject : str or None
        The listener a subject-conditioned model decodes as (None for a model without a subject input).

    Examples
    --------
    >>> runtime = DecoderRuntime("model.onnx", device="cpu")     # doctest: +SKIP
    >>> runtime.predict(np.zeros((125, 125), np.float32)).shape  # doctest: +SKIP
    (128, 44)
    """

    def __init__(self, model_path: str | Path, *, device: str = "auto", intra_op_threads: int = 1,
                 inter_op_threads: int = 1, warmup: int = 3, iobinding: bool | None = None,
                 subject: str | None = None):
        import onnxruntime as ort

        if intra_op_threads < 1 or inter_op_threads < 1:
            raise ModelError(f"thread counts must be >= 1 (got intra {intra_op_threads}, inter "
                             f"{inter_op_threads}); pass --threads 1")
        providers = choose_providers(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = int(inter_op_threads)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Spinning worker threads cut latency by microseconds but burn a core between windows.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self._session = open_session(model_path, sess_options=options, providers=providers)
        self.info: ModelInfo = info_from_session(self._session, model_path)
        active = self._session.get_providers()
        if device == "cuda" and CUDA not in active:
            raise ModelError("--device cuda was asked for but the CUDA provider failed to start (no GPU or "
                             "driver visible); check nvidia-smi or pass --device cpu")
        self.provider = CUDA if CUDA in active else CPU
        self.device = "cuda" if self.provider == CUDA else "cpu"
        self.intra_op_threads = int(intra_op_threads)
        self.inter_op_threads = int(inter_op_threads)
        self.output_shape = tuple(self.info.output_shape)

        info = self.info
        self._input = np.zeros((1, info.n_chans, info.window_samples), dtype=np.float32)
        self._output = np.zeros((1, *self.output_shape), dtype=np.float32)
        index = subject_index(info, subject)   # before the warm-up: a refusal costs no model run
        self.subject = str(info.subjects[index]) if info.subject_input and info.subjects else None
        self._subject = np.full((1,), index, dtype=np.int64)
        self._feeds = {info.input_name: self._input}
        if info.subject_input:
            self._feeds["subject"] = self._subject
        self.iobinding = True if iobinding is None else bool(iobinding)
        self._binding = self._bind() if self.iobinding else None
        # a failing run raises with onnxruntime's words: its own error log beside them is noise
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4
        for _ in range(max(0, int(warmup))):
            self._warm_up()
        note = resampler_note(info)
        if note:
            log.warning("%s", note)
        log.info("decoder %s%s on %s (%d+%d threads, io binding %s)", info.summary(),
                 f", as listener {self.subject}" if self.subject is not None else "", self.provider,
                 intra_op_threads, inter_op_threads, "on" if self.iobinding else "off")

    def _bind(self):
        """Bind the preallocated buffers (GPU: device input, host output)."""
        import onnxruntime as ort

        binding = self._session.io_binding()
        info = self.info
        if self.provider == CUDA:
            self._device_input = ort.OrtValue.ortvalue_from_shape_and_type(
                self._input.shape, np.float32, "cuda", 0)
            binding.bind_ortvalue_input(info.input_name, self._device_input)
        else:
            self._device_input = None
            binding.bind_cpu_input(info.input_name, self._input)
        if info.subject_input:
            binding.bind_cpu_input("subject", self._subject)
        binding.bind_output(info.output_name, "cpu", 0, np.float32, list(self._output.shape),
                            self._output.ctypes.data)
        return binding

    def _run(self) -> None:
        """Run the model on the input buffer, leaving the result in the output buffer."""
        if self._binding is not None:
            if self._device_input is not None:
                self._device_input.update_inplace(self._input)
                self._binding.synchronize_inputs()
            self._session.run_with_iobinding(self._binding, self._run_options)
            if self._device_input is not None:
                self._binding.synchronize_outputs()
        else:
            self._output[...] = self._session.run([self.info.output_name], self._feeds, self._run_options)[0]

    def _warm_up(self) -> None:
        """Run one start-up window; a model that fails on it is refused in one line, before any stream opens.

        The metadata is checked against the graph's declared types and shapes (:mod:`decoder.modelfile`),
        but only a run shows what the graph computes: a graph that declares 128 x 44 and computes
        128 x 40 fails into the bound buffer.

        Raises
        ------
        ModelError
            onnxruntime (or numpy, without I/O binding) failed on the window.
        """
        try:
            self._run()
        except Exception as error:  # onnxruntime's RuntimeError/Fail/InvalidArgument, numpy's ValueError
            reason = detail(error, limit=160)
            try:   # unbound, the output comes back at the shape the graph computes
                computed = self._session.run([self.info.output_name], self._feeds, self._run_options)[0]
            except Exception:  # the first failure is the one to report
                computed = None
            if computed is not None and computed.shape != self._output.shape:
                reason = (f"it computes output '{self.info.output_name}' of shape {list(computed.shape)}, "
                          f"its metadata declares [batch, {', '.join(map(str, self.output_shape))}]")
            raise ModelError(f"model file {self.info.path} fails on a window: {reason}; "
                             f"{EXPORT_FIX}") from None

    def predict(self, window: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Decode one window.

        Parameters
        ----------
        window : ndarray, shape (n_chans, window_samples)
            Model-rate EEG after the stream's preprocessing (µV), any float dtype.
        out : ndarray, shape output_shape, float32, optional
            Where to write the result (else a new array).

        Returns
        -------
        ndarray, shape (128, 44) mel-dB or (n_samples,) audio, float32
        """
        if window.shape != self._input.shape[1:]:
            raise ModelError(f"window has shape {window.shape}; the model needs {self._input.shape[1:]} "
                             f"(channels x samples); check the stream's channels and rate")
        self._input[0] = window
        self._run()
        if out is None:
            return self._output[0].copy()
        out[...] = self._output[0]
        return out

    def predict_batch(self, windows: np.ndarray) -> np.ndarray:
        """Decode many windows in one call (offline use: parity checks, benchmarks).

        Parameters
        ----------
        windows : ndarray, shape (n_windows, n_chans, window_samples)

        Returns
        -------
        ndarray, shape (n_windows, *output_shape), float32
        """
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        feeds = {self.info.input_name: windows}
        if self.info.subject_input:
            feeds["subject"] = np.full((len(windows),), self._subject[0], dtype=np.int64)
        return self._session.run([self.info.output_name], feeds)[0]
