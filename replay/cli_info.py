"""Command ``eegmusic info``: describe a dataset folder and list every problem found in it.

Light at import time (argparse only); the dataset reader loads inside :func:`run_info`.
"""

from __future__ import annotations

import argparse

INFO_EPILOG = """\
Lists songs (title, tempo, duration), participants, channels, which stimuli exist, and every problem
found. Exit status 0 when no problem was found, 1 when some were, 2 when the folder cannot be read.

Examples:
  eegmusic info /tmp/sim                 # NMED-T folder
  eegmusic info s.xdf                    # calibration session (eegmusic calibrate)
  eegmusic info rec_raw.fif              # recording MNE reads, with rec_raw.eegmusic.json beside it
  eegmusic info /data/bids               # BIDS root with eegmusic.json
"""


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eegmusic info``."""
    parser.epilog = INFO_EPILOG
    parser.add_argument("folder", metavar="DATA",
                        help="an NMED-T folder, XDF session, BIDS root or EEG file MNE reads")


def run_info(args: argparse.Namespace) -> int:
    """Run ``eegmusic info``; print the description and every problem, return the exit status."""
    from eegmusic.replay.dataset import describe_dataset

    lines, problems = describe_dataset(args.folder)
    for line in lines:
        print(line)
    if problems:
        print(f"problems ({len(problems)}):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("problems: none")
    return 0
