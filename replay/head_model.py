"""The simulator's head: a conducting sphere fitted to the GSN-HydroCel-129 net, and its references.

Part of the forward model (:mod:`replay.forward_model`, step 4): a homogeneous sphere fitted to the
real GSN-HydroCel-129 electrode positions (:mod:`stream.montage`); dipole potentials by the
closed-form solution of Kavanagh et al. (1978) as given by Lütkenhöner (1992). Potentials are
computed for the 129 net electrodes (E1…E128, Cz) against infinity or Cz, as an EGI amplifier
records; :func:`average_reference` turns them into the 125 model channels as NMED-T stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from eegmusic.stream.montage import electrode_positions
from eegmusic.stream.spec import MODEL_CHANNELS

NET_CHANNELS: tuple[str, ...] = tuple(f"E{i}" for i in range(1, 129)) + ("Cz",)
"""The 129 electrodes of the net: E1…E128, then Cz (E129, the recording reference)."""

MODEL_INDEX = np.array([NET_CHANNELS.index(label) for label in MODEL_CHANNELS])
"""Rows of :data:`NET_CHANNELS` that make the 125 model channels (E1…E124, Cz)."""

CONDUCTIVITY_S_PER_M = 0.33
"""Conductivity of the sphere, S/m."""


def fit_sphere(positions: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through points.

    Parameters
    ----------
    positions : ndarray, shape (n, 3)
        Points in metres.

    Returns
    -------
    centre : ndarray, shape (3,)
    radius : float
        In metres.
    """
    positions = np.asarray(positions, dtype=float)
    # |p - c|^2 = r^2  <=>  2 p.c + (r^2 - |c|^2) = |p|^2, linear in (c, r^2 - |c|^2)
    design = np.column_stack([2.0 * positions, np.ones(len(positions))])
    solution, *_ = np.linalg.lstsq(design, np.sum(positions**2, axis=1), rcond=None)
    centre = solution[:3]
    radius = float(np.sqrt(solution[3] + centre @ centre))
    return centre, radius


def sphere_leadfield(dipole_pos: np.ndarray, electrode_pos: np.ndarray, *, radius: float,
                     conductivity: float = CONDUCTIVITY_S_PER_M) -> np.ndarray:
    """Potential of unit current dipoles in a homogeneous sphere, at electrodes on its surface.

    Closed form of Kavanagh et al. (1978, IEEE TBME 25:421), in the notation of Lütkenhöner (1992).
    The sphere is centred at the origin; the potential is against infinity.

    Parameters
    ----------
    dipole_pos : ndarray, shape (n_dipoles, 3)
        Dipole positions in metres, inside the sphere, not at its centre.
    electrode_pos : ndarray, shape (n_electrodes, 3)
        Electrode positions in metres; projected radially onto the sphere.
    radius : float
        Sphere radius in metres.
    conductivity : float
        In S/m.

    Returns
    -------
    leadfield : ndarray, shape (n_electrodes, n_dipoles, 3)
        Volts per ampere-metre for the x, y and z components of each dipole moment.
    """
    dip = np.atleast_2d(np.asarray(dipole_pos, dtype=float))[None, :, :]           # (1, m, 3)
    elec = np.asarray(electrode_pos, dtype=float)
    elec = radius * elec / np.linalg.norm(elec, axis=1, keepdims=True)
    r = elec[:, None, :]                                                            # (n, 1, 3)
    c0sq = np.sum(dip**2, axis=-1, keepdims=True)                                   # (1, m, 1)
    if np.any(c0sq < 1e-12):
        raise ValueError("a dipole at the sphere's centre needs the special-case formula; move it")
    d = r - dip
    nd = np.linalg.norm(d, axis=-1, keepdims=True)
    r_dot = np.sum(r * dip, axis=-1, keepdims=True)
    c5 = radius**2 * c0sq - r_dot**2
    c6 = c0sq * r - r_dot * dip
    radial = ((radius**2 - c0sq) / nd**3 - 1.0 / radius) * dip
    collinear = c5 < 1e-12 * radius**4
    first = np.sum(dip * (r / radius - d / nd), axis=-1, keepdims=True) / np.where(collinear, 1.0, c5)
    coef = np.where(collinear, 0.0, first) + 2.0 / nd**3
    return (coef * c6 + radial) / (4.0 * np.pi * conductivity * c0sq)


@dataclass(frozen=True)
class HeadModel:
    """A sphere fitted to the net, in sphere-centred coordinates (x right, y front, z up; metres).

    Attributes
    ----------
    electrodes : ndarray, shape (129, 3)
        :data:`NET_CHANNELS` positions projected onto the sphere.
    centre : ndarray, shape (3,)
        Sphere centre in the montage's head coordinates.
    radius : float
        Metres.
    """

    electrodes: np.ndarray
    centre: np.ndarray
    radius: float

    def gain(self, positions: np.ndarray, orientations: np.ndarray) -> np.ndarray:
        """Scalp pattern of fixed-orientation dipoles (potential against infinity).

        Parameters
        ----------
        positions : ndarray, shape (n_dipoles, 3)
            Sphere-centred positions in metres.
        orientations : ndarray, shape (n_dipoles, 3)
            Moment directions (normalised here).

        Returns
        -------
        gain : ndarray, shape (129, n_dipoles)
            Volts per ampere-metre.
        """
        orientations = np.asarray(orientations, dtype=float)
        orientations = orientations / np.linalg.norm(orientations, axis=1, keepdims=True)
        lf = sphere_leadfield(positions, self.electrodes, radius=self.radius)
        return np.einsum("nmk,mk->nm", lf, orientations)

    def inside(self, fraction: float, offset: tuple[float, float, float]) -> np.ndarray:
        """A point at ``fraction`` of the radius along the direction ``offset`` (sphere-centred)."""
        direction = np.asarray(offset, dtype=float)
        return fraction * self.radius * direction / np.linalg.norm(direction)


@lru_cache(maxsize=1)
def head_model() -> HeadModel:
    """The sphere fitted to the GSN-HydroCel-129 template (cached)."""
    positions = electrode_positions(NET_CHANNELS)
    centre, radius = fit_sphere(positions)
    rel = positions - centre
    rel = radius * rel / np.linalg.norm(rel, axis=1, keepdims=True)
    rel.setflags(write=False)
    return HeadModel(electrodes=rel, centre=centre, radius=radius)


def average_reference(net_uv: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Model channels (E1…E124, Cz), average-referenced, from net potentials.

    Parameters
    ----------
    net_uv : ndarray, shape (129, n_times)
        Potentials of :data:`NET_CHANNELS` against any common reference.
    out : ndarray, shape (125, n_times), optional
        Where to write the result (saves a copy of a long recording).

    Returns
    -------
    eeg : ndarray, shape (125, n_times)
    """
    if out is None:
        out = np.empty((len(MODEL_INDEX), net_uv.shape[1]), dtype=np.result_type(net_uv, np.float64))
    out[:124] = net_uv[:124]        # E1…E124
    out[124] = net_uv[128]          # Cz
    out -= out.mean(axis=0)
    return out


def model_variance(net_uv: np.ndarray) -> float:
    """Mean variance over the 125 model channels after average reference, without copying.

    Parameters
    ----------
    net_uv : ndarray, shape (129, n_times)

    Returns
    -------
    variance : float
        Mean square in µV² (zero-mean signals assumed).
    """
    head, cz = net_uv[:124], net_uv[128]
    mean = (head.sum(axis=0) + cz) / len(MODEL_INDEX)
    total = float(np.einsum("ij,ij->", head, head)) + float(cz @ cz)
    return (total - len(MODEL_INDEX) * float(mean @ mean)) / (len(MODEL_INDEX) * net_uv.shape[1])
