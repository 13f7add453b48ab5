"""Reading one song file: NMED-T's ``songNN_Imputed.mat``, or ``songNN_raw.mat``, MATLAB v5 or v7.3.

``songNN_raw.mat`` (``dataNN`` 129 channels × time × participants at 1 kHz) is the simulator's own raw
layout (``eegmusic simulate --raw``), not the release's: NMED-T's raw recordings are one file per
participant and session (``PP_R_raw.mat`` holding ``X``, ``DIN_1`` and ``fs``), which are not read; a
file holding ``X`` is named as such.

A file holds ``dataNN`` (channels × time × participants, µV, float64), ``fs`` (125) and ``subsNN``
(participant ids). MATLAB v5 files are read with scipy, v7.3 files (HDF5) with h5py; MATLAB stores
those arrays with the axes reversed. :func:`read_song_file` reads and checks a whole file, naming
every problem in one line; :func:`peek_song_file` reads only the shape and rate (``eegmusic info``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from eegmusic.replay.nmedt_songs import RAW_CHANNELS, SongInfo, SongRecording, song_info
from eegmusic.stream.errors import DataFormatError, detail
from eegmusic.stream.spec import MODEL_CHANNELS, MODEL_SFREQ


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(520)
    # v7.3 files are HDF5 with a 512-byte user block; plain HDF5 starts with the signature.
    return head[:8] == b"\x89HDF\r\n\x1a\n" or head[512:520] == b"\x89HDF\r\n\x1a\n"


def _read_mat_v5(path: Path, names: list[str]) -> dict:
    import scipy.io

    try:
        content = scipy.io.loadmat(str(path), variable_names=names)
    except Exception as error:
        raise DataFormatError(
            f"{path}: truncated or unreadable MATLAB file ({type(error).__name__}: "
            f"{detail(error)}); re-download or re-create it"
        ) from error
    if not all(name in content for name in names):
        _refuse_overrun(path)
    return {name: content[name] for name in names if name in content}


def _refuse_overrun(path: Path) -> None:
    """Raise DataFormatError where a MATLAB v5 file's variable runs past the file's end.

    scipy reads such a file's variables up to the damaged one and stops without a word: a size field
    of 0x7fffffff in the first of three variables read as "no variable 'fs'", which sent the user
    looking for a variable the file holds. Each variable is a tag (type, byte count) and its bytes,
    padded to 8 bytes unless compressed; only the tags are read.
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(128)
        order = "<" if header[126:128] == b"IM" else ">"
        position, index = 128, 1
        while position + 8 <= size:
            handle.seek(position)
            kind, n_bytes = struct.unpack(f"{order}II", handle.read(8))
            end = position + 8 + (0 if kind >> 16 else n_bytes)   # a small element: data inside its tag
            if end > size:
                raise DataFormatError(
                    f"{path}: truncated or damaged MATLAB file (its variable {index} declares {n_bytes} "
                    f"bytes from byte {position}, past the file's end at byte {size}); re-download or "
                    "re-create it")
            position = end + (0 if kind >> 16 or kind == MAT_COMPRESSED else -n_bytes % 8)
            index += 1


MAT_COMPRESSED = 15
"""The MATLAB v5 type of a zlib-compressed variable, whose bytes are not padded."""


def _h5_value(handle, item):
    """Turn an h5py dataset written by MATLAB v7.3 into numpy (axes back in MATLAB order)."""
    import h5py

    matlab_class = item.attrs.get("MATLAB_class", b"")
    if isinstance(matlab_class, bytes):
        matlab_class = matlab_class.decode()
    value = item[()]
    if matlab_class == "cell" or (isinstance(value, np.ndarray) and value.dtype == h5py.ref_dtype):
        return np.array([_h5_value(handle, handle[ref]) for ref in np.ravel(value)], dtype=object)
    if matlab_class == "char":
        codes = np.asarray(value, dtype=np.uint32)
        return "".join(chr(c) for c in codes.T.ravel() if c)
    if matlab_class == "logical":   # stored as uint8: keep it apart from numbers
        return np.asarray(value).astype(bool)
    return np.asarray(value)


def _read_mat_v73(path: Path, names: list[str]) -> dict:
    import h5py

    out: dict = {}
    try:
        with h5py.File(path, "r") as handle:
            for name in names:
                if name in handle:
                    out[name] = _h5_value(handle, handle[name])
    except DataFormatError:
        raise
    except Exception as error:
        raise DataFormatError(
            f"{path}: truncated or unreadable MATLAB v7.3 (HDF5) file ({type(error).__name__}: "
            f"{detail(error)}); re-download or re-create it"
        ) from error
    out["__hdf5__"] = True
    return out


def _is_logical(path: Path, name: str) -> bool:
    """Whether a MATLAB v5 file's variable is a logical array (scipy reads it as uint8)."""
    import scipy.io

    return any(var == name and kind == "logical" for var, _, kind in scipy.io.whosmat(str(path)))


def _shown_text(value) -> str:
    """A short repr of a text value read from a MATLAB file."""
    text = value if isinstance(value, str) else " ".join(str(v) for v in np.ravel(value)[:3])
    return repr(text[:20] + ("…" if len(text) > 20 else ""))


def _variable_names(path: Path) -> set[str]:
    """Names of the variables in a MATLAB file, read from its headers only (a raw file is GBs)."""
    if _is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as handle:
            return set(handle.keys())
    import scipy.io

    return {name for name, _, _ in scipy.io.whosmat(str(path))}


def _no_data_message(path: Path, song_id: int) -> str:
    """One line for a file without ``dataNN``, naming the release's raw layout (``X``) when it is that."""
    var = f"data{song_id}"
    try:
        release_raw = "X" in _variable_names(path)
    except Exception:   # unreadable headers: the plain message says enough
        release_raw = False
    if release_raw:
        return (f"{path}: no variable '{var}'; it holds X, an NMED-T raw recording of one participant "
                "(PP_R_raw.mat), which is not read: use the release's songNN_Imputed.mat files")
    return f"{path}: no variable '{var}'; an NMED-T song file holds {var}, fs and subs{song_id}"


def _subject_ids(value, n_subjects: int) -> list[str]:
    """Participant ids as strings from a numeric vector, char array or cell array."""
    if value is None:
        return [str(i) for i in range(1, n_subjects + 1)]
    if isinstance(value, str):
        return [value]
    flat = np.ravel(np.asarray(value, dtype=object))
    ids: list[str] = []
    for item in flat:
        while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
            item = item.ravel()[0]
        if isinstance(item, np.ndarray):
            item = item.ravel()[0] if item.size == 1 else "".join(str(v) for v in item.ravel())
        if isinstance(item, (float, np.floating)) and float(item).is_integer():
            item = int(item)
        ids.append(str(item).strip())
    return ids


def _orient(data: np.ndarray, n_chans: int, path: Path, var: str, hdf5: bool) -> np.ndarray:
    """Return ``data`` as (channels, time, participants), checked by its channel axis."""
    if hdf5 and data.ndim >= 2 and data.shape[-1] == n_chans and data.shape[0] != n_chans:
        data = data.T  # MATLAB v7.3 stores (participants, time, channels) as seen from HDF5
    if data.ndim == 2:
        data = data[:, :, None]  # MATLAB drops a trailing singleton participant axis
    if data.ndim != 3:
        raise DataFormatError(
            f"{path}: {var} has {data.ndim} dimensions {tuple(data.shape)}; expected channels × time × "
            f"participants ({n_chans}, n_times, n_subjects)"
        )
    if data.shape[0] != n_chans:
        if n_chans in data.shape[1:]:
            raise DataFormatError(
                f"{path}: {var} has shape {tuple(data.shape)}, wrong axis order; expected channels × time "
                f"× participants ({n_chans}, n_times, n_subjects): transpose it"
            )
        raise DataFormatError(
            f"{path}: {var} has {data.shape[0]} channels (shape {tuple(data.shape)}); expected {n_chans} "
            + ("(E1…E124, Cz)" if n_chans == len(MODEL_CHANNELS) else "(E1…E128, Cz)")
        )
    if 0 in data.shape[1:]:
        empty = "participants" if data.shape[2] == 0 else "time samples"
        raise DataFormatError(
            f"{path}: {var} has shape {tuple(data.shape)}: no {empty}; write at least one participant's "
            "recording into it"
        )
    if data.shape[1] < data.shape[2]:
        raise DataFormatError(
            f"{path}: {var} has shape {tuple(data.shape)}: fewer time samples than participants, "
            f"wrong axis order; expected ({n_chans}, n_times, n_subjects)"
        )
    return data


def read_song_file(path, song_id: int, *, raw: bool = False, info: SongInfo | None = None) -> SongRecording:
    """Read and check one ``songNN_Imputed.mat`` (or, when ``raw``, the simulator's ``songNN_raw.mat``).

    Parameters
    ----------
    path : str or Path
    song_id : int
        NN: the file must hold ``dataNN``, ``fs`` and (optionally) ``subsNN``.
    raw : bool
        Expect 129 channels at any rate instead of 125 channels at 125 Hz.
    info : SongInfo, optional
        The song's title and tempo (default: NMED-T's table, :func:`replay.nmedt_songs.song_info`).

    Returns
    -------
    recording : SongRecording

    Raises
    ------
    DataFormatError
        One line naming the file and the problem.
    """
    path = Path(path)
    song_id = int(song_id)
    data_var, subs_var = f"data{song_id}", f"subs{song_id}"
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; check the folder")
    if path.stat().st_size == 0:
        raise DataFormatError(f"{path}: empty file (0 bytes, truncated); re-download or re-create it")
    names = [data_var, "fs", subs_var]
    content = _read_mat_v73(path, names) if _is_hdf5(path) else _read_mat_v5(path, names)
    hdf5 = bool(content.get("__hdf5__", False))
    if data_var not in content:
        raise DataFormatError(_no_data_message(path, song_id))
    if "fs" not in content:
        raise DataFormatError(f"{path}: no variable 'fs' (sampling rate); add fs = 125 to the file")
    if isinstance(content["fs"], str) or np.asarray(content["fs"]).dtype.kind in "USO":
        # MATLAB fs = '125' is a char array: its arithmetic runs on the character codes
        raise DataFormatError(f"{path}: fs is text ({_shown_text(content['fs'])}), not a number; "
                              "store the number: fs = 125")
    try:
        rates = np.ravel(np.asarray(content["fs"], dtype=float))
        sfreq = float(rates[0])
    except (TypeError, ValueError, IndexError) as error:
        raise DataFormatError(f"{path}: fs is not a number ({content['fs']!r}); set fs = 125") from error
    if rates.size != 1:   # the first was taken, the others ignored
        shown = ", ".join(f"{rate:g}" for rate in rates[:4]) + (", …" if rates.size > 4 else "")
        raise DataFormatError(f"{path}: fs holds {rates.size} numbers ({shown}); it must be one rate: "
                              "set fs = 125")
    data = np.asarray(content[data_var])
    if data.dtype == np.uint8 and not hdf5 and _is_logical(path, data_var):
        data = data.astype(bool)
    if data.dtype == bool:   # a MATLAB logical (a mask, a threshold's result) read as numbers is 0/1 "µV"
        raise DataFormatError(f"{path}: {data_var} is a logical array (true/false), not EEG; save the "
                              "recording's µV values as double")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise DataFormatError(f"{path}: {data_var} is not real numbers (dtype {data.dtype}); expected "
                              "float64 µV")
    n_chans = len(RAW_CHANNELS) if raw else len(MODEL_CHANNELS)
    if not raw and len(RAW_CHANNELS) in data.shape and sfreq != MODEL_SFREQ:
        raise DataFormatError(
            f"{path}: {data_var} looks like raw data ({tuple(data.shape)} at fs {sfreq:g} Hz); a "
            "songNN_Imputed.mat holds 125 channels at 125 Hz: use the NMED-T release's songNN_Imputed.mat "
            "(the cleaned EEG) or preprocess it to 125 channels at 125 Hz"
        )
    saved_2d = data.ndim == 2
    data = _orient(data, n_chans, path, data_var, hdf5)
    if not raw and sfreq != MODEL_SFREQ:
        raise DataFormatError(
            f"{path}: fs is {sfreq:g} Hz; preprocessed NMED-T must be 125 Hz: resample it to 125 Hz"
        )
    if not sfreq > 0:
        raise DataFormatError(f"{path}: fs is {sfreq:g} Hz; it must be positive")
    data = data.astype(np.float64, copy=False)  # MATLAB order: each participant is one block
    finite = np.isfinite(data)
    if not finite.all():
        n_bad = int(data.size - np.count_nonzero(finite))
        raise DataFormatError(
            f"{path}: {data_var} holds {n_bad} NaN/Inf values; impute them (NMED-T uses the mean of "
            "neighbouring electrodes) before use"
        )
    del finite
    subjects = _subject_ids(content.get(subs_var), data.shape[2])
    if len(subjects) != data.shape[2]:
        if saved_2d:   # the participants' recordings laid side by side, or all but one lost
            raise DataFormatError(
                f"{path}: {subs_var} lists {len(subjects)} participants but {data_var} is 2-D "
                f"{tuple(data.shape[:2])}, one participant's recording; save it as channels × time × "
                f"participants ({n_chans}, n_times, {len(subjects)})"
            )
        raise DataFormatError(
            f"{path}: {subs_var} lists {len(subjects)} participants but {data_var} has {data.shape[2]}; "
            "make them agree"
        )
    repeated = sorted({sid for sid in subjects if subjects.count(sid) > 1})
    if repeated:   # one of the two recordings was dropped without a word (a helper's file fuzz)
        raise DataFormatError(
            f"{path}: {subs_var} lists participant {repeated[0]!r} {subjects.count(repeated[0])} times; give "
            f"each of {data_var}'s {data.shape[2]} participants an id of its own"
        )
    return SongRecording(
        song_id=song_id, info=info or song_info(song_id), data=data, sfreq=sfreq, subjects=subjects,
        channels=RAW_CHANNELS if raw else MODEL_CHANNELS, path=path,
    )


def peek_song_file(path, song_id: int) -> tuple[tuple[int, ...], float | None]:
    """Shape of ``dataNN`` (MATLAB axis order) and ``fs`` of a song file, without reading the data.

    Parameters
    ----------
    path : str or Path
    song_id : int

    Returns
    -------
    shape : tuple of int
        ``dataNN``'s shape as MATLAB sees it (channels first for a well-formed file).
    fs : float or None
        None when the file has no ``fs``.

    Raises
    ------
    DataFormatError
        Unreadable file or no ``dataNN``.
    """
    path = Path(path)
    var = f"data{int(song_id)}"
    try:
        if _is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as handle:
                if var not in handle:
                    raise DataFormatError(_no_data_message(path, int(song_id)))
                shape = tuple(int(v) for v in reversed(handle[var].shape))
                fs = float(np.ravel(handle["fs"][()])[0]) if "fs" in handle else None
            return shape, fs
        import scipy.io

        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(str(path))}
        if var not in shapes or "fs" not in shapes:
            _refuse_overrun(path)
        if var not in shapes:
            raise DataFormatError(_no_data_message(path, int(song_id)))
        fs = None
        if "fs" in shapes:
            fs = float(np.ravel(scipy.io.loadmat(str(path), variable_names=["fs"])["fs"])[0])
        return tuple(int(v) for v in shapes[var]), fs
    except DataFormatError:
        raise
    except Exception as error:
        raise DataFormatError(
            f"{path}: truncated or unreadable MATLAB file ({type(error).__name__}); "
            "re-download or re-create it"
        ) from error
