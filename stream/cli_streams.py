"""``eegmusic streams``: list the LSL streams visible from this machine."""

from __future__ import annotations

import argparse

from eegmusic.stream.options import lsl_name, seconds


def add_streams_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eegmusic streams``."""
    # over 0: liblsl's listing answers from what it heard within the wait, so 0 s never lists a stream
    parser.add_argument("--timeout", type=seconds(86400.0), default=1.0, metavar="S",
                        help="seconds to listen for streams, over 0 (default 1.0)")
    parser.add_argument("--type", dest="stype", default=None, type=lsl_name, metavar="TYPE",
                        help="only streams of this type, in any case, e.g. EEG or Markers")
    parser.epilog = ("Example: eegmusic streams --timeout 2 --type EEG\n"
                     "Exit status: 0 when it lists a stream, 1 when none is visible.")


def run_streams(args: argparse.Namespace) -> int:
    """Print one line per visible stream: name, type, channels, rate, format, source_id."""
    from eegmusic.stream.resolve import list_streams
    from eegmusic.stream.untrusted import printable

    # the type in any case: `--type eeg` lists EEG streams (a listing filters, it picks nothing)
    streams = [s for s in list_streams(timeout=args.timeout)
               if args.stype is None or s.stype.casefold() == args.stype.casefold()]
    if not streams:
        kind = f" of type {args.stype!r}" if args.stype else ""
        print(f"no LSL streams{kind} visible within {args.timeout:g} s "
              "(start one with: eegmusic replay --data DIR --song 21 --subject 1)")
        return 1
    header = ("name", "type", "channels", "rate", "format", "source_id")
    # name, type and source_id are whatever a host on the network sent: escaped, one row per stream
    rows = [(printable(s.name), printable(s.stype), str(s.n_chans),
             "irregular" if s.sfreq == 0 else f"{s.sfreq:g} Hz", s.channel_format, printable(s.source_id))
            for s in streams]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0
