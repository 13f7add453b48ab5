"""Which decoded frames the replay's markers place: those a marker came after, and never by an ended replay.

A replay sends ``song=NN;t=0.000`` as it starts, before a decode following it has found its marker stream
(or computed the song's mel), so the decode scored nothing of a replay's first second. And a replay stopped
mid-song left its last marker in charge: the next replay's first second was scored against the rest of the
stopped one's song.
"""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.decoder.melspec import FRAME_PERIOD_S, mel_db
from eegmusic.decoder.truth import HELD_S, LiveTruth
from eegmusic.stream.untrusted import REPLAY_END

from tests.decoder.test_truth_baselines import Stimuli


def _feed(truth: LiveTruth, frames: np.ndarray, start: float, first: int = 0) -> None:
    """Frames (128, n), frame k of them stamped ``start + (first + k)`` frame periods, one hop at a time."""
    for k in range(frames.shape[1]):
        truth.update(frames[:, k:k + 1], np.array([start + (first + k) * FRAME_PERIOD_S]), np.array([43]))


@pytest.fixture
def stimuli(rng):
    return Stimuli(rng)


def _truth(stimuli) -> LiveTruth:
    truth = LiveTruth(stimuli)
    for song in (21, 22):
        truth.load(song)
    return truth


def test_frames_before_the_first_marker_are_scored_once_it_places_them(stimuli):
    mel = mel_db(stimuli.audio[21])
    truth = _truth(stimuli)
    start = 100.0                       # the replay's first sample: stimulus time 0
    _feed(truth, mel[:, :43], start)    # its first second, decoded perfectly, before any marker is read
    assert truth.scored_frames == 0
    truth.marker("song=21;t=1.000", start + 43 * FRAME_PERIOD_S)
    _feed(truth, mel[:, 43:80], start, first=43)
    assert truth.scored_frames == 80 and truth.dynamic_r_total() == pytest.approx(1.0)


def test_only_the_newest_frames_are_held(stimuli):
    mel = mel_db(stimuli.audio[21])
    truth = _truth(stimuli)
    n = int(HELD_S / FRAME_PERIOD_S) + 30
    _feed(truth, mel[:, :n], 100.0)
    truth.marker("song=21;t=0.000", 100.0)
    _feed(truth, mel[:, n:n + 1], 100.0, first=n)   # the next hop scores what was held, then itself
    assert truth.scored_frames == int(HELD_S / FRAME_PERIOD_S) + 1


def test_a_replay_stopped_mid_song_does_not_place_the_next_replays_frames(stimuli):
    first, second = mel_db(stimuli.audio[21]), mel_db(stimuli.audio[22])
    truth = _truth(stimuli)
    truth.marker("song=21;t=0.000", 100.0)
    _feed(truth, first[:, :60], 100.0)
    ended = 100.0 + 62.5 * FRAME_PERIOD_S
    truth.marker(REPLAY_END, ended)          # stopped 1.4 s into a 6-s song
    # its last frames, still being decoded when its end was read: its own clock places them
    _feed(truth, first[:, 60:62], 100.0, first=60)
    start = ended + 0.5                      # the next replay, of song 22, half a second later
    _feed(truth, second[:, :43], start)      # its first second: its own markers not read yet
    truth.marker("song=22;t=1.000", start + 43 * FRAME_PERIOD_S)
    _feed(truth, second[:, 43:86], start, first=43)
    by_song = truth.scores_by_song()
    # song 21 has its 62 frames (its stopped song's continuation did not take the next replay's second)
    assert by_song[21]["scored_frames"] == 62 and by_song[21]["dynamic_r_total"] == pytest.approx(1.0)
    # and song 22 got every frame of its own, its first second included
    assert by_song[22]["scored_frames"] == 86 and by_song[22]["dynamic_r_total"] == pytest.approx(1.0)


def test_frames_held_under_one_song_are_not_scored_as_the_next(stimuli, rng):
    """Frames held while a song's mel is missing (its stimulus never came) are that song's: a marker of
    another song does not place them."""
    second = mel_db(stimuli.audio[22])
    truth = LiveTruth(stimuli)
    truth.load(22)
    truth.marker("song=23;t=10.000", 100.0)   # no stimulus for song 23: its frames wait, then are dropped
    _feed(truth, rng.normal(-40.0, 10.0, (128, 43)).astype(np.float32), 100.0)
    truth.marker("song=22;t=3.019", 100.0 + 43 * FRAME_PERIOD_S)   # frame 130.02 of song 22
    _feed(truth, second[:, 130:150], 100.0 + (43 - 130) * FRAME_PERIOD_S, first=130)
    assert truth.scored_frames == 20 and truth.dynamic_r_total() == pytest.approx(1.0)
