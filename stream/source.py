"""A live EEG source: LSL inlet → preprocessing → 1-s windows, all in the acquisition thread.

:class:`EEGSource` is what the live pipeline and the GUI use. Its acquisition thread pulls each
chunk, preprocesses it with carried state (channel mapping, resampling to 125 Hz, filters,
re-reference: the same definition as :func:`stream.preprocess.preprocess_recording`), writes the
model-rate samples into a ring buffer, each stamped with the LSL time of the EEG it holds (its newest
stream sample's timestamp less the resampler's delay, :attr:`StreamHealth.delay_s`), and queues
every completed window. A model-rate sample is flagged when the stream samples it depends on include
a gap, a NaN/Inf run or a timestamp going backwards, or follows one by less than the filters'
settling time; a window with a flagged sample is flagged.

Example
-------
>>> with EEGSource("eegmusic-replay-s21-p1", spec=PreprocessingSpec()) as source:  # doctest: +SKIP
...     window = source.next_window(timeout=1.0)
...     print(window.data.shape, window.flagged, source.health())
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from eegmusic.stream.channels import default_labels
from eegmusic.stream.errors import StreamError
from eegmusic.stream.inlet import Inlet, StreamMeta
from eegmusic.stream.preprocess import StreamingPreprocessor
from eegmusic.stream.ringbuffer import FLAG_NAMES, RingBuffer
from eegmusic.stream.spec import DEFAULT_HOP_S, WINDOW_SAMPLES, PreprocessingSpec
from eegmusic.stream.windower import Window, Windower

logger = logging.getLogger(__name__)

_NEVER = -(1 << 62)


@dataclass
class StreamHealth:
    """Health figures of one stream, for logs and the GUI.

    Attributes
    ----------
    effective_rate : float
        Samples per second received over the last few seconds (stream rate).
    n_samples : int
        Stream samples received.
    gaps : int
        Timestamp jumps of more than 1.5 sample periods.
    dropped_windows : int
        Windows dropped because the consumer fell behind.
    nan_runs : int
        Runs of consecutive samples with NaN/Inf values.
    reconnects : int
        Times the stream was lost and found again.
    clock_offset : float
        Seconds added to the stream's timestamps (LSL ``time_correction``).
    jitter_ms : float
        RMS deviation of timestamp steps from the nominal period, in ms.
    connected : bool
        Whether the inlet is connected now.
    """

    effective_rate: float
    n_samples: int
    gaps: int
    dropped_windows: int
    nan_runs: int
    reconnects: int
    clock_offset: float
    jitter_ms: float
    connected: bool
    nominal_rate: float = 0.0
    missing_samples: int = 0
    non_monotonic: int = 0
    windows: int = 0
    flagged_windows: int = 0
    bad_channels: tuple[str, ...] = field(default_factory=tuple)
    """Channels without a measurement (NaN/Inf or beyond ``MAX_ABS_UV``) for over a second up to now."""
    bad_channel_seconds: dict[str, float] = field(default_factory=dict)
    """Channels that were so for over a second at a stretch at any time of the run, each with its seconds
    bad in all (:meth:`~stream.inlet.Inlet.bad_channel_seconds`): what a run's summary names."""
    delay_s: float = 0.0
    """Resampler delay in seconds (0 at the model rate): a sample's EEG is this much older than its newest
    stream sample. Windows are stamped with the EEG's time, so it counts as latency."""
    error: str | None = None
    interpolated_channels: tuple[str, ...] = field(default_factory=tuple)
    """Model channels the stream lacks, filled by spherical-spline interpolation."""
    state: str = "connecting"
    """Stream health: ``connected``, ``stalled``, ``lost`` or ``reconnected`` (:mod:`stream.inlet`)."""
    state_s: float = 0.0
    """Seconds in the current state."""
    stalls: int = 0
    """Times samples stopped arriving while the stream stayed connected."""
    stalled_s: float = 0.0
    """Seconds stalled in all."""
    losses: int = 0
    """Times the connection was lost."""
    ended: bool = False
    """The stream's source said it ended (a replay's ``replay_end``) and none has come back since: the
    ``lost`` state is the end of a replay, not a failure."""
    lost_s: float = 0.0
    """Seconds lost in all."""
    refused: str | None = None
    """Why the last stream found while reconnecting was refused (another shape or channel order), or None."""
    coalesced_windows: int = 0
    """Windows one late chunk completed and the queue could not keep, skipped for the chunk's newest,
    which overlaps them and so covers their frames: the source was late, not the consumer (those it
    does not overlap are ``dropped_windows``; :meth:`~eegmusic.stream.windower.Windower.update`)."""


def stream_labels(meta: StreamMeta) -> tuple[str, ...] | None:
    """The labels a stream's channels are read by: its own, else those of a known net's channel count
    (:func:`~eegmusic.stream.channels.default_labels`), else None (the stream cannot be used)."""
    return tuple(meta.labels) if meta.labels is not None else default_labels(meta.n_chans)


class EEGSource:
    """Windows of preprocessed EEG from a live LSL stream.

    Parameters
    ----------
    name, stype, source_id : str or None
        Which stream (all that are given must match; any ``EEG`` stream when none is given).
    spec : PreprocessingSpec
        The model's preprocessing (default: 125 Hz, model channels, average reference, no filters).
    hop_s : float
        Time between windows in seconds.
    impute_missing : bool
        Fill model channels the stream lacks by spherical-spline interpolation instead of refusing it.
    model_positions : ndarray, shape (n_model_chans, 3), optional
        The model's electrode positions in metres, head frame (from the model file); looked up by
        label when not given. The stream's own come from its ``desc/channels/channel/location``.
    max_missing : int, optional
        Most model channels the model tolerates missing (None: no limit).
    window_samples : int
        Samples per window at the model rate.
    queue_windows : int
        Windows kept for a slow consumer; older ones are dropped and counted.
    dejitter : bool
        Smooth the stream's timestamps (liblsl ``proc_dejitter``).
    recent_s : float
        Seconds of model-rate samples kept for :meth:`recent`.
    resolve_timeout : float
        Seconds :meth:`start` waits for the stream.
    window_grid_offset : float, optional
        Align window ends to a grid offset by this many model samples
        (:class:`~eegmusic.stream.windower.Windower`'s ``grid_offset``); None: the plain grid.
    """

    def __init__(self, name: str | None = None, stype: str | None = None, source_id: str | None = None, *,
                 spec: PreprocessingSpec | None = None, hop_s: float = DEFAULT_HOP_S,
                 impute_missing: bool = False, queue_windows: int = 8, dejitter: bool = False,
                 recent_s: float = 30.0, resolve_timeout: float = 5.0, model_positions=None,
                 max_missing: int | None = None, window_samples: int = WINDOW_SAMPLES,
                 window_grid_offset: float | None = None):
        self.spec = spec if spec is not None else PreprocessingSpec()
        self.hop_s = float(hop_s)
        self.impute_missing = impute_missing
        self.model_positions = model_positions
        self.max_missing = max_missing
        self.window_samples = int(window_samples)
        self.queue_windows = int(queue_windows)
        self.recent_s = float(recent_s)
        self.inlet = Inlet(name, stype, source_id, dejitter=dejitter, resolve_timeout=resolve_timeout,
                           on_chunk=self._on_chunk)
        self.meta: StreamMeta | None = None
        self.preprocessor: StreamingPreprocessor | None = None
        self.ring = RingBuffer(len(self.spec.channels),
                               max(2 * self.window_samples, int(self.recent_s * self.spec.sfreq)))
        self.windower = Windower(self.ring, hop_s=self.hop_s, sfreq=self.spec.sfreq,
                                 window_samples=self.window_samples, queue_windows=self.queue_windows,
                                 grid_offset=window_grid_offset)
        self._n_in = 0
        self._connected_early = False
        self._last_flag = {bit: _NEVER for bit in FLAG_NAMES}

    @property
    def labels(self) -> tuple[str, ...]:
        """The model channel labels of every window."""
        return tuple(self.spec.channels)

    @property
    def interpolated_labels(self) -> tuple[str, ...]:
        """Model channels filled by interpolation (empty before :meth:`start` or when none are)."""
        return self.preprocessor.channel_map.interpolated_labels if self.preprocessor else ()

    @property
    def sfreq(self) -> float:
        """The model rate in Hz."""
        return self.spec.sfreq

    def connect(self) -> StreamMeta:
        """Resolve and open the stream without acquiring yet; return what it is.

        :meth:`start` calls it when it has not been called, so a caller can check the stream
        (e.g. against a model) before acquisition starts, through this one inlet. Acquisition starts
        at :meth:`start`: of the samples that arrived since this call, all but the newest window's worth
        are discarded then (a live consumer wants the present, not a backlog of its own set-up time; the
        newest second is the present's first window, ready at once instead of a second later).

        Raises
        ------
        StreamError
            No such stream (the message lists those visible); a string-typed or irregular stream.
        """
        if self.inlet.meta is None:
            self.inlet.connect()
            self._connected_early = True
        return self.inlet.meta

    def start(self) -> None:
        """Connect, check the stream against the spec and start acquiring.

        Raises
        ------
        StreamError
            No such stream (the message lists those visible); a string-typed or irregular stream;
            channels the model needs are missing; a rate that cannot be resampled to the model's.
        """
        if self.meta is not None:
            return  # already started
        connected_early = self._connected_early   # before prepare(), which connects when no one has
        try:
            meta = self.prepare()
        except Exception:
            self.inlet.stop()
            raise
        if connected_early:
            # the newest window's worth is kept, and the resampler's delay: the first window is ready as
            # acquisition starts, made of the last second of EEG, not a second after it
            window_s = self.window_samples / self.spec.sfreq
            keep = int(np.ceil((window_s + self.preprocessor.delay_s) * meta.sfreq))
            logger.debug("discarded %d samples queued since connect()", self.inlet.flush(keep=keep))
        self.meta = meta
        self.inlet.start()

    def prepare(self) -> StreamMeta:
        """Connect and build the stream's preprocessing (channel map, resampler), not yet acquiring.

        Everything :meth:`start` can refuse about the stream is refused here, so a caller that opens
        files or devices for the stream's output (``decode --record``) can call it first and open
        nothing for a stream that will be refused. :meth:`start` calls it when it has not been called.

        Returns
        -------
        StreamMeta

        Raises
        ------
        StreamError
            As :meth:`start` (the caller closes the source: :meth:`stop`).
        """
        meta = self.connect()
        if self.preprocessor is None:
            labels = stream_labels(meta)
            if labels is None:
                raise StreamError(
                    f"stream {meta.name!r} has {meta.n_chans} channels and no channel labels; the model "
                    f"needs {len(self.spec.channels)} ({self.spec.channels[0]}…{self.spec.channels[-1]}): "
                    "label the channels in the outlet's desc/channels"
                )
            self.preprocessor = StreamingPreprocessor(meta.sfreq, labels, self.spec,
                                                      impute_missing=self.impute_missing,
                                                      stream_name=f"stream {meta.name!r}",
                                                      stream_positions=meta.positions,
                                                      model_positions=self.model_positions,
                                                      max_missing=self.max_missing)
        return meta

    def stop(self) -> None:
        """Stop acquiring and close the stream (safe to call twice; make a new source to start again)."""
        self.inlet.stop()

    def __enter__(self) -> EEGSource:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _on_chunk(self, data: np.ndarray, timestamps: np.ndarray, flags: np.ndarray,
                  t_arrival: float) -> None:
        out, newest = self.preprocessor.process(data.T)
        n_before = self._n_in
        self._n_in += len(timestamps)
        if out.shape[1] == 0:
            return
        out_flags = self._taint(flags, newest + n_before, n_before)
        # stamp each sample with the time of the EEG it holds, not of its newest stream sample (the
        # resampler's delay_s later): windows, truth scoring and markers then line up at every rate,
        # and the delay shows as latency (Window.t_last to t_arrival)
        held = timestamps[newest] - self.preprocessor.held_lag_s(newest + n_before)
        self.ring.write(out, held, out_flags)
        self.windower.update(t_arrival)

    def _taint(self, flags: np.ndarray, newest_global: np.ndarray, n_before: int) -> np.ndarray:
        """Flag model-rate samples within the filters' reach of a flagged stream sample."""
        support = self.preprocessor.taint_samples
        out = np.zeros(newest_global.size, dtype=np.uint8)
        if not flags.any() and newest_global[0] - max(self._last_flag.values()) >= support:
            return out
        for bit in FLAG_NAMES:
            positions = np.flatnonzero(flags & bit) + n_before
            index = np.searchsorted(positions, newest_global, side="right") - 1
            last = np.where(index >= 0, positions[np.maximum(index, 0)] if positions.size else _NEVER,
                            self._last_flag[bit])
            out[newest_global - last < support] |= bit
            if positions.size:
                self._last_flag[bit] = int(positions[-1])
        return out

    def next_window(self, timeout: float | None = None) -> Window | None:
        """The oldest queued window, waiting up to ``timeout`` s; None when none came."""
        return self.windower.next_window(timeout)

    def recent(self, seconds: float) -> tuple[np.ndarray, tuple[str, ...]]:
        """The newest preprocessed samples, for display.

        Returns
        -------
        samples : ndarray, shape (n_chans, n), float32
            Up to ``seconds`` of model-rate samples (fewer at the start).
        labels : tuple of str
            Their channel labels.
        """
        data, _, _ = self.ring.latest(int(round(seconds * self.spec.sfreq)))
        return data, self.labels

    def health(self) -> StreamHealth:
        """Current health figures (cheap; any thread)."""
        inlet = self.inlet
        totals = inlet.state_totals()
        return StreamHealth(
            effective_rate=inlet.effective_rate(), n_samples=inlet.n_samples, gaps=inlet.gaps,
            dropped_windows=self.windower.dropped, coalesced_windows=self.windower.coalesced,
            nan_runs=inlet.nan_runs, reconnects=inlet.reconnects,
            clock_offset=inlet.clock_offset, jitter_ms=inlet.jitter_ms, connected=inlet.connected,
            nominal_rate=self.meta.sfreq if self.meta else 0.0, missing_samples=inlet.missing_samples,
            non_monotonic=inlet.non_monotonic, windows=self.windower.n_windows,
            flagged_windows=self.windower.n_flagged, bad_channels=inlet.bad_channels(),
            bad_channel_seconds=inlet.bad_channel_seconds(),
            delay_s=self.preprocessor.delay_s if self.preprocessor else 0.0, error=inlet.error,
            refused=inlet.refused, interpolated_channels=self.interpolated_labels,
            state=totals["state"], state_s=inlet.seconds_in_state(), stalls=totals["stalls"],
            stalled_s=totals["stalled_s"], losses=totals["losses"], lost_s=totals["lost_s"],
            ended=inlet.ended,
        )
