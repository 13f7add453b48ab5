"""The output thread's sound: frames to samples, what ``--listen`` plays, and the cushion ahead of the sink.

:class:`SoundOutput` takes each emission the decode thread queued and

1. turns a mel model's new frames into samples through the streaming vocoder (resetting it where
   frames were skipped), or passes a waveform model's samples on;
2. swaps in or mixes the true stimulus at the same EEG time for ``--listen true|both``;
3. writes the chunk to the audio sink behind the cushion the measured supply jitter asks for
   (:class:`decoder.output_queue.AdaptivePlayback`), never blocking: short of cushion, silence
   first; beyond it, the chunk's start is skipped; both counted;
4. keeps a file sink in real time while the EEG stream is stalled (silence written, counted).

It stamps ``buffered`` on the window's stamps (LSL clock) and the estimates ``queued`` and ``dac``
of the chunk's first sample (see :mod:`decoder.latency`). :class:`decoder.pipeline.LivePipeline`
owns the threads; this owns what happens to sound on the output thread.
"""

from __future__ import annotations

import collections
import time

import numpy as np
from eegmusic.decoder.audio import AudioSink, fall_from, rise_from
from eegmusic.decoder.melspec import AUDIO_SFREQ, FRAME_PERIOD_S, HOP_LENGTH
from eegmusic.decoder.output_queue import AdaptivePlayback
from eegmusic.decoder.pipeline_config import PipelineConfig

PLAYBACK_MARGIN_S = 0.016
"""Least audio kept queued ahead of the device when the supply is steady (seconds).

Measured through PulseAudio (1-frame hop, 128-sample device blocks, quiet machine): with 8 ms the
level at each write sat at 255 samples (11.6 ms), and a write 1-2 ms later than usual met a device
that had already pulled its next block: about one underrun every 30 s although no chunk was late by
more than a few ms. The device takes its audio in blocks at its own phase, so the margin has to hold
a couple of them beyond the jitter the quantile covers."""

MAX_SILENCE_GAP_S = 600.0
"""Most silence written to a file sink at once during a stall (a suspended machine is not hours)."""


def open_sink(config: PipelineConfig) -> AudioSink:
    """The sink a configuration asks for: nothing, a WAV file, or the sound device, levelled.

    What a listener hears through a device is levelled: slow automatic gain (``config.agc``), a
    peak limiter, then the volume (:mod:`decoder.limiter`).
    """
    from eegmusic.decoder import audio

    if config.no_audio:
        return audio.NullSink()
    if config.wav_path is not None:
        # a decode's temporary WAV is renamed into place however the run ends (the demo): it is kept
        return audio.WavSink(config.wav_path, shown_as=config.wav_shown_as, part_kept=True)
    from eegmusic.decoder.limiter import LevelledSink, LevelSettings, OutputLevel

    level = OutputLevel(AUDIO_SFREQ, LevelSettings(agc=config.agc))   # compiled before the device starts
    return LevelledSink(audio.SoundDeviceSink(device=config.audio_device, latency=config.device_latency,
                                              realtime=config.realtime), level)


class SoundOutput:
    """Vocode, choose what is heard, and write it to the sink in time (the output thread's audio).

    Parameters
    ----------
    config : PipelineConfig
        Read per chunk for ``listen`` (the dashboard's A/B switch changes it while running).
    sink : AudioSink
        Where the sound goes.
    vocoder : StreamingVocoder or None
        The phase reconstruction of a mel model; None for a waveform model.
    truth : LiveTruth or None
        The stimulus lookup ``--listen true|both`` plays from.
    counters : collections.Counter
        The pipeline's counters; this adds ``frames``, ``frames_skipped``, ``vocoder_resets``,
        ``audio_padded``, ``audio_dropped_late``, ``audio_silence``, ``audio_silence_gaps`` and
        ``listen_true_missing``.
    """

    def __init__(self, config: PipelineConfig, sink: AudioSink, *, vocoder=None, truth=None,
                 counters: collections.Counter | None = None) -> None:
        self.config = config
        self.sink = sink
        self.vocoder = vocoder
        self.truth = truth
        self.counters = counters if counters is not None else collections.Counter()
        self.playback = AdaptivePlayback(rate=AUDIO_SFREQ, initial_s=config.prebuffer_s,
                                         margin_s=PLAYBACK_MARGIN_S)
        self.last_k: int | None = None              # the frame the next emission follows (no reset)
        self._next_sample: int | None = None        # the waveform sample the next chunk follows
        self._listen_next: int | None = None        # stimulus sample continuing the last true chunk
        self._listen_played: str | None = None      # the --listen mode of the last chunk
        self._listen_end: float | None = None       # LSL time just past the last chunk listened to
        self._audio_wall_end: float | None = None   # monotonic time a file sink's audio would end
        self._silent = False                        # a file sink is being given silence (a stall)
        self._seam = False                          # the next audio rises from the last sample written
        self._last_written = 0.0                    # the last sample the sink was given

    def vocode(self, emission) -> tuple[np.ndarray, np.ndarray, int]:
        """Vocode an emission's frames.

        Parameters
        ----------
        emission : decoder.frameclock.FrameEmission

        Returns
        -------
        audio : ndarray, shape (512 * n_new,), float32
        frames : ndarray, shape (n_mels, n_new)
        k0 : int
            Global index of the first frame.
        """
        frames = emission.frames
        if emission.skipped or (self.last_k is not None and emission.k0 != self.last_k + 1):
            self.counters["frames_skipped"] += emission.skipped
            self.counters["vocoder_resets"] += 1
            self.vocoder.reset()
            self._seam = True   # the vocoder starts again from silence: the sound before falls to it
            self._listen_end = None   # its tail (at a stop) follows the frames after the gap, not before
        # an empty emission still moves past its skipped frames: the frames from k0 on continue it
        # (left behind, the next emission reset the vocoder, and counted, once more for the same gap)
        self.last_k = emission.k0 + frames.shape[1] - 1
        if frames.shape[1] == 0:
            return np.zeros(0, np.float32), frames, emission.k0
        audio = np.empty(frames.shape[1] * HOP_LENGTH, np.float32)
        for i in range(frames.shape[1]):
            audio[i * HOP_LENGTH:(i + 1) * HOP_LENGTH] = self.vocoder.process(frames[:, i])
        self.counters["frames"] += frames.shape[1]
        return audio, frames, emission.k0

    def follows(self, first: int, n_samples: int) -> None:
        """Take note of a waveform model's chunk: ``n_samples`` from output sample ``first`` on. One that
        does not start where the last ended (samples the clock skipped, a restart) rises from the last
        sample written, as sound after a skip does."""
        self._seam |= self._next_sample is not None and first != self._next_sample
        self._next_sample = first + n_samples

    def audio_start(self, t0: float, k0: int) -> float:
        """LSL time of the stimulus sample the vocoder's chunk for frames from ``k0`` starts with.

        The vocoder's output lags its input frames by its look-ahead and overlap-add
        (``latency_frames``); ``t0`` is the LSL time of EEG-stream time 0.
        """
        return t0 + (k0 - self.vocoder.latency_frames) * FRAME_PERIOD_S

    def listened(self, decoded: np.ndarray, t_audio: float) -> np.ndarray:
        """What ``--listen`` plays for a decoded chunk whose first sample sits at LSL time ``t_audio``.

        Where it does not continue what was played before (the dashboard's A/B switch, the stimulus
        found or lost, a seek in it), the sink's next write rises from the last sample written (as after
        a skip): the switch was a step of up to the waveform's height, a click at every press.
        """
        mode = self.config.listen           # read once: the dashboard's switch may change it meanwhile
        self._listen_end = t_audio + len(decoded) / AUDIO_SFREQ     # where the vocoder's tail will sit
        if mode != self._listen_played:
            self._seam |= self._listen_played is not None
            self._listen_played = mode
        if mode == "decoded":
            self._listen_next = None        # not followed meanwhile: placed afresh when next played
            return decoded
        # within a frame of where the last chunk ended, the stimulus simply continues (no seams)
        follow = self._listen_next
        found = self.truth.stimulus_audio(t_audio, len(decoded), follow_from=follow, tolerance=HOP_LENGTH)
        if found is None:                   # no marker yet, or the song's audio still loading
            self.counters["listen_true_missing"] += len(decoded)
            true, self._listen_next = np.zeros(len(decoded), np.float32), None
            self._seam |= follow is not None
        else:
            true, self._listen_next = found
            self._seam |= self._listen_next - len(decoded) != follow
        return true if mode == "true" else 0.5 * (decoded + true)

    def silence_while_stalled(self, state: str | None) -> None:
        """Write silence to a file sink, in real time, while the EEG stream is stalled or lost.

        A sound device plays silence by itself while its queue runs dry; a file sink (``--wav``) takes
        samples back to back, so without this a stall would vanish from the file (the sound after it
        glued to the sound before). Only a stream the inlet declares stalled or lost (no samples for
        ``max(0.5 s, 5 periods)``) gets silence: a slow decoder on a busy machine gets none.

        Parameters
        ----------
        state : str or None
            The EEG inlet's health state (``"stalled"``, ``"lost"``, ...).
        """
        if self.sink.plays_live or self._audio_wall_end is None:
            return
        if state not in ("stalled", "lost"):
            self._silent = False
            return
        behind_s = min(time.monotonic() - self._audio_wall_end, MAX_SILENCE_GAP_S)
        pad = int(behind_s * AUDIO_SFREQ)
        if pad <= 0:
            return
        # the sound falls to it from the last sample written, as a sound device's does (no click in the
        # file); each small piece continues from where the last ended, so a second stall, or one
        # written in pieces shorter than the fall, is continuous too
        self._write_silence(pad, self._last_written)
        self._audio_wall_end += pad / AUDIO_SFREQ
        self.counters["audio_silence"] += pad
        if not self._silent:
            self.counters["audio_silence_gaps"] += 1
            self._silent = True

    def _write_silence(self, n: int, level: float) -> None:
        """Write ``n`` samples of silence that fall to it from ``level`` (the sound just before it)."""
        silence = np.empty(n, np.float32)
        fall_from(silence, level)
        self._last_written = float(silence[-1])
        self._seam = True
        self.sink.write(silence, block=False)

    def _after_written(self, samples: np.ndarray, *, copy: bool) -> np.ndarray:
        """``samples`` (non-empty) as the next write: rising from the last sample written (in a copy when
        ``copy``, else in place) where they do not continue it: after silence this stage wrote, from
        where its fall had got to; after a skip, from the sound before the skip."""
        if self._seam:
            samples = samples.copy() if copy else samples
            rise_from(samples, self._last_written)
            self._seam = False
        self._last_written = float(samples[-1])
        return samples

    def play(self, samples: np.ndarray, stamps: dict) -> None:
        """Hand a chunk (shape (n_samples,)) to the sink behind the cushion the measured jitter asks for."""
        from pylsl import local_clock

        # Short of cushion: silence first; beyond it (a stalled device, jitter that stopped): skip the
        # chunk's start, counted. Never block the output thread: what does not fit is dropped, counted.
        pad = trim = 0
        if self.sink.plays_live:       # a file or nothing takes every sample at once: no cushion
            pad, trim = self.playback.plan(len(samples), self.sink.queued_s, local_clock())
        if pad:
            # the cushion's silence falls from the sound still queued ahead of it (after a dry ring the
            # device has fallen already: zeros), and the chunk behind it rises from it below; the
            # device's own rise would ramp only the silence's first samples
            self._write_silence(pad, self._last_written if self.sink.queued_s > 0 else 0.0)
            self.counters["audio_padded"] += pad
        if trim:
            # the sound jumps ahead (a stalled device's backlog, as an idle null sink's start): crossfaded
            # from the last sample written, not a click
            self.counters["audio_dropped_late"] += trim
            samples = samples[trim:]
            self._seam = True
        if len(samples):
            # edges around the silence this stage writes itself (a stall's in a file, a cushion's on a
            # device; where the ring runs dry, the device makes its own) and around a skip
            self.sink.write(self._after_written(samples, copy=True), block=False)
            now = time.monotonic()       # when a file's audio would end if it were played from now
            self._audio_wall_end = max(self._audio_wall_end or now, now) + len(samples) / AUDIO_SFREQ
            stamps["buffered"] = local_clock()
            if self.sink.plays_live:   # a file or nothing has no queue and no converter to estimate
                # the chunk's first sample waits behind what was queued ahead of it
                queued_ahead = max(self.sink.queued_s - len(samples) / AUDIO_SFREQ, 0.0)
                stamps["queued"] = stamps["buffered"] + queued_ahead
                stamps["dac"] = stamps["queued"] + self.sink.output_latency_s

    def flush(self) -> np.ndarray:
        """The vocoder's tail (what its look-ahead and overlap-add still hold), written to the sink as
        ``--listen`` says: with ``true``, the stimulus after the last chunk, not 70 ms of decoded sound.

        After silence this stage wrote (a stall in a file) the tail rises from it, as a chunk does.

        Returns
        -------
        ndarray, shape (n_samples,)
            The decoded tail, which a recording keeps whatever ``--listen`` played (empty when nothing
            was vocoded).
        """
        if self.vocoder is None or self.last_k is None:
            return np.zeros(0, np.float32)
        tail = self.vocoder.flush()
        if len(tail):
            heard = tail if self._listen_end is None else self.listened(tail, self._listen_end)
            self.sink.write(self._after_written(heard, copy=False))   # a stream that stalled and ended
        return tail
