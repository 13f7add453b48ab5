"""Writing outputs safely: never over an existing file without consent, never half a file.

Every command that writes goes through these helpers:

- :func:`refuse_existing` before any work: an existing output is an :class:`OutputError` unless
  ``--overwrite`` was given;
- :func:`refuse_same_file`: an input is never its own output (``vocode a.wav --out a.wav``), and
  :func:`is_within` tells when an output would land in an input folder (``decode --wav
  sim/stimuli/song21.wav --truth sim``);
- :func:`atomic_path` / :func:`write_text` / :func:`write_json`: the content goes to a temporary file
  beside the target and is renamed over it only once complete, so a crash or a full disk leaves the
  old file (or none), never a truncated one;
- :func:`staged_files`: a set of files (``evaluate``'s results) replaces the old set together;
- :func:`temporary_directory`: a scratch folder that a stop (Ctrl-C, SIGTERM) never leaves behind;
- :func:`disk_errors`: turns a full disk or a refused write (libsndfile's too) into one line naming the
  path, and what the caller left behind;
- :func:`output_lock`: one command at a time writes a given output folder (two ``train --out
  runs/x`` started together mixed their files).

Example
-------
>>> refuse_existing(Path("summary.json"), overwrite=False)  # doctest: +SKIP
>>> write_json(Path("summary.json"), {"windows": 12})  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from eegmusic.stream.errors import OutputError

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
"""The errors a full disk or quota gives a write."""


def nearest_existing(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists: where a folder ``path`` would be created."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def refuse_existing(path: str | os.PathLike, *, overwrite: bool, flag: str = "--overwrite",
                    what: str = "output", does: str = "to replace it") -> None:
    """Raise :class:`OutputError` when ``path`` exists (a file or non-empty folder) unless ``overwrite``.

    ``does`` is what ``flag`` does to it, for the message: ``"to reuse it (its recordings are kept)"``
    where the command keeps what is there.
    """
    path = Path(path)
    if overwrite or not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    kind = "folder" if path.is_dir() else "file"
    raise OutputError(f"{what} {kind} {path} already exists; pass {flag} {does}, or choose another path")


def refuse_same_file(source: str | os.PathLike, output: str | os.PathLike, *, what: str = "output") -> None:
    """Raise :class:`OutputError` when ``output`` names the same file as ``source`` (links included)."""
    source, output = Path(source), Path(output)
    same = source.resolve() == output.resolve()
    if not same and source.exists() and output.exists():
        same = os.path.samefile(source, output)
    if same:
        raise OutputError(f"{what} {output} is the input file itself; choose another {what} path")


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (``~``, ``..`` and links resolved; ``path`` may not
    exist yet). A link is followed, and also judged by where its own name lies."""
    path, folder = Path(path).expanduser(), Path(folder).expanduser().resolve()
    return any(where == folder or folder in where.parents
               for where in (path.resolve(), path.parent.resolve() / path.name))


def process_status(field: str) -> str | None:
    """The first word of ``field`` in Linux's ``/proc/self/status`` (``Umask``, ``VmSize``...), or None
    where there is no such file or field."""
    with contextlib.suppress(OSError, IndexError, StopIteration):
        with open("/proc/self/status") as status:
            return next(line for line in status if line.startswith(f"{field}:")).split()[1]
    return None


def _umask() -> int:
    """This process's umask, read without setting it (``os.umask`` would change it for every thread
    for a moment)."""
    with contextlib.suppress(TypeError, ValueError):
        return int(process_status("Umask"), 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FREE_SPACE = "free space or choose another folder"
"""The fix a full-disk message ends with."""

KEPT_WRITTEN = f"what was written before stays readable; {FREE_SPACE}"
"""The default end of a full-disk message (:func:`disk_errors`): true of a writer that keeps what it wrote
(a recording cut short); a writer that removes or never renames its partial output says so instead."""


def _write_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean a write failed: :class:`OSError`, and libsndfile's error once soundfile is
    loaded (a :class:`RuntimeError`, not an OSError, so a full disk under ``soundfile.write`` gave a
    traceback). Looked up, not imported: only a loaded soundfile can have raised its error."""
    soundfile = sys.modules.get("soundfile")
    error = getattr(soundfile, "LibsndfileError", None)
    return (OSError,) if error is None else (OSError, error)


def _disk_message(path: Path, error: BaseException, tail: str) -> str:
    number = getattr(error, "errno", None)
    if number in DISK_FULL_ERRNOS:
        return f"disk full while writing {path} ({os.strerror(number)}); {tail}"
    # libsndfile says only "System error." for a full disk as for a refused write: both causes named
    reason = getattr(error, "strerror", None) or str(error).strip().rstrip(".") or type(error).__name__
    return f"cannot write {path} ({reason}); check the folder's permissions and free space"


@contextlib.contextmanager
def disk_errors(path: str | os.PathLike, *, tail: str = KEPT_WRITTEN) -> Iterator[None]:
    """Turn an :class:`OSError` (or a ``soundfile.LibsndfileError``) writing ``path`` (full disk,
    permission) into one :class:`OutputError`.

    ``tail`` ends the full-disk message: what the caller leaves behind and the fix. The default claims
    that what was written stays readable; a caller that removes its partial output, or writes beside the
    target and renames, passes its own words (:func:`atomic_path`, :func:`staged_files`).
    """
    try:
        yield
    except _write_errors() as error:
        raise OutputError(_disk_message(Path(path), error, tail)) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` when the block ends cleanly.

    The temporary name keeps the suffix (``.song.x1y2.part.wav``), so writers that pick the format
    from it (soundfile) work unchanged.

    On an exception the temporary file is removed and ``path`` is left as it was. An :class:`OSError`
    (full disk, permission) becomes one :class:`OutputError` that says so ("… is unchanged").
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    # the part file is removed, never renamed: an earlier file stays as it was, or none is left
    left = f"{path.name} is unchanged" if os.path.lexists(path) else f"no {path.name} is left"
    unchanged = f"{left}; {FREE_SPACE}"
    tmp = None
    try:
        with disk_errors(path, tail=unchanged):
            with deferred_stops():   # no stop between the part file's making and its removal's
                handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}",
                                                dir=folder)
                tmp = Path(name)
            os.close(handle)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600, and the rename kept that
            yield tmp
            os.replace(tmp, path)
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def deferred_stops() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM inside the block; the first one that arrived is handled as it leaves.

    For the few steps that must not be cut in two: the renames of :func:`staged_files`, and the
    creation of a temporary folder together with what removes it (:func:`temporary_directory`).
    Deferred by handlers, not by a signal mask: a mask holds only the main thread's signals, and the
    kernel gives a process's Ctrl-C to any thread that does not block it (torch and onnxruntime start
    several). Off the main thread nothing is deferred: only it may set handlers.
    """
    import signal
    import threading

    caught: list[int] = []
    held = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            held[signum] = signal.signal(signum, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        for signum in caught[:1]:   # now handled as it would have been
            signal.raise_signal(signum)


def write_probe(folder: str | os.PathLike) -> OSError | None:
    """Whether a file can be made (and so deleted) in ``folder``, by trying: None, or the error.

    The permission bits say "writable" to root even where no file can be made (/proc, a read-only
    mount), so a command that trusted them failed only when it wrote, its work lost.
    """
    import tempfile

    with deferred_stops():   # a stop in between left the probe in the user's folder
        try:
            handle, probe = tempfile.mkstemp(prefix=".eegmusic-write-check-", dir=folder)
        except OSError as error:
            return error
        os.close(handle)
        os.unlink(probe)
    return None


@contextlib.contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    """A new folder in the temporary folder, removed with its content however the block ends.

    As ``tempfile.TemporaryDirectory``, without its gap: a stop (Ctrl-C, SIGTERM) landing after
    ``mkdtemp`` had made the folder but before the object that removes it existed left the folder
    behind (a benchmark's, in CI, stopped just as it began). Here the folder is made with stops
    deferred, and the stop is raised only once the ``finally`` that removes it is in place.
    """
    folder = None
    try:
        with deferred_stops():
            folder = Path(tempfile.mkdtemp(prefix=prefix))
        yield folder
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden folder inside ``folder`` to write a set of files into; when the block ends cleanly
    they replace their namesakes in ``folder`` together.

    The renames run with Ctrl-C and SIGTERM deferred (:func:`deferred_stops`), so an interrupted or
    failed command leaves the previous set whole, or nothing: ``evaluate --overwrite`` stopped midway had
    left its new metrics.md beside the old run's metrics.json and WAVs. The hidden folder is removed
    however the block ends.
    """
    folder = Path(folder)
    unchanged = f"nothing in {folder} was replaced; {FREE_SPACE}"   # the staged set is removed
    stage = None
    try:
        with disk_errors(folder, tail=unchanged):
            folder.mkdir(parents=True, exist_ok=True)
            with deferred_stops():   # no stop between the stage's making and its removal's
                stage = Path(tempfile.mkdtemp(prefix=".staged-", dir=folder))
            yield stage
            with deferred_stops():
                items = sorted(stage.iterdir())
                earlier = _keep_namesakes(folder, [item.name for item in items], stage / ".earlier")
                done: list[str] = []
                try:
                    for item in items:
                        os.replace(item, folder / item.name)
                        done.append(item.name)
                except OSError:   # a rename refused midway: the files already replaced are put back
                    _put_back(folder, done, earlier)
                    raise
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def _keep_namesakes(folder: Path, names: list[str], keep: Path) -> dict[str, Path] | None:
    """Hard-link the files of ``folder`` that ``names`` will replace into ``keep``; return name -> link.

    What :func:`_put_back` restores when a rename fails midway. A link costs no copy (the stage is inside
    ``folder``, on its file system). None where links cannot be made: the set is then replaced without a
    way back, as it was before this existed.
    """
    kept = {}
    try:
        keep.mkdir()
        for name in names:
            if (folder / name).is_file():
                os.link(folder / name, keep / name)
                kept[name] = keep / name
    except OSError:
        return None
    return kept


def _put_back(folder: Path, done: list[str], earlier: dict[str, Path] | None) -> None:
    """Undo the renames ``done``: each replaced file gets its earlier version back, and a file that had
    none goes, so that ``folder`` holds its earlier set whole."""
    if earlier is None:
        return
    for name in done:
        with contextlib.suppress(OSError):
            if name in earlier:
                os.replace(earlier[name], folder / name)
            else:
                (folder / name).unlink()


def write_bytes(path: str | os.PathLike, content: bytes) -> None:
    """Write ``content`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, content, *, indent: int = 1) -> None:
    """Write ``content`` as JSON to ``path`` atomically (non-JSON values as their ``str``)."""
    write_text(path, json.dumps(content, indent=indent, default=str) + "\n")


def temporary_folder() -> Path | None:
    """The temporary folder files that outlive no run go to (locks, liblsl's configuration), or None when
    there is no writable one: Python then falls back to the working folder, which would collect them
    (``tempfile.gettempdir`` raised, a traceback before any command, when that was read-only too)."""
    try:
        folder = tempfile.gettempdir()
    except OSError:
        return None
    if os.name != "posix":
        return Path(folder)
    named = [os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")] + ["/tmp", "/var/tmp", "/usr/tmp"]
    return Path(folder) if os.path.realpath(folder) in {os.path.realpath(n) for n in named if n} else None


def _lock_key(path: str | os.PathLike) -> str:
    """The name that locks ``path``: its absolute path with every link resolved, so that every spelling
    of one output shares one lock (``os.path.realpath``, which unlike ``Path.resolve`` never raises on a
    link loop). Another mount of the same folder (``mount --bind``) is another name, and so is one seen
    under another ``TMPDIR`` or by another user: their locks live in other folders."""
    return os.path.realpath(os.path.expanduser(path))


LOCK_FOLDER = "eegmusic-locks-{uid}"
"""This user's folder of lock files, in the temporary folder (mode 0700)."""


def _lock_folder() -> Path:
    """This user's lock folder, made if absent (:data:`LOCK_FOLDER`).

    Its path is known to every user of the machine, and the lock files in it are named by a hash of the
    output's path: a folder another user made there first (or one open to others) could hold a link in
    place of a lock file, and the lock would write through it into any file the user may write (a
    helper emptied one so). Such a folder is refused with a warning, and the command runs unlocked.

    Raises
    ------
    OSError
        No writable temporary folder, or a lock folder that is not this user's own and private.
    """
    temporary = temporary_folder()
    if temporary is None:
        raise OSError(errno.EROFS, "no writable temporary folder for the lock")   # the block runs unlocked
    folder = temporary / LOCK_FOLDER.format(uid=os.getuid())  # only called where flock exists
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    found = os.lstat(folder)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        what = ("not a folder" if not stat.S_ISDIR(found.st_mode)
                else f"owned by user {found.st_uid}" if found.st_uid != os.getuid()
                else f"open to other users (mode {stat.S_IMODE(found.st_mode):o})")
        _warn_once(f"{folder} is {what}, so eegmusic locks no output in it and a second eegmusic "
                   f"command may write the same output at once; remove {folder}")
        raise OSError(errno.EPERM, f"{folder} is {what}")
    return folder


_WARNED: set[str] = set()
"""Warnings :func:`_warn_once` has given in this process."""


def _warn_once(message: str) -> None:
    import logging

    if message not in _WARNED:
        _WARNED.add(message)
        logging.getLogger(__name__).warning(message)


def _open_lock_file(path: Path):
    """Open (or create) the lock file of output ``path``, never through a link.

    Returns
    -------
    file : text file open for reading and writing, and its path
    """
    import hashlib

    # os.fsencode: a path of bytes that are no UTF-8 (realpath gives them as surrogates) has a lock too
    file = _lock_folder() / (hashlib.sha256(os.fsencode(_lock_key(path))).hexdigest()[:24] + ".lock")
    descriptor = os.open(file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid():
            raise OSError(errno.EPERM, f"{file} is no lock file of this user's")
        return open(descriptor, "r+", encoding="utf-8", errors="replace"), file
    except BaseException:
        os.close(descriptor)
        raise


LOCK_TRIES = 100
"""How often :func:`output_lock` opens its lock file again after the holder it waited behind removed it."""

LOCK_REFUSAL = "{path} is being written by {holder}; wait for it to finish, or pass another output path"
"""How :func:`output_lock` refuses an output another process holds."""


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, command: str, *, key: str | os.PathLike | None = None,
                refusal: str = LOCK_REFUSAL) -> Iterator[None]:
    """Hold the output ``path`` for ``command`` inside the block; refuse it while another process does.

    An advisory ``flock`` on a per-path lock file in this user's lock folder (:func:`_lock_folder`): the
    kernel releases it when the process ends, however it ends (a SIGKILLed run leaves no stale lock).
    Where locks are unavailable (a file system without them, no usable lock folder) the block runs
    unlocked, as before. The holder removes its lock file as it lets go (the folder had collected one
    file for every output ever written); a process that locked a file removed so opens it again.

    ``key`` locks another name than ``path`` (a caller holding a folder that a child command it runs
    locks as its own output); ``refusal`` words the refusal, with ``{path}`` and ``{holder}``.

    Raises
    ------
    OutputError
        Another eegmusic process holds ``path`` (the message names its command and process id).
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        fcntl = None
    handle = file = None
    for _ in range(LOCK_TRIES if fcntl is not None else 0):
        try:
            handle, file = _open_lock_file(Path(path if key is None else key))
        except OSError:
            break
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # refused by the file's holder, unless the file was removed meanwhile: a holder letting go
            # removes it first, and a process that locked it then lets go at once (the refusal named a
            # holder that had ended)
            if _is_current(handle, file):
                with handle:
                    holder = handle.read().strip() or "another eegmusic command"
                raise OutputError(refusal.format(path=path, holder=holder)) from None
        except OSError:  # no locks on this file system
            handle.close()
            handle = None
            break
        else:
            if _is_current(handle, file):   # unless its holder removed it between the open and the lock
                break
        handle.close()
        handle = None
    try:
        if handle is not None:
            with contextlib.suppress(OSError):   # words for a refusal: a full /tmp loses them, not the lock
                handle.seek(0)
                handle.truncate()
                handle.write(f"eegmusic {command} (process {os.getpid()})")
                handle.flush()
        yield
    finally:
        if handle is not None:
            with contextlib.suppress(OSError), handle:
                if _is_current(handle, file):   # never another's: a /tmp cleaner may have removed ours
                    os.unlink(file)   # while still held: a process that opened it before locks it after,
                fcntl.flock(handle, fcntl.LOCK_UN)   # and sees that it is gone


def _is_current(handle, file: Path) -> bool:
    """Whether the open lock file ``handle`` is still the one at ``file`` (not removed or replaced)."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.lstat(file))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def output_locks(paths, command: str) -> Iterator[None]:
    """:func:`output_lock` on each of ``paths`` that is not None, for ``command``, inside the block.

    For the commands that write single files or several outputs (``vocode --out``, ``decode --wav
    --json --record``, ``demo --wav --out``, ``bench --out``): two of them writing one file at once both
    ran to the end, and one result was silently replaced by the other.
    """
    with contextlib.ExitStack() as held:
        taken = set()
        # one lock a file: a second flock of it from this process would refuse the process itself (two
        # options naming one file are the command's own refusal, after this)
        for path in (path for path in paths if path is not None):
            key = _lock_key(path)
            if key not in taken:
                taken.add(key)
                held.enter_context(output_lock(path, command))
        yield


def check_writable(out: Path, flag: str = "--out") -> None:
    """Refuse an ``out`` that cannot be created or written, before any estimate of its size (``flag``: the
    option that names it, in the message).

    A permission check is not enough (:func:`write_probe`): a file is made and removed where the first
    write will go, in ``out`` when it exists, else in its nearest existing parent. A full disk
    is left to :func:`replay.simulate.check_resources`, whose message says how much is needed.

    Raises
    ------
    OutputError
        ``out`` cannot be created, or nothing can be written into it.
    """
    folder = nearest_existing(out)
    error = write_probe(folder)
    if error is not None and error.errno not in DISK_FULL_ERRNOS:
        reason = error.strerror or str(error)
        what = (f"cannot write into {flag} folder {out} ({reason})" if folder == out
                else f"cannot create {flag} folder {out}: {folder} takes no new folder ({reason})")
        raise OutputError(f"{what}; choose another {flag} folder, one you can write to") from None
