"""Hostile input to ``eegmusic train`` and ``eegmusic evaluate``: one line, exit 2, nothing lost.

A model scored on a montage without its channels, an ``--arch-config`` that is no JSON object or
holds a value of the wrong type, an evaluation written over a training run, a run written into its
own dataset, validation on the training data itself, a song listed twice and ``--resume`` on a run
that cannot be resumed.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("torch")

from tests.faults.conftest import assert_one_line_error  # noqa: E402

LAGS = '{"lags": [0, 8]}'


def _train(data, out, *extra, arch="linear"):
    return ["train", "--data", data, "--arch", arch, "--out", out, "--split", "block", "--songs", "21",
            "--subjects", "1", "--target-offset", "0", "--no-progress", *extra]


@pytest.fixture(scope="module")
def linear_run(sim_dir, tmp_path_factory):
    """A ridge run on one song and listener of the simulated NMED-T folder (125 channels); read-only."""
    import io
    from contextlib import redirect_stdout

    from eegmusic.stream.cli import main

    out = tmp_path_factory.mktemp("hostile_training") / "lin"
    with redirect_stdout(io.StringIO()):
        assert main(_train(str(sim_dir), str(out), "--arch-config", LAGS)) == 0
    return out


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_evaluate_refuses_a_cap_without_the_models_channels(linear_run, cli, tmp_path):
    """An NMED-T model on an 8-channel cap reached onnxruntime ("Got: 8 Expected: 125")."""
    from eegmusic.replay.virtual_cap import simulate_sessions

    session, = simulate_sessions(tmp_path / "cap", montage="openbci8", sfreq=125.0, n_songs=1, n_subjects=1,
                                 seconds=4.0, progress=False)
    out = tmp_path / "eval"
    status, _, err = cli("evaluate", "--data", session, "--model", linear_run / "model.onnx", "--out", out,
                         "--split", "all", "--no-progress")
    line = assert_one_line_error(status, err, "8 channels and lacks 125", "E1, E2",
                                 "train a model on this montage")
    assert "onnxruntime" not in line.lower()
    assert not out.exists()


@pytest.mark.parametrize("config", ["[1, 2]", "null", '"x"', "3"])
def test_arch_config_must_be_a_json_object(config, sim_dir, cli, tmp_path):
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--arch-config", config, arch="cnn"))
    assert_one_line_error(status, err, "--arch-config must be a JSON object", f"not {config}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("arch", "config", "needles"), [
    ("cnn", '{"filters": "x"}', ("'filters'", "a list of integers", '(got "x")')),
    ("cnn", '{"filters": [4, "8", 8, 8, 8]}', ("'filters'", "a list of integers")),
    ("cnn", '{"dense": true}', ("'dense'", "an integer", "(got true)")),
    ("cnn", '{"dense": 64.5}', ("'dense'", "an integer", "(got 64.5)")),
    ("cnn", '{"dropout": NaN}', ("'dropout'", "a number", "(got NaN)")),
    ("cnn", '{"psd": 3}', ("'psd'", "a string", "(got 3)")),
    ("cnn", '{"dense_norm": 1}', ("'dense_norm'", "true or false", "(got 1)")),
    ("linear", '{"lags": 8}', ("'lags'", "a list of integers", "(got 8)")),
    ("ensemble", '{"members": ["linear"]}', ("'members'", "a list of JSON objects")),
    ("cnn", '{"n_chans": 3}', ("'n_chans'", "set by eegmusic train", "drop it")),
    ("cnn", '{"widht": 3}', ("'widht'", "not one of its hyper-parameters", "filters")),
])
def test_arch_config_values_are_checked_against_the_defaults(arch, config, needles, sim_dir, cli, tmp_path):
    """A string for a list of filters ended in int()'s ValueError, deep in the model's constructor."""
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--arch-config", config, arch=arch))
    assert_one_line_error(status, err, f"bad configuration for model '{arch}'", *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("arch", "config", "library_words", "default"), [
    # torch's IndexError at the first forward pass (a zero-size warning first, where warnings are errors)
    ("cnn", '{"dense": 0}', "a layer of size 0: every size must be at least 1", '{"dense": 128}'),
    # a model with no hidden units trained and exported with exit 0, torch's warning the only sign
    ("convnet", '{"hidden": 0}', "a layer of size 0", '{"hidden": 512}'),
    # "zip() argument 2 is shorter than argument 1"
    ("convnet", '{"channels": [8, 8, 8, 8, 8]}',
     "one entry per layer, but have different lengths: channels 5, strides 4",
     '{"channels": [128, 128, 256, 256]}'),
    ("cnn", '{"dense": -3}', "negative dimension", '{"dense": 128}'),
    ("cnn", '{"dropout": 1.5}', "dropout probability", '{"dropout": 0.1}'),
    ("cnn", '{"filters": [0, 8]}', "does not make a model that runs", '{"filters": [8, 16, 32, 64, 128]}'),
    ("transformer", '{"d_model": 30}', "n_heads divide d_model", '{"d_model": 128}'),
    # torch's backward pass over a 1,000-sample kernel ended the process (a double free, exit 134; 139 in
    # another run) after the check's forward pass had run
    ("convnet", '{"kernel": 1000}', "kernel must be 1 to 125 samples, the 1-s window (got 1000)",
     '{"kernel": 7}'),
    # clamped to ±0 (or an empty range) the model read no EEG: it trained and exported with exit 0
    ("convnet", '{"clamp_sd": -1}', "clamp_sd must be above 0 (got -1.0)", '{"clamp_sd": 20.0}'),
    ("transformer", '{"clamp_sd": 0}', "clamp_sd must be above 0 (got 0.0)", '{"clamp_sd": 20.0}'),
    # clipped to the window's edge: every frame read one sample, and the fit went on silently
    ("linear", '{"lags": [1000, 2000]}', "lags [1000, 2000] must be samples within the 125-sample window",
     '{"lags": [0, 4, 8, 12, 16, 20, 24, 28]}'),
])
def test_arch_config_values_out_of_range_are_one_line(arch, config, library_words, default, sim_dir, cli,
                                                      tmp_path):
    """Values of the right type that the model cannot take reached torch: a traceback mid-run."""
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--arch-config", config, arch=arch))
    assert_one_line_error(status, err, f"bad configuration for model '{arch}'", f"--arch-config {config}",
                          library_words, f"the defaults: {default}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("arch", "config", "size"), [
    ("convnet", '{"channels": [100000, 100000, 256, 256]}',
     "70,273 M weights, whose training needs 1,047 GB"),
    ("cnn", '{"dense": 200000}', "53,825 M weights, whose training needs 802 GB"),
])
def test_an_arch_config_that_makes_a_model_too_large_to_train_is_one_line(arch, config, size, sim_dir, cli,
                                                                         tmp_path):
    """A kernel of 100000 samples asked for 800 M weights a layer: the build was killed for memory (exit
    137, no message, 24 GB used). Counted without allocating, such a model is refused before any weight is
    made (a kernel past the window is now refused for that, above; 100,000 channels a layer here). (Sizes
    far beyond any one machine's memory, so that the test asks the same everywhere.)"""
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--arch-config", config, arch=arch))
    assert_one_line_error(status, err, f"--arch-config {config} makes a '{arch}' model of {size}",
                          "of memory this process can still take now", "pass smaller values")
    assert not (tmp_path / "run").exists()


def test_a_model_too_large_for_the_memory_free_now_is_one_line(sim_dir, tmp_path):
    """The check compared the model with the physical memory: under an address-space limit (``ulimit -v``
    4 GiB; the same holds for memory that other programs use), a 6-GB model of a 24-GB machine passed it
    and the build failed with a traceback. It is a real limit on a real child process, nothing faked."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    config = '{"channels": [7500, 7500, 256, 256]}'   # 419 M weights: 6 GB to train, under physical memory
    result = subprocess.run([sys.executable, "-m", "eegmusic", "-q", *map(str, _train(
        sim_dir, tmp_path / "run", "--arch-config", config, arch="convnet"))],
        capture_output=True, text=True, timeout=300, preexec_fn=limit)
    line = assert_one_line_error(result.returncode, result.stderr,
                                 "model of 419 M weights, whose training needs 6 GB",
                                 "GB of memory this process can still take now", "pass smaller values")
    # the limit less the address space the process has taken already (about 1 GB once torch is imported)
    assert 0.5 < float(re.search(r"more than the ([\d.]+) GB", line).group(1)) < 4.0, line
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(bool(getattr(__import__("torch").version, "cuda", None)),
                    reason="the limit is measured for torch's CPU build; a CUDA build maps more at import")
def test_training_that_runs_out_of_memory_is_one_line(sim_dir, tmp_path):
    """The size check counts weights, not activations: under ``ulimit -v`` a model it let through ran out of
    memory in its backward pass, a RuntimeError traceback from torch's allocator. A real limit on a real
    child process (1.45 GB: the data and a batch of every training window at a 0.1-s hop do not fit; a
    limit of 0.9 GB fails already loading libraries, and 1.8 GB trains)."""
    import os
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1450 * 2**20, 1450 * 2**20))

    argv = ["train", "--data", sim_dir, "--arch", "convnet", "--out", tmp_path / "run", "--split", "block",
            "--target-offset", "0", "--no-progress", "--hop", "0.1", "--batch-size", "2000", "--epochs", "1"]
    result = subprocess.run([sys.executable, "-m", "eegmusic", "-q", *map(str, argv)], capture_output=True,
                            text=True, timeout=300, preexec_fn=limit,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert_one_line_error(result.returncode, result.stderr, "training ran out of memory (",
                          "pass a smaller --batch-size, smaller --arch-config values or fewer "
                          "--songs/--subjects, or free memory")


@pytest.mark.parametrize("words", [
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 24371200 bytes",
    # the test above, once in a full suite: oneDNN's convolution under the limit, a traceback (exit 1)
    "could not create a primitive",
])
def test_each_way_torch_says_it_ran_out_of_memory_is_read_as_that(words):
    from eegmusic.offline_training.train import _out_of_memory

    assert _out_of_memory(RuntimeError(words))
    assert not _out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"))


@pytest.mark.parametrize(("config", "words"), [
    # a stride past the window: torch's backward ran for ever at 100000 (Ctrl-C ignored) and crashed the
    # process at 1000000 (exit 139, no message), after the forward pass of the build check had passed it
    ('{"strides": [1, 2, 2, 100000]}', "a 'convnet' convolution a stride of 100000, longer than the model's "
                                       "whole 125-sample window; pass strides of at most 125"),
    # an integer past 64 bits: a TypeError traceback (np.isfinite), once past it torch's message cut mid-word
    ('{"hidden": 100000000000000000000}', "key 'hidden' holds 100000000000000000000, beyond the 64-bit "
                                          "integers torch takes; pass a value in range, e.g. 512"),
])
def test_arch_config_values_torch_cannot_train_are_one_line(config, words, sim_dir, cli, tmp_path):
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--arch-config", config, arch="convnet"))
    assert_one_line_error(status, err, words)
    assert not (tmp_path / "run").exists()


def test_arch_config_with_init_is_refused(linear_run, sim_dir, cli, tmp_path):
    """Fine-tuning keeps the pretrained architecture: --arch-config was accepted and ignored."""
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--init", linear_run / "model.onnx",
                                 "--arch-config", LAGS))
    assert_one_line_error(status, err, "--arch-config", "--init", "drop --arch-config")
    assert not (tmp_path / "run").exists()


def test_a_library_caller_may_pass_tuples_in_the_model_config(sim_dir, tmp_path):
    from eegmusic.offline_training.train import TrainConfig

    TrainConfig(data=str(sim_dir), model="convnet", out=str(tmp_path / "run"),
                model_config={"channels": (16, 16), "strides": (2, 2), "hidden": 32, "dropout": 0}).check()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_evaluate_never_writes_over_a_training_run(overwrite, linear_run, sim_dir, cli):
    """With --overwrite it replaced the run's metrics.json; without, it called that an evaluate result."""
    before = _snapshot(linear_run)
    status, _, err = cli("evaluate", "--data", sim_dir, "--model", linear_run / "model.onnx",
                         "--out", linear_run, "--no-progress", *overwrite)
    line = assert_one_line_error(status, err, f"--out {linear_run} holds a training run", "model.onnx",
                                 f"--out {linear_run / 'eval'}")
    assert "evaluate result" not in line
    assert _snapshot(linear_run) == before


@pytest.mark.parametrize("out", ["{data}", "{data}/run", "{data}/stimuli/../run"])
def test_train_refuses_a_run_folder_in_its_dataset(out, sim_dir, cli):
    before = sorted(path.name for path in sim_dir.rglob("*"))
    status, _, err = cli(*_train(sim_dir, out.format(data=sim_dir), "--arch-config", LAGS))
    assert_one_line_error(status, err, "is the --data folder", "write the run outside the dataset")
    assert sorted(path.name for path in sim_dir.rglob("*")) == before


def test_train_refuses_a_run_folder_in_its_validation_data(sim_dir, cli, tmp_path):
    later = tmp_path / "later"
    later.mkdir()
    status, _, err = cli(*_train(sim_dir, later / "run", "--val-data", later, "--arch-config", LAGS))
    assert_one_line_error(status, err, "is the --val-data folder")
    assert list(later.iterdir()) == []


def test_train_refuses_validation_on_the_training_data(sim_dir, cli, tmp_path):
    status, _, err = cli(*_train(sim_dir, tmp_path / "run", "--val-data", f"{sim_dir}/../{sim_dir.name}/",
                                 "--arch-config", LAGS))
    assert_one_line_error(status, err, "is --data itself", "pass a later excerpt")
    assert not (tmp_path / "run").exists()


def test_a_song_listed_twice_is_read_once_as_a_listener_is(linear_run, sim_dir, cli, tmp_path):
    """--songs 21 21 read song 21 twice (48/8/8 windows instead of 24/4/4); --subjects 1 1 did not."""
    out = tmp_path / "run"
    args = _train(sim_dir, out, "--arch-config", LAGS)
    args[args.index("21") + 1:args.index("21") + 1] = ["21"]  # --songs 21 21
    args[args.index("--subjects") + 2:args.index("--subjects") + 2] = ["1"]  # --subjects 1 1
    status, _, err = cli(*args)
    assert status == 0, err
    once = json.loads((linear_run / "metrics.json").read_text())["n_windows"]
    assert json.loads((out / "metrics.json").read_text())["n_windows"] == once


def test_resume_says_a_linear_run_cannot_be_resumed(linear_run, sim_dir, cli):
    """It said the run held no checkpoint.pt/config.json, though config.json was there."""
    before = _snapshot(linear_run)
    status, _, err = cli(*_train(sim_dir, linear_run, "--arch-config", LAGS, "--resume"))
    line = assert_one_line_error(status, err, "model 'linear'", "cannot be resumed", "drop --resume")
    assert "config.json" not in line
    assert _snapshot(linear_run) == before


def test_resume_names_the_missing_checkpoint(linear_run, sim_dir, cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = json.loads((linear_run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "model": "cnn", "model_config": {}}))
    status, _, err = cli(*_train(sim_dir, run, "--resume", arch="cnn"))
    line = assert_one_line_error(status, err, "holds config.json but no checkpoint.pt")
    assert "no checkpoint.pt/config.json" not in line
    status, _, err = cli(*_train(sim_dir, tmp_path / "none", "--resume", arch="cnn"))
    assert_one_line_error(status, err, "holds no config.json or checkpoint.pt")


def test_evaluate_refuses_a_model_that_outputs_nan(sim_dir, cli, tmp_path):
    """Its Fréchet distance died in numpy's eigensolver: 'Eigenvalues did not converge', a traceback."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from tests.decoder.onnx_models import make_model

    path = make_model(tmp_path / "nan.onnx")
    model = onnx.load(str(path))
    bias = next(init for init in model.graph.initializer if init.name == "bias")
    bias.CopyFrom(numpy_helper.from_array(np.full((128, 1), np.nan, np.float32), "bias"))
    onnx.save(model, str(path))
    status, _, err = cli("evaluate", "--data", sim_dir, "--model", path, "--out", tmp_path / "ev",
                         "--split", "all")
    assert_one_line_error(status, err, "nan.onnx outputs", "NaN/Inf")
    assert not (tmp_path / "ev" / "metrics.json").exists()


@pytest.mark.timeout(60)
def test_a_fifo_where_train_and_info_read_json_is_not_waited_on(sim_dir, cli, tmp_path):
    """A FIFO named config.json in --out, or simulation.json in a dataset, made train, info and simulate
    --overwrite wait for a writer for ever, without a word (``read_text`` on a FIFO blocks)."""
    import os

    from eegmusic.replay.manifest import simulation_manifest

    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / "config.json")
    status, _, err = cli(*_train(sim_dir, out))
    assert_one_line_error(status, err, f"--out {out} holds config.json of no eegmusic training run")
    data = tmp_path / "data"
    data.mkdir()
    os.mkfifo(data / "simulation.json")
    assert simulation_manifest(data) is None


@pytest.mark.parametrize(("env", "words"), [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is no process count; torchrun sets it"),
    ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK='x' is no process count; torchrun sets it"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 is set without RANK; torchrun sets both"),
    ({"WORLD_SIZE": "2", "RANK": "7", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
     "RANK=7 is not below WORLD_SIZE=2"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "29500"}, "WORLD_SIZE=2 is set without MASTER_ADDR"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "x"},
     "MASTER_PORT='x' is no TCP port (1-65535)"),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "IN_USE"},
     "process 0 of 2 could not join the run's other processes (The server socket has failed to listen"),
])
def test_torchrun_variables_set_by_hand_are_one_line(env, words, sim_dir, tmp_path):
    """torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT together; set by hand to no
    count, WORLD_SIZE without RANK or MASTER_ADDR, a MASTER_PORT that is no port or one in use: each was a
    ValueError or DistNetworkError traceback (from eegmusic or torch) before any training."""
    import socket

    with socket.socket() as taken:   # a port another program listens on
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if env.get("MASTER_PORT") == "IN_USE":
            env = {**env, "MASTER_PORT": str(taken.getsockname()[1])}
        child = _train_process(sim_dir, tmp_path / "run", env)
        _, err = child.communicate(timeout=120)
    assert_one_line_error(child.returncode, err, words, "or unset")
    assert not (tmp_path / "run").exists()


def test_a_process_waiting_for_the_runs_other_processes_stops_on_sigterm(sim_dir, tmp_path):
    """With torchrun's variables set by hand and no other process, torch's rendezvous waits 30 minutes in
    C++ code, where Python runs no signal handler: SIGTERM and Ctrl-C did nothing (only SIGKILL ended it,
    without a word). The main thread now waits on a helper thread, and a stop ends it as anywhere else."""
    import signal
    import socket
    import time

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    child = _train_process(sim_dir, tmp_path / "run", {"WORLD_SIZE": "2", "RANK": "0",
                                                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    try:
        deadline = time.monotonic() + 90   # process 0 listens on MASTER_PORT once it waits for the others
        while time.monotonic() < deadline and child.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"process 0 never listened on MASTER_PORT: {child.communicate(timeout=30)}")
        time.sleep(0.5)   # well inside torch's wait
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert (child.returncode, err) == (130, "eegmusic train: interrupted\n")
    assert not (tmp_path / "run").exists()


def _train_process(sim_dir, out, env: dict):
    """``eegmusic -q train`` of :func:`_train` in a child process, with torchrun's variables ``env`` (and
    none of this process's)."""
    import os
    import subprocess
    import sys

    torchrun = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    clean = {k: v for k, v in os.environ.items() if k not in torchrun}
    argv = [sys.executable, "-m", "eegmusic", "-q", *map(str, _train(sim_dir, out))]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**clean, **env})
