"""Where decoded audio goes: a sound device, a WAV file, or nowhere.

Every sink satisfies :class:`AudioSink` (22050 Hz mono float32 in chunks, sanitised and counted;
:mod:`decoder.sinks` holds the contract, :class:`WavSink` and :class:`NullSink`, re-exported here).
This module adds the sound device:

- :class:`SoundDeviceSink` plays through PortAudio (``sounddevice.OutputStream``). The callback only
  copies from a preallocated single-producer/single-consumer ring buffer: no allocation of sample
  buffers, no lock, no logging; when the ring runs dry it plays silence and counts an underrun.
- :func:`resolve_output_device`, :func:`output_devices` and :func:`refresh_devices` find devices.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

import numpy as np
from eegmusic.decoder.melspec import AUDIO_SFREQ
from eegmusic.decoder.realtime import process_threads, raise_priorities, raise_priority
from eegmusic.decoder.sinks import AudioSink, NullSink, WavSink, _Sink, sanitise
from eegmusic.stream.errors import AudioError

__all__ = ["AudioSink", "NullSink", "SoundDeviceSink", "WavSink", "output_devices", "refresh_devices",
           "resolve_output_device", "sanitise"]

log = logging.getLogger(__name__)

STALL_S = 0.5
"""A device whose callback has not come for this long (while audio is written) is reopened."""

EDGE_RAMP_SAMPLES = 64
"""Samples (2.9 ms at 22050 Hz) over which the device's output falls to silence where the ring runs
dry (a stall, a late decoder, the end) and rises from it where sound comes back. Without them the
sound stopped at whatever sample the last chunk ended on and came back at full height: steps of up to
full scale, heard as clicks. A ``--wav`` file gets the same edges around the silence of a stall
(:meth:`decoder.output_stage.SoundOutput.silence_while_stalled`)."""

EDGE_RISE = np.arange(1, EDGE_RAMP_SAMPLES + 1, dtype=np.float32) / (EDGE_RAMP_SAMPLES + 1)
"""Gains of the first samples after silence (the rise); reversed, :data:`EDGE_FALL`."""

EDGE_FALL = EDGE_RISE[::-1].copy()
"""Gains, times the last sample given, of the first samples of silence (the fall)."""


def rise_from(buffer: np.ndarray, last: float) -> None:
    """In place: ``buffer``'s first samples rise from ``last``, the sample given before them (0 after a
    whole fall; part-way down when a fall was cut short), crossfaded over :data:`EDGE_RAMP_SAMPLES`."""
    head = buffer[: min(len(buffer), EDGE_RAMP_SAMPLES)]
    # last + (x - last) * rise == x * rise + last * fall (fall = 1 - rise), with no temporary array: the
    # device callback calls this, and it allocates nothing
    head -= last
    head *= EDGE_RISE[: len(head)]
    head += last


def fall_from(buffer: np.ndarray, last: float) -> None:
    """In place: ``buffer`` becomes the fall from ``last`` to silence, then silence (no allocation)."""
    k = min(len(buffer), EDGE_RAMP_SAMPLES)
    np.multiply(EDGE_FALL[:k], last, out=buffer[:k])
    buffer[k:] = 0.0

UNDERRUN_TIMES_KEPT = 4096
"""How many of the latest underruns :attr:`SoundDeviceSink.underrun_times` keeps."""

DEVICE_LATENCY_S = 0.02
"""The sound device's suggested latency unless told (``decode --device-latency``).

Measured through PulseAudio (its ALSA plugin) on the 2-core machine with ``eegmusic bench latency``
and 128-sample blocks: at load 8-13 ``"low"`` (PortAudio's 11.6 ms; 14 ms to the DAC) ran the
device dry about 1.5 times a second (903 underflows and 47 s of skipped audio in 10 minutes at a
1-frame hop); at load 6, 20 ms (30 ms to the DAC) ran it dry 0 times in 30 s at the default hop,
and 30 ms (42 ms to the DAC) cost 16 ms more at the median for no fewer underruns. With the live
threads at real-time priority (:mod:`decoder.realtime`), 45-s runs at a 1-frame hop and load 9-10:
20 ms ran the device dry 10-58 times (median 30 of 8 runs), 30 ms 0-20 times (median 4 of 6), at
about the same median latency (116 and 118 ms), the cushion ahead of the device being smaller at
30 ms; pass ``--device-latency 0.03`` on a machine that busy.
"""

# PULSE_LATENCY_MSEC is left to the user. Measured through a PulseAudio null sink on the 2-core
# machine under load: unset, latency="low" gives about 23 ms callback -> DAC and played 30 s of
# decoded events without a stall; set to 30 it gave the same 23 ms but the stream stopped calling
# back within seconds (again after every reopen); at 15 the server underran every few hundred ms.

_NO_DEVICE_HINT = "pass --wav FILE to record the sound instead, or --no-audio to run silently"


def _import_sounddevice():
    try:
        import sounddevice
    except OSError as error:  # the PortAudio library itself is missing
        raise AudioError(f"PortAudio is not available ({error}); install libportaudio2, or "
                         f"{_NO_DEVICE_HINT}") from None
    return sounddevice


def refresh_devices() -> None:
    """Re-scan audio devices (PortAudio lists them once, when first loaded).

    Call it after starting a sound server (e.g. PulseAudio) in a running process. Does nothing while
    a stream is open.
    """
    sd = _import_sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as error:
        log.debug("PortAudio re-initialisation refused: %s", error)


def output_devices() -> list[tuple[int, str]]:
    """Return (index, name) of every audio device with output channels."""
    sd = _import_sounddevice()
    return [(index, device["name"]) for index, device in enumerate(sd.query_devices())
            if device["max_output_channels"] > 0]


def _describe(devices: list[tuple[int, str]]) -> str:
    return ", ".join(f"{index} {name!r}" for index, name in devices)


def resolve_output_device(device: int | str | None = None) -> int:
    """Return the PortAudio index of an output device given by index, name, or ``None`` (default).

    A name matches exactly first, then as a case-insensitive substring of one device name.

    Raises
    ------
    AudioError
        No output device at all (names ``--wav`` and ``--no-audio``), an unknown or ambiguous
        device (lists the devices).
    """
    sd = _import_sounddevice()
    devices = output_devices()
    if not devices:
        refresh_devices()
        devices = output_devices()
    if not devices:
        raise AudioError(f"no audio output device found (no sound card or sound server); {_NO_DEVICE_HINT}")
    indices = {index for index, _ in devices}
    if device is None:
        default = sd.default.device[1] if isinstance(sd.default.device, tuple | list) else sd.default.device
        try:
            default = int(default)
        except (TypeError, ValueError):
            default = -1
        return default if default in indices else devices[0][0]
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device)
    if isinstance(device, int | np.integer):
        if int(device) in indices:
            return int(device)
        raise AudioError(f"audio device {device} is not an output device; output devices: "
                         f"{_describe(devices)}. Pass one of these, or {_NO_DEVICE_HINT}")
    exact = [index for index, name in devices if name == device]
    if exact:
        return exact[0]
    matches = [index for index, name in devices if str(device).lower() in name.lower()]
    if len(matches) == 1:
        return matches[0]
    problem = "matches several devices" if matches else "not found"
    raise AudioError(f"audio device {device!r} {problem}; output devices: {_describe(devices)}. "
                     f"Pass one of these names or indices, or {_NO_DEVICE_HINT}")


class SoundDeviceSink(_Sink):
    """Play audio through a sound device, fed from a lock-free single-producer ring buffer.

    One thread (the producer) calls :meth:`write`; PortAudio's thread runs the callback, which only
    copies from the ring into the device buffer. An empty ring plays silence and counts an underrun
    (only after the first write, and not after :meth:`close` started draining).

    Parameters
    ----------
    device : int, str or None
        Output device index or name (substring); ``None`` is the system default.
    blocksize : int
        Samples per callback (default 128, 5.8 ms at 22050 Hz). Measured through PulseAudio with
        ``latency="low"``: 256 gave PortAudio's DAC time 24–28 ms and burstier callbacks (a median
        54 ms queued ahead of each chunk), 128 gave 14 ms and 23 ms (``eegmusic bench latency``).
    samplerate : int
        Samples per second (default 22050).
    buffer_s : float
        Ring capacity in seconds (rounded up to a power of two samples).
    latency : str or float
        PortAudio's suggested output latency: seconds, or ``"low"``/``"high"``. The default
        :data:`DEVICE_LATENCY_S` (``PULSE_LATENCY_MSEC`` is not set: see the note above
        :data:`STALL_S`); hop jitter is absorbed by the pipeline's adaptive queue, not here. A
        device that refuses it is opened with its ``"high"`` latency instead, and
        :attr:`latency_note` says so.
    realtime : bool
        Move PortAudio's callback thread to real-time priority once it has called back
        (:func:`decoder.realtime.raise_priority`; done from the writing thread, so the callback
        itself only notes its thread id). ``counters()["callback_realtime"]`` is 1 once raised.
    """

    def __init__(self, device: int | str | None = None, blocksize: int = 128, *,
                 samplerate: int = AUDIO_SFREQ, buffer_s: float = 2.0,
                 latency: str | float = DEVICE_LATENCY_S, realtime: bool = False) -> None:
        super().__init__()
        sd = _import_sounddevice()
        self._sd = sd
        self.device = resolve_output_device(device)
        self.device_name = sd.query_devices(self.device)["name"]
        self.samplerate = int(samplerate)
        self.blocksize = int(blocksize)
        try:
            sd.check_output_settings(device=self.device, samplerate=self.samplerate, channels=1,
                                     dtype="float32")
        except (sd.PortAudioError, ValueError) as error:
            raise AudioError(f"audio device {self.device} {self.device_name!r} does not support "
                             f"{self.samplerate} Hz mono float32 ({error}); pick another --audio-device, "
                             f"or {_NO_DEVICE_HINT}") from None
        capacity = 1 << int(np.ceil(np.log2(max(buffer_s * self.samplerate, 4 * self.blocksize))))
        self._ring = np.zeros(capacity, dtype=np.float32)
        self._mask = capacity - 1
        # the callback's edges (EDGE_RISE, EDGE_FALL)
        self._dry = True        # the device's last block ran dry (it starts silent)
        self._last_out = 0.0    # the last sample the device was given (mid-fall after a short block)
        # monotonic sample counters; each is written by one thread only (GIL-atomic int stores)
        self._write_pos = 0
        self._read_pos = 0
        self._underruns = 0
        self.underrun_times: collections.deque[float] = collections.deque(maxlen=UNDERRUN_TIMES_KEPT)
        """``time.monotonic()`` of the latest underruns (``eegmusic bench latency`` sets them beside
        the machine's own stalls)."""
        self._device_underflows = 0
        self._callbacks = 0                 # written by the callback only; the watchdog reads it
        self._watch = (0, time.monotonic())  # (callbacks seen, when they last advanced)
        self._device_restarts = 0
        self._playing = False
        self._draining = False
        self._dac_latency_s = -1.0
        self._realtime = bool(realtime)
        self._callback_raised = False
        self._callback_thread = 0         # the callback's native thread id, noted by the callback
        self._raised_thread = 0           # the thread whose priority was raised (a reopen makes a new one)
        self._lock = threading.Lock()  # serialises producers' writes, never taken by the callback
        self.latency_note: str | None = None
        """Why the device plays at another latency than asked (None when it took the request)."""
        try:
            self._stream = self._open_stream(latency)
        except sd.PortAudioError as error:
            if latency == "high":
                raise AudioError(f"cannot open audio device {self.device} {self.device_name!r}: {error}; "
                                 f"pick another --audio-device, or {_NO_DEVICE_HINT}") from None
            try:
                self._stream = self._open_stream("high")
            except sd.PortAudioError:
                raise AudioError(f"cannot open audio device {self.device} {self.device_name!r}: {error}; "
                                 f"pick another --audio-device, or {_NO_DEVICE_HINT}") from None
            self.latency_note = (f"audio device {self.device_name!r} refused latency {latency!r} ({error}); "
                                 f"playing at its default {1e3 * self._stream.latency:.0f} ms instead: pick "
                                 f"another --audio-device for lower latency")
            log.warning("%s", self.latency_note)
        log.info("audio out on %d %r, %d Hz, block %d, latency %.1f ms", self.device, self.device_name,
                 self.samplerate, self.blocksize, 1e3 * self._stream.latency)

    def describe(self) -> str:
        return f"audio device {self.device} {self.device_name!r}"

    def _open_stream(self, latency: str | float):
        before = process_threads()
        stream = self._sd.OutputStream(device=self.device, samplerate=self.samplerate,
                                       blocksize=self.blocksize, channels=1, dtype="float32",
                                       latency=latency, callback=self._callback)
        try:
            stream.start()
        except self._sd.PortAudioError:
            stream.close()
            raise
        if self._realtime:
            # the threads the sound library started for this stream: PortAudio's callback thread and,
            # through PulseAudio, its client main loop ("threaded-ml"), which carries our samples to the
            # server; left at normal priority on a busy machine, it starves and the server runs dry
            raise_priorities("sound-host", process_threads() - before)
        return stream

    # -- PortAudio thread: copy only ----------------------------------------------------------
    def _callback(self, outdata, frames, time_info, status) -> None:
        self._callbacks += 1
        if not self._callback_thread:
            self._callback_thread = threading.get_native_id()
        if status.output_underflow:
            self._device_underflows += 1
        read = self._read_pos
        available = self._write_pos - read
        n = frames if available >= frames else available
        start = read & self._mask
        first = min(n, self._ring.size - start)
        out = outdata[:, 0]
        out[:first] = self._ring[start:start + first]
        out[first:n] = self._ring[:n - first]
        if not frames:
            return
        if n and self._dry:        # sound after a dry block rises
            rise_from(out[:n], self._last_out)
        if n < frames:             # ran dry: fall from the last sample given to zero, then silence
            fall_from(out[n:], out[n - 1] if n else self._last_out)
            if self._playing and not self._draining:
                self._underruns += 1
                self.underrun_times.append(time.monotonic())
        self._dry = n < frames
        self._last_out = float(out[frames - 1])
        self._read_pos = read + n
        self._dac_latency_s = time_info.outputBufferDacTime - time_info.currentTime

    def _check_stalled(self) -> None:
        """Reopen the device at its high latency if its callback stopped coming (seen at "low").

        Through PulseAudio's ALSA plugin at low latency on a loaded machine, a server underrun can
        leave the stream active but never calling back again: the audio would pile up unplayed.
        """
        now = time.monotonic()
        seen, since = self._watch
        if self._callbacks != seen:
            self._watch = (self._callbacks, now)
            return
        if now - since < STALL_S:
            return
        self._stream.abort()        # abort: a stalled ALSA thread would never end a graceful stop
        self._stream.close()
        self._dry, self._last_out = True, 0.0   # the new stream starts from silence: its sound rises
        self._stream = self._open_stream("high")
        self._device_restarts += 1
        self._callback_thread = 0
        self._watch = (self._callbacks, time.monotonic())
        # said by the summary as a count (device_restarts); latency_note keeps a refusal at the start
        log.warning("audio device %r stopped playing at low latency; reopened at its default %.0f ms",
                    self.device_name, 1e3 * self._stream.latency)

    # -- producer side ------------------------------------------------------------------------
    def write(self, samples: np.ndarray, *, block: bool = True, timeout: float | None = None) -> int:
        """Queue ``samples`` (shape (n_samples,)) for playback.

        Parameters
        ----------
        block : bool
            Wait for room in the ring (default). With ``block=False`` (live use) samples that do not
            fit are dropped and counted, so latency never grows.
        timeout : float, optional
            Longest wait in seconds (default: the chunk's duration plus 2 s).

        Returns
        -------
        n_written : int
        """
        clean = self._clean(samples)
        if not self._stream.active:
            raise AudioError(f"audio stream on {self.device_name!r} stopped; restart the sink, "
                             f"or {_NO_DEVICE_HINT}")
        self._check_stalled()
        if self._realtime and self._callback_thread and self._callback_thread != self._raised_thread:
            self._raised_thread = self._callback_thread
            self._callback_raised = raise_priority("audio-callback", self._callback_thread) != "normal"
        with self._lock:
            if timeout is None:
                timeout = clean.size / self.samplerate + 2.0
            deadline = time.monotonic() + timeout
            written = 0
            while written < clean.size:
                room = self._ring.size - (self._write_pos - self._read_pos)
                if room == 0:
                    if not block or time.monotonic() > deadline or not self._stream.active:
                        break
                    time.sleep(0.5 * self.blocksize / self.samplerate)
                    continue
                n = min(room, clean.size - written)
                start = self._write_pos & self._mask
                first = min(n, self._ring.size - start)
                self._ring[start:start + first] = clean[written:written + first]
                self._ring[:n - first] = clean[written + first:written + n]
                self._write_pos += n  # publish after the copy
                written += n
                self._playing = True
            self._dropped += clean.size - written
            self._written += written
        return written

    @property
    def output_latency_s(self) -> float:
        """Seconds from the callback to the DAC (from the stream's DAC time; PortAudio's estimate
        before the first callback or when the host reports no DAC time)."""
        if self._dac_latency_s > 0.0:
            return float(self._dac_latency_s)
        return float(self._stream.latency)

    @property
    def plays_live(self) -> bool:
        """True: the device plays in real time."""
        return True

    @property
    def queued_s(self) -> float:
        """Seconds of audio waiting in the ring buffer."""
        return (self._write_pos - self._read_pos) / self.samplerate

    def counters(self) -> dict[str, int]:
        counters = super().counters()
        counters["underruns"] = self._underruns
        counters["device_underflows"] = self._device_underflows
        counters["device_restarts"] = self._device_restarts
        counters["callback_realtime"] = int(self._callback_raised)
        return counters

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything written has been handed to the device; return whether it was."""
        self._draining = True
        deadline = time.monotonic() + timeout
        while self._write_pos > self._read_pos and time.monotonic() < deadline and self._stream.active:
            time.sleep(0.005)
        # let the device play what is in its own buffer
        time.sleep(max(self.output_latency_s, 0.0) + self.blocksize / self.samplerate)
        return self._write_pos <= self._read_pos

    def close(self, drain: bool = True) -> None:
        """Stop the stream (after playing what is queued when ``drain``) and release the device."""
        if self._closed:
            return
        if drain:
            self.drain()            # what was written has been played (drain waits out the device too)
        self._draining = True
        # abort, not stop: a graceful stop waits for PortAudio's ALSA thread to notice, and through
        # PulseAudio at low latency after an xrun that thread was seen polling forever (close hung)
        self._stream.abort()
        self._stream.close()
        super().close()
