"""One track through sounddevice, timed on the audio clock (``eegmusic calibrate``'s player).

The callback only copies the next samples into the device buffer and notes, in a preallocated ring,
the track position of that block and the LSL time it will be heard: PortAudio's
``outputBufferDacTime`` (audio clock) mapped to the LSL clock through ``currentTime`` and
:func:`pylsl.local_clock`, or "now + the device's output latency" on host APIs that report no DAC
time. The main thread reads the notes (:meth:`TrackPlayer.latest`) and turns them into markers.
"""

from __future__ import annotations

import threading

import numpy as np
from eegmusic.replay.nmedt import AUDIO_SFREQ
from eegmusic.stream.errors import AudioError

NO_DEVICE_HINT = (
    "start a sound server (pulseaudio --start), pass --audio-device with another output device, "
    "or pass --no-audio to publish the markers without sound (virtual listener only)"
)
_NOTES = 4096  # audio-callback notes kept (ring); the main thread reads them 4 times a second


def output_device(device):
    """(sounddevice module, device index) or AudioError naming the alternatives."""
    try:
        import sounddevice as sd
    except OSError as error:
        raise AudioError(
            f"PortAudio is not available ({error}); install libportaudio2, or {NO_DEVICE_HINT}"
        ) from None
    outputs = [(i, d["name"]) for i, d in enumerate(sd.query_devices()) if d["max_output_channels"] > 0]
    if not outputs:
        sd._terminate()  # PortAudio lists devices once: look again (a server may have started since)
        sd._initialize()
        outputs = [(i, d["name"]) for i, d in enumerate(sd.query_devices()) if d["max_output_channels"] > 0]
    if not outputs:
        raise AudioError(f"no audio output device found (no sound card or sound server); {NO_DEVICE_HINT}")
    listing = ", ".join(f"{i} {name!r}" for i, name in outputs)
    if device is None:
        default = sd.default.device[1] if isinstance(sd.default.device, list | tuple) else sd.default.device
        return sd, default if default in {i for i, _ in outputs} else outputs[0][0]
    if str(device).strip().isdigit() and int(device) in {i for i, _ in outputs}:
        return sd, int(device)
    matches = [i for i, name in outputs if str(device).lower() in name.lower()]
    if len(matches) != 1:
        raise AudioError(
            f"audio device {device!r} {'matches several' if matches else 'not found'}; output "
            f"devices: {listing}; or {NO_DEVICE_HINT}"
        )
    return sd, matches[0]


class TrackPlayer:
    """One track through sounddevice; the callback only copies samples and notes (position, DAC time)."""

    def __init__(self, sd, device: int, audio: np.ndarray) -> None:
        import pylsl

        self.audio = np.ascontiguousarray(audio, dtype=np.float32)
        self.position = 0
        self.notes = np.zeros((_NOTES, 2))  # (position in samples, LSL time it is heard)
        self.n_notes = 0
        self.done = threading.Event()
        self._clock = pylsl.local_clock
        self.stream = sd.OutputStream(
            samplerate=AUDIO_SFREQ,
            channels=1,
            dtype="float32",
            device=device,
            latency=0.1,
            callback=self._callback,
            finished_callback=self.done.set,
        )
        self.latency_s = float(self.stream.latency)

    def _callback(self, outdata, frames, times, status) -> None:
        now = self._clock()
        dac, current = times.outputBufferDacTime, times.currentTime
        heard = now + (dac - current) if dac > 0 and current > 0 else now + self.latency_s
        note = self.notes[self.n_notes % _NOTES]
        note[0], note[1] = self.position, heard
        self.n_notes += 1
        n = min(frames, len(self.audio) - self.position)
        outdata[:n, 0] = self.audio[self.position : self.position + n]
        outdata[n:, 0] = 0.0
        self.position += n
        if n < frames:
            raise self._stop

    def start(self) -> None:
        import sounddevice as sd

        self._stop = sd.CallbackStop
        self.stream.start()

    def latest(self, since: int) -> list[tuple[float, float]]:
        """Notes written since note number ``since`` (position s, LSL time)."""
        end = self.n_notes
        return [
            (self.notes[k % _NOTES][0] / AUDIO_SFREQ, self.notes[k % _NOTES][1])
            for k in range(max(since, end - _NOTES + 1), end)
        ]

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()
