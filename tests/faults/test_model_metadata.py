"""Hostile model metadata: refused at load with one line naming the key, the expected type and the value.

Each case edits one value of a valid test model's ``eegmusic`` metadata (real ONNX files, read by
onnxruntime). ``decode`` loads the model before it looks for a stream, so the command ends in one
line without any stream.
"""

from __future__ import annotations

import json
import math

import pytest
from eegmusic.decoder.modelfile import read_model_info
from eegmusic.stream.errors import ModelError

from tests.decoder.onnx_models import make_model, metadata
from tests.faults.conftest import assert_one_line_error, run_cli

NAN = math.nan

# (where, new value, key named in the message, expected-type words)
BAD_VALUES = [
    (("input", "window_samples"), "abc", "input.window_samples", "whole number"),
    (("input", "window_samples"), None, "input.window_samples", "whole number"),
    (("input", "window_samples"), 1.5, "input.window_samples", "whole number"),
    (("input", "window_samples"), -125, "input.window_samples", "whole number"),
    (("input", "window_samples"), True, "input.window_samples", "whole number"),
    (("input", "sfreq"), None, "input.sfreq", "finite number"),
    (("input", "sfreq"), "125", "input.sfreq", "finite number"),
    (("input", "sfreq"), -125.0, "input.sfreq", "finite number"),
    (("input", "sfreq"), 0, "input.sfreq", "finite number"),
    (("input", "sfreq"), NAN, "input.sfreq", "finite number"),
    (("input", "channels"), 5, "input.channels", "list of strings"),
    (("input", "channels"), "E1,E2", "input.channels", "list of strings"),
    (("input", "channels"), [1, 2, 3], "input.channels", "list of strings"),
    (("input", "channels"), None, "input.channels", "list of strings"),
    (("input", "name"), 7, "input.name", "string"),
    (("input", "subject_input"), "yes", "input.subject_input", "true or false"),
    (("input",), "x", "input", "JSON object"),
    (("output",), [1], "output", "JSON object"),
    (("output", "n_mels"), "128", "output.n_mels", "whole number"),
    (("output", "n_frames"), -44, "output.n_frames", "whole number"),
    (("output", "name"), None, "output.name", "string"),
    (("output", "kind"), 3, "output.kind", "string"),
    (("preprocessing",), "x", "preprocessing", "JSON object"),
    (("preprocessing",), 5, "preprocessing", "JSON object"),
    (("preprocessing", "sfreq"), "abc", "preprocessing.sfreq", "finite number"),
    (("preprocessing", "sfreq"), NAN, "preprocessing.sfreq", "finite number"),
    (("preprocessing", "channels"), "E1", "preprocessing.channels", "list of strings"),
    (("preprocessing", "reference"), 3, "preprocessing.reference", "string"),
    (("preprocessing", "highpass_hz"), "x", "preprocessing.highpass_hz", "finite number"),
    (("preprocessing", "notch_hz"), -50.0, "preprocessing.notch_hz", "finite number"),
    (("audio_lag_s",), "soon", "audio_lag_s", "finite number"),
    (("audio_lag_s",), NAN, "audio_lag_s", "finite number"),
    (("audio_lag_s",), 1e9, "audio_lag_s", "finite number"),
    (("target_offset_s",), "later", "target_offset_s", "finite number"),
    (("mel",), "librosa", "mel", "JSON object"),
    (("mel", "sr"), "22050", "mel.sr", "finite number"),
    (("model",), "cnn", "model", "JSON object"),
    (("model", "name"), ["cnn"], "model.name", "string"),
]


def _bad_model(tmp_path, where, value):
    meta = metadata()
    target = meta
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    text = json.dumps(meta)  # NaN goes in as the JSON extension NaN, as Python writes it
    return make_model(tmp_path / "bad.onnx", meta=text)


def _assert_names_the_field(caught, key: str, kind: str) -> None:
    """One line naming the key, the expected type and the value found."""
    message = str(caught.value)
    assert "\n" not in message
    assert f"'{key}'" in message and kind in message and "found" in message, message


@pytest.mark.parametrize(("where", "value", "key", "kind"), BAD_VALUES,
                         ids=[f"{'.'.join(w)}={v!r}" for w, v, _, _ in BAD_VALUES])
def test_bad_metadata_value_is_refused_at_load(where, value, key, kind, tmp_path):
    path = _bad_model(tmp_path, where, value)
    with pytest.raises(ModelError) as caught:
        read_model_info(path)
    _assert_names_the_field(caught, key, kind)


def test_an_unknown_reference_is_refused_at_load(tmp_path):
    """It was taken at load and refused only when the first chunk of a live stream came in."""
    with pytest.raises(ModelError, match=r"'preprocessing.reference' is 'median', not one of none, average"):
        read_model_info(_bad_model(tmp_path, ("preprocessing", "reference"), "median"))


# the model's record of its training, which evaluate reads (the split, its seed, the hop)
BAD_TRAINING = [
    (("training",), [1, 2], "training", "JSON object"),
    (("training", "seed"), "abc", "training.seed", "whole number"),
    (("training", "seed"), -1, "training.seed", "whole number"),
    (("training", "hop_s"), 0, "training.hop_s", "finite number in [0.008, 60]"),
    (("training", "hop_s"), "1", "training.hop_s", "finite number"),
    (("training", "split"), 5, "training.split", "string"),
    (("training", "data"), ["d"], "training.data", "string"),
    (("training", "songs"), ["21"], "training.songs", "list of whole numbers"),
    (("training", "subjects"), "S01", "training.subjects", "list"),
    (("training", "subjects"), [None], "training.subjects", "participant ids"),
]


@pytest.mark.parametrize(("where", "value", "key", "kind"), BAD_TRAINING,
                         ids=[f"{'.'.join(w)}={v!r}" for w, v, _, _ in BAD_TRAINING])
def test_bad_training_metadata_is_refused_before_evaluate_uses_it(where, value, key, kind, tmp_path):
    """``training.seed = "abc"`` and ``training = [1, 2]`` were tracebacks in evaluate; ``hop_s = 0``
    blamed a --phase nobody gave."""
    from eegmusic.decoder.modelfile import training_metadata

    info = read_model_info(_bad_model(tmp_path, where, value))  # decode never reads the block
    with pytest.raises(ModelError) as caught:
        training_metadata(info)
    _assert_names_the_field(caught, key, kind)


def test_optional_blocks_may_be_left_out_and_an_old_runs_large_seed_is_read(tmp_path):
    """A model without ``preprocessing`` reads its own channels (the check of that block once raised a
    KeyError traceback on it); a seed above what ``--seed`` now takes was a valid run before."""
    from eegmusic.decoder.modelfile import training_metadata

    meta = metadata()
    del meta["preprocessing"]
    meta["training"]["seed"] = 2**40
    info = read_model_info(make_model(tmp_path / "m.onnx", meta=json.dumps(meta)))
    assert info.preprocessing.channels == info.channels
    assert training_metadata(info)["seed"] == 2**40


def test_evaluate_with_bad_training_metadata_is_one_line(tmp_path, capsys):
    path = _bad_model(tmp_path, ("training", "seed"), "abc")
    status, _, err = run_cli(["evaluate", "--model", str(path), "--data", str(tmp_path / "none"), "--out",
                              str(tmp_path / "out")], capsys)
    assert_one_line_error(status, err, "'training.seed'")
    assert not (tmp_path / "out").exists()


def test_an_unknown_split_in_the_metadata_is_blamed_on_the_file_not_on_an_option(tmp_path, capsys):
    """It said "unknown split 'zzz'; use one of …", as to a --split nobody gave."""
    path = _bad_model(tmp_path, ("training", "split"), "zzz")
    status, _, err = run_cli(["evaluate", "--model", str(path), "--data", str(tmp_path / "none"), "--out",
                              str(tmp_path / "out")], capsys)
    assert_one_line_error(status, err, f"model file {path} names an unknown training split 'zzz' in its "
                          "metadata", "pass --split")
    assert not (tmp_path / "out").exists()


def test_evaluate_blames_a_model_whose_preprocessing_rate_is_not_its_own_not_the_recording(sim_dir, tmp_path,
                                                                                          capsys):
    """A helper's file fuzz: evaluate said "stream rate 125 Hz is below the model's 250 Hz; use a device rate
    such as …" of a recording at the right rate; decode names the file's inconsistency."""
    path = _bad_model(tmp_path, ("preprocessing", "sfreq"), 250.0)
    status, _, err = run_cli(["evaluate", "--model", str(path), "--data", str(sim_dir), "--split", "all",
                              "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert_one_line_error(status, err, f"model {path.name} reads EEG at 125 Hz but its preprocessing "
                          "resamples to 250 Hz", "export it again")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("where", "value", "key", "kind"), BAD_VALUES[::4],
                         ids=[f"{'.'.join(w)}={v!r}" for w, v, _, _ in BAD_VALUES[::4]])
def test_decode_with_bad_metadata_is_one_line(where, value, key, kind, tmp_path, capsys):
    path = _bad_model(tmp_path, where, value)
    status, _, err = run_cli(["decode", "--model", str(path), "--stream", "no-such-stream", "--timeout", "0",
                              "--no-audio", "--no-lsl-out"], capsys)
    assert_one_line_error(status, err, f"'{key}'")


@pytest.mark.parametrize("raw", ["", "{", "[]", "null", '"text"', '{"format_version": 99}', "{}", "NaN",
                                 # past Python's JSON reader: a ValueError and a RecursionError escaped as
                                 # tracebacks (decode, evaluate, gui, demo, train --init)
                                 '{"junk": ' + "9" * 5000 + "}", "[" * 5000 + "]" * 5000])
def test_unreadable_metadata_document_is_one_line(raw, tmp_path):
    path = make_model(tmp_path / "bad.onnx", meta=raw)
    with pytest.raises(ModelError) as caught:
        read_model_info(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("raw", ['{"junk": ' + "9" * 5000 + "}", "[" * 5000 + "]" * 5000])
def test_metadata_past_pythons_json_reader_is_one_line_in_decode_and_init(raw, sim_dir, tmp_path, capsys):
    path = make_model(tmp_path / "bad.onnx", meta=raw)
    status, _, err = run_cli(["decode", "--model", str(path), "--stream", "s", "--timeout", "0",
                              "--no-audio"], capsys)
    assert_one_line_error(status, err, f"model file {path} has unreadable 'eegmusic' metadata")
    status, _, err = run_cli(["train", "--data", str(sim_dir), "--init", str(path), "--out",
                              str(tmp_path / "run")], capsys)
    assert_one_line_error(status, err, f"--init {path}: no eegmusic metadata")


@pytest.mark.parametrize("content", [b"", b"not onnx at all", b"\x08\x07" * 100])
def test_corrupt_model_file_is_one_line(content, tmp_path, capsys):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    argv = ["decode", "--model", str(path), "--stream", "s", "--timeout", "0", "--no-audio"]
    status, _, err = run_cli(argv, capsys)
    assert_one_line_error(status, err, str(path))


@pytest.mark.parametrize(("n_mels", "n_frames"), [(128, 1), (4096, 44), (64, 44)])
def test_a_mel_model_of_another_window_shape_is_refused_at_load_as_evaluate_refuses_it(n_mels, n_frames,
                                                                                        tmp_path, capsys):
    """decode took a model of 1 frame a window (NaN frames played as silence, numpy's divide-by-zero
    warnings) and refused 4096 bands only after the stream had connected; evaluate refused both."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    meta = metadata()
    meta["output"].update(n_mels=n_mels, n_frames=n_frames)
    shape = numpy_helper.from_array(np.array([n_mels, n_frames], dtype=np.int64), "tail")
    graph = helper.make_graph(
        [helper.make_node("Shape", ["eeg"], ["full"]),
         helper.make_node("Slice", ["full", "zero", "one"], ["batch"]),
         helper.make_node("Concat", ["batch", "tail"], ["out_shape"], axis=0),
         helper.make_node("ConstantOfShape", ["out_shape"], ["mel_db"],
                          value=numpy_helper.from_array(np.array([-40.0], dtype=np.float32)))],
        "g", [helper.make_tensor_value_info("eeg", TensorProto.FLOAT, ["N", 125, 125])],
        [helper.make_tensor_value_info("mel_db", TensorProto.FLOAT, ["N", n_mels, n_frames])],
        initializer=[shape, numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
                     numpy_helper.from_array(np.array([1], dtype=np.int64), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"eegmusic": json.dumps(meta)})
    path = tmp_path / "odd.onnx"
    onnx.save(model, path)
    status, _, err = run_cli(["decode", "--model", str(path), "--stream", "s", "--timeout", "0",
                              "--no-audio"], capsys)
    assert_one_line_error(status, err, f"model file {path} outputs mel-dB windows of ({n_mels}, {n_frames}); "
                                       "eegmusic decodes (128, 44)")
