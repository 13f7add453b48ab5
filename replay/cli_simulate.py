"""Commands ``eegmusic simulate`` and ``eegmusic info``.

Light at import time (argparse only); numpy, scipy and the simulator load inside ``run_*``.
"""

from __future__ import annotations

import argparse

SIMULATE_EPILOG = """\
Writes songNN_Imputed.mat (dataNN: 125 channels x time x participants, float64 µV, fs = 125,
subsNN) and stimuli/songNN.wav, exactly the NMED-T layout; --raw adds songNN_raw.mat (MATLAB v7.3,
129 channels at 1000 Hz referenced to Cz, with 60 Hz line noise).

Examples:
  eegmusic simulate --out /tmp/sim --songs 3 --subjects 2 --seconds 30
  eegmusic simulate --out /tmp/sim --songs 10 --subjects 20          # NMED-T size
  eegmusic simulate --out /tmp/mine --audio a.flac b.mp3 --snr 0.1   # your own music
"""

INFO_EPILOG = """\
Lists songs (title, tempo, duration), participants, channels, which stimuli exist, and every problem
found. Exit status 0 when no problem was found, 1 when some were, 2 when the folder cannot be read.

Example:
  eegmusic info /tmp/sim
"""


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eegmusic simulate``."""
    parser.epilog = SIMULATE_EPILOG
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write (created if needed)")
    parser.add_argument("--songs", type=int, default=10, metavar="N",
                        help="number of songs, 1..10, numbered 21.. (default 10)")
    parser.add_argument("--subjects", type=int, default=20, metavar="M",
                        help="participants per song (default 20)")
    parser.add_argument("--seconds", type=float, default=None, metavar="S",
                        help="length of each song in s (default: NMED-T-like 271-298 s, or the whole file)")
    parser.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default 0)")
    parser.add_argument("--snr", type=float, default=None, metavar="X",
                        help="evoked share of EEG variance, 0..1 (default 0.03)")
    parser.add_argument("--audio", nargs="+", default=None, metavar="FILE",
                        help="your own audio files (wav/flac/ogg/mp3, any rate), one song each, slots 21..")
    parser.add_argument("--raw", action="store_true",
                        help="also write songNN_raw.mat: 129 channels at 1000 Hz with line noise")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``eegmusic simulate``; return the exit status."""
    import time

    from eegmusic.replay.simulate import simulate

    start = time.perf_counter()
    out = simulate(
        args.out, n_songs=args.songs, n_subjects=args.subjects, seconds=args.seconds, seed=args.seed,
        snr=args.snr, audio_files=args.audio, raw=args.raw, progress=not args.no_progress,
    )
    n_songs = len(args.audio) if args.audio else args.songs
    print(f"wrote {n_songs} songs x {args.subjects} participants to {out} "
          f"in {time.perf_counter() - start:.1f} s; next: eegmusic info {out}")
    return 0


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eegmusic info``."""
    parser.epilog = INFO_EPILOG
    parser.add_argument("folder", metavar="DIR", help="an NMED-T folder (real or simulated)")


def run_info(args: argparse.Namespace) -> int:
    """Run ``eegmusic info``; print the description and every problem, return the exit status."""
    from eegmusic.replay.nmedt import describe_folder

    lines, problems = describe_folder(args.folder)
    for line in lines:
        print(line)
    if problems:
        print(f"problems ({len(problems)}):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("problems: none")
    return 0
