"""The dashboard's scalp map places the electrodes of any standard montage, not only the GSN net."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui
pytest.importorskip("PySide6")
pytest.importorskip("mne")


def test_scalp_xy_places_ten_twenty_and_biosemi_labels():
    from eegmusic.gui.spectral_panel import scalp_xy

    xy = scalp_xy(("Cz", "C3", "C4", "Fz", "Oz", "T3", "X1"))
    np.testing.assert_allclose(xy[0], [0.0, 0.0], atol=0.02)       # vertex in the middle
    assert xy[1, 0] < -0.3 and xy[2, 0] > 0.3                      # C3 left, C4 right
    assert xy[3, 1] > 0.3 and xy[4, 1] < -0.3                      # Fz front, Oz back
    assert 0.9 < -xy[5, 0] < 1.2                                   # T3 (= T7) near the left ear line
    assert np.isnan(xy[6]).all()                                   # on no montage
    biosemi = scalp_xy(("A1", "A19", "C21"))                       # BioSemi 128 labels (own frame)
    assert np.isfinite(biosemi).all() and np.linalg.norm(biosemi[0]) < 0.25  # A1, the vertex, near the middle
    assert biosemi[1, 1] < biosemi[0, 1] < biosemi[2, 1]           # A19 behind it, C21 in front
