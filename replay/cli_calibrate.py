"""``eegmusic calibrate``: a listening session recorded to XDF (EEG + calibration markers + audio).

Light at import time (argparse only); pylsl, sounddevice and the recorder load in :func:`run_calibrate`.
"""

from __future__ import annotations

import argparse
import shlex

from eegmusic.stream.options import (
    float_range,
    lsl_name,
    output_file,
    published_lsl_name,
    random_seed,
    timeout_seconds,
)

EPILOG = """\
Examples:
  eegmusic calibrate --stream cap32 --music ~/music/calibration --duration 300 --out s.xdf
  eegmusic calibrate --stream cap32 --music a.flac b.mp3 --shuffle --duration 600 --out s2.xdf
  eegmusic calibrate --stream cap32 --music songs/ --duration 120 --no-audio --out sim.xdf  # virtual listener

Plays the music while recording the cap's stream and a marker stream '<stream>-calibration' (track,
position in the track, the LSL time each position is heard, the device's output latency; format in
replay/calibration_markers.py) into the XDF file, copies the audio into '<out without .xdf>_audio/'
(s_audio/ for s.xdf), and shows the track, elapsed time, samples and gaps. An EEG outage is recorded
as a gap and the session goes on.
Next (as the command prints it): eegmusic train --data s.xdf --arch convnet --out runs/session (the target
offset is chosen on validation, so the newest decoded frames, which live decoding plays, have the brain's
response inside the window)
"""


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``calibrate`` options to ``parser``."""
    parser.epilog = EPILOG
    parser.add_argument("--stream", required=True, type=lsl_name, metavar="NAME",
                        help="name of the cap's LSL EEG stream")
    parser.add_argument("--source-id", type=lsl_name, metavar="ID",
                        help="also require this LSL source_id (when two outlets share the stream's name)")
    parser.add_argument("--timeout", type=timeout_seconds, default=5.0, metavar="S",
                        help="seconds to wait for --stream to answer (default 5), e.g. --timeout 30 while "
                        "the amplifier's software starts")
    parser.add_argument(
        "--music",
        required=True,
        nargs="+",
        action="extend",
        metavar="PATH",
        help="audio files (wav/flac/ogg/mp3) or folders of them, in play order",
    )
    parser.add_argument(
        "--out", type=output_file('.xdf'),
        required=True, metavar="FILE.xdf", help="session file to create (never overwritten)")
    parser.add_argument(
        "--duration",
        type=float_range(0.0, 7 * 24 * 3600.0, low_open=True),
        default=None,
        metavar="S",
        help="session length in seconds; the playlist repeats until then (default: play it once)",
    )
    parser.add_argument(
        "--shuffle", action="store_true", help="shuffle the playlist (again at each repetition)"
    )
    parser.add_argument("--seed", type=random_seed, default=None,
                        help="seed of --shuffle (default 0; only with --shuffle)")
    parser.add_argument(
        "--audio-device", default=None, metavar="X",
        help="sound output, index or name (default: system; not with --no-audio)"
    )
    parser.add_argument(
        "--no-audio",
        action="store_true",
        help="play nothing; positions paced by the LSL clock (for simulate --live)",
    )
    parser.add_argument(
        "--markers", default=None, type=published_lsl_name, metavar="NAME",
        help="marker stream name (default <stream>-calibration)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from eegmusic.stream.cli import renamed_option

    renamed_option(parser, "--minutes", "is now --duration, in seconds (every length is --duration S)")
    renamed_option(parser, "--device", "is now --audio-device (--device picks cpu/cuda elsewhere)")


def run_calibrate(args: argparse.Namespace) -> int:
    """Run ``eegmusic calibrate``; print what was recorded; return 0."""
    from eegmusic.replay.calibrate import CalibrationConfig, calibrate
    from eegmusic.stream.errors import ConfigError

    # an option that would be ignored is refused: the user meant something by it
    if args.seed is not None and not args.shuffle:
        raise ConfigError("--seed only seeds --shuffle; add --shuffle, or drop --seed")
    if args.markers == args.stream:   # the EEG inlet could resolve the marker outlet of that name
        raise ConfigError(f"--markers {args.markers} is the name of the EEG stream --stream records; pass "
                          f"another name, or leave --markers out for '{args.stream}-calibration'")
    if args.audio_device is not None and args.no_audio:
        raise ConfigError("--audio-device picks where the music plays, and --no-audio plays none; drop one")
    summary = calibrate(
        CalibrationConfig(
            stream=args.stream,
            source_id=args.source_id,
            music=args.music,
            out=args.out,
            minutes=None if args.duration is None else args.duration / 60.0,
            shuffle=args.shuffle,
            seed=args.seed or 0,
            device=args.audio_device,
            no_audio=args.no_audio,
            marker_name=args.markers,
            resolve_timeout_s=args.timeout,
            progress=not args.no_progress,
        )
    )
    gaps = ", ".join(f"{end - start:.1f} s" for start, end in summary.gaps) or "none"
    cut = summary.cut_short_s
    n_tracks = summary.tracks_played + (cut is not None)  # a cut track's play is in the session too
    tracks = f"{n_tracks} track{'s' * (n_tracks != 1)}"
    if cut is not None:
        tracks += f" ({'the last ' if n_tracks > 1 else ''}cut short at {cut:.1f} s)"
    seconds = summary.seconds_played
    played = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
    missing = (f" (the EEG of its last {summary.eeg_missing_s:.1f} s never arrived)"
               if summary.eeg_missing_s > 0 else "")
    print(
        f"recorded {tracks}, {played} of music{missing}, {summary.eeg_samples} EEG samples, gaps: {gaps}, "
        f"output latency {summary.output_latency_s * 1e3:.0f} ms"
    )
    if summary.stopped_early:
        from eegmusic.replay.xdf_session import MIN_PIECE_S

        # a play cut before MIN_PIECE_S holds no whole model window: train skips it
        trainable = summary.tracks_played + (cut is not None and cut >= MIN_PIECE_S)
        print(_stopped_line(summary, n_tracks, MIN_PIECE_S))
        if not trainable:
            print(f"session: {summary.path} (audio in {summary.audio_dir})")
            return 0
    print(
        f"session: {summary.path} (audio in {summary.audio_dir}); next: eegmusic train --data "
        f"{shlex.quote(str(summary.path))} "
        "--arch convnet --out runs/session"   # the lag is chosen on validation where the session allows
    )
    return 0


def _stopped_line(summary, n_tracks: int, min_piece_s: float) -> str:
    """What a stop (Ctrl-C, SIGTERM) kept: the cut track, if its start was marked, is in the session (and
    trained on if it lasted ``min_piece_s``)."""
    during = (f"stopped during track {summary.tracks_played + 1} (Ctrl-C or SIGTERM): everything recorded "
              "until then is kept")
    cut = summary.cut_short_s
    if cut is not None and cut < min_piece_s:
        rest = ("the session trains on the tracks before it" if summary.tracks_played else
                "the session holds nothing to train on: record it again")
        return (f"{during}, that track cut short at {cut:.1f} s, under the {min_piece_s:g} s a play needs to "
                f"be trained on; {rest}")
    if cut is not None:
        return f"{during}, that track cut short at {cut:.1f} s; the session trains as it is"
    if n_tracks:
        return (f"{during}; that track stopped before its start was marked, so it is not in the session; the "
                "session trains as it is")
    return (f"{during}; that track stopped before its start was marked, so the session holds no track play "
            "to train on: record it again")
