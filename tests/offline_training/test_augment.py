"""Training-window augmentation (time shift, channel dropout, amplitude scaling) and the Pearson losses."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eegmusic.offline_training.augment import Augmentation, parse_augment  # noqa: E402
from eegmusic.offline_training.loop_regression import (  # noqa: E402
    band_pearson,
    loss_function,
    mse_pearson_loss,
    pearson_loss,
)
from eegmusic.stream.errors import ConfigError  # noqa: E402


def ramp_batch(batch=16, n_chans=5, n_times=20):
    """EEG whose value is its sample number (plus 100 × channel), so shifts and drops are readable."""
    t = torch.arange(n_times, dtype=torch.float32)
    return (t[None, None, :] + 100.0 * torch.arange(n_chans, dtype=torch.float32)[None, :, None]
            ).expand(batch, n_chans, n_times).clone()


def test_parse_reads_every_entry_and_empty_means_none():
    assert parse_augment("shift=2,dropout=0.1,scale=0.2") == Augmentation(shift=2, dropout=0.1, scale=0.2)
    assert parse_augment(" shift=3 ") == Augmentation(shift=3)
    assert not parse_augment("").active and not parse_augment(None).active


@pytest.mark.parametrize("spec, words", [
    ("jitter=2", "name=value"), ("shift", "name=value"), ("shift=1.5", "integer"), ("dropout=x", "number"),
    ("dropout=1", "[0, 1)"), ("shift=99", "0-25"), ("scale=-1", "0-2"),
])
def test_bad_spec_is_one_line_naming_the_fix(spec, words):
    with pytest.raises(ConfigError) as error:
        parse_augment(spec)
    message = str(error.value)
    assert words in message and "e.g." in message and "\n" not in message


def test_shift_moves_each_window_by_at_most_the_limit_with_edges_repeated():
    eeg = ramp_batch(batch=64)
    out = Augmentation(shift=2)(eeg, torch.Generator().manual_seed(0))
    shifts = out[:, 0, 10] - eeg[:, 0, 10]  # interior sample: the shift itself
    assert set(shifts.tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    # every channel of a window moves together, and the edges repeat the first / last sample
    assert torch.equal(out[:, 1, :] - out[:, 0, :], torch.full_like(out[:, 0, :], 100.0))
    assert float(out[:, 0, :].min()) == 0.0 and float(out[:, 0, :].max()) == 19.0


def test_channel_dropout_zeroes_whole_channels_and_rescales_the_rest():
    eeg = ramp_batch(batch=200) + 1.0
    out = Augmentation(dropout=0.25)(eeg, torch.Generator().manual_seed(1))
    dropped = (out == 0).all(dim=2)
    kept = ~dropped
    assert 0.15 < float(dropped.float().mean()) < 0.35
    assert torch.allclose(out[kept], eeg[kept] / 0.75)


def test_scaling_multiplies_each_window_by_one_log_normal_gain():
    eeg = ramp_batch(batch=500) + 1.0
    out = Augmentation(scale=0.2)(eeg, torch.Generator().manual_seed(2))
    gains = out / eeg
    assert torch.allclose(gains, gains[:, :1, :1].expand_as(gains))
    log_gain = torch.log(gains[:, 0, 0])
    assert abs(float(log_gain.mean())) < 0.03 and 0.17 < float(log_gain.std()) < 0.23


def test_same_generator_seed_same_augmentation_and_input_untouched():
    eeg = ramp_batch()
    before = eeg.clone()
    augmentation = Augmentation(shift=2, dropout=0.2, scale=0.1)
    a = augmentation(eeg, torch.Generator().manual_seed(5))
    b = augmentation(eeg, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(eeg, before)


def test_band_pearson_is_per_band_over_every_frame_of_the_batch(rng):
    target = torch.tensor(rng.normal(size=(6, 4, 10)), dtype=torch.float32)
    pred = target.clone()
    pred[:, 1] = 3.0 * target[:, 1] - 7.0  # scale and offset do not matter
    pred[:, 2] = -target[:, 2]
    pred[:, 3] = torch.tensor(rng.normal(size=(6, 10)), dtype=torch.float32)
    r = band_pearson(pred, target)
    expected = np.corrcoef(pred[:, 3].numpy().ravel(), target[:, 3].numpy().ravel())[0, 1]
    assert r[:3].tolist() == pytest.approx([1.0, 1.0, -1.0], abs=1e-5)
    assert float(r[3]) == pytest.approx(expected, abs=1e-5)


def test_pearson_losses_have_finite_gradients_at_a_constant_prediction(rng):
    """An untrained model's zero head predicts the mean spectrum: a constant, the Pearson's 0/0."""
    target = torch.tensor(rng.normal(-40.0, 10.0, size=(4, 8, 12)), dtype=torch.float32)
    for loss in (pearson_loss, mse_pearson_loss):
        pred = torch.full_like(target, -40.0, requires_grad=True)
        value = loss(pred, target)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_mse_pearson_is_zero_only_for_the_target_itself(rng):
    target = torch.tensor(rng.normal(-40.0, 10.0, size=(4, 8, 12)), dtype=torch.float32)
    assert float(mse_pearson_loss(target, target)) == pytest.approx(0.0, abs=1e-5)
    # a perfectly correlated prediction at the wrong level still pays the MSE term
    assert float(mse_pearson_loss(target + 5.0, target)) > 0.1
    assert float(pearson_loss(target + 5.0, target)) == pytest.approx(0.0, abs=1e-5)
    assert loss_function("mse+pearson") is mse_pearson_loss
    assert loss_function("mse") is torch.nn.functional.mse_loss
