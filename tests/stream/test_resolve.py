"""Resolving streams and the ``eegmusic streams`` command."""

from __future__ import annotations

import threading

import pylsl
import pytest
from eegmusic.stream import resolve
from eegmusic.stream.cli import main
from eegmusic.stream.errors import StreamError
from eegmusic.stream.inlet import Inlet
from eegmusic.stream.outlet import marker_stream_info
from eegmusic.stream.resolve import (
    excluding,
    list_streams,
    predicate,
    resolve_and_open,
    resolve_matching,
    resolve_stream,
)

pytestmark = pytest.mark.lsl


def _outlet(name, n_chans=3, rate=250.0):
    info = pylsl.StreamInfo(name, "EEG", n_chans, rate, pylsl.cf_float32, f"{name}-sid")
    return pylsl.StreamOutlet(info)


def test_resolve_by_name_type_and_source_id(stream_name):
    outlet = _outlet(stream_name)
    for query in ({"name": stream_name}, {"source_id": f"{stream_name}-sid"},
                  {"name": stream_name, "stype": "EEG", "source_id": f"{stream_name}-sid"}):
        info = resolve_stream(**query, timeout=5.0)
        assert info.name() == stream_name and info.channel_count() == 3
    assert any(s.name == stream_name and s.sfreq == 250 for s in list_streams(timeout=1.5))
    with pytest.raises(StreamError, match=rf"type='Markers'.*visible:.*'{stream_name}' \(EEG, 3 ch @ 250 Hz"):
        resolve_stream(name=stream_name, stype="Markers", timeout=0.2)
    del outlet


def test_predicate_quotes():
    assert predicate(name="a'b") == "name=\"a'b\""
    assert predicate() == "type='EEG'"
    with pytest.raises(StreamError, match="both quote characters"):
        predicate(name="a'\"b")


def test_streams_command_lists_the_stream(stream_name, capsys):
    outlet = _outlet(stream_name, n_chans=7, rate=500.0)
    assert main(["streams", "--timeout", "1.5"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(stream_name)]
    assert len(lines) == 1 and "7" in lines[0].split() and "500 Hz" in lines[0]
    assert f"{stream_name}-sid" in lines[0]
    assert main(["streams", "--timeout", "1.5", "--type", "eeg"]) == 0   # a listing takes any case
    assert stream_name in capsys.readouterr().out
    assert main(["streams", "--timeout", "0.2", "--type", f"none-{stream_name}"]) == 1
    assert "no LSL streams of type" in capsys.readouterr().out
    del outlet


def test_full_listing_backs_up_the_predicate_resolver(stream_name):
    outlet = _outlet(stream_name)
    # the outlet answers queries once its responder runs (over 0.5 s on a busy machine): wait for that
    # first, so that what follows tests the fallback and not the outlet's start-up
    resolve_stream(name=stream_name, timeout=10.0)
    # an XPath that liblsl cannot match stands in for a missed answer: the listing still finds it.
    # The default 1-s timeout, as every caller uses (the listing waits as long, up to 1 s): a 0.5-s
    # listing missed the answering outlet in one of six suites run in two workers
    found = resolve_matching("name='no-such-stream'", lambda info: info.name() == stream_name, timeout=1.0)
    assert [info.name() for info in found] == [stream_name]
    assert resolve_matching("name='no-such-stream'", lambda info: False, timeout=0.2) == []
    del outlet


@pytest.mark.lsl
def test_a_query_excluding_a_refused_uid_returns_at_the_other_stream(stream_name):
    """What the inlet's reconnect asks once it has refused an impostor of the same name."""
    outlets = [pylsl.StreamOutlet(pylsl.StreamInfo(stream_name, "EEG", n, 100.0, pylsl.cf_float32,
                                                   f"{stream_name}-{n}")) for n in (2, 3)]
    both = pylsl.resolve_bypred(predicate(name=stream_name), 2, 5.0)
    assert len(both) == 2
    impostor = next(info.uid() for info in both if info.channel_count() == 3)
    # asking for two, a query that still matched the impostor would return both
    found = pylsl.resolve_bypred(excluding(predicate(name=stream_name), {impostor}), 2, 1.0)
    assert [info.channel_count() for info in found] == [2]
    assert excluding("type='EEG'", set()) == "type='EEG'"
    del outlets


def test_a_unique_stream_costs_one_answer_and_one_listing(stream_name, monkeypatch):
    """After the first answer, the check for a same-named twin is one listing of ``COLLISION_WAIT_S``.

    It was a predicate resolve asking for a second stream and then, none answering, the listing as a
    fallback, each waiting to its end: every connect took 2 s where 1 s listens as well.
    """
    outlet = _outlet(stream_name)
    calls = []

    def spy(function):
        def counted(*args, **kwargs):
            calls.append(function.__name__)
            return function(*args, **kwargs)
        return counted

    monkeypatch.setattr(pylsl, "resolve_bypred", spy(pylsl.resolve_bypred))
    monkeypatch.setattr(pylsl, "resolve_streams", spy(pylsl.resolve_streams))
    assert resolve_stream(name=stream_name, timeout=10.0).name() == stream_name
    assert calls == ["resolve_bypred", "resolve_streams"]
    del outlet


def test_the_first_answer_is_opened_while_the_resolver_listens_for_a_twin(stream_name, monkeypatch):
    outlet = _outlet(stream_name)
    opened, listening = threading.Event(), threading.Event()
    opened_before_the_listen_ended, listen_began_while_opening = [], []
    real_listing = pylsl.resolve_streams

    def listing(*args, **kwargs):
        listening.set()
        found = real_listing(*args, **kwargs)
        opened_before_the_listen_ended.append(opened.is_set())
        return found

    def open_stream(info):
        # open, then listen (one after the other) would wait here in vain: the two must overlap
        listen_began_while_opening.append(listening.wait(timeout=5.0))
        opened.set()
        return info.source_id()

    monkeypatch.setattr(pylsl, "resolve_streams", listing)
    assert resolve_and_open(open_stream, name=stream_name, timeout=10.0) == f"{stream_name}-sid"
    assert opened_before_the_listen_ended == [True] and listen_began_while_opening == [True]
    del outlet


def test_a_refused_first_answer_gives_way_to_the_eeg_stream_the_listen_finds(stream_name, monkeypatch):
    """The marker stream of the same name answers first (forced: the real resolver returns only it) and
    the inlet refuses to open it; the EEG stream, heard while listening for twins, is opened instead."""
    decoy = pylsl.StreamOutlet(marker_stream_info(stream_name, f"{stream_name}-markers"))
    outlet = _outlet(stream_name)
    real = resolve.find_streams
    monkeypatch.setattr(resolve, "find_streams", lambda **kw: [
        info for info in real(**kw, minimum=2) if info.type() == "Markers"])
    meta = Inlet(name=stream_name, resolve_timeout=10.0).connect()
    assert (meta.source_id, meta.stype, meta.sfreq) == (f"{stream_name}-sid", "EEG", 250.0)
    del decoy, outlet


def test_nothing_visible_is_said_as_such_not_as_a_list_to_pick_from(monkeypatch):
    """It read '(visible: none); start the stream, or pass the name of one of those'. The listing is
    replaced by an empty one: a network where no stream at all answers cannot be arranged beside the
    suite's other workers' streams."""
    from eegmusic.stream import resolve

    monkeypatch.setattr(resolve, "list_streams", lambda timeout=1.0: [])
    with pytest.raises(StreamError) as caught:
        resolve._the_one([], "name='cap'", 0.5)
    message = str(caught.value)
    assert "no stream at all is visible" in message and "one of those" not in message, message


def test_streams_command_escapes_what_the_network_sends(stream_name, capsys):
    """Name, type and source_id come from any host on the network: a line break in them forged a row of
    the listing, and a terminal escape sequence reached the terminal."""
    forged = f"{stream_name}\nfake-cap  EEG  64  1000 Hz  float32  fake"
    info = pylsl.StreamInfo(forged, "EEG\x1b[2J", 2, 250.0, pylsl.cf_float32, f"{stream_name}\n-sid")
    outlet = pylsl.StreamOutlet(info)
    assert main(["streams", "--timeout", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "fake-cap" not in out.replace(f"{stream_name}\\nfake-cap", ""), out
    assert "\x1b" not in out
    lines = [line for line in out.splitlines() if line.startswith(stream_name)]
    assert len(lines) == 1 and lines[0].startswith(f"{stream_name}\\nfake-cap  EEG  64"), lines
    assert "EEG\\x1b[2J" in lines[0] and f"{stream_name}\\n-sid" in lines[0]
    del outlet


@pytest.mark.parametrize("timeout", [0.0, 0.05])
def test_a_stream_that_answers_after_the_timeout_is_taken_not_said_missing(stream_name, timeout, monkeypatch):
    """``--timeout 0`` said "no LSL stream with name='cap' appeared within 0 s (visible: 'cap' ...)": the
    listing that names what is visible waits 1 s, and the stream answered in it. The answer within the
    timeout is made to miss (it does on a loaded machine)."""
    outlet = _outlet(stream_name)
    resolve_stream(name=stream_name, timeout=10.0)   # its responder runs: what follows tests the late answer
    monkeypatch.setattr(resolve, "find_streams", lambda **kw: [])
    assert resolve_stream(name=stream_name, timeout=timeout).source_id() == f"{stream_name}-sid"
    assert resolve_and_open(lambda info: info.name(), name=stream_name, timeout=timeout) == stream_name
    with pytest.raises(StreamError, match=rf"no LSL stream with name='{stream_name}-other' appeared within "
                                          rf"{timeout:g} s \(visible: .*'{stream_name}' \(EEG"):
        resolve_stream(name=f"{stream_name}-other", timeout=timeout)
    del outlet


@pytest.mark.untimed   # arithmetic only: it leaves the real-time lane
def test_a_wait_ending_with_liblsls_first_wave_is_moved_just_past_it():
    wave = resolve.LIBLSL_FIRST_WAVE_S
    assert resolve.liblsl_wait(wave) == wave + resolve.WAVE_NUDGE_S
    for seconds in (0.0, 0.25, 0.45, 0.499, 0.501, 1.0, 5.0):
        assert resolve.liblsl_wait(seconds) == seconds


def test_a_half_second_lookup_for_an_absent_stream_ends_on_time():
    """liblsl 1.18 overran a resolve and a listing asked for exactly 0.5 s by 5 s when nothing answered:
    ``decode --timeout 0.5`` for a stream that was not there took 12.7 s. Two lookups (each a predicate
    resolve and a full listing of 0.5 s) took about 22 s before, 2 s now."""
    import time
    import uuid

    started = time.monotonic()
    for _ in range(2):
        assert resolve.find_streams(name=f"absent-{uuid.uuid4().hex[:8]}", timeout=0.5) == []
    assert time.monotonic() - started < 5.0
