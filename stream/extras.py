"""Optional dependencies: which extra of ``eegmusic`` brings each one, and a one-line error when absent.

A headless decode machine installs the core only (numpy, scipy, pylsl, pyxdf, onnxruntime, sounddevice,
soundfile, librosa, numba, tqdm); training, evaluation and the dashboard need extras (``pyproject.toml``):

- ``[train]``: torch, onnx, onnxscript, mne, mne-bids, h5py, matplotlib;
- ``[gui]``: PySide6, pyqtgraph;
- ``[dev]``: everything, plus the benchmarks' baselines (mne-lsl, ViSQOL) and the test tools.

Code that needs one of them either calls :func:`require` (a clear error at the point of use) or
simply imports it: the ``eegmusic`` dispatcher turns a :class:`ModuleNotFoundError` for any module
named here into the same one line (:func:`missing_extra`), never a traceback.

Example
-------
>>> torch = require("torch")  # doctest: +SKIP
MissingExtraError: torch is not installed; install the training extra: pip install 'eegmusic[train]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from eegmusic.stream.errors import EEGMusicError

EXTRA_OF: dict[str, str] = {
    "torch": "train",
    "onnx": "train",
    "onnxscript": "train",
    "mne": "train",
    "mne_bids": "train",
    "h5py": "train",
    "matplotlib": "train",
    "PySide6": "gui",
    "shiboken6": "gui",
    "pyqtgraph": "gui",
    "pytestqt": "dev",
    "mne_lsl": "dev",  # the benchmarks' baselines
    "visqol": "dev",
}
"""Top-level module name -> the extra of ``eegmusic`` that installs it."""

WHAT_EXTRA_IS_FOR = {"train": "training extra", "gui": "dashboard extra", "dev": "development extra"}


class MissingExtraError(EEGMusicError):
    """An optional dependency is not installed; the message names the extra to install."""


def missing_extra(error: ImportError) -> MissingExtraError | None:
    """The one-line error for an import that failed because an extra is missing, or ``None``.

    Parameters
    ----------
    error : ImportError
        Raised by an ``import`` statement; its ``name`` is the module that could not be found.

    Returns
    -------
    MissingExtraError or None
        ``None`` when the missing module is not an optional dependency (a real bug: let it raise).
    """
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    top = error.name.split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return MissingExtraError(
        f"{top} is not installed; install the {WHAT_EXTRA_IS_FOR[extra]}: pip install 'eegmusic[{extra}]'"
    )


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that installs it.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"torch"`` or ``"matplotlib.pyplot"``.
    extra : str, optional
        The extra to name; default: looked up in :data:`EXTRA_OF`.

    Returns
    -------
    module
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if extra is not None and error.name and error.name.split(".")[0] == module.split(".")[0]:
            raise MissingExtraError(
                f"{module.split('.')[0]} is not installed; install the "
                f"{WHAT_EXTRA_IS_FOR.get(extra, 'extra')}: pip install 'eegmusic[{extra}]'"
            ) from None
        found = missing_extra(error)
        if found is None:
            raise
        raise found from None
