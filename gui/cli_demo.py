"""``eegmusic demo``: the whole system end to end, as a newcomer first sees it.

1. data — a small simulated NMED-T folder (cached), or the user's ``--data`` (real NMED-T works too);
2. model — a decoder trained on every song but the held-out one (cached), or ``--model``: by default
   ``convnet`` and ``linear`` are both trained, and the one that decodes a training song it did not
   train on better, as live decoding plays it, is used (:data:`DEMO_CANDIDATES`);
3. replay — the held-out song of one participant, as a live LSL stream in its own process, exactly
   as ``eegmusic replay`` runs it (so the decoder sees what it would see from an amplifier);
4. decode — the live pipeline of ``eegmusic decode``, scored against the true stimulus;
5. listen and look — a sound device when one exists, else a WAV; the dashboard when a display exists;
6. summary — latency per stage, live dynamic r beside the global-mean and song-mean baselines scored
   on the same frames, files written.

Steps 1–3 run the project's own subcommands in child processes (``python -m eegmusic …``), which
keeps this module on the live side of the import rules (gui imports only decoder and stream) and
shows the user the exact commands to repeat each step by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from pathlib import Path

from eegmusic.stream.options import output_dir, output_file, positive_int, seconds

EPILOG = """\
Examples:
  eegmusic demo                      # simulate, train, replay, decode, play (cached after the first run)
  eegmusic demo --no-gui --duration 20
  eegmusic demo --arch convnet               # train convnet only, whatever it scores on a new song
  eegmusic demo --data ~/nmedt --model runs/cnn/model.onnx   # real NMED-T and your own model
"""

DEMO_SIM = {"songs": 4, "subjects": 6, "seconds": 90, "seed": 0, "snr": 0.03}
"""The simulated dataset: small enough to make and train in about two minutes on 2 cores, at the
realistic evoked share of `eegmusic simulate` (3 % of the EEG variance)."""

DEMO_MODEL = {"split": "block", "epochs": 10, "target_offset_s": "auto"}
"""How the demo trains a decoder (every candidate alike).

Its target may lag the window's end: live, each hop plays the newest frames of the newest window, and
the last ~0.2 s of music before a window's end has not yet evoked a response inside it (P1-N1-P2 peak
at 50-200 ms). ``--target-offset auto`` picks the lag (0-0.3 s) on the validation part of the training
songs (``offline_training.target_lag``); the held-out song played live is never looked at. The lag is
stated as ``audio_lag_s`` in the model."""

DEMO_CANDIDATES = ("convnet", "linear")
"""Decoders the demo trains when no ``--arch`` is given; it plays the one whose ``train
--unseen-song-check`` score is higher: trained without one of the training songs, how well it decodes
that song's newest window frames as live decoding plays them. The demo plays a song the decoder has
never heard, which the ``block`` split's validation part (unseen seconds of heard songs) does not
measure: on the demo's data, ``convnet`` scored 0.290 there at its 0.2-s lag and decoded the held-out
song at 0.017, the ridge 0.289 and 0.261 (``offline_training.unseen_song``). Ties go to the first.
``convnet``: raw EEG, strided 1-D convolutions; ``linear``: closed-form lagged ridge (seconds)."""


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--data", metavar="DIR", help="NMED-T folder (default: a cached simulated one)")
    parser.add_argument("--model", metavar="FILE", help="model.onnx (default: train one, cached)")
    parser.add_argument("--arch", default=None, metavar="NAME",
                        help="architecture to train when --model is absent (default: train "
                        f"{' and '.join(DEMO_CANDIDATES)} and use the one that decodes a training song it "
                        "did not train on better), e.g. --arch convnet")
    parser.add_argument("--duration", type=seconds(), default=30.0, metavar="S",
                        help="seconds of live decoding (default 30)")
    parser.add_argument("--song", type=positive_int, help="song to replay (default: the held-out, last one)")
    parser.add_argument("--subject", type=positive_int,
                        default=1, help="participant to replay, 1-based (default 1)")
    parser.add_argument("--no-gui", action="store_true", help="never open the dashboard")
    parser.add_argument("--wav", type=output_file('.wav'),
                        metavar="FILE", help="write the audio here instead of a sound device")
    parser.add_argument("--out", type=output_dir, metavar="DIR",
                        help="a new folder for this run's results (default: CACHE/demo-output/DATE-TIME)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --wav file and reuse a non-empty --out folder (its "
                        "summary.json replaced; a recording there is kept, the new one goes beside it), "
                        "e.g. --out demo-run --overwrite")
    parser.add_argument("--cache", type=output_dir,
                        metavar="DIR", help="cache folder (default: ~/.cache/eegmusic)")
    from eegmusic.stream.cli import renamed_option

    renamed_option(parser, "--model-name", "is now --arch (an architecture name; --model is a file)")
    renamed_option(parser, "--seconds", "is now --duration (every length in seconds is --duration)")


def _cache_dir(args) -> Path:
    import os

    if args.cache:
        return Path(args.cache).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eegmusic"


def _log_flags() -> list[str]:
    """The demo's own ``-v``/``-q`` for its child commands, read from the levels the CLI set
    (:func:`eegmusic.stream.cli.configure_logging`): a quiet demo printed its replay's INFO lines, and
    reading the root logger's level (WARNING unless -v) made every default demo's children quiet."""
    import logging

    level = logging.getLogger("eegmusic").getEffectiveLevel()
    if level <= logging.DEBUG:
        return ["-vv"] if logging.getLogger().getEffectiveLevel() <= logging.DEBUG else ["-v"]
    return ["-qq"] if level >= logging.ERROR else ["-q"] if level >= logging.WARNING else []


def _eegmusic(*argv: str, quiet: bool = False) -> None:
    """Run an eegmusic subcommand in a child process; raise ConfigError if it fails."""
    import subprocess
    import sys

    from eegmusic.stream.errors import EEGMusicError

    command = [sys.executable, "-m", "eegmusic", *_log_flags(), *argv]
    print("$ eegmusic " + " ".join(argv), flush=True)
    result = subprocess.run(command, stdout=subprocess.DEVNULL if quiet else None)
    if result.returncode != 0:
        raise EEGMusicError(f"step `eegmusic {argv[0]}` failed (exit {result.returncode}); run it by hand "
                            f"to see why: eegmusic {' '.join(argv)}")


def simulation_folder(cache: Path) -> Path:
    """Where the demo caches its simulated dataset (:data:`DEMO_SIM`) under ``cache``."""
    sim = DEMO_SIM
    return cache / (f"sim-{sim['songs']}songs-{sim['subjects']}subj-{sim['seconds']}s-snr{sim['snr']}"
                    f"-seed{sim['seed']}")


@contextlib.contextmanager
def _making(folder: Path, what: str):
    """Hold ``folder`` of the cache while this demo makes it: a second demo on the same cache found a
    first one's simulation (or training) still without its ``.complete``, removed it as a leftover and
    broke both. The lock is on a name beside the folder, as the ``simulate``/``train`` child locks the
    folder itself; the kernel drops it however this process ends."""
    from eegmusic.stream.atomic import output_lock

    with output_lock(folder, f"demo (making {what})", key=folder.with_name(folder.name + ".demo"),
                     refusal=f"{{path}}: {{holder}} is making the cached {what} there; wait for it to "
                             "finish, or pass another --cache DIR"):
        yield


def _ensure_data(args, cache: Path) -> Path:
    if args.data:
        return Path(args.data).expanduser()
    folder = simulation_folder(cache)
    with _making(folder, "simulation"):
        return _simulate(folder)


def _simulate(folder: Path) -> Path:
    """The demo's simulated data in ``folder``: cached, or simulated now (while :func:`_making` holds it)."""
    sim = DEMO_SIM
    if (folder / ".complete").exists():
        print(f"data: cached simulation in {folder}")
        return folder
    if folder.exists():
        import shutil

        # a simulation interrupted earlier (killed before `.complete`): `simulate` refuses the folder
        # that holds it, and every later demo failed; make it again rather than trust it
        shutil.rmtree(folder)
    _eegmusic("simulate", "--out", str(folder), "--n-songs", str(sim["songs"]), "--n-subjects",
              str(sim["subjects"]), "--duration", str(sim["seconds"]), "--seed", str(sim["seed"]),
              "--snr", str(sim["snr"]))
    (folder / ".complete").write_text("ok\n")
    return folder


def _check_arch(arch: str) -> None:
    """Refuse an unknown ``--arch`` before the simulation (minutes on a first run) rather than when
    ``train`` starts. The model registry lives in ``offline_training``, which ``gui`` does not import
    (docs/design.md): it is read in a child process, as ``train`` itself is run (0.1 s, no torch)."""
    import subprocess
    import sys

    from eegmusic.stream.errors import ConfigError

    try:
        names = subprocess.run(
            [sys.executable, "-c", "from eegmusic.offline_training.models.registry import ALL_MODELS; "
             "print(' '.join(ALL_MODELS))"], capture_output=True, text=True, timeout=60).stdout.split()
    except subprocess.TimeoutExpired:   # the train step checks it then
        names = []
    if names and arch not in names:
        raise ConfigError(f"--arch {arch} is not a model eegmusic train knows; pick one of "
                          f"{', '.join(names)} (default: {' and '.join(DEMO_CANDIDATES)}, the better kept)")


def _ensure_model(args, data: Path, songs: list[int], held_out: int, cache: Path) -> Path:
    if args.model:
        return Path(args.model).expanduser()
    train_songs = [s for s in songs if s != held_out]
    if args.arch is not None:
        # the default demo's run of the same recipe holds the same model (its unseen-song check trains a
        # second one beside it): `demo --arch convnet` after `demo` trained it again
        checked = cached_model(run_folder(args.arch, data, train_songs, cache, check=True), data)
        if checked is not None:
            print(f"model: cached {checked}")
            return checked
        return _train_run(args.arch, data, train_songs, cache, check=False)
    runs = {arch: _train_run(arch, data, train_songs, cache, check=True) for arch in DEMO_CANDIDATES}
    arch, line = choose_decoder({arch: _unseen_song(model.parent) for arch, model in runs.items()})
    print(line)
    return runs[arch]


def run_folder(arch: str, data: Path, train_songs: list[int], cache: Path, *, check: bool) -> Path:
    """The cached training run of ``arch`` on ``train_songs`` of ``data``: named by the data folder's
    full path (a hash of it), so that another folder of the same name never shares it."""
    import hashlib

    data = Path(data).expanduser().resolve()
    where = hashlib.sha256(str(data).encode()).hexdigest()[:10]
    return cache / "runs" / (f"{arch}-{data.name}-{where}-{'-'.join(map(str, train_songs))}"
                             f"-offset{DEMO_MODEL['target_offset_s']}{'-unseen-song-check' if check else ''}")


def data_fingerprint(data: Path) -> str:
    """What a cached model was trained on: a hash of the name, size and modification time of every song
    and stimulus file of ``data`` (a folder simulated again in place changes it; nothing is read)."""
    import hashlib

    data = Path(data).expanduser()
    digest = hashlib.sha256()
    for path in sorted([*data.glob("song*.mat"), *data.glob("stimuli/*")]):
        stat = path.stat()
        digest.update(f"{path.relative_to(data)} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cached_model(run: Path, data: Path) -> Path | None:
    """``run``'s model when it finished training on ``data`` as it is now (its ``.complete`` holds the
    data's :func:`data_fingerprint`), else None."""
    model = run / "model.onnx"
    try:
        trained_on = (run / ".complete").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return model if model.exists() and trained_on == data_fingerprint(data) else None


def _train_run(arch: str, data: Path, train_songs: list[int], cache: Path, *, check: bool) -> Path:
    """Train ``arch`` on ``train_songs`` (cached); ``check``: with ``--unseen-song-check``."""
    run = run_folder(arch, data, train_songs, cache, check=check)
    with _making(run, f"{arch} model"):
        return _train(run, arch, data, train_songs, check=check)


def _train(run: Path, arch: str, data: Path, train_songs: list[int], *, check: bool) -> Path:
    """The model of ``run``: cached, or trained now (while :func:`_making` holds it)."""
    model = run / "model.onnx"
    if cached_model(run, data) is not None:
        print(f"model: cached {model}")
        return model
    if run.exists():
        import shutil

        shutil.rmtree(run)  # interrupted earlier, or trained on the data before they changed: train again
    fingerprint = data_fingerprint(data)  # before training: data changed meanwhile are trained on again
    _eegmusic("train", "--data", str(data), "--arch", arch, "--split", DEMO_MODEL["split"],
              "--out", str(run), "--epochs", str(DEMO_MODEL["epochs"]),
              "--target-offset", str(DEMO_MODEL["target_offset_s"]), "--songs", *map(str, train_songs),
              *(["--unseen-song-check"] if check else []))
    (run / ".complete").write_text(fingerprint + "\n")
    return model


def _unseen_song(run: Path) -> dict | None:
    """The ``unseen_song`` record of a run's ``metrics.json`` (None when absent or unreadable)."""
    import json

    try:
        return json.loads((run / "metrics.json").read_text(encoding="utf-8")).get("unseen_song")
    except (OSError, ValueError, AttributeError):
        return None


def choose_decoder(checks: dict) -> tuple[str, str]:
    """The candidate to play, by its unseen-song score, and the line that says why.

    Parameters
    ----------
    checks : dict of str to (dict or None)
        Architecture → its run's ``unseen_song`` record (``song``, ``dynamic_r``, ``reason``), in
        order of preference (ties and unscored runs go to the first).

    Returns
    -------
    arch : str
    line : str
        ``decoder: ...`` with every candidate's score, for the user.
    """
    scored = {arch: check["dynamic_r"] for arch, check in checks.items()
              if check and check.get("dynamic_r") is not None}
    first = next(iter(checks))
    if not scored:
        reasons = "; ".join(f"{arch}: {(check or {}).get('reason') or 'no unseen-song record'}"
                            for arch, check in checks.items())
        return first, f"decoder: {first} (no candidate could be scored on an unseen song: {reasons})"
    best = max(scored, key=lambda arch: (scored[arch], -list(checks).index(arch)))
    song = checks[best]["song"]
    tried = ", ".join(f"{arch} {r:.3f}" for arch, r in scored.items())
    controls = [checks[arch].get("shifted_dynamic_r") for arch in scored]
    beside = ("" if all(c is None for c in controls) else "; shifted-stimulus control " + ", ".join(
        f"{arch} {'n/a' if c is None else f'{c:.3f}'}" for arch, c in zip(scored, controls, strict=True)))
    return best, (f"decoder: {best}, the better at decoding a song it did not train on (song {song}, its "
                  f"newest frames as live decoding plays them; dynamic r {tried}{beside})")


def _song_ids(folder: Path) -> list[int]:
    """Song ids of an NMED-T folder, from its ``songNN_Imputed.mat`` names (checked by the steps)."""
    from eegmusic.stream.errors import DataFormatError

    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataFormatError(f"{folder} {what}; pass an NMED-T folder (`eegmusic simulate --out DIR` "
                              "writes one)")
    ids = sorted(int(m.group(1)) for p in folder.glob("song*_Imputed.mat")
                 if (m := re.fullmatch(r"song(\d+)_Imputed\.mat", p.name)))
    from eegmusic.decoder.truth import DATASET_FILE_SUFFIXES

    recordings = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(DATASET_FILE_SUFFIXES))
    if not ids and recordings:   # "has no songNN_Imputed.mat file; the demo needs 2 or more songs" misled
        raise DataFormatError(f"{folder} holds recordings of another kind ({', '.join(recordings[:3])}"
                              f"{', …' if len(recordings) > 3 else ''}), and the demo replays NMED-T folders "
                              f"only; pass one (`eegmusic simulate --out DIR` writes one), or use these with "
                              f"`eegmusic replay --data FILE`, `train --data FILE` and `decode`")
    if len(ids) < 2:
        files = "no songNN_Imputed.mat file" if not ids else "only 1 songNN_Imputed.mat file"
        raise DataFormatError(f"{folder} has {files}; the demo needs 2 or more songs (one held out); run "
                              f"`eegmusic info {folder}`")
    return ids


def _n_participants(data: Path, song: int) -> int | None:
    """Participants of ``song`` in the NMED-T folder ``data``, from its file's header (no data read);
    None when the file cannot be read that way (the replay then says why). Read in a child process, as
    :func:`_check_arch` reads the registry: ``gui`` does not import ``replay`` (docs/design.md)."""
    import subprocess
    import sys

    code = ("import sys; from eegmusic.replay.nmedt import NMEDTFolder; "
            "from eegmusic.replay.nmedt_files import peek_song_file; "
            "song = int(sys.argv[2]); path = NMEDTFolder(sys.argv[1]).song_path(song); "
            "shape, _ = peek_song_file(path, song); print(shape[2] if len(shape) == 3 else '')")
    try:
        result = subprocess.run([sys.executable, "-c", code, str(data), str(song)], capture_output=True,
                                text=True, timeout=60)
        return int(result.stdout.strip())
    except (subprocess.TimeoutExpired, ValueError):
        return None


def _check_subject(subject: int, data: Path, song: int) -> None:
    """Refuse a participant the replayed song lacks before the training (minutes): the replay child
    died at once, and the demo waited for its stream 30 s before saying none appeared."""
    from eegmusic.stream.errors import ConfigError

    n = _n_participants(data, song)
    if n is not None and not 1 <= subject <= n:
        raise ConfigError(f"--subject {subject}: song {song} of {data} has {n} participants; pass --subject "
                          f"1..{n}")


REPLAY_LOOK_S = 0.6
"""Seconds of one look for the replay child's stream while :func:`_wait_for_replay` waits for it: past
liblsl's first query wave (its ``MulticastMinRTT``, 0.5 s by default). A stream already published answers at
once, but one that appears while a look runs is heard only when that wave ends, so a shorter look misses a
replay that is still starting, every time."""


def _wait_for_replay(replay, name: str, replay_argv: list[str], timeout_s: float) -> float:
    """Wait until the replay child publishes ``name``, at most ``timeout_s``; return the seconds left.

    Raises
    ------
    EEGMusicError
        The replay ended first (its own error line is above): the decode would wait for a stream that
        never comes; or its stream did not appear within ``timeout_s``.
    """
    import time

    from eegmusic.stream.errors import EEGMusicError
    from eegmusic.stream.resolve import find_streams

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if replay.poll() is not None:
            raise EEGMusicError(f"step `eegmusic replay` ended (exit {replay.returncode}) before its stream "
                                f"appeared; run it by hand to see why: eegmusic {' '.join(replay_argv)}")
        # short looks: one that misses a stream still starting also waits out a full listing as long
        # (stream.resolve.resolve_matching), and a 1-s look so held the demo a second past the replay's
        # start; the loop looks again at once
        if find_streams(name=name, timeout=REPLAY_LOOK_S):
            return max(deadline - time.monotonic(), 1.0)
    raise EEGMusicError(f"step `eegmusic replay` published no stream {name!r} within {timeout_s:g} s; run it "
                        f"by hand to see why: eegmusic {' '.join(replay_argv)}")


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _audio_output(args, out: Path) -> tuple[str | None, Path | None]:
    """Return (sound device or None, WAV path or None): a device when one can play, else a WAV."""
    if args.wav:
        return None, Path(args.wav)
    try:
        import sounddevice as sd

        sd.query_devices(kind="output")
        return "default", None
    except Exception:  # no PortAudio, no devices: fall back to a file the user can play later
        return None, out / "decoded.wav"


def new_run_folder(parent: Path, stamp: str) -> Path:
    """Create and return a new folder ``parent/stamp``, or ``stamp-2``, ``stamp-3``... when another run
    made that one: two demos started in the same second shared the folder named to the second, and the
    later one failed on the earlier one's recording."""
    parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        candidate = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()   # exclusive: exactly one run creates it
            return candidate
        except FileExistsError:
            n += 1


def _refuse_wav_in_the_way_of_out(wav: Path, out: Path) -> None:
    """Refuse a ``--wav`` that is the ``--out`` folder: the demo replayed, trained and decoded, then failed
    writing the sound ("cannot write same.wav (Is a directory)"), and the sound and the summary were lost.
    (A ``--wav`` must end in ``.wav``, so it is never the ``summary.json`` in ``--out``.)"""
    from eegmusic.stream.atomic import is_within
    from eegmusic.stream.errors import OutputError

    if is_within(wav, out) and is_within(out, wav):
        # beside --out, not in it: a --wav whose folder does not exist yet is refused
        raise OutputError(f"--wav {wav} is the --out folder itself; pass another --wav path (e.g. "
                          f"{out.parent / 'decoded.wav'})")


def _new_folder(folder: Path) -> Path:
    """``folder``, or ``folder-2``, ``folder-3``... when it already holds files (recordings are kept)."""
    candidate, n = folder, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = folder.with_name(f"{folder.name}-{n}")
    return candidate


def run_demo(args) -> int:
    """Run ``eegmusic demo``.

    SIGTERM stops it as Ctrl-C does (``stream.cli.main``), exit 130: ``subprocess.run`` stops the step
    in progress and the replay child is terminated on the way out (killed outright, the demo left its
    replay publishing until the song ended). Stopped while decoding, what was decoded is kept: the WAV
    so far is moved into place, and the summary printed and written as far as it went, before exit 130.
    While the dashboard shows the decode, both signals close its window instead
    (:func:`gui.app.closed_by_signals`) and the demo ends with its summary.
    """
    from eegmusic.stream.atomic import output_locks

    # held for the whole demo: a second demo writing the same --wav or --out is refused in one line
    with output_locks([args.wav, args.out], "demo"):
        return _demo(args)


def _demo(args) -> int:
    """:func:`run_demo` with its --wav and --out held."""
    import subprocess
    import sys
    import time
    import uuid
    from contextlib import nullcontext

    from eegmusic.decoder.cli_decode import format_summary
    from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
    from eegmusic.stream.atomic import atomic_path, is_within, refuse_existing, refuse_same_file, write_json
    from eegmusic.stream.errors import ConfigError, OutputError

    if args.duration <= 0:
        raise ConfigError(f"--duration must be > 0, got {args.duration}")
    if args.model and args.arch:  # --arch was dropped: the model file is played as it is
        raise ConfigError("--arch names what to train, and --model plays a trained model; drop one")
    if args.model:  # before the replay starts and the output folder is made
        from eegmusic.decoder.modelfile import check_live_contract, read_model_info

        if not Path(args.model).expanduser().is_file():
            raise ConfigError(f"--model {args.model} is not a file; pass a model.onnx from eegmusic train, "
                              "or leave --model out to train one")
        check_live_contract(read_model_info(Path(args.model).expanduser()))
    if args.arch:
        _check_arch(args.arch)
    # before any work (simulation, training): an input is never an output, even with --overwrite (as
    # decode refuses it), and an earlier demo's results are never replaced unasked
    outputs = [(flag, path) for flag, path in (("--wav", args.wav), ("--out", args.out)) if path is not None]
    if args.model and args.wav is not None:
        refuse_same_file(Path(args.model).expanduser(), Path(args.wav).expanduser(), what="--wav")
    for flag, path in outputs:
        if args.data and is_within(path, args.data):
            raise OutputError(f"{flag} {path} would write into the --data dataset folder {args.data}, an "
                              f"input (refused even with --overwrite); write {flag} outside it")
    if args.wav is not None and args.out is not None:
        _refuse_wav_in_the_way_of_out(Path(args.wav).expanduser(), Path(args.out).expanduser())
    for flag, path in outputs:  # --overwrite replaces a --wav file, but reuses --out (as its help says)
        does = "to reuse it (its recordings are kept)" if flag == "--out" else "to replace it"
        refuse_existing(Path(path).expanduser(), overwrite=args.overwrite, what=flag, does=does)
    if args.data is None and args.subject > DEMO_SIM["subjects"]:   # before minutes of simulation
        raise ConfigError(f"--subject {args.subject}: the demo's simulated data have {DEMO_SIM['subjects']} "
                          f"participants; pass --subject 1..{DEMO_SIM['subjects']}")
    from eegmusic.stream.atomic import check_writable

    cache = _cache_dir(args)
    check_writable(cache, "--cache")   # /proc, a read-only mount: a traceback at the first mkdir
    if args.out:
        check_writable(Path(args.out).expanduser(), "--out")
    cache.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()

    data = _ensure_data(args, cache)
    songs = _song_ids(data)
    held_out = args.song if args.song is not None else songs[-1]
    if held_out not in songs:
        raise ConfigError(f"song {held_out} is not in {data} (has {', '.join(map(str, songs))}); pass one")
    _check_subject(args.subject, data, held_out)
    model = _ensure_model(args, data, songs, held_out, cache)

    # every run gets its own folder: recordings are never overwritten
    if args.out:
        out = Path(args.out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
    else:
        out = new_run_folder(cache / "demo-output", time.strftime("%Y%m%d-%H%M%S"))
    record = _new_folder(out / "recording")
    device, wav = _audio_output(args, out)
    name = f"eegmusic-demo-{uuid.uuid4().hex[:6]}"

    replay_argv = ["replay", "--data", str(data), "--song", str(held_out), "--subject", str(args.subject),
                   "--name", name]
    print("$ eegmusic " + " ".join(replay_argv) + "   (in the background)", flush=True)
    replay = subprocess.Popen([sys.executable, "-m", "eegmusic", *_log_flags(), *replay_argv])
    try:
        # a replay that fails (an unreadable song file) ends the demo with its failure, not 30 s later
        resolve_s = _wait_for_replay(replay, name, replay_argv, timeout_s=30.0)
        subject = _listener_for(model, name)
        interrupted = False
        # the WAV is written beside its path and renamed over it once the decode has closed it (a Ctrl-C
        # while decoding included: _decode_headless ends the block cleanly, keeping what was decoded)
        with atomic_path(wav) if wav is not None else nullcontext() as wav_part:
            config = PipelineConfig(stream_name=name, model_path=model, audio_device=device,
                                    wav_path=wav_part, wav_shown_as=wav, record_dir=record, truth_dir=data,
                                    resolve_timeout_s=resolve_s,
                                    subject=subject).for_model()  # a waveform model: no truth
            if not args.no_gui and _has_display():
                summary = _decode_with_dashboard(config, args.duration)
            else:
                summary, interrupted = _decode_headless(LivePipeline(config), args.duration)
    finally:
        replay.terminate()
        try:
            replay.wait(timeout=10)
        except subprocess.TimeoutExpired:
            replay.kill()

    print()
    print(format_summary(summary))   # its score lines hold the baselines of the same frames
    print(f"files: model {model}\n       recording {record} (mel_db.f32 + decoded.wav)")
    if wav is not None:
        print(f"       audio {wav}  (play it: any audio player)")
    else:
        print(f"       audio played on sound device '{device}'")
    print(f"       summary {out / 'summary.json'}")
    # after the summary is shown: a full disk refuses the file in one line, not the summary with it
    write_json(out / "summary.json", summary)
    if interrupted:   # its outputs are above: main says "interrupted", exit 130
        raise KeyboardInterrupt
    print(f"demo finished in {time.monotonic() - t_start:.0f} s")
    if summary.get("error"):   # as decode does: the summary and files above stay, the failure is one line
        print(f"eegmusic demo: error: {summary['error']}", file=sys.stderr)
        return 2
    return 0


def _decode_headless(pipeline, seconds: float) -> tuple[dict, bool]:
    """Decode for ``seconds`` (or until the pipeline stops); return its summary and whether Ctrl-C or
    SIGTERM ended it first. The interrupt is caught here, so that the caller's block ends cleanly and
    keeps the WAV decoded so far (it went with the interrupt); the caller ends interrupted after its
    summary."""
    import time

    interrupted = False
    with pipeline:
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and pipeline.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            interrupted = True
        return pipeline.summary(), interrupted


def _listener_for(model: Path, name: str) -> str | None:
    """The participant id a subject-conditioned ``model`` decodes the replay ``name`` as: the one the
    replay plays (its stream's ``desc/dataset/subject``), when the model was trained on it; else None
    (the decode then warns that it decodes as the model's first listener). None for other models."""
    from eegmusic.decoder.modelfile import read_model_info

    info = read_model_info(model)
    if not info.subject_input:
        return None
    listener = _replayed_participant(name)
    return listener if listener in {str(s) for s in info.subjects} else None


def _replayed_participant(name: str) -> str | None:
    """The participant id the replay ``name`` publishes in its description, or None when unsaid."""
    import pylsl
    from eegmusic.stream.resolve import find_streams
    from pylsl.util import LostError
    from pylsl.util import TimeoutError as LSLTimeoutError

    found = find_streams(name=name, timeout=2.0)
    if not found:
        return None
    inlet = pylsl.StreamInlet(found[0])
    try:
        return inlet.info(timeout=2.0).desc().child("dataset").child_value("subject") or None
    except (LostError, LSLTimeoutError):   # the decode's own connect says why
        return None
    finally:
        inlet.close_stream()


def _decode_with_dashboard(config, seconds: float) -> dict:
    """Decode in an ``eegmusic decode --publish`` process the dashboard shows (and stops at the end):
    drawing never delays decoding, and the window's volume and mute act on the decode's output."""
    from eegmusic.gui.attach import decode_command, spawn_decode
    from eegmusic.gui.run import run_dashboard

    print("$ " + " ".join(decode_command(config, "NAME")[2:]).replace("NAME", "<dashboard>", 1)
          + "   (its own process, shown by the dashboard)", flush=True)
    return run_dashboard(spawn_decode(config), seconds=seconds)

