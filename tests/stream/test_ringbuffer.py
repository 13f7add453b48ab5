"""The ring buffer: write index, wrap-around, copies, overrun."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.stream.ringbuffer import FLAG_GAP, FLAG_NAN, RingBuffer, flag_reason


def test_wraps_and_returns_exact_samples(rng):
    ring = RingBuffer(3, 10)
    signal = rng.standard_normal((3, 37)).astype(np.float32)
    times = np.arange(37) * 0.01
    written = 0
    for size in (1, 4, 9, 10, 3, 7, 1, 2):
        ring.write(signal[:, written:written + size], times[written:written + size])
        written += size
        data, stamps, _ = ring.latest(10)
        keep = min(10, written)
        np.testing.assert_array_equal(data, signal[:, written - keep:written])
        np.testing.assert_array_equal(stamps, times[written - keep:written])
    assert ring.n_written == 37 and ring.first_available == 27


def test_read_returns_a_copy():
    ring = RingBuffer(1, 4)
    ring.write(np.ones((1, 4)), np.zeros(4))
    data, _, _ = ring.read(0, 4)
    ring.write(np.full((1, 2), 5.0), np.zeros(2))
    assert np.all(data == 1.0)


def test_chunk_larger_than_capacity_keeps_newest():
    ring = RingBuffer(1, 5)
    ring.write(np.arange(12.0)[None], np.arange(12.0), np.arange(12, dtype=np.uint8))
    data, times, flags = ring.latest(5)
    assert data[0].tolist() == [7, 8, 9, 10, 11] and ring.n_written == 12
    assert flags.tolist() == [7, 8, 9, 10, 11] and times[-1] == 11


@pytest.mark.parametrize(("start", "n"), [(0, 3), (8, 3), (-1, 2)])
def test_read_outside_held_range_raises(start, n):
    ring = RingBuffer(1, 5)
    ring.write(np.zeros((1, 10)), np.zeros(10))
    with pytest.raises(IndexError, match="not in the ring buffer"):
        ring.read(start, n)


def test_wrong_channel_count_raises():
    ring = RingBuffer(2, 5)
    with pytest.raises(ValueError, match="2 channels"):
        ring.write(np.zeros((3, 1)), np.zeros(1))


def test_flag_reason():
    assert flag_reason(FLAG_GAP | FLAG_NAN) == "gap+nan" and flag_reason(0) == ""
