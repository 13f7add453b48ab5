"""Reading a child ``eegmusic`` process's output up to a line, for tests that signal it mid-run."""

from __future__ import annotations

import subprocess


def read_until(child: subprocess.Popen, phrase: str, pipe: str = "stderr") -> str:
    """Read ``child``'s ``pipe`` (text mode) line by line until a line holds ``phrase``; return what was
    read. Fails with everything it said if the child ends (its pipe closes) before saying it."""
    stream = getattr(child, pipe)
    seen = ""
    while phrase not in seen:
        line = stream.readline()
        assert line, seen + child.communicate()[1]   # it ended before getting there
        seen += line
    return seen
