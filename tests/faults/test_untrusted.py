"""Hostile markers, stream descriptions and channel labels: counted, skipped or ignored, never raised.

The parsers of :mod:`eegmusic.stream.untrusted` first, case by case; then the same strings through
real LSL outlets into :class:`~eegmusic.stream.inlet.Inlet`, :class:`~eegmusic.stream.markers.MarkerInlet`
and :class:`~eegmusic.decoder.truth.LiveTruth`.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pylsl
import pytest
from eegmusic.stream.errors import StreamError
from eegmusic.stream.untrusted import MarkerParser, channel_labels, description_int

GOOD_MARKERS = [
    ("song=21;t=12.000", (21, 12.0)),
    ("song=21;t=0", (21, 0.0)),
    ("song=30;t=297.5", (30, 297.5)),
    (" song=22;t=1.000 ", (22, 1.0)),
    ("song=21;t=-0.500", (21, -0.5)),
    ("song=21;t=1\n", (21, 1.0)),
]

BAD_MARKERS = [
    "song=21;t=1.2.3", "song=21;t=", "song=;t=1", "song=21", "t=1.0", "song=21;t=nan", "song=21;t=inf",
    "song=21;t=1e400", "song=²;t=1", "song=21;t=١٢", "song=-1;t=1", "song=21;t=1;extra",
    "song=21 ;t=1", "SONG=21;t=1", "song=21;t=" + "9" * 40, "song=9999999999;t=1", "x" * 10_000,
    "", "\x00", "song=21\x00;t=1", "<xml/>", "💥", "song=21;t=0x10", "song=21;t=1_000",
    "song=21;t=99999999999", None, 21, 1.5, b"song=21;t=1",
]


@pytest.mark.parametrize(("text", "expected"), GOOD_MARKERS)
def test_good_marker_parses(text, expected):
    parser = MarkerParser()
    assert parser.parse(text) == expected
    assert (parser.good, parser.bad) == (1, 0)


@pytest.mark.parametrize("text", BAD_MARKERS, ids=[ascii(t)[:30] for t in BAD_MARKERS])
def test_bad_marker_is_counted_and_skipped(text, caplog):
    parser = MarkerParser()
    with caplog.at_level(logging.WARNING, logger="eegmusic.stream.untrusted"):
        assert parser.parse(text) is None
    assert parser.bad == 1 and parser.good == 0
    assert parser.parse("song=21;t=1.000") == (21, 1.0)  # and the next good one still counts
    assert "skipped malformed marker" in caplog.text
    assert len(parser.last_bad) <= 60 and parser.last_bad.isascii()


@pytest.mark.parametrize("text", ["song_start=21", "song_end=30", "replay_end"])
def test_known_events_are_not_bad(text):
    parser = MarkerParser()
    assert parser.parse(text) is None
    assert (parser.events, parser.bad) == (1, 0)


def test_a_flood_of_bad_markers_logs_little(caplog):
    parser = MarkerParser()
    with caplog.at_level(logging.WARNING, logger="eegmusic.stream.untrusted"):
        for _ in range(1000):
            parser.parse("song=21;t=1.2.3")
    assert parser.bad == 1000 and len(caplog.records) <= 15


DESCRIPTION_VALUES = [
    ("21", 21), (" 22 ", 22), ("", None), (None, None),
    ("²", None), ("٢١", None), ("21.0", None), ("1e3", None), ("-5", None), ("0", None), ("abc", None),
    ("99999999999999999999", None), ("21; rm -rf /", None), ("0x15", None), ("+21", 21),
]


@pytest.mark.parametrize(("value", "expected"), DESCRIPTION_VALUES,
                         ids=[ascii(v) for v, _ in DESCRIPTION_VALUES])
def test_description_song_field(value, expected, caplog):
    with caplog.at_level(logging.WARNING, logger="eegmusic.stream.untrusted"):
        assert description_int(value, field="dataset/song", stream="s", low=1, high=999) == expected
    warned = "ignored" in caplog.text
    assert warned == (expected is None and value is not None and str(value).strip() != "")


@pytest.mark.parametrize(("labels", "n_chans", "expected"), [
    (["E1", "E2", "E3"], 3, ("E1", "E2", "E3")),
    ([" Cz ", "Pz"], 2, ("Cz", "Pz")),
    (None, 3, None),
    ([], 3, None),
])
def test_usable_or_absent_channel_labels(labels, n_chans, expected):
    assert channel_labels(labels, n_chans, stream="s") == expected


@pytest.mark.parametrize(("labels", "problem"), [
    (["E1", "E2"], "2 labels for 3 channels"),                 # fewer labels than channels
    (["E1", None, "E3"], "1 of 3 channels have no label"),
    (["E1", "", "E3"], "1 of 3 channels have no label"),
    (["E1", "e1", "E3"], "labels repeat"),                     # duplicates (case-insensitive)
    (["E1", "x" * 65, "E3"], "longer than 64"),
    (["E1", "E\n2", "E3"], "not printable"),
    (["E1", "E2", "E3", "E4"], "4 labels for 3 channels"),
])
def test_unusable_channel_labels_name_the_real_count(labels, problem):
    with pytest.raises(StreamError) as caught:
        channel_labels(labels, 3, stream="cap")
    message = str(caught.value)
    assert "'cap' has 3 channels" in message and problem in message and "\n" not in message


@pytest.mark.parametrize(("text", "named"), [
    ("song_audio=3;path=/music/A New Journey.ogg", (3, "/music/A New Journey.ogg")),
    ("song_audio=3;path=/music/a;b=c.ogg", (3, "/music/a;b=c.ogg")),      # the path runs to the end
    ("song_audio=3;path=/" + "a" * 300 + ".ogg", (3, "/" + "a" * 300 + ".ogg")),   # longer than a marker
    ("song_audio=3;path=music/a.ogg", None),                             # not absolute
    ("song_audio=3;path=/music/a\n.ogg", None),                          # not printable
    ("song_audio=x;path=/a.ogg", None),
    ("song_audio=3;path=/" + "a" * 5000, None),                          # past PATH_MAX
])
def test_a_song_audio_marker_names_a_file_or_is_counted_bad(text, named):
    parser = MarkerParser()
    assert parser.parse(text) is None
    assert parser.named == named
    assert (parser.events, parser.bad) == ((1, 0) if named else (0, 1))


@pytest.mark.parametrize(("n_chans", "send_none"), [(3, False), (32, False), (125, True), (129, True)])
def test_send_none_is_advised_only_where_a_stream_without_labels_is_read(n_chans, send_none):
    """A 32-channel stream told to "send none" was then refused for having no labels: only a GSN net's
    counts are read without them (their labels assumed in order)."""
    labels = ["Cz"] * n_chans
    with pytest.raises(StreamError) as caught:
        channel_labels(labels, n_chans, stream="cap")
    assert str(caught.value).endswith(", or send none") == send_none, str(caught.value)
    assert "label every channel once" in str(caught.value)


# ---- through real LSL -------------------------------------------------------------------------------------
pytestmark_lsl = pytest.mark.lsl


def _eeg_outlet(name, *, n_chans=4, labels=None, song=None):
    from eegmusic.stream.outlet import regular_stream_info

    labels = labels if labels is not None else [f"E{i}" for i in range(1, n_chans + 1)]
    extra = {"dataset": {"name": "x", "song": song}} if song is not None else None
    info = regular_stream_info(name, "EEG", labels, 125.0, f"{name}-sid", unit="microvolts", extra_desc=extra)
    return pylsl.StreamOutlet(info)


@pytest.mark.lsl
@pytest.mark.parametrize(("song", "expected"), [("21", 21), ("²", None), ("1.2.3", None), ("-1", None),
                                                ("<script>", None)])
def test_stream_description_song_is_ignored_with_a_warning(song, expected, stream_name, caplog):
    from eegmusic.stream.inlet import Inlet

    outlet = _eeg_outlet(stream_name, song=song)
    inlet = Inlet(stream_name, resolve_timeout=5.0)
    with caplog.at_level(logging.WARNING):
        meta = inlet.connect()
    inlet.stop()
    del outlet
    assert meta.song == expected
    assert ("dataset/song" in caplog.text) == (expected is None)


@pytest.mark.lsl
def test_half_the_labels_missing_names_the_real_channel_count(stream_name):
    """A 125-channel stream with 62 labels is read as unlabelled: the error says 125, not 62."""
    from eegmusic.stream.source import EEGSource

    info = pylsl.StreamInfo(stream_name, "EEG", 125, 125.0, pylsl.cf_float32, f"{stream_name}-sid")
    channels = info.desc().append_child("channels")
    for i in range(62):
        channels.append_child("channel").append_child_value("label", f"E{i + 1}")
    outlet = pylsl.StreamOutlet(info)
    source = EEGSource(stream_name, resolve_timeout=5.0)
    with pytest.raises(StreamError) as caught:
        source.start()
    del outlet
    message = str(caught.value)
    assert "has 125 channels" in message and "62 labels for 125 channels" in message and "\n" not in message


@pytest.mark.lsl
def test_hostile_markers_on_a_live_marker_stream_are_counted_and_skipped(stream_name, sim_dir):
    """A marker stream any host may publish: bad markers counted, good ones still align the truth."""
    from eegmusic.decoder.truth import LiveTruth
    from eegmusic.stream.markers import MarkerInlet
    from eegmusic.stream.outlet import marker_stream_info

    outlet = pylsl.StreamOutlet(marker_stream_info(f"{stream_name}-markers", f"{stream_name}-m"))
    markers = MarkerInlet.open(f"{stream_name}-markers", timeout=5.0)
    assert markers is not None
    from eegmusic.stream.stimulus import StimulusFolder

    truth = LiveTruth(StimulusFolder(sim_dir, sfreq=22050))
    texts = ["song=21;t=1.000", "song=21;t=1.2.3", "²", "song=21;t=nan", "x" * 5000, "song=21;t=2.000"]
    stamp = pylsl.local_clock()
    for i, text in enumerate(texts):
        outlet.push_sample([text], stamp + i)
    received = []
    deadline = time.monotonic() + 5.0
    while len(received) < len(texts) and time.monotonic() < deadline:
        received += markers.pull()
        time.sleep(0.02)
    for text, timestamp in received:
        truth.marker(text, timestamp)
    del markers, outlet
    assert len(received) == len(texts)
    assert truth.markers.counters() == {"markers": 2, "marker_events": 0, "bad_markers": 4}
    assert truth.song == 21
    assert truth.stimulus_time(received[-1][1] + 0.5) == pytest.approx(2.5, abs=1e-3)
    assert np.isfinite(truth.stimulus_time(received[-1][1]))
