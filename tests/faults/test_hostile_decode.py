"""Hostile inputs to ``decode`` and ``vocode``: one line and exit 2, before any stream or output is opened.

Every ``decode`` case here is refused before a stream is resolved or the model loaded, so no LSL
stream is needed: the model path need not even exist (``decode`` loads it only after these checks).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from tests.faults.conftest import assert_one_line_error, run_cli

PRECIOUS = b"the only copy of a stimulus nobody can record again"


def _wav(path, seconds=0.5, value=None):
    n = int(22050 * seconds)
    audio = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 22050) if value is None else np.full(n, value)
    soundfile.write(path, audio.astype(np.float32), 22050, subtype="FLOAT")
    return path


@pytest.fixture
def dataset(tmp_path):
    """A minimal --truth folder: ``stimuli/song21.wav`` holding :data:`PRECIOUS` (never read here)."""
    folder = tmp_path / "ds"
    (folder / "stimuli").mkdir(parents=True)
    (folder / "stimuli" / "song21.wav").write_bytes(PRECIOUS)
    return folder


def _decode(capsys, tmp_path, *argv, model=None):
    model = tmp_path / "m.onnx" if model is None else model
    return run_cli(["decode", "--model", str(model), "--timeout", "0", "--duration", "1",
                    *(str(a) for a in argv)], capsys)


# -- vocode -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_vocode_refuses_non_finite_audio_in_one_line(value, tmp_path, capsys):
    source = _wav(tmp_path / "bad.wav", seconds=1.0, value=value)
    out = tmp_path / "out.wav"
    status, _, err = run_cli(["vocode", str(source), "--out", str(out)], capsys)
    assert_one_line_error(status, err, "bad.wav", "NaN/Inf")
    assert not out.exists()


@pytest.mark.parametrize(("kind", "problem"), [
    ("folder", "is a folder"),
    ("folder.wav", "is a folder"),
    ("device", "is not a regular file"),
    ("empty", "is empty"),
])
def test_vocode_says_what_is_wrong_with_the_input(kind, problem, tmp_path, capsys):
    source = {"folder": tmp_path / "songs", "folder.wav": tmp_path / "dir.wav", "device": "/dev/null",
              "empty": tmp_path / "empty.wav"}[kind]
    if kind.startswith("folder"):
        source.mkdir()
    if kind == "empty":
        source.write_bytes(b"")
    status, _, err = run_cli(["vocode", str(source), "--out", str(tmp_path / "out.wav")], capsys)
    line = assert_one_line_error(status, err, str(source), problem)
    assert "does not exist" not in line


def test_vocode_blames_a_too_short_duration_not_the_file(tmp_path, capsys):
    source = _wav(tmp_path / "song.wav", seconds=1.0)
    out = tmp_path / "out.wav"
    status, _, err = run_cli(["vocode", str(source), "--out", str(out), "--duration", "0.01"], capsys)
    line = assert_one_line_error(status, err, "--duration 0.01", "0.1 s")
    assert "holds" not in line and not out.exists()


# -- decode: outputs never replace inputs -------------------------------------------------------------

@pytest.mark.parametrize("where", ["stimulus", "beside", "record inside", "record is"])
def test_decode_never_writes_into_the_truth_dataset(where, dataset, tmp_path, capsys):
    flag, target = {"stimulus": ("--wav", dataset / "stimuli" / "song21.wav"),
                    "beside": ("--wav", dataset / "decoded.wav"),
                    "record inside": ("--record", dataset / "rec"),
                    "record is": ("--record", dataset)}[where]
    before = sorted(p.name for p in dataset.rglob("*"))
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", "--truth", dataset, flag, target,
                             "--overwrite")
    assert_one_line_error(status, err, flag, "would write into the --truth dataset")
    assert (dataset / "stimuli" / "song21.wav").read_bytes() == PRECIOUS
    assert sorted(p.name for p in dataset.rglob("*")) == before


@pytest.mark.parametrize("where", ["its audio folder", "a stimulus beside it"])
def test_decode_never_writes_over_the_inputs_of_a_truth_session_file(where, tmp_path, capsys):
    """With a session file as --truth, only the file itself was kept from the outputs: ``--wav
    s_audio/track.wav --overwrite`` replaced the audio a replay of it names."""
    session = tmp_path / "s.xdf"
    session.write_bytes(b"a session")
    (tmp_path / "s_audio").mkdir()
    (tmp_path / "s_audio" / "track.wav").write_bytes(PRECIOUS)
    (tmp_path / "song21.wav").write_bytes(PRECIOUS)
    target = {"its audio folder": tmp_path / "s_audio" / "track.wav",
              "a stimulus beside it": tmp_path / "song21.wav"}[where]
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", "--truth", session, "--wav", target,
                             "--overwrite")
    assert_one_line_error(status, err, "--wav", "would write into the --truth dataset")
    assert (tmp_path / "s_audio" / "track.wav").read_bytes() == PRECIOUS
    assert (tmp_path / "song21.wav").read_bytes() == PRECIOUS


@pytest.mark.parametrize(("flag", "name"), [("--wav", "decoded.wav"), ("--json", "mel_db.json")])
def test_decode_never_writes_over_a_file_of_an_earlier_recording(flag, name, tmp_path, capsys):
    """``--json rec/mel_db.json --overwrite`` replaced a recording's metadata and ``--wav rec/decoded.wav
    --overwrite`` its sound, though recordings are never overwritten; the same name in a folder holding no
    recording is an ordinary output."""
    from eegmusic.decoder.recording import RECORDING_FILES

    recording = tmp_path / "rec"
    recording.mkdir()
    for each in RECORDING_FILES:
        (recording / each).write_bytes(PRECIOUS)
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", flag, recording / name, "--overwrite")
    assert_one_line_error(status, err, f"{flag} {recording / name} is the file {name} of the recording in "
                                       f"{recording}", "choose another")
    assert all((recording / each).read_bytes() == PRECIOUS for each in RECORDING_FILES)
    alone = tmp_path / "other" / name
    alone.parent.mkdir()
    alone.write_bytes(PRECIOUS)
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", flag, alone, "--overwrite")
    assert "recording" not in err and "choose another" not in err, err    # on to the stream, not found


@pytest.mark.parametrize(("flag", "name"), [("--wav", "model.wav"), ("--json", "model.json")])
def test_decode_output_is_never_the_model(flag, name, tmp_path, capsys):
    model = tmp_path / name
    model.write_bytes(PRECIOUS)
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", flag, model, "--overwrite", model=model)
    assert_one_line_error(status, err, flag, "the input file itself")
    assert model.read_bytes() == PRECIOUS


def test_decode_refuses_a_record_folder_holding_a_recording_before_connecting(tmp_path, capsys):
    record = tmp_path / "rec"
    record.mkdir()
    (record / "decoded.wav").write_bytes(PRECIOUS)
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", "--record", record)
    assert_one_line_error(status, err, "already holds decoded.wav", "--record")
    assert (record / "decoded.wav").read_bytes() == PRECIOUS


def test_decode_refuses_a_record_folder_nothing_can_be_written_in_before_connecting(tmp_path, capsys):
    """/proc passes a permission check (as root every folder does): the recording failed only after the
    stream had connected. The model here does not exist, so a refusal after the check would name it."""
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", "--record", "/proc/eegmusic-recording")
    assert_one_line_error(status, err, "cannot create --record folder /proc/eegmusic-recording: /proc takes "
                                       "no new folder", "choose another --record folder")


@pytest.mark.parametrize("linked", [False, True], ids=["model", "link to the model"])
@pytest.mark.parametrize("name", ["config.json", "metrics.json"])
def test_decode_json_never_replaces_the_record_of_the_models_training_run(name, linked, tmp_path, capsys):
    """``--json runs/x/config.json --overwrite`` replaced the run's configuration with a decode summary (exit
    0), and the run could no longer be resumed; so did it, after that was refused, with ``--model`` a
    link to the run's model."""
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_bytes(PRECIOUS)
    model = run / "model.onnx"
    if linked:
        (tmp_path / "m.onnx").symlink_to(model)
        model = tmp_path / "m.onnx"
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", "--no-audio", "--json", run / name,
                             "--overwrite", model=model)
    assert_one_line_error(status, err, f"--json {run / name} is the {name} of the training run of --model "
                                       f"{model} (refused even with --overwrite)")
    assert (run / name).read_bytes() == PRECIOUS


def test_decode_wav_may_not_be_a_file_the_recording_writes(tmp_path, capsys):
    record = tmp_path / "rec"
    record.mkdir()
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", "--record", record,
                             "--wav", record / "decoded.wav")
    assert_one_line_error(status, err, "--wav", "--record")
    assert list(record.iterdir()) == []


def test_decode_record_help_says_an_existing_recording_is_refused(capsys):
    status, out, _ = run_cli(["decode", "--help"], capsys)
    text = " ".join(out.split())
    assert status == 0
    assert "already holds a recording is refused" in text and "created if missing" in text


# -- decode: options that would silently do something else --------------------------------------------

@pytest.mark.parametrize(("kind", "problem"), [
    ("missing", "does not exist"),
    ("file", "is a file of no dataset kind"),
    ("no stimuli", "has no stimuli/ folder"),
    ("songs without stimuli", "has no stimuli/ folder; put the songs' audio in stimuli/songNN.wav"),
    ("stimuli itself", "the stimuli folder itself"),
    ("empty stimuli", "holds no songNN.wav"),
])
def test_decode_refuses_a_bad_truth_before_connecting(kind, problem, dataset, tmp_path, capsys):
    truth = {"missing": tmp_path / "nope", "file": tmp_path / "notes.txt", "no stimuli": tmp_path / "plain",
             "stimuli itself": dataset / "stimuli", "empty stimuli": tmp_path / "bare",
             "songs without stimuli": tmp_path / "mats"}[kind]
    if kind == "file":
        truth.write_text("not a dataset")
    if kind == "no stimuli":
        truth.mkdir()
    if kind == "songs without stimuli":   # an NMED-T folder's recordings without stimuli/: a traceback
        truth.mkdir()
        (truth / "song21_Imputed.mat").write_bytes(b"")
    if kind == "empty stimuli":
        (truth / "stimuli").mkdir(parents=True)
        (truth / "stimuli" / "notes.txt").write_text("no song here")
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", "--truth", truth, "--no-audio")
    assert_one_line_error(status, err, "--truth", problem)


@pytest.mark.parametrize(("argv", "problem"), [
    (["--stream", ""], "must not be empty"),
    (["--type", ""], "must not be empty"),
    (["--type", "  "], "must not be empty"),
    (["--stream", "s", "--source-id", ""], "must not be empty"),
    (["--stream", " s"], "spaces at an end"),
])
def test_decode_refuses_an_empty_stream_name_type_or_id(argv, problem, tmp_path, capsys):
    """An empty query is no filter: ``--stream ""`` once decoded whatever EEG stream was there."""
    status, _, err = _decode(capsys, tmp_path, *argv, "--no-audio")
    assert_one_line_error(status, err, f"{argv[-2]} ", problem)


@pytest.mark.parametrize("listen", ["true", "both"])
def test_decode_listen_without_audio_is_refused(listen, dataset, tmp_path, capsys):
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", "--truth", dataset, "--no-audio",
                             "--listen", listen)
    assert_one_line_error(status, err, f"--listen {listen}", "--no-audio")


@pytest.mark.parametrize(("output", "flag"), [
    (("--no-audio",), "--no-audio"), (("--wav", "out.wav"), "--wav")])
def test_decode_device_latency_without_a_sound_device_is_refused(output, flag, tmp_path, capsys):
    """--device-latency was accepted and ignored with --no-audio or --wav (no device to size)."""
    argv = [tmp_path / a if a.endswith(".wav") else a for a in output]
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", *argv, "--device-latency", "low")
    assert_one_line_error(status, err, "--device-latency", flag, "drop one")
    assert not (tmp_path / "out.wav").exists()


def _model_with_metadata_of_no_utf8(tmp_path):
    """A test model with one byte of its metadata set to 0xff (as a fuzzing helper did)."""
    from tests.decoder.onnx_models import make_model

    model = make_model(tmp_path / "m.onnx")
    data = bytearray(model.read_bytes())
    at = data.index(b'"format_version"') + len(b'"format_version"')
    data[at] = 0xFF
    model.write_bytes(bytes(data))
    return model


def test_a_model_whose_metadata_is_no_utf8_is_one_line(tmp_path, capsys):
    """A damaged byte in the metadata was a UnicodeDecodeError traceback from onnxruntime's binding in
    decode and evaluate."""
    model = _model_with_metadata_of_no_utf8(tmp_path)
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", model=model)
    assert_one_line_error(status, err, f"model file {model} holds metadata that is not UTF-8 text, so it is "
                                       "damaged; export it again with eegmusic train")


def test_init_of_a_model_whose_metadata_is_no_utf8_says_it_is_damaged(tmp_path):
    """``train --init`` of such a model said "no eegmusic metadata": protobuf hands back such a string as
    bytes, which the JSON reader refused, so the damaged metadata read as absent."""
    from eegmusic.offline_training.finetune import load_pretrained
    from eegmusic.stream.errors import ModelError

    model = _model_with_metadata_of_no_utf8(tmp_path)
    damaged = r"--init .* holds metadata that is not UTF-8 text, so it is damaged"
    with pytest.raises(ModelError, match=damaged):
        load_pretrained(model)


@pytest.mark.parametrize("rate", [1, 0x7FFFFFFF])
def test_audio_whose_header_gives_no_usable_rate_is_one_line(rate, tmp_path, capsys):
    """A WAV header damaged to say 1 Hz (or 2**31 - 1) had the resampler ask for 36 GiB (320 GiB): a
    MemoryError traceback from vocode and evaluate, and from train advice to lower --batch-size. info
    read only the header and said "problems: none"."""
    from eegmusic.stream.stimulus import sample_problem

    source = _wav(tmp_path / "song.wav", seconds=1.0)
    data = bytearray(source.read_bytes())
    data[24:28] = rate.to_bytes(4, "little")   # the fmt chunk's sample rate
    source.write_bytes(bytes(data))
    words = f"song.wav: audio at {rate} Hz, which no recording uses (eegmusic reads 1000-768000 Hz)"
    status, _, err = run_cli(["vocode", str(source), "--out", str(tmp_path / "out.wav")], capsys)
    assert_one_line_error(status, err, words, "replace the file or convert it")
    assert words in sample_problem(source)


def test_a_model_whose_path_is_not_utf8_is_named_for_that(tmp_path, capsys):
    """onnxruntime takes paths as UTF-8: a valid model in a folder named in another encoding was "not a
    readable ONNX model ... export it again", a fix that cannot help (a helper's option fuzz)."""
    from tests.decoder.onnx_models import make_model

    folder = tmp_path / "runs\udcff"                      # the byte 0xff, as Python holds it
    folder.mkdir()
    model = make_model(folder / "m.onnx")
    status, _, err = _decode(capsys, tmp_path, "--stream", "s", model=model)
    # stderr writes the byte as '?'
    assert_one_line_error(status, err, "runs?/m.onnx: its name holds bytes that are not UTF-8",
                          "rename the file or its folder")
    assert "export it again" not in err
