"""A preallocated multichannel ring buffer with a write index, per-sample timestamps and flags.

One thread writes (the acquisition thread), any thread reads. Writing copies the new samples into
the preallocated arrays at the write index; nothing is reallocated per chunk. A reader asks for a
range of absolute sample indices (counted since the buffer was created or reset) and gets a copy,
so the writer can go on while the reader works on its data.
"""

from __future__ import annotations

import threading

import numpy as np

FLAG_GAP = 1
"""Sample follows a timestamp jump of more than 1.5 sample periods (samples were lost)."""

FLAG_NAN = 2
"""Sample has a non-finite value (NaN or Inf) in at least one channel."""

FLAG_TIME = 4
"""Sample's timestamp is not later than its predecessor's (non-monotonic timestamps)."""

FLAG_NAMES = {FLAG_GAP: "gap", FLAG_NAN: "nan", FLAG_TIME: "time"}


def flag_reason(flags: int) -> str:
    """Return a short reason such as ``"gap+nan"`` for a combination of ``FLAG_*`` bits."""
    return "+".join(name for bit, name in FLAG_NAMES.items() if flags & bit)


class RingBuffer:
    """Fixed-capacity ring of samples (channels × time) with timestamps and flags.

    Parameters
    ----------
    n_chans : int
        Number of channels.
    capacity : int
        Number of samples kept; older samples are overwritten.
    dtype : numpy dtype
        Sample type (float32 by default).

    Examples
    --------
    >>> ring = RingBuffer(2, 4)
    >>> ring.write(np.ones((2, 3), np.float32), np.arange(3.0))
    >>> data, times, flags = ring.read(1, 2)
    >>> data.shape, times.tolist()
    ((2, 2), [1.0, 2.0])
    """

    def __init__(self, n_chans: int, capacity: int, dtype=np.float32):
        if n_chans < 1 or capacity < 1:
            raise ValueError(f"ring buffer needs n_chans >= 1 and capacity >= 1, got {n_chans}, {capacity}")
        self.n_chans = int(n_chans)
        self.capacity = int(capacity)
        self._data = np.zeros((self.n_chans, self.capacity), dtype=dtype)
        self._times = np.zeros(self.capacity, dtype=np.float64)
        self._flags = np.zeros(self.capacity, dtype=np.uint8)
        self._lock = threading.Lock()
        self._n_written = 0

    @property
    def n_written(self) -> int:
        """Number of samples written since creation or :meth:`reset` (the write index)."""
        return self._n_written

    @property
    def first_available(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self._n_written - self.capacity)

    def reset(self) -> None:
        """Forget every sample; the write index starts again at 0."""
        with self._lock:
            self._n_written = 0

    def write(self, data: np.ndarray, times: np.ndarray, flags: np.ndarray | int = 0) -> None:
        """Append samples.

        Parameters
        ----------
        data : ndarray, shape (n_chans, n)
            New samples (any real dtype; cast to the buffer's). A transposed view of a
            (n, n_chans) chunk is fine.
        times : ndarray, shape (n,)
            Timestamps in seconds (LSL clock).
        flags : ndarray of uint8, shape (n,), or int
            ``FLAG_*`` bits per sample.
        """
        n = data.shape[1]
        if data.shape[0] != self.n_chans:
            raise ValueError(f"ring buffer has {self.n_chans} channels, got data with {data.shape[0]}")
        if n == 0:
            return
        if n > self.capacity:  # only the newest samples can be kept
            skip = n - self.capacity
            data, times = data[:, skip:], times[skip:]
            if not np.isscalar(flags):
                flags = flags[skip:]
            with self._lock:
                self._n_written += skip
            n = self.capacity
        with self._lock:
            start = self._n_written % self.capacity
            first = min(n, self.capacity - start)
            self._data[:, start:start + first] = data[:, :first]
            self._times[start:start + first] = times[:first]
            self._flags[start:start + first] = flags if np.isscalar(flags) else flags[:first]
            if first < n:
                rest = n - first
                self._data[:, :rest] = data[:, first:]
                self._times[:rest] = times[first:]
                self._flags[:rest] = flags if np.isscalar(flags) else flags[first:]
            self._n_written += n

    def read(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copy ``n`` samples starting at absolute index ``start``.

        Returns
        -------
        data : ndarray, shape (n_chans, n)
        times : ndarray, shape (n,)
        flags : ndarray of uint8, shape (n,)

        Raises
        ------
        IndexError
            When part of the range was overwritten already or is not written yet.
        """
        with self._lock:
            return self._read_locked(start, n)

    def _read_locked(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if start < self.first_available or start + n > self._n_written or n < 0:
            raise IndexError(
                f"samples [{start}, {start + n}) are not in the ring buffer "
                f"(it holds [{self.first_available}, {self._n_written}))"
            )
        idx = (start + np.arange(n)) % self.capacity
        return self._data[:, idx], self._times[idx], self._flags[idx]

    def latest(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copy the newest ``min(n, available)`` samples (see :meth:`read`)."""
        with self._lock:
            available = self._n_written - self.first_available
            n = max(0, min(int(n), available))
            return self._read_locked(self._n_written - n, n)
