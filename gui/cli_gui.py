"""``eegmusic gui``: the live dashboard (signals, spectrum, decoded mel, latency, health).

Only argparse and the standard library are imported here; Qt, numpy and the pipeline load inside
:func:`run_gui`, so ``eegmusic --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from eegmusic.stream.options import float_range, lsl_name, output_file, seconds

ATTACH_WAIT_S = 10.0
"""How long ``gui --attach NAME`` waits for a decode to publish under NAME before it refuses."""

EPILOG = """\
Examples:
  eegmusic gui
  eegmusic gui --stream eegmusic-replay-s21-p1 --model model.onnx --truth /tmp/sim
  eegmusic decode --stream cap-1 --model model.onnx --publish cap1 &   eegmusic gui --attach cap1
  xvfb-run -a eegmusic gui --stream cap-1 --model model.onnx --screenshot dashboard.png --duration 15
  eegmusic gui --stream cap-1 --model nmedt.onnx --impute-missing  # a net missing a few electrodes

With --stream and --model given the decoding starts at once; otherwise pick them in the window and
press Start. The decode runs in its own process (an `eegmusic decode --publish` the window starts and
stops), so drawing never slows it; --attach NAME shows a decode started elsewhere with --publish NAME
and leaves it running when the window closes. --screenshot renders the window after --duration
seconds to a PNG and exits (without a display it renders offscreen).
"""


def add_gui_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``gui`` options to ``parser``."""
    parser.epilog = EPILOG
    parser.add_argument("--stream", type=lsl_name, metavar="NAME",
                        help="LSL stream to decode (name); pick one in the window if absent")
    parser.add_argument("--model", metavar="FILE", help="decoder model (.onnx from `eegmusic train`)")
    parser.add_argument("--truth", metavar="DATA",
                        help="the dataset the replay plays, as its --data names it (an NMED-T folder with "
                        "stimuli/, an XDF session, a BIDS root, ...): show the true mel and live dynamic r")
    parser.add_argument("--screenshot", type=output_file('.png'), metavar="PNG",
                        help="save the window to this PNG after --duration s, then exit")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --screenshot file (refused otherwise), e.g. "
                        "--screenshot docs/dashboard.png --overwrite")
    parser.add_argument("--duration", metavar="S", type=seconds(), default=None,
                        help="close after this many seconds (default 10 with --screenshot)")
    from eegmusic.decoder.cli_decode import SUBJECT_HELP

    parser.add_argument("--subject", metavar="ID", help=SUBJECT_HELP)
    parser.add_argument("--no-audio", action="store_true", help="decode without sound")
    parser.add_argument("--impute-missing", action="store_true",
                        help="interpolate model channels the stream lacks (spherical splines), up to the "
                        "model's tolerance (max_missing; 10%% of its channels for models from train); the "
                        "counters list them")
    parser.add_argument("--refresh-hz",
                        metavar="HZ", type=float_range(0.0, 30.0, low_open=True), default=30.0,
                        help="snapshot polls per second, at most 30 (default 30)")
    # the name is checked in run_gui: its check lives beside the snapshot block, whose imports load pylsl,
    # and pylsl must not load before --lsl-local is applied
    parser.add_argument("--attach", metavar="NAME",
                        help="show the running `eegmusic decode --publish NAME` (closing leaves it running; "
                        "one just started is waited for up to 10 s)")
    from eegmusic.decoder.vocoders import VOCODERS, vocoder_help

    # default None, as decode's: a typed --vocoder is told from the default (a waveform model refuses it)
    parser.add_argument("--vocoder", choices=tuple(VOCODERS), default=None, help=vocoder_help())
    parser.add_argument("--listen", choices=("decoded", "true", "both"), default="decoded",
                        help="what to play first: the decoded sound, the true stimulus (a replay with "
                        "--truth) or both; with true or both the window's Listen box switches A/B while "
                        "decoding")
    parser.add_argument("--in-process", action="store_true",
                        help="decode inside the dashboard's own process (drawing then delays decoding; "
                        "for comparison)")


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _refuse_with_attach(args: argparse.Namespace) -> None:
    """Refuse the options an attached decode makes moot: the window shows the decode's own stream, model,
    truth, listen mode and sound (``MainWindow._on_started``), and these were dropped without a word.
    ``--vocoder`` and ``--impute-missing`` stay: a Start in the window after Detach uses them."""
    from eegmusic.stream.errors import ConfigError

    given = [flag for flag, value in (("--stream", args.stream), ("--model", args.model),
                                      ("--subject", args.subject), ("--in-process", args.in_process),
                                      ("--truth", args.truth), ("--listen", args.listen != "decoded"),
                                      ("--no-audio", args.no_audio))
             if value]
    if given:
        listed = ", ".join(given[:-1]) + " and " + given[-1] if len(given) > 1 else given[0]
        raise ConfigError(f"--attach shows a decode that already runs, with its own stream, model, listener, "
                          f"truth, listen mode and sound; leave out {listed}")


START_WAIT_S = 60.0
"""How long past ``--duration`` a screenshot waits for a dashboard that is still starting."""


def run_gui(args: argparse.Namespace) -> int:
    """Open the dashboard; with ``--screenshot`` save the picture and exit. Returns the exit status.

    Ctrl-C and SIGTERM close the window as its close button does (exit 0, as decode's Ctrl-C); a window
    closed before its ``--screenshot`` was taken raises KeyboardInterrupt (``interrupted``, exit 130).
    """
    from eegmusic.stream.atomic import output_locks

    # held for the whole run, as every command holds what it writes: a second gui or another command
    # writing the same picture is refused in one line
    with output_locks([args.screenshot], "gui"):
        return _gui(args)


def _gui(args: argparse.Namespace) -> int:
    """:func:`run_gui` with its ``--screenshot`` held."""
    import sys

    from eegmusic.stream.errors import ConfigError, OutputError

    duration = args.duration
    if args.attach is not None:
        from eegmusic.decoder.shared_snapshot import check_name

        check_name(args.attach, option="--attach")
        _refuse_with_attach(args)
    if args.overwrite and args.screenshot is None:
        raise ConfigError("--overwrite lets --screenshot replace a file, and no --screenshot is given; "
                          "drop it")
    if args.screenshot is not None:
        duration = 10.0 if duration is None else duration
        target = Path(args.screenshot)
        from eegmusic.stream.atomic import refuse_existing, refuse_same_file

        if args.model is not None:  # an input is never its own output, even with --overwrite
            refuse_same_file(args.model, target, what="--screenshot")
        refuse_existing(target, overwrite=args.overwrite, what="--screenshot")
        if not target.parent.is_dir():
            raise ConfigError(f"cannot write screenshot {target}: folder {target.parent} does not exist; "
                              "create it first")
    if duration is not None and not duration > 0:
        raise ConfigError(f"--duration must be > 0 seconds, got {duration}")
    if not os.environ.get("QT_QPA_PLATFORM") and not _has_display():
        if args.screenshot is None:
            raise ConfigError("no display to open the dashboard on; run it on a desktop, under "
                              "`xvfb-run -a eegmusic gui ...`, or pass --screenshot PNG")
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if args.model is not None and not Path(args.model).exists():
        raise ConfigError(f"--model {args.model} does not exist; pass an existing path")
    if args.truth is not None:
        from eegmusic.decoder.truth import check_truth_dir, inside_truth

        check_truth_dir(args.truth)
        if args.screenshot is not None and inside_truth(args.screenshot, args.truth):
            raise ConfigError(f"--screenshot {args.screenshot} lies inside the --truth dataset "
                              f"{args.truth}, an input; save it outside the dataset")
    from eegmusic.decoder.cli_decode import refuse_listen_without_audio
    from eegmusic.decoder.pipeline_config import refuse_listen_without_truth

    refuse_listen_without_audio(args.listen, args.no_audio, has_wav=False)
    if args.attach is None:  # an attached decode plays what it was started with
        refuse_listen_without_truth(args.listen, args.truth)
    if args.model is not None:  # a corrupt model failed only inside the window: a warning, and exit 0
        from eegmusic.decoder.modelfile import check_live_contract, read_model_info
        from eegmusic.decoder.runtime import subject_index

        info = read_model_info(args.model)
        check_live_contract(info)
        if args.subject is not None:  # not before a window whose start would refuse it
            subject_index(info, args.subject)
    if args.attach is not None:
        import time

        from eegmusic.decoder.shared_snapshot import SnapshotReader, snapshot_path

        # a decode started on the same command line (`decode ... --publish N & gui --attach N`) publishes
        # once its model is loaded and its stream found: wait for it a while
        deadline = time.monotonic() + ATTACH_WAIT_S
        while not snapshot_path(args.attach).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        SnapshotReader(args.attach).close()  # not running: one line and exit 2 before any window opens

    from eegmusic.gui.app import MainWindow, closed_by_signals, make_app, save_screenshot
    from eegmusic.gui.controls import Settings
    from PySide6 import QtCore

    app = make_app()
    settings = Settings(stream=args.stream, model=args.model, truth=args.truth, no_audio=args.no_audio,
                        isolated=not args.in_process, vocoder=args.vocoder, listen=args.listen,
                        extra={**({"impute_missing": True} if args.impute_missing else {}),
                               **({"subject": args.subject} if args.subject is not None else {})})
    window = MainWindow(settings, refresh_hz=args.refresh_hz)
    # a local event loop ended by this window, not QApplication.quit(): quit() leaves Qt's "quit now"
    # flag set, which would stop every later event loop of this process at once (run in-process, as
    # the fault tests do, the next dashboard would never start)
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    loop = QtCore.QEventLoop()
    window.closed.connect(loop.quit)
    window.show()
    outcome: dict = {}

    def finish(waited_s: float = 0.0) -> None:
        # --duration over while the dashboard still starts (the decode looks for its stream up to its
        # --timeout, and loads the model): the picture showed a dashboard that never decoded, exit 0, where
        # a longer --duration said the stream was not found, exit 2. The start is waited for, so the
        # picture shows the decode, or the command ends with the start's own error
        if window.state == "starting" and waited_s < START_WAIT_S:
            QtCore.QTimer.singleShot(100, lambda: finish(waited_s + 0.1))
            return
        outcome["starting"] = window.state == "starting"
        if args.screenshot is not None:
            try:
                outcome["path"] = save_screenshot(window, args.screenshot)
            except (ConfigError, OutputError) as error:
                outcome["error"] = error
        window.close()

    if args.attach is not None:
        QtCore.QTimer.singleShot(0, lambda: window.attach(args.attach))
    elif args.stream and args.model:
        QtCore.QTimer.singleShot(0, window.start)
    if duration is not None:
        QtCore.QTimer.singleShot(int(duration * 1000), finish)
    try:
        with closed_by_signals(window):  # Ctrl-C and SIGTERM close the window, as its button does
            loop.exec()
    finally:
        app.setQuitOnLastWindowClosed(quit_on_close)
        window.shutdown()
    if "error" in outcome:
        raise outcome["error"]
    if "path" in outcome:
        print(f"screenshot saved to {outcome['path']}")
        if outcome["starting"]:
            if args.attach is None:
                doing = f"looking for the stream {args.stream!r} and loading the model"
                check = "check the stream with eegmusic streams"
            else:
                doing, check = f"attaching to decode {args.attach}", f"check that decode {args.attach} runs"
            print(f"eegmusic gui: error: the dashboard was still starting {START_WAIT_S:g} s after "
                  f"--duration {duration:g} s ended ({doing}), so the screenshot shows no decode; {check}",
                  file=sys.stderr)
            return 2
    elif args.screenshot is not None and not window.last_error:
        # closed before --duration (Ctrl-C, SIGTERM, its close button): the picture asked for was not
        # taken, which exit 0 hid; interrupted, as the design says of every command (main: 130)
        raise KeyboardInterrupt
    if window.last_error:   # the last decode failed (each start clears it): exit as decode would
        print(f"eegmusic gui: error: {window.last_error}", file=sys.stderr)
        return 2
    return 0
