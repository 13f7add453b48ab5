"""The EEG side of a listening session: one thread owns the inlet and appends every chunk to the XDF file.

Each chunk pulled goes to :class:`replay.xdf_writer.XDFWriter` at once (flushed, so a killed session
keeps it), with the inlet's clock offsets every 5 s. A jump in the timestamps (samples lost) is a
gap: counted and reported through ``on_gap``; silence longer than ``gap_s`` shows as
:attr:`SessionRecorder.silent` (the progress line says so) while the session goes on.
"""

from __future__ import annotations

import threading

import numpy as np
from eegmusic.replay.xdf_writer import XDFWriter


class SessionRecorder(threading.Thread):
    """Owns the EEG inlet: every chunk goes to the XDF file at once; outages are timed."""

    def __init__(self, inlet, writer: XDFWriter, stream_id: int, n_chans: int, gap_s: float, on_gap,
                 sfreq: float) -> None:
        super().__init__(name="calibrate-recorder", daemon=True)
        self.inlet, self.writer, self.stream_id = inlet, writer, stream_id
        self.gap_s, self.on_gap = gap_s, on_gap
        self.buffer = np.empty((4096, n_chans), dtype=np.float32)
        self.stamps = np.empty(4096, dtype=np.float64)
        self.samples = 0
        self.gaps: list[tuple[float, float]] = []
        self.stop_event = threading.Event()
        self.first_sample = threading.Event()
        self.error: BaseException | None = None
        self.last_stamp: float | None = None
        """The newest sample's timestamp on the stream's clock."""
        self.offset = 0.0
        """The newest clock offset (the stream's clock + offset = this machine's)."""
        self.silent_since: float | None = None
        self.sfreq = float(sfreq)

    def run(self) -> None:
        import pylsl
        from pylsl.util import LostError
        from pylsl.util import TimeoutError as LSLTimeoutError

        next_offset = 0.0
        try:
            while not self.stop_event.is_set():
                now = pylsl.local_clock()
                if now >= next_offset:
                    try:
                        offset = self.inlet.time_correction(timeout=0.5)
                        self.writer.write_clock_offset(self.stream_id, pylsl.local_clock(), offset)
                        self.offset = float(offset)
                    except (LSLTimeoutError, LostError):
                        pass  # the offset is measured again in 5 s; outages are timed below
                    next_offset = now + 5.0
                _, stamps = self.inlet.pull_chunk(
                    timeout=0.2, max_samples=len(self.stamps), dest_obj=self.buffer
                )
                n = len(stamps)
                if n == 0:
                    if self.silent_since is None and self.last_stamp is not None:
                        self.silent_since = pylsl.local_clock()
                    continue
                self.stamps[:n] = stamps
                self.writer.write_samples(self.stream_id, self.stamps[:n], self.buffer[:n])
                # a gap is samples lost (timestamps jump), not samples that arrived late
                if self.last_stamp is not None and self.stamps[0] - self.last_stamp > 1.5 / self.sfreq:
                    self.gaps.append((float(self.last_stamp), float(self.stamps[0])))
                    self.on_gap(float(self.last_stamp), float(self.stamps[0]))
                self.silent_since = None
                self.samples += n
                self.last_stamp = float(self.stamps[n - 1])
                self.first_sample.set()
        except BaseException as error:  # reported by the main thread
            self.error = error

    def recorded_until(self, local_time: float) -> bool:
        """Whether a sample stamped at ``local_time`` (this machine's clock) or later was recorded."""
        return self.last_stamp is not None and self.last_stamp + self.offset >= local_time

    @property
    def silent(self) -> bool:
        """The stream is in an outage now."""
        import pylsl

        return self.silent_since is not None and pylsl.local_clock() - self.silent_since > self.gap_s
