"""Stream samples → model input, with one definition for offline and online use.

The pipeline, per :class:`~stream.spec.PreprocessingSpec`:

1. non-finite samples (NaN, Inf) and values beyond :data:`~stream.spec.MAX_ABS_UV` become 0 (the
   inlet counts and flags them; filters must not be poisoned by them),
2. channel mapping by label to the model's channels (:mod:`stream.channels`),
3. resampling from the stream rate to the model rate (:mod:`stream.resample`): output sample ``i``
   holds the EEG of ``i / spec.sfreq`` s after the first stream sample at every stream rate (no lag);
   live it comes :attr:`StreamingPreprocessor.delay_s` later (10 model samples, 80 ms at 125 Hz), as
   latency,
4. causal high-pass (Butterworth, order 2) and notch (quality 30) filters, zero initial state,
5. re-reference (``"none"`` or ``"average"``).

Every step is either per sample or causal with carried state, so :class:`StreamingPreprocessor`
applied chunk by chunk (any chunk sizes, including 1) gives the same samples as
:func:`preprocess_recording` applied to the whole recording; the latter simply runs the former on one
chunk, the recording followed by its last sample held for one filter support (the resampler's flush:
the last ``delay_s`` of samples, which live would still wait for). With the default spec, a 125-Hz
recording in model channel order comes back unchanged.
"""

from __future__ import annotations

import numpy as np
from eegmusic.stream.channels import channel_map
from eegmusic.stream.errors import ConfigError, DataFormatError
from eegmusic.stream.resample import StreamingResampler, flush_padded
from eegmusic.stream.spec import MAX_ABS_UV, REFERENCES, PreprocessingSpec

# scipy.signal is imported where it is used: it takes 0.7-1 s to import, and a decode imports it in its
# vocoder's thread while the stream opens (decoder.pipeline._ready_vocoder), not before it starts

NOTCH_QUALITY = 30.0
HIGHPASS_ORDER = 2


def filter_sos(spec: PreprocessingSpec) -> np.ndarray | None:
    """Second-order sections of the spec's causal filters at ``spec.sfreq``, or None for none.

    Raises
    ------
    ConfigError
        For a cut-off or notch frequency outside (0, Nyquist).
    """
    from scipy.signal import butter, iirnotch, tf2sos

    nyquist = spec.sfreq / 2
    sections = []
    if spec.highpass_hz is not None:
        if not 0 < spec.highpass_hz < nyquist:
            raise ConfigError(
                f"high-pass cut-off {spec.highpass_hz} Hz must lie between 0 and {nyquist:g} Hz; fix the spec"
            )
        sections.append(butter(HIGHPASS_ORDER, spec.highpass_hz, "highpass", fs=spec.sfreq, output="sos"))
    if spec.notch_hz is not None:
        if not 0 < spec.notch_hz < nyquist:
            raise ConfigError(f"notch {spec.notch_hz} Hz must lie between 0 and {nyquist:g} Hz; fix the spec")
        b, a = iirnotch(spec.notch_hz, NOTCH_QUALITY, fs=spec.sfreq)
        sections.append(tf2sos(b, a))
    return np.concatenate(sections) if sections else None


class StreamingPreprocessor:
    """Turn stream chunks into model-rate, model-channel samples, carrying filter state.

    Parameters
    ----------
    sfreq : float
        Stream rate in Hz.
    labels : sequence of str
        The stream's channel labels, in stream order.
    spec : PreprocessingSpec
        What the model expects.
    impute_missing : bool
        Fill missing model channels by spherical-spline interpolation instead of raising.
    stream_name : str
        Used in error messages.
    stream_positions, model_positions : ndarray, shape (n, 3), optional
        Electrode positions in metres, head frame, of the stream's and the model's channels (NaN rows
        where unknown; looked up by label when not given), for the interpolation.
    max_missing : int, optional
        Most model channels the model tolerates missing; None for no limit.

    Raises
    ------
    StreamError
        Missing channels, duplicate labels, or a rate that cannot be resampled.
    ConfigError
        An invalid spec (reference, filter frequencies).
    """

    def __init__(self, sfreq: float, labels, spec: PreprocessingSpec | None = None, *,
                 impute_missing: bool = False, stream_name: str = "the stream", stream_positions=None,
                 model_positions=None, max_missing: int | None = None):
        self.spec = spec if spec is not None else PreprocessingSpec()
        if self.spec.reference not in REFERENCES:
            raise ConfigError(
                f"reference {self.spec.reference!r} is not known; use one of {', '.join(REFERENCES)}"
            )
        self.sfreq = float(sfreq)
        self.labels = tuple(labels)
        self.channel_map = channel_map(self.labels, self.spec.channels, impute_missing=impute_missing,
                                       stream_name=stream_name, stream_positions=stream_positions,
                                       model_positions=model_positions, max_missing=max_missing)
        self.resampler = StreamingResampler(self.sfreq, len(self.spec.channels), self.spec.sfreq)
        self._sos = filter_sos(self.spec)
        if self._sos is not None:
            from scipy.signal import sosfilt  # filter_sos imported the module: bound once, not per chunk

            self._sosfilt = sosfilt
        self.reset()

    @property
    def n_chans(self) -> int:
        """Number of output (model) channels."""
        return len(self.spec.channels)

    @property
    def delay_s(self) -> float:
        """How long after the instant an output sample holds its newest stream sample arrives, in
        seconds: the resampler's group delay (0 when the stream is at the model rate)."""
        return self.resampler.delay_s

    def held_lag_s(self, newest: np.ndarray) -> np.ndarray:
        """Seconds to subtract from the timestamps of output samples' newest stream samples to get the
        time of the EEG they hold (``delay_s``, less a fraction of a stream period at rates that are
        not a multiple of the model's).

        Parameters
        ----------
        newest : ndarray of int, shape (m,)
            Newest stream samples as indices since :meth:`reset` (``newest`` of :meth:`process` plus
            the stream samples before that chunk).

        Returns
        -------
        lag_s : ndarray, shape (m,)
        """
        return self.resampler.held_lag_s(newest)

    @property
    def support(self) -> int:
        """How many of the newest stream samples one output sample's FIR part depends on."""
        return self.resampler.support

    @property
    def settle_s(self) -> float:
        """Rough settling time of the causal IIR filters in seconds (0 without filters).

        A high-pass at ``f`` Hz settles in about ``1 / f`` s, a notch of quality Q at ``f`` Hz in
        about ``Q / f`` s. Output samples this long after a bad stream sample are flagged too.
        """
        settle = 0.0
        if self.spec.highpass_hz is not None:
            settle = max(settle, 1.0 / self.spec.highpass_hz)
        if self.spec.notch_hz is not None:
            settle = max(settle, NOTCH_QUALITY / self.spec.notch_hz)
        return settle

    @property
    def taint_samples(self) -> int:
        """How many stream samples after a bad one (itself included) can carry its trace."""
        return self.support + int(np.ceil(self.settle_s * self.sfreq))

    def reset(self) -> None:
        """Forget all past samples (filter and resampler state back to zero)."""
        self.resampler.reset()
        if self._sos is not None:
            self._zi = np.zeros((self._sos.shape[0], self.n_chans, 2))

    def process(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Preprocess the next chunk.

        Parameters
        ----------
        chunk : ndarray, shape (n_stream_chans, n)
            Next samples in stream units (µV), any real dtype.

        Returns
        -------
        out : ndarray, shape (n_model_chans, m), float32
            The model-rate samples this chunk completes: sample ``n`` since :meth:`reset` holds the EEG
            of ``n / spec.sfreq`` s after the first stream sample.
        newest : ndarray of int, shape (m,)
            For each output sample, the index in ``chunk`` of the newest input it depends on (about
            ``delay_s`` after the instant it holds: :meth:`held_lag_s`).
        """
        chunk = np.asarray(chunk)
        if chunk.ndim != 2 or chunk.shape[0] != len(self.labels):
            raise DataFormatError(
                f"chunk has shape {chunk.shape}; expected ({len(self.labels)}, n_times) for the stream's "
                f"{len(self.labels)} channels"
            )
        eeg = np.array(chunk, dtype=np.float64)  # a copy: the caller's array is never modified
        # a finite 1e308 is no EEG either, and would overflow the filters' state for good; two reductions
        # first (clean data is the normal case, and NaN fails both), the mask only when needed
        if not (eeg.max(initial=0.0) <= MAX_ABS_UV and eeg.min(initial=0.0) >= -MAX_ABS_UV):
            eeg[~(np.abs(eeg) <= MAX_ABS_UV)] = 0.0   # NaN and Inf too
        eeg = self.channel_map.apply(eeg)
        eeg, newest = self.resampler.process(eeg)
        if self._sos is not None and eeg.shape[1]:
            eeg, self._zi = self._sosfilt(self._sos, eeg, axis=1, zi=self._zi)
            if not np.isfinite(self._zi).all():   # never carry a poisoned state into later chunks
                self._zi = np.zeros_like(self._zi)
        if self.spec.reference == "average":
            eeg = eeg - eeg.mean(axis=0, keepdims=True)
        return eeg.astype(np.float32), newest


def preprocess_recording(eeg: np.ndarray, sfreq: float, labels, spec: PreprocessingSpec | None = None, *,
                         impute_missing: bool = False, stream_positions=None, model_positions=None,
                         max_missing: int | None = None) -> np.ndarray:
    """Preprocess a whole recording exactly as the live stream is preprocessed.

    Parameters
    ----------
    eeg : ndarray, shape (n_chans, n_times)
        Recording in µV, channels in the order of ``labels``.
    sfreq : float
        Its rate in Hz.
    labels : sequence of str
        Its channel labels.
    spec : PreprocessingSpec
        The model's preprocessing (default: 125 Hz, model channels, average reference, no filters).
    impute_missing : bool
        Fill missing model channels by spherical-spline interpolation instead of raising.
    stream_positions, model_positions, max_missing
        As for :class:`StreamingPreprocessor`.

    Returns
    -------
    eeg : ndarray, shape (len(spec.channels), n_out), float32
        ``n_out = ceil(n_times * spec.sfreq / sfreq)``; sample ``i`` holds the EEG of
        ``i / spec.sfreq`` s into the recording at every rate (the resampler's delay compensated; its
        last ``delay_s`` from holding the last sample), so a recording at 1000 Hz gives nearly the same
        array as its 125-Hz version. The live stream gives the same samples, each ``delay_s`` later.
        With the default spec, an average-referenced 125-Hz recording in model channel order is
        returned unchanged (as float32).

    Raises
    ------
    DataFormatError
        When ``eeg`` is not 2-D or its channel count differs from ``len(labels)``.
    StreamError
        Missing model channels or an unsupported rate.

    Examples
    --------
    >>> from eegmusic.stream.spec import MODEL_CHANNELS
    >>> x = np.zeros((125, 250))
    >>> preprocess_recording(x, 125.0, MODEL_CHANNELS).shape
    (125, 250)
    """
    eeg = np.asarray(eeg)
    labels = tuple(labels)
    if eeg.ndim != 2 or eeg.shape[0] != len(labels):
        raise DataFormatError(
            f"recording has shape {eeg.shape} but {len(labels)} labels; pass eeg as (n_chans, n_times) "
            "with one label per channel"
        )
    pre = StreamingPreprocessor(sfreq, labels, spec, impute_missing=impute_missing,
                                stream_name="the recording", stream_positions=stream_positions,
                                model_positions=model_positions, max_missing=max_missing)
    n_out = -(-(eeg.shape[1] * pre.resampler.up) // pre.resampler.down)
    out, _ = pre.process(flush_padded(eeg, pre.resampler))
    return out[:, :n_out]
