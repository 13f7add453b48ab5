"""Keep LSL discovery on this machine: ``eegmusic --lsl-local ...`` or ``EEGMUSIC_LSL_LOCAL=1``.

By default liblsl answers discovery queries from the whole LAN, so anyone on the network can find
and subscribe to ``decode``'s MelSpectrogram stream, a replay's EEG or ``calibrate``'s markers. This
module writes a liblsl configuration file and points ``LSLAPICFG`` at it *before* pylsl loads:

- ``ResolveScope = machine``: queries and answers stay on this host (other hosts cannot find the
  streams; this process finds only local ones);
- ``ListenAddress = 127.0.0.1``: the multicast responder binds the loopback interface only;
- ``KnownPeers = {127.0.0.1}``, ``IPv6 = disable``.

What it does not do (checked with ``ss -ltnup`` on liblsl 1.18): liblsl still binds each outlet's
TCP data port (16572-16603) and its UDP time service on all interfaces. A host that already knows
this machine's address and port can connect. For that, block the ports at the firewall or pass
``--no-lsl-out``.

A ``LSLAPICFG`` set by the user is kept (their configuration wins) and logged; with ``--lsl-local``, a
warning says so when that file does not itself keep discovery on this machine (``ResolveScope =
machine``), and how to make it.

liblsl also logs its own ``INFO|`` lines to stderr (the configuration it loaded, its build), which
broke ``-q`` and made every one-line error two or three lines. :func:`configure` sets liblsl's log
level from ``-v``/``-q`` in the same file; without ``--lsl-local`` it writes a file holding only that
level, and only when the user has no liblsl configuration of their own (``LSLAPICFG``, ``lsl_api.cfg``
in the working folder, ``~/lsl_api/lsl_api.cfg`` or ``/etc/lsl_api/lsl_api.cfg``, liblsl's search
order): pointing ``LSLAPICFG`` anywhere would hide theirs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_FLAG = "EEGMUSIC_LSL_LOCAL"
"""Environment variable that turns the local-only configuration on (``1``, ``true``, ``yes``)."""

LOCAL_CONFIG = """\
; written by eegmusic --lsl-local: LSL discovery stays on this machine
[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
ListenAddress = 127.0.0.1
[lab]
KnownPeers = {127.0.0.1}
"""


def requested(flag: bool = False) -> bool:
    """Whether the local-only configuration is asked for (by ``--lsl-local`` or :data:`ENV_FLAG`).

    A value of :data:`ENV_FLAG` that is neither yes nor no is said in a warning and read as no: a
    privacy setting mistyped should not pass unseen.
    """
    value = os.environ.get(ENV_FLAG, "").strip().lower()
    if value and value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        logger.warning("%s=%s is neither yes nor no (1/true/yes/on, 0/false/no/off); LSL discovery is not "
                       "kept on this machine unless --lsl-local is given", ENV_FLAG, os.environ[ENV_FLAG])
    return flag or value in ("1", "true", "yes", "on")


USER_CONFIGS = ("lsl_api.cfg", "~/lsl_api/lsl_api.cfg", "/etc/lsl_api/lsl_api.cfg")
"""Where liblsl looks for a configuration when ``LSLAPICFG`` is not set, in its order."""


def keeps_discovery_local(path: str | Path) -> bool:
    """Whether the liblsl configuration at ``path`` sets ``ResolveScope = machine`` in its ``[multicast]``
    section (False when it cannot be read: liblsl would then run on its defaults, which answer the whole
    LAN)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return False
    section = ""
    for line in text.splitlines():
        line = line.split(";", 1)[0].split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        key, _, value = line.partition("=")
        setting = (section, key.strip().lower(), value.strip().lower())
        if setting == ("multicast", "resolvescope", "machine"):   # liblsl reads it in [multicast] only
            return True
    return False


def liblsl_log_level(verbose: int, quiet: int) -> int:
    """liblsl's (loguru's) verbosity for eegmusic's ``-v``/``-q``: info only with ``-v``,
    errors only with ``-qq``, else warnings."""
    return 0 if verbose > quiet else -2 if quiet >= 2 else -1


def configure(local: bool = False, log_level: int = -1) -> Path | None:
    """Write and point ``LSLAPICFG`` at a liblsl configuration; return the file (None when not applied).

    ``local`` adds :data:`LOCAL_CONFIG`; ``log_level`` is liblsl's ``[log] level``. Must run before
    pylsl is first imported in this process (liblsl reads its configuration once). Child processes
    inherit ``LSLAPICFG``.
    """
    theirs = os.environ.get("LSLAPICFG")
    if theirs and not Path(theirs).expanduser().is_file():
        # liblsl ignores such a variable with two ERR lines and runs on its defaults (discovery across the
        # LAN, its INFO lines): this process writes its own configuration instead, and says why
        # quoted as Python writes it: a value with a line break in it spread the warning over two lines
        logger.warning("LSLAPICFG names %r, which is no file, so liblsl would ignore it; eegmusic's own "
                       "liblsl configuration is used instead (fix the path, or unset LSLAPICFG)", theirs)
        del os.environ["LSLAPICFG"]
    if os.environ.get("LSLAPICFG"):
        if local:
            theirs = os.environ["LSLAPICFG"]
            if keeps_discovery_local(theirs):
                logger.info("LSLAPICFG is already set (%s) and keeps discovery on this machine; --lsl-local "
                            "leaves it as it is", theirs)
            else:   # a privacy request that would otherwise be dropped without a word under -q's default
                logger.warning("LSLAPICFG is set (%s) and --lsl-local leaves it as it is, but it does not "
                               "keep LSL discovery on this machine: add 'ResolveScope = machine' under "
                               "[multicast] in it, or unset LSLAPICFG", theirs)
        return None
    if not local and any(Path(name).expanduser().is_file() for name in USER_CONFIGS):
        return None  # the user's own file: a file of ours would hide it
    if "pylsl" in sys.modules:
        if local:
            logger.warning("pylsl is already loaded; --lsl-local cannot change its configuration now")
        return None
    kind = "local" if local else "default"
    from eegmusic.stream.atomic import temporary_folder, write_text
    from eegmusic.stream.errors import ConfigError, EEGMusicError

    folder = temporary_folder()
    if folder is None:   # no writable /tmp: Python's fallback, the working folder, would collect our file
        if local:
            raise ConfigError("--lsl-local writes liblsl's configuration to the temporary folder, and none "
                              "is writable (TMPDIR, /tmp, /var/tmp); set TMPDIR to a folder you can write")
        logger.debug("no writable temporary folder: liblsl keeps its own log level")
        return None
    # one file per user and content, rewritten each time: no temporary file left per run
    path = folder / f"eegmusic-lsl-{kind}-{log_level:+d}-{os.getuid()}.cfg"
    heading = LOCAL_CONFIG if local else "; written by eegmusic: liblsl's own log level, nothing else\n"
    try:
        write_text(path, f"{heading}[log]\nlevel = {log_level}\n")
    except EEGMusicError as error:   # e.g. a folder of that name, made by another user of the machine
        if local:
            raise ConfigError(f"--lsl-local cannot write liblsl's configuration {path} ({error}); set TMPDIR "
                              "to a folder of your own") from None
        logger.debug("liblsl keeps its own log level: %s", error)
        return None
    os.environ["LSLAPICFG"] = str(path)
    if local:
        logger.info("LSL discovery kept on this machine (liblsl configuration %s)", path)
    return path
