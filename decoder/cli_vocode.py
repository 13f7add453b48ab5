"""``eegmusic vocode``: resynthesise an audio file from its own mel, or a decode recording, frame by frame.

The file is analysed into mel-dB frames exactly as training targets are (:func:`decoder.melspec.mel_db`
on the whole file at 22050 Hz), then each frame goes through :class:`decoder.vocoder.StreamingVocoder`
as a live decoder's output would: the sound of a perfect decoder.

A recording of ``eegmusic decode --record DIR`` (the folder, or its ``mel_db.f32``) is vocoded from the
mel frames the decode recorded (:func:`decoder.recording.read_recorded_mel`), e.g. with a better vocoder
than the live one. Frames the decode skipped (a gap in the EEG stream) become silence of their length,
and the vocoder starts afresh after each gap as the live decode's did, so the result keeps the
recording's timeline: sample 0 is the first recorded frame.
"""

from __future__ import annotations

import argparse
import logging

from eegmusic.stream.options import non_negative_int, output_file, seconds

EPILOG = """\
Examples:
  eegmusic vocode stimuli/song21.wav --out /tmp/song21_vocoded.wav
  eegmusic vocode runs/today --out /tmp/today_rtpghi.wav --vocoder rtpghi   # a `decode --record` folder
  eegmusic vocode stimuli/song21.wav --out /tmp/rtpghi.wav --vocoder rtpghi --lookahead 0 --magnitude pinv
  eegmusic vocode stimuli/song21.wav --out /tmp/song21_vocoded.wav --overwrite   # replace an older result

Prints the mel log-spectral distance of the result against the file's own mel (dB, lower is better;
what a vocoder fed a mel can be judged on), the multi-resolution STFT distance, spectral convergence
and log-spectral distance against the original, and the real-time factor (vocoding time / audio
duration). Audio louder than full scale (a float WAV) is first scaled to peak at 0.99, with a warning.

A decode recording (the --record folder, or its mel_db.f32 with mel_db.json beside it) is vocoded from
its recorded mel frames; frames the decode skipped become silence. There is no original audio to compare
against: it prints the frames, seconds, vocoder, vocoding time and real-time factor.
"""

logger = logging.getLogger(__name__)

MIN_AUDIO_S = 0.1
"""The shortest audio ``vocode`` takes, in seconds (a few mel frames)."""

MAX_TIMELINE_S = 6 * 3600.0
"""Longest recording timeline (frames and the gaps between them, as silence) vocode writes: it is held in
memory, 1.9 GB of float32 samples at 6 h (twice that while the WAV writer cleans a copy); a longer one
more likely means a damaged frame index."""


def add_vocode_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vocode`` options to ``parser``."""
    parser.description = ("Resynthesise an audio file frame by frame from its mel,\nor re-vocode the mel "
                          "frames an `eegmusic decode --record` recording holds.")
    parser.epilog = EPILOG
    parser.add_argument("audio", metavar="INPUT",
                        help="audio file (wav, flac, ogg, mp3; any rate), or a decode recording: the folder "
                             "`eegmusic decode --record DIR` wrote, or its mel_db.f32")
    parser.add_argument("--out", type=output_file('.wav'),
                        required=True, metavar="OUT.wav", help="WAV file to write (22050 Hz mono)")
    from eegmusic.decoder.vocoders import DEFAULT_VOCODER, VOCODERS, vocoder_help

    parser.add_argument("--vocoder", choices=tuple(VOCODERS), default=DEFAULT_VOCODER, help=vocoder_help())
    # decode names it --vocoder-lookahead: both spellings work here, so a value tried here pastes into decode
    parser.add_argument("--lookahead", "--vocoder-lookahead", dest="lookahead", type=non_negative_int,
                        default=None, metavar="FRAMES",
                        help="frames of look-ahead (decode's --vocoder-lookahead): " + ", ".join(
                            f"{spec.name} {spec.lookaheads[0]}..{spec.lookaheads[-1]} (default "
                            f"{spec.default_lookahead})" for spec in VOCODERS.values()))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--magnitude", choices=("nnls", "pinv"), default="nnls",
                        help="mel to linear magnitude: mel-consistent non-negative fit (default) or the "
                             "clipped pseudo-inverse")
    # bounded as the timeline vocode writes: 1e308 s overflowed the frame count (a traceback)
    parser.add_argument("--duration", type=seconds(MAX_TIMELINE_S), default=None, metavar="S",
                        help="only the first S seconds of the file or recording (default: all of it)")
    from eegmusic.stream.cli import renamed_option

    renamed_option(parser, "--seconds", "is now --duration (every length in seconds is --duration)")
    renamed_option(parser, "--method", "is now --vocoder (the same option as in decode and gui)")


def run_vocode(args: argparse.Namespace) -> int:
    """Vocode ``args.audio`` into ``args.out``; print quality and speed. Returns the exit status.

    ``--out`` is held for the whole command: a second ``vocode`` (or any eegmusic command) writing the
    same file meanwhile is refused in one line, where both used to finish and one result was lost.
    """
    from eegmusic.stream.atomic import output_lock

    with output_lock(args.out, "vocode"):
        return _vocode(args)


def _vocode(args: argparse.Namespace) -> int:
    """:func:`run_vocode` with ``--out`` held."""
    from pathlib import Path

    from eegmusic.decoder.recording import FRAMES_SIDECAR
    from eegmusic.decoder.vocoder import StreamingVocoder
    from eegmusic.stream.errors import ConfigError

    # both inputs: the options, checked before the input is read or any output touched
    if args.duration is not None and args.duration < MIN_AUDIO_S:
        raise ConfigError(f"--duration {args.duration:g} s is shorter than the {MIN_AUDIO_S:g} s vocode "
                          f"needs; pass --duration {MIN_AUDIO_S:g} or more, or leave it out (all of it)")
    options = {"method": args.vocoder, "lookahead": args.lookahead, "magnitude": args.magnitude}
    lookahead = StreamingVocoder(**options).lookahead
    given = Path(args.audio)
    if given.is_dir() or given.suffix.lower() == ".f32" or given.name == FRAMES_SIDECAR:
        return run_vocode_recording(args, options, lookahead)
    import time

    from eegmusic.decoder.audio import WavSink
    from eegmusic.decoder.melspec import AUDIO_SFREQ, mel_db
    from eegmusic.decoder.vocoder import (
        log_spectral_distance,
        mel_log_spectral_distance,
        multi_resolution_stft_distance,
        spectral_convergence,
        stft_magnitude,
    )
    from eegmusic.decoder.vocoder import vocode as vocode_frames
    from eegmusic.stream.errors import DataFormatError
    from eegmusic.stream.stimulus import (
        SILENT_PEAK,
        STORED_PEAK,
        check_audio_file,
        is_silent,
        read_audio,
        within_full_scale,
    )

    source = check_audio_file(args.audio)  # before any output is touched
    from eegmusic.stream.atomic import atomic_path, refuse_existing, refuse_same_file

    refuse_same_file(source, args.out, what="--out")
    refuse_existing(args.out, overwrite=args.overwrite, what="--out")
    # the reader replay and live truth use: unreadable, empty, NaN/Inf and far-too-loud files are one line
    # each (one sample of 1e20 made every quality line NaN; 3e29 everywhere wrote a silent WAV)
    audio = read_audio(source, sfreq=AUDIO_SFREQ, seconds=args.duration)
    if audio.size < MIN_AUDIO_S * AUDIO_SFREQ:
        raise DataFormatError(f"audio file {source} lasts {audio.size / AUDIO_SFREQ:.3f} s; vocode needs at "
                              f"least {MIN_AUDIO_S:g} s, pass a longer file")
    if is_silent(audio):   # no spectrum to resynthesise, and none to measure the result against
        cut = args.duration is not None and audio.size >= args.duration * AUDIO_SFREQ - 1
        part = f"the first {args.duration:g} s of " if cut else ""
        raise DataFormatError(f"{part}audio file {source} is silent (no sample reaches {SILENT_PEAK:g} of "
                              "full scale); nothing to vocode: pass a file with sound"
                              f"{' or a longer --duration' if part else ''}")
    audio, peak, factor = within_full_scale(audio)
    if factor != 1.0:   # the vocoded sound would be clipped on writing, while the distances read it whole
        logger.warning("audio file %s peaks at %.3g times full scale, louder than a WAV holds: scaled by "
                       "%.3g (to peak at %g) before vocoding; the distances compare the vocoded sound with "
                       "it so scaled", source, peak, factor, STORED_PEAK)
    mel = mel_db(audio)
    vocode_frames(mel[:, :4], **options)  # load the compiled code
    t0 = time.perf_counter()
    out = vocode_frames(mel, length=audio.size, progress=True, **options)
    elapsed = time.perf_counter() - t0
    # the old file stays until complete; messages name the output, not the temporary file
    with atomic_path(args.out) as part, WavSink(part, shown_as=args.out) as sink:
        sink.write(out)
        clipped = sink.counters()["sanitised"]
    reference = stft_magnitude(audio)
    duration = audio.size / AUDIO_SFREQ
    whole = (f" (all of it: --duration {args.duration:g} asked for more)"
             if args.duration is not None and duration < args.duration - 1 / AUDIO_SFREQ else "")
    print(f"vocoded {source.name}: {duration:.1f} s{whole}, {mel.shape[1]} frames, vocoder {args.vocoder}, "
          f"lookahead {lookahead}, magnitude {args.magnitude}")
    print(f"mel log-spectral distance      {mel_log_spectral_distance(out, mel):7.2f} dB")
    print(f"multi-resolution STFT distance {multi_resolution_stft_distance(out, audio):7.3f}")
    print(f"spectral convergence           {spectral_convergence(out, reference):7.2f} dB")
    print(f"log-spectral distance          {log_spectral_distance(out, reference):7.2f} dB")
    return _speed_and_result(elapsed, duration, mel.shape[1], clipped, args.out, out)


def _speed_and_result(elapsed: float, duration: float, n_frames: int, clipped: int, path, out) -> int:
    """Print the real-time factor, the clipped samples and the file written; the exit status."""
    import numpy as np

    print(f"real-time factor               {elapsed / duration:7.4f} "
          f"({1e3 * elapsed / n_frames:.3f} ms/frame)")
    if clipped:
        print(f"clipped samples                {clipped}")
    print(f"wrote {path}")
    return 0 if np.isfinite(out).all() else 1


def recorded_runs(frame_index) -> list[tuple[int, int, int]]:
    """Split recorded frames into runs of consecutive frame indices and place them on one timeline.

    A forward jump in the index (frames the decode skipped) leaves that many frames of silence; a jump
    back (a restarted source, whose frame clock started afresh) starts the next run right after the last.

    Parameters
    ----------
    frame_index : ndarray, shape (n,), int
        Global frame index of each recorded frame, in recorded order.

    Returns
    -------
    runs : list of (first, stop, at)
        Recorded frames ``first .. stop - 1`` go to timeline frames ``at .. at + stop - first - 1``.

    Examples
    --------
    >>> recorded_runs(np.array([5, 6, 7, 10, 11, 0, 1]))
    [(0, 3, 0), (3, 5, 5), (5, 7, 7)]
    """
    import numpy as np

    frame_index = np.asarray(frame_index, dtype=np.int64)
    breaks = [0, *(np.flatnonzero(np.diff(frame_index) != 1) + 1).tolist(), frame_index.size]
    runs, at = [], 0
    for first, stop in zip(breaks[:-1], breaks[1:], strict=True):
        if runs:
            at += max(int(frame_index[first] - frame_index[first - 1]) - 1, 0)
        runs.append((first, stop, at))
        at += stop - first
    return runs


def run_vocode_recording(args: argparse.Namespace, options: dict, lookahead: int) -> int:
    """Vocode the mel frames of the decode recording ``args.audio`` into ``args.out`` with the vocoder
    ``options`` (checked by :func:`run_vocode`); print what was vocoded and how fast. Returns the exit
    status."""
    import math
    import time
    from pathlib import Path

    import numpy as np
    from eegmusic.decoder.audio import WavSink
    from eegmusic.decoder.melspec import AUDIO_SFREQ, FRAME_PERIOD_S, HOP_LENGTH
    from eegmusic.decoder.recording import FRAMES_SIDECAR, RECORDING_FILES, read_recorded_mel
    from eegmusic.decoder.vocoder import vocode as vocode_frames
    from eegmusic.stream.atomic import atomic_path, is_within, refuse_existing
    from eegmusic.stream.errors import DataFormatError, OutputError
    from eegmusic.stream.progress import progress_bar

    given = Path(args.audio)
    if given.is_dir() and not any((given / name).exists() for name in RECORDING_FILES):
        raise DataFormatError(f"{given}: is a folder, not an audio file nor a decode recording (no "
                              f"{FRAMES_SIDECAR} in it); name an audio file (wav, flac, ogg or mp3), or a "
                              f"folder written by `eegmusic decode --record DIR`")
    folder, frame_index, mel, _ = read_recorded_mel(given)   # before any output is touched
    own = next((name for name in RECORDING_FILES if is_within(args.out, folder / name)), None)
    if own is not None:   # as decode --record refuses its --wav there
        raise OutputError(f"--out {args.out} is the recording's own {own}; recordings are never "
                          f"overwritten (not even with --overwrite); choose another --out path")
    refuse_existing(args.out, overwrite=args.overwrite, what="--out")
    runs = recorded_runs(frame_index)
    n_frames = runs[-1][2] + runs[-1][1] - runs[-1][0]   # the timeline, silence included
    if args.duration is not None:
        n_frames = min(n_frames, math.ceil(args.duration / FRAME_PERIOD_S))
        runs = [(first, min(stop, first + n_frames - at), at) for first, stop, at in runs if at < n_frames]
    if n_frames * FRAME_PERIOD_S > MAX_TIMELINE_S:   # a damaged frame index: not hours of silence in memory
        raise DataFormatError(f"{folder}: its frames span {n_frames * FRAME_PERIOD_S / 3600:.1f} h with the "
                              f"gaps as silence, beyond the {MAX_TIMELINE_S / 3600:g} h vocode writes; the "
                              "frame index may be damaged: pass --duration S to vocode the start")
    vocoded = sum(stop - first for first, stop, _ in runs)
    out = np.zeros(n_frames * HOP_LENGTH, np.float32)
    vocode_frames(mel[:, :4], **options)  # load the compiled code
    t0 = time.perf_counter()
    # one bar: a bar a run would be a log line a gap
    with progress_bar(total=vocoded, desc="vocoding", unit="frame", disable=len(runs) == 1) as bar:
        for first, stop, at in runs:   # the vocoder starts afresh after each gap, as the live decode's did
            out[at * HOP_LENGTH:(at + stop - first) * HOP_LENGTH] = vocode_frames(
                mel[:, first:stop], length=(stop - first) * HOP_LENGTH, progress=len(runs) == 1, **options)
            bar.update(stop - first)
    elapsed = time.perf_counter() - t0
    # the old file stays until complete; messages name the output, not the temporary file
    with atomic_path(args.out) as part, WavSink(part, shown_as=args.out) as sink:
        sink.write(out)
        clipped = sink.counters()["sanitised"]
    duration = out.size / AUDIO_SFREQ
    skipped = n_frames - vocoded
    restarts = sum(1 for (first, _, _) in runs[1:] if frame_index[first] <= frame_index[first - 1])
    gaps = f" ({skipped} skipped by the decode, as silence)" if skipped else ""
    print(f"vocoded recording {folder}: {n_frames} frames{gaps}, {duration:.1f} s from stimulus "
          f"{frame_index[0] * FRAME_PERIOD_S:.1f} s, vocoder {args.vocoder}, lookahead {lookahead}, "
          f"magnitude {args.magnitude}")
    if restarts:
        print(f"source restarts                {restarts:7d} (their frames follow in recorded order)")
    print(f"vocoding time                  {elapsed:7.2f} s")
    return _speed_and_result(elapsed, duration, vocoded, clipped, args.out, out)
