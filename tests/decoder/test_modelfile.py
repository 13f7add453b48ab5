"""Model files: metadata read and checked; every bad file refused with one line naming the fix."""

from __future__ import annotations

import json

import pytest
from eegmusic.decoder.modelfile import check_stream, read_model_info
from eegmusic.stream.errors import ModelError
from eegmusic.stream.spec import DEVICE_CHANNELS_128, MODEL_CHANNELS
from onnx import TensorProto

from tests.decoder.onnx_models import make_model, metadata


def test_reads_metadata(tmp_path):
    info = read_model_info(make_model(tmp_path / "m.onnx", lag_s=0.25))
    assert info.channels == MODEL_CHANNELS
    assert info.sfreq == 125.0 and info.window_samples == 125
    assert info.output_kind == "mel_db" and info.output_shape == (128, 44)
    assert info.audio_lag_s == 0.25 and info.target_offset_s == 0.25
    assert info.preprocessing.channels == MODEL_CHANNELS
    assert "test-linear-mel_db" in info.summary()


def test_reads_audio_model(tmp_path):
    info = read_model_info(make_model(tmp_path / "a.onnx", kind="audio"))
    assert info.output_kind == "audio" and info.output_shape == (22050,) and info.output_sfreq == 22050


def test_reads_subject_model(tmp_path):
    path = make_model(tmp_path / "s.onnx", subject_type=TensorProto.INT64, subject_input=True)
    info = read_model_info(path)
    assert info.subject_input and info.subjects == ["P1", "P2"]


def _truncated(tmp_path):
    path = make_model(tmp_path / "full.onnx")
    data = path.read_bytes()
    (tmp_path / "m.onnx").write_bytes(data[: len(data) // 2])
    return tmp_path / "m.onnx"


def _garbage(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"this is not a protobuf \x00\xff" * 40)
    return tmp_path / "m.onnx"


def _empty(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    return tmp_path / "m.onnx"


def _meta(**changes):
    def build(tmp_path):
        meta = metadata()
        for key, value in changes.items():
            section, _, field = key.partition("__")
            if field:
                meta[section][field] = value
            elif value is None:
                del meta[section]
            else:
                meta[section] = value
        return make_model(tmp_path / "m.onnx", meta=meta)
    return build


BAD_FILES = {
    "missing": (lambda p: p / "nope.onnx", "does not exist"),
    "directory": (lambda p: p, "is not a file"),
    "empty": (_empty, "is empty"),
    "truncated": (_truncated, "corrupt or truncated"),
    "garbage": (_garbage, "corrupt or truncated"),
    "no metadata": (lambda p: make_model(p / "m.onnx", meta=None), "no 'eegmusic' metadata"),
    "metadata not json": (lambda p: make_model(p / "m.onnx", meta="{oops"), "invalid JSON"),
    "metadata not object": (lambda p: make_model(p / "m.onnx", meta="[1, 2]"), "not a JSON object"),
    "format version": (_meta(format_version=2), "format_version 2"),
    "no input section": (_meta(input=None), "lacks 'input'"),
    "no channels": (_meta(input__channels=None), "lacks 'input.channels'"),
    "bad kind": (_meta(output={"name": "mel_db", "kind": "spikes"}), "output kind 'spikes'"),
    "wrong output name": (_meta(output__name="mel"), "names output 'mel'"),
    "shape disagrees": (_meta(output__n_frames=43), "metadata says [batch, 128, 43]"),
    "channels disagree": (_meta(input__channels=list(MODEL_CHANNELS[:64])), "metadata says [batch, 64, 125]"),
    "duplicate channels": (_meta(input__channels=["E1"] * 125), "duplicates"),
    # the graph's own types: each was a traceback from the first window (decode) or the first batch
    "output float64": (lambda p: make_model(p / "m.onnx", output_type=TensorProto.DOUBLE),
                       "output 'mel_db' is tensor(double), not float32"),
    "subject int32": (lambda p: make_model(p / "m.onnx", subject_type=TensorProto.INT32, subject_input=True),
                      "input 'subject' is tensor(int32), not int64"),
    "subject undeclared": (lambda p: make_model(p / "m.onnx", subject_type=TensorProto.INT64),
                           "graph has a 'subject' input its metadata does not declare"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_model_files(tmp_path, case):
    build, message = BAD_FILES[case]
    path = build(tmp_path)
    if case == "no channels":  # deleting a nested key: build by hand
        meta = metadata()
        del meta["input"]["channels"]
        path = make_model(tmp_path / "m.onnx", meta=meta)
    with pytest.raises(ModelError, match="^[^\n]*$") as caught:
        read_model_info(path)
    assert message in str(caught.value)


def test_bad_file_left_untouched(tmp_path):
    path = _truncated(tmp_path)
    before = path.read_bytes()
    with pytest.raises(ModelError):
        read_model_info(path)
    assert path.read_bytes() == before


def test_stream_match_accepts_model_and_device_montages(tmp_path):
    info = read_model_info(make_model(tmp_path / "m.onnx"))
    check_stream(info, stream_name="s", labels=list(MODEL_CHANNELS), sfreq=125.0)
    check_stream(info, stream_name="s", labels=list(DEVICE_CHANNELS_128), sfreq=1000.0)   # Cz = reference
    check_stream(info, stream_name="s", labels=list(MODEL_CHANNELS[:-1]) + ["E129"], sfreq=250.0)


@pytest.mark.parametrize(("sfreq", "model_sfreq", "fixes"), [
    (100.0, 125.0, "raise the amplifier's rate to 125 Hz or more"),
    (200.0, 250.0,
     "use a model trained at the stream's rate or raise the amplifier's rate to 250 Hz or more"),
])
def test_a_slow_stream_is_told_only_the_fixes_that_exist(tmp_path, sfreq, model_sfreq, fixes):
    """Below the 125 Hz train makes models at, "use a model trained at the stream's rate" cannot be
    followed: train refuses such data."""
    window = int(model_sfreq)
    info = read_model_info(make_model(tmp_path / "m.onnx", window_samples=window,
                                      meta=metadata(sfreq=model_sfreq, window_samples=window)))
    with pytest.raises(ModelError) as caught:
        check_stream(info, stream_name="s", labels=list(MODEL_CHANNELS), sfreq=sfreq)
    assert str(caught.value).endswith(fixes)
    assert ("model trained at the stream's rate" in str(caught.value)) == (sfreq >= 125.0)


MISMATCH = {
    "too few channels": (dict(labels=[f"E{i}" for i in range(1, 65)], sfreq=125.0),
                         "has 64 channels and lacks 60 the model needs (E65, E66"),  # Cz: the reference
    "other labels": (dict(labels=[f"Ch{i}" for i in range(125)], sfreq=125.0), "lacks 125"),
    "rate too low": (dict(labels=list(MODEL_CHANNELS), sfreq=100.0), "runs at 100 Hz; the model needs"),
    "irregular": (dict(labels=list(MODEL_CHANNELS), sfreq=0.0), "irregular rate"),
    "another GSN net": (dict(labels=[f"E{i}" for i in range(1, 257)], sfreq=250.0),   # a 256 net
                        "is a GSN net of 256 channels (labels up to E256), not the 129-electrode net"),
}


@pytest.mark.parametrize("case", list(MISMATCH))
def test_stream_mismatch_refused(tmp_path, case):
    info = read_model_info(make_model(tmp_path / "m.onnx"))
    kwargs, message = MISMATCH[case]
    with pytest.raises(ModelError, match="^[^\n]*$") as caught:
        check_stream(info, stream_name="cap-1", **kwargs)
    assert message in str(caught.value) and "cap-1" in str(caught.value)


@pytest.mark.parametrize("field,value,message", [
    ("sfreq", 250.0, "reads EEG at 250 Hz"),
    ("window_samples", 250, "windows of 250 samples"),
])
def test_model_live_contract_refused(tmp_path, field, value, message):
    meta = metadata()
    meta["input"][field] = value
    if field == "sfreq":
        meta["preprocessing"]["sfreq"] = value
    n_t = value if field == "window_samples" else 125
    info = read_model_info(make_model(tmp_path / "m.onnx", meta=json.loads(json.dumps(meta)),
                                      window_samples=n_t))
    with pytest.raises(ModelError, match=message):
        check_stream(info, stream_name="s", labels=list(MODEL_CHANNELS), sfreq=1000.0)


def test_a_waveform_rate_the_live_decoder_cannot_resample_is_refused(tmp_path):
    """11025 or 16000 Hz are resampled to the output's 22050 Hz window by window; a rate that is no short
    ratio of it would need a filter of millions of taps."""
    for rate in (11025.0, 16000.0):
        info = read_model_info(make_model(tmp_path / "ok.onnx", kind="audio", n_samples=int(rate),
                                          audio_sfreq=rate))
        check_stream(info, stream_name="s", labels=list(MODEL_CHANNELS), sfreq=125.0)
    info = read_model_info(make_model(tmp_path / "odd.onnx", kind="audio", n_samples=22049,
                                      audio_sfreq=22049.3))
    with pytest.raises(ModelError, match="^[^\n]*$") as caught:
        check_stream(info, stream_name="s", labels=list(MODEL_CHANNELS), sfreq=125.0)
    assert ("model odd.onnx outputs audio at 22049.3 Hz, which the live decoder cannot resample to 22050 Hz "
            "by a short filter") in str(caught.value)


def test_a_model_trained_on_sessions_before_the_resampler_was_centred_is_named(tmp_path, caplog):
    """EEG above 125 Hz reached training 80 ms late until the resampler's delay was compensated; a model
    trained on such sessions learnt that lag and now reads the EEG on time. It is named once (decode,
    evaluate) so that it is trained again; a model of the model rate's data, or a newer one, is not."""
    from eegmusic.decoder.modelfile import RESAMPLER, resampler_note
    from eegmusic.decoder.runtime import DecoderRuntime

    def model(name, **training):
        meta = metadata()
        meta["training"].update(training)
        return make_model(tmp_path / f"{name}.onnx", meta=meta)

    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "S01.xdf").write_bytes(b"")
    nmedt = tmp_path / "nmedt"
    nmedt.mkdir()
    (nmedt / "song21_Imputed.mat").write_bytes(b"")
    for name, data, said in [("session", "/gone/s1.xdf", True), ("folder", str(tmp_path / "sessions"), True),
                             ("nmedt", str(nmedt), False)]:
        info = read_model_info(model(name, data=data))
        note = resampler_note(info)
        assert (note is not None) == said, (name, note)
        if said:
            assert "\n" not in note and "before the resampler's 80-ms delay was compensated" in note
    assert resampler_note(read_model_info(model("new", data="/gone/s1.xdf", resampler=RESAMPLER))) is None
    with caplog.at_level("WARNING", logger="eegmusic.decoder.runtime"):
        DecoderRuntime(tmp_path / "session.onnx", device="cpu")
    said = resampler_note(read_model_info(tmp_path / "session.onnx"))
    assert [r.getMessage() for r in caplog.records] == [said]
