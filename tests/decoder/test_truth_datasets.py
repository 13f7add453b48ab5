"""``decode --truth`` on a replay of a dataset that is no NMED-T folder: an XDF session of another cap.

The replay names, in its stream description, the dataset, the song's audio file and the audio second
heard at the song's first EEG sample; the decoder reads that audio only inside the dataset the user
named. Real pylsl outlets and inlets on loopback; the model is a tiny linear ONNX graph on the cap's
channels.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from eegmusic.decoder.pipeline import LivePipeline, PipelineConfig
from eegmusic.decoder.truth import ReplayStimulus, check_truth_dir, truth_kind, truth_stimuli
from eegmusic.replay.dataset import open_dataset
from eegmusic.replay.song_player import Player
from eegmusic.stream.errors import ConfigError, DataFormatError
from eegmusic.stream.inlet import StreamMeta
from eegmusic.stream.stimulus import read_audio
from eegmusic.stream.untrusted import ReplayedStimulus, description_stimulus

from tests.decoder.onnx_models import make_model

SFREQ = 22050


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    """One simulated calibration session of an 8-electrode 10-20 cap at 125 Hz: two 12-s songs."""
    from eegmusic.replay.virtual_cap import simulate_sessions

    folder = tmp_path_factory.mktemp("cap") / "cap8"
    first, = simulate_sessions(folder, montage="standard_1020", n_channels=8, sfreq=125.0, n_songs=2,
                               n_subjects=1, seconds=12.0, progress=False)
    return first


def _meta(song, stimulus, name="s"):
    return StreamMeta(name, "EEG", f"{name}-sid", 8, 125.0, "float32", None, song, None, stimulus)


def test_a_replayed_session_is_scored_against_its_own_song(session, stream_name, tmp_path):
    """The truth is the audio the replayed play heard, from the second it heard first; and the summary
    scores the decoder on it (it said: --truth has no stimuli/ folder, pass the folder the replay plays,
    which was the folder the replay played)."""
    dataset = open_dataset(session)
    labels = list(dataset.load_song(2).channels)
    model = make_model(tmp_path / "model.onnx", n_chans=len(labels), channels=labels)
    config = PipelineConfig(stream_name=stream_name, model_path=model, device="cpu", truth_dir=session,
                            no_audio=True, resolve_timeout_s=10)
    with Player(dataset, 2, 1, name=stream_name, source_id=f"{stream_name}-src", loop=True, chunk_ms=20), \
            LivePipeline(config) as pipeline:
        stimuli = pipeline._stimuli
        deadline = time.monotonic() + 20.0
        while pipeline.summary()["truth"]["scored_frames"] < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        summary = pipeline.summary()
    assert isinstance(stimuli, ReplayStimulus) and stimuli.song == 2
    assert stimuli.stimulus_path(2) == dataset.stimulus_path(2).resolve()
    np.testing.assert_array_equal(stimuli.load_stimulus(2), dataset.load_stimulus(2))
    assert summary["truth"]["song"] == 2 and summary["truth"]["scored_frames"] >= 100, summary["truth"]
    assert np.isfinite(summary["dynamic_r_total"]), summary


def test_a_replay_of_another_dataset_path_is_refused_with_the_path_it_plays(session, stream_name, tmp_path):
    """A folder of sessions numbers its songs across the sessions, a session file its own: scoring a
    replay of the file against the folder would compare other songs' music."""
    dataset = open_dataset(session)
    labels = list(dataset.load_song(1).channels)
    model = make_model(tmp_path / "model.onnx", n_chans=len(labels), channels=labels)
    config = PipelineConfig(stream_name=stream_name, model_path=model, device="cpu",
                            truth_dir=session.parent, no_audio=True, resolve_timeout_s=10)
    with Player(dataset, 1, 1, name=stream_name, source_id=f"{stream_name}-src", loop=True, chunk_ms=20), \
            pytest.raises(ConfigError, match=f"replays {session.resolve()}, whose song numbers are its own; "
                          f"pass --truth {session.resolve()}"), LivePipeline(config):
        pass


def test_the_stimulus_a_stream_names_is_read_only_inside_the_named_dataset(session, tmp_path):
    dataset = open_dataset(session)
    audio = dataset.stimulus_path(1).resolve()
    inside = ReplayStimulus(session, _meta(1, ReplayedStimulus(str(session.resolve()), str(audio), 0.0)))
    assert inside.stimulus_path(1) == audio and inside.stimulus_path(2) is None
    with pytest.raises(DataFormatError, match="began replaying song 1 of .* decode each song's replay"):
        inside.load_stimulus(2)
    elsewhere = tmp_path / "secret.wav"
    elsewhere.write_bytes(audio.read_bytes())
    link = session.parent / "link.wav"              # inside by its name, outside where it leads
    link.symlink_to(elsewhere)
    climb = session.parent / os.path.relpath(elsewhere, session.parent)   # cap8/../../…/secret.wav
    assert ".." in climb.parts and climb.is_file()
    notes = session.parent / "notes.txt"            # inside, and no audio
    notes.write_text("private")
    for named in (elsewhere, link, climb, notes, session.parent / "gone.wav"):
        with pytest.raises(ConfigError, match="which is no audio file inside .* \\(links followed\\)"):
            ReplayStimulus(session, _meta(1, ReplayedStimulus(str(session.resolve()), str(named), 0.0)))
    link.unlink()
    notes.unlink()
    with pytest.raises(ConfigError, match="does not say which of its songs it plays; replay it with"):
        ReplayStimulus(session, _meta(None, None))
    # an NMED-T folder is still read from its stimuli/, whatever the stream says
    nmedt = tmp_path / "nmedt"
    (nmedt / "stimuli").mkdir(parents=True)
    assert type(truth_stimuli(nmedt, _meta(1, None))).__name__ == "StimulusFolder"


def test_an_nmedt_folder_of_other_music_than_the_one_replayed_here_is_refused(tmp_path):
    """Two NMED-T folders number different music alike (simulated songs, ``simulate --music``): ``--truth``
    naming another folder than the replay's scored the run against other music, with only a warning of
    its baselines (a helper's option fuzz). A copy of the folder is scored, as is a replay from another
    machine (a folder this one lacks) or a song the named folder lacks."""
    import shutil

    played, other = tmp_path / "sim_a", tmp_path / "sim_b"
    for folder, tone in ((played, 440.0), (other, 660.0)):
        (folder / "stimuli").mkdir(parents=True)
        wave = np.sin(2 * np.pi * tone * np.arange(SFREQ) / SFREQ).astype(np.float32)
        soundfile.write(folder / "stimuli" / "song21.wav", wave, SFREQ)
    copy = shutil.copytree(played, tmp_path / "copy")

    def meta(dataset, song=21):
        return _meta(song, ReplayedStimulus(str(dataset), str(dataset / "stimuli" / f"song{song}.wav"), 0.0))

    with pytest.raises(ConfigError, match=f"--truth {other}: stream 's' replays {played}, whose song 21 is "
                       f"other music \\(its audio file differs from {other / 'stimuli' / 'song21.wav'}\\); "
                       f"pass --truth {played}"):
        truth_stimuli(other, meta(played))
    for truth, stream in ((copy, meta(played)), (tmp_path / "." / "sim_a", meta(played)),
                          (other, meta(tmp_path / "elsewhere")), (other, meta(played, song=22))):
        assert type(truth_stimuli(truth, stream)).__name__ == "StimulusFolder"


@pytest.mark.parametrize("start_s", [2.0, -0.5])
def test_the_audio_starts_at_the_second_heard_at_the_first_eeg_sample(session, start_s):
    dataset = open_dataset(session)
    audio_path = dataset.stimulus_path(1).resolve()
    stimuli = ReplayStimulus(session, _meta(1, ReplayedStimulus(str(session.resolve()), str(audio_path),
                                                                start_s)))
    whole = read_audio(audio_path, sfreq=SFREQ)
    got = stimuli.load_stimulus(1)
    if start_s >= 0:
        np.testing.assert_array_equal(got, whole[int(start_s * SFREQ):])
    else:
        np.testing.assert_array_equal(got[:int(-start_s * SFREQ)], 0.0)
        np.testing.assert_array_equal(got[int(-start_s * SFREQ):], whole)


class _Element:
    def __init__(self, **values):
        self.values = values

    def child_value(self, key):
        return self.values.get(key, "")


@pytest.mark.parametrize(("fields", "warned"), [
    ({"path": "/d", "stimulus": "/d/a.wav", "stimulus_start_s": "1.5"}, None),
    ({"path": "/d"}, None),                                         # no stimulus named: nothing to say
    ({"path": "/d", "stimulus": "/d/a\x1b[2J.wav"}, "stimulus"),
    ({"path": "", "stimulus": "/d/a.wav"}, "path"),
    ({"path": "/d", "stimulus": "/d/" + "a" * 5000}, "stimulus"),
    ({"path": "/d", "stimulus": "/d/a.wav", "stimulus_start_s": "nan"}, "stimulus_start_s"),
    ({"path": "/d", "stimulus": "/d/a.wav", "stimulus_start_s": "soon"}, "stimulus_start_s"),
])
def test_a_stream_descriptions_stimulus_fields_are_checked(fields, warned, caplog):
    """The fields come from the network: a path with control characters, an absurd length or a start
    that is no number is ignored with a warning, as other bad description fields are."""
    found = description_stimulus(_Element(**fields), stream="s")
    if warned is None:
        assert caplog.text == ""
        assert (found is None) == ("stimulus" not in fields)
        if found is not None:
            assert found == ReplayedStimulus("/d", "/d/a.wav", 1.5)
    else:
        assert found is None and f"dataset/{warned}" in caplog.text


def test_truth_takes_every_dataset_a_replay_plays(session, tmp_path):
    assert check_truth_dir(session) == session                       # a session file
    assert check_truth_dir(session.parent) == session.parent         # a folder of sessions
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text("{}")
    (bids / "stimuli").mkdir()                                        # where BIDS keeps its stimuli
    (bids / "stimuli" / "song1.wav").write_bytes(b"0")
    assert check_truth_dir(bids) == bids and truth_kind(bids) == "bids"   # not an NMED-T folder
    edf = tmp_path / "rec.edf"
    edf.write_bytes(b"0")
    assert check_truth_dir(edf) == edf
    music = tmp_path / "music" / "album"
    music.mkdir(parents=True)
    (music / "a.ogg").write_bytes(b"0")
    assert check_truth_dir(music.parent) == music.parent              # what a virtual listener hears
    fifo = tmp_path / "pipe.xdf"      # named like a session, no file to replay
    os.mkfifo(fifo)
    assert truth_kind(fifo) is None
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(ConfigError, match="is a file of no dataset kind; pass the dataset the replay plays"):
        check_truth_dir(notes)


def _wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_decode_joining_mid_track_scores_it_once_the_file_is_named(session, tmp_path, caplog):
    """The song's number comes before the marker naming its file: the load waits for the name instead of
    failing for good ("no stimulus"), and a file named outside the folder is refused with a warning."""
    from eegmusic.decoder.truth import LiveTruth, NamedStimuli

    music = session.parent
    audio = open_dataset(session).stimulus_path(1).resolve()
    truth = LiveTruth(NamedStimuli(music))
    truth.marker("song=1;t=4.000", 100.0)
    time.sleep(0.2)
    assert truth.error is None and not truth.has_stimulus(1)
    truth.marker(f"song_audio=1;path={audio}", 100.5)
    assert _wait_for(lambda: 1 in truth._mels) and truth.error is None
    np.testing.assert_array_equal(truth._mels[1].shape[0], 128)
    assert truth.markers.counters() == {"markers": 1, "marker_events": 1, "bad_markers": 0}
    elsewhere = tmp_path / "b.wav"
    elsewhere.write_bytes(audio.read_bytes())
    truth.marker(f"song_audio=2;path={elsewhere}", 101.0)
    truth.marker("song=2;t=0.000", 101.0)
    assert not truth.has_stimulus(2) and f"which is no audio file inside --truth {music}" in caplog.text


def test_a_song_number_named_again_for_another_file_is_scored_against_the_new_one(session):
    """calibrate numbers each session's tracks from 1: a decode running across two sessions scored the
    second session's song 1 against the first one's audio."""
    from eegmusic.decoder.truth import LiveTruth, NamedStimuli

    dataset = open_dataset(session)
    first, second = (dataset.stimulus_path(k).resolve() for k in (1, 2))
    truth = LiveTruth(NamedStimuli(session.parent))
    truth.marker(f"song_audio=1;path={first}", 10.0)
    truth.marker("song=1;t=0.000", 10.0)
    assert _wait_for(lambda: 1 in truth._mels)
    mel_first = truth._mels[1]
    truth.marker(f"song_audio=1;path={second}", 50.0)       # the next session's first track
    truth.marker("song=1;t=0.000", 50.0)
    assert _wait_for(lambda: 1 in truth._mels) and truth._stimuli.stimulus_path(1) == second
    assert not np.array_equal(truth._mels[1], mel_first)
    truth.marker(f"song_audio=1;path={second}", 55.0)       # named again, the same file: kept
    assert 1 in truth._mels


def test_a_song_whose_file_is_never_named_is_said_unscored(session, monkeypatch, caplog):
    """A folder of music given to --truth for a stream whose markers name no file waited for good, and
    silently."""
    from eegmusic.decoder import truth as truth_module

    monkeypatch.setattr(truth_module, "NAME_WAIT_S", 0.05)
    truth = truth_module.LiveTruth(truth_module.NamedStimuli(session.parent))
    truth.marker("song=3;t=0.000", 1.0)
    time.sleep(0.1)
    truth.marker("song=3;t=1.000", 2.0)
    truth.marker("song=3;t=2.000", 3.0)
    assert caplog.text.count(f"no audio named for song 3 inside {session.parent}") == 1
    assert "no score for song 3 yet" in caplog.text


def test_a_file_named_anew_during_a_load_is_not_waited_for_and_only_it_is_kept(session):
    """The markers are taken on the output thread: naming a song anew waited there for a load in progress
    (a long track's mel takes a second, the sound underruns). It returns at once now, and the stale load
    keeps nothing when it ends."""
    import threading

    from eegmusic.decoder.truth import LiveTruth, NamedStimuli

    dataset = open_dataset(session)
    first, second = (dataset.stimulus_path(k).resolve() for k in (1, 2))
    gate, loading = threading.Event(), threading.Event()

    class HeldFirstLoad(NamedStimuli):   # the real lookup; the first file's load is held until released
        def load_stimulus(self, song_id):
            audio = super().load_stimulus(song_id)
            if self.stimulus_path(song_id) == first:
                loading.set()
                gate.wait(10)
            return audio

    truth = LiveTruth(HeldFirstLoad(session.parent))
    truth.marker(f"song_audio=1;path={first}", 10.0)
    truth.marker("song=1;t=0.000", 10.0)
    assert loading.wait(10)
    started = time.monotonic()
    truth.marker(f"song_audio=1;path={second}", 11.0)
    truth.marker("song=1;t=1.000", 11.0)
    assert time.monotonic() - started < 0.5
    gate.set()
    assert _wait_for(lambda: 1 in truth._mels)
    expected = LiveTruth(NamedStimuli(session.parent))
    expected.marker(f"song_audio=1;path={second}", 0.0)
    np.testing.assert_array_equal(truth._mels[1], expected.load(1))
