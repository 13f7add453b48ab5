"""MCCA shared-response denoising: what listeners of the same music share is kept, their background not."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.offline_training.mcca import denoising_matrix, listener_denoisers, shared_filters
from eegmusic.replay.simulate import _write_imputed
from eegmusic.stream.errors import ConfigError, DataFormatError

N_CHANS, N_TIMES = 16, 6000


def smooth(rng, n_series, n_times, width=12):
    """Unit-variance random time courses, low-passed by a moving average."""
    x = rng.normal(size=(n_series, n_times + width))
    x = np.cumsum(x, axis=1)
    x = (x[:, width:] - x[:, :-width])[:, :n_times]
    return x / x.std(axis=1, keepdims=True)


def listeners(rng, n_listeners, share=0.05):
    """Evoked parts (one shared pair of sources, a common topography jittered per listener) and each
    listener's own background (its own spatial mixing, 20 times stronger), both average-referenced."""
    sources = smooth(rng, 2, N_TIMES)
    topography = rng.normal(size=(N_CHANS, 2))
    evoked, background = [], []
    for _ in range(n_listeners):
        e = (topography + 0.1 * rng.normal(size=topography.shape)) @ sources
        mix = rng.normal(size=(N_CHANS, N_CHANS)) * np.geomspace(1.0, 30.0, N_CHANS)
        b = mix @ smooth(rng, N_CHANS, N_TIMES, width=4)
        e *= np.sqrt(share * (b**2).mean() / (e**2).mean())
        evoked.append(e - e.mean(axis=0))
        background.append(b - b.mean(axis=0))
    return evoked, background


def test_denoising_keeps_the_shared_response_and_drops_each_listeners_background(rng):
    evoked, background = listeners(rng, 5)
    eeg = [e + b for e, b in zip(evoked, background, strict=True)]
    filters, eigenvalues = shared_filters(eeg, n_components=2, n_pcs=15)
    assert [f.shape for f in filters] == [(2, N_CHANS)] * 5
    # two sources every listener carries: their summary components stand far above the 1 of one listener
    assert eigenvalues.min() > 2.5
    for x, e, b, f in zip(eeg, evoked, background, filters, strict=True):
        matrix = denoising_matrix(x @ x.T / N_TIMES, f)
        assert np.all(np.isfinite(matrix))
        np.testing.assert_allclose(matrix @ matrix, matrix, atol=1e-8)  # a projection: applied twice = once
        before = (e**2).sum() / (b**2).sum()
        after = ((matrix @ e) ** 2).sum() / ((matrix @ b) ** 2).sum()
        assert after > 10 * before
        # and the response itself survives: the denoised EEG follows the listener's evoked part
        denoised = np.corrcoef((matrix @ x).ravel(), e.ravel())[0, 1]
        assert denoised > 0.8 > np.corrcoef(x.ravel(), e.ravel())[0, 1]


def test_listener_denoisers_read_every_song_all_listeners_heard(rng, tmp_path):
    evoked, background = listeners(rng, 3, share=0.2)
    eeg = np.stack([np.pad(e + b, ((0, 125 - N_CHANS), (0, 0))) for e, b in zip(evoked, background,
                                                                               strict=True)], axis=2)
    for song, half in ((21, slice(0, N_TIMES // 2)), (22, slice(N_TIMES // 2, None))):
        _write_imputed(tmp_path / f"song{song}_Imputed.mat", song, eeg[:, half], ["S01", "S02", "S03"])
    matrices = listener_denoisers(tmp_path, n_components=2, n_pcs=10)
    assert sorted(matrices) == ["S01", "S02", "S03"]
    for k, subject in enumerate(("S01", "S02", "S03")):
        denoised = matrices[subject][:N_CHANS, :N_CHANS] @ eeg[:N_CHANS, :, k]
        assert np.corrcoef(denoised.ravel(), evoked[k].ravel())[0, 1] > 0.8


def test_shared_filters_refuse_one_listener_and_unequal_recordings(rng):
    x = rng.normal(size=(N_CHANS, 500))
    with pytest.raises(ConfigError, match="at least 2 listeners"):
        shared_filters([x])
    with pytest.raises(DataFormatError, match="differ in length"):
        shared_filters([x, x[:, :400]])
    with pytest.raises(ConfigError, match="ask for fewer"):
        shared_filters([x, x], n_components=40, n_pcs=10)
