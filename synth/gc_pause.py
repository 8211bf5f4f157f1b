"""Heavy imports with the garbage collector paused: their long-lived objects skip the young generations.

Importing the engine's modules (torch, numba, scipy) allocates about a million objects that live as
long as the process. Collecting while they accumulate rescans them again and again: four full
collections and ~500 young ones, 0.28-0.35 s of CPU on this project's test machine, a quarter of
the imports, on the way to every run's first output. `collections_paused` runs such a block with
the collector off, then files what it allocated where a collection would have moved it in the end
anyway (the permanent or the oldest generation), without scanning it on the way.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator

__all__ = ["collections_paused"]


@contextlib.contextmanager
def collections_paused(*, permanent: bool) -> Iterator[None]:
    """Run the block with the garbage collector off, then restore the collector's state.

    Args:
        permanent: True: afterwards every object tracked so far moves to the permanent generation
            (``gc.freeze``) and is never scanned again, in this process or in the processes it
            forks (Python's documentation recommends freezing before ``fork``: a collection writes
            to every object it scans, which unshares the child's pages). Garbage cycles made so far
            are never freed: only for a process whose objects live as long as it does (the fork
            server). False: the block's objects join the oldest generation (``gc.freeze`` then
            ``gc.unfreeze``) and are collected from there as usual; where something is already
            frozen (a worker forked from a frozen server, a program that froze its own objects),
            unfreezing would thaw those too, so the block then runs with the collector as it was.
            Finding that out walks the frozen objects (``gc.get_freeze_count``: ~30 ms for a fork
            server's million): enter it only where the heavy work is still to do.
    """
    if not permanent and gc.get_freeze_count():
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if not permanent:
            gc.unfreeze()
        if enabled:
            gc.enable()
