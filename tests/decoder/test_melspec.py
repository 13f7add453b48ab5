"""The mel-dB guard every decoded window passes (live and offline)."""

from __future__ import annotations

import numpy as np
from eegmusic.decoder.melspec import N_MELS


def test_the_mel_guard_clips_only_a_broken_output_and_names_its_frames():
    """The live path calls it every hop: a normal output is left as it is and gives no mask (None)."""
    from eegmusic.decoder.melspec import MEL_DB_CEILING, MEL_DB_GUARD_FLOOR, guard_mel_db

    normal = np.full((N_MELS, 44), -40.0, dtype=np.float32)
    assert guard_mel_db(normal) is None and (normal == -40.0).all()
    broken = normal.copy()
    broken[3, 7], broken[5, 9], broken[0, 2] = 1e28, -1e28, np.nan
    clipped = guard_mel_db(broken)
    assert clipped.shape == (44,) and set(np.flatnonzero(clipped)) == {7, 9}     # NaN is not clipped
    assert broken[3, 7] == MEL_DB_CEILING and broken[5, 9] == MEL_DB_GUARD_FLOOR and np.isnan(broken[0, 2])
    only_nan = normal.copy()
    only_nan[1, 1] = np.nan
    assert guard_mel_db(only_nan) is None and np.isnan(only_nan[1, 1])
