"""One piece of work started in a thread of its own, for a caller that goes on meanwhile.

Used where a slow wait overlaps another: ``stream.resolve`` listens for a same-named stream while it
opens the first, and a decode's start (``decoder.pipeline``) builds its vocoder and opens its marker
stream while the EEG stream opens and the stimuli are read.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


def in_a_thread(work: Callable[[], object], name: str) -> Future:
    """``work()`` started now in a thread of its own, which ends with it; the future holds what it returns
    or raises. Nothing waits for the thread but the future's reader: a caller stopped by Ctrl-C does not
    wait the work out."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        return pool.submit(work)
    finally:
        pool.shutdown(wait=False)
