"""Scheduling for the live path: real-time priority for the threads that feed the sound device.

On a machine shared with other work, a decode, output or audio-callback thread that waits a few
milliseconds for a core makes the sound device run dry (an underrun). Linux lets a thread run under
``SCHED_FIFO`` when the process may (root, ``CAP_SYS_NICE``, or an ``rtprio`` limit in
``/etc/security/limits.conf``); such a thread preempts every ordinary one the moment it wakes. While
the decoder keeps up, our threads sleep between hops and run for a few milliseconds per hop; a
decode thread that falls behind runs flat out, and Linux keeps 5 % of every second for ordinary
threads regardless.

- :data:`PRIORITIES` is the priority of each role: the audio callback and the threads the sound
  library starts beside it (``sound-host``: PulseAudio's client main loop, ``threaded-ml``, which
  carries our audio to the server) highest, as they must never wait; then the output thread (it
  keeps the device's queue filled), then the stream's acquisition threads (ours and liblsl's), then
  the decode thread. Acquisition's work is bounded by the stream's rate; the decode thread's is not:
  a decoder that falls behind always finds a newer window and never sleeps. Below the decode
  thread, acquisition was starved by it whenever the stream came faster than the decoder (an
  accelerated replay: the fault soak at 120x received 86 297 of 112 500 samples within its 30-s
  drain; above it, all of them at once, the decoder dropping windows instead, as it should).
- :func:`process_threads` lists the process's threads (to find those a library started).
- :func:`raise_priority` moves one thread (the caller, or a thread id) to ``SCHED_FIFO``; where that
  is refused it tries a raised nice value, and where that is refused too it logs one line naming the
  fix, once per process, and the thread runs on at its normal priority.
- :func:`freeze_start_up_objects` moves every object made during start-up out of the garbage
  collector's view, so later collections (which hold the GIL the audio callback needs) stay short.
"""

from __future__ import annotations

import gc
import logging
import os
import threading

log = logging.getLogger(__name__)

PRIORITIES = {"audio-callback": 13, "sound-host": 13, "output": 12, "acquisition": 11, "decode": 10}
"""``SCHED_FIFO`` priority per role (1-99; sound servers' own real-time threads typically use 5-20)."""

NICE_FALLBACK = -10
"""Nice value tried where ``SCHED_FIFO`` is refused (it needs the same permission on most systems)."""

REFUSED_HINT = ("run as root, grant the interpreter CAP_SYS_NICE (setcap cap_sys_nice+ep), or allow your "
                 "user real-time priority (an 'rtprio 20' line in /etc/security/limits.conf) for fewer "
                 "underruns on a busy machine")

_refusal_logged = False
_lock = threading.Lock()


def raise_priority(role: str, thread_id: int | None = None) -> str:
    """Schedule one thread ahead of ordinary work, or say once why it cannot be.

    Parameters
    ----------
    role : str
        A key of :data:`PRIORITIES` (``"audio-callback"``, ``"output"``, ``"decode"``).
    thread_id : int, optional
        The thread's native id (:func:`threading.get_native_id`); the calling thread when None.

    Returns
    -------
    str
        ``"fifo"`` (real-time, priority :data:`PRIORITIES` ``[role]``), ``"nice"`` (nice
        :data:`NICE_FALLBACK`) or ``"normal"`` (both refused; one warning per process says so and how
        to allow it). ``"normal"`` also on systems without ``sched_setscheduler`` (not Linux).
        ``"exited"`` when ``thread_id`` names a thread that has ended since it was listed (a library's
        short-lived helper): nothing to schedule, and no refusal.
    """
    global _refusal_logged
    target = 0 if thread_id is None else int(thread_id)
    try:
        outcome, errors = _raise(role, target)
    except ProcessLookupError:
        if not target:    # this thread cannot have ended
            raise
        # listed, then gone before its turn (a library's helper thread): not a refusal, and no warning
        log.debug("%s thread %s ended before it could be raised", role, thread_id)
        return "exited"
    if outcome is not None:
        return outcome
    with _lock:
        if not _refusal_logged:
            _refusal_logged = True
            log.warning("real-time priority refused for the %s thread (%s); playing at normal priority: %s",
                        role, "; ".join(errors), REFUSED_HINT)
    return "normal"


def _raise(role: str, target: int) -> tuple[str | None, list[str]]:
    """Real time, else nice :data:`NICE_FALLBACK`, for thread ``target`` (0: this one): the outcome, or
    None and why each was refused. ProcessLookupError (the thread has ended) is the caller's to judge."""
    priority = PRIORITIES[role]
    errors = []
    setscheduler = getattr(os, "sched_setscheduler", None)
    if setscheduler is not None:
        try:
            setscheduler(target, os.SCHED_FIFO, os.sched_param(priority))
            log.debug("%s thread %s runs SCHED_FIFO priority %d", role, target or "(this)", priority)
            return "fifo", errors
        except ProcessLookupError:
            raise
        except OSError as error:
            errors.append(f"SCHED_FIFO: {error.strerror or error}")
    try:
        os.setpriority(os.PRIO_PROCESS, target if target else threading.get_native_id(), NICE_FALLBACK)
        log.debug("%s thread %s runs at nice %d", role, target or "(this)", NICE_FALLBACK)
        return "nice", errors
    except ProcessLookupError:
        raise
    except (OSError, AttributeError) as error:
        errors.append(f"nice {NICE_FALLBACK}: {getattr(error, 'strerror', None) or error}")
    return None, errors


_OUTCOME_RANK = {"normal": 0, "nice": 1, "fifo": 2}


def raise_priorities(role: str, thread_ids) -> str | None:
    """:func:`raise_priority` for each of ``thread_ids``; return the weakest outcome among the threads
    still alive (what the role as a whole got: one refused thread is reported, not hidden behind the
    next one's success), or None when every one had ended."""
    outcomes = [raise_priority(role, thread) for thread in sorted(thread_ids)]
    alive = [outcome for outcome in outcomes if outcome != "exited"]
    return min(alive, key=_OUTCOME_RANK.__getitem__) if alive else None


def process_threads() -> set[int]:
    """Native ids of this process's threads (empty where ``/proc`` does not list them)."""
    try:
        return {int(name) for name in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def freeze_start_up_objects() -> int:
    """Collect once, then keep every surviving object out of later garbage collections.

    A full collection walks every tracked object with the GIL held; after importing onnxruntime,
    scipy and librosa that is hundreds of thousands of objects, and the audio callback waits for the
    GIL meanwhile. Objects made after start-up are still collected; :func:`gc.unfreeze` (the
    pipeline calls it when it stops) makes the frozen ones collectable again.

    Returns
    -------
    int
        Objects frozen (:func:`gc.get_freeze_count`).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
