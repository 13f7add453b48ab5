"""Progress bars that suit where the output goes: a live bar on a terminal, a line every few seconds in a log.

tqdm redraws its bar with carriage returns several times a second; written into a log file (stderr
not a terminal: CI, ``nohup``, ``2> run.log``) that is thousands of partial lines. :func:`progress_bar`
returns a tqdm bar when stderr is a terminal and otherwise a :class:`LineProgress`, which logs one
plain line (``simulate: 12/40 recording (30 %), 1.9 recording/s, 15 s left``) at most every
``interval_s`` seconds and one when it ends. Both take the same calls (iterate, ``update``,
``set_postfix``, ``close``, ``with``), so every long loop in eegmusic uses this one helper.

``eegmusic -q`` turns every bar off through :func:`set_enabled`.

Example
-------
>>> for batch in progress_bar(batches, desc="epoch 1/20", unit="batch"):  # doctest: +SKIP
...     step(batch)
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

LINE_INTERVAL_S = 5.0
"""Seconds between two progress lines when stderr is not a terminal."""

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Show (``True``, the default) or hide every progress bar of this process (``eegmusic -q``)."""
    global _enabled
    _enabled = bool(enabled)


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", leave: bool = False, disable: bool = False,
                 interval_s: float = LINE_INTERVAL_S, stream: Any = None):
    """Return a progress bar over ``iterable`` (or one to ``update`` by hand up to ``total``).

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over; its ``len`` is the total when it has one.
    total : int, optional
        Number of steps when ``iterable`` has no length or is absent.
    desc, unit : str
        What the work is and what one step is called (``"epoch 3/20"``, ``"batch"``).
    leave : bool
        Keep the terminal bar after it ends (line mode always logs a last line).
    disable : bool
        Show nothing (the caller's ``progress=False``); :func:`set_enabled` can also disable.
    interval_s : float
        Line mode: at most one line every ``interval_s`` seconds.
    stream : file-like, optional
        Where the bar goes (default ``sys.stderr``); it decides between bar and lines by ``isatty()``.

    Returns
    -------
    tqdm.tqdm or LineProgress
    """
    stream = sys.stderr if stream is None else stream
    disable = disable or not _enabled
    if not disable and _is_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, disable=disable, interval_s=interval_s)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


class LineProgress:
    """A progress report that logs a whole line at most every ``interval_s`` seconds (no ``\\r``).

    Parameters
    ----------
    iterable, total, desc, unit, disable, interval_s
        As for :func:`progress_bar`.
    clock : callable, optional
        Monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", disable: bool = False, interval_s: float = LINE_INTERVAL_S,
                 clock=time.monotonic):
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total = total
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self.interval_s = float(interval_s)
        self.n = 0
        self.postfix = ""
        self._clock = clock
        self._start = clock()
        self._last_line = self._start
        self._closed = False

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress bar was made without an iterable; call update(n)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        except GeneratorExit:
            # the caller stopped iterating: by a break, or by an error in its loop body (which the
            # generator cannot tell apart); short of the total, no "(done)" line claims the work ended
            if self.total is not None and self.n < self.total:
                self._abandon()
            else:
                self.close()
            raise
        except BaseException:
            self._abandon()
            raise
        self.close()

    def __len__(self) -> int:
        return 0 if self.total is None else self.total

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abandon()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps; log a line when ``interval_s`` has passed since the last one."""
        self.n += n
        now = self._clock()
        finished = self.total is not None and self.n >= self.total   # close() says that line, once
        if not self.disable and not finished and now - self._last_line >= self.interval_s:
            self._last_line = now
            logger.info("%s", self.line(now))

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **values: Any) -> None:
        """Show ``key=value`` pairs after the counts (tqdm's ``set_postfix``)."""
        values = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        """Show ``text`` after the counts."""
        self.postfix = text

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Rename the work being counted."""
        self.desc = desc or ""

    def refresh(self) -> None:
        """Nothing to redraw in a log (tqdm compatibility)."""

    def close(self) -> None:
        """Log the final line once (when enabled)."""
        if self._closed:
            return
        self._closed = True
        if not self.disable:
            logger.info("%s (done)", self.line(self._clock()))

    def _abandon(self) -> None:
        """End without the final line: the work failed, and its error is the one line the user sees
        (a "(done)" line printed before `train`'s one-line error about a stimulus it could not read)."""
        self._closed = True

    def line(self, now: float) -> str:
        """The progress line at time ``now``: counts, percent, rate, time left, postfix."""
        elapsed = max(now - self._start, 1e-9)
        rate = self.n / elapsed
        parts = [f"{self.desc}: " if self.desc else "", f"{self.n}"]
        if self.total:
            parts.append(f"/{self.total} {self.unit} ({100 * self.n / self.total:.0f} %)")
        else:
            parts.append(f" {self.unit}")
        parts.append(f", {rate:.3g} {self.unit}/s, {elapsed:.0f} s")
        if self.total and 0 < self.n < self.total and rate > 0:
            parts.append(f", {(self.total - self.n) / rate:.0f} s left")
        if self.postfix:
            parts.append(f", {self.postfix}")
        return "".join(parts)
