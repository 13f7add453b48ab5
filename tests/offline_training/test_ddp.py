"""Training under ``torchrun --nproc_per_node 2`` (DDP, gloo on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training.models.registry import load_checkpoint  # noqa: E402
from eegmusic.stream.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def torchrun_train(data, out, model, model_config, epochs=1):
    scratch = Path(out).parent / "torchrun-tmp"  # torchrun leaves its per-rank log folders in TMPDIR
    scratch.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TMPDIR=str(scratch))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "eegmusic.stream.cli",
        "train",
        "--data",
        str(data),
        "--arch",
        model,
        "--split",
        "block",
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "16",
        "--no-progress",
        "--arch-config",
        json.dumps(model_config),
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


LEAVE = """
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist
from eegmusic.offline_training.distributed import all_sum, init_distributed, leave_distributed

info = init_distributed("cpu")
total = all_sum(np.array([info.rank + 1.0]), info, "cpu")
joined = dist.is_initialized()
leave_distributed(info)
left = not dist.is_initialized()
Path(sys.argv[1], f"rank{info.rank}").write_text(f"{info.world} {total[0]:g} {joined} {left}")
"""


def test_each_process_leaves_the_group_before_it_exits(tmp_path):
    # an exit still inside the gloo group can abort (SIGABRT) and fail the whole torchrun run
    _two_processes(LEAVE, tmp_path)
    for rank in (0, 1):  # both summed over the group, then were out of it
        assert (tmp_path / f"rank{rank}").read_text() == "2 3 True True"


CHOOSE = """
import sys
from pathlib import Path

from eegmusic.offline_training.distributed import from_main, init_distributed, leave_distributed

info = init_distributed("cpu")
score = 0.4123 + 1e-5 * info.rank  # the processes' held-out scores differ in the 5th digit
choice = from_main(([2, 0], {"members": [2, 0]}, 0.5 if score > 0.41231 else 1.0), info)
leave_distributed(info)
Path(sys.argv[1], f"rank{info.rank}").write_text(repr(choice))
"""


def test_every_process_takes_rank_0s_choice(tmp_path):
    # fine-tuning chooses soup, blend and refits from scores that differ between processes: each
    # process choosing for itself refit a different number of times and hung in a collective
    _two_processes(CHOOSE, tmp_path)
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}").read_text() == "([2, 0], {'members': [2, 0]}, 1.0)"


def _two_processes(code: str, tmp_path) -> None:
    """Run ``code`` under torchrun in 2 processes (gloo), ``tmp_path`` its argument; assert it ends well."""
    script = tmp_path / "script.py"
    script.write_text(code)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TMPDIR=str(tmp_path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ddp_gradient_training_with_two_processes(sim_dir, tmp_path):
    out = tmp_path / "ddp"
    result = torchrun_train(sim_dir, out, "convnet", {"channels": [8, 8, 8, 8], "hidden": 16}, epochs=2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert (out / "model.onnx").is_file() and (out / "checkpoint.pt").is_file()
    # only rank 0 reports
    assert result.stderr.count("epoch 1: train loss") == 1


@pytest.mark.slow
def test_ddp_linear_equals_one_process(sim_dir, tmp_path):
    """Ridge statistics summed over 2 processes give the single-process solution."""
    config = {"lags": [0, 8]}
    torchrun_train(sim_dir, tmp_path / "ddp", "linear", config)
    torch.set_num_threads(1)
    assert (
        main(
            [
                "train",
                "--data",
                str(sim_dir),
                "--arch",
                "linear",
                "--split",
                "block",
                "--out",
                str(tmp_path / "one"),
                "--no-progress",
                "--arch-config",
                json.dumps(config),
            ]
        )
        == 0
    )
    two, _ = load_checkpoint(tmp_path / "ddp" / "best.pt")
    one, _ = load_checkpoint(tmp_path / "one" / "best.pt")
    np.testing.assert_allclose(two.weight.detach().numpy(), one.weight.detach().numpy(), rtol=1e-4, atol=1e-4)
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["processes"] == 2
