"""Reduced-rank output: directions from training outputs, rank on validation, inside the exported graph."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.offline_training.output_projection import choose_rank, principal_projection, project

N_MELS, N_FRAMES = 128, 10


def band_r(pred, target):
    """Mean over bands of each band's Pearson r over all frames of all windows."""
    p = pred.transpose(1, 0, 2).reshape(N_MELS, -1)
    t = target.transpose(1, 0, 2).reshape(N_MELS, -1)
    return float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(p, t, strict=True)]))


def low_rank_music(rng, patterns, n_windows):
    """Mel-dB whose dynamics span the band ``patterns`` (N_MELS, rank): (n_windows, N_MELS, N_FRAMES)."""
    courses = rng.normal(0.0, 3.0, (n_windows, patterns.shape[1], N_FRAMES))
    return -40.0 + np.einsum("mk,wkf->wmf", patterns, courses)


def test_rank_kept_drops_band_private_noise_and_is_chosen_on_validation(rng):
    # a decoder that follows the two shared directions, plus noise private to each band
    patterns = rng.normal(0.0, 1.0, (N_MELS, 2))
    truth_train, truth_val = low_rank_music(rng, patterns, 300), low_rank_music(rng, patterns, 100)
    noisy_train = truth_train + rng.normal(0.0, 4.0, truth_train.shape)
    noisy_val = truth_val + rng.normal(0.0, 4.0, truth_val.shape)
    choice = choose_rank(noisy_train, noisy_val, lambda out: band_r(out, truth_val), ranks=(1, 2, 4, 8, 32))
    assert choice["rank"] == 2
    assert choice["scores"]["2"] > choice["scores"]["full"] + 0.05
    assert choice["scores"]["2"] > choice["scores"]["1"] and choice["scores"]["2"] > choice["scores"]["32"]
    projection = choice["projection"]
    np.testing.assert_allclose(projection, projection.T, atol=1e-10)
    np.testing.assert_allclose(projection @ projection, projection, atol=1e-8)
    assert np.trace(projection) == pytest.approx(2.0)
    # the projection keeps the training outputs' mean and changes nothing in the kept directions
    centre, same = principal_projection(noisy_train, 2)
    np.testing.assert_allclose(choice["centre"], centre)
    kept = project(truth_val, centre, same)
    assert band_r(kept, truth_val) > 0.95


def test_full_rank_output_stays_unprojected_when_no_rank_helps(rng):
    # every band moves on its own: any projection loses part of the music
    truth_train = rng.normal(-40.0, 3.0, (200, N_MELS, N_FRAMES))
    truth_val = rng.normal(-40.0, 3.0, (60, N_MELS, N_FRAMES))
    choice = choose_rank(truth_train + rng.normal(0.0, 0.5, truth_train.shape),
                         truth_val + rng.normal(0.0, 0.5, truth_val.shape),
                         lambda out: band_r(out, truth_val), ranks=(2, 8, 32))
    assert choice["rank"] is None
    np.testing.assert_array_equal(choice["projection"], np.eye(N_MELS))
    assert max(choice["scores"][r] for r in ("2", "8", "32")) < choice["scores"]["full"]


def test_bad_rank_is_refused(rng):
    with pytest.raises(ValueError, match="rank"):
        principal_projection(rng.normal(size=(4, N_MELS, N_FRAMES)), 0)


@pytest.mark.usefixtures("one_torch_thread")
def test_ensemble_exports_its_projected_mix_and_training_chooses_the_rank(sim_dir, tmp_path, rng):
    torch = pytest.importorskip("torch")
    from eegmusic.offline_training.export import build_metadata, export_onnx, run_onnx
    from eegmusic.offline_training.models.registry import build_model, load_checkpoint
    from eegmusic.offline_training.train import TrainConfig, train
    from eegmusic.stream.errors import ConfigError

    members = [{"name": "linear", "config": {"lags": [0, 8]}},
               {"name": "sourcenet", "config": {"feature_norm": "batch", "n_sources": 4, "n_features": 8,
                                                "hidden": 8}}]
    out = tmp_path / "ens"
    metrics = train(TrainConfig(data=str(sim_dir), model="ensemble", split="block", out=str(out), epochs=1,
                                batch_size=16, target_offset_s=0.1, progress=False,
                                model_config={"members": members, "output_ranks": [1, 4]}))
    # the rank was chosen on validation among the candidates and the unprojected mix
    scores = metrics["output_rank_scores"]
    assert set(scores) == {"full", "1", "4"}
    best = max(scores, key=scores.get)
    assert metrics["output_rank"] == (None if best == "full" else int(best))
    ensemble, _ = load_checkpoint(out / "best.pt", model_name="ensemble")
    assert ensemble.output_ranks == (1, 4)
    trace = np.trace(ensemble.out_projection.numpy())
    assert trace == pytest.approx(metrics["output_rank"] or N_MELS, abs=1e-4)
    # the exported graph applies the projection: set a rank-1 one and compare with the numpy mix
    eeg = rng.normal(0.0, 20.0, (6, 125, 125)).astype(np.float32)
    with torch.no_grad():
        parts = [m(torch.from_numpy(eeg)).numpy().astype(np.float64) for m in ensemble.models]
    mixed = sum(w * p for w, p in zip(ensemble.weights, parts, strict=True))
    centre, projection = principal_projection(mixed, 1)
    ensemble.set_output_projection(centre, projection)
    path = export_onnx(ensemble, tmp_path / "projected.onnx", build_metadata(ensemble, target_offset_s=0.1))
    decoded = run_onnx(path, eeg)
    np.testing.assert_allclose(decoded, project(mixed, centre, projection), rtol=1e-4, atol=2e-3)
    # rank 1: every band moves with one time course, which the unprojected mix does not
    assert np.linalg.matrix_rank(decoded.transpose(0, 2, 1).reshape(-1, N_MELS) - centre, tol=1e-2) == 1
    assert np.linalg.matrix_rank(mixed.transpose(0, 2, 1).reshape(-1, N_MELS) - centre, tol=1e-2) > 1
    with pytest.raises(ConfigError, match="output ranks"):
        build_model("ensemble", members=members[:1], output_ranks=[0])
    with pytest.raises(ConfigError, match="no output projection"):
        build_model("ensemble", members=members[:1]).set_output_projection(centre, projection)
