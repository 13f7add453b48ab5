"""Option fuzzing: every numeric and path option of every command is refused before any work.

The cases are generated from the parser itself: each option whose type is a
:mod:`eegmusic.stream.options` helper declares its bounds, and the cases aim just outside them, at
NaN, infinities and junk. A new numeric option with a plain ``type=float`` fails
:func:`test_every_numeric_option_is_validated`. Hypothesis then throws arbitrary text at each option:
it parses to a value inside the bounds, or the parser refuses it with one line (exit 2).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import soundfile as sf
from eegmusic.stream.cli import build_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.conftest import assert_one_line_error, run_cli

PLAIN_TYPES_ALLOWED = {
    ("evaluate", "--batch-size"): "plain int, range checked in run_evaluate before any work",
}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMANDS = _commands()


def _typed_options():
    for command, parser in COMMANDS.items():
        for action in parser._actions:
            if action.option_strings and action.type is not None:
                yield command, action


NUMERIC = [(command, action.option_strings[0], action.type.bounds)
           for command, action in _typed_options() if hasattr(action.type, "bounds")]


def _bad_values(bounds) -> list[str]:
    values = ["nan", "NaN", "inf", "-inf", "abc", "1e999", "", "0x10", "1,5"]
    if bounds.integer:
        values += ["1.5", "2e0"]
    if math.isfinite(bounds.low):
        below = bounds.low if bounds.low_open else (bounds.low - 1 if bounds.integer else bounds.low - 1e-3)
        values.append(repr(below) if not bounds.integer else str(int(below)))
    if math.isfinite(bounds.high):
        values.append(str(int(bounds.high) + 1) if bounds.integer else repr(bounds.high * 1.001 + 1e-9))
    return list(dict.fromkeys(values))


BAD_CASES = [(command, option, value) for command, option, bounds in NUMERIC for value in _bad_values(bounds)]


def test_every_numeric_option_is_validated():
    plain = [(command, action.option_strings[0]) for command, action in _typed_options()
             if action.type in (float, int)]
    plain = [entry for entry in plain if entry not in PLAIN_TYPES_ALLOWED]
    assert plain == [], f"numeric options without a stream.options type: {plain}"
    assert len(NUMERIC) >= 40


@pytest.mark.parametrize(("command", "option", "value"), BAD_CASES,
                         ids=[f"{c}{o}={v!r}" for c, o, v in BAD_CASES])
def test_bad_numeric_value_is_one_line(command, option, value, capsys):
    status, out, err = run_cli([command, f"{option}={value}"], capsys)
    line = assert_one_line_error(status, err, option)
    assert "--help" in line and out == ""


@pytest.mark.parametrize(("command", "option", "bounds"), NUMERIC, ids=[f"{c}{o}" for c, o, _ in NUMERIC])
def test_numeric_option_fuzz(command, option, bounds, capsys):
    """Arbitrary text: a value inside the bounds, or one line and exit 2 (never a traceback)."""
    parser = COMMANDS[command]
    action = next(a for a in parser._actions if option in a.option_strings)
    numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        st.integers(min_value=-10**20, max_value=10**20).map(str),
                        st.sampled_from(["nan", "-0", "+1", " 1", "1_000", "٣", "²", "1e-320", "-1e-9"]),
                        st.text(max_size=12))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=numbers)
    def check(text):
        try:
            value = action.type(text)
        except argparse.ArgumentTypeError as error:
            assert "\n" not in str(error)
            return
        assert math.isfinite(value)
        assert value <= bounds.high and (value > bounds.low if bounds.low_open else value >= bounds.low)
        if bounds.integer:
            assert isinstance(value, int)

    check()


PATH_CASES = [
    ("decode", ["--model", "m.onnx", "--stream", "s", "--json", "{missing}/summary.json"], "--json"),
    ("decode", ["--model", "m.onnx", "--stream", "s", "--json", "{tmp}"], "--json"),
    ("decode", ["--model", "m.onnx", "--stream", "s", "--json", "{tmp}/summary.txt"], "--json"),
    ("decode", ["--model", "m.onnx", "--stream", "s", "--wav", "{missing}/a.wav"], "--wav"),
    ("decode", ["--model", "m.onnx", "--stream", "s", "--wav", "{tmp}/a.mp3"], "--wav"),
    ("decode", ["--model", "m.onnx", "--stream", "s", "--record", "{file}"], "--record"),
    ("decode", ["--model", "m.onnx", "--stream", "s", "--record", "{file}/sub"], "--record"),
    ("train", ["--data", "d", "--out", "{file}"], "--out"),
    ("train", ["--data", "d", "--out", "{file}/run"], "--out"),
    ("evaluate", ["--data", "d", "--model", "m.onnx", "--out", "{file}"], "--out"),
    ("simulate", ["--out", "{file}"], "--out"),
    ("vocode", ["{file}", "--out", "{tmp}"], "--out"),
    ("vocode", ["{file}", "--out", "{missing}/x.wav"], "--out"),
    ("vocode", ["{file}", "--out", "{tmp}/.wav"], "is only an extension"),
    ("vocode", ["{file}", "--out", "{tmp}/x.wav/"], "ends in '/', as a folder does"),   # wrote x.wav
    ("calibrate", ["--stream", "s", "--music", "m", "--out", "{missing}/s.xdf"], "--out"),
    ("demo", ["--wav", "{missing}/a.wav"], "--wav"),
    ("demo", ["--out", "{file}"], "--out"),
    ("gui", ["--screenshot", "{missing}/a.png"], "--screenshot"),
    ("bench", ["--out", "{missing}/b.json"], "--out"),
    ("decode", ["--model", "m.onnx", "--stream", "s", "--json", ""], "--json"),
    ("train", ["--data", "d", "--out", ""], "--out"),
]


@pytest.mark.parametrize(("command", "argv", "option"), PATH_CASES,
                         ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(PATH_CASES)])
def test_bad_output_path_is_refused_before_work(command, argv, option, tmp_path, capsys):
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("keep me")
    fill = {"{missing}": str(tmp_path / "no" / "such"), "{tmp}": str(tmp_path), "{file}": str(a_file)}
    for key, value in fill.items():
        argv = [arg.replace(key, value) for arg in argv]
    status, _, err = run_cli([command, *argv], capsys)
    assert_one_line_error(status, err, option)
    assert a_file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.txt"]


@pytest.mark.parametrize(("given", "suggested"), [("x.wav/", "x.wav"), ("new/", "new.wav")])
def test_the_file_a_trailing_slash_refusal_suggests_is_accepted(given, suggested, tmp_path, capsys):
    """``vocode --out vo/new/`` suggested 'vo/new', which was then refused for not ending in .wav."""
    audio = tmp_path / "in.wav"
    sf.write(audio, 0.3 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32), 22050)
    status, _, err = run_cli(["vocode", str(audio), "--out", f"{tmp_path}/{given}"], capsys)   # Path drops /
    line = assert_one_line_error(status, err, "as a folder does")
    assert line.endswith(f"e.g. {str(tmp_path / suggested)!r} (see eegmusic vocode --help)"), line
    status, _, err = run_cli(["vocode", str(audio), "--out", str(tmp_path / suggested)], capsys)
    assert status == 0, err
    assert (tmp_path / suggested).is_file()


@pytest.mark.parametrize(("argv", "named"), [
    (["decode", "--model", "m.onnx", "--stream", "s", "--on-lost", "explode"], "--on-lost invalid choice"),
    (["decode", "--model", "m.onnx", "--stream", "s", "--device", "tpu"], "--device invalid choice"),
    (["train", "--data", "d", "--out", "o", "--target-offset", "100"], "--target-offset must be seconds"),
    (["train", "--data", "d", "--out", "o", "--target-offset", "nan"], "--target-offset must be seconds"),
    (["train", "--data", "d", "--out", "o", "--target-offset", "soon"], "--target-offset 'soon'"),
    (["train", "--data", "d", "--out", "o", "--split", "sideways"], "--split invalid choice"),
    (["streams", "--timeout"], "--timeout expected one argument"),
    (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
], ids=lambda value: " ".join(value[:1] + value[-2:]) if isinstance(value, list) else "")
def test_bad_choice_or_missing_value_is_one_line(argv, named, capsys):
    """The line names the option (the model and data named do not exist: a later check would also
    end in one line, so the text tells which check refused)."""
    status, _, err = run_cli(argv, capsys)
    assert_one_line_error(status, err, named)
