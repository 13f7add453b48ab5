"""The output queue's adaptive cushion, driven by a simulated supply against a device clock.

The device is simulated (it consumes ``rate`` samples a second, exactly): what is under test is the
controller's decisions given arrival times, which a real sound server would only make noisy. The
pipeline-level behaviour through a real sink is in test_pipeline.py and test_latency_e2e.py.
"""

from __future__ import annotations

import numpy as np
from eegmusic.decoder.output_queue import AdaptivePlayback, EmissionQueue

RATE = 22050
HOP = 1024          # samples per chunk (2 mel frames, 46.4 ms)


def _simulate(playback, lateness_s, hop=HOP):
    """Feed chunk k at k * hop / RATE + lateness_s[k]; return per-chunk (underrun, queued_s after)."""
    queued = 0.0          # seconds waiting in the device's queue
    t_prev = None
    underruns = np.zeros(len(lateness_s), bool)
    level = np.zeros(len(lateness_s))
    for k, late in enumerate(lateness_s):
        now = 10.0 + k * hop / RATE + late
        if t_prev is not None:
            queued -= now - t_prev
            if queued < 0:
                underruns[k] = True
                queued = 0.0
        t_prev = now
        pad, trim = playback.plan(hop, queued, now)
        assert pad >= 0 and 0 <= trim <= hop
        queued += (pad + hop - trim) / RATE
        level[k] = queued
    return underruns, level


def _jitter_then_calm(rng, n_jitter, n_calm, max_late_s=0.03):
    # chunks late by up to 30 ms (a loaded machine), then exactly on time
    return np.concatenate([rng.uniform(0, max_late_s, n_jitter), np.zeros(n_calm)])


def test_jitter_causes_no_underruns_and_latency_falls_when_it_stops(rng):
    n = int(20 / (HOP / RATE))                           # 20 s of chunks each phase
    lateness = _jitter_then_calm(rng, n, n)
    playback = AdaptivePlayback(rate=RATE, initial_s=0.05)
    underruns, level = _simulate(playback, lateness)
    warm = int(1.0 / (HOP / RATE))
    assert not underruns[warm:].any(), np.flatnonzero(underruns)
    during = np.percentile(level[n - 200:n], 90)         # queued just after a write, end of the jitter
    after = np.median(level[-50:])                       # the same, 15+ s into the calm
    assert during > 0.03 + HOP / RATE                    # the cushion covered the 30-ms jitter
    assert after < during - 0.015                        # ... and shrank once it stopped
    assert after < playback.margin_s + 0.01 + HOP / RATE + 1e-3   # margin + dead band + the chunk itself


def test_a_cushion_blind_to_jitter_underruns_under_the_same_supply(rng):
    """The control: a cushion of the margin (5 ms) only, lateness ignored, trimmed back within 0.2 s."""
    n = int(20 / (HOP / RATE))
    lateness = _jitter_then_calm(rng, n, 0)
    blind = AdaptivePlayback(rate=RATE, initial_s=0.0, margin_s=0.005, quantile=0.0, history_s=0.2,
                             hold_s=0.0, cover_late_hop=False)
    underruns, _ = _simulate(blind, lateness)
    assert underruns.sum() >= 10                         # the adaptive cushion: none after 1 s


def test_a_stall_is_trimmed_not_kept(rng):
    """A device that took 1 s of audio without playing it: the backlog is skipped, not kept as delay."""
    playback = AdaptivePlayback(rate=RATE, initial_s=0.05)
    for k in range(100):
        playback.plan(HOP, 0.05, 10.0 + k * HOP / RATE)
    before = playback.trimmed
    pad, trim = playback.plan(HOP, 1.0, 10.0 + 100 * HOP / RATE)
    assert pad == 0 and trim == HOP
    assert playback.trimmed - before == HOP


def test_a_supply_gap_restarts_the_history():
    """Frames skipped for a second are a gap, not jitter: the target does not jump to a second."""
    playback = AdaptivePlayback(rate=RATE, initial_s=0.05)
    for k in range(50):
        playback.plan(HOP, 0.05, 10.0 + k * HOP / RATE)
    playback.plan(HOP, 0.0, 10.0 + 50 * HOP / RATE + 1.0)
    assert playback.target_s < 0.1


def test_emission_queue_drops_oldest():
    queue = EmissionQueue(maxlen=2)
    for item in range(3):
        queue.put(item)
    assert queue.dropped == 1
    assert [queue.get(0.0), queue.get(0.0), queue.get(0.0)] == [1, 2, None]


def test_target_covers_a_high_quantile_of_lateness(rng):
    """Chunks late by U(0, 40 ms): a chunk comes at most 40 ms later than the audio before it lasts."""
    playback = AdaptivePlayback(rate=RATE, initial_s=0.0, margin_s=0.0, quantile=0.99)
    _simulate(playback, rng.uniform(0, 0.04, 400))
    assert 0.03 < playback.target_s <= 0.04
    median = AdaptivePlayback(rate=RATE, initial_s=0.0, margin_s=0.0, quantile=0.5)
    _simulate(median, rng.uniform(0, 0.04, 400))
    assert median.target_s < 0.005                        # half the chunks come no later than due


def test_a_start_up_cushion_is_trimmed_within_the_settle_time(rng):
    """Not a whole history: the prebuffer's excess is gone settle_s after the start on a calm supply."""
    n = int(6 / (HOP / RATE))
    playback = AdaptivePlayback(rate=RATE, initial_s=0.05, settle_s=2.0, history_s=10.0)
    underruns, level = _simulate(playback, rng.uniform(0, 0.002, n))
    assert not underruns[1:].any()
    chunks_per_s = RATE / HOP
    assert np.median(level[:int(1.5 * chunks_per_s)]) > 0.05 + HOP / RATE   # the prebuffer, kept at first
    assert np.median(level[int(3 * chunks_per_s):]) < playback.margin_s + 0.01 + 0.002 + HOP / RATE + 1e-3


def _rare_late_hops(n_chunks, every_s, late_s, hop):
    """On time except one chunk ``late_s`` late every ``every_s`` seconds (a busy machine's hiccups)."""
    lateness = np.zeros(n_chunks)
    per = int(round(every_s / (hop / RATE)))
    lateness[per::per] = late_s
    for k in range(1, n_chunks):           # the chunks made meanwhile come right after it, not before
        lateness[k] = max(lateness[k], lateness[k - 1] - hop / RATE)
    return lateness


def test_a_late_hop_every_few_seconds_costs_one_underrun_not_one_each():
    """Measured through PulseAudio at load 9: chunks 30-70 ms late every 5-20 s. The cushion the first
    late hop asked for is held, so the later ones find it; once they stop, the latency falls again."""
    hop = 512                                             # the default hop: one frame, 23.2 ms
    n = int(60 / (hop / RATE))
    lateness = np.concatenate([_rare_late_hops(n, 5.0, 0.04, hop), np.zeros(n // 2)])
    playback = AdaptivePlayback(rate=RATE, initial_s=0.05)
    underruns, level = _simulate(playback, lateness, hop=hop)
    assert underruns.sum() <= 1, np.flatnonzero(underruns) * hop / RATE
    late = lateness > 0
    assert np.median(level[:n][late[:n]][2:]) > 0.04      # the cushion was there for the later ones
    assert np.median(level[-50:]) < playback.margin_s + 0.01 + hop / RATE + 1e-3   # and gone 30 s after


def test_a_cushion_trimmed_right_after_each_top_up_underruns_at_every_late_hop():
    """The control: the same supply with the hold off (the cushion trimmed after the settle time)."""
    hop = 512
    n = int(60 / (hop / RATE))
    unheld = AdaptivePlayback(rate=RATE, initial_s=0.05, hold_s=0.0)
    underruns, _ = _simulate(unheld, _rare_late_hops(n, 5.0, 0.04, hop), hop=hop)
    assert underruns.sum() >= 8                           # 11 late hops in 60 s
