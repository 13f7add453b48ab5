"""Argparse types shared by every ``eegmusic`` command: numbers in range, finite, and output paths.

Each helper is a callable for ``add_argument(type=...)``. It turns the option's text into a value or
raises :class:`argparse.ArgumentTypeError` with a message that says what is allowed, so that a bad
option is refused by the parser, before any data is read, a stream resolved or a model trained
(``--timeout -1`` once hung ``decode``; ``--duration nan`` ran 0 s and exited 0).

Example
-------
>>> parser.add_argument("--timeout", type=non_negative_float, default=5.0)  # doctest: +SKIP
>>> parser.add_argument("--smooth", type=int_range(0, 64), default=0)  # doctest: +SKIP
>>> parser.add_argument("--json", type=output_file(".json"))  # doctest: +SKIP

Output paths are checked for a folder that exists and can be written, so that ``--json missing/x.json``
fails at once instead of after a whole decode. Whether an existing output may be replaced
(``--overwrite``) is decided by the command with :func:`eegmusic.stream.atomic.refuse_existing`.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eegmusic.stream.atomic import nearest_existing, write_probe
from eegmusic.stream.errors import utf8

ArgumentTypeError = argparse.ArgumentTypeError


@dataclass(frozen=True)
class Bounds:
    """What a numeric option type accepts (read by the fault tests to aim outside it)."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False
    high_open: bool = False


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        noun = "an integer" if kind is int else "a number"
        raise ArgumentTypeError(f"must be {noun} (got {text!r})") from None
    if kind is float and not math.isfinite(value):
        raise ArgumentTypeError(f"must be a finite number (got {text!r})")
    return value


def finite_float(text: str) -> float:
    """Any finite number (no NaN, no ±inf)."""
    return float(_number(text, float))


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise ArgumentTypeError(f"must be positive (got {text!r})")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (timeouts: 0 means one immediate try, never "wait forever")."""
    value = finite_float(text)
    if value < 0:
        raise ArgumentTypeError(f"must be >= 0 (got {text!r})")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = int(_number(text, int))
    if value < 1:
        raise ArgumentTypeError(f"must be at least 1 (got {text!r})")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = int(_number(text, int))
    if value < 0:
        raise ArgumentTypeError(f"must be at least 0 (got {text!r})")
    return value


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An integer in ``[low, high]``."""

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if not low <= value <= high:
            raise ArgumentTypeError(f"must be an integer from {low} to {high} (got {text!r})")
        return value

    parse.__name__ = f"integer {low}..{high}"
    parse.bounds = Bounds(low, high, integer=True)
    return parse


random_seed = int_range(0, 2**32 - 1)
"""Every command's ``--seed``: numpy and torch take any seed in it, and the seeds train derives from it
(``seed * 1000 + rank``, ``seed + member``) stay inside torch's 64-bit range, where 2**64 was a traceback."""


def float_range(low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> Callable[[str], float]:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``, ``[low, high)`` with
    ``high_open``)."""

    def parse(text: str) -> float:
        value = finite_float(text)
        if value > high or value < low or (low_open and value == low) or (high_open and value == high):
            if low_open and high_open:
                raise ArgumentTypeError(f"must be > {low:g} and < {high:g} (got {text!r})")
            if low_open and low == 0:
                raise ArgumentTypeError(f"must be > 0 and at most {high:g} (got {text!r})")
            bracket = "(" if low_open else "["
            closing = ")" if high_open else "]"
            raise ArgumentTypeError(f"must be in {bracket}{low:g}, {high:g}{closing} (got {text!r})")
        return value

    parse.__name__ = f"number {low:g}..{high:g}"
    parse.bounds = Bounds(low, high, low_open=low_open, high_open=high_open)
    return parse


def seconds(maximum: float = 7 * 24 * 3600.0) -> Callable[[str], float]:
    """A duration in seconds, > 0 and at most ``maximum`` (a week by default)."""
    return float_range(0.0, maximum, low_open=True)


def timeout_seconds(text: str) -> float:
    """A timeout in seconds: finite, >= 0 and at most one day."""
    value = non_negative_float(text)
    if value > 86400.0:
        raise ArgumentTypeError(f"must be at most 86400 s, one day (got {text!r})")
    return value


def _writable_folder(folder: Path, text: str) -> None:
    if not folder.is_dir():
        existing = nearest_existing(folder)
        if not existing.is_dir():
            raise ArgumentTypeError(f"{str(existing)!r} in {text!r} is a file, not a folder; name a path in "
                                    "a folder")
        raise ArgumentTypeError(f"folder {str(folder)!r} of {text!r} does not exist; create it first")
    error = write_probe(folder)
    if error is not None:
        raise ArgumentTypeError(f"folder {str(folder)!r} of {text!r} is not writable "
                                f"({error.strerror or error})")


def _path_text(text: str, what: str) -> Path:
    """``text`` as a path any library can open (expanded), or ArgumentTypeError naming what is wrong.

    A name of bytes that are not UTF-8 (made on a system with another encoding) reaches Python as
    surrogates, which libsndfile and the JSON writer cannot encode: the command failed after its work
    (a decode's recording left half-written). A name longer than the file system allows failed with a
    traceback at the first look at it.
    """
    if not text or "\0" in text:
        raise ArgumentTypeError(f"{text!r} is not a {what} name")
    if not utf8(text):
        raise ArgumentTypeError(f"{text!r} holds bytes that are not UTF-8 (a name from a system with another "
                                f"encoding); rename it or name another {what}")
    path = Path(text).expanduser()
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as error:   # too long, a loop of links, ...
        raise ArgumentTypeError(f"{text!r}: {error.strerror or error}; name another {what}") from None
    return path


def output_file(*suffixes: str) -> Callable[[str], str]:
    """A file to write: its folder exists and is writable, it is not a folder, suffix one of ``suffixes``.

    Returns the text unchanged (commands keep their own path handling).
    """

    def parse(text: str) -> str:
        path = _path_text(text, "file")
        if path.is_dir():
            raise ArgumentTypeError(f"{text!r} is a folder; name a file inside it")
        if text.endswith(os.sep):  # "x.wav/": written as x.wav, and said so as "wrote x.wav/"
            named = text.rstrip(os.sep)
            if suffixes and Path(named).suffix.lower() not in suffixes:   # "new/": "new" would be refused
                named += suffixes[0]
            raise ArgumentTypeError(f"{text!r} ends in {os.sep!r}, as a folder does; name the file without "
                                    f"it, e.g. {named!r}")
        if suffixes and path.name.lower() in suffixes:  # "vo/.wav": Path's suffix of a dot-file is ""
            raise ArgumentTypeError(f"{text!r} is only an extension; name the file, e.g. out{suffixes[0]}")
        if suffixes and path.suffix.lower() not in suffixes:
            raise ArgumentTypeError(f"{text!r} must end in {' or '.join(suffixes)}")
        _writable_folder(path.parent if str(path.parent) else Path("."), text)
        return text

    parse.__name__ = "output file"
    return parse


def output_dir(text: str) -> str:
    """A folder to write into: not an existing file; its nearest existing ancestor is writable (text back)."""
    path = _path_text(text, "folder")
    if path.exists() and not path.is_dir():
        raise ArgumentTypeError(f"{text!r} is a file, not a folder; name a folder")
    ancestor = nearest_existing(path)   # exists: at worst "." or "/"
    # a link to nothing on the way: mkdir fails on it (a file's link may be written through; not a folder's)
    on_the_way = itertools.takewhile(lambda part: part != ancestor, (path, *path.parents))
    dangling = next((part for part in on_the_way if part.is_symlink()), None)
    if dangling is not None:
        raise ArgumentTypeError(f"{str(dangling)!r} in {text!r} is a symbolic link to nothing (its target is "
                                f"missing); remove the link or name another folder")
    if not ancestor.is_dir():
        raise ArgumentTypeError(f"{str(ancestor)!r} in {text!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ArgumentTypeError(f"folder {str(ancestor)!r} of {text!r} is not writable")
    return text


def _check_lsl_text(text: str, empty: str) -> str:
    if not text.strip():
        raise ArgumentTypeError(f"must not be empty; {empty}")
    if text != text.strip() or any(not ch.isprintable() for ch in text):
        raise ArgumentTypeError(f"{text!r} has spaces at an end or control characters; type the name alone")
    return text


def lsl_name(text: str) -> str:
    """An LSL stream name, type or source id to look for: not empty, no control characters, no outer spaces.

    An empty ``--stream ""`` matched every stream (an empty query is no filter): it silently did something
    else than asked.
    """
    return _check_lsl_text(text, "give the one to look for (eegmusic streams lists the streams there are)")


def published_lsl_name(text: str) -> str:
    """An LSL stream name or source id to publish under: as :func:`lsl_name` checks it.

    An empty ``--name ""`` fell back to the default name: it silently did something else than asked.
    """
    return _check_lsl_text(text, "give the name to publish under, or leave the option out for the default")


finite_float.bounds = Bounds(-math.inf, math.inf)
positive_float.bounds = Bounds(0.0, math.inf, low_open=True)
non_negative_float.bounds = Bounds(0.0, math.inf)
positive_int.bounds = Bounds(1, math.inf, integer=True)
non_negative_int.bounds = Bounds(0, math.inf, integer=True)
timeout_seconds.bounds = Bounds(0.0, 86400.0)
