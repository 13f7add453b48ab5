"""``eegmusic vocode``: resynthesise an audio file from its own mel, frame by frame.

The file is analysed into mel-dB frames exactly as training targets are (:func:`decoder.melspec.mel_db`
on the whole file at 22050 Hz), then each frame goes through :class:`decoder.vocoder.StreamingVocoder`
as a live decoder's output would: the sound of a perfect decoder.
"""

from __future__ import annotations

import argparse

from eegmusic.stream.options import non_negative_int, output_file, positive_float

EPILOG = """\
Example:
  eegmusic vocode stimuli/song21.wav --out /tmp/song21_vocoded.wav
  eegmusic vocode stimuli/song21.wav --out /tmp/rtpghi.wav --vocoder rtpghi --lookahead 0 --magnitude pinv
  eegmusic vocode stimuli/song21.wav --out /tmp/song21_vocoded.wav --overwrite   # replace an older result

Prints the mel log-spectral distance of the result against the file's own mel (dB, lower is better;
what a vocoder fed a mel can be judged on), the multi-resolution STFT distance, spectral convergence
and log-spectral distance against the original, and the real-time factor (vocoding time / audio
duration).
"""


MIN_AUDIO_S = 0.1
"""The shortest audio ``vocode`` takes, in seconds (a few mel frames)."""


def add_vocode_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vocode`` options to ``parser``."""
    parser.epilog = EPILOG
    parser.add_argument("audio", metavar="IN_AUDIO", help="audio file (wav, flac, ogg, mp3; any rate)")
    parser.add_argument("--out", type=output_file('.wav'),
                        required=True, metavar="OUT.wav", help="WAV file to write (22050 Hz mono)")
    from eegmusic.decoder.vocoders import DEFAULT_VOCODER, VOCODERS, vocoder_help

    parser.add_argument("--vocoder", choices=tuple(VOCODERS), default=DEFAULT_VOCODER, help=vocoder_help())
    parser.add_argument("--lookahead", type=non_negative_int, default=None, metavar="FRAMES",
                        help="frames of look-ahead: " + ", ".join(
                            f"{spec.name} {spec.lookaheads[0]}..{spec.lookaheads[-1]} (default "
                            f"{spec.default_lookahead})" for spec in VOCODERS.values()))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--magnitude", choices=("nnls", "pinv"), default="nnls",
                        help="mel to linear magnitude: mel-consistent non-negative fit (default) or the "
                             "clipped pseudo-inverse")
    parser.add_argument("--duration", type=positive_float, default=None, metavar="S",
                        help="only the first S seconds of the file (default: all of it)")
    from eegmusic.stream.cli import renamed_option

    renamed_option(parser, "--seconds", "is now --duration (every length in seconds is --duration)")
    renamed_option(parser, "--method", "is now --vocoder (the same option as in decode and gui)")


def run_vocode(args: argparse.Namespace) -> int:
    """Vocode ``args.audio`` into ``args.out``; print quality and speed. Returns the exit status."""
    import time

    import numpy as np
    from eegmusic.decoder.audio import WavSink
    from eegmusic.decoder.melspec import AUDIO_SFREQ, mel_db
    from eegmusic.decoder.vocoder import (
        StreamingVocoder,
        log_spectral_distance,
        mel_log_spectral_distance,
        multi_resolution_stft_distance,
        spectral_convergence,
        stft_magnitude,
    )
    from eegmusic.decoder.vocoder import vocode as vocode_frames
    from eegmusic.stream.errors import ConfigError, DataFormatError
    from eegmusic.stream.stimulus import check_audio_file, read_audio

    source = check_audio_file(args.audio)  # before any output is touched
    from eegmusic.stream.atomic import atomic_path, refuse_existing, refuse_same_file

    refuse_same_file(source, args.out, what="--out")
    refuse_existing(args.out, overwrite=args.overwrite, what="--out")
    if args.duration is not None and args.duration < MIN_AUDIO_S:
        raise ConfigError(f"--duration {args.duration:g} s is shorter than the {MIN_AUDIO_S:g} s vocode "
                          f"needs; pass --duration {MIN_AUDIO_S:g} or more, or leave it out (the whole file)")
    options = {"method": args.vocoder, "lookahead": args.lookahead, "magnitude": args.magnitude}
    lookahead = StreamingVocoder(**options).lookahead  # option errors before the slow part
    # the reader replay and live truth use: unreadable, empty and NaN/Inf files are one line each
    audio = read_audio(source, sfreq=AUDIO_SFREQ, seconds=args.duration)
    if audio.size < MIN_AUDIO_S * AUDIO_SFREQ:
        raise DataFormatError(f"audio file {source} lasts {audio.size / AUDIO_SFREQ:.3f} s; vocode needs at "
                              f"least {MIN_AUDIO_S:g} s, pass a longer file")
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
    print(f"vocoded {source.name}: {duration:.1f} s, {mel.shape[1]} frames, vocoder {args.vocoder}, "
          f"lookahead {lookahead}, magnitude {args.magnitude}")
    print(f"mel log-spectral distance      {mel_log_spectral_distance(out, mel):7.2f} dB")
    print(f"multi-resolution STFT distance {multi_resolution_stft_distance(out, audio):7.3f}")
    print(f"spectral convergence           {spectral_convergence(out, reference):7.2f} dB")
    print(f"log-spectral distance          {log_spectral_distance(out, reference):7.2f} dB")
    print(f"real-time factor               {elapsed / duration:7.4f} "
          f"({1e3 * elapsed / mel.shape[1]:.3f} ms/frame)")
    if clipped:
        print(f"clipped samples                {clipped}")
    print(f"wrote {args.out}")
    return 0 if np.isfinite(out).all() else 1
