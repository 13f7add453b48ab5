"""The fine-tuning recipe's tools: the L2-SP anchor and the greedy soup (tiny torch modules)."""

from __future__ import annotations

import pytest
import torch


def test_greedy_soup_keeps_an_average_only_when_the_held_out_loss_says_so():
    from eegmusic.offline_training.finetune_recipe import greedy_soup

    weights = {0: 0.5, 1: 1.5, 2: 4.0}
    asked = []

    def loss_of(members):  # the held-out loss prefers an average weight of 1
        asked.append(list(members))
        return abs(sum(weights[m] for m in members) / len(members) - 1.0)

    finished = [(0.5, 0), (0.5, 1), (3.0, 2)]
    soup = greedy_soup(finished, best_loss=0.5, loss_of=loss_of)
    assert soup == {"members": [0, 1], "loss": pytest.approx(0.0)}
    assert asked == [[0, 1], [0, 1, 2]]  # each next-best candidate tried with the members so far
    assert greedy_soup(finished, best_loss=-1.0, loss_of=loss_of) is None  # the start was better
    assert greedy_soup([(0.5, 0), (2.0, 1)], 0.5, lambda members: 2.0 * len(members)) is None


def test_weight_anchor_adds_the_l2sp_gradient_and_goes_away():
    from eegmusic.offline_training.finetune_recipe import WeightAnchor

    model = torch.nn.Linear(2, 1)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight += 0.5
    x = torch.ones(1, 2)

    def grad():
        model.zero_grad()
        model(x).sum().backward()
        return model.weight.grad.clone(), model.bias.grad.clone()

    free = grad()
    with WeightAnchor(model, start, 2.0, skip=("bias",)):
        anchored = grad()
    torch.testing.assert_close(anchored[0], free[0] + 2.0 * 0.5 * torch.ones(1, 2))
    torch.testing.assert_close(anchored[1], free[1])  # skipped
    torch.testing.assert_close(grad()[0], free[0])  # hooks removed on exit


# ---- choosing on a held-out calibration track (a real two-track session of a virtual listener) ----------

SMALL = {"channels": [8, 8, 16, 16], "hidden": 32}


@pytest.fixture(scope="module")
def two_tracks(tmp_path_factory):
    """Windows of a 40-s session of two 20-s excerpts, a block split, and a small convnet (fitted
    statistics, random output layer: a model whose output moves with its input)."""
    import numpy as np
    import soundfile
    from eegmusic.offline_training.dataset import WindowDataset
    from eegmusic.offline_training.models.registry import build_model
    from eegmusic.offline_training.splits import make_split
    from eegmusic.replay.live_listener import listener_for_montage
    from eegmusic.replay.music_sources import packaged_tracks

    work = tmp_path_factory.mktemp("two")
    music = []
    for track in packaged_tracks(2):  # the first 21 s of two real tracks (short files read fast)
        audio, rate = soundfile.read(str(track), frames=21 * 44100, dtype="float32")
        music.append(work / f"{track.stem}.wav")
        soundfile.write(str(music[-1]), audio, rate)
    listener = listener_for_montage("standard_1020", channels=8, sfreq=250.0, name="t", snr=0.5, seed=2)
    path = listener.record_session(work / "t.xdf", [str(m) for m in music], minutes=39.9 / 60, excerpt_s=20.0)
    dataset = WindowDataset(path, hop_s=0.5)
    split = make_split(dataset.index, "block", seed=0, hop_s=0.5, music=dataset.music)
    torch.manual_seed(0)
    model = build_model("convnet", n_chans=dataset.n_chans, **SMALL)
    model.fit_stats(dataset.eeg(split.train), dataset.mel(split.train))
    torch.nn.init.normal_(model.head.weight, std=0.05)
    assert np.sum(np.unique(dataset.index["song"], return_counts=True)[1] > 30) == 2  # two tracks
    return dataset, split, model


class Poisoned:
    """A dataset whose given rows read as noise (EEG and mel alike): what a choice must never look at."""

    def __init__(self, dataset, rows):
        import numpy as np

        self.dataset, self.rows, self.index = dataset, set(np.asarray(rows).tolist()), dataset.index
        self.music = dataset.music

    def _read(self, rows, values):
        import numpy as np

        bad = np.array([r in self.rows for r in np.asarray(rows).tolist()])
        values = values.copy()
        values[bad] = np.random.default_rng(0).normal(0.0, 50.0, values[bad].shape).astype(values.dtype)
        return values

    def eeg(self, rows):
        return self._read(rows, self.dataset.eeg(rows))

    def mel(self, rows):
        return self._read(rows, self.dataset.mel(rows))


def test_the_selection_fold_holds_out_a_whole_training_track(two_tracks):
    import numpy as np
    from eegmusic.offline_training.finetune_recipe import selection_folds
    from eegmusic.offline_training.splits import Split

    dataset, split, _ = two_tracks
    song = dataset.index["song"]
    (fold,) = selection_folds(dataset.index, split, seed=0, k=1, music=dataset.music)
    assert fold.reason is None and fold.song in set(song[split.train].tolist())
    assert set(song[fold.scored].tolist()) == {fold.song}  # scored: the held-out track only...
    assert fold.song not in set(song[fold.split.train].tolist())  # ...which no candidate trains on...
    assert fold.song not in set(song[fold.split.val].tolist())  # ...nor stops on
    heard = np.union1d(split.train, split.val)
    np.testing.assert_array_equal(fold.scored, heard[song[heard] == fold.song])  # never a test row
    assert not np.intersect1d(fold.scored, split.test).size
    # the candidates stop on the other tracks' validation blocks, as the run itself stops
    np.testing.assert_array_equal(fold.split.val, split.val[song[split.val] != fold.song])
    assert len(fold.split.val) > 0
    one = split.train[song[split.train] == fold.song]  # a session of one track: nothing to hold out
    (alone,) = selection_folds(dataset.index, Split(one, split.val, split.test, split.test_block),
                               music=dataset.music)
    assert alone.song is None and "holds 1 track" in alone.reason and alone.split.val is split.val
    np.testing.assert_array_equal(alone.scored, split.val)


def test_the_folds_hold_out_distinct_tracks_each_scored_by_its_own_fold(two_tracks):
    import numpy as np
    from eegmusic.offline_training.finetune_recipe import selection_folds

    dataset, split, _ = two_tracks
    song = dataset.index["song"]
    # more folds asked than tracks: one per track
    folds = selection_folds(dataset.index, split, seed=0, k=5,
                            music=dataset.music)
    tracks = {int(s) for s, n in zip(*np.unique(song[split.train], return_counts=True), strict=True) if n > 5}
    assert len(folds) == 2 and {f.song for f in folds} == tracks
    for fold in folds:
        assert set(song[fold.scored].tolist()) == {fold.song}
        assert fold.song not in set(song[np.union1d(fold.split.train, fold.split.val)].tolist())
        assert not np.intersect1d(fold.scored, split.test).size
    assert not np.intersect1d(folds[0].scored, folds[1].scored).size
    firsts = {selection_folds(dataset.index, split, seed=seed,
                              music=dataset.music)[0].song for seed in range(8)}
    assert firsts == tracks  # the seed orders the tracks


def test_a_track_holding_the_only_validation_blocks_is_not_held_out(two_tracks):
    import numpy as np
    from eegmusic.offline_training.finetune_recipe import selection_folds
    from eegmusic.offline_training.splits import Split

    dataset, split, _ = two_tracks
    song = dataset.index["song"]
    values, counts = np.unique(song[split.train], return_counts=True)
    first, second = values[counts > 5]  # the two tracks (not the stub of the play)
    only_first = Split(split.train, split.val[song[split.val] == first], split.test, split.test_block)
    assert len(only_first.val) > 0
    for seed in range(6):  # whatever the seed: the track whose removal leaves validation blocks, alone
        (fold,) = selection_folds(dataset.index, only_first, seed=seed, k=2, music=dataset.music)
        assert fold.song == second and set(song[fold.split.val].tolist()) == {first}
    (none,) = selection_folds(dataset.index, Split(split.train, split.val[:0], split.test, split.test_block),
                              music=dataset.music)
    assert none.song is None and "none of which leaves validation blocks" in none.reason


def test_pooled_r_scores_every_folds_stretches_together(two_tracks):
    import numpy as np
    from eegmusic.offline_training.finetune_recipe import (
        held_out_predictions,
        held_out_r,
        pooled_r,
        selection_folds,
    )
    from eegmusic.offline_training.metrics import dynamic_r

    dataset, split, model = two_tracks
    folds = selection_folds(dataset.index, split, seed=0, music=dataset.music)
    per_fold = [held_out_predictions(model, dataset, f.scored, hop_s=0.5, batch_size=64, device="cpu")
                for f in folds]
    preds, targets = [p for p, _ in per_fold], [t for _, t in per_fold]
    pooled = pooled_r(preds, targets)
    assert pooled == dynamic_r(preds[0] + preds[1], targets[0] + targets[1])
    singles = [held_out_r(model, dataset, f.scored, hop_s=0.5, batch_size=64, device="cpu") for f in folds]
    assert singles == [pooled_r([p], [t]) for p, t in zip(preds, targets, strict=True)]
    n = [len(p) for p in preds]  # the mean over stretches: each fold weighs by its stretches
    assert pooled == pytest.approx((singles[0] * n[0] + singles[1] * n[1]) / sum(n))
    assert singles[0] != singles[1]
    assert np.isnan(pooled_r([[]], [[]]))


def test_the_blend_weight_is_chosen_on_the_held_out_track_and_never_on_test_data(two_tracks):
    from eegmusic.offline_training.finetune import BlendedDecoder
    from eegmusic.offline_training.finetune_recipe import ALPHAS, choose_alpha, held_out_r, selection_folds

    dataset, split, model = two_tracks
    start = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)  # a "fine-tuned" model: the start moved along a random direction
    tuned = {k: v + 0.5 * v.std() * torch.randn_like(v) if k.endswith("weight") else v
             for k, v in start.items()}
    fold = selection_folds(dataset.index, split, seed=0, music=dataset.music)[0]
    blend = BlendedDecoder.of(model, start, tuned, 1.0)

    def choose(data):
        def score(weight):
            blend.weight = weight
            return held_out_r(blend, data, fold.scored, hop_s=0.5, batch_size=64, device="cpu")

        return choose_alpha(score)

    alpha, scores = choose(dataset)
    assert list(scores) == list(ALPHAS) and scores[alpha] == max(scores.values())
    assert len(set(scores.values())) == len(ALPHAS)  # the weights differ: the choice is a real one
    model.load_state_dict(start)  # weight 0 is the start, weight 1 the fine-tuned model
    assert scores[0.0] == held_out_r(model, dataset, fold.scored, hop_s=0.5, batch_size=64, device="cpu")
    model.load_state_dict(tuned)
    assert scores[1.0] == held_out_r(model, dataset, fold.scored, hop_s=0.5, batch_size=64, device="cpu")
    assert choose(Poisoned(dataset, split.test)) == (alpha, scores)  # test windows are never read
    assert choose(Poisoned(dataset, fold.scored))[1] != scores  # the held-out track is what is scored
    eeg = torch.from_numpy(dataset.eeg(fold.scored[:4]))
    blend.weight = 0.25  # the blend is the weighted mean of the two models' mel-dB
    with torch.no_grad():
        expected = 0.25 * model(eeg)
        model.load_state_dict(start)
        expected += 0.75 * model(eeg)
        torch.testing.assert_close(blend(eeg), expected)
    model.load_state_dict(start)


# ---- the fine-tuning loop (offline_training.finetune_fit), real training on the two-track session ---------


def test_the_start_keeps_the_statistics_that_score_higher_on_calibration_windows(two_tracks):
    import copy

    import numpy as np
    from eegmusic.offline_training.finetune_fit import choose_statistics
    from eegmusic.offline_training.finetune_recipe import held_out_r
    from eegmusic.offline_training.loop import weights
    from eegmusic.offline_training.train import TrainConfig

    dataset, split, fixture_model = two_tracks
    model = copy.deepcopy(fixture_model)
    refitted = weights(model)
    other = copy.deepcopy(model)  # "pretrained" statistics: fitted on one track's windows only
    one = split.train[dataset.index["song"][split.train] == dataset.index["song"][split.train[0]]]
    other.fit_stats(dataset.eeg(one[::3]) * 4.0, dataset.mel(one[::3]))
    original = weights(other)
    config = TrainConfig(data="unused", out="unused", hop_s=0.5, batch_size=64)
    rows = np.union1d(split.train, split.val)

    def r_of(state):
        model.load_state_dict(state)
        return held_out_r(model, dataset, rows, hop_s=0.5, batch_size=64, device="cpu")

    expected = {"refitted": r_of(refitted), "pretrained": r_of(original)}
    assert expected["refitted"] != expected["pretrained"]  # the choice is a real one
    model.load_state_dict(refitted)
    chosen = choose_statistics(model, original, dataset, rows, config, "cpu")
    assert chosen["r"] == expected
    assert chosen["choice"] == max(expected, key=expected.get)
    model.load_state_dict(original)  # the roles swapped: the other choice
    swapped = choose_statistics(model, refitted, dataset, rows, config, "cpu")
    assert swapped["choice"] != chosen["choice"]
    assert swapped["r"] == {"refitted": expected["pretrained"], "pretrained": expected["refitted"]}
    for key, value in model.state_dict().items():  # the model is left at the chosen start
        torch.testing.assert_close(value, chosen["start"][key])
    model.load_state_dict(refitted)  # the test part is never read
    poisoned = choose_statistics(model, original, Poisoned(dataset, split.test), rows, config, "cpu")
    assert poisoned["r"] == expected
    model.load_state_dict(refitted)  # a file without statistics: the refitted ones, nothing compared
    alone = choose_statistics(model, None, dataset, rows, config, "cpu")
    assert alone["choice"] == "refitted" and alone["r"]["pretrained"] is None


def _run_finetune(fixture_model, data, split, tmp_path):
    """``fit_finetune`` on a copy of ``fixture_model`` (2 epochs a loop); the result and, per call of the
    training loop, its split, learning rate and the weights it left."""
    import copy

    from eegmusic.offline_training.distributed import DistInfo
    from eegmusic.offline_training.finetune_fit import fit_finetune
    from eegmusic.offline_training.loop import weights
    from eegmusic.offline_training.loop_regression import fit_regression
    from eegmusic.offline_training.train import TrainConfig

    config = TrainConfig(data="unused", out=str(tmp_path), epochs=2, hop_s=0.5, batch_size=64, progress=False)
    calls = []

    def fit(model, dataset, fit_split, fit_config, *rest):
        result = fit_regression(model, dataset, fit_split, fit_config, *rest)
        calls.append({"train": fit_split.train, "val": fit_split.val, "lr": fit_config.lr,
                      "weights": weights(model)})
        return result

    model = copy.deepcopy(fixture_model)
    result = fit_finetune(fit, model, data, split, config, DistInfo(), torch.device("cpu"), tmp_path)
    return result, calls


def test_candidates_stop_as_the_run_stops_and_the_choice_is_retrained_on_every_track(two_tracks, tmp_path,
                                                                                    monkeypatch):
    import numpy as np
    from eegmusic.offline_training import finetune_recipe
    from eegmusic.offline_training.finetune_fit import HEADS, LR_FACTORS
    from eegmusic.offline_training.finetune_recipe import selection_folds

    dataset, split, fixture_model = two_tracks
    monkeypatch.setattr(finetune_recipe, "ALPHAS", (1.0,))  # the fine-tuned weights: the refit always runs
    result, calls = _run_finetune(fixture_model, dataset, split, tmp_path)
    choice = result["finetune"]
    folds = selection_folds(dataset.index, split, seed=0, music=dataset.music)
    assert len(folds) == 2 and choice["selection"]["songs"] == [f.song for f in folds]
    n = len(HEADS) * len(LR_FACTORS) * len(folds)
    for i, call in enumerate(calls[:n]):  # each candidate once per fold: the other track's training
        fold = folds[i % len(folds)]  # windows, stopped on its validation blocks
        np.testing.assert_array_equal(call["train"], fold.split.train)
        np.testing.assert_array_equal(call["val"], fold.split.val)
    members = choice["soup"] or [int(np.argmax([c["held_out_r"] for c in choice["candidates"]]))]
    assert choice["alpha"] == 1.0 and choice["refit"] and len(calls) == n + len(members)
    for call, member in zip(calls[n:], members, strict=True):  # then each chosen recipe on every track
        np.testing.assert_array_equal(call["train"], split.train)
        np.testing.assert_array_equal(call["val"], split.val)
        assert call["lr"] == choice["candidates"][member]["lr"]
    assert len(choice["refit_epochs"]) == len(members)
    shipped = result["model"].state_dict()
    for key, value in calls[n]["weights"].items():  # the model is the refitted weights (averaged)
        if value.is_floating_point():
            expected = sum(call["weights"][key] for call in calls[n:]) / len(members)
            torch.testing.assert_close(shipped[key], expected)
    poisoned, _ = _run_finetune(fixture_model, Poisoned(dataset, split.test), split, tmp_path)
    assert poisoned["finetune"] == choice  # the test part is never read


def test_every_choice_is_scored_on_the_held_out_tracks_pooled(two_tracks, tmp_path):
    import copy

    import numpy as np
    from eegmusic.offline_training.finetune import BlendedDecoder
    from eegmusic.offline_training.finetune_recipe import (
        ALPHAS,
        held_out_predictions,
        mean_weights,
        pooled_r,
        selection_folds,
    )

    dataset, split, fixture_model = two_tracks
    result, calls = _run_finetune(fixture_model, dataset, split, tmp_path)
    choice = result["finetune"]
    folds = selection_folds(dataset.index, split, seed=0, music=dataset.music)
    model = copy.deepcopy(fixture_model)

    def outputs(scored, f):
        return held_out_predictions(scored, dataset, folds[f].scored, hop_s=0.5, batch_size=64, device="cpu")

    def pooled(states):  # each fold's model on its own held-out track, the stretches pooled
        per_fold = []
        for f, state in enumerate(states):
            model.load_state_dict(state)
            per_fold.append(outputs(model, f))
        return pooled_r([p for p, _ in per_fold], [t for _, t in per_fold])

    for c, candidate in enumerate(choice["candidates"]):
        fold_states = [call["weights"] for call in calls[c * len(folds):(c + 1) * len(folds)]]
        assert candidate["held_out_r"] == pytest.approx(pooled(fold_states), abs=1e-6)
        assert len(candidate["fold_r"]) == len(folds)
    start = {k: v.clone() for k, v in fixture_model.state_dict().items()}
    members = choice["soup"] or [int(np.argmax([c["held_out_r"] for c in choice["candidates"]]))]
    tuned = [mean_weights([calls[m * len(folds) + f]["weights"] for m in members]) for f in range(len(folds))]
    for alpha in ALPHAS:  # the blend weights are scored as BlendedDecoder would score them, fold by fold
        blends = [BlendedDecoder.of(model, start, state, alpha) for state in tuned]
        per_fold = [outputs(blend, f) for f, blend in enumerate(blends)]
        expected = pooled_r([p for p, _ in per_fold], [t for _, t in per_fold])
        assert choice["alpha_r"][str(alpha)] == pytest.approx(expected, abs=1e-5)
        assert choice["alpha_fold_r"][str(alpha)] == [
            pytest.approx(pooled_r([p], [t]), abs=1e-4) for p, t in per_fold]
    assert choice["alpha_r"][str(choice["alpha"])] == max(choice["alpha_r"].values())
    assert choice["alpha_r"]["0.0"] == pytest.approx(choice["start_r"], abs=1e-6)
    # poisoning either held-out track changes the scores: both folds judge
    for fold in folds:
        poisoned, _ = _run_finetune(fixture_model, Poisoned(dataset, fold.scored), split, tmp_path)
        assert poisoned["finetune"]["start_r"] != choice["start_r"]
