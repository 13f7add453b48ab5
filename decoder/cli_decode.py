"""``eegmusic decode``: decode a live EEG stream into sound, with latency per stage.

Light at import time (argparse and stdlib only); numpy, onnxruntime and pylsl load in
:func:`run_decode`.
"""

from __future__ import annotations

import argparse
import os
import stat

from eegmusic.stream.options import (
    finite_float,
    float_range,
    int_range,
    lsl_name,
    output_dir,
    output_file,
    seconds,
    timeout_seconds,
)

EPILOG = """\
Examples:
  eegmusic decode --stream eegmusic-replay-s21-p1 --model model.onnx
  eegmusic decode --type EEG --model model.onnx --wav decoded.wav --duration 30
  eegmusic decode --stream cap-1 --model model.onnx --no-audio --record runs/today --device cpu
  eegmusic decode --stream eegmusic-replay-s21-p1 --model model.onnx --truth /tmp/sim --duration 20
  eegmusic decode --stream eegmusic-replay-s21-p1 --model model.onnx --truth /tmp/sim --listen both
  eegmusic decode --stream cap-1 --model model.onnx --publish cap1   # then: eegmusic gui --attach cap1
  eegmusic decode --stream cap-1 --model model.onnx --vocoder rtpghi --no-agc
  eegmusic decode --stream cap-1 --model model.onnx --vocoder-lookahead 2   # closer to offline GL, +23 ms
  eegmusic decode --stream cap-1 --source-id amp-7 --model model.onnx --on-lost exit --lost-after 30
  eegmusic decode --stream cap-1 --model model.onnx --json run.json --overwrite   # replace run.json
  eegmusic decode --stream cap-1 --model nmedt.onnx --impute-missing    # a net missing a few electrodes
  eegmusic decode --stream cap-1 --model cond.onnx --subject S02   # train --subject-conditioning's listener
  eegmusic decode --stream cap-1 --model model.onnx --no-realtime   # threads at normal priority

Stop with Ctrl-C: a summary follows (windows, drops, gaps, reconnects, the stream's health: connected,
stalled or lost, with counts and seconds; latency per stage p50/p95/p99, dynamic r with --truth). The
health changes also go to the LSL marker stream '<stream>-mel-status' and decoded frames to the LSL
stream '<stream>-mel' (type MelSpectrogram, 128 channels at 43.07 Hz), both unless --no-lsl-out.

Stream channels are matched to the model's by label (case-insensitive; T3/T7, T4/T8, T5/P7, T6/P8,
E129/Cz name one electrode) and the stream is resampled to the model's rate. With --impute-missing,
model channels the stream lacks are interpolated by spherical splines from the stream's electrode
positions (its LSL desc/channels/channel/location, else a standard montage by label), up to the
number the model tolerates; the summary names them.
"""


LOST_AFTER_S = 10.0
"""Seconds a stream stays lost before ``--on-lost exit`` acts, unless ``--lost-after`` says."""


def _device_latency(text: str) -> str | float:
    """``low``, ``high`` or seconds in (0, 1]."""
    if text in ("low", "high"):
        return text
    try:
        return float_range(0.0, 1.0, low_open=True)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be low, high or seconds in (0, 1] (got {text!r})") from None


SUBJECT_HELP = ("the listener a subject-conditioned model (train --subject-conditioning) decodes as: one of "
                "the participant ids it was trained on (its metadata's input.subjects), or its number as "
                "replay --subject takes it (2 for S02; refused for other models); without it such a model "
                "decodes as its first and warns, e.g. --subject S02")
"""``--subject``'s help, shared by ``decode`` and ``gui``."""


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``decode`` options to ``parser``."""
    parser.epilog = EPILOG
    source = parser.add_argument_group("EEG stream (--stream or --type; with neither, the only stream of "
                                       "type EEG)")
    which = source.add_mutually_exclusive_group()
    # lsl_name: an empty name, type or id would be no filter at all and match any EEG stream
    which.add_argument("--stream", type=lsl_name, metavar="NAME",
                       help="LSL stream name, e.g. eegmusic-replay-s21-p1")
    which.add_argument("--type", type=lsl_name, dest="stream_type", metavar="TYPE",
                       help="any stream of this LSL type (default EEG), e.g. --type EEG")
    source.add_argument("--source-id", type=lsl_name, metavar="ID", help="also require this LSL source_id")
    source.add_argument("--timeout", type=timeout_seconds, default=5.0, metavar="S",
                        help="seconds to wait for the stream (default 5)")
    source.add_argument("--on-lost", choices=("wait", "exit"), default="wait",
                        help="when the stream stays lost for --lost-after seconds: wait for it to come back "
                        "(default; silence plays meanwhile) or exit with status 2 (a replay that says it "
                        "finished ends the run at once, status 0), e.g. --on-lost exit")
    source.add_argument("--lost-after", type=seconds(), default=None, metavar="S",
                        help=f"seconds lost before --on-lost exit acts (default {LOST_AFTER_S:g}; only with "
                        "--on-lost exit)")
    from eegmusic.decoder.frameclock import DEFAULT_HOP_FRAMES
    from eegmusic.decoder.melspec import FRAME_PERIOD_S

    model = parser.add_argument_group("model")
    model.add_argument("--model", required=True, metavar="FILE", help="model.onnx from `eegmusic train`")
    model.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where the model runs (default auto: CUDA when available)")
    model.add_argument("--threads", type=int_range(1, 256), default=1, metavar="N",
                       help="onnxruntime threads per operator (default 1)")
    model.add_argument("--hop", type=finite_float, default=round(DEFAULT_HOP_FRAMES * FRAME_PERIOD_S, 4),
                       metavar="S",  # range: the pipeline
                       help="seconds between windows, a whole number of 23.2-ms mel frames: 0.0232 "
                       "(1 frame, default: the lowest latency), 0.0464 (2; half the model runs), 0.0929 "
                       "(4; less CPU for a slow model), e.g. --hop 0.0464")
    model.add_argument("--smooth", type=int_range(0, 43), default=0, metavar="FRAMES",
                       help="average each frame over overlapping windows; adds FRAMES x 23.2 ms latency")
    model.add_argument("--subject", metavar="ID", help=SUBJECT_HELP)
    model.add_argument("--impute-missing", action="store_true",
                       help="interpolate model channels the stream lacks (spherical splines), up to the "
                       "model's tolerance (max_missing; 10%% of its channels for models from train, 12 "
                       "of NMED-T's 125), e.g. a net with a few bad electrodes")
    out = parser.add_argument_group("output")
    audio = out.add_mutually_exclusive_group()
    audio.add_argument("--audio-device", metavar="X", help="sounddevice output (name or index)")
    audio.add_argument("--wav", type=output_file('.wav'),
                       metavar="FILE", help="write the audio to a WAV file instead (16-bit: the decoder's "
                       "samples as they are, with no limiter; one beyond ±1 is clipped and counted as "
                       "sanitised)")
    audio.add_argument("--no-audio", action="store_true", help="no audio output")
    # a caller writing --wav to a temporary file it renames afterwards (the demo's dashboard) names the
    # real output here, for messages; not for users, so not in --help
    out.add_argument("--wav-shown-as", metavar="FILE", help=argparse.SUPPRESS)
    out.add_argument("--device-latency", type=_device_latency, default=None, metavar="L",
                     help="the sound device's buffer in seconds (default 0.02), or low / high (PortAudio's; "
                     "low is about 12 ms through PulseAudio): smaller is sooner, larger survives a busier "
                     "machine without the device running dry; not with --wav or --no-audio, e.g. "
                     "--device-latency low")
    out.add_argument("--no-realtime", action="store_true",
                     help="leave the decode/output threads and the audio callback at normal priority (by "
                     "default they run real-time where the system allows it, and say once if it does not), "
                     "e.g. --no-realtime on a machine where other work must come first")
    out.add_argument("--record", metavar="DIR", type=output_dir,
                     help="write the decoded frames (mel_db.f32 with frame_index.i64, frame_source.f64, "
                     "mel_db.json) and audio (decoded.wav) into this folder, created if missing, appending "
                     "as they come so they stay readable after a crash; a folder that already holds a "
                     "recording is refused (recordings are never overwritten, even with --overwrite), "
                     "e.g. --record runs/today")
    out.add_argument("--no-lsl-out", action="store_true",
                     help="publish nothing on LSL: neither '<stream>-mel' nor '<stream>-mel-status'")
    from eegmusic.decoder.vocoders import VOCODERS, vocoder_help

    # default None, so that a typed --vocoder is told from the default (a waveform model refuses it)
    out.add_argument("--vocoder", choices=tuple(VOCODERS), default=None, help=vocoder_help())
    out.add_argument("--vocoder-lookahead", type=int_range(0, 16), default=None, metavar="FRAMES",
                     help="frames the vocoder waits for before playing one (default: the vocoder's own, 1 "
                     "for rtisi); each adds 23.2 ms. rtisi 2 comes closer to offline Griffin-Lim on music "
                     "(eegmusic bench vocoder), e.g. --vocoder-lookahead 2")
    out.add_argument("--no-agc", action="store_true",
                     help="no slow automatic gain on the sound a device plays (the peak limiter stays on); "
                     "not with --no-audio or --wav, which play to no device")
    out.add_argument("--publish", metavar="NAME",
                     help="share live snapshots under NAME for `eegmusic gui --attach NAME` (a dashboard in "
                     "its own process; it sets this decode's volume, closing it leaves the decode running)")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing --wav or --json file (refused otherwise)")
    out.add_argument("--duration", type=seconds(), metavar="S", help="stop after S seconds (default: Ctrl-C)")
    out.add_argument("--truth", metavar="DATA",
                     help="the dataset the replay plays, as its --data names it (an NMED-T folder with "
                     "stimuli/songNN.wav, an XDF session or a folder of them, a BIDS root, an EEG file MNE "
                     "reads), or the music folder a virtual listener hears: live dynamic r against the "
                     "true mel")
    out.add_argument("--listen", choices=("decoded", "true", "both"), default="decoded",
                     help="what the sound device plays while replaying a dataset: the decoded sound "
                     "(default), the true stimulus at the same EEG time (needs --truth and the replay's "
                     "markers), or both mixed, e.g. --truth /tmp/sim --listen both")
    out.add_argument("--json", type=output_file('.json'),
                     metavar="FILE", help="also write the summary as JSON")


def _health_lines(summary: dict) -> list[str]:
    """The stream's health state and its stalls and losses, one line (none before a stream)."""
    health = summary.get("stream_health")
    if not health:
        return []
    c = summary["counters"]
    bad = f"  bad markers skipped {c['bad_markers']}" if c.get("bad_markers") else ""
    return [f"  stream {health['state']}  stalls {health['stalls']} ({health['stalled_s']:.1f} s)  "
            f"lost {health['losses']} ({health['lost_s']:.1f} s)  reconnects {health['reconnects']}{bad}"]


def _missing_words(c: dict) -> str:
    """How much the gaps lost, and timestamps that went back (nothing when neither happened)."""
    words = f" ({c['missing_samples']} samples missing)" if c.get("missing_samples") else ""
    if c.get("non_monotonic"):
        words += f"  timestamps back in time {c['non_monotonic']}"
    return words


def _audio_lines(c: dict) -> list[str]:
    """What the output stage cut or added to hold the sound's latency, in ms (nothing when all are 0).

    Each is deliberate (:class:`decoder.output_queue.AdaptivePlayback`): audio arriving beyond the
    cushion is skipped (a backlog, or the cushion settling lower than the start's), silence fills in
    when the device is about to run dry, and a stalled stream's gap is silence in a file. With
    ``--listen true|both``, also the silence played where no marker placed the true stimulus, and on a
    sound device the sound the peak limiter turned down (louder than its ceiling).
    """
    from eegmusic.decoder.melspec import AUDIO_SFREQ

    ms = {key: 1e3 * c.get(key, 0) / AUDIO_SFREQ for key in ("audio_dropped_late", "audio_padded",
                                                                "audio_silence", "listen_true_missing",
                                                                "audio_limited")}
    if not any(ms.values()):
        return []
    # --listen true|both before the first marker, or where the marker's song is not loaded
    missing = (f"  true stimulus not found {ms['listen_true_missing']:.0f} ms (silence instead)"
               if ms["listen_true_missing"] else "")
    limited = f"  limited {ms['audio_limited']:.0f} ms" if ms["audio_limited"] else ""
    return [f"  audio  skipped to hold latency {ms['audio_dropped_late']:.0f} ms  padded "
            f"{ms['audio_padded']:.0f} ms  silence for stalls {ms['audio_silence']:.0f} ms{missing}{limited}"]


def _device_lines(summary: dict) -> list[str]:
    """Where the sound device or the live threads run otherwise than asked (nothing when they do not):
    a device that refused the latency asked for or was reopened at its default, and threads that did not
    get real-time priority (:mod:`decoder.realtime`)."""
    lines = []
    if summary.get("audio_device_note"):
        lines.append(f"  {summary['audio_device_note']}")
    restarts = summary["counters"].get("device_restarts", 0)
    if restarts:
        lines.append(f"  audio device reopened {restarts} time{'s' if restarts > 1 else ''} at its default "
                     "latency after it stopped calling back")
    slow = {role: outcome for role, outcome in (summary.get("scheduling") or {}).items()
            if outcome in ("nice", "normal")}
    if slow:
        from eegmusic.decoder.realtime import NICE_FALLBACK, REFUSED_HINT

        lines.append("  real-time priority refused: " + ", ".join(
            f"{role} thread at {f'nice {NICE_FALLBACK}' if outcome == 'nice' else 'normal priority'}"
            for role, outcome in slow.items()) + f"; {REFUSED_HINT}")
    return lines


def _frames_line(summary: dict) -> str:
    """What the model's output was: mel frames (and those no window covered), or a waveform model's
    audio and the part of it never played where windows were dropped or the stream was out."""
    c = summary["counters"]
    if summary.get("output_kind") == "audio":
        from eegmusic.decoder.melspec import AUDIO_SFREQ

        return (f"  audio not decoded {1e3 * c['samples_skipped'] / AUDIO_SFREQ:.0f} ms  "
                f"flagged windows {c['flagged_windows']}")
    return (f"  frames {c['frames']}  skipped {c['frames_skipped']}  flagged windows {c['flagged_windows']}"
            # faults only: a broken model's frames (played as silence, not scored) or ones beyond the range
            + "".join(f"  {key.replace('_', ' ')} {c[key]}" for key in ("nonfinite_frames", "frames_clipped")
                      if c.get(key)))


def format_summary(summary: dict) -> str:
    """Render :meth:`LivePipeline.summary` for the terminal."""
    from eegmusic.decoder.latency import format_table

    c = summary["counters"]
    lines = [
        f"decoded '{summary['stream']}' for {summary['seconds']:.1f} s with {summary['model']} "
        f"on {summary['provider']}",
        f"  windows {c['windows']} (caught up {c['windows_caught_up']})  drops {c['drops']} "
        f"(decoder {c['drops_decoder']}, stream {c['drops_stream']}, output {c['drops_output_queue']})  "
        f"gaps {c['gaps']}{_missing_words(c)}  reconnects {c['reconnects']}  underruns {c['underruns']}",
        _frames_line(summary),
        *_audio_lines(c),
        *_device_lines(summary),
        *_health_lines(summary),
        "latency per stage (LSL clock; 'estimate' = queued audio + the device's reported latency, not "
        "measured: `eegmusic bench latency` measures EEG sample -> audible sample):",
        format_table(summary["latency_ms"]),
    ]
    if summary.get("playback_cushion_ms") is not None:
        lines.append(f"  audio cushion ahead of the device {summary['playback_cushion_ms']:.1f} ms "
                     f"(follows the measured hop jitter)")
    if "vocoder_latency_ms" in summary:
        # stimulus time already inside audio_to_eeg (decoder/latency.py): said apart, not added on top
        from eegmusic.decoder.latency import STIMULUS_TIME_NOTE

        lines.append("  " + STIMULUS_TIME_NOTE.format(
            vocoder=f" {summary['vocoder_latency_ms']:.1f} ms",
            smoothing=f" {summary.get('smoothing_latency_ms', 0.0):.1f} ms"))
    if summary.get("dynamic_r") is not None or summary.get("dynamic_r_total") is not None:
        recent, total = summary.get("dynamic_r"), summary.get("dynamic_r_total")
        fmt = lambda r: "-" if r is None else f"{r:.3f}"  # noqa: E731
        from eegmusic.decoder.melspec import FRAME_PERIOD_S

        truth = summary["truth"]
        window_s = truth["dynamic_r_window_s"]
        if truth["scored_frames"] * FRAME_PERIOD_S > window_s:
            from eegmusic.decoder.scores import RECENT_SHIFTED_KEY, recent_words

            lines.append(f"dynamic r vs true stimulus mel: last {window_s:.0f} s {fmt(recent)}"
                         f"{recent_words(summary.get(RECENT_SHIFTED_KEY))}, whole run {fmt(total)}")
        else:   # the frames scored so far fit in the live figure's window: it is the whole run's
            lines.append(f"dynamic r vs true stimulus mel: whole run {fmt(total)}")
        # as the demo and the dashboard word them, with why one is n/a
        from eegmusic.decoder.scores import baseline_words, trained_music_words

        lines.append(f"  on the same frames (whole run): {baseline_words(summary)}")
        if note := trained_music_words(summary):
            lines.append(f"  note: {note}")
        by_song = summary.get("scores_by_song") or {}
        if len(by_song) > 1:   # a playlist: each song's frames alone, where its song mean is defined
            lines += [f"  song {song} ({scores['scored_frames']} frames): decoder "
                      f"{fmt(scores['dynamic_r_total'])}, {baseline_words(scores)}"
                      for song, scores in by_song.items()]
    interpolated = summary.get("interpolated_channels") or []
    if interpolated:
        shown = ", ".join(interpolated[:12]) + (f", … ({len(interpolated)} in all)" if len(interpolated) > 12
                                                else "")
        lines.append(f"interpolated {len(interpolated)} missing channels (spherical splines): {shown}")
    bad = summary.get("bad_channels") or {}
    if bad:
        lines.append("channels without a measurement for over 1 s (zeroed, their windows flagged): "
                     + ", ".join(f"{label} {seconds:.1f} s" for label, seconds in bad.items()))
    if summary.get("error"):
        lines.append(f"stopped by error: {summary['error']}")
    return "\n".join(lines)


def refuse_listen_without_audio(listen: str, no_audio: bool, *, has_wav: bool = True) -> None:
    """``--listen`` only picks what the sink plays: with ``--no-audio`` it would pick for nothing (a
    recording keeps the decoded sound whatever it says; a dashboard's A/B switch would switch silence).
    ``decode`` and ``gui`` refuse the pair alike; ``has_wav`` says whether the command has ``--wav`` to
    offer (gui has none)."""
    if no_audio and listen != "decoded":
        from eegmusic.stream.errors import ConfigError

        wav = " (or pass --wav FILE to keep what is heard)" if has_wav else ""
        raise ConfigError(f"--listen {listen} chooses what is played, and --no-audio plays nothing; drop "
                          f"--no-audio{wav}, or drop --listen")


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse, before any stream is opened, a bad --truth and outputs that would lose a file.

    An input is never its own output, even with --overwrite: --wav/--json may not be the model, and
    --wav/--json/--record may not lie inside the --truth dataset (``--wav sim/stimuli/song21.wav``
    would replace a stimulus with decoded audio). --wav/--json may not be one of the files --record
    writes, and --record may not hold a recording already.
    """
    from pathlib import Path

    from eegmusic.decoder.recording import RECORDING_FILES, check_record_dir, recording_file
    from eegmusic.decoder.truth import check_truth_dir, inside_truth
    from eegmusic.stream.atomic import check_writable, is_within, refuse_existing, refuse_same_file
    from eegmusic.stream.errors import OutputError

    if args.truth is not None:
        check_truth_dir(args.truth)
    files = [(flag, path) for flag, path in (("--wav", args.wav), ("--json", args.json)) if path is not None]
    for flag, path in files:
        refuse_same_file(args.model, path, what=flag)
        _refuse_special_file(path, flag)
        _refuse_a_file_of_the_models_run(path, flag, args.model)
    if args.truth is not None:
        for flag, path in files + ([("--record", args.record)] if args.record is not None else []):
            if inside_truth(path, args.truth):
                raise OutputError(f"{flag} {path} would write into the --truth dataset {args.truth}, "
                                  f"an input (refused even with --overwrite); write {flag} outside it")
    if args.record is not None:
        for flag, path in files:
            name = next((name for name in RECORDING_FILES if is_within(path, Path(args.record, name))),
                        None)
            if name is not None:
                raise OutputError(f"{flag} {path} is the file {name} that --record {args.record} writes; "
                                  f"choose another {flag} path")
        check_record_dir(args.record)
        # /proc or a read-only mount pass a permission check; the recording then failed only once the
        # stream had connected
        check_writable(Path(args.record), "--record")
    for flag, path in files:
        recorded = recording_file(path)
        if recorded is not None:
            raise OutputError(f"{flag} {path} is the file {recorded.name} of the recording in "
                              f"{recorded.parent} (recordings are never overwritten, even with --overwrite); "
                              f"choose another {flag} path")
        refuse_existing(path, overwrite=args.overwrite, what=flag)
    if args.wav is not None and args.json is not None and is_within(args.wav, args.json):
        raise OutputError(f"--wav and --json name the same file {args.wav}; give them different paths")


RUN_RECORDS = ("config.json", "metrics.json")
"""What ``train`` writes beside its ``model.onnx`` that a decode's ``--json`` could be named as: the run's
configuration and scores, which ``train --resume``, ``evaluate`` and the demo's cache read."""


def _refuse_a_file_of_the_models_run(path: str, flag: str, model: str) -> None:
    """Refuse ``--json``/``--wav`` naming the training run's own record beside ``--model``, even with
    ``--overwrite`` (as a file of the ``--truth`` dataset is): ``--json runs/x/config.json --overwrite``
    replaced the run's configuration with a decode summary, and the run could no longer be resumed. The
    run is the folder of ``--model`` as given and, where that is a link, of the file it links to."""
    import os
    from pathlib import Path

    from eegmusic.stream.atomic import is_within
    from eegmusic.stream.errors import OutputError

    target = Path(path)
    runs = {Path(model).parent, Path(os.path.realpath(model)).parent}
    records = [run / target.name for run in runs]
    if target.name in RUN_RECORDS and any(record.exists() and is_within(target, record)
                                          for record in records):
        raise OutputError(f"{flag} {path} is the {target.name} of the training run of --model {model} "
                          f"(refused even with --overwrite); write {flag} elsewhere")


SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
"""What an existing output path may be besides a regular file or folder, in words."""


def _refuse_special_file(path: str, flag: str) -> None:
    """Refuse an output path that exists and is not a regular file (links followed).

    ``--wav`` opens its file at start and writes into it: on a named pipe the decode waited for a reader
    forever (its summary, once killed, said 'decoded ... for 0.0 s'); ``--json`` renames its summary
    over the path, replacing the pipe or device. ``--overwrite`` replaces files, not these.
    """
    from eegmusic.stream.errors import OutputError

    try:
        mode = os.stat(path).st_mode
    except OSError:   # absent (or a dangling link): written as a new file
        return
    kind = next((words for test, words in SPECIAL_FILES if test(mode)), None)
    if kind is not None:
        raise OutputError(f"{flag} {path} is {kind}, not a regular file; name a new or regular file for "
                          f"{flag}")


def run_decode(args: argparse.Namespace) -> int:
    """Decode until ``--duration`` has passed, the pipeline fails, or Ctrl-C; print the summary.

    ``--wav``, ``--json`` and ``--record`` are held for the whole run: a second decode (or any eegmusic
    command) writing one of them meanwhile is refused in one line, before its stream or model is opened.
    """
    from eegmusic.stream.atomic import output_locks

    with output_locks([args.wav, args.json, args.record], "decode"):
        return _decode(args)


def _decode(args: argparse.Namespace) -> int:
    """:func:`run_decode` with its outputs held."""
    import logging
    import os
    import signal
    import sys
    import time

    from eegmusic.decoder.audio import DEVICE_LATENCY_S
    from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
    from eegmusic.decoder.vocoders import DEFAULT_VOCODER
    from eegmusic.stream.atomic import write_json
    from eegmusic.stream.errors import ConfigError

    _check_paths(args)  # before any work: a finished decode is never lost to a bad path
    if args.lost_after is not None and args.on_lost != "exit":
        raise ConfigError(f"--lost-after {args.lost_after:g} s times --on-lost exit, not --on-lost "
                          f"{args.on_lost} (the default when not given); pass --on-lost exit, or drop "
                          "--lost-after")
    lost_after = LOST_AFTER_S if args.lost_after is None else args.lost_after
    if args.overwrite and args.wav is None and args.json is None:
        raise ConfigError("--overwrite lets --wav or --json replace a file, and neither is given; drop it")
    refuse_listen_without_audio(args.listen, args.no_audio)
    if args.no_agc and (args.no_audio or args.wav is not None):
        raise ConfigError(f"--no-agc turns off the sound device's levelling, and "
                          f"{'--no-audio' if args.no_audio else '--wav'} plays to no device; drop one")
    if args.device_latency is not None and (args.no_audio or args.wav is not None):
        raise ConfigError(f"--device-latency sizes the sound device's buffer, and "
                          f"{'--no-audio' if args.no_audio else '--wav'} plays to no device; drop one")
    config = PipelineConfig(
        stream_name=args.stream, stream_type=args.stream_type, source_id=args.source_id,
        model_path=args.model, hop_s=args.hop, device=args.device, audio_device=args.audio_device,
        device_latency=DEVICE_LATENCY_S if args.device_latency is None else args.device_latency,
        wav_path=args.wav, wav_shown_as=args.wav_shown_as, no_audio=args.no_audio, record_dir=args.record,
        truth_dir=args.truth,
        lsl_out=not args.no_lsl_out, smooth_frames=args.smooth, threads=args.threads,
        resolve_timeout_s=args.timeout, impute_missing=args.impute_missing,
        vocoder_method=DEFAULT_VOCODER if args.vocoder is None else args.vocoder,
        vocoder_named=args.vocoder is not None,
        vocoder_lookahead=args.vocoder_lookahead, agc=not args.no_agc,
        listen=args.listen, realtime=not args.no_realtime, subject=args.subject,
    )
    if args.publish is not None:
        from eegmusic.decoder.shared_snapshot import check_free

        check_free(args.publish)  # before the outputs open: a refusal must not truncate --wav or --record
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration must be > 0 s (got {args.duration}); leave it out to run until Ctrl-C")

    # Ctrl-C and SIGTERM (stream.cli.main) raise KeyboardInterrupt here; the dashboard's stop and the
    # owner-gone stop are SIGINT
    pipeline = LivePipeline(config)
    publisher = None
    interrupted = False
    try:
        pipeline.start()
        if args.publish is not None:
            from eegmusic.decoder.limiter import LevelledSink
            from eegmusic.decoder.shared_snapshot import SnapshotPublisher, owner_from_environment

            sink = pipeline.sink if isinstance(pipeline.sink, LevelledSink) else None  # volume acts on it
            # a decode that keeps the true stimulus (--listen true|both) takes the dashboard's A/B switch
            ab = pipeline.config if args.listen != "decoded" else None
            shown = {"stream_name": pipeline.stream_label, "model_path": str(args.model),
                     "truth_dir": args.truth, "no_audio": bool(args.no_audio or args.wav),
                     "vocoder": config.vocoder_method, "hop_s": args.hop, "listen": args.listen,
                     "pid": os.getpid()}
            publisher = SnapshotPublisher(
                pipeline, args.publish, gain_sink=sink, listen_config=ab, config=shown,
                snapshot_s=config.snapshot_s, owner_pid=owner_from_environment(),
                on_owner_gone=lambda: os.kill(os.getpid(), signal.SIGINT))  # stop as on Ctrl-C
            publisher.start()  # held first: a stop during the first publish still removes the block
        if logging.getLogger().isEnabledFor(logging.INFO):  # not with -q
            listener = pipeline.runtime.subject
            print(f"decoding '{pipeline.stream_label}' with {pipeline.runtime.info.summary()}"
                  + (f" as listener {listener}" if listener is not None else "")
                  + f" on {pipeline.runtime.provider}; Ctrl-C to stop"
                  + (f"; published as {args.publish!r}" if publisher else ""),
                  file=sys.stderr, flush=True)
        t_end = None if args.duration is None else time.monotonic() + args.duration
        while pipeline.running and (t_end is None or time.monotonic() < t_end):
            time.sleep(0.1)
            health = pipeline.health()
            if args.on_lost == "exit" and health is not None and health.ended:
                # the replay said it finished (replay_end): the run is over, no loss to wait out or report
                logging.getLogger(__name__).info("stream '%s' ended: its replay finished (--on-lost exit)",
                                                 pipeline.stream_label)
                break
            if (args.on_lost == "exit" and health is not None and health.state == "lost"
                    and health.state_s >= lost_after):
                # a stream that came back in another shape was refused: say which, restarting it as
                # it was is the fix
                refused = f" ({health.refused})" if health.refused else ""
                pipeline.error = (f"stream '{pipeline.stream_label}' lost for {health.state_s:.1f} s "
                                  f"(--on-lost exit after {lost_after:g} s){refused}; restart the stream, or "
                                  "pass --on-lost wait to keep waiting for it")
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        pipeline.stop()
        if publisher is not None:
            publisher.stop()  # the final state and summary, then the block goes
        elif args.publish is not None:  # stopped while the block was being made: never leave it behind
            from eegmusic.decoder.shared_snapshot import remove_own_block

            remove_own_block(args.publish)
    summary = pipeline.summary()
    if pipeline.runtime is not None:
        print(format_summary(summary), flush=True)
        if args.json:
            write_json(args.json, summary)
    if summary["error"] and not interrupted:
        print(f"eegmusic decode: error: {summary['error']}", file=sys.stderr)
        return 2
    return 0
