"""Live baselines: the global-mean and song-mean dynamic r that ``LiveTruth`` computes next to the
decoder's are those of offline evaluation's baselines on the same frames, from the means the model
carries (its training part's, round-tripped through the model metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eegmusic.decoder.melspec import AUDIO_SFREQ, FRAME_PERIOD_S, mel_db
from eegmusic.decoder.truth import LiveTruth, read_baselines, read_song_music
from eegmusic.offline_training import baselines, metrics
from eegmusic.offline_training.dataset import INDEX_DTYPE


class Stimuli:
    """Two songs of loudness-modulated noise (a real stimulus lookup needs files; this one is exact)."""

    path = Path("memory")

    def __init__(self, rng):
        self.audio = {}
        for song in (21, 22):
            loudness = np.repeat(rng.uniform(0.05, 1.0, 24), AUDIO_SFREQ // 4)
            self.audio[song] = (0.3 * rng.normal(size=loudness.size) * loudness).astype(np.float32)

    def stimulus_path(self, song_id):
        return self.path if song_id in self.audio else None

    def load_stimulus(self, song_id):
        return self.audio[song_id]


class TrainingPart:
    """What ``training_baselines`` reads from a dataset: an index and the windows' mel."""

    def __init__(self, rng, songs=(21,)):
        self.index = np.array([(song, 0, k) for song in songs for k in range(30)], dtype=INDEX_DTYPE)
        self._mel = rng.normal(-40.0, 10.0, (len(self.index), 128, 44)).astype(np.float32)

    def mel(self, rows):
        return self._mel[rows]


def _trained_on_21(rng) -> LiveTruth:
    """A live truth over :class:`Stimuli` with the baselines of a model trained on song 21 only."""
    truth = LiveTruth(Stimuli(rng))
    truth.set_baselines(*read_baselines(baselines.training_baselines(TrainingPart(rng, songs=(21,)),
                                                                     np.arange(30))))
    return truth


@pytest.mark.parametrize("hop_frames", [2, 5])
def test_live_baselines_equal_the_offline_baselines_on_the_same_frames(hop_frames, rng):
    training = TrainingPart(rng)
    entry = baselines.training_baselines(training, np.arange(len(training.index)))
    global_mean, song_means = read_baselines(entry)
    offline_global, offline_songs = baselines.mean_mels(training, np.arange(len(training.index)))
    np.testing.assert_allclose(global_mean, offline_global, atol=0.05)  # float16 in the metadata

    stimuli = Stimuli(rng)
    truth = LiveTruth(stimuli)
    truth.set_baselines(global_mean, song_means)
    truth.load(21)
    truth.marker("song=21;t=0.000", 100.0)
    n = 200
    columns = np.tile(np.arange(44 - hop_frames, 44), n // hop_frames + 1)[:n]  # newest frames per hop
    decoded = rng.normal(-40.0, 10.0, (128, n)).astype(np.float32)
    for lo in range(0, n, hop_frames):
        k = np.arange(lo, min(lo + hop_frames, n))
        truth.update(decoded[:, k], 100.0 + k * FRAME_PERIOD_S, columns[k])

    true = mel_db(stimuli.audio[21])[:, :n]
    global_pred = baselines.predict_global_mean(global_mean, n)[np.arange(n), :, columns].T
    song_pred = baselines.predict_song_mean(song_means, np.full(n, 21))[np.arange(n), :, columns].T
    live = truth.baseline_r_total()
    assert live["global_mean"] == pytest.approx(metrics.dynamic_r([global_pred], [true]), abs=1e-6)
    assert live["song_mean"] == pytest.approx(metrics.dynamic_r([song_pred], [true]), abs=1e-6)
    assert truth.dynamic_r_total() == pytest.approx(metrics.dynamic_r([decoded], [true]), abs=1e-6)


def test_at_a_one_frame_hop_the_baselines_are_constant_and_read_n_a_not_zero(rng):
    """Each frame a one-frame hop emits is its window's newest (column 43): the mean window repeats one
    spectrum there, and band Pearson's 0 for a constant was printed as the baselines' live score
    ('global-mean baseline 0.000'). A few frames from other columns (caught up after a stall) do not make
    them scored: that "score" measured the stalls, and the dashboard showed numbers under load and n/a
    otherwise for the same run. Once no column gives more than two thirds of the frames (here after a
    2-frame hop), they are scored."""
    training = TrainingPart(rng)
    truth = LiveTruth(Stimuli(rng))
    entry = baselines.training_baselines(training, np.arange(len(training.index)))
    truth.set_baselines(*read_baselines(entry))
    truth.load(21)
    truth.marker("song=21;t=0.000", 100.0)
    k = np.arange(60)
    decoded = rng.normal(-40, 10, (128, 62)).astype(np.float32)
    truth.update(decoded[:, :60], 100.0 + k * FRAME_PERIOD_S, np.full(60, 43))
    assert truth.constant_baselines() == ["global_mean", "song_mean"]
    assert truth.baseline_r_total() == {"global_mean": None, "song_mean": None}
    assert truth.dynamic_r_total() is not None                 # the decoder's own score stands
    k = np.arange(60, 62)                                       # two frames caught up from older columns
    truth.update(decoded[:, 60:], 100.0 + k * FRAME_PERIOD_S, np.array([41, 42]))
    assert truth.constant_baselines() == ["global_mean", "song_mean"]
    assert truth.baseline_r_total() == {"global_mean": None, "song_mean": None}
    # then a 2-frame hop (columns 42, 43): 60 + n/2 of 62 + n frames are column 43's, two thirds or fewer
    # from n = 112 on; a majority rule would never have scored it after the one-frame start
    more = rng.normal(-40, 10, (128, 114)).astype(np.float32)
    k = np.arange(62, 176)
    truth.update(more[:, :110], 100.0 + k[:110] * FRAME_PERIOD_S, np.tile([42, 43], 55))
    assert truth.constant_baselines() == ["global_mean", "song_mean"]   # column 43: 115 of 172 frames
    truth.update(more[:, 110:], 100.0 + k[110:] * FRAME_PERIOD_S, np.tile([42, 43], 2))
    assert truth.constant_baselines() == []                     # 117 of 176: two thirds at most
    assert all(value is not None for value in truth.baseline_r_total().values())


def test_song_mean_is_undefined_for_a_song_the_model_never_trained_on(rng):
    truth = _trained_on_21(rng)
    truth.load(22)
    truth.marker("song=22;t=1.000", 5.0)
    k = np.arange(50)
    truth.update(rng.normal(-40, 10, (128, 50)).astype(np.float32), 5.0 + k * FRAME_PERIOD_S, k % 44)
    live = truth.baseline_r_total()
    assert live["song_mean"] is None and live["global_mean"] is not None


def test_a_song_mean_missing_for_some_frames_is_not_reported_beside_the_decoder(rng):
    # a playlist of a trained song then a new one: the song mean scored only the first song's frames,
    # and stood beside the decoder's score over both ("on the same frames" in every summary)
    truth = _trained_on_21(rng)
    truth.load(21)
    truth.load(22)
    k = np.arange(50)
    truth.marker("song=21;t=0.000", 0.0)
    truth.update(rng.normal(-40, 10, (128, 50)).astype(np.float32), k * FRAME_PERIOD_S, k % 44)
    assert truth.baseline_r_total()["song_mean"] is not None   # every scored frame so far had its mean
    truth.marker("song=22;t=0.000", 10.0)
    truth.update(rng.normal(-40, 10, (128, 50)).astype(np.float32), 10.0 + k * FRAME_PERIOD_S, k % 44)
    live = truth.baseline_r_total()
    assert live["song_mean"] is None and live["global_mean"] is not None
    # frames with no window column (no baseline can place them) leave no baseline beside the decoder
    truth.update(rng.normal(-40, 10, (128, 50)).astype(np.float32), 10.0 + k * FRAME_PERIOD_S)
    assert truth.baseline_r_total() == {"global_mean": None, "song_mean": None}
    assert truth.dynamic_r_total() is not None


def test_the_songs_of_trained_music_are_named_and_the_summary_says_their_scores_are_not_of_unheard_music(rng):
    """A science audit: a live decode of a song the model trained on printed its scores with no word of it,
    while ``train`` and ``evaluate`` say when a test part holds trained music. The demo holds its song out."""
    from eegmusic.decoder.cli_decode import format_summary

    from tests.decoder.test_output_stage import _summary

    def play(truth, song, start):   # 50 decoded frames of noise from the song's start
        k = np.arange(50)
        truth.load(song)
        truth.marker(f"song={song};t=0.000", start)
        truth.update(rng.normal(-40, 10, (128, 50)).astype(np.float32), start + k * FRAME_PERIOD_S, k % 44)

    truth = _trained_on_21(rng)
    play(truth, 22, 0.0)
    assert truth.trained_music() == []          # song 22: held out
    play(truth, 21, 10.0)
    assert truth.trained_music() == [21]
    summary = _summary(5.0)
    note = ("  note: song 21's music is among the model's training targets (its split 'block' trained on "
            "most of")
    assert note not in format_summary(summary)
    summary["truth"].update(trained_music=truth.trained_music(), training_split="block")
    assert (f"{note} the song's seconds), so these scores are not of unheard music; for such a score, "
            "decode a song the model held out") in format_summary(summary)
    summary["truth"].update(trained_music=[21, 23], training_split="subject")
    assert ("note: the music of songs 21 and 23 is among the model's training targets (its split 'subject' "
            "trained on all of these songs' seconds)") in format_summary(summary)
    summary["truth"].update(training_split="subject-block")   # holds out chunks of the songs' time as block
    assert "(its split 'subject-block' trained on most of these songs' seconds)" in format_summary(summary)
    bare = LiveTruth(Stimuli(rng))              # a model without baselines cannot say: no note
    play(bare, 21, 0.0)
    assert bare.trained_music() == []


def test_each_song_of_a_playlist_is_scored_on_its_own_frames_with_its_own_song_mean(rng):
    """The run-wide song mean is n/a once a new song plays (above), and it took the trained song's
    figure with it: a playlist printed no song-mean baseline at all. Song by song, each has the decoder's
    r and both baselines on its own frames, equal to offline evaluation's on them."""
    training = TrainingPart(rng, songs=(21,))
    global_mean, song_means = read_baselines(baselines.training_baselines(training, np.arange(30)))
    stimuli = Stimuli(rng)
    truth = LiveTruth(stimuli)
    truth.set_baselines(global_mean, song_means)
    n = 90
    k = np.arange(n)
    columns = k % 44
    decoded = {song: rng.normal(-40, 10, (128, n)).astype(np.float32) for song in (21, 22)}
    for song, t0 in ((21, 0.0), (22, 10.0)):
        truth.load(song)
        truth.marker(f"song={song};t=0.000", t0)
        for lo in range(0, n, 3):
            part = k[lo:lo + 3]
            truth.update(decoded[song][:, part], t0 + part * FRAME_PERIOD_S, columns[part])
    assert truth.baseline_r_total()["song_mean"] is None          # the run as a whole: unchanged
    by_song = truth.scores_by_song()
    assert list(by_song) == [21, 22]
    for song in (21, 22):
        true = mel_db(stimuli.audio[song])[:, :n]
        scores = by_song[song]
        assert scores["scored_frames"] == n
        assert scores["dynamic_r_total"] == pytest.approx(metrics.dynamic_r([decoded[song]], [true]),
                                                          abs=1e-6)
        global_pred = baselines.predict_global_mean(global_mean, n)[k, :, columns].T
        assert scores["baseline_dynamic_r_total"]["global_mean"] == pytest.approx(
            metrics.dynamic_r([global_pred], [true]), abs=1e-6)
    song_pred = baselines.predict_song_mean(song_means, np.full(n, 21))[k, :, columns].T
    true_21 = mel_db(stimuli.audio[21])[:, :n]
    assert by_song[21]["baseline_dynamic_r_total"]["song_mean"] == pytest.approx(
        metrics.dynamic_r([song_pred], [true_21]), abs=1e-6)
    assert by_song[22]["baseline_dynamic_r_total"]["song_mean"] is None   # never trained on
    # the run's own figures: its songs', averaged as offline dynamic r averages blocks (equally long here)
    trues = [mel_db(stimuli.audio[song])[:, :n] for song in (21, 22)]
    assert truth.dynamic_r_total() == pytest.approx(metrics.dynamic_r([decoded[21], decoded[22]], trues),
                                                    abs=1e-6)
    global_preds = [baselines.predict_global_mean(global_mean, n)[k, :, columns].T] * 2
    assert truth.baseline_r_total()["global_mean"] == pytest.approx(metrics.dynamic_r(global_preds, trues),
                                                                    abs=1e-6)


def test_a_decoder_that_only_knows_which_song_plays_scores_nothing_over_a_playlist(rng):
    """The run's r was one Pearson over every song's frames together: a decoder that put out each song's
    mean spectrum, tracking nothing within a song, scored 0.27 over three songs (0.00 song by song and
    offline), and so did the song-mean baseline, one spectrum within each song. The run's figures are now
    its songs', averaged as offline dynamic r averages blocks."""
    stimuli = Stimuli(rng)
    stimuli.audio[22] = np.diff(stimuli.audio[22], prepend=np.float32(0.0))   # brighter music than song 21
    truth = LiveTruth(stimuli)
    # each song's mean spectrum, as a song-mean baseline with no column dynamics: one spectrum a song
    flat = {song: np.repeat(mel_db(audio).mean(axis=1, keepdims=True), 44, axis=1).astype(np.float32)
            for song, audio in stimuli.audio.items()}
    truth.set_baselines(np.mean(list(flat.values()), axis=0), flat)
    n = 120
    k = np.arange(n)
    columns = np.where(k % 2 == 0, 42, 43)      # a 2-frame hop: the baselines are not one column's
    decoded, trues = [], []
    for song, t0 in ((21, 0.0), (22, 10.0)):
        truth.load(song)
        truth.marker(f"song={song};t=0.000", t0)
        frames = (flat[song][:, :1] + rng.normal(0.0, 0.5, (128, n))).astype(np.float32)
        for lo in range(0, n, 2):
            part = k[lo:lo + 2]
            truth.update(frames[:, part], t0 + part * FRAME_PERIOD_S, columns[part])
        decoded.append(frames)
        trues.append(mel_db(stimuli.audio[song])[:, :n])
    pooled = float(np.mean(metrics.band_pearson(np.concatenate(decoded, axis=1),
                                                np.concatenate(trues, axis=1))))
    assert pooled > 0.1    # what the run printed: song identity taken for tracking
    assert truth.dynamic_r_total() == pytest.approx(metrics.dynamic_r(decoded, trues), abs=1e-6)
    assert abs(truth.dynamic_r_total()) < 0.05
    assert truth.baseline_r_total()["song_mean"] is None
    assert "song_mean" in truth.constant_baselines()


def test_without_baselines_in_the_model_none_are_scored(rng):
    truth = LiveTruth(Stimuli(rng))
    truth.load(21)
    truth.marker("song=21;t=0.000", 0.0)
    k = np.arange(50)
    truth.update(rng.normal(-40, 10, (128, 50)).astype(np.float32), k * FRAME_PERIOD_S, k % 44)
    assert truth.baseline_r_total() == {"global_mean": None, "song_mean": None}
    with pytest.raises(ValueError, match="not encoded"):
        read_baselines({"encoding": "json"})


def test_a_non_finite_frame_is_skipped_and_counted_and_never_poisons_the_run(rng):
    """One NaN frame made the running sums NaN for good: every band then read as constant, and the
    whole run printed 'dynamic r 0.000' to its end."""
    from eegmusic.decoder.metrics import RunningBandPearson

    truth = LiveTruth(Stimuli(rng))
    truth.load(21)
    truth.marker("song=21;t=0.000", 0.0)
    n = 120
    k = np.arange(n)
    decoded = rng.normal(-40, 10, (128, n)).astype(np.float32)
    decoded[5, 30] = np.nan
    decoded[:, 31] = np.inf
    for lo in range(0, n, 4):
        truth.update(decoded[:, lo:lo + 4], k[lo:lo + 4] * FRAME_PERIOD_S, k[lo:lo + 4] % 44)
    keep = np.isfinite(decoded).all(axis=0)
    true = truth.truth_frames(k * FRAME_PERIOD_S)[1]
    assert truth.skipped_frames == 2 and truth.scored_frames == n - 2
    assert truth.dynamic_r_total() == pytest.approx(metrics.dynamic_r([decoded[:, keep]], [true[:, keep]]),
                                                    abs=1e-6)
    running = RunningBandPearson(128)
    running.add(decoded, true)
    assert running.skipped == 2 and running.n == n - 2
    np.testing.assert_allclose(running.band_pearson(), metrics.band_pearson(decoded[:, keep], true[:, keep]),
                               atol=1e-6)


def _two_simulations(tmp_path):
    """Tiny simulated folders of seeds 0 and 7: the same song number 21, other music."""
    from eegmusic.replay.simulate import simulate

    return [simulate(tmp_path / f"seed{seed}", n_songs=1, n_subjects=1, seconds=4.0, seed=seed,
                     progress=False) for seed in (0, 7)]


def test_song_mean_is_scored_only_for_the_music_the_model_trained_on(tmp_path, rng):
    """A model trained on one folder's song 21 scored its song mean against another folder's song 21
    (other music: 'song-mean baseline 0.001'); ``evaluate`` says the oracle is undefined there."""
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.stream.stimulus import StimulusFolder

    trained_on, other = _two_simulations(tmp_path)
    dataset = WindowDataset(trained_on)
    entry = baselines.training_baselines(dataset, np.arange(len(dataset.index)))
    assert entry["song_music"] == {"21": dataset.music_identity(21)[0]}
    scores = {}
    for folder in (trained_on, other):
        truth = LiveTruth(StimulusFolder(folder, sfreq=AUDIO_SFREQ))
        truth.set_baselines(*read_baselines(entry), song_music=read_song_music(entry))
        truth.load(21)
        truth.marker("song=21;t=0.000", 0.0)
        k = np.arange(120)
        truth.update(rng.normal(-40, 10, (128, 120)).astype(np.float32), k * FRAME_PERIOD_S, k % 44)
        scores[folder] = truth.baseline_r_total()
        assert truth.song_identity_unchecked() is False
    assert scores[trained_on]["song_mean"] is not None
    assert scores[other]["song_mean"] is None and scores[other]["global_mean"] is not None


def test_the_song_mean_is_found_by_its_music_under_another_song_number(tmp_path, rng):
    """A held-out listener's play is a song of its own in a folder of sessions, and another folder may
    number a track otherwise: the song mean was looked up by number only, and read n/a for music the
    model trained on (a science audit). With digests it is found by the music."""
    import shutil

    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.stream.stimulus import StimulusFolder

    trained_on, other = _two_simulations(tmp_path)
    renumbered = tmp_path / "renumbered"
    (renumbered / "stimuli").mkdir(parents=True)
    shutil.copy(trained_on / "stimuli" / "song21.wav", renumbered / "stimuli" / "song23.wav")
    shutil.copy(other / "stimuli" / "song21.wav", renumbered / "stimuli" / "song21.wav")   # other music
    dataset = WindowDataset(trained_on)
    entry = baselines.training_baselines(dataset, np.arange(len(dataset.index)))
    decoded = rng.normal(-40, 10, (128, 120)).astype(np.float32)
    scores = {}
    for folder, song in ((trained_on, 21), (renumbered, 23), (renumbered, 21)):
        truth = LiveTruth(StimulusFolder(folder, sfreq=AUDIO_SFREQ))
        truth.set_baselines(*read_baselines(entry), song_music=read_song_music(entry))
        truth.load(song)
        truth.marker(f"song={song};t=0.000", 0.0)
        k = np.arange(120)
        truth.update(decoded, k * FRAME_PERIOD_S, k % 44)
        scores[folder, song] = truth.baseline_r_total()["song_mean"]
    assert scores[trained_on, 21] is not None and scores[renumbered, 23] == scores[trained_on, 21]
    assert scores[renumbered, 21] is None     # song 21 there is other music: no mean of it trained


def test_a_model_without_music_digests_scores_the_song_mean_unchecked(rng):
    training = TrainingPart(rng)
    entry = baselines.training_baselines(training, np.arange(30))   # no music_identity: as an older model
    assert "song_music" not in entry and read_song_music(entry) is None
    truth = LiveTruth(Stimuli(rng))
    truth.set_baselines(*read_baselines(entry), song_music=read_song_music(entry))
    truth.load(21)
    truth.marker("song=21;t=0.000", 0.0)
    k = np.arange(50)
    truth.update(rng.normal(-40, 10, (128, 50)).astype(np.float32), k * FRAME_PERIOD_S, k % 44)
    assert truth.baseline_r_total()["song_mean"] is not None        # as before: by song number
    assert truth.song_identity_unchecked() is True


def test_accumulators_merged_equal_one_that_took_every_frame(rng):
    """A run's figures merge its songs' accumulators instead of adding every frame twice per hop."""
    from eegmusic.decoder.metrics import RunningBandPearson

    pred = rng.normal(-40, 10, (128, 300))
    true = rng.normal(-30, 5, (128, 300)) + 0.5 * pred
    pred[3, 40] = np.nan                                   # skipped where it lands, counted in the merge
    whole, parts = RunningBandPearson(128), [RunningBandPearson(128) for _ in range(3)]
    whole.add(pred, true)
    for part, frames in zip(parts, (slice(0, 100), slice(100, 120), slice(120, 300)), strict=True):
        part.add(pred[:, frames] + 0.0, true[:, frames])
    merged = RunningBandPearson.merged([parts[0], RunningBandPearson(128), *parts[1:]])
    assert merged.n == whole.n == 299 and merged.skipped == 1
    np.testing.assert_allclose(merged.band_pearson(), whole.band_pearson(), atol=1e-9)
    assert merged.prediction_varies() and RunningBandPearson.merged([]).band_pearson() is None
