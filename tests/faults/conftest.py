"""Fault-injection helpers: run a command in-process and check how it ended.

Every fault case ends in one of two ways: exit 0 with the fault counted or shown, or exit 2 with
exactly one line on stderr and no traceback.
"""

from __future__ import annotations


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``eegmusic argv`` in this process; return (status, stdout, stderr)."""
    from eegmusic.stream.cli import main

    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as stop:  # --help and --version exit through argparse
        status = stop.code if isinstance(stop.code, int) else 2
    out, err = capsys.readouterr()
    return int(status or 0), out, err


def assert_one_line_error(status: int, err: str, *needles: str) -> str:
    """Exit 2, one stderr line, no traceback, and every needle in that line; return the line."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert status == 2, (status, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
