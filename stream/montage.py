"""Electrode labels and positions: the GSN-HydroCel-129 net of NMED-T and MNE's standard montages.

Two kinds of positions live here.

* :func:`electrode_positions`: the GSN-HydroCel-129 template (``GSN-HydroCel-129.sfp`` as shipped
  with MNE-Python, in its own frame, metres), kept as data so that the simulator's head model and the
  dashboard need no extra package.
* :func:`head_positions`: positions in MNE's *head* frame (x towards the right ear, y towards the
  nasion, z up; metres), the frame in which electrodes from different montages can be mixed. The
  GSN-HydroCel-129 net is computed from the shipped table (scaled and rotated as MNE does, no MNE
  needed), every other montage comes from ``mne.channels.make_standard_montage`` (standard_1020,
  standard_1005, biosemi16/32/64/128, easycap-M1, …), so MNE is needed only when a label is not a
  GSN one and its position is not given by the model file or the stream.

Labels are matched case-insensitively through :func:`label_key`, which also folds the old 10-20
names into the new ones (T3/T7, T4/T8, T5/P7, T6/P8) and the GSN reference E129 into Cz, the latter
only on the 128/129 nets: on the 256/257 nets E129 is an electrode of its own (:func:`label_keys`).
"""

from __future__ import annotations

import logging
import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from eegmusic.stream.errors import ConfigError, StreamError
from eegmusic.stream.spec import MODEL_CHANNELS

logger = logging.getLogger(__name__)

_SFP = Path(__file__).with_name("data") / "GSN-HydroCel-129.sfp"

LABEL_ALIASES = {"e129": "Cz", "t3": "T7", "t4": "T8", "t5": "P7", "t6": "P8"}
"""Case-folded label → the spelling models use for the same electrode."""

MONTAGE_RENAMES = {"standard_1020": "colin27_1020", "standard_1005": "colin27_1005",
                   "standard_alphabetic": "colin27_alphabetic", "standard_postfixed": "colin27_postfixed",
                   "standard_prefixed": "colin27_prefixed", "standard_primed": "colin27_primed"}
"""Montage names MNE ≥ 1.13 renamed (the old name still works with a FutureWarning until 1.14)."""

NMEDT_MONTAGE = "GSN-HydroCel-129"
"""The net of NMED-T; its model channels are E1…E124 and Cz (:data:`~stream.spec.MODEL_CHANNELS`)."""

LAYOUTS: dict[str, tuple[str, ...]] = {
    "openbci8": ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"),
    "openbci16": ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2",
                  "F7", "F8", "F3", "F4", "T7", "T8", "P3", "P4"),
    "muse": ("TP9", "AF7", "AF8", "TP10"),
}
"""Consumer boards' default electrode sets (OpenBCI Cyton and Cyton+Daisy on the Ultracortex, Muse),
placed at their standard_1005 positions."""

TEN_TWENTY = ("Fp1", "Fpz", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
              "P7", "P3", "Pz", "P4", "P8", "O1", "Oz", "O2")
"""The classical 10-20 electrodes (modern names), kept first when a montage is cut down."""

LOOKUP_ORDER = (NMEDT_MONTAGE, "standard_1005", "biosemi128", "easycap-M1")
"""Montages searched, in this order, for the positions of labels nobody gave positions for."""

E129_IS_CZ_TOP = 129
"""The highest electrode number of a GSN net whose E129 is its vertex reference Cz (the 128/129 nets); a
label list numbering beyond it is a 256/257 net, whose E129 lies about 7 cm from Cz."""

_GSN_LABEL = re.compile(r"^E\d+$", re.IGNORECASE)
_HEAD_SIZE_M = 0.095  # MNE's default: the median electrode distance from the origin after scaling


def label_key(label: str, *, e129_is_cz: bool = True) -> str:
    """The key under which two labels name the same electrode (case-folded, aliases resolved).

    ``e129_is_cz=False`` keeps E129 apart from Cz, as on the 256/257 nets (see :func:`label_keys`).

    Examples
    --------
    >>> label_key(" FP1 "), label_key("T3") == label_key("t7"), label_key("E129")
    ('fp1', True, 'cz')
    """
    key = str(label).strip().casefold()
    if key == "e129" and not e129_is_cz:
        return key
    return LABEL_ALIASES.get(key, key).casefold()


def gsn_top_number(labels) -> int:
    """The highest GSN electrode number among ``labels`` (``E257`` → 257), 0 when none is a GSN label."""
    labels = [str(label).strip() for label in labels]
    return max((int(label[1:]) for label in labels if _GSN_LABEL.match(label)), default=0)


def _e129_is_cz(montage: str) -> bool:
    """Whether E129 names Cz on ``montage`` (a resolved name): on any but the 256/257 GSN nets."""
    return not montage.startswith("GSN-HydroCel") or montage in (NMEDT_MONTAGE, "GSN-HydroCel-128")


def label_keys(labels, *, montage: str | None = None) -> list[str]:
    """:func:`label_key` of each label of one channel list, E129 folded into Cz only on a 128/129 net.

    The net is ``montage`` (a resolved name) when given, else told by the labels: one numbered above
    :data:`E129_IS_CZ_TOP` makes them a 256/257 net.
    """
    labels = list(labels)
    if montage is not None:
        folds = _e129_is_cz(montage)
    else:
        folds = gsn_top_number(labels) <= E129_IS_CZ_TOP
    return [label_key(label, e129_is_cz=folds) for label in labels]


def canonical_label(label: str) -> str:
    """Return the model's spelling of an electrode label (``E129`` becomes ``Cz``, ``T3`` ``T7``)."""
    label = str(label).strip()
    return LABEL_ALIASES.get(label.casefold(), label)


@lru_cache(maxsize=1)
def _positions_table() -> dict[str, np.ndarray]:
    table: dict[str, np.ndarray] = {}
    for line in _SFP.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            table[parts[0]] = np.array([float(v) for v in parts[1:]]) / 100.0  # cm -> m
    return table


def electrode_positions(labels) -> np.ndarray:
    """Return GSN-HydroCel-129 template positions in metres (the template's own frame).

    Parameters
    ----------
    labels : sequence of str
        Labels such as ``"E1"`` … ``"E129"`` or ``"Cz"`` (an alias of E129).

    Returns
    -------
    positions : ndarray, shape (n_labels, 3)

    Raises
    ------
    KeyError
        For a label the GSN-HydroCel-129 net does not have.
    """
    table = _positions_table()
    return np.stack([table["Cz" if label == "E129" else label] for label in labels])


def _head_transform(nasion: np.ndarray, lpa: np.ndarray, rpa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and origin of the head frame defined by three fiducials (MNE's convention)."""
    right = (rpa - lpa) / np.linalg.norm(rpa - lpa)
    origin = lpa + ((nasion - lpa) @ right) * right
    anterior = (nasion - origin) / np.linalg.norm(nasion - origin)
    superior = np.cross(right, anterior)
    return np.stack([right, anterior, superior]), origin


@lru_cache(maxsize=1)
def _gsn_head_table() -> dict[str, np.ndarray]:
    """GSN-HydroCel-129 in head coordinates: scaled to MNE's head size and turned by its fiducials."""
    table = _positions_table()
    raw = np.stack(list(table.values()))
    scale = _HEAD_SIZE_M / np.median(np.linalg.norm(raw, axis=1))
    rotation, origin = _head_transform(table["FidNz"] * scale, table["FidT9"] * scale,
                                       table["FidT10"] * scale)
    out = {label: rotation @ (pos * scale - origin) for label, pos in table.items()
           if not label.startswith("Fid")}
    return {label_key(label): pos for label, pos in out.items()}


def resolve_montage_name(name: str) -> str:
    """The name MNE knows a montage under, or a :data:`LAYOUTS` name.

    Raises
    ------
    ConfigError
        An unknown name (the message lists the known ones).
    """
    known = available_montages()
    lowered = {n.casefold(): n for n in known}
    name = lowered.get(str(name).strip().casefold(), str(name).strip())
    if name not in known and not _mne_montages():
        _require_mne(f"montage {name!r}")  # MNE's montages are unknown only because MNE is missing
    if name not in known:
        names = ", ".join(sorted(known, key=str.lower))
        raise ConfigError(f"montage {name!r} is not known; use one of {names}")
    if name in MONTAGE_RENAMES and MONTAGE_RENAMES[name] in _mne_montages():
        return MONTAGE_RENAMES[name]
    return name


@lru_cache(maxsize=1)
def _mne_montages() -> tuple[str, ...]:
    try:
        import mne
    except ImportError:
        return ()
    return tuple(mne.channels.get_builtin_montages())


def available_montages() -> tuple[str, ...]:
    """Montage names accepted by :func:`montage_labels` and :func:`head_positions` (MNE's, if installed)."""
    names = {NMEDT_MONTAGE, *LAYOUTS, *_mne_montages()}
    if _mne_montages():
        names |= set(MONTAGE_RENAMES)
    return tuple(sorted(names))


def _require_mne(why: str):
    from eegmusic.stream.extras import MissingExtraError

    try:
        import mne
    except ModuleNotFoundError:
        raise MissingExtraError(f"{why} needs MNE-Python, which is not installed; install the training "
                                "extra: pip install 'eegmusic[train]' (or send electrode positions in the "
                                "stream's desc/channels/channel/location)") from None
    return mne


@lru_cache(maxsize=32)
def _montage_table(name: str) -> dict[str, np.ndarray]:
    """Label key → head-frame position (metres) of every electrode of montage ``name``."""
    if name == NMEDT_MONTAGE:
        return _gsn_head_table()
    if name in LAYOUTS:
        full = _montage_table(resolve_montage_name("standard_1005"))
        return {label_key(label): full[label_key(label)] for label in LAYOUTS[name]}
    mne = _require_mne(f"montage {name!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # old names (standard_1020) until MNE 1.14
        montage = mne.channels.make_standard_montage(name)
    info = mne.create_info(montage.ch_names, 100.0, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fiducials missing in some layouts
        info.set_montage(montage, on_missing="ignore")
    keys = label_keys(info.ch_names, montage=name)   # the 257 net's E129 is not its Cz
    return {key: np.array(ch["loc"][:3]) for key, ch in zip(keys, info["chs"], strict=True)}


def montage_labels(name: str, n_channels: int | None = None) -> tuple[str, ...]:
    """Electrode labels of a montage, optionally ``n_channels`` of them spread over the scalp.

    With ``n_channels`` smaller than the montage, the classical 10-20 electrodes the montage has
    (:data:`TEN_TWENTY`) come first, and the others are picked among electrodes on or above the line
    of the ears by farthest-point sampling, so the subset covers the head evenly and is the same on
    every call.

    Parameters
    ----------
    name : str
        A montage (``standard_1020``, ``biosemi64``, ``GSN-HydroCel-129``, ``openbci8``, …). For the
        GSN-HydroCel-129 net the labels are NMED-T's model channels (E1…E124, Cz).
    n_channels : int, optional
        How many electrodes to keep (all by default).

    Returns
    -------
    labels : tuple of str

    Raises
    ------
    ConfigError
        Unknown montage, or ``n_channels`` outside 2 … (electrodes on the montage): one electrode is
        no cap (average-referenced, it is all zeros).
    """
    typed = str(name).strip()
    name = resolve_montage_name(name)
    if name == NMEDT_MONTAGE:
        labels = MODEL_CHANNELS
    elif name in LAYOUTS:
        labels = LAYOUTS[name]
    else:
        mne = _require_mne(f"montage {name!r}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            every = mne.channels.make_standard_montage(name).ch_names
        keys = label_keys(every, montage=name)  # colin27 lists T3 beside T7: one electrode
        labels = tuple(label for i, label in enumerate(every) if keys.index(keys[i]) == i)
    if n_channels is None or n_channels == len(labels):
        return tuple(labels)
    if not 2 <= n_channels <= len(labels):
        called = f"{typed!r}" + (f" (MNE's {name})" if typed.casefold() != name.casefold() else "")
        # the GSN-129 net's 129 electrodes read as "outside 2 … 125": it has NMED-T's 125 model channels
        which = (" (NMED-T's model channels: E1…E124 and Cz; its face electrodes E125–E128 are never used)"
                 if name == NMEDT_MONTAGE else "")
        raise ConfigError(f"--channels {n_channels} is outside 2 … {len(labels)} for montage "
                          f"{called}{which}; pick a count the montage has")
    positions = head_positions(labels, montage=name)
    classical = {label_key(label) for label in TEN_TWENTY}
    preferred = np.array([i for i, label in enumerate(labels) if label_key(label) in classical], dtype=int)
    upper = np.flatnonzero(positions[:, 2] >= 0)  # on or above the ear line
    if preferred.size >= n_channels:
        candidates, chosen = preferred, []
    else:
        candidates = upper if upper.size >= n_channels else np.arange(len(labels))
        chosen = preferred.tolist()
    if not chosen:
        chosen = [int(candidates[np.argmax(positions[candidates, 2])])]
    gaps = positions[candidates][:, None] - positions[chosen][None]
    distance = np.min(np.linalg.norm(gaps, axis=2), axis=1)
    while len(chosen) < n_channels:
        nxt = int(candidates[np.argmax(distance)])
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(positions[candidates] - positions[nxt], axis=1))
    return tuple(labels[i] for i in sorted(chosen))


def head_positions(labels, *, montage: str | None = None, strict: bool = True) -> np.ndarray:
    """Head-frame positions (metres) of electrodes, by label.

    Parameters
    ----------
    labels : sequence of str
    montage : str, optional
        Look in this montage only. By default the montage of :data:`LOOKUP_ORDER` that knows the most
        of the labels is used for all it knows, the next ones for the rest.
    strict : bool
        Raise for labels no montage knows; otherwise their rows are NaN.

    Returns
    -------
    positions : ndarray, shape (n_labels, 3)

    Raises
    ------
    StreamError
        Labels that match no montage (with ``strict``).
    ConfigError
        Unknown montage name, or MNE missing for a non-GSN label.
    """
    labels = [str(label) for label in labels]
    keys = label_keys(labels, montage=resolve_montage_name(montage) if montage is not None else None)
    out = np.full((len(labels), 3), np.nan)
    if montage is not None:
        order = [resolve_montage_name(montage)]
    elif all(_GSN_LABEL.match(k) or k == "cz" for k in keys):
        # NMED-T and its 128-channel amplifier need no MNE; numbers beyond E129 are the 256/257 net's,
        # whose E1…E128 lie elsewhere than the 129 net's
        order = [NMEDT_MONTAGE if gsn_top_number(labels) <= E129_IS_CZ_TOP else "GSN-HydroCel-257"]
    else:
        if not _mne_montages():
            shown = ", ".join(labels[:4]) + (", …" if len(labels) > 4 else "")
            _require_mne(f"looking up the positions of {shown}")
        order = [resolve_montage_name(n) for n in LOOKUP_ORDER]
        order.sort(key=lambda n: -sum(k in _montage_table(n) for k in keys))
    for name in order:
        todo = [i for i, k in enumerate(keys) if np.isnan(out[i, 0])]
        if not todo:
            break
        table = _montage_table(name)
        for i in todo:
            if keys[i] in table:
                out[i] = table[keys[i]]
    unknown = [labels[i] for i in range(len(labels)) if np.isnan(out[i, 0])]
    if unknown and strict:
        shown = ", ".join(unknown[:6]) + (f", … ({len(unknown)} in all)" if len(unknown) > 6 else "")
        raise StreamError(f"channel labels {shown} match no montage ({', '.join(order)}) and carry no "
                          "positions; send desc/channels/channel/location or use 10-20/10-05 labels")
    return out


def neighbours(labels, *, radius_m: float = 0.045) -> list[np.ndarray]:
    """Indices of each electrode's neighbours within ``radius_m`` (itself excluded), GSN template.

    Parameters
    ----------
    labels : sequence of str
    radius_m : float
        Neighbourhood radius in metres (GSN-HydroCel spacing is about 3 cm).

    Returns
    -------
    neighbours : list of ndarray of int, one per label
    """
    pos = electrode_positions(labels)
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    np.fill_diagonal(dist, np.inf)
    return [np.flatnonzero(row < radius_m) for row in dist]


LSL_LOCATION_UNIT_M = 1e-3
"""Metres per unit of ``desc/channels/channel/location`` (the XDF meta-data convention: millimetres)."""


def read_locations(info) -> np.ndarray | None:
    """Electrode positions from an LSL description's ``desc/channels/channel/location/{X,Y,Z}``.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A full description (an inlet's ``info()``).

    Returns
    -------
    positions : ndarray, shape (n_channels_described, 3), or None
        Metres, head frame (x right, y nose, z up, as XDF specifies in millimetres); NaN rows for
        channels without a complete location (or at 0, 0, 0); None when no channel has one.
    """
    rows = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty():
        location = channel.child("location")
        row = [np.nan] * 3
        if not location.empty():
            try:
                row = [float(location.child_value(axis)) * LSL_LOCATION_UNIT_M for axis in "XYZ"]
            except ValueError:
                pass
        rows.append(row)
        channel = channel.next_sibling("channel")
    positions = np.array(rows, dtype=np.float64).reshape(-1, 3)
    positions[np.all(positions == 0.0, axis=1)] = np.nan  # some devices write 0, 0, 0 for "unknown"
    if not np.isfinite(positions).all(axis=1).any():
        return None
    return positions


def write_locations(info, positions: np.ndarray) -> None:
    """Add ``location/{X,Y,Z}`` (millimetres) to each described channel of an LSL description.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A description whose ``desc/channels`` already lists the channels (labels).
    positions : ndarray, shape (n_channels, 3)
        Metres, head frame; NaN rows are skipped.
    """
    channel = info.desc().child("channels").child("channel")
    for position in np.asarray(positions, dtype=np.float64):
        if channel.empty():
            break
        if np.all(np.isfinite(position)):
            location = channel.append_child("location")
            for axis, value in zip("XYZ", position / LSL_LOCATION_UNIT_M, strict=True):
                location.append_child_value(axis, f"{value:.6f}")
        channel = channel.next_sibling("channel")
