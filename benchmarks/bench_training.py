"""Training speed: the ``convnet`` epoch on NMED-T-size data, beside plain torch running the same model.

Data: an in-memory stand-in for :class:`~offline_training.dataset.WindowDataset` (:class:`SyntheticWindows`)
with the NMED-T shape — 10 songs × 20 listeners × 270 s at 125 Hz, 125 channels, 54 000 windows at a
1-s hop, mel-dB targets of 128 × 44 — and the same per-batch work (one gather of the batch's windows
from a sliding-window view, as ``WindowDataset.eeg`` does). Random values: the arithmetic of a step does
not depend on them. Every listener of a song shares one recording (a broadcast view), so the whole set
takes 0.2 GB instead of 3.4 GB.

Measured, each an epoch run to its end and timed (never extrapolated from a few steps):

- **ours**: :func:`offline_training.loop_regression.fit_regression`, the loop ``eegmusic train`` runs
  (shuffled batches gathered from the dataset, fused Adam (:func:`offline_training.loop.adam`),
  validation, checkpoint), one epoch over every window;
- **baseline, plain torch**: the same model class, initial weights, batch size and windows, trained the
  plain way: a ``torch.utils.data.Dataset`` returning one window per item, a shuffling ``DataLoader``
  (default collate, no workers), torch's default ``Adam`` and the textbook zero_grad/backward/step loop.

Each epoch also records ``cpu_s``, the CPU time of all the process's threads (``time.process_time``):
on a shared machine the wall time grows with the load while the work does not, and ``cpu_s / threads``
is about what the epoch takes on free cores (threads spinning at barriers inflate it a little).

The epochs alternate, ours first and last (ours, baseline, ours, ...), so that a change of machine load
during the run falls on both; each figure is the median over its epochs, and the load average is
recorded before each epoch. Both get the same warm-up (one forward/backward step of a throwaway model
of the same size, before either is timed) and the same torch threads.

Also measured: ours under ``torchrun --nproc_per_node N`` (DDP, gloo) at N = 1, 2 and 4 on the same
windows, with ``OMP_NUM_THREADS = max(1, cores // N)`` so that processes × threads equals the cores
where it can. The global batch stays the same (each process takes its share). Each run reports the
total and the per-process throughput, and windows per CPU-second summed over its processes
(``cpu_efficiency``: that against one process), which the load of other users does not change: on a
shared machine more threads also take a larger share of the cores from the others, so a speed-up in
wall time alone can come from the load rather than from scaling. With more processes than cores (4 on
2) the processes share cores and no speed-up over the cores' is possible: that run measures the cost
of oversubscribing.

Also timed: ``train``'s choice of the target offset at a 1-s and a 0.1-s hop, beside the same choice
reading whole-song targets (:func:`target_offset_choice`).

Run: ``python -m eegmusic.benchmarks.bench_training [--quick] [--rounds K]`` or through ``eegmusic bench``.

Measured here on the quiet machine (2 cores, load 0.2-2, this round): the NMED-T-size epoch took 75.1 s
and 68.1 s in two runs (CPU 143 and 130 s), plain torch 74.5 and 69.4 s: at batch 256 the epoch is the
model's forward and backward passes, which plain torch runs as fast. torchrun on 5 400 windows, 1 / 2 / 4
processes with 2 / 1 / 1 threads: 875 / 878 / 783 windows/s; one process with one thread (one core) 524,
so two single-thread processes reach 1.68x one core (1.43-1.81x in three more runs), as fast as one
process using both cores through threads, and four on two cores lose 10 %. Earlier, with the cores
shared by other users, the epoch took 94-522 s at load 1.5-9.4, and torchrun's wall-time figures
(55 / 153 / 253 windows/s at load 11-14) followed the share of the cores each run got, not scaling.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eegmusic.stream.atomic import temporary_directory

logger = logging.getLogger(__name__)

NMEDT_SIZE = {"songs": 10, "listeners": 20, "seconds": 270}
"""NMED-T's size: 10 songs × 20 listeners × ~270 s → 54 000 one-second windows at a 1-s hop."""
QUICK_SIZE = {"songs": 1, "listeners": 2, "seconds": 40}
QUICK_BATCH = 40
TARGET_EPOCH_S = 300.0
"""Goal (issue 14): one convnet epoch on NMED-T-size data in at most 5 minutes on 2 CPU cores."""
ARCH = "convnet"
DEFAULT_BATCH = 60
"""``eegmusic train``'s default batch (the EEG2Mel setting)."""
LARGE_BATCH = 256
PROCESSES = (1, 2, 4)
OFFSET_SIZE = {"songs": 10, "listeners": 4, "seconds": 90.0}
"""Simulated folder of the target-offset choice's timing (:func:`target_offset_choice`)."""
QUICK_OFFSET_SIZE = {"songs": 2, "listeners": 2, "seconds": 12.0}
OFFSET_HOPS_S = (1.0, 0.1)


# ---- data --------------------------------------------------------------------------------------------------
class SyntheticWindows:
    """NMED-T-shaped windows in memory, with the interface the training loops use.

    Parameters
    ----------
    songs, listeners : int
    seconds : float
        Length of every recording.
    seed : int
    hop_s : float
        Hop between windows in seconds.

    Attributes
    ----------
    index : ndarray, structured (song, subject, start), shape (n_windows,)
    subjects : list of str
    n_subjects : int
    """

    def __init__(self, songs: int, listeners: int, seconds: float, *, seed: int = 0, hop_s: float = 1.0):
        from eegmusic.offline_training.dataset import INDEX_DTYPE

        rng = np.random.default_rng(seed)
        self.n_chans, self.window = 125, 125
        self.hop = int(round(hop_s * 125))
        n_times = int(round(seconds * 125))
        starts = np.arange(0, n_times - self.window + 1, self.hop, dtype=np.int64)
        self._windows, self._mel, blocks = {}, {}, []
        for song in range(21, 21 + songs):
            recording = rng.normal(0.0, 20.0, (1, self.n_chans, n_times)).astype(np.float32)
            shared = np.broadcast_to(recording, (listeners, self.n_chans, n_times))
            self._windows[song] = np.lib.stride_tricks.sliding_window_view(shared, self.window, axis=-1)
            self._mel[song] = rng.normal(-40.0, 12.0, (len(starts), 128, 44)).astype(np.float32)
            for listener in range(listeners):
                block = np.empty(len(starts), dtype=INDEX_DTYPE)
                block["song"], block["subject"], block["start"] = song, listener, starts
                blocks.append(block)
        self.index = np.concatenate(blocks)
        self.subjects = [f"S{k + 1:02d}" for k in range(listeners)]
        self.n_subjects = listeners

    def __len__(self) -> int:
        return len(self.index)

    def eeg(self, rows) -> np.ndarray:
        """EEG windows, shape (n, 125, 125), float32 µV."""
        entries = self.index[np.atleast_1d(rows)]
        out = np.empty((len(entries), self.n_chans, self.window), dtype=np.float32)
        for song in np.unique(entries["song"]):
            mask = entries["song"] == song
            out[mask] = self._windows[int(song)][entries["subject"][mask], :, entries["start"][mask]]
        return out

    def mel(self, rows) -> np.ndarray:
        """Mel-dB targets, shape (n, 128, 44), float32."""
        entries = self.index[np.atleast_1d(rows)]
        out = np.empty((len(entries), 128, 44), dtype=np.float32)
        for song in np.unique(entries["song"]):
            mask = entries["song"] == song
            out[mask] = self._mel[int(song)][entries["start"][mask] // self.hop]
        return out


@dataclass
class EpochSplit:
    """Every window trains; a 1 % sample validates (the loop needs one); no test part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @classmethod
    def of(cls, data: SyntheticWindows) -> EpochSplit:
        rows = np.arange(len(data))
        val = np.random.default_rng(1).choice(rows, size=max(len(rows) // 100, 2), replace=False)
        return cls(train=rows, val=np.sort(val), test=np.empty(0, dtype=np.int64))


def fresh_model(data: SyntheticWindows):
    """The benchmark's model: ``convnet`` at its default size, seeded, statistics fitted on 256 windows."""
    import torch
    from eegmusic.offline_training.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(ARCH)
    sample = np.arange(0, len(data), max(len(data) // 256, 1))[:256]
    model.fit_stats(data.eeg(sample), data.mel(sample))
    return model


def warm_up(data: SyntheticWindows, batch: int) -> None:
    """One forward/backward/Adam step of a throwaway model (oneDNN primitives, allocator): the same warm-up
    for ours and the baseline."""
    import torch

    model = fresh_model(data).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows = np.arange(min(batch, len(data)))
    eeg, mel = torch.from_numpy(data.eeg(rows)), torch.from_numpy(data.mel(rows))
    loss = torch.nn.functional.mse_loss(model(eeg), mel)
    loss.backward()
    optimizer.step()


# ---- the two ways of training an epoch ---------------------------------------------------------------------
def ours_epoch(data: SyntheticWindows, batch: int, dist_info=None) -> dict:
    """One epoch of :func:`fit_regression` over every window; timed by the loop (training pass) and in all."""
    import torch
    from eegmusic.offline_training.distributed import DistInfo
    from eegmusic.offline_training.loop_regression import fit_regression
    from eegmusic.offline_training.train import TrainConfig

    dist_info = dist_info or DistInfo()
    split = EpochSplit.of(data)
    model = fresh_model(data)
    with temporary_directory("eegmusic-bench-training-") as out:
        config = TrainConfig(
            data="synthetic", model=ARCH, out=str(out), epochs=1, batch_size=batch, progress=False
        )
        tic, cpu = time.perf_counter(), time.process_time()
        result = fit_regression(model, data, split, config, dist_info, torch.device("cpu"), Path(out), None)
        wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    epoch = result["history"][0]
    return {
        "windows": int(len(split.train)),
        "batch": batch,
        "train_pass_s": float(epoch["seconds"]),
        "epoch_s_with_validation_and_checkpoint": wall,
        "cpu_s_with_validation_and_checkpoint": cpu,
        "windows_per_s": float(epoch["windows_per_s"]),
        "train_loss": float(epoch["train_loss"]),
    }


def plain_torch_epoch(data: SyntheticWindows, batch: int) -> dict:
    """One epoch of the same model trained the plain torch way (Dataset + shuffling DataLoader)."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Windows(Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return torch.from_numpy(data.eeg([i])[0]), torch.from_numpy(data.mel([i])[0])

    model = fresh_model(data).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=model.default_lr)
    loader = DataLoader(Windows(), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0))
    n_windows, loss_sum = 0, 0.0
    tic, cpu = time.perf_counter(), time.process_time()
    for eeg, mel in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(eeg), mel)
        loss.backward()
        optimizer.step()
        n_windows += len(eeg)
        loss_sum += loss.item() * len(eeg)
    seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu
    return {
        "windows": n_windows,
        "batch": batch,
        "train_pass_s": seconds,
        "cpu_s": cpu,
        "windows_per_s": n_windows / seconds,
        "train_loss": loss_sum / n_windows,
    }


def _median_epoch(epochs: list[dict]) -> dict:
    """One entry for several timed epochs: the median of each time and rate, with every epoch kept."""
    keys = [k for k, v in epochs[0].items() if isinstance(v, float) and k != "train_loss"]
    entry = {**epochs[0], **{k: float(np.median([e[k] for e in epochs])) for k in keys}}
    entry["train_loss"] = float(epochs[0]["train_loss"])  # the first epoch's (every epoch starts afresh)
    entry["epochs"] = epochs
    return entry


def compare(data: SyntheticWindows, batch: int, rounds: int = 1) -> dict:
    """Ours and the plain-torch baseline on the same epoch, alternated, and their ratio.

    Parameters
    ----------
    data : SyntheticWindows
    batch : int
    rounds : int
        Baseline epochs; ours runs one more (ours, baseline, ours, ..., ours), every epoch from the same
        initial weights.

    Returns
    -------
    dict
        ``ours`` and ``baseline_plain_torch`` (median figures and ``epochs``, each with ``load_avg``
        before it), ``ratio_windows_per_s_ours_over_baseline`` (ours / baseline median windows/s),
        ``ratio_cpu_s_baseline_over_ours`` (baseline / ours median CPU seconds of an epoch: the speed-up
        the load of other users does not move).
    """
    warm_up(data, batch)
    ours, baseline = [], []

    def timed(measure) -> dict:
        load = [round(v, 2) for v in os.getloadavg()]
        return {**measure(data, batch), "load_avg": load}

    ours.append(timed(ours_epoch))
    for _ in range(rounds):
        baseline.append(timed(plain_torch_epoch))
        ours.append(timed(ours_epoch))
    ours_entry, base_entry = _median_epoch(ours), _median_epoch(baseline)
    return {"ours": ours_entry, "baseline_plain_torch": base_entry,
            "ratio_windows_per_s_ours_over_baseline":
                ours_entry["windows_per_s"] / base_entry["windows_per_s"],
            # CPU time per epoch, baseline / ours (ours' includes its validation and checkpoint)
            "ratio_cpu_s_baseline_over_ours":
                base_entry["cpu_s"] / ours_entry["cpu_s_with_validation_and_checkpoint"]}


# ---- scaling under torchrun -------------------------------------------------------------------------------
def _worker(size: dict, batch: int, out: str, threads: int) -> None:
    """Body of one torchrun process: join the group, train one epoch (DDP), rank 0 writes the result."""
    import torch
    from eegmusic.offline_training.distributed import all_sum, init_distributed, leave_distributed

    torch.set_num_threads(threads)  # stated, not left to the environment (MKL_NUM_THREADS would win)
    dist_info = init_distributed("cpu")
    data = SyntheticWindows(**size)
    warm_up(data, batch)
    result = ours_epoch(data, batch, dist_info)
    cpu = all_sum(np.array([result["cpu_s_with_validation_and_checkpoint"]]), dist_info, "cpu")[0]
    if dist_info.main:
        result.update(processes=dist_info.world, threads_per_process=torch.get_num_threads(),
                      cpu_s_all_processes=float(cpu), windows_per_cpu_s=result["windows"] / float(cpu))
        Path(out).write_text(json.dumps(result))
    leave_distributed(dist_info)


def _torchrun(n: int, threads: int, size: dict, batch: int, timeout_s: float) -> dict:
    """One epoch under ``torchrun --nproc_per_node n`` with ``threads`` torch threads per process."""
    with temporary_directory("eegmusic-bench-training-") as folder:
        out = Path(folder) / "result.json"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
            "-m", "eegmusic.benchmarks.bench_training", "--worker", "--size", json.dumps(size),
            "--batch", str(batch), "--result", str(out), "--threads", str(threads),
        ]
        # TMPDIR: torchrun leaves a torchelastic_* log folder per launch there; this one is removed after
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TMPDIR=folder)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"torchrun with {n} processes failed (status {done.returncode}): "
                               f"{_failure_lines(done.stderr)}")
        return json.loads(out.read_text())


_FAILURE_MARKS = ("Error", "Exception", "terminate called", "what()", "Signal ", "exitcode")


def _failure_lines(stderr: str, keep: int = 8) -> str:
    """The lines of a failed torchrun's output that name the cause (a worker's error, its signal).

    torchrun prints its own failure summary last; a worker's exception or C++ abort message comes
    earlier, so the last 600 characters alone can miss it.
    """
    lines = [line.strip() for line in stderr.splitlines() if any(mark in line for mark in _FAILURE_MARKS)]
    return " | ".join(lines[-keep:]) if lines else stderr.strip()[-600:]


def scaling(size: dict, batch: int, processes=PROCESSES, timeout_s: float = 1800.0) -> dict:
    """Epoch throughput of ours under ``torchrun --nproc_per_node N`` and the speed-up over N = 1
    (``speedup_over_one_process``: windows/s over the first run's, ``processes[0]`` = 1).

    Each process gets ``max(1, cores // N)`` threads; the global batch stays ``batch``. Also run: one
    process with one thread (``one_core``), the reference for how the processes scale with the cores
    they use (``speedup_over_one_core``); the N = 1 run already uses every core through its threads.
    """
    cores = os.cpu_count() or 1
    runs = {str(n): _torchrun(n, max(1, cores // n), size, batch, timeout_s) for n in processes}
    one_core = runs["1"] if cores == 1 and "1" in runs else _torchrun(1, 1, size, batch, timeout_s)
    one = runs[str(processes[0])]["windows_per_s"]
    one_cpu = runs[str(processes[0])]["windows_per_cpu_s"]
    for n, entry in ((int(k), v) for k, v in runs.items()):
        entry["speedup_over_one_process"] = entry["windows_per_s"] / one
        entry["speedup_over_one_core"] = entry["windows_per_s"] / one_core["windows_per_s"]
        entry["cpu_efficiency"] = entry["windows_per_cpu_s"] / one_cpu
        entry["threads_total"] = n * entry["threads_per_process"]
        entry["per_process_windows_per_s"] = entry["windows_per_s"] / n
        entry["oversubscribed"] = n > cores
    return {"cores": cores, "batch": batch, "windows": runs[str(processes[0])]["windows"], "runs": runs,
            "one_core": one_core,
            "load_avg": [round(v, 2) for v in os.getloadavg()],
            "note": f"{cores} cores: at most {cores} processes can run at once; runs with more processes "
                    "than cores share them (oversubscribed) and cannot be faster than the cores allow"}


def target_offset_choice(quick: bool = False) -> dict:
    """Time ``train``'s target-offset choice (:func:`offline_training.target_lag.choose_target_offset`)
    at a 1-s and a 0.1-s hop, beside the same choice reading whole-song targets.

    Each of the seven candidate offsets needs the targets of 800 training windows and the validation
    part. **Ours** computes those windows' own starts (``WindowDataset.mel(..., keep_songs=False)``);
    the **baseline** (the code before stop 55) computed and kept every window start of every song
    those rows touch, at each offset: at a 0.1-s hop that is ten times the windows of a 1-s hop, most
    never read. Both on the same simulated folder (:data:`OFFSET_SIZE`, procedural songs: the cost
    does not depend on the music) and the same block split, ours first; reported: each one's seconds,
    the ratio, both choices and the largest difference between their validation scores (the targets
    agree to the STFT batch's float32 rounding).
    """
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.splits import make_split
    from eegmusic.offline_training.target_lag import choose_target_offset
    from eegmusic.replay.simulate import simulate

    class WholeSongTargets(WindowDataset):
        """The baseline: every target through the whole-song cache (``with_target_offset`` keeps
        the class)."""

        songs_computed = 0

        def mel(self, rows, *, keep_songs: bool = True):
            return super().mel(rows, keep_songs=True)

        def song_mel(self, song: int):
            WholeSongTargets.songs_computed += song not in self._mel
            return super().song_mel(song)

    size = QUICK_OFFSET_SIZE if quick else OFFSET_SIZE
    results = {}
    with temporary_directory("eegmusic-bench-offset-") as tmp:
        folder = simulate(Path(tmp) / "sim", n_songs=size["songs"], n_subjects=size["listeners"],
                          seconds=size["seconds"], seed=0, progress=False)
        for hop_s in OFFSET_HOPS_S:
            timed = {}
            for name, kind in (("ours", WindowDataset), ("baseline_whole_song_targets", WholeSongTargets)):
                dataset = kind(folder, hop_s=hop_s)
                split = make_split(dataset.index, "block", seed=0)
                started = time.perf_counter()
                choice = choose_target_offset(dataset, split)
                timed[name] = {"seconds": round(time.perf_counter() - started, 2),
                               "chosen_s": choice.offset_s, "scores": choice.scores}
            # the baseline computed whole songs' targets, each song at each offset
            timed["baseline_whole_song_targets"]["songs_computed"] = WholeSongTargets.songs_computed
            WholeSongTargets.songs_computed = 0
            ours, base = timed["ours"], timed["baseline_whole_song_targets"]
            results[f"{hop_s:g}"] = {
                "windows": len(dataset.index), **timed,
                "ratio_baseline_over_ours": round(base["seconds"] / ours["seconds"], 2),
                "same_choice": ours["chosen_s"] == base["chosen_s"],
                "max_score_difference": max(abs(ours["scores"][c] - base["scores"][c])
                                            for c in ours["scores"]),
            }
    return {"size": size, "hops": results}


def run(quick: bool = False, rounds: int = 1) -> dict:
    """Measure the convnet epoch (ours beside plain torch) and its scaling over processes.

    Parameters
    ----------
    quick : bool
        Small data (1 song × 2 listeners × 40 s = 80 windows), batch 40, processes 1 and 2: a test
        of the machinery in well under a minute, no figure to quote.
        Otherwise (about 15 minutes on 2 quiet cores per round): the full NMED-T-size epoch (54 000
        windows) at batch 256, ours and baseline; batch 60 (the default), and the 1/2/4-process
        scaling at batch 256, on a tenth of it (10 songs × 20 listeners × 27 s = 5 400 windows), each
        a whole epoch.
    rounds : int
        Baseline epochs per comparison; ours runs ``rounds + 1``, alternating (:func:`compare`).

    Returns
    -------
    dict
        JSON-ready: ``size`` (songs, listeners, seconds, windows), ``epoch`` (per batch size:
        ``ours``, ``baseline_plain_torch``, ``ratio_windows_per_s_ours_over_baseline``),
        ``nmedt_epoch_s`` (ours, the median measured full epoch; None in quick mode),
        ``nmedt_epoch_cpu_s`` (its CPU time, every thread),
        ``target_epoch_s``, ``meets_target``, ``scaling``, ``target_offset``
        (:func:`target_offset_choice`), ``torch_threads``, ``cores``, ``load_avg`` (1, 5 and 15-minute
        load averages at the end).
    """
    import torch

    if quick:
        size, scaling_size, batches, processes = QUICK_SIZE, QUICK_SIZE, (QUICK_BATCH,), (1, 2)
    else:
        size, batches, processes = NMEDT_SIZE, (LARGE_BATCH,), PROCESSES
        scaling_size = {**NMEDT_SIZE, "seconds": NMEDT_SIZE["seconds"] // 10}
    data = SyntheticWindows(**size)
    epoch = {str(batch): compare(data, batch, rounds) for batch in batches}
    if not quick:  # the default batch on a tenth of the data (a full epoch of it, timed)
        epoch[f"{DEFAULT_BATCH}_tenth"] = compare(SyntheticWindows(**scaling_size), DEFAULT_BATCH, rounds)
    ours_full = None if quick else epoch[str(LARGE_BATCH)]["ours"]
    full = None if quick else ours_full["epoch_s_with_validation_and_checkpoint"]
    return {
        "size": {**size, "windows": len(data)},
        "epoch": epoch,
        "nmedt_epoch_s": full,
        "nmedt_epoch_cpu_s": None if quick else ours_full["cpu_s_with_validation_and_checkpoint"],
        "target_epoch_s": TARGET_EPOCH_S,
        "meets_target": None if full is None else bool(full <= TARGET_EPOCH_S),
        "scaling": scaling(scaling_size, batches[0] if quick else LARGE_BATCH, processes),
        "target_offset": target_offset_choice(quick),
        "torch_threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }


if __name__ == "__main__":
    import argparse

    from eegmusic.stream.options import positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Example: python -m eegmusic.benchmarks.bench_training --quick")
    parser.add_argument("--quick", action="store_true", help="small data: checks the machinery only")
    parser.add_argument("--rounds", type=positive_int, default=1,
                        help="baseline epochs per comparison, ours one more, alternated (default 1), e.g. 2")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=positive_int, default=DEFAULT_BATCH, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=positive_int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(json.loads(args.size), args.batch, args.result, args.threads)
    else:
        print(json.dumps(run(quick=args.quick, rounds=args.rounds), indent=2))
