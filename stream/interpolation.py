"""Spherical-spline interpolation of missing EEG channels (Perrin et al., 1989), as one matrix.

The potential at a scalp point is modelled as a spline on the unit sphere,
``V(r) = c0 + sum_j c_j g(cos(r, r_j))``, with the Legendre series
``g(x) = 1/(4 pi) sum_{n=1..50} (2n + 1) / (n (n + 1))**4 P_n(x)``; its coefficients are fitted to the
known electrodes (regularised by ``alpha`` on the diagonal, with ``sum_j c_j = 0``). Evaluated at the
missing electrodes this is linear in the known potentials, so the whole interpolation is one matrix
``W`` of shape (n_missing, n_known) computed once when a stream is opened; each window then costs one
matrix product. The defaults (stiffness 4, 50 Legendre terms, ``alpha = 1e-5``, positions projected on
the unit sphere around ``origin``) are those of MNE-Python's ``interpolate_bads``, and the tests check
the two agree to 1e-5. It is computed here with numpy so that a live machine needs no MNE when the
electrode positions come from the model file or from the stream's own description.

References
----------
Perrin, F., Pernier, J., Bertrand, O. and Echallier, J. F. (1989). Spherical splines for scalp
potential and current density mapping. Electroencephalography and Clinical Neurophysiology, 72(2),
184-187.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.polynomial import legendre

logger = logging.getLogger(__name__)

STIFFNESS = 4
"""Exponent m of the spline's Legendre weights ``1 / (n (n + 1))**m``."""

N_LEGENDRE_TERMS = 50
"""Terms of the Legendre series (n = 1 … 50)."""

ALPHA = 1e-5
"""Regularisation added to the diagonal of the known electrodes' spline matrix."""

POOR_FIT = 0.1
"""Relative spread of electrode distances to the origin above which the sphere is a poor head model."""


def fit_sphere(positions: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through electrode positions.

    Solves ``|p|**2 = 2 p . c + (r**2 - |c|**2)`` for the centre ``c`` and radius ``r`` (linear in the
    unknowns).

    Parameters
    ----------
    positions : ndarray, shape (n_electrodes, 3)
        Positions in metres; at least 4 not on one plane.

    Returns
    -------
    centre : ndarray, shape (3,)
        In the positions' frame, metres.
    radius : float
        In metres.
    """
    positions = np.asarray(positions, dtype=np.float64)
    design = np.column_stack([2 * positions, np.ones(len(positions))])
    target = np.sum(positions ** 2, axis=1)
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    centre = solution[:3]
    radius = float(np.sqrt(solution[3] + centre @ centre))
    return centre, radius


def _legendre_kernel(cosine: np.ndarray) -> np.ndarray:
    """The spline kernel ``g`` at the cosines of the angles between electrodes."""
    n = np.arange(1, N_LEGENDRE_TERMS + 1, dtype=np.float64)
    weights = (2 * n + 1) / ((n * (n + 1)) ** STIFFNESS * 4 * np.pi)
    return legendre.legval(np.clip(cosine, -1.0, 1.0), np.concatenate([[0.0], weights]))


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("an electrode sits at the sphere's origin; its direction is undefined")
    return vectors / norms


def spline_matrix(known: np.ndarray, missing: np.ndarray, *, origin: np.ndarray | None = None,
                  alpha: float = ALPHA) -> np.ndarray:
    """Matrix that interpolates the potentials at ``missing`` from those at ``known``.

    Parameters
    ----------
    known : ndarray, shape (n_known, 3)
        Positions of the electrodes with data, metres.
    missing : ndarray, shape (n_missing, 3)
        Positions of the electrodes to fill, metres, in the same frame.
    origin : ndarray, shape (3,), optional
        Centre of the head sphere; by default the least-squares sphere through both sets
        (:func:`fit_sphere`).
    alpha : float
        Regularisation on the diagonal of the known electrodes' spline matrix.

    Returns
    -------
    weights : ndarray, shape (n_missing, n_known), float64
        ``eeg_missing = weights @ eeg_known`` for potentials of shape (n_known, n_times).
    """
    known = np.asarray(known, dtype=np.float64)
    missing = np.asarray(missing, dtype=np.float64)
    if origin is None:
        origin, _ = fit_sphere(np.concatenate([known, missing]))
    origin = np.asarray(origin, dtype=np.float64)
    distance = np.linalg.norm(np.concatenate([known, missing]) - origin, axis=1)
    spread = float(np.std(distance) / np.mean(distance))   # relative spread of the radii
    if spread > POOR_FIT:
        logger.warning("electrode positions lie poorly on a sphere (spread %.2f); interpolation is rough",
                       spread)
    known_dir = _unit(known - origin)
    missing_dir = _unit(missing - origin)
    n_known = len(known_dir)
    g_known = _legendre_kernel(known_dir @ known_dir.T)
    g_known[np.diag_indices(n_known)] += alpha
    # bordered system: the spline coefficients sum to zero, the constant term is free
    system = np.zeros((n_known + 1, n_known + 1))
    system[:n_known, :n_known] = g_known
    system[:n_known, n_known] = 1.0
    system[n_known, :n_known] = 1.0
    evaluate = np.column_stack([_legendre_kernel(missing_dir @ known_dir.T), np.ones(len(missing_dir))])
    return evaluate @ np.linalg.pinv(system)[:, :n_known]
