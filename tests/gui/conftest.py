"""Fixtures for the dashboard tests: a tiny model file that carries its training part's baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def baseline_model(tmp_path_factory, sim_dir) -> Path:
    """The tiny linear test model, with ``baselines`` metadata as ``eegmusic train`` writes it.

    The "training part" is every whole 1-s window of the simulated stimuli: the global mean is the mean
    mel window of songs 21 and 22, the song means one per song (``offline_training.baselines``).
    """
    from eegmusic.decoder.melspec import mel_db
    from eegmusic.decoder.truth import BASELINE_ENCODING
    from eegmusic.offline_training.baselines import encode_mel
    from eegmusic.replay.nmedt import NMEDTFolder

    from tests.decoder.onnx_models import make_model, metadata

    folder = NMEDTFolder(sim_dir)
    windows = {}
    for song in (21, 22):
        mel = mel_db(folder.load_stimulus(song))
        n = mel.shape[1] // 44
        windows[song] = mel[:, : n * 44].reshape(128, n, 44).transpose(1, 0, 2)  # (n, 128, 44)
    every = np.concatenate(list(windows.values()))
    meta = metadata()
    meta["baselines"] = {
        "encoding": BASELINE_ENCODING, "computed_on": "training part", "shape": [128, 44],
        "n_windows": int(len(every)), "global_mean": encode_mel(every.mean(axis=0)),
        "song_mean": {str(song): encode_mel(w.mean(axis=0)) for song, w in windows.items()},
    }
    return make_model(tmp_path_factory.mktemp("baseline_model") / "model.onnx", meta=meta)
