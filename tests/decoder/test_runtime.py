"""onnxruntime session: device choice, threads, I/O binding, warm-up, parity with a plain run."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from eegmusic.decoder.runtime import CUDA, DecoderRuntime, choose_providers, cuda_available
from eegmusic.stream.errors import ModelError

from tests.decoder.onnx_models import make_model

NO_CUDA = "no CUDA provider in this onnxruntime build / no GPU on this machine"


@pytest.fixture
def mel_model(tmp_path):
    return make_model(tmp_path / "mel.onnx")


def _reference(path, windows):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"eeg": windows.astype(np.float32)})[0]


@pytest.mark.parametrize("iobinding", [True, False])
def test_predict_matches_plain_session(mel_model, rng, iobinding):
    runtime = DecoderRuntime(mel_model, device="cpu", iobinding=iobinding)
    windows = rng.standard_normal((4, 125, 125)).astype(np.float32) * 20
    expected = _reference(mel_model, windows)
    for window, want in zip(windows, expected, strict=True):
        got = runtime.predict(window)
        assert got.shape == (128, 44) and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(runtime.predict_batch(windows), expected)


def test_predict_returns_independent_arrays(mel_model, rng):
    runtime = DecoderRuntime(mel_model, device="cpu")
    first = runtime.predict(rng.standard_normal((125, 125)).astype(np.float32))
    kept = first.copy()
    runtime.predict(rng.standard_normal((125, 125)).astype(np.float32))
    np.testing.assert_array_equal(first, kept)
    out = np.empty((128, 44), np.float32)
    assert runtime.predict(np.zeros((125, 125)), out=out) is out


def test_threads_and_provider(mel_model):
    runtime = DecoderRuntime(mel_model, device="auto", intra_op_threads=2, inter_op_threads=1, warmup=0)
    assert runtime.provider == (CUDA if cuda_available() else "CPUExecutionProvider")
    assert runtime.intra_op_threads == 2 and runtime.output_shape == (128, 44)


def test_audio_model(tmp_path):
    runtime = DecoderRuntime(make_model(tmp_path / "a.onnx", kind="audio"), device="cpu")
    audio = runtime.predict(np.ones((125, 125), np.float32))
    assert audio.shape == (22050,) and np.abs(audio).max() > 0.05


def test_subject_model(tmp_path):
    from onnx import TensorProto

    path = make_model(tmp_path / "s.onnx", subject_type=TensorProto.INT64, subject_input=True)
    runtime = DecoderRuntime(path, device="cpu", subject="P2")
    assert runtime.predict(np.zeros((125, 125), np.float32)).shape == (128, 44)


@pytest.mark.parametrize("iobinding", [True, False])
def test_a_subject_conditioned_model_decodes_the_listener_named(tmp_path, rng, caplog, iobinding):
    """Every live listener was fed as the model's first training listener (index 0), silently: the
    listener named is fed, none named is the first with one warning naming it, and an unknown listener or
    a model without a subject input is refused in one line."""
    from eegmusic.stream.errors import ConfigError
    from onnx import TensorProto

    path = make_model(tmp_path / "s.onnx", subject_type=TensorProto.INT64, subject_input=True,
                      subject_weight=5.0)
    window = rng.standard_normal((125, 125)).astype(np.float32)
    with caplog.at_level("WARNING", logger="eegmusic.decoder.runtime"):
        first = DecoderRuntime(path, device="cpu", iobinding=iobinding).predict(window)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "no --subject was given: it decodes as listener P1" in warned[0], warned
    caplog.clear()
    with caplog.at_level("WARNING", logger="eegmusic.decoder.runtime"):
        second = DecoderRuntime(path, device="cpu", iobinding=iobinding, subject="P2")
    assert not caplog.records and second.subject == "P2"
    np.testing.assert_allclose(second.predict(window), first + 5.0, atol=1e-4)
    np.testing.assert_allclose(second.predict_batch(window[None]), (first + 5.0)[None], atol=1e-4)
    # the listener's number, as replay --subject 2 names the same listener
    numbered = DecoderRuntime(path, device="cpu", iobinding=iobinding, subject="2")
    assert numbered.subject == "P2"
    np.testing.assert_allclose(numbered.predict(window), first + 5.0, atol=1e-4)
    with pytest.raises(ConfigError, match="^[^\n]*$") as caught:
        DecoderRuntime(path, device="cpu", subject="P3")
    assert str(caught.value) == ("--subject P3 is not a listener model s.onnx was trained on (it knows P1, "
                                 "P2); pass one of those")
    with pytest.raises(ConfigError, match="--subject 3 is not a listener model s.onnx was trained on"):
        DecoderRuntime(path, device="cpu", subject="3")
    with pytest.raises(ConfigError, match="^[^\n]*$") as caught:
        DecoderRuntime(make_model(tmp_path / "plain.onnx"), device="cpu", subject="P1")
    assert str(caught.value) == ("--subject P1: model plain.onnx has no subject input (trained without "
                                 "--subject-conditioning) and decodes every listener alike; drop --subject")


@pytest.mark.parametrize("iobinding", [True, False])
def test_a_model_computing_another_shape_than_it_declares_is_refused_at_start(tmp_path, capfd, iobinding):
    """Metadata and graph say 128 x 44, the graph computes 128 x 40: the warm-up window's onnxruntime
    failure (or numpy's, without I/O binding) was a traceback; it is one line naming both shapes."""
    path = make_model(tmp_path / "liar.onnx", computed_frames=40)
    with pytest.raises(ModelError, match="^[^\n]*$") as caught:
        DecoderRuntime(path, device="cpu", iobinding=iobinding)
    assert ("fails on a window: it computes output 'mel_db' of shape [1, 128, 40], its metadata declares "
            "[batch, 128, 44]") in str(caught.value)
    assert "onnxruntime" not in capfd.readouterr().err     # no log lines of onnxruntime's own beside it


def test_runtime_imports_no_private_name():
    """runtime.py imported modelfile's private ``_FIX``; the shared fix phrase is public there, and a bad
    window's message ends with it as modelfile's own messages do."""
    import ast
    import inspect

    from eegmusic.decoder import modelfile, runtime

    imported = [alias.name for node in ast.walk(ast.parse(inspect.getsource(runtime)))
                if isinstance(node, ast.ImportFrom) for alias in node.names]
    assert not [name for name in imported if name.startswith("_")], imported
    assert "EXPORT_FIX" in imported and modelfile.EXPORT_FIX == "export it again with `eegmusic train`"


@pytest.mark.parametrize("kwargs,message", [
    (dict(device="tpu"), "device 'tpu' is not one of auto, cpu, cuda"),
    (dict(intra_op_threads=0), "thread counts must be >= 1"),
])
def test_bad_options(mel_model, kwargs, message):
    with pytest.raises(ModelError, match=message):
        DecoderRuntime(mel_model, **kwargs)


def test_wrong_window_shape(mel_model):
    runtime = DecoderRuntime(mel_model, device="cpu", warmup=0)
    with pytest.raises(ModelError, match=r"window has shape \(64, 125\); the model needs \(125, 125\)"):
        runtime.predict(np.zeros((64, 125), np.float32))


@pytest.mark.skipif(cuda_available(), reason="CUDA is present: the absent-CUDA message cannot be shown")
def test_cuda_requested_but_absent(mel_model):
    with pytest.raises(ModelError, match=r"^--device cuda was asked for but onnxruntime has no CUDA "
                                         r"provider here .*pass --device cpu$"):
        DecoderRuntime(mel_model, device="cuda")
    assert choose_providers("auto") == ["CPUExecutionProvider"]


@pytest.mark.skipif(not cuda_available(), reason=NO_CUDA)
def test_cuda_matches_cpu(mel_model, rng):
    gpu = DecoderRuntime(mel_model, device="cuda")
    cpu = DecoderRuntime(mel_model, device="cpu")
    assert gpu.provider == CUDA
    for _ in range(3):
        window = rng.standard_normal((125, 125)).astype(np.float32) * 20
        np.testing.assert_allclose(gpu.predict(window), cpu.predict(window), atol=1e-3)


@pytest.mark.slow
def test_runs_training_export_like_torch(tmp_path, rng):
    """A registry model exported by offline_training runs in the runtime as it does in torch."""
    torch = pytest.importorskip("torch")
    from eegmusic.offline_training.export import build_metadata, export_onnx
    from eegmusic.offline_training.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("linear").eval()
    path = export_onnx(model, tmp_path / "linear.onnx", build_metadata(model))
    runtime = DecoderRuntime(path, device="cpu")
    assert runtime.info.model_name == "linear" and runtime.info.output_shape == (128, 44)
    window = (rng.standard_normal((125, 125)) * 20).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(window[None])).numpy()[0]
    np.testing.assert_allclose(runtime.predict(window), expected, atol=1e-3)
