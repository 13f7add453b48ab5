"""What a live decode is asked to do: :class:`PipelineConfig`, built by the CLI and the dashboard.

:meth:`PipelineConfig.validate` refuses contradictory or out-of-range options with one line
(:class:`~eegmusic.stream.errors.ConfigError`) before anything opens; :class:`decoder.pipeline.LivePipeline`
calls it first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from eegmusic.decoder.audio import DEVICE_LATENCY_S
from eegmusic.decoder.frameclock import DEFAULT_HOP_FRAMES, hop_frames
from eegmusic.decoder.melspec import FRAME_PERIOD_S
from eegmusic.stream.errors import ConfigError

__all__ = ["LISTEN_CHOICES", "PipelineConfig", "model_output_kind"]

log = logging.getLogger(__name__)

LISTEN_CHOICES = ("decoded", "true", "both")
"""What ``decode --listen`` can play."""


@dataclass
class PipelineConfig:
    """Everything a live decode needs; the CLI and the GUI build one.

    Parameters
    ----------
    stream_name, stream_type, source_id : str or None
        Which EEG stream to decode (all given properties must match; type ``EEG`` when none).
    model_path : str or Path
        The ONNX model file.
    hop_s : float
        Seconds between successive windows: a whole number of mel frames (23.2 ms each, see
        :func:`decoder.frameclock.hop_frames`); default :data:`~decoder.frameclock.DEFAULT_HOP_FRAMES`
        frames. :meth:`validate` snaps it to the exact multiple.
    device : {"auto", "cpu", "cuda"}
        Where the model runs.
    audio_device : str or int or None
        sounddevice output device (None = system default).
    device_latency : {"low", "high"} or float
        The sound device's suggested latency (PortAudio's; seconds or its low/high defaults;
        default :data:`decoder.audio.DEVICE_LATENCY_S`). A device that refuses it plays at its high
        latency, and says so.
    wav_path : str or Path or None
        Write the decoded audio to this WAV file instead of a sound card.
    wav_shown_as : str or Path or None
        The name messages give ``wav_path`` when it is a temporary file renamed once the run ends (the
        demo's ``--wav``), however it ends, so that what was written stays readable under this name;
        default ``wav_path`` itself.
    no_audio : bool
        Decode without any audio output.
    record_dir : str or Path or None
        Append decoded frames (``mel_db.f32`` + ``frame_index.i64`` + ``mel_db.json``) and audio
        (``decoded.wav``) here; both stay readable after a crash.
    truth_dir : str or Path or None
        NMED-T folder with ``stimuli/songNN.wav``: with the replay's markers, score the decoded frames
        live against the true stimulus mel (dynamic r). Read through
        :class:`stream.stimulus.StimulusFolder` unless the pipeline is given a ``stimuli`` lookup.
    lsl_out : bool
        Publish decoded frames as an LSL stream of type ``MelSpectrogram``.
    smooth_frames : int
        Average each frame over overlapping windows, emitted this many frames later.
    threads : int
        onnxruntime intra-op threads.
    resolve_timeout_s : float
        Seconds to wait for the EEG stream to appear.
    snapshot_s : float
        Seconds of EEG and frames kept for :meth:`LivePipeline.snapshot`.
    vocoder_method : str
        A registered vocoder of :class:`decoder.vocoder.StreamingVocoder` (default ``rtisi``).
    vocoder_lookahead : int or None
        Frames the vocoder waits for before synthesising one (None: the method's default; each
        frame adds 23.2 ms of latency).
    vocoder_named : bool
        The user typed ``vocoder_method`` for this decode (``decode --vocoder``): a waveform model then
        refuses it even when it is the default one (:meth:`refuse_ignored_by`).
    agc : bool
        Slow automatic gain on the sound played through a device (:mod:`decoder.limiter`; the peak
        limiter always runs there, so nothing played reaches 0 dBFS). Files and recordings get the
        decoder's samples as they are.
    prebuffer_s : float
        Audio kept ahead of the device at the start, before the supply's jitter has been measured;
        then the cushion follows the jitter (:class:`decoder.output_queue.AdaptivePlayback`).
    listen : {"decoded", "true", "both"}
        What the sound device plays: the decoded sound, the true stimulus at the same EEG time (by
        the replay's markers and ``truth_dir``'s audio), or both mixed at half level each. Read per
        chunk: a run started with ``true`` or ``both`` (which keeps the stimulus audio) may switch
        among the three while it runs (the dashboard's A/B switch sets it).
    impute_missing : bool
        Fill model channels the stream lacks by spherical-spline interpolation (up to the model's
        ``max_missing``) instead of refusing the stream.
    realtime : bool
        Run the decode and output threads and the audio callback at real-time priority where the
        system allows it (one logged line where it does not), and keep start-up objects out of the
        garbage collector (:mod:`decoder.realtime`). ``decode --no-realtime`` turns both off.
    subject : str or None
        The listener a subject-conditioned model (``train --subject-conditioning``) decodes as: one of
        the ids its metadata lists (``decode --subject S02``). None: its first, with a warning naming
        it; given for a model without a subject input, the start refuses it
        (:func:`decoder.runtime.subject_index`).
    """

    stream_name: str | None = None
    stream_type: str | None = None
    source_id: str | None = None
    model_path: str | Path | None = None
    hop_s: float = DEFAULT_HOP_FRAMES * FRAME_PERIOD_S
    device: str = "auto"
    audio_device: str | int | None = None
    device_latency: str | float = DEVICE_LATENCY_S
    wav_path: str | Path | None = None
    wav_shown_as: str | Path | None = None
    no_audio: bool = False
    record_dir: str | Path | None = None
    truth_dir: str | Path | None = None
    lsl_out: bool = True
    smooth_frames: int = 0
    threads: int = 1
    resolve_timeout_s: float = 5.0
    snapshot_s: float = 10.0
    vocoder_method: str = "rtisi"
    vocoder_lookahead: int | None = None
    vocoder_named: bool = False
    agc: bool = True
    prebuffer_s: float = 0.05
    impute_missing: bool = False
    listen: str = "decoded"
    realtime: bool = True
    subject: str | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` for contradictory or out-of-range options."""
        if self.model_path is None:
            raise ConfigError("no model given; pass --model FILE (a model.onnx from `eegmusic train`)")
        self.hop_s = hop_frames(self.hop_s) * FRAME_PERIOD_S   # whole frames, exactly
        outputs = [flag for flag, on in (("--audio-device", self.audio_device is not None),
                                         ("--wav", self.wav_path is not None), ("--no-audio", self.no_audio))
                   if on]
        if len(outputs) > 1:
            raise ConfigError(f"{' and '.join(outputs)} exclude each other; pass one audio output")
        if self.wav_shown_as is not None and self.wav_path is None:
            raise ConfigError("--wav-shown-as names the file a --wav output becomes, and no --wav is given; "
                              "drop it")
        if self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.vocoder_lookahead is not None:
            from eegmusic.decoder.vocoders import VOCODERS

            spec = VOCODERS.get(self.vocoder_method)
            if spec is not None and self.vocoder_lookahead not in spec.lookaheads:
                raise ConfigError(f"--vocoder-lookahead {self.vocoder_lookahead} is not one {spec.name} "
                                  f"offers; pass one of {', '.join(map(str, spec.lookaheads))}")
        if self.listen not in LISTEN_CHOICES:
            raise ConfigError(f"--listen {self.listen!r} is not one of {', '.join(LISTEN_CHOICES)}; pick one")
        refuse_listen_without_truth(self.listen, self.truth_dir)

    def for_model(self, output_kind: str | None = None) -> PipelineConfig:
        """This configuration without the settings its model would not use, for a caller whose settings
        are standing preferences, not options typed for this model (the dashboard, the demo).

        A dashboard or demo session keeps its vocoder, smoothing and ``truth_dir`` for whichever model
        is started; a waveform model (``audio``) uses none of them (:meth:`refuse_ignored_by`, which
        ``eegmusic decode`` applies to what was typed), so they are left out for it instead of the
        decode refusing a model the user cannot start otherwise. A ``truth_dir`` left out is logged as a
        warning: the user typed it and sees no score. A model that cannot be read is returned as it is:
        starting it says why.

        Parameters
        ----------
        output_kind : {"mel_db", "audio"} or None
            The model's output kind when the caller has read it (:func:`model_output_kind`); read from
            ``model_path`` when None.
        """
        from dataclasses import replace

        from eegmusic.decoder.vocoders import DEFAULT_VOCODER

        kind = output_kind if output_kind is not None else model_output_kind(self.model_path)
        if kind != "audio":
            return self
        keeps_truth = self.listen != "decoded"   # the true stimulus it plays
        if self.truth_dir is not None and not keeps_truth:
            log.warning("model %s outputs audio directly, not mel frames: the truth %s (--truth) is left "
                        "out and nothing is scored (no dynamic r); a waveform model uses a truth only to "
                        "play the stimulus (--listen true or both)", Path(self.model_path).name,
                        self.truth_dir)
        return replace(self, vocoder_method=DEFAULT_VOCODER, vocoder_named=False, vocoder_lookahead=None,
                       smooth_frames=0, truth_dir=self.truth_dir if keeps_truth else None)

    def refuse_ignored_by(self, output_kind: str, model_path: str | Path) -> None:
        """Refuse the options a model of ``output_kind`` would ignore (once the model is read).

        A waveform model (``audio``) has no mel frames: no vocoder runs, the crossfade joins its windows
        (no ``smooth_frames``), and no frame is scored against ``truth_dir``, which then only supplies
        what ``listen`` ``true``/``both`` play. The default vocoder passes unless ``vocoder_named`` (typed:
        a dashboard's decode is given ``--vocoder`` only when its user named one).

        Raises
        ------
        ConfigError
            One line naming every such option.
        """
        from eegmusic.decoder.vocoders import DEFAULT_VOCODER

        if output_kind != "audio":
            return
        named = self.vocoder_named or self.vocoder_method != DEFAULT_VOCODER
        ignored = [flag for flag, given in (
            (f"--vocoder {self.vocoder_method}", named),
            (f"--vocoder-lookahead {self.vocoder_lookahead}", self.vocoder_lookahead is not None),
            (f"--smooth {self.smooth_frames}", self.smooth_frames > 0),
            ("--truth (live dynamic r)", self.truth_dir is not None and self.listen == "decoded")) if given]
        if not ignored:
            return
        listed = ignored[0] if len(ignored) == 1 else f"{', '.join(ignored[:-1])} and {ignored[-1]}"
        hint = (" (a waveform model plays --truth only with --listen true or both)"
                if self.truth_dir is not None and self.listen == "decoded" else "")
        them = "it" if len(ignored) == 1 else "them"
        raise ConfigError(f"model {Path(model_path).name} outputs a waveform (output kind audio), not mel "
                          f"frames for {listed} to act on; drop {them}{hint}")


def model_output_kind(model_path: str | Path | None) -> str | None:
    """The model's output kind (``mel_db`` or ``audio``), or None when the file cannot be read (starting
    it then names the problem in one line)."""
    from eegmusic.decoder.modelfile import read_model_info

    try:
        return read_model_info(model_path).output_kind
    except Exception:  # any unreadable file: the decode's own start says why
        return None


def refuse_listen_without_truth(listen: str, truth) -> None:
    """``--listen`` other than ``decoded`` plays the replay's true stimulus, read from ``--truth``; the
    pipeline's configuration and ``gui`` (before its window opens) refuse it alike without one."""
    if listen != "decoded" and truth is None:
        raise ConfigError(f"--listen {listen} plays the true stimulus of a replay, which needs its "
                          "stimulus audio: pass --truth DATA (the dataset the replay plays, as its --data "
                          "names it)")
