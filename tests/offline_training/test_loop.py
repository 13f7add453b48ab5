"""The shared epoch-loop skeleton (``offline_training/loop.py``): best weights, patience, checkpoints,
resume across phases; and ``--resume`` of the generative models, which have loops of their own."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training.loop import EpochLoop, adam  # noqa: E402
from eegmusic.offline_training.models.registry import build_model, read_checkpoint  # noqa: E402
from eegmusic.offline_training.train import TRAINING_LOOPS, training_loop  # noqa: E402
from eegmusic.stream.cli import main  # noqa: E402


@dataclass
class LoopConfig:
    """The fields of TrainConfig that EpochLoop reads (patience) or saves."""

    patience: int = 2
    epochs: int = 4


def tiny_model():
    torch.manual_seed(0)
    return build_model("convnet", channels=[4, 4, 4, 4], hidden=8)


def mark(model, value: float) -> None:
    """Set the model's weights to a recognisable constant (stands for one epoch of training)."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(value)


def first_weight(model) -> float:
    return float(next(model.parameters()).detach().flatten()[0])


def record(epoch: int, phase: str) -> dict:
    return {"epoch": epoch, "phase": phase, "train_loss": 1.0, "val_loss": 1.0, "seconds": 1.0,
            "windows_per_s": 10.0}


def run(loop, model, val_losses: dict[int, float]) -> list[int]:
    ran = []
    for epoch in loop:
        mark(model, float(epoch))
        loop.end_epoch({"epoch": epoch, "train_loss": 1.0, "val_loss": val_losses[epoch],
                        "seconds": 1.0, "windows_per_s": 10.0 * epoch}, val_losses[epoch], {})
        ran.append(epoch)
    return ran


def test_best_epoch_is_kept_and_patience_stops(tmp_path, caplog):
    model = tiny_model()
    loop = EpochLoop(model, LoopConfig(patience=2), tmp_path, phases=[("train", 6)])
    ran = run(loop, model, {1: 3.0, 2: 2.0, 3: 2.5, 4: 2.1, 5: 1.0, 6: 0.5})
    assert ran == [1, 2, 3, 4]  # epochs 3 and 4 did not beat epoch 2: patience 2 is spent
    result = loop.result()
    assert result["best_epoch"] == 2 and result["best_val_loss"] == 2.0 and result["epochs_run"] == 4
    assert first_weight(model) == 2.0  # the best epoch's weights, not the last epoch's
    assert result["windows_per_s"] == pytest.approx(25.0)  # median of 10, 20, 30, 40

    state = read_checkpoint(tmp_path / "checkpoint.pt")  # written every epoch, readable weights_only
    assert state["epoch"] == 4 and state["best"]["stopped"] and state["best_epoch"] == 2
    with caplog.at_level(logging.WARNING, logger="eegmusic.offline_training.loop"):
        resumed = EpochLoop(tiny_model(), LoopConfig(patience=2), tmp_path, phases=[("train", 10)],
                            state=state)
    assert list(resumed) == []  # a run that stopped early stays stopped when resumed with more epochs
    # ... and says so (it trained nothing and printed the old summary again, silently)
    warned = [r.getMessage() for r in caplog.records if "--resume trains nothing more" in r.getMessage()]
    assert len(warned) == 1 and "stopped early at epoch 4" in warned[0] and "best, epoch 2" in warned[0]
    caplog.clear()
    EpochLoop(tiny_model(), LoopConfig(patience=2), tmp_path, phases=[("train", 4), ("more", 3)], state=state)
    assert not caplog.records   # a later phase still runs: nothing to warn about


@pytest.mark.timeout(60)   # the old loop stepped through every epoch number: hours at 10**12
def test_a_phase_that_stopped_early_is_left_at_once_however_many_epochs_it_had(tmp_path, caplog):
    """``train --epochs 1000000000`` spun at full CPU after its early stop, writing no model."""
    huge = 10**12
    model = tiny_model()
    loop = EpochLoop(model, LoopConfig(patience=1), tmp_path, phases=[("prior", huge), ("adapter", 2)])
    losses = {1: 2.0, 2: 3.0, huge + 1: 1.0, huge + 2: 0.5}
    assert run(loop, model, losses) == [1, 2, huge + 1, huge + 2]   # the next phase still runs in full
    state = read_checkpoint(tmp_path / "checkpoint.pt")
    (tmp_path / "one").mkdir()
    with caplog.at_level(logging.WARNING, logger="eegmusic.offline_training.loop"):
        loop = EpochLoop(tiny_model(), LoopConfig(patience=1), tmp_path / "one", phases=[("train", huge)])
        run(loop, model, {1: 2.0, 2: 3.0})
        resumed = EpochLoop(tiny_model(), LoopConfig(patience=1), tmp_path / "one", phases=[("train", huge)],
                            state=read_checkpoint(tmp_path / "one" / "checkpoint.pt"))
        assert list(resumed) == []
    assert "--resume trains nothing more" in caplog.text
    assert state["epoch"] == huge + 2


def test_initial_weights_must_be_beaten_unless_the_loop_says_otherwise(tmp_path):
    model = tiny_model()
    mark(model, -1.0)
    loop = EpochLoop(model, LoopConfig(patience=5), tmp_path, phases=[("train", 1)])
    run(loop, model, {1: float("nan")})
    assert loop.result()["best_epoch"] == 0 and first_weight(model) == -1.0
    loop = EpochLoop(model, LoopConfig(patience=5), tmp_path, phases=[("train", 1)], keep_initial=False)
    run(loop, model, {1: float("nan")})
    assert loop.result()["best_epoch"] == 1 and first_weight(model) == 1.0


def test_resume_at_a_phase_boundary_starts_the_next_phase_from_the_best_weights(tmp_path):
    phases = [("prior", 3), ("adapter", 2)]
    model = tiny_model()
    loop = EpochLoop(model, LoopConfig(patience=5), tmp_path, phases=phases, keep_initial=False)
    for epoch in loop:  # interrupted after the prior's last epoch (its best is epoch 2)
        mark(model, float(epoch))
        loop.end_epoch(record(epoch, loop.phase), {1: 3.0, 2: 1.0, 3: 2.0}[epoch], {})
        if epoch == 3:
            break
    state = read_checkpoint(tmp_path / "checkpoint.pt")
    assert state["phase"] == "prior" and first_weight(model) == 3.0

    model = tiny_model()
    model.load_state_dict(state["state_dict"])  # what train() does on --resume: the last epoch's weights
    resumed = EpochLoop(
        model, LoopConfig(patience=5), tmp_path, phases=phases, state=state, keep_initial=False
    )
    seen = []
    for epoch in resumed:
        seen.append((epoch, resumed.phase, resumed.phase_started, first_weight(model)))
        mark(model, float(epoch))
        resumed.end_epoch(record(epoch, resumed.phase), 5.0 - epoch, {})
    assert seen == [(4, "adapter", True, 2.0), (5, "adapter", False, 4.0)]
    assert resumed.result()["best_epoch"] == 5
    assert [h["phase"] for h in resumed.history] == ["prior"] * 3 + ["adapter"] * 2


def test_every_model_names_a_known_loop_and_no_model_imports_one():
    from eegmusic.offline_training.models.registry import ALL_MODELS

    loops = {name: cls.training_loop for name, cls in ALL_MODELS.items()}
    assert loops["linear"] == "closed_form" and loops["wavegan"] == "gan"
    assert loops["diffusion"] == "diffusion"
    assert loops["convnet"] == "regression" and set(loops.values()) <= set(TRAINING_LOOPS)
    assert training_loop(build_model("linear")).__name__ == "fit_closed_form"
    # a model names its loop; it never imports one (nor train): the loops import the models
    from tests.test_imports import ROOT, _imports

    loop_modules = re.compile(r"^eegmusic\.offline_training\.(loop\w*|train)$")
    bad = [f"{path.name}:{line} imports {module}"
           for path in sorted((ROOT / "offline_training" / "models").glob("*.py"))
           for line, module, _ in _imports(path) if loop_modules.match(module)]
    assert not bad, bad


@pytest.mark.parametrize(
    ("arch", "config"),
    [
        ("wavegan", {"channels": 16, "min_channels": 4, "disc_channels": [4, 4, 8, 8], "periods": [2, 3],
                     "n_scales": 2}),
        ("diffusion", {"channels": [4, 8, 8], "emb_dim": 8, "n_train_steps": 20, "sample_steps": 2,
                       "proj_channels": 8, "band_grid": 2, "prior_epochs": 1}),
    ],
)
def test_generative_runs_resume(arch, config, sim_dir, tmp_path, capsys):
    """--resume of wavegan/diffusion was refused before (the checkpoint reader knew only MODELS)."""
    torch.set_num_threads(1)
    out = tmp_path / arch
    args = ["train", "--data", str(sim_dir), "--arch", arch, "--split", "block", "--out", str(out),
            "--songs", "21", "--batch-size", "16", "--no-progress", "--arch-config", json.dumps(config)]
    assert main([*args, "--epochs", "1"]) == 0
    first = json.loads((out / "metrics.json").read_text())["history"]
    assert main([*args, "--epochs", "2", "--resume"]) == 0, capsys.readouterr().err
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history[: len(first)] == first
    epochs = [h["epoch"] for h in history]
    assert epochs == ([1, 2] if arch == "wavegan" else [1, 2, 3])  # diffusion: 1 prior + 2 adapter epochs
    assert np.isfinite(history[-1]["val_loss"])


def test_diffusion_resume_with_more_epochs_gives_them_to_the_adapter(sim_dir, tmp_path, capsys):
    """The prior phase's length defaulted to --epochs and was recomputed on --resume: a run of 1 prior + 1
    adapter epoch resumed with --epochs 2 trained the prior again after the adapter (prior, adapter,
    prior, adapter) and said prior_epochs 2. The prior keeps its length; the new epochs are the adapter's."""
    torch.set_num_threads(1)
    config = {"channels": [4, 8, 8], "emb_dim": 8, "n_train_steps": 20, "sample_steps": 2,
              "proj_channels": 8, "band_grid": 2}  # no prior_epochs: the default, --epochs
    out = tmp_path / "diffusion"
    args = ["train", "--data", str(sim_dir), "--arch", "diffusion", "--split", "block", "--out", str(out),
            "--songs", "21", "--batch-size", "16", "--no-progress", "--arch-config", json.dumps(config)]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "3", "--resume"]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["phase"] for h in metrics["history"]] == ["prior", "adapter", "adapter", "adapter"]
    assert metrics["prior_epochs"] == 1


def test_a_checkpoint_of_the_old_layout_is_a_one_line_error(tmp_path):
    from eegmusic.stream.errors import ModelError

    old = {"history": [], "epoch": 3, "best_val": 1.0, "best_epoch": 2, "bad_epochs": 1, "best_state": {},
           "optimizer": {}, "torch_rng": torch.get_rng_state()}
    with pytest.raises(ModelError, match="written by an older eegmusic .* start a new run"):
        EpochLoop(tiny_model(), LoopConfig(), tmp_path, phases=[("train", 4)], state=old)


def test_fused_adam_takes_the_steps_of_torch_adam():
    """The training loops' ``adam`` (fused, for speed) moves the weights as torch's default Adam does."""
    torch.manual_seed(0)
    ours, plain = torch.nn.Linear(40, 30), torch.nn.Linear(40, 30)
    plain.load_state_dict(ours.state_dict())
    start = ours.weight.detach().clone()
    optimizers = (adam(ours.parameters(), 1e-2), torch.optim.Adam(plain.parameters(), lr=1e-2))
    assert optimizers[0].defaults["fused"]
    for step in range(5):
        x = torch.randn(16, 40, generator=torch.Generator().manual_seed(step))
        for model, optimizer in zip((ours, plain), optimizers, strict=True):
            optimizer.zero_grad()
            (model(x) ** 2).mean().backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (ours.weight - start).abs().max() > 1e-2  # 5 steps of 1e-2 moved the weights
