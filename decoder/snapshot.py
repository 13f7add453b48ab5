"""What a display reads from a running decoder: a :class:`PipelineSnapshot` and the protocol behind it.

The dashboard (``gui/``) depends only on :class:`SnapshotSource`: anything that can hand out
snapshots, counters and a summary without waiting on decoding or acquisition. The in-process
:class:`~decoder.pipeline.LivePipeline` is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from eegmusic.stream.source import StreamHealth


@dataclass
class PipelineSnapshot:
    """A copy of the live state for display.

    Attributes
    ----------
    eeg : ndarray, shape (n_chans, n_times), float32
        The newest preprocessed EEG at ``eeg_sfreq`` (empty before the stream starts).
    eeg_sfreq : float
        Rate of ``eeg`` in Hz.
    labels : list of str, length n_chans
    channel_flags : ndarray of bool, shape (n_chans,)
        Channels that are non-finite or flat in ``eeg``.
    mel : ndarray, shape (128, n_frames), float32
        The newest decoded mel-dB frames, oldest first.
    truth_mel : ndarray, shape (128, n_frames), or None
        The true stimulus frames at the same times (NaN where unknown); None without live truth.
    dynamic_r : float or None
        Live dynamic r over the recent frames.
    shifted_dynamic_r : float or None
        Its shifted-stimulus control over the same frames, taken with it
        (:meth:`decoder.truth.LiveTruth.recent_scores`); None without one.
    latency_ms : dict
        Stage -> ``{"p50", "p95", "p99", "n"}`` in ms (:meth:`decoder.latency.LatencyTracker.percentiles`).
    counters : dict
        :meth:`decoder.pipeline.LivePipeline.counters`.
    health : StreamHealth or None
        The stream stage's health (None before start).
    running : bool
    error : str or None
        Why decoding stopped, or the stream stage's error.
    frame_index : int or None
        Global index of the newest decoded frame.
    model : str
        The model's name.
    extra : dict
        Room for figures a panel adds without changing this class.
    """

    eeg: np.ndarray
    eeg_sfreq: float
    labels: list[str]
    channel_flags: np.ndarray
    mel: np.ndarray
    truth_mel: np.ndarray | None
    dynamic_r: float | None
    latency_ms: dict[str, dict[str, float | int | None]]
    counters: dict[str, int]
    health: StreamHealth | None
    running: bool
    error: str | None
    frame_index: int | None = None
    model: str = ""
    shifted_dynamic_r: float | None = None
    extra: dict = field(default_factory=dict)


class SnapshotSource(Protocol):
    """A running decoder as a display sees it."""

    @property
    def running(self) -> bool:
        """True while decoding."""

    def snapshot(self) -> PipelineSnapshot:
        """A copy of the recent state; never waits on decoding or acquisition."""

    def counters(self) -> dict[str, int]:
        """Windows, drops, gaps, reconnects, underruns and the finer counts behind them."""

    def summary(self) -> dict:
        """JSON-ready summary of the run so far."""

    def stop(self) -> None:
        """Stop decoding (idempotent)."""
