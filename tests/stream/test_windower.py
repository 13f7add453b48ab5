"""Windows from the model-rate ring buffer: hop, content, flags, bounded queue."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.stream.ringbuffer import FLAG_GAP, FLAG_NAN, RingBuffer
from eegmusic.stream.windower import Windower


def _feed(ring, windower, n, start=0, flags=0):
    data = np.tile(np.arange(start, start + n, dtype=np.float32), (2, 1))
    ring.write(data, np.arange(start, start + n) / 125.0, flags)
    return windower.update(t_arrival=123.0)


def test_windows_every_hop_with_exact_content():
    ring = RingBuffer(2, 1000)
    windower = Windower(ring, hop_s=0.1, queue_windows=100)
    made = sum(_feed(ring, windower, 1, start=i) for i in range(375))  # chunks of one sample
    # ends at 125 + floor(12.5 k) <= 375  ->  k = 0..20
    assert made == 21
    windows = [windower.next_window(0) for _ in range(made)]
    starts = [w.sample_index for w in windows]
    assert starts[:5] == [0, 12, 25, 37, 50] and starts[-1] == 250
    for window in windows:
        assert window.data.shape == (2, 125) and window.data.dtype == np.float32
        start = window.sample_index
        np.testing.assert_array_equal(window.data[0], np.arange(start, start + 125))
        assert window.t_last == pytest.approx((window.sample_index + 124) / 125.0)
        assert window.t_arrival == 123.0 and not window.flagged and window.reason == ""
    assert windower.next_window(timeout=0.01) is None


def test_flagged_samples_flag_every_window_touching_them():
    ring = RingBuffer(2, 1000)
    windower = Windower(ring, hop_s=0.1, queue_windows=100)
    flags = np.zeros(400, dtype=np.uint8)
    flags[200] = FLAG_GAP
    flags[210:215] = FLAG_NAN
    _feed(ring, windower, 400, flags=flags)
    windows = []
    while (window := windower.next_window(0)) is not None:
        windows.append(window)
    for window in windows:
        span = range(window.sample_index, window.sample_index + 125)
        expect = {"gap"} if 200 in span else set()
        if any(i in span for i in range(210, 215)):
            expect.add("nan")
        assert window.flagged == bool(expect)
        assert set(filter(None, window.reason.split("+"))) == expect
    assert windower.n_flagged == sum(w.flagged for w in windows) > 0


def test_slow_consumer_drops_oldest_and_counts():
    ring = RingBuffer(2, 2000)
    windower = Windower(ring, hop_s=0.1, queue_windows=3)
    _feed(ring, windower, 125 + 125 * 2)  # 21 windows made at once
    assert windower.pending() == 3 and windower.n_windows == 21
    assert [windower.next_window(0).sample_index for _ in range(3)] == [225, 237, 250]
    # of the 18 pushed out, those overlapping the newest (starts 137-212) are covered by it: coalesced;
    # the 11 starting at 0-125 end before it begins, and their frames are lost: dropped
    assert (windower.coalesced, windower.dropped) == (7, 11)
    # windows of an earlier chunk pushed out by a later one waited for a busy consumer: dropped
    _feed(ring, windower, 25, start=375)
    _feed(ring, windower, 13, start=400)
    _feed(ring, windower, 12, start=413)
    _feed(ring, windower, 13, start=425)
    _feed(ring, windower, 12, start=438)
    assert windower.pending() == 3 and (windower.coalesced, windower.dropped) == (7, 14)


def test_windows_overwritten_before_made_count_as_dropped():
    ring = RingBuffer(1, 200)
    windower = Windower(ring, hop_s=0.1, queue_windows=2)
    ring.write(np.zeros((1, 1000)), np.zeros(1000))
    windower.update(0.0)
    # 71 windows end by sample 1000; the ring holds [800, 1000): 64 are gone, 7 made, 5 of those pushed
    # out. The newest starts at 875: the 5 pushed out (800-850) and the gone ones starting after 750
    # (762, 775, 787) overlap it, so it covers their frames; the other 61 gone ones are lost
    assert windower.n_windows == 7 and windower.pending() == 2
    assert (windower.coalesced, windower.dropped) == (5 + 3, 61)


@pytest.mark.parametrize(("kwargs", "message"), [({"hop_s": 0}, "hop_s"),
                                                  ({"queue_windows": 0}, "queue_windows")])
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Windower(RingBuffer(1, 200), **kwargs)


@pytest.mark.parametrize("offset", [0.0, 1.3])
def test_a_grid_offset_ends_each_window_at_the_first_sample_at_or_after_the_grid(offset):
    """The decoder's frame grid (hop 512/22050 s = 2.9025 samples): windows end right after each frame."""
    ring = RingBuffer(2, 1000)
    hop = 512 / 22050
    windower = Windower(ring, hop_s=hop, queue_windows=100, grid_offset=offset)
    made = sum(_feed(ring, windower, 1, start=i) for i in range(200))
    ends = np.array([windower.next_window(0).sample_index + 125 for _ in range(made)])
    grid = np.arange(made) * hop * 125 + offset
    np.testing.assert_array_equal(ends, 125 + np.ceil(grid - 1e-9).astype(int))
    assert ((ends - 125 >= grid - 1e-9) & (ends - 125 < grid + 1)).all()
    plain = Windower(RingBuffer(2, 1000), hop_s=hop)
    assert any(plain._window_end(k) != e for k, e in enumerate(ends))   # not the floor grid


def test_a_pushed_out_window_is_covered_only_if_the_newest_holds_the_frames_it_adds():
    """At a 0.3-s hop a 150-sample chunk completes windows starting at 37, 75, 112 and 150; with a queue
    of one the newest, [150, 275), is kept. The frames the 37 window adds (after the previous window's
    end, 125) start before 150, so they are lost: dropped. The 75 and 112 windows add frames from 162
    and 200 on, which the newest holds: coalesced. (Counted as overlap, all three were coalesced.)"""
    ring = RingBuffer(2, 1000)
    windower = Windower(ring, hop_s=0.3, queue_windows=1)
    _feed(ring, windower, 125)
    assert windower.next_window(0).sample_index == 0
    _feed(ring, windower, 150, start=125)
    assert windower.next_window(0).sample_index == 150
    assert (windower.coalesced, windower.dropped) == (2, 1)
