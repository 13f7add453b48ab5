"""Frame clock: every global frame emitted exactly once, in order, whatever the hop."""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.decoder.frameclock import FrameClock, SampleClock, segment_start_sample
from eegmusic.decoder.melspec import FRAME_PERIOD_S
from hypothesis import given, settings
from hypothesis import strategies as st


def _frames_for(start: int) -> np.ndarray:
    """A window prediction whose every value encodes the audio sample its frame sits at."""
    return np.tile((start + 512 * np.arange(44)).astype(np.float32), (2, 1))


def _run(clock: FrameClock, n_ends) -> list:
    emitted = []
    for n_end in n_ends:
        start = segment_start_sample(n_end, lag_s=clock.lag_s)
        em = clock.push(n_end, _frames_for(start))
        emitted.append(em)
    return emitted


@pytest.mark.parametrize("hop", [1, 7, 12, 13, 25, 31, 62, 124])
@pytest.mark.parametrize("lag_s", [0.0, 0.2, 0.333])
def test_every_frame_once_for_fixed_hops(hop, lag_s):
    clock = FrameClock(lag_s=lag_s, n_mels=2)
    n_ends = 125 + hop * np.arange(4000 // hop + 50)
    emitted = _run(clock, n_ends)
    ks = np.concatenate([em.k0 + np.arange(em.n_frames) for em in emitted])
    np.testing.assert_array_equal(ks, np.arange(ks[0], ks[0] + len(ks)))     # none missing, none twice
    assert sum(em.skipped for em in emitted) == 0
    # The last frame emitted by each hop is the newest the window has: frame time <= segment end.
    for n_end, em in zip(n_ends, emitted, strict=True):
        if em.n_frames:
            k_last = em.k0 + em.n_frames - 1
            t_end = n_end / 125 - lag_s
            assert k_last * FRAME_PERIOD_S <= t_end - 43 * FRAME_PERIOD_S + 1 + 1e-9
            assert (k_last + 1) * FRAME_PERIOD_S > t_end - 1 + 43 * FRAME_PERIOD_S - 1e-6


@settings(max_examples=25, deadline=None)
@given(hops=st.lists(st.integers(min_value=0, max_value=110), min_size=200, max_size=1500),
       lag_ms=st.integers(min_value=0, max_value=500), first=st.integers(min_value=125, max_value=10**6))
def test_every_frame_once_for_random_hops(hops, lag_ms, first):
    clock = FrameClock(lag_s=lag_ms / 1000, n_mels=2)
    n_ends = first + np.cumsum(hops)
    emitted = _run(clock, n_ends)
    ks = np.concatenate([em.k0 + np.arange(em.n_frames) for em in emitted])
    np.testing.assert_array_equal(ks, np.arange(ks[0], ks[0] + len(ks)))
    values = np.concatenate([em.frames[0] for em in emitted])
    # Each frame's value is the window frame nearest to it: within half a frame period.
    assert np.all(np.abs(values - 512.0 * ks) <= 256)
    assert clock.frames_emitted == len(ks)


def test_thousands_of_hops_not_multiple_of_frame_period():
    clock = FrameClock(n_mels=2)
    n_ends = 125 + 12 * np.arange(5000)   # a 96-ms hop = 4.13 frame periods
    emitted = _run(clock, n_ends)
    counts = np.array([em.n_frames for em in emitted[1:]])
    assert set(counts) <= {4, 5}                             # 4 or 5 new frames per hop
    total = 1 + counts.sum()
    k_first, k_last = emitted[0].k0, emitted[-1].k0 + emitted[-1].n_frames - 1
    assert total == k_last - k_first + 1


def test_window_frames_are_model_output_bit_for_bit(rng):
    clock = FrameClock()
    prediction = rng.standard_normal((128, 44)).astype(np.float32)
    em = clock.push(125 * 10, prediction)
    np.testing.assert_array_equal(em.frames, prediction[:, em.window_frame])
    em = clock.push(125 * 10 + 12, prediction)
    np.testing.assert_array_equal(em.frames, prediction[:, em.window_frame])
    assert em.window_frame.max() in (42, 43)         # the newest frames of the window


def test_gap_counts_skipped_frames_and_restart_resets():
    clock = FrameClock(n_mels=2)
    _run(clock, [125, 137, 149])
    next_k = clock.next_k
    em = _run(clock, [149 + 125 * 3])[0]                     # 3 s without windows
    assert em.skipped > 0 and em.k0 == next_k + em.skipped
    assert clock.frames_skipped == em.skipped
    em = _run(clock, [125])[0]                               # the stream went back: a new source
    assert em.n_frames == 1 and clock.frames_skipped == 0


@pytest.mark.parametrize("smooth", [1, 4, 10])
def test_smoothing_averages_and_delays(smooth):
    clock = FrameClock(n_mels=2, smooth_frames=smooth)
    assert clock.added_latency_s == pytest.approx(smooth * 512 / 22050)
    rng = np.random.default_rng(smooth)
    n_ends = 125 + 12 * np.arange(300)
    emitted = [clock.push(n_end, rng.standard_normal((2, 44)).astype(np.float32)) for n_end in n_ends]
    ks = np.concatenate([em.k0 + np.arange(em.n_frames) for em in emitted])
    np.testing.assert_array_equal(ks, np.arange(ks[0], ks[0] + len(ks)))
    plain = _run(FrameClock(n_mels=2), n_ends)
    assert plain[-1].k0 + plain[-1].n_frames - 1 - ks[-1] == smooth      # emitted `smooth` frames later
    # Pure noise windows: a frame averaged over m windows has std 1/sqrt(m); m ~ 1 + smooth / 4.3.
    values = np.concatenate([em.frames[0] for em in emitted])[20:]
    expected = 1 / np.sqrt(1 + smooth / 4.3)
    assert abs(np.std(values) - expected) < 0.15


def test_bad_arguments():
    with pytest.raises(ValueError, match="smooth_frames"):
        FrameClock(smooth_frames=44)
    with pytest.raises(ValueError, match="initial_frames"):
        FrameClock(initial_frames=0)


@pytest.mark.parametrize("hop", [12, 13, 31])
def test_sample_clock_continuous_and_crossfaded(hop):
    clock = SampleClock(crossfade=128)
    t = np.arange(22050 * 60) / 22050.0
    signal = np.sin(2 * np.pi * 3.0 * t).astype(np.float32)      # the "true" stimulus
    chunks, firsts = [], []
    for n_end in 125 + hop * np.arange(1, 200):
        start = segment_start_sample(n_end)
        first, out = clock.push(n_end, signal[start:start + 22050])
        if len(out):
            firsts.append(first)
            chunks.append(out)
    for f0, c0, f1 in zip(firsts[:-1], chunks[:-1], firsts[1:], strict=True):
        assert f0 + len(c0) == f1                                  # contiguous, no overlap
    joined = np.concatenate(chunks)
    np.testing.assert_allclose(joined, signal[firsts[0]:firsts[0] + len(joined)], atol=1e-6)
    assert clock.added_latency_s == pytest.approx(128 / 22050)


def test_sample_clock_counts_the_samples_no_window_covered_across_a_reset():
    """The pipeline reads the clock's count as the run's total: a reset (a restart, a time jump) set it back
    to 0, so the summary's count fell after every one."""
    clock = SampleClock(crossfade=128, initial_samples=512)
    window = np.zeros(22050, np.float32)
    clock.push(250, window)
    clock.push(250 + 250, window)           # 2 s later: those 2 s less the 512 the new window plays
    skipped = segment_start_sample(500) - segment_start_sample(250) - 512
    assert clock.samples_skipped == skipped > 0
    clock.reset()
    clock.push(1000, window)                # afresh after the reset: nothing skipped, the count kept
    assert clock.samples_skipped == skipped


@pytest.mark.parametrize("output_sfreq", [11025.0, 16000.0, 44100.0])
def test_sample_clock_resamples_a_waveform_model_of_another_rate(output_sfreq):
    """A model declaring ``output.sfreq`` 11025 gives 11025 samples a window: they were played as 22050
    Hz ones, an octave high and half of each second missing. Resampled per window, the joined sound is
    the stimulus at 22050 Hz (the resampling filter's edge lies in the crossfaded tail)."""
    n = int(output_sfreq)                                           # one second at the model's rate
    clock = SampleClock(n_samples=n, output_sfreq=output_sfreq, initial_samples=512)
    assert clock.n_samples == 22050
    chunks, firsts = [], []
    for n_end in 125 + 3 * np.arange(1, 60):                        # 24-ms hops
        start_s = segment_start_sample(n_end) / 22050.0
        window = np.sin(2 * np.pi * 440.0 * (start_s + np.arange(n) / output_sfreq)).astype(np.float32)
        first, out = clock.push(n_end, window)
        firsts.append(first)
        chunks.append(out)
    for f0, c0, f1 in zip(firsts[:-1], chunks[:-1], firsts[1:], strict=True):
        assert f0 + len(c0) == f1                                   # contiguous, no overlap
    joined = np.concatenate(chunks)
    expected = np.sin(2 * np.pi * 440.0 * (firsts[0] + np.arange(len(joined))) / 22050.0)
    np.testing.assert_allclose(joined, expected, atol=0.01)
