"""The shifted-stimulus control: the decoder's own frames scored against the stimulus half their song away.

At the default one-frame hop both baselines are n/a (one spectrum at most frames) and the song mean is n/a
for a song the model never heard, so the demo's score stood beside nothing measured. The control needs no
model metadata and is defined at every hop: what the decoder's output scores against music it is not
hearing, the live counterpart of the offline shuffled-EEG control.
"""

from __future__ import annotations

import numpy as np
import pytest
from eegmusic.decoder.melspec import FRAME_PERIOD_S, mel_db
from eegmusic.decoder.scores import SHIFTED_WORDS, baseline_line
from eegmusic.decoder.truth import SHIFT_MIN_FRAMES, LiveTruth
from eegmusic.offline_training import metrics

from tests.decoder.test_truth_baselines import Stimuli


def _scored(truth: LiveTruth, frames: np.ndarray, *, song: int = 21, start: float = 100.0, hop: int = 1):
    """Feed ``frames`` (128, n) hop by hop as a one-song replay from its first second would."""
    truth.load(song)
    truth.marker(f"song={song};t=0.000", start)
    n = frames.shape[1]
    for lo in range(0, n, hop):
        k = np.arange(lo, min(lo + hop, n))
        truth.update(frames[:, k], start + k * FRAME_PERIOD_S, np.full(k.size, 43))


def test_the_control_scores_the_decoders_frames_against_the_stimulus_half_the_song_away(rng):
    stimuli = Stimuli(rng)
    mel = mel_db(stimuli.audio[21])
    n_song = mel.shape[1]
    n = 150
    away = (np.arange(n) + n_song // 2) % n_song
    # a perfect decoder: r 1, and its control is the song against itself half a song later (low)
    perfect = LiveTruth(stimuli)
    _scored(perfect, mel[:, :n].copy())
    assert perfect.dynamic_r_total() == pytest.approx(1.0)
    control = perfect.shifted_r_total()
    assert control == pytest.approx(metrics.dynamic_r([mel[:, :n]], [mel[:, away]]), abs=1e-6)
    assert control < 0.5
    # a decoder that reads music half a song away: the control finds it, the score does not
    lagging = LiveTruth(stimuli)
    _scored(lagging, mel[:, away].copy(), hop=5)
    assert lagging.shifted_r_total() == pytest.approx(1.0)
    assert lagging.dynamic_r_total() == pytest.approx(control, abs=1e-6)


def test_the_control_covers_the_same_frames_as_the_score_song_by_song(rng):
    stimuli = Stimuli(rng)
    truth = LiveTruth(stimuli)
    decoded = rng.normal(-40.0, 10.0, (128, 200)).astype(np.float32)
    _scored(truth, decoded[:, :120])
    _scored(truth, decoded[:, 120:], song=22, start=200.0)
    by_song = truth.scores_by_song()
    assert [scores["scored_frames"] for scores in by_song.values()] == [120, 80]
    shifted = []
    for song, frames in ((21, decoded[:, :120]), (22, decoded[:, 120:])):
        mel = mel_db(stimuli.audio[song])
        away = mel[:, (np.arange(frames.shape[1]) + mel.shape[1] // 2) % mel.shape[1]]
        assert by_song[song]["shifted_stimulus_dynamic_r_total"] == pytest.approx(
            metrics.dynamic_r([frames], [away]), abs=1e-6)
        shifted.append(away)
    # the run's control, as the run's score: the songs' controls averaged, weighted by their frames
    # (offline dynamic r's mean over blocks, where blocks are equally long)
    songs = [metrics.dynamic_r([frames], [away])
             for frames, away in zip((decoded[:, :120], decoded[:, 120:]), shifted, strict=True)]
    assert truth.shifted_r_total() == pytest.approx((120 * songs[0] + 80 * songs[1]) / 200, abs=1e-6)
    assert truth.shifted_r_total() != pytest.approx(   # not one Pearson over both songs' frames together
        metrics.dynamic_r([decoded], [np.concatenate(shifted, axis=1)]), abs=1e-4)


def test_a_song_too_short_for_the_shift_has_no_control(rng):
    stimuli = Stimuli(rng)
    stimuli.audio[21] = stimuli.audio[21][: int(0.5 * SHIFT_MIN_FRAMES * 512)]   # under 2 s of frames
    truth = LiveTruth(stimuli)
    n_song = mel_db(stimuli.audio[21]).shape[1]
    assert n_song < SHIFT_MIN_FRAMES
    _scored(truth, rng.normal(-40.0, 10.0, (128, n_song)).astype(np.float32))
    assert truth.dynamic_r_total() is not None and truth.shifted_r_total() is None


def test_the_control_is_worded_beside_the_baselines_and_n_a_when_unknown():
    summary = {"dynamic_r_total": 0.3, "baseline_dynamic_r_total": {"global_mean": None, "song_mean": None},
               "baseline_constant": ["global_mean", "song_mean"], "shifted_stimulus_dynamic_r_total": 0.0123}
    line = baseline_line(summary)
    # first, so that the notes in brackets at the end stay beside the baselines they explain
    assert line.startswith(f"dynamic r, whole run: decoder 0.300, {SHIFTED_WORDS} 0.012, global-mean "
                           "baseline n/a"), line
    summary["shifted_stimulus_dynamic_r_total"] = None
    assert f"{SHIFTED_WORDS} n/a, global-mean" in baseline_line(summary)


def test_the_live_figure_over_recent_frames_has_its_control_on_the_same_frames(rng):
    """The "last 10 s" r was printed (decode's summary, the dashboard) beside no control or baseline: those
    stood beside the whole run's figure only (a science audit)."""
    from eegmusic.decoder.cli_decode import format_summary

    from tests.decoder.test_output_stage import _summary

    stimuli = Stimuli(rng)
    mel = mel_db(stimuli.audio[21])
    n_song = mel.shape[1]
    truth = LiveTruth(stimuli, recent_frames=60)
    assert truth.recent_scores()[1] is None
    decoded = rng.normal(-40.0, 10.0, (128, 150)).astype(np.float32)
    _scored(truth, decoded, hop=7)
    recent = np.arange(90, 150)            # the ring's frames (their order does not change a Pearson)
    away = mel[:, (recent + n_song // 2) % n_song]
    r, control = truth.recent_scores()     # the pair the dashboard shows, taken together
    assert control == pytest.approx(metrics.dynamic_r([decoded[:, recent]], [away]), abs=1e-5)
    assert r == pytest.approx(metrics.dynamic_r([decoded[:, recent]], [mel[:, recent]]), abs=1e-5)
    summary = _summary(20.0)               # more frames scored than the live figure's 10 s: both figures
    summary["shifted_stimulus_dynamic_r"] = control
    assert ("dynamic r vs true stimulus mel: last 10 s 0.210 (shifted-stimulus control "
            f"{control:.3f}), whole run 0.200") in format_summary(summary)
    short = Stimuli(rng)                   # a song too short for the shift: none, as for the whole run
    short.audio[21] = short.audio[21][: int(0.5 * SHIFT_MIN_FRAMES * 512)]
    few = LiveTruth(short, recent_frames=60)
    _scored(few, rng.normal(-40.0, 10.0, (128, 40)).astype(np.float32))
    r, control = few.recent_scores()
    assert r is not None and control is None
