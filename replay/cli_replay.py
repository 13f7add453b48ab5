"""``eegmusic replay``: a recorded dataset (or one XDF stream) as a live LSL stream until stopped.

Light at import time (argparse and stdlib only); numpy, pylsl and the dataset reader load in
:func:`run_replay`.
"""

from __future__ import annotations

import argparse

from eegmusic.stream.options import float_range, positive_int, published_lsl_name

EPILOG = """\
Examples:
  eegmusic replay --data /tmp/sim --song 21 --subject 1
  eegmusic replay --data /tmp/sim --song 22 --subject 2 --device-like 1000 --loop --name cap-2
  eegmusic replay --data /tmp/sim --song 21 --subject 1 --speed 10 --index-channel
  eegmusic replay --data s.xdf --song 2 --subject 1     # play 2 of a calibration session
  eegmusic replay --xdf session.xdf --xdf-stream "ActiChamp-0" --loop

Stop with Ctrl-C (or SIGTERM): the outlets close and inlets see the stream end.
Markers go to '<name>-markers': song_start=NN, song=NN;t=S.000 every second, song_end=NN,
and replay_end when the replay ends.
--device-like: E1..E124 carry the recording (upsampled), E125..E128 (face electrodes, absent from
NMED-T) are inverse-distance means of their 3 nearest scalp electrodes, Cz (the reference) is not sent.
"""


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``replay`` options to ``parser``."""
    parser.epilog = EPILOG
    source = parser.add_argument_group("what to replay")
    source.add_argument("--data", metavar="DATA",
                        help="NMED-T folder, XDF calibration session, BIDS root or EEG file MNE reads "
                        "(its songs: eegmusic info DATA)")
    source.add_argument("--song", type=positive_int, metavar="NN", help="song trigger code, e.g. 21")
    source.add_argument("--subject", type=positive_int,
                        metavar="K", help="participant, 1-based index in the file")
    source.add_argument("--xdf", metavar="FILE",
                        help="replay a stream of an XDF recording instead, as recorded: no song markers, so "
                        "decode --truth cannot score it (a calibration session replayed with --data can be)")
    source.add_argument("--xdf-stream", metavar="NAME",
                        help="name of the recorded stream to replay (--xdf), or its stream id where two "
                        "streams share the name")
    out = parser.add_argument_group("how")
    # replay.player.MIN_SPEED (not imported here: building the parser must not load pylsl)
    out.add_argument("--speed", type=float_range(0.001, 1000.0), default=1.0, metavar="X",
                     help="time acceleration, 0.001 to 1000 (default 1 = real time), e.g. --speed 10")
    out.add_argument("--loop", action="store_true", help="start again at the end (timestamps continue)")
    out.add_argument("--name", type=published_lsl_name, metavar="NAME",
                     help="stream name (default eegmusic-replay-s{song}-p{subject}, or the XDF stream's)")
    out.add_argument("--source-id", type=published_lsl_name, metavar="ID",
                     help="LSL source id (default <name>@<host>; with --xdf <recorded source id>-replay"
                     "@<host>, so that it never poses as the recording's device), e.g. --source-id lab-1")
    out.add_argument("--chunk-ms", type=float_range(0.1, 10000.0), default=10.0, metavar="MS",
                     help="push interval in ms of wall time (default 10)")
    out.add_argument("--device-like", type=float_range(1.0, 100000.0), metavar="RATE",
                     help="present as a 128-channel amplifier (E1..E128, Cz reference not sent) at RATE Hz, "
                     "at least the data's rate (125 Hz for NMED-T), e.g. --device-like 1000")
    out.add_argument("--index-channel", action="store_true",
                     help="append a channel 'index' with the running sample index (continuity checks)")
    out.add_argument("--no-markers", action="store_true", help="do not open the '<name>-markers' outlet")
    from eegmusic.stream.cli import renamed_option

    renamed_option(parser, "--stream", "is now --xdf-stream (the recorded stream of --xdf; --stream in "
                   "decode and gui names a live LSL stream)")


def _build_player(args):
    from eegmusic.stream.errors import ConfigError

    if args.xdf:
        if not args.xdf_stream:
            raise ConfigError("--xdf needs --xdf-stream NAME (the recorded stream to replay)")
        if args.device_like is not None:
            raise ConfigError("--device-like works on NMED-T data only; drop it with --xdf")
        options = (("--data", args.data), ("--song", args.song), ("--subject", args.subject),
                   ("--no-markers", args.no_markers or None))
        given = [flag for flag, value in options if value is not None]
        if given:  # they were ignored: the XDF stream plays as recorded, without song markers
            if "--data" in given:
                raise ConfigError("--xdf and --data each name a recording to replay; pass one of them")
            apply, them = ("apply", "them") if len(given) > 1 else ("applies", "it")
            raise ConfigError(f"--xdf replays one recorded stream as it is; {', '.join(given)} {apply} to "
                              f"--data only: drop {them}, or drop --xdf")
        from eegmusic.replay.xdf import xdf_player

        return xdf_player(
            args.xdf, args.xdf_stream, name=args.name, source_id=args.source_id, speed=args.speed,
            loop=args.loop, chunk_ms=args.chunk_ms, index_channel=args.index_channel,
        )
    if args.xdf_stream:
        raise ConfigError("--xdf-stream names a stream of --xdf FILE; add --xdf, or drop --xdf-stream")
    missing = [flag for flag, value in (("--data", args.data), ("--song", args.song),
                                        ("--subject", args.subject)) if value is None]
    if missing:
        raise ConfigError(
            f"replay needs {', '.join(missing)}; e.g. eegmusic replay --data /tmp/sim --song 21 --subject 1"
        )
    from eegmusic.replay.dataset import open_dataset
    from eegmusic.replay.song_player import Player

    return Player(
        open_dataset(args.data), args.song, args.subject, speed=args.speed, loop=args.loop, name=args.name,
        source_id=args.source_id, chunk_ms=args.chunk_ms, device_like=args.device_like,
        index_channel=args.index_channel, markers=not args.no_markers, progress=True,
    )


def run_replay(args: argparse.Namespace) -> int:
    """Stream until the data ends (without ``--loop``) or until SIGINT/SIGTERM; return 0."""
    from eegmusic.replay.player import check_speed
    from eegmusic.stream.cli import StopRequest, stop_signals
    from eegmusic.stream.errors import StreamError

    check_speed(args.speed)
    player = _build_player(args)
    stop = StopRequest()
    with stop_signals(stop):
        try:
            player.start()
            markers = f", markers on '{player.marker_name}'" if player.marker_name else ""
            print(
                f"replaying '{player.name}' (source_id {player.source_id}): {len(player.labels)} channels at "
                f"{player.sfreq:g} Hz, {player.n_times / player.sfreq:.1f} s of data, speed {player.speed:g}"
                f"{', looping' if player.loop else ''}{markers}; Ctrl-C to stop",
                flush=True,
            )
            while player.running and not stop.wait(0.1):
                pass
        finally:
            player.stop()
    if player.error:
        raise StreamError(f"replay '{player.name}' stopped on an error: {player.error}")
    reason = "stopped" if stop else "end of data"
    print(f"replay '{player.name}' {reason} after {player.samples_sent} samples", flush=True)
    return 0
