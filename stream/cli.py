"""The ``eegmusic`` command line: one entry point, one subcommand per capability.

Each package contributes its subcommands in its own ``cli`` module, which defines, for a command
``name``, ``add_<name>_arguments(parser)`` and ``run_<name>(args) -> int``. This dispatcher knows the
modules only by name and imports the one a command needs when it runs, so ``eegmusic --help`` stays
fast (no torch, no Qt) and the live path never imports training code. A command whose module or
functions are absent is simply not offered.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

from eegmusic import __version__
from eegmusic.stream.errors import EEGMusicError

# command -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("eegmusic.replay.cli_simulate", "write a simulated dataset in the NMED-T layout"),
    "info": ("eegmusic.replay.cli_simulate", "describe a dataset and list its problems"),
    "replay": ("eegmusic.replay.cli_replay", "replay a recorded dataset as a live LSL stream"),
    "streams": ("eegmusic.stream.cli_streams", "list the LSL streams visible from this machine"),
    "train": ("eegmusic.offline_training.cli_train", "train a decoder and export it to ONNX"),
    "evaluate": ("eegmusic.offline_training.cli_evaluate", "score a model against trivial baselines"),
    "vocode": ("eegmusic.decoder.cli_vocode", "resynthesise an audio file frame by frame from its mel"),
    "decode": ("eegmusic.decoder.cli_decode", "decode a live EEG stream into sound"),
    "gui": ("eegmusic.gui.cli_gui", "open the live dashboard"),
    "demo": ("eegmusic.gui.cli_demo", "the whole system end to end on simulated data"),
    "bench": ("eegmusic.benchmarks.cli_bench", "run every benchmark beside its baseline, JSON out"),
}


def _command_functions(name: str, module_name: str):
    """Return (add_arguments, run) for a command, or None when it is not available."""
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
    except ModuleNotFoundError:
        return None
    module = importlib.import_module(module_name)
    add = getattr(module, f"add_{name}_arguments", None)
    run = getattr(module, f"run_{name}", None)
    if add is None or run is None:
        return None
    return add, run


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="eegmusic",
        description="Live EEG to music: simulate, replay, train, decode, listen.",
        epilog="Example: eegmusic simulate --out /tmp/sim --songs 3 --subjects 2 --seconds 30",
    )
    parser.add_argument("--version", action="version", version=f"eegmusic {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        functions = _command_functions(name, module_name)
        if functions is None:
            continue
        add, run = functions
        command_parser = sub.add_parser(
            name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add(command_parser)
        command_parser.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``eegmusic`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    level = logging.INFO if args.verbose == 0 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except EEGMusicError as error:
        print(f"eegmusic {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"eegmusic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
