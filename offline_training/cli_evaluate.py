"""``eegmusic evaluate``: score a trained model against trivial baselines on held-out windows.

Light at import time (argparse only); numpy, onnxruntime and matplotlib load inside
:func:`run_evaluate`.
"""

from __future__ import annotations

import argparse

from eegmusic.stream.options import float_range, output_dir, positive_int, random_seed, seconds

EPILOG = """\
Examples:
  eegmusic evaluate --data /tmp/sim --model runs/cnn/model.onnx --split block --out runs/cnn/eval
  eegmusic evaluate --data /tmp/sim --model runs/cnn/model.onnx --out runs/cnn/eval --overwrite  # again
  eegmusic evaluate --data /tmp/sim --model runs/cnn/model.onnx --out runs/cnn/eval-off --phase 0.5

Scores the model, the global mean mel, the song mean mel (oracle identity) and the model on shuffled
EEG with MSE, cosine, Pearson, dynamic r, song-classifier accuracy and the Fréchet distance of that
classifier's features (true against decoded windows). The split is rebuilt with the
model's training seed, so --split equal to the training split scores exactly the held-out windows;
--split all scores every window of DIR (a model trained on another recording).
Writes metrics.json, metrics.md, reconstruction.png, reconstruction.wav and target.wav into --out.
"""


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to a (sub)parser."""
    parser.epilog = EPILOG
    from eegmusic.offline_training.splits import SPLIT_KINDS  # numpy only

    parser.add_argument(
        "--data", required=True, metavar="DATA",
        help="NMED-T folder with stimuli/, XDF calibration session, BIDS root or EEG file MNE reads"
    )
    parser.add_argument("--model", required=True, metavar="ONNX", help="model.onnx written by eegmusic train")
    parser.add_argument(
        "--split",
        default=None,
        choices=SPLIT_KINDS,
        help="test part to score (default: the model's training split)",
    )
    parser.add_argument("--out", type=output_dir,
                        required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--seed", type=random_seed,
                        default=0, help="seed of the EEG shuffle baseline (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="windows per model call (default 256)")
    parser.add_argument(
        "--wav-seconds",
        type=seconds(3600.0),
        default=10.0,
        help="longest WAV reconstruction in seconds (whole 1-s windows, rounded down, at least 1; default "
        "10): the longest held-out block, cut to this",
    )
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of an earlier evaluate in --out (refused otherwise)")
    parser.add_argument("--allow-short-stimulus", action="store_true",
                        help="score against a stimulus shorter than its EEG (silence after its end)")
    parser.add_argument("--phase", type=float_range(0.0, 60.0), default=0.0, metavar="SECONDS",
                        help="start every window this much later than the training grid, below the "
                        "model's training hop, e.g. --phase 0.5: a model that fits the music at the "
                        "grid's fixed phase scores lower off it (default 0: on the grid)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``eegmusic evaluate``; print the results table; return the exit status."""
    import contextlib

    from eegmusic.stream.errors import ConfigError

    if args.wav_seconds <= 0:
        raise ConfigError(f"--wav-seconds {args.wav_seconds:g} must be positive")
    from pathlib import Path

    from eegmusic.offline_training.train import EVALUATE_FILES, TRAINING_RUN_FILES
    from eegmusic.stream.atomic import is_within, output_lock, refuse_existing
    from eegmusic.stream.errors import OutputError

    if Path(args.data).expanduser().is_dir() and is_within(args.out, args.data):
        raise OutputError(f"--out {args.out} is the --data folder {args.data} or inside it, an input; write "
                          f"the results outside the dataset, e.g. --out runs/eval-{Path(args.data).name}")
    from eegmusic.offline_training.evaluate import evaluate
    from eegmusic.offline_training.report import metrics_table

    # held from the checks to the last file: a second evaluate (or a train) into the same folder is
    # refused instead of mixing its files with this one's
    with output_lock(args.out, "evaluate"):
        # a training run's metrics.json is not an earlier evaluate's: refused even with --overwrite
        run_files = [name for name in TRAINING_RUN_FILES if (Path(args.out) / name).exists()]
        if run_files:
            raise OutputError(f"--out {args.out} holds a training run ({', '.join(run_files)}) and "
                              "evaluate's metrics.json would replace the run's; write the results beside it, "
                              f"e.g. --out {Path(args.out) / 'eval'}")
        for name in EVALUATE_FILES:
            refuse_existing(Path(args.out) / name, overwrite=args.overwrite, what="evaluate result")
        # created before the scoring, not after it: a folder that cannot be made (--out /proc/ev passes
        # the option's check as root) failed in a traceback once every window was scored
        out = Path(args.out).expanduser()
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create --out {args.out} ({error.strerror or error}); pass a folder "
                              "that can be written, e.g. --out runs/eval") from None
        try:
            summary = evaluate(
                args.data,
                args.model,
                args.split,
                args.out,
                seed=args.seed,
                batch_size=args.batch_size,
                max_wav_s=args.wav_seconds,
                progress=not args.no_progress,
                allow_short_stimulus=args.allow_short_stimulus,
                phase_s=args.phase,
            )
        except BaseException:
            if created:  # a refused or failed evaluate leaves no empty --out behind
                with contextlib.suppress(OSError):
                    out.rmdir()
            raise
    print(metrics_table(summary), end="")
    print(f"Results written to {args.out} (metrics.json, metrics.md, reconstruction.png, WAVs)")
    return 0
