"""Command ``eegmusic simulate``: write a simulated dataset in the NMED-T layout.

Light at import time (argparse only); numpy, scipy and the simulator load inside :func:`run_simulate`.
Counts are ``--n-songs``/``--n-subjects`` (``--songs ID…`` elsewhere is a list of song ids) and the
length of each song is ``--duration``, the one name every command gives a length in seconds.
"""

from __future__ import annotations

import argparse
import shlex

from eegmusic.stream.cli import renamed_option
from eegmusic.stream.options import (
    float_range,
    int_range,
    lsl_name,
    non_negative_float,
    non_negative_int,
    output_dir,
    published_lsl_name,
    random_seed,
)

SIMULATE_EPILOG = """\
Writes songNN_Imputed.mat (dataNN: 125 channels x time x participants, float64 µV, fs = 125,
subsNN) and stimuli/songNN.wav, exactly the NMED-T layout; --raw adds songNN_raw.mat (MATLAB v7.3,
129 channels at 1000 Hz referenced to Cz, with 60 Hz line noise).

Examples:
  eegmusic simulate --out /tmp/sim --n-songs 3 --n-subjects 2 --duration 30
  eegmusic simulate --out /tmp/sim --n-songs 10 --n-subjects 20          # NMED-T size
  eegmusic simulate --out /tmp/sim --n-songs 3 --overwrite               # write over an older one
  eegmusic simulate --out /tmp/mine --music a.flac b.mp3 --snr 0.1   # your own music
  eegmusic simulate --out /tmp/real --music /usr/share/games/singularity/music --duration 120
  eegmusic simulate --out /tmp/later --music a.ogg b.ogg --music-start 150 --duration 60   # later excerpt

Any cap (--montage): one XDF calibration session per participant (DIR/S01.xdf …, the EEG stream
'virtual-<montage>' with labels and locations, under MNE's current name of the montage, e.g.
virtual-colin27_1020 for standard_1020; the calibration markers) and the songs beside them,
as `eegmusic calibrate` records a real cap; train on it with `eegmusic train --data DIR/S01.xdf`:
  eegmusic simulate --out /tmp/cap32 --montage standard_1020 --channels 32 --sfreq 250 --n-subjects 1
  eegmusic simulate --out /tmp/bio --montage biosemi64 --sfreq 512 --n-songs 3 --n-subjects 2 --duration 60
  eegmusic simulate --out /tmp/obci --montage openbci8 --sfreq 250 --n-subjects 1

Live (--live): an LSL EEG device that responds to what eegmusic calibrate plays (no cap needed):
  eegmusic simulate --live --montage standard_1020 --channels 32 --sfreq 250 --name cap32
  eegmusic calibrate --stream cap32 --music DIR --duration 300 --out s.xdf   # in another terminal
"""

def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eegmusic simulate``."""
    parser.epilog = SIMULATE_EPILOG
    parser.add_argument("--out", type=output_dir,
                        metavar="DIR", help="folder to write (created if needed); not with --live")
    # count defaults are None so that an option given where it does not apply is refused, not ignored
    parser.add_argument("--n-songs", type=int_range(1, 10), default=None, metavar="N",
                        help="number of generated songs, 1..10, numbered 21.. (default 10; not with --music, "
                        "where each file is one song)")
    parser.add_argument("--n-subjects", type=int_range(1, 1000), default=None, metavar="M",
                        help="participants per song (default 20)")
    # 2 s: replay.simulate's shortest song (the CLI stays light: that module loads the forward model)
    parser.add_argument("--duration", type=float_range(2.0, 7 * 24 * 3600.0), default=None,
                        metavar="S", help="length of each song in s, at least 2 (default: NMED-T-like "
                        "271-298 s, or the whole file)")
    parser.add_argument("--seed", type=random_seed,
                        default=0, metavar="K", help="random seed (default 0)")
    parser.add_argument("--snr", type=float_range(0.0, 1.0, low_open=True, high_open=True), default=None,
                        metavar="X", help="evoked share of EEG variance, between 0 and 1 (not 0 or 1; "
                        "default 0.03; 0.2 with --live)")
    parser.add_argument("--music", nargs="+", action="extend", default=None, metavar="DIR|FILE",
                        help="your own music, any rate: folders (their wav/flac/ogg/mp3 files, in name "
                        "order) and/or files, one song each, slots 21..30 (the first 10 when there are "
                        "more; e.g. --music /usr/share/games/singularity/music, from the singularity-music "
                        "package)")
    parser.add_argument("--music-start", type=non_negative_float, default=None, metavar="S",
                        help="with --music: start of the excerpt taken from each file, in s (default 0)")
    parser.add_argument("--raw", action="store_true",
                        help="also write songNN_raw.mat: 129 channels at 1000 Hz with line noise (NMED-T "
                        "layout only, not with --montage)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier simulation in --out: the files it wrote (simulation.json, "
                        "song*, stimuli/, S*.xdf) are deleted first; a folder holding anything else, or "
                        "not written by simulate, is refused")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cap = parser.add_argument_group("virtual cap (instead of the NMED-T layout)")
    cap.add_argument("--montage", metavar="NAME",
                     help="electrode montage: an MNE standard one (standard_1020, standard_1005, biosemi16/"
                     "32/64/128, easycap-M1, GSN-HydroCel-129, ...) or openbci8, openbci16, muse; writes "
                     "XDF sessions, e.g. --montage standard_1020 --channels 32 --sfreq 250")
    # 0 and 1 reach check_cap, which says why an average-referenced cap needs 2 or more
    cap.add_argument("--channels", type=non_negative_int, default=None, metavar="N",
                     help="keep N electrodes of the montage, spread over the scalp (default: all)")
    cap.add_argument("--sfreq", type=float_range(1.0, 100000.0), default=None, metavar="HZ",
                     help="the cap's rate in Hz with --montage, 125 (the model rate) to 4096 (default 250)")
    live = parser.add_argument_group("virtual listener, live (with --montage)")
    live.add_argument("--live", action="store_true",
                      help="stream an LSL EEG device that hears the music eegmusic calibrate plays, until "
                      "Ctrl-C; needs --montage, e.g. --live --montage standard_1020 --channels 32 --sfreq "
                      "250 --name cap32 (--music: where to find the played files)")
    live.add_argument("--name", type=published_lsl_name, default=None, metavar="NAME",
                      help="--live stream name (default virtual-cap)")
    live.add_argument("--markers", type=lsl_name, default=None, metavar="NAME",
                      help="--live: calibration marker stream to follow (default <name>-calibration)")
    live.add_argument("--delay", type=float_range(0.0, 60.0), default=None, metavar="S",
                      help="--live: each sample leaves S seconds after its timestamp (default 1)")
    renamed_option(parser, "--audio", "is now --music (files and/or folders of them)")
    renamed_option(parser, "--songs", "is now --n-songs (a count; --songs elsewhere lists song ids)")
    renamed_option(parser, "--subjects", "is now --n-subjects (a count)")
    renamed_option(parser, "--seconds", "is now --duration (every length in seconds is --duration)")


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``eegmusic simulate``; return the exit status."""
    _refuse_ignored_options(args)
    if args.live:
        return _run_live(args)
    return _run_dataset(args)  # stopped (Ctrl-C, SIGTERM), it removes what it wrote (writing_dataset)


def _run_dataset(args: argparse.Namespace) -> int:
    """``simulate --out``: an NMED-T folder, or XDF sessions with ``--montage``."""
    import time
    from pathlib import Path

    from eegmusic.replay.simulate import earlier_dataset, simulate
    from eegmusic.stream.errors import ConfigError

    if args.out is None:
        raise ConfigError("simulate needs --out DIR (the folder to write), or --live for a live virtual "
                          "listener; e.g. eegmusic simulate --out /tmp/sim")
    from eegmusic.stream.atomic import refuse_existing

    # a folder of other files first: "pass --overwrite" would send the user to a second refusal
    earlier_dataset(Path(args.out).expanduser())
    refuse_existing(args.out, overwrite=args.overwrite, what="--out")  # an old simulation is kept
    start = time.perf_counter()
    audio_files = None
    if args.music:
        from eegmusic.replay.music_sources import music_files

        audio_files = _song_slots(music_files(args.music))
    n_songs = 10 if args.n_songs is None else args.n_songs
    n_subjects = 20 if args.n_subjects is None else args.n_subjects
    music_start = args.music_start or 0.0
    if args.montage is not None:
        return _run_virtual_cap(args, audio_files, start, n_songs, n_subjects, music_start)
    out = simulate(
        args.out, n_songs=n_songs, n_subjects=n_subjects, seconds=args.duration, seed=args.seed,
        snr=args.snr, audio_files=audio_files, music_start_s=music_start, raw=args.raw,
        progress=not args.no_progress,
    )
    n_songs = len(audio_files) if audio_files else n_songs
    print(f"wrote {n_songs} song{'s' * (n_songs != 1)} x {n_subjects} participant{'s' * (n_subjects != 1)} "
          f"to {out} in {time.perf_counter() - start:.1f} s; next: eegmusic info {shlex.quote(str(out))}")
    return 0


def _song_slots(files: list) -> list:
    """The first ``MAX_SONGS`` (10) ``--music`` files, with a warning naming any left out.

    A music folder often holds more tracks than a dataset has song slots (the singularity-music folder
    of ``--help``'s example holds 13); taking them in the order given, and saying which were left out,
    runs what the user asked for instead of refusing it. Naming the files chooses others.
    """
    import logging

    from eegmusic.replay.simulate import MAX_SONGS

    if len(files) > MAX_SONGS:
        left = ", ".join(p.name for p in files[MAX_SONGS:])
        logging.getLogger(__name__).warning(
            "--music gives %d tracks and a dataset has %d song slots (21..30): simulating the first %d, "
            "leaving out %s (name the files to choose others)", len(files), MAX_SONGS, MAX_SONGS, left)
    return files[:MAX_SONGS]


_LIVE_ONLY = ("--name", "--markers", "--delay")
_DATASET_ONLY = ("--n-songs", "--n-subjects", "--duration", "--music-start", "--raw", "--overwrite")


def _given(args: argparse.Namespace, flag: str) -> bool:
    """Whether ``flag`` was on the command line (options that matter only somewhere default to None/False)."""
    value = getattr(args, flag[2:].replace("-", "_"))
    return value is not None and value is not False


def _refuse_ignored_options(args: argparse.Namespace) -> None:
    """Refuse, in one line, an option that the chosen mode would silently ignore."""
    from eegmusic.stream.errors import ConfigError

    if args.live:
        name = args.name or "virtual-cap"
        # the marker inlet resolves by name: one of the listener's own outlets would be followed instead
        if args.markers in (name, f"{name}-markers"):
            raise ConfigError(f"--markers {args.markers} names a stream this listener publishes itself (EEG "
                              f"'{name}', replay markers '{name}-markers'); pass the calibration marker "
                              f"stream, or leave --markers out for '{name}-calibration'")
        if args.montage is None:
            raise ConfigError("--live needs --montage NAME (the cap to stream), e.g. --live --montage "
                              "standard_1020 --channels 32 --sfreq 250 --name cap32")
        for flag in _DATASET_ONLY:
            if _given(args, flag):
                raise ConfigError(f"{flag} applies to a dataset written with --out; --live streams until "
                                  f"Ctrl-C and writes none: drop {flag}")
        return
    for flag in _LIVE_ONLY:
        if _given(args, flag):
            raise ConfigError(f"{flag} applies to --live only (the live LSL listener); drop it, or add "
                              "--live --montage NAME")
    if args.channels is not None or args.sfreq is not None:
        if args.montage is None:
            flag = "--channels" if args.channels is not None else "--sfreq"
            raise ConfigError(f"{flag} needs --montage (the NMED-T layout is 125 channels at 125 Hz); e.g. "
                              "--montage standard_1020 --channels 32 --sfreq 250")
    if args.montage is not None and args.raw:
        raise ConfigError("--raw adds songNN_raw.mat to the NMED-T layout; --montage writes XDF sessions at "
                          "--sfreq instead: drop --raw or --montage")
    if args.music and args.n_songs is not None:
        raise ConfigError("--n-songs counts generated songs; with --music each file is one song: drop "
                          "--n-songs (or pass fewer files)")
    if not args.music and args.music_start is not None:
        raise ConfigError("--music-start picks the excerpt of --music files; generated songs start at 0: "
                          "drop --music-start or add --music FILE")


def _run_live(args: argparse.Namespace) -> int:
    """``simulate --live``: a virtual listener on LSL (:mod:`replay.live_listener`)."""
    from eegmusic.replay.live_listener import run_live
    from eegmusic.stream.errors import ConfigError

    if args.out is not None:
        raise ConfigError("--live streams on LSL and writes no files; drop --out (record the session with "
                          "eegmusic calibrate --out FILE.xdf)")
    return run_live(args.montage, args.channels, args.sfreq or 250.0,
                    args.name or "virtual-cap", snr=0.2 if args.snr is None else args.snr, seed=args.seed,
                    markers=args.markers, music=args.music, delay_s=1.0 if args.delay is None else args.delay)


def _run_virtual_cap(args: argparse.Namespace, audio_files, start: float, n_songs: int, n_subjects: int,
                     music_start: float) -> int:
    """``simulate --montage``: XDF calibration sessions of virtual listeners on that cap."""
    import time
    from pathlib import Path

    from eegmusic.replay.simulate import DEFAULT_SNR, _check_arguments
    from eegmusic.replay.virtual_cap import check_cap, simulate_sessions

    _check_arguments(n_songs, n_subjects, args.duration, args.snr, audio_files)
    sfreq = 250.0 if args.sfreq is None else args.sfreq
    sessions = simulate_sessions(
        args.out, montage=args.montage, n_channels=args.channels, sfreq=sfreq, n_songs=n_songs,
        n_subjects=n_subjects, seconds=args.duration, seed=args.seed,
        snr=DEFAULT_SNR if args.snr is None else args.snr, audio_files=audio_files,
        music_start_s=music_start, progress=not args.no_progress,
    )
    first = Path(sessions[0])
    montage, _ = check_cap(args.montage, args.channels, sfreq)   # MNE's name: STANDARD_1020 is colin27_1020
    print(f"wrote {len(sessions)} XDF session{'s' * (len(sessions) != 1)} ({montage}, {sfreq:g} Hz) to "
          f"{args.out} in {time.perf_counter() - start:.1f} s; next: eegmusic train --data "
          f"{shlex.quote(str(first))} --arch convnet --out {shlex.quote(f'runs/{first.stem}')}")
    return 0
