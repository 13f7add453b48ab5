"""Generative decoders: wavegan (shapes, ONNX parity, adversarial step) and diffusion (sampler, adapter).

The Fréchet distance against hand-computed values is tested in ``test_metrics.py``
(``test_frechet_distance_one_dimension_by_hand``, ``..._two_dimensions_by_hand``); evaluation reports it
for these models as for every other (``test_evaluate.py``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.decoder import melspec  # noqa: E402
from eegmusic.decoder.modelfile import info_from_session, open_session  # noqa: E402
from eegmusic.offline_training.export import build_metadata, export_onnx, read_metadata, run_onnx  # noqa: E402
from eegmusic.offline_training.loop_diffusion import denoising_loss, sample_mel  # noqa: E402
from eegmusic.offline_training.loop_gan import WindowAudio, make_optimizers, train_step  # noqa: E402
from eegmusic.offline_training.models.registry import ALL_MODELS, MODELS, build_model  # noqa: E402
from eegmusic.offline_training.models.wavegan import MelSpectrogram  # noqa: E402
from eegmusic.stream.cli import main  # noqa: E402
from eegmusic.stream.errors import ConfigError  # noqa: E402

TINY_WAVEGAN = {
    "channels": 16,
    "min_channels": 4,
    "disc_channels": [4, 4, 8, 8],
    "periods": [2, 3],
    "n_scales": 2,
}
TINY_DIFFUSION = {
    "channels": [4, 8, 8],
    "emb_dim": 8,
    "n_train_steps": 20,
    "sample_steps": 2,
    "proj_channels": 8,
    "band_grid": 2,
    "prior_epochs": 1,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fitted(name, rng, n_subjects=0, **config):
    torch.manual_seed(0)
    model = build_model(name, n_subjects=n_subjects, **config)
    eeg = rng.normal(0.0, 20.0, (6, 125, 125)).astype(np.float32)
    mel = rng.normal(-40.0, 12.0, (6, 128, 44)).astype(np.float32)
    model.fit_stats(eeg, mel)
    return model.eval()


def tones(rng, n):
    """n windows of 1-s tones at random pitches (a learnable, non-trivial target)."""
    t = np.arange(melspec.AUDIO_SFREQ) / melspec.AUDIO_SFREQ
    freqs = rng.uniform(200.0, 800.0, n)
    return (0.3 * np.sin(2 * np.pi * freqs[:, None] * t[None, :])).astype(np.float32)


def test_registry_keeps_generative_models_apart():
    assert {"wavegan", "diffusion"} <= set(ALL_MODELS)
    assert not {"wavegan", "diffusion"} & set(MODELS)  # the regression loop's tests iterate MODELS


def test_torch_mel_equals_the_contract_mel(rng):
    audio = rng.normal(0.0, 0.1, (2, melspec.AUDIO_SFREQ)).astype(np.float32)
    expected = np.stack([melspec.mel_db(a) for a in audio])
    got = MelSpectrogram()(torch.tensor(audio)).numpy()
    assert got.shape == (2, 128, 44)
    assert np.max(np.abs(got - expected)) < 1e-3


@pytest.mark.parametrize("n_subjects", [0, 3])
def test_wavegan_shapes_and_onnx_parity(n_subjects, rng, tmp_path):
    model = fitted("wavegan", rng, n_subjects, **TINY_WAVEGAN)
    eeg = rng.normal(0.0, 20.0, (3, 125, 125)).astype(np.float32)
    eeg[0, 5, :] = 1e5  # clamped by the robust scaling
    subject = np.array([2, 0, 1])
    subject_t = torch.tensor(subject) if n_subjects else None
    with torch.no_grad():
        audio = model.generate(torch.tensor(eeg), subject_t).numpy()
        mel = model(torch.tensor(eeg), subject_t).numpy()
    assert audio.shape == (3, 22050) and mel.shape == (3, 128, 44)
    assert np.all(np.abs(audio) <= 1.0) and np.std(audio) > 1e-4
    np.testing.assert_allclose(mel[1], melspec.mel_db(audio[1]), atol=1e-2)

    metadata = build_metadata(model, subjects=["S01", "S02", "S03"])
    path = export_onnx(model, tmp_path / "wavegan.onnx", metadata)
    got = run_onnx(path, eeg, subject if n_subjects else None)
    assert got.shape == (3, 22050)
    assert np.max(np.abs(got - audio)) < 1e-5
    meta = read_metadata(path)
    assert meta["output"] == {"name": "audio", "kind": "audio", "n_samples": 22050, "sfreq": 22050.0}
    assert meta["input"]["subject_input"] is bool(n_subjects)
    info = info_from_session(open_session(path), path)  # what eegmusic decode / evaluate read
    assert info.output_kind == "audio" and info.output_shape == (22050,)
    clone = type(model).from_config(json.loads(json.dumps(model.get_config())))
    assert clone.get_config() == model.get_config()


def test_wavegan_rejects_upsampling_that_does_not_fit():
    with pytest.raises(ConfigError, match="not a multiple of the upsampling 2x3x3x7x4"):
        build_model("wavegan", upsample=[2, 3, 3, 7, 4])


def test_adversarial_steps_reduce_discriminator_and_generator_losses(rng):
    # 1/7 s of audio per window (upsampling 126 instead of 882) keeps the steps quick
    model = fitted("wavegan", rng, **{**TINY_WAVEGAN, "upsample": [2, 3, 3, 7], "n_samples": 3150})
    torch.manual_seed(1)
    eeg = torch.tensor(rng.normal(0.0, 20.0, (3, 125, 125)).astype(np.float32))
    audio = torch.tensor(tones(rng, 3)[:, :3150])
    opt_g, opt_d = make_optimizers(model, 2e-3)
    discriminator_before = [p.detach().clone() for p in model.discriminator.parameters()]
    losses = [train_step(model, opt_g, opt_d, eeg, audio) for _ in range(6)]
    first, last = losses[0], losses[-1]
    assert last["d_loss"] < first["d_loss"]
    assert last["g_loss"] < first["g_loss"]
    assert last["g_mel"] < first["g_mel"]
    assert any(
        not torch.equal(a, b)
        for a, b in zip(discriminator_before, model.discriminator.parameters(), strict=True)
    )


def test_diffusion_sampler_is_deterministic_with_a_seed(rng):
    model = fitted("diffusion", rng, **TINY_DIFFUSION)
    eeg = rng.normal(0.0, 20.0, (2, 125, 125)).astype(np.float32)
    a = sample_mel(model, eeg, steps=3, seed=7)
    b = sample_mel(model, eeg, steps=3, seed=7)
    c = sample_mel(model, eeg, steps=3, seed=8)
    d = sample_mel(model, eeg, steps=1, seed=7)
    assert a.shape == (2, 128, 44)
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - c)) > 1.0 and np.max(np.abs(a - d)) > 1e-3


def test_zero_initialised_adapter_reproduces_the_prior_exactly(rng):
    model = fitted("diffusion", rng, n_subjects=2, **TINY_DIFFUSION)
    eeg = torch.tensor(rng.normal(0.0, 20.0, (3, 125, 125)).astype(np.float32))
    subject = torch.tensor([0, 1, 1])
    with torch.no_grad():
        prior = model.sample(None, batch=3)  # unconditional, stored noise
        conditional = model(eeg, subject)
        assert torch.equal(conditional, prior)
        assert torch.equal(
            model.sample(eeg, subject, seed=4, steps=2), model.sample(batch=3, seed=4, steps=2)
        )
        for conv in model.adapter.zero_convs:  # once the adapter learns, EEG steers the sample
            conv.weight.normal_(0.0, 0.1)
        assert not torch.equal(model(eeg, subject), prior)


def test_diffusion_onnx_unrolls_the_fixed_sampler(rng, tmp_path):
    model = fitted("diffusion", rng, **TINY_DIFFUSION)
    with torch.no_grad():
        for conv in model.adapter.zero_convs:
            conv.weight.normal_(0.0, 0.1)
    eeg = rng.normal(0.0, 20.0, (2, 125, 125)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.tensor(eeg)).numpy()
    path = export_onnx(model, tmp_path / "diffusion.onnx", build_metadata(model))
    got = run_onnx(path, eeg)
    assert got.shape == (2, 128, 44)
    assert np.max(np.abs(got - expected)) < 1e-2  # dB, after the unrolled DDIM steps
    assert read_metadata(path)["output"]["kind"] == "mel_db"


def test_adapter_training_lowers_the_conditional_loss_with_the_prior_frozen(rng):
    model = fitted("diffusion", rng, **TINY_DIFFUSION)
    with torch.no_grad():  # give the zero convolutions a gradient path to the projector
        for conv in model.adapter.zero_convs:
            conv.weight.normal_(0.0, 1e-3)
    model.prior.requires_grad_(False)
    prior = [p.detach().clone() for p in model.prior.parameters()]
    eeg = torch.tensor(rng.normal(0.0, 20.0, (4, 125, 125)).astype(np.float32))
    mel = torch.tensor(rng.normal(-40.0, 12.0, (4, 128, 44)).astype(np.float32))
    optimizer = torch.optim.Adam(model.adapter.parameters(), lr=1e-2)

    def loss():
        return denoising_loss(model, mel, model.control(eeg), generator=torch.Generator().manual_seed(0))

    before = loss().item()
    for _ in range(5):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < before
    assert all(torch.equal(a, b) for a, b in zip(prior, model.prior.parameters(), strict=True))


def test_diffusion_rejects_more_sample_steps_than_the_schedule():
    with pytest.raises(ConfigError, match="sample_steps 50 must be in 1..20"):
        build_model("diffusion", n_train_steps=20, sample_steps=50)


def test_window_audio_is_the_segment_of_the_mel_target(sim_dir):
    from eegmusic.offline_training.dataset import WindowDataset

    dataset = WindowDataset(sim_dir, songs=[21], subjects=[1], target_offset_s=0.2)
    rows = np.array([0, 5])
    audio = WindowAudio(dataset)(rows)
    assert audio.shape == (2, 22050)
    np.testing.assert_allclose(melspec.mel_db(audio[1]), dataset.mel(rows)[1], atol=1e-3)
    assert np.all(audio[0, : int(0.2 * 22050) - 1] == 0.0)  # before the song starts


@pytest.mark.parametrize(("model", "config"), [("wavegan", TINY_WAVEGAN), ("diffusion", TINY_DIFFUSION)])
def test_eegmusic_train_runs_the_model_loop_and_exports(model, config, sim_dir, tmp_path, capsys):
    # eegmusic evaluate on an "audio" model file is covered in test_evaluate.py
    out = tmp_path / model
    args = ["train", "--data", str(sim_dir), "--arch", model, "--split", "block", "--out", str(out)]
    args += ["--songs", "21", "--epochs", "1", "--batch-size", "16", "--no-progress"]
    assert main([*args, "--arch-config", json.dumps(config)]) == 0
    assert "model.onnx" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["val_mse"]) and np.isfinite(metrics["test_mse"])
    phases = [h.get("phase") for h in metrics["history"]]
    assert phases == (["prior", "adapter"] if model == "diffusion" else [None])
    for name in ("checkpoint.pt", "best.pt", "training_curve.png"):
        assert (out / name).is_file(), name
    meta = read_metadata(out / "model.onnx")
    assert meta["output"]["kind"] == ("audio" if model == "wavegan" else "mel_db")
    assert meta["model"]["name"] == model and meta["training"]["songs"] == [21]


@pytest.mark.parametrize(("model", "config"), [("wavegan", TINY_WAVEGAN), ("diffusion", TINY_DIFFUSION)])
def test_generative_loops_say_the_options_they_ignore_and_do_not_record_them(model, config, sim_dir, tmp_path,
                                                                             caplog):
    """wavegan and diffusion train with their own losses on unaugmented windows, yet ``--loss l1 --augment
    …`` was recorded in metrics.json and the model's metadata as the recipe, as ridge's once was."""
    import logging

    out = tmp_path / model
    args = ["train", "--data", str(sim_dir), "--arch", model, "--split", "block", "--out", str(out),
            "--songs", "21", "--epochs", "1", "--batch-size", "16", "--no-progress",
            "--arch-config", json.dumps(config), "--loss", "l1", "--augment", "shift=2", "--lr", "0.001"]
    with caplog.at_level(logging.WARNING, logger="eegmusic.offline_training.train"):
        assert main(args) == 0
    said = [r.getMessage() for r in caplog.records if "recorded as not used" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"--arch {model} trains with its own ") \
        and said[0].endswith("does not use --loss --augment: ignored, and recorded as not used"), said
    assert json.loads((out / "metrics.json").read_text())["loss"] is None
    training = read_metadata(out / "model.onnx")["training"]
    assert training["loss"] is None and training["augment"] is None
