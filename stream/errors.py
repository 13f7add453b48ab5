"""The one exception family of eegmusic.

Every error a user can cause (bad files, missing streams, wrong models, no sound card, bad options)
is an :class:`EEGMusicError`. Its message is one line that names the problem and the fix; the CLI
prints it as is and exits with status 2. Programming errors stay ordinary Python exceptions.
"""

from __future__ import annotations

import errno
import json
import os


def one_line(text: str) -> str:
    """``text`` as one printable line: line breaks and runs of spaces become one space, other
    unprintable characters ``?``. The CLI prints every error through it (a library's message quoted
    in ours may span lines or carry the bytes of the file it choked on)."""
    return " ".join("".join(ch if ch.isprintable() else "?" if ch not in "\n\r\t" else " "
                            for ch in text).split())


def read_json(text: str | bytes):
    """``json.loads(text)``, with every way a text fails to read as JSON raised as
    :class:`json.JSONDecodeError`, the error its readers catch: a number of more than Python's 4,300
    digits raised a plain ValueError and nesting 5,000 deep a RecursionError, and each came out of a
    model's metadata, a dataset's manifest or sidecar, a run's ``config.json`` or ``--arch-config`` as a
    traceback."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deep to read", "", 0) from None
    except ValueError as error:  # Python's own words advise sys.set_int_max_str_digits()
        raise json.JSONDecodeError("a number of more digits than Python reads" if "digits" in str(error)
                                   else detail(error), "", 0) from None


def detail(error: BaseException, limit: int = 120) -> str:
    """A library exception's own words for a message of ours: its first line, printable, at most
    ``limit`` characters; ``no detail`` when it has none."""
    lines = str(error).strip().splitlines()
    return one_line(lines[0])[:limit] if lines else "no detail"


class EEGMusicError(Exception):
    """Base of every user-facing eegmusic error (one-line message: problem and fix)."""


class DataFormatError(EEGMusicError):
    """A dataset file or folder does not have the expected layout or content."""


class StreamError(EEGMusicError):
    """An LSL stream is missing, lost, or does not match what is needed."""


class ModelError(EEGMusicError):
    """A model file is missing, corrupt, or does not match the stream."""


class AudioError(EEGMusicError):
    """No usable audio device, or audio that cannot be played or written."""


class ConfigError(EEGMusicError):
    """A command-line option or configuration value is invalid."""


class OutputError(EEGMusicError):
    """An output exists and ``--overwrite`` was not given, would replace an input, or cannot be written
    (full disk, no permission)."""


class AccessError(EEGMusicError):
    """A file or folder this user may not read or write: its permissions, not its content."""


def access_error(error: PermissionError) -> AccessError:
    """The one-line error for a ``PermissionError`` that names its path (the path, and the fix)."""
    return AccessError(f"permission denied for {error.filename}: this user may not open it; change its "
                       "permissions (chmod, chown) or run as a user who may")


PATH_FIXES = {
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.ELOOP: "a symbolic link on the way points back to itself; remove or fix the link",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up; free some space or write elsewhere",
}
"""What to do about an ``OSError`` on a path the user gave, by its errno: the failures no command can
foresee in its own checks (the name, the file system), reported by :func:`path_error` in one line."""


def utf8(text: str) -> bool:
    """Whether ``text`` is valid UTF-8 (a file name of other bytes reaches Python as surrogates, which
    libsndfile and the JSON writer cannot encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_error(error: OSError) -> EEGMusicError | None:
    """The one-line error for an ``OSError`` on a named path whose cause the user can fix
    (:data:`PATH_FIXES`), else None (not the user's path, or a failure to see in full)."""
    fix = PATH_FIXES.get(error.errno)
    if error.filename is None or fix is None:
        return None
    return OutputError(f"cannot use {error.filename}: {error.strerror}; {fix}")


def missing(path: str | os.PathLike, words: str = "not found") -> str:
    """``words`` for a ``path`` that does not exist, with the reason when the path itself is to blame:
    a symbolic link that loops or points nowhere, a folder on the way this user may not enter.

    ``Path.exists`` is False for all of these, and each was reported as plainly missing, which sent the
    user looking for a file that is there.
    """
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"{words}: a symbolic link on its path loops (too many levels of links)"
        if error.errno == errno.EACCES:
            return f"{words}: a folder on its path may not be entered by this user (permission denied)"
        if os.path.islink(path):
            return f"{words}: it is a symbolic link to {os.readlink(path)}, which does not exist"
    except ValueError:   # a NUL byte
        pass
    return words


def require_readable(path: str | os.PathLike) -> None:
    """Raise :class:`AccessError` when ``path`` exists but this user may not read it (a folder: list it).

    Readers call it before their own checks: a file they cannot open would otherwise be reported as
    damaged, with a fix (re-record, convert, export again) that does not help. Any other failure
    (missing) and any path that is neither a regular file nor a folder (a FIFO, a device) is left to the
    reader's own words.
    """
    try:
        if os.path.isdir(path):
            entries = os.listdir(path)
            if entries:   # listed but not entered (mode r--): its files cannot be opened, and it is to blame
                try:
                    os.stat(os.path.join(path, entries[0]))
                except PermissionError as error:
                    raise PermissionError(error.errno, error.strerror, os.fspath(path)) from None
        elif os.path.isfile(path):   # not a FIFO or a device: opening one can block until a writer comes
            with open(path, "rb"):
                pass
    except PermissionError as error:
        raise access_error(error) from None
    except OSError:
        return
