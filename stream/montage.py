"""Electrode positions of the GSN-HydroCel-128/129 net used by NMED-T.

The positions are the standard template shipped with MNE-Python (``GSN-HydroCel-129.sfp``,
centimetres), kept here as data so the live path needs no extra package. Used by the simulator's
head model and by the inlet's imputation of missing channels from their neighbours.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from eegmusic.stream.spec import CHANNEL_ALIASES

_SFP = Path(__file__).with_name("data") / "GSN-HydroCel-129.sfp"


@lru_cache(maxsize=1)
def _positions_table() -> dict[str, np.ndarray]:
    table: dict[str, np.ndarray] = {}
    for line in _SFP.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and not parts[0].startswith("Fid"):
            table[parts[0]] = np.array([float(v) for v in parts[1:]]) / 100.0  # cm -> m
    table["E129"] = table["Cz"]  # the template names the vertex reference Cz
    return table


def electrode_positions(labels) -> np.ndarray:
    """Return electrode positions in metres, head coordinates.

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
    return np.stack([table[label] for label in labels])


def canonical_label(label: str) -> str:
    """Return the model's spelling of an electrode label (``E129`` becomes ``Cz``)."""
    label = label.strip()
    if label == "E129":
        return CHANNEL_ALIASES["E129"]
    return label


def neighbours(labels, *, radius_m: float = 0.045) -> list[np.ndarray]:
    """Indices of each electrode's neighbours within ``radius_m`` (itself excluded).

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
