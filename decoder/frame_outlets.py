"""What a decode publishes on LSL: the decoded frames and the EEG stream's health.

- ``<stream>-mel``: type ``MelSpectrogram``, 128 channels (mel-dB) at 22050/512 Hz, each frame stamped
  with its stimulus time on the LSL clock, so LabRecorder can record it beside the EEG;
- ``<stream>-mel-status``: markers ``state=NAME`` whenever the EEG stream's health changes
  (connected, stalled, lost, reconnected).

Each decoder's ``source_id`` is unique per process (``<sid>-mel@host:pid:…``): two decoders of one
stream must not look like one source (docs/design.md, LSL conventions).
"""

from __future__ import annotations

import os
import socket

import numpy as np
from eegmusic.decoder.melspec import AUDIO_SFREQ, FRAME_PERIOD_S, HOP_LENGTH, N_MELS
from eegmusic.stream.outlet import BlockOutlet

MEL_STREAM_TYPE = "MelSpectrogram"
MEL_RATE = AUDIO_SFREQ / HOP_LENGTH
"""Nominal rate of the decoded-frame LSL outlet in Hz (43.07)."""


class FrameOutlets:
    """The decoded-frame outlet and the health-status marker outlet of one decoder.

    Parameters
    ----------
    stream_name, source_id : str
        The EEG stream's name and source id (the outlets are named after it).
    model_name : str
        Written into the frame stream's ``desc/decoder``.
    audio_lag_s : float
        The model's ``audio_lag_s``, written into ``desc/decoder``.
    """

    def __init__(self, stream_name: str, source_id: str, *, model_name: str, audio_lag_s: float) -> None:
        import pylsl
        from eegmusic.stream.outlet import marker_stream_info, regular_stream_info

        labels = [f"mel{i:03d}" for i in range(N_MELS)]
        desc = {"decoder": {"model": model_name, "eeg_stream": stream_name,
                            "frame_period_s": f"{FRAME_PERIOD_S:.9f}", "audio_lag_s": f"{audio_lag_s:g}"}}
        decoder_id = f"{source_id}-mel@{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:04x}"
        info = regular_stream_info(f"{stream_name}-mel", MEL_STREAM_TYPE, labels, MEL_RATE, decoder_id,
                                   unit="dB", channel_type="MelSpectrogram", extra_desc=desc)
        self.frames = BlockOutlet(info, chunk_size=8, max_buffered=10)
        self._status = pylsl.StreamOutlet(marker_stream_info(
            f"{stream_name}-mel-status", f"{decoder_id}-status",
            extra_desc={"decoder": {"mel_stream": f"{stream_name}-mel", "format": "state=NAME"}}))
        self._state_sent: str | None = None

    def push_frames(self, frames: np.ndarray, stamps: np.ndarray) -> None:
        """Send frames, shape (n_mels, n), stamped with their LSL times, shape (n,)."""
        self.frames.push(frames, stamps)

    def push_state(self, state: str | None) -> None:
        """Send ``state=NAME`` when the stream's health state differs from the last one sent."""
        if state is not None and state != self._state_sent:
            self._status.push_sample([f"state={state}"])
            self._state_sent = state
