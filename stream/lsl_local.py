"""Keep LSL discovery on this machine: ``eegmusic --lsl-local ...`` or ``EEGMUSIC_LSL_LOCAL=1``.

By default liblsl answers discovery queries from the whole LAN, so anyone on the network can find
and subscribe to ``decode``'s MelSpectrogram stream, a replay's EEG or ``calibrate``'s markers. This
module writes a liblsl configuration file and points ``LSLAPICFG`` at it *before* pylsl loads:

- ``ResolveScope = machine``: queries and answers stay on this host (other hosts cannot find the
  streams; this process finds only local ones);
- ``ListenAddress = 127.0.0.1``: the multicast responder binds the loopback interface only;
- ``KnownPeers = {127.0.0.1}``, ``IPv6 = disable``.

What it does not do (checked with ``ss -ltnup`` on liblsl 1.18): liblsl still binds each outlet's
TCP data port (16572-16604) and its UDP time service on all interfaces. A host that already knows
this machine's address and port can connect. For that, block the ports at the firewall or pass
``--no-lsl-out``.

A ``LSLAPICFG`` set by the user is kept (their configuration wins) and logged.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
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
    """Whether the local-only configuration is asked for (by ``--lsl-local`` or :data:`ENV_FLAG`)."""
    return flag or os.environ.get(ENV_FLAG, "").strip().lower() in ("1", "true", "yes", "on")


def use_local_lsl() -> Path | None:
    """Point liblsl at :data:`LOCAL_CONFIG`; return the file written (None when not applied).

    Must run before pylsl is first imported in this process (liblsl reads its configuration once).
    Child processes inherit ``LSLAPICFG``.
    """
    if os.environ.get("LSLAPICFG"):
        logger.info("LSLAPICFG is already set (%s); --lsl-local leaves it as it is", os.environ["LSLAPICFG"])
        return None
    if "pylsl" in sys.modules:
        logger.warning("pylsl is already loaded; --lsl-local cannot change its configuration now")
        return None
    # one file per user, rewritten each time (same content): no temporary file left per run
    path = Path(tempfile.gettempdir()) / f"eegmusic-lsl-local-{os.getuid()}.cfg"
    from eegmusic.stream.atomic import write_text

    write_text(path, LOCAL_CONFIG)
    os.environ["LSLAPICFG"] = str(path)
    logger.info("LSL discovery kept on this machine (liblsl configuration %s)", path)
    return path
