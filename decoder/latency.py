"""Where every millisecond goes: per-stage latency on the LSL clock, p50/p95/p99.

Each decoded window carries stamps on the LSL clock (``pylsl.local_clock``):

====================  ==========================================================================
stamp                 when
====================  ==========================================================================
``audio``             the stimulus instant of the first audio sample the window's new frames
                      make, on the EEG stream's time axis (the window's frames lag the EEG by the
                      model's ``audio_lag_s``; the vocoder's samples lag its frames by its
                      look-ahead and overlap-add)
``eeg``               the window's last EEG sample was taken (its LSL timestamp)
``arrival``           the chunk holding the window's last sample arrived (``Window.t_arrival``)
``ready``             the stream stage made the window (``Window.t_ready``)
``inferred``          the model's output is in host memory
``vocoded``           the window's new frames are turned into audio samples
``buffered``          the samples are handed to the audio sink's buffer
``queued``            the first of those samples is handed to the device (estimated from the audio
                      queued ahead of it in the sink)
``dac``               the first of those samples reaches the device's DAC (``queued`` plus the
                      device's output latency as PortAudio reports it)
====================  ==========================================================================

So ``audio_to_eeg`` is what the synthesis itself costs (the hop's first new frame waiting for the
rest of the hop, plus the vocoder's look-ahead and overlap-add, less how far the newest frame starts
after the window's last EEG sample: 2.5 ms in ``eegmusic bench latency``), ``eeg_to_arrival`` the transport
(from a stream faster than the model's rate, plus the resampler's 80 ms: the ``eeg`` stamp is the
time of the EEG a window's last sample holds), ``buffered_to_queued`` the output queue (the cushion
against jitter) and ``queued_to_dac`` the device. The stages ending at ``queued`` or ``dac`` are
**estimates** (:data:`ESTIMATED_STAGES`): they add what the sink says is queued and what PortAudio
says the device adds, and leave out where in a frame an EEG event falls. ``eegmusic bench latency``
*measures* EEG sample -> audible sample through the sound server, and prints these stages beside it
as its breakdown; tables and summaries label the two apart.

:class:`LatencyTracker` keeps the last ``capacity`` values of every stage difference in
preallocated ring buffers and reports their percentiles in milliseconds.
"""

from __future__ import annotations

import threading

import numpy as np

STAMPS = ("audio", "eeg", "arrival", "ready", "inferred", "vocoded", "buffered", "queued", "dac")
"""Stamps of one window, in pipeline order."""

STAMP_WORDS = {
    "audio": "the stimulus instant of the first audio sample the window's new frames make",
    "eeg": "the window's last EEG sample taken (its LSL time stamp)",
    "arrival": "the chunk holding it arrived",
    "ready": "the stream stage made the window",
    "inferred": "the model's output in host memory",
    "vocoded": "the window's new frames turned into audio samples",
    "buffered": "the samples handed to the audio sink's buffer",
    "queued": "the first of them handed to the device",
    "dac": "the first of them reaching the device's DAC",
}
"""What each stamp of :data:`STAMPS` marks, in a few words (the table above; the dashboard's tooltips)."""

STIMULUS_TIME_NOTE = ("audio_to_eeg is stimulus time, not processing: the model's audio lag, the vocoder "
                      "delay{vocoder} (look-ahead and synthesis overlap) and smoothing{smoothing}")
"""Why ``audio_to_eeg`` is no processing time: ``eegmusic decode`` prints it under its latency table and the
dashboard's row says it, with the delays' figures where the run's summary gives them."""

STAGES = ("audio_to_eeg", "eeg_to_arrival", "arrival_to_ready", "ready_to_inferred", "inferred_to_vocoded",
          "vocoded_to_buffered", "buffered_to_queued", "queued_to_dac", "buffered_to_dac",
          "arrival_to_buffered", "arrival_to_dac", "audio_to_dac")
"""Reported stages: each consecutive pair of stamps, plus the end-to-end spans."""

ESTIMATED_STAGES = ("buffered_to_queued", "queued_to_dac", "buffered_to_dac", "arrival_to_dac",
                    "audio_to_dac")
"""Stages computed from reported buffer sizes rather than observed: label them "estimate"."""

_SPANS = {
    "audio_to_eeg": ("audio", "eeg"),
    "eeg_to_arrival": ("eeg", "arrival"),
    "arrival_to_ready": ("arrival", "ready"),
    "ready_to_inferred": ("ready", "inferred"),
    "inferred_to_vocoded": ("inferred", "vocoded"),
    "vocoded_to_buffered": ("vocoded", "buffered"),
    "buffered_to_queued": ("buffered", "queued"),
    "queued_to_dac": ("queued", "dac"),
    "buffered_to_dac": ("buffered", "dac"),
    "arrival_to_buffered": ("arrival", "buffered"),
    "arrival_to_dac": ("arrival", "dac"),
    "audio_to_dac": ("audio", "dac"),
}


def percentiles_ms(values_s: np.ndarray) -> dict:
    """p50/p95/p99 and count of durations given in seconds, in milliseconds.

    Parameters
    ----------
    values_s : ndarray, shape (n,)
        Durations in seconds.

    Returns
    -------
    dict
        ``{"p50": ms, "p95": ms, "p99": ms, "n": n}``; percentiles are None when n is 0.
    """
    values_s = np.asarray(values_s, dtype=np.float64)
    if values_s.size == 0:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    p50, p95, p99 = np.percentile(values_s * 1e3, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "n": int(values_s.size)}


class LatencyTracker:
    """Per-stage latency of the last ``capacity`` windows.

    Parameters
    ----------
    capacity : int
        Windows kept per stage (older ones are overwritten).

    Examples
    --------
    >>> tracker = LatencyTracker()
    >>> tracker.record({"arrival": 10.0, "ready": 10.001, "inferred": 10.003})
    >>> tracker.percentiles()["ready_to_inferred"]["p50"]
    2.0
    """

    def __init__(self, capacity: int = 4096):
        self.capacity = int(capacity)
        self._values = np.zeros((len(STAGES), self.capacity), dtype=np.float64)
        self._count = np.zeros(len(STAGES), dtype=np.int64)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every value."""
        with self._lock:
            self._count[:] = 0

    def record(self, stamps: dict) -> None:
        """Record one window's stamps (LSL clock, seconds); stages whose stamps are absent are skipped.

        Parameters
        ----------
        stamps : dict
            Stamp name (see :data:`STAMPS`) -> LSL time in seconds.
        """
        with self._lock:
            for row, stage in enumerate(STAGES):
                a, b = _SPANS[stage]
                if a in stamps and b in stamps and stamps[a] is not None and stamps[b] is not None:
                    span = stamps[b] - stamps[a]
                    if not np.isfinite(span):  # a stream's infinite stamp (a time error): no duration
                        continue
                    self._values[row, self._count[row] % self.capacity] = span
                    self._count[row] += 1

    def values(self, stage: str) -> np.ndarray:
        """The kept durations of one stage in seconds (a copy, oldest first not guaranteed)."""
        row = STAGES.index(stage)
        with self._lock:
            n = int(min(self._count[row], self.capacity))
            return self._values[row, :n].copy()

    def percentiles(self) -> dict:
        """Stage -> ``{"p50", "p95", "p99", "n"}`` in milliseconds (see :func:`percentiles_ms`)."""
        return {stage: percentiles_ms(self.values(stage)) for stage in STAGES}


def format_table(latency_ms: dict) -> str:
    """Render :meth:`LatencyTracker.percentiles` as an aligned text table (for the CLI summary).

    A stage never measured is left out: the device's stages of a decode into a file or into nothing.
    """
    lines = [f"  {'stage':<33}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'n':>8}"]
    for stage, row in latency_ms.items():
        if not row["n"]:
            continue
        cells = "".join(f"{row[p]:>10.2f}" if row[p] is not None else f"{'-':>10}"
                        for p in ("p50", "p95", "p99"))
        label = f"{stage} (estimate)" if stage in ESTIMATED_STAGES else stage
        lines.append(f"  {label:<33}{cells}{row['n']:>8}")
    return "\n".join(lines)
