"""The ``eegmusic`` command line: one entry point, one subcommand per capability.

Each package contributes its subcommands in its own ``cli`` module, which defines, for a command
``name``, ``add_<name>_arguments(parser)`` and ``run_<name>(args) -> int``. This dispatcher knows the
modules only by name and imports the one a command needs when it runs, so ``eegmusic --help`` stays
fast (no torch, no Qt) and the live path never imports training code. A command whose module or
functions are absent is simply not offered; one whose module needs an extra that is not installed
(``eegmusic[train]``, ``eegmusic[gui]``) is offered and says, in one line, what to install
(:mod:`eegmusic.stream.extras`).

Options every command shares: ``-v``/``--verbose`` (debug log) and ``-q``/``--quiet`` (warnings only,
no progress bars; ``-qq`` errors only), accepted before or after the command name. An option that was
renamed is refused with one line naming its new spelling (:func:`renamed_option`).
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import importlib
import importlib.util
import logging
import os
import re
import signal
import sys
import threading
import time

from eegmusic import __version__
from eegmusic.stream.errors import EEGMusicError, OutputError, one_line
from eegmusic.stream.extras import MissingExtraError, missing_extra

# command -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("eegmusic.replay.cli_simulate", "write a simulated dataset in the NMED-T layout"),
    "info": ("eegmusic.replay.cli_info", "describe a dataset and list its problems"),
    "replay": ("eegmusic.replay.cli_replay", "replay a recorded dataset as a live LSL stream"),
    "calibrate": ("eegmusic.replay.cli_calibrate", "play music to a listener; record EEG + markers to XDF"),
    "streams": ("eegmusic.stream.cli_streams", "list the LSL streams visible from this machine"),
    "train": ("eegmusic.offline_training.cli_train", "train a decoder and export it to ONNX"),
    "evaluate": ("eegmusic.offline_training.cli_evaluate", "score a model against trivial baselines"),
    "vocode": ("eegmusic.decoder.cli_vocode",
               "resynthesise sound from the mel of an audio file or of a decode recording"),
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
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = missing_extra(error)
        if missing is None:
            raise
        return _needs_extra(missing)
    add = getattr(module, f"add_{name}_arguments", None)
    run = getattr(module, f"run_{name}", None)
    if add is None or run is None:
        return None
    return add, run


def _needs_extra(missing: MissingExtraError):
    """(add_arguments, run) of a command whose module cannot be imported without an extra."""

    def add(parser: argparse.ArgumentParser) -> None:
        parser.epilog = f"Not available here: {missing}"
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(args: argparse.Namespace) -> int:
        raise missing

    return add, run


class _RenamedOption(argparse.Action):
    """Refuse an option that was renamed, with one line naming the new spelling."""

    def __init__(self, option_strings, dest, *, hint: str, **kwargs):
        kwargs.update(nargs="*", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)
        self.hint = hint

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} {self.hint}")


def renamed_option(parser: argparse.ArgumentParser, old: str, hint: str) -> None:
    """Make ``old`` a hidden option that stops the parser with ``<old> <hint>`` (one line, exit 2).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    old : str
        The former option, e.g. ``"--seconds"``.
    hint : str
        The rest of the sentence, e.g. ``"is now --duration"``.

    Examples
    --------
    >>> renamed_option(parser, "--model-name", "is now --arch (a registry name); --model is a file")
    ... # doctest: +SKIP
    """
    parser.add_argument(old, action=_RenamedOption, hint=hint)


def _add_verbosity(parser: argparse.ArgumentParser, *, suffix: str = "") -> None:
    """``-v``/``-q`` on ``parser``; the subcommand's copies use other names so neither overwrites."""
    parser.add_argument("-v", "--verbose", dest=f"verbose{suffix}", action="count", default=0,
                        help="more log output: eegmusic's debug lines and the libraries' INFO lines (-vv: "
                        "their debug lines too); before or after the command")
    parser.add_argument("-q", "--quiet", dest=f"quiet{suffix}", action="count", default=0,
                        help="warnings only and no progress bars (-qq: errors only)")


def configure_logging(verbose: int, quiet: int) -> None:
    """Log levels for ``-v``/``-q`` counts: eegmusic's own at :func:`log_level`; the libraries' at WARNING,
    their INFO lines with -v (onnx_ir's export passes printed up to 12 per train) and their debug only with
    -vv (numba's compiler and matplotlib's font search wrote thousands of lines under a single -v)."""
    level = log_level(verbose, quiet)
    libraries = logging.DEBUG if verbose >= 2 else logging.INFO if verbose else max(level, logging.WARNING)
    logging.basicConfig(level=libraries, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("eegmusic").setLevel(level)


def log_level(verbose: int, quiet: int) -> int:
    """The logging level for ``-v`` and ``-q`` counts: INFO by default, DEBUG with -v, WARNING with -q."""
    steps = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]
    return steps[min(max(1 + quiet - verbose, 0), len(steps) - 1)]


REPEATED_STOP_S = 2.0
"""A stop signal this soon after the first one is part of the same stop, and is ignored.

A terminal's Ctrl-C reaches every process of its group: the dashboard and the decode it started both
get it, and the dashboard then stops that decode with a SIGINT of its own; a key pressed again sends
more. Each repeat raised KeyboardInterrupt (or killed the process, after its handlers were restored)
inside the cleanup the first stop had started, and cut it short: the decode's shared-memory block and
the dashboard's temporary folder stayed behind. A stop signal later than this acts as before, so a
cleanup that hangs can still be interrupted."""


class _FirstStop:
    """When this process's current stop began (monotonic seconds); written by signal handlers, no lock."""

    at: float | None = None


def repeated_stop() -> bool:
    """Note a stop signal now: True when it repeats one that arrived less than REPEATED_STOP_S ago.

    Safe inside a signal handler (it takes no lock). Every handler of a stop signal calls it first.
    """
    if stop_under_way():
        return True
    _FirstStop.at = time.monotonic()
    return False


def stop_under_way() -> bool:
    """Whether a stop signal arrived less than :data:`REPEATED_STOP_S` ago."""
    return _FirstStop.at is not None and time.monotonic() - _FirstStop.at < REPEATED_STOP_S


class _AfterStop:
    """A handler put back while the process stops: repeats of the stop are ignored, later signals
    reach ``handler`` (Python's handler, or the default action of ``SIG_DFL``)."""

    def __init__(self, handler) -> None:
        self.handler = handler

    def __call__(self, signum, frame) -> None:
        if repeated_stop():
            return
        if callable(self.handler):
            self.handler(signum, frame)
        elif self.handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


@contextlib.contextmanager
def stop_signals(handler):
    """Route SIGINT (Ctrl-C) and SIGTERM to ``handler`` inside the block; the previous handlers after.

    For the commands that run until stopped (``replay``, ``decode``, ``simulate --live``). SIGINT is
    installed explicitly too: a command started as a script's background job (``cmd &``) inherits it
    ignored, and Python keeps it ignored, so another process's stop (the dashboard stops the decode it
    started with SIGINT) would never arrive. Off the main thread (a command run in a thread) nothing
    is installed: Python allows signal handlers on the main thread only. ``handler`` must take no
    lock the main thread may hold where the signal lands (:class:`StopRequest` says why), and calls
    :func:`repeated_stop` first. Left while a stop is under way, the previous handlers come back
    ignoring its repeats (:data:`REPEATED_STOP_S`).
    """
    previous = {}
    held = None
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
        held, _HeldStop.signum = _HeldStop.signum, None
    try:
        if held is not None:   # a stop held by an import before this block: the new handler takes it
            _FirstStop.at = None   # not a repeat of itself
            handler(held, None)
        yield
    finally:
        stopping = stop_under_way()
        for signum, old in previous.items():
            wrap = stopping and (callable(old) or old == signal.SIG_DFL) and not isinstance(old, _AfterStop)
            signal.signal(signum, _AfterStop(old) if wrap else old)


class StopRequest:
    """A stop asked for by SIGINT or SIGTERM, for a command's main loop to poll; the handler itself.

    ``with stop_signals(stop): while ... and not stop.wait(0.1): ...`` For the commands that stream
    until stopped (``replay``, ``simulate --live``). Not a :class:`threading.Event`: Python runs a
    signal handler in the main thread between two bytecodes, which can be inside ``Event.wait`` while
    that thread holds the Event's own lock; ``Event.set`` in the handler then waits for that lock
    forever and the command never stops (a replay hung so on SIGTERM in CI; a loop on
    ``Event.wait(0)`` hangs on about half of its stops). The handler here only stores the signal
    number, which takes no lock.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum, frame) -> None:
        repeated_stop()
        self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None

    def wait(self, timeout: float) -> bool:
        """Sleep ``timeout`` seconds unless a stop was asked for; True once one was.

        A signal during the sleep runs the handler and the sleep goes on (PEP 475), so a stop is seen
        at most ``timeout`` late.
        """
        if self.signum is None:
            time.sleep(timeout)
        return self.signum is not None


IMPORT_RETRY_S = 0.02
"""How often a stop held back by an import (:func:`_interrupt`) looks again whether the import is done."""


class _HeldStop:
    """A stop signal held back until the import it landed in is done (:func:`_interrupt`).

    ``signum`` and ``release`` are written by the signal handler and by the thread that watches the
    import; ``lock`` is taken by that thread and by :func:`main`'s own code, never by a handler.
    ``release``: the next call of the handler is the hold's own delivery, not a new stop. ``lost``: a
    second stop was raised inside an import, where it may be swallowed as the first would have been.
    """

    signum: int | None = None
    release = False
    lost = False
    lock = _thread.allocate_lock()

    @classmethod
    def clear(cls) -> None:
        with cls.lock:   # never while the watching thread delivers the stop (_hold)
            cls.signum, cls.release, cls.lost = None, False, False


def _interrupt(signum, frame):
    """Raise KeyboardInterrupt for the first stop, outside any import.

    A KeyboardInterrupt raised inside an import can be lost: Cython's module set-up registers its types
    with ``collections.abc`` and turns any error there into a warning, so a SIGTERM that landed in
    ``simulate``'s first use of ``np.random`` (numpy imports it lazily) vanished, and the simulation ran
    to its end and exited 0 (1 stop in 40 under load). A stop landing in an import is held until the
    import is done (:func:`_hold`), then raised; a second stop later than :data:`REPEATED_STOP_S`
    raises at once, so an import that hangs can still be stopped.
    """
    if _HeldStop.release:   # the hold's own delivery: its import is done
        _HeldStop.release = False
        if _HeldStop.signum is None:   # raised meanwhile, by a later stop or by main
            return
    elif repeated_stop():  # a repeat would land in the cleanup the first stop started
        return
    elif _HeldStop.signum is not None:   # a second stop, later than a repeat: the import hangs
        _HeldStop.signum, _HeldStop.lost = None, _importing(frame)
        raise KeyboardInterrupt
    if _importing(frame):   # the first stop, or the held one landing in another import
        _hold(signum)
        return
    _HeldStop.signum = None
    _FirstStop.at = time.monotonic()   # its repeats are ignored from now, however long it was held
    raise KeyboardInterrupt


def _importing(frame) -> bool:
    """Whether ``frame`` runs inside an import (a frame of importlib's bootstrap calls it)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _hold(signum: int) -> None:
    """Hold the stop ``signum`` (in the main thread's handler) until the main thread's import is done.

    A bare ``_thread`` thread looks at the main thread's frames every :data:`IMPORT_RETRY_S` (a handler
    may land where the main thread holds ``threading``'s own locks, which ``threading.Thread.start``
    would wait for). Once no import runs there, it sends the signal to the main thread again: a real
    signal, which also ends a blocking call the main thread has gone on to (``_thread.interrupt_main``
    only sets a flag, seen after a child process the command waits for had ended). It sends nothing
    once :meth:`_HeldStop.clear` ran, or where no Python handler would take it.
    """
    _HeldStop.signum = signum
    main_thread = _thread.get_ident()

    def watch() -> None:
        while True:
            time.sleep(IMPORT_RETRY_S)
            with _HeldStop.lock:
                if _HeldStop.signum != signum:
                    return
                if _importing(sys._current_frames().get(main_thread)):
                    continue
                if callable(signal.getsignal(signum)):
                    _HeldStop.release = True
                    signal.pthread_kill(main_thread, signum)
                return

    _thread.start_new_thread(watch, ())


def stopped_as_by_ctrl_c():
    """Inside the block, SIGTERM (and SIGINT) raise KeyboardInterrupt, as Ctrl-C does.

    Python's default SIGTERM ends the process at once: no ``finally``, no ``with`` exit, so temporary
    files and folders stay, child processes run on, and a half-written output is not removed. Raised
    as KeyboardInterrupt, the command cleans up on its way out and ``main`` reports ``interrupted``
    with exit status 130.
    """
    return stop_signals(_interrupt)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the problem, then where to read the options)."""

    def error(self, message: str):
        """Print ``<prog>: error: <message>`` and a pointer to ``--help`` on one line; exit with status 2."""
        message = re.sub(r"^argument (--[\w-]+)(?:/[-\w]+)?: ", r"\1 ", " ".join(message.split()))
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown option after a command names that command and its ``--help``."""
        argv = list(sys.argv[1:] if args is None else args)
        parsed, extras = self.parse_known_args(argv, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            after = command in argv and argv.index(extras[0]) > argv.index(command)
            prog = f"{self.prog} {command}" if after else self.prog
            top_level = [extra for extra in extras if extra in self._option_string_actions]
            if after and top_level:    # `eegmusic info sim --lsl-local`: an option of eegmusic itself
                self.exit(2, f"{prog}: error: {top_level[0]} is an option of eegmusic itself: put it before "
                             f"the command (eegmusic {top_level[0]} {command} ...)\n")
            self.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extras)} (see {prog} --help)\n")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = OneLineParser(
        prog="eegmusic",
        description="Live EEG to music: simulate, replay, train, decode, listen.",
        epilog="Example: eegmusic simulate --out /tmp/sim --n-songs 3 --n-subjects 2 --duration 30\n"
               "Every command: eegmusic COMMAND --help (options and examples); design: docs/design.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"eegmusic {__version__}")
    parser.add_argument("--lsl-local", action="store_true",
                        help="keep LSL discovery on this machine (liblsl ResolveScope=machine; also "
                        "EEGMUSIC_LSL_LOCAL=1), e.g. eegmusic --lsl-local decode --stream cap --model m.onnx")
    _add_verbosity(parser)
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
        _add_verbosity(command_parser, suffix="_command")
        command_parser.set_defaults(_run=run)
    return parser


NO_TEMPORARY_FOLDER = "[Errno 2] No usable temporary directory found"
"""How ``tempfile`` words a machine without a writable temporary folder (a ``FileNotFoundError`` naming no
path), which every command that stages a file meets."""


def main(argv: list[str] | None = None) -> int:
    """Run the ``eegmusic`` command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # a bad option: its one line is printed; --help and --version still exit
        if stop.code in (0, None):
            raise
        return int(stop.code) if isinstance(stop.code, int) else 2
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    verbose = args.verbose + getattr(args, "verbose_command", 0)
    quiet = args.quiet + getattr(args, "quiet_command", 0)
    configure_logging(verbose, quiet)
    if quiet:
        from eegmusic.stream import progress

        bars_before = progress._enabled
        progress.set_enabled(False)
    from eegmusic.stream import lsl_local

    try:
        # before any command loads pylsl
        lsl_local.configure(lsl_local.requested(args.lsl_local), lsl_local.liblsl_log_level(verbose, quiet))
        # SIGTERM (a scheduler's stop, `timeout`, `kill`) stops every command as Ctrl-C does: its
        # cleanup runs (temporary files and folders, child processes, a half-written simulation);
        # the dashboard closes its window instead (gui.app.closed_by_signals)
        with stopped_as_by_ctrl_c():
            try:
                status = int(args._run(args) or 0)
                if _HeldStop.signum is not None or _HeldStop.lost:   # held in the command's last step,
                    raise KeyboardInterrupt                          # or swallowed in an import
                return status
            finally:   # before the handlers are put back: nothing is sent to a default action after
                _HeldStop.clear()
    except EEGMusicError as error:
        print(f"eegmusic {args.command}: error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except PermissionError as error:   # a file or folder of the user's, wherever a command opens it
        if error.filename is None:   # no path to name: not the user's file, a bug to see in full
            raise
        from eegmusic.stream.errors import access_error

        print(f"eegmusic {args.command}: error: {one_line(str(access_error(error)))}", file=sys.stderr)
        return 2
    except OSError as error:   # a path of the user's the file system refused: too long, a loop, read-only
        from eegmusic.stream.errors import path_error

        refusal = path_error(error)
        if refusal is None and str(error).startswith(NO_TEMPORARY_FOLDER):   # tempfile's, and no path named
            refusal = OutputError("no writable temporary folder (TMPDIR, /tmp, /var/tmp and the working "
                                  "folder were tried); set TMPDIR to a folder you can write")
        if refusal is None:
            raise
        print(f"eegmusic {args.command}: error: {one_line(str(refusal))}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:  # an optional dependency imported by the command
        missing = missing_extra(error)
        if missing is None:
            raise
        print(f"eegmusic {args.command}: error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"eegmusic {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if quiet:   # -q is this command's: a later main() in the same process (tests, scripts) has its bars
            progress.set_enabled(bars_before)


def run() -> int:
    """The ``eegmusic`` command (and ``python -m eegmusic``): :func:`main`, then an exit that a repeated
    stop cannot cut short.

    As the interpreter exits it puts back the default action of each signal Python handled, so a repeat
    of Ctrl-C arriving then killed the process (status -2) after the command had cleaned up and decided
    its exit status. While a stop is under way (:func:`stop_under_way`) the rest of the exit ignores
    SIGINT and SIGTERM. Not in :func:`main`, which tests and scripts call inside their own process.

    A stop whose KeyboardInterrupt passed through code that ``exec`` built from a string (dataclasses
    and namedtuples build their methods so, and ``scipy`` its modules as they import) also ended the
    process by SIGINT (status -2 instead of 130, in 14 of 107 SIGTERMs to a busy ``python -m eegmusic
    simulate``): CPython marks a KeyboardInterrupt leaving such code as unhandled, even when ``main``
    catches it later, and ``python -m`` then ends the interpreter by SIGINT (an installed script's exit
    does not read the mark). An ``exec`` of a string that returns clears that mark, so one runs
    once ``main`` has returned: every KeyboardInterrupt was handled by then.

    A stop in the first 0.2 s, before :func:`main` reaches its command (the parser's build, the logging
    set-up), ends as a later one does: "eegmusic COMMAND: interrupted", status 130. The handler that
    :func:`main` puts around the command is installed here first, so that a SIGTERM then no longer
    ended the process silently (status -15), a Ctrl-C landing in an import there is held as in the
    command (:func:`_interrupt`), and one arriving while SIGINT was inherited ignored (a background job)
    is not lost. What remains is the interpreter's own start and this module's import (about 50 ms).
    """
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupt)
    try:
        status = main()
    except KeyboardInterrupt:   # a stop before main's command: while the parser is built (0.15 s)
        print(f"eegmusic{_command_named(sys.argv[1:])}: interrupted", file=sys.stderr)
        status = 130
    finally:
        _HeldStop.clear()   # a stop held by an import main did not reach the end of
    exec("")  # clears CPython's unhandled-KeyboardInterrupt mark (above); runs nothing
    if threading.current_thread() is threading.main_thread():
        # ignored while a stop's exit runs; otherwise a stop arriving after the command finished ends the
        # process at once with the status it decided: Python's handler raised KeyboardInterrupt inside a
        # finalizer (a traceback, exit 0) or the signal killed it (-2, -15), its work complete (1 of 10
        # late Ctrl-Cs after a `train`)
        handler = signal.SIG_IGN if stop_under_way() else _ends_with(status)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, handler)
    return status


def _command_named(argv: list[str]) -> str:
    """`` COMMAND`` for the command ``argv`` names (its first word that is no option), else ``""``: the
    top-level options are flags, so that word is the command wherever it stands."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return f" {word}" if word in COMMANDS else ""


def _ends_with(status: int):
    """A signal handler that ends the process at once with ``status``, its output flushed (nothing else
    is left to clean once :func:`main` has returned)."""

    def end(signum, frame) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):   # a write the signal interrupted: flushed as far as it can
                stream.flush()
        os._exit(status)

    return end


if __name__ == "__main__":
    sys.exit(run())
