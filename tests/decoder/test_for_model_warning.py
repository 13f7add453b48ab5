"""``PipelineConfig.for_model`` says so when it leaves out the truth a user gave for a waveform model."""

from __future__ import annotations

import logging

from eegmusic.decoder.pipeline_config import PipelineConfig, model_output_kind

from tests.decoder.onnx_models import make_model


def test_a_dropped_truth_is_logged_as_a_warning(tmp_path, caplog):
    """The dashboard started a waveform model with --truth and showed no score, and nothing said why."""
    model = make_model(tmp_path / "wave.onnx", kind="audio")
    assert model_output_kind(model) == "audio"
    with caplog.at_level(logging.WARNING, logger="eegmusic.decoder.pipeline_config"):
        kept = PipelineConfig(model_path=model, truth_dir=tmp_path / "data").for_model()
    assert kept.truth_dir is None
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warned) == 1 and "wave.onnx outputs audio directly" in warned[0], warned
    assert "(--truth) is left out and nothing is scored" in warned[0]


def test_nothing_is_logged_when_no_truth_is_dropped(tmp_path, caplog):
    """Without --truth, with a truth the waveform model plays (--listen true), or for a mel model."""
    wave = make_model(tmp_path / "wave.onnx", kind="audio")
    mel = make_model(tmp_path / "mel.onnx")
    with caplog.at_level(logging.WARNING, logger="eegmusic.decoder.pipeline_config"):
        PipelineConfig(model_path=wave).for_model()
        assert PipelineConfig(model_path=wave, truth_dir=tmp_path, listen="true").for_model().truth_dir
        assert PipelineConfig(model_path=mel, truth_dir=tmp_path).for_model(model_output_kind(mel)).truth_dir
    assert not caplog.records
    assert model_output_kind(tmp_path / "absent.onnx") is None
