"""Hostile and broken recording sidecars (``<stem>.eegmusic.json``): one checked layer, one line, exit 2.

Each case writes a small real FIF recording (MNE) with a sidecar beside it and runs ``eegmusic info``
on it in-process: a bad sidecar ends in exit 2 with one line naming the key, the value found and the
fix, and no file is touched.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile

from tests.faults.conftest import assert_one_line_error

LABELS = ["Fz", "Cz", "Pz", "Oz"]
SFREQ = 125.0


@pytest.fixture(scope="module")
def fif_bytes(tmp_path_factory) -> bytes:
    """A 6-s, 4-channel FIF recording with two ``song1`` annotations (built once per module)."""
    mne = pytest.importorskip("mne")
    info = mne.create_info(LABELS, SFREQ, "eeg")
    data = np.random.default_rng(3).standard_normal((4, int(6 * SFREQ))) * 1e-5
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations([1.0, 3.0], [0.0, 0.0], ["song1", "song1"]))
    path = tmp_path_factory.mktemp("fif") / "rec_raw.fif"
    raw.save(path, verbose="error")
    return path.read_bytes()


@pytest.fixture
def recording(tmp_path, fif_bytes):
    """``(folder/rec_raw.fif, write_sidecar)``: the recording, audio in ``audio/``, a sibling outside."""
    folder = tmp_path / "session"
    (folder / "audio").mkdir(parents=True)
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(11025) / 22050).astype("f4")
    soundfile.write(folder / "audio" / "song1.wav", tone, 22050)
    soundfile.write(tmp_path / "outside.wav", tone, 22050)
    path = folder / "rec_raw.fif"
    path.write_bytes(fif_bytes)

    def write_sidecar(content) -> bytes:
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / "rec_raw.eegmusic.json").write_text(text)
        return text.encode()

    return path, write_sidecar


GOOD = {"stimuli": {"song1": "audio/song1.wav"}}

# (case id, sidecar content, text the one line must hold: the key, the value, the fix)
BAD = [
    ("not json", "{\"stimuli\": ", ("not readable JSON", "fix the sidecar")),
    ("a list", [GOOD], ("is a list", "expected an object", '{"stimuli"')),
    ("a string", "\"song1.wav\"", ("is text", "expected an object")),
    ("no stimuli", {"subject": "P1"}, ('no "stimuli" mapping', "add")),
    ("stimuli a list", {"stimuli": ["audio/song1.wav"]},
     ('"stimuli" is ["audio/song1.wav"] (a list)', "write")),
    ("stimuli empty", {"stimuli": {}}, ('"stimuli" is {}', "non-empty object")),
    ("stimuli text", {"stimuli": "audio/song1.wav"}, ('"stimuli" is "audio/song1.wav" (text)',)),
    ("audio a number", {"stimuli": {"song1": 5}},
     ('stimuli["song1"] is 5 (a number)', "relative to the sidecar")),
    ("audio null", {"stimuli": {"song1": None}}, ('stimuli["song1"] is null', '"song1": "audio/song1.wav"')),
    ("audio empty", {"stimuli": {"song1": ""}}, ('stimuli["song1"] is ""',)),
    ("audio a list", {"stimuli": {"song1": ["a.wav"]}}, ('stimuli["song1"] is ["a.wav"] (a list)',)),
    ("audio .. out", {"stimuli": {"song1": "../outside.wav"}},
     ('stimuli["song1"] = "../outside.wav" points outside', "no ..")),
    ("audio deep ..", {"stimuli": {"song1": "audio/../../outside.wav"}}, ("points outside",)),
    ("audio absolute", {"stimuli": {"song1": "/etc/hostname"}}, ('"/etc/hostname" points outside',)),
    ("audio missing", {"stimuli": {"song1": "audio/gone.wav"}},
     ("gone.wav, which does not exist", "put the file")),
    ("audio a folder", {"stimuli": {"song1": "audio"}}, ("which is a folder",)),
    ("audio newline", {"stimuli": {"song1": "audio/a\nb.wav"}}, ('"audio/a\\nb.wav" in', "does not exist")),
    ("empty key", {"stimuli": {"": "audio/song1.wav"}}, ('stimuli key ""', "annotation")),
    ("subject a number", {**GOOD, "subject": 7}, ('"subject" is 7 (a number)', '"subject": "P01"')),
    ("subject newline", {**GOOD, "subject": "P\n1"}, ('"subject" is "P\\n1"',)),
    ("subject too long", {**GOOD, "subject": "P" * 200}, ('"subject" is "PPP', "at most 64")),
    ("subject an object", {**GOOD, "subject": {"id": 1}}, ("(an object)",)),
    ("delay text", {**GOOD, "audio_delay_s": "0.1"}, ('"audio_delay_s" is "0.1" (text)', "from -10 to 10")),
    ("delay bool", {**GOOD, "audio_delay_s": True}, ('"audio_delay_s" is true (true/false)',)),
    ("delay huge", {**GOOD, "audio_delay_s": 1e9}, ('"audio_delay_s" is 1000000000.0',)),
    ("delay nan", '{"stimuli": {"song1": "audio/song1.wav"}, "audio_delay_s": NaN}',
     ('"audio_delay_s" is NaN',)),
    ("delay inf", '{"stimuli": {"song1": "audio/song1.wav"}, "audio_delay_s": -Infinity}',
     ('"audio_delay_s" is -Infinity',)),
    ("too big", json.dumps({**GOOD, "pad": "x" * 1_100_000}), ("more than a sidecar's", "should only map")),
]


@pytest.mark.parametrize(("content", "needles"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_sidecar_is_one_line_naming_key_value_and_fix(recording, cli, content, needles):
    path, write_sidecar = recording
    written = write_sidecar(content)
    before = path.read_bytes()
    status, _, err = cli("info", path)
    assert_one_line_error(status, err, *needles)
    assert path.read_bytes() == before and (path.parent / "rec_raw.eegmusic.json").read_bytes() == written


def test_a_link_out_of_the_folder_is_refused(recording, cli):
    path, write_sidecar = recording
    os.symlink(path.parent.parent / "outside.wav", path.parent / "audio" / "link.wav")
    write_sidecar({"stimuli": {"song1": "audio/link.wav"}})
    status, _, err = cli("info", path)
    assert_one_line_error(status, err, '"audio/link.wav" points outside')


def test_missing_sidecar_names_the_file_to_write(recording, cli):
    path, _ = recording
    status, _, err = cli("info", path)
    assert_one_line_error(status, err, "no sidecar rec_raw.eegmusic.json", '{"stimuli"')


def test_an_empty_recording_is_named_before_its_sidecar(recording, cli):
    """An empty .fif first asked for a sidecar, and only with one written said MNE cannot read it."""
    path, _ = recording
    path.write_bytes(b"")
    status, _, err = cli("info", path)
    line = assert_one_line_error(status, err, str(path), "is empty (0 bytes)")
    assert "sidecar" not in line and "eegmusic.json" not in line


def test_a_good_sidecar_passes_and_unknown_keys_are_only_warned(recording, cli, caplog):
    path, write_sidecar = recording
    write_sidecar({**GOOD, "subject": "P7", "audio_delay_s": 0.05, "written_by": "hand"})
    status, out, err = cli("info", path)
    assert status in (0, 1), err                    # 1: the dataset has problems of its own, listed
    assert "P7" in out and "Traceback" not in err
    assert any("unknown keys" in record.getMessage() and "written_by" in record.getMessage()
               for record in caplog.records)


def test_bids_root_sidecar_is_checked_by_the_same_layer(tmp_path, cli):
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    (root / "eegmusic.json").write_text(json.dumps({"stimuli": {"song1": "../../secret.wav"}}))
    status, _, err = cli("info", root)
    assert_one_line_error(status, err, 'stimuli["song1"] = "../../secret.wav" points outside')
