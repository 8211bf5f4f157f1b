"""Ending a process without the interpreter's teardown, once its work is safely done.

Tearing down an interpreter that loaded torch, numba and scipy (module clean-up, C++ static
destructors) took 0.4-1.7 s on this project's test machine, for nothing where every file is
already closed. `exit_now` flushes what the process printed and ends it at once; the
``affectsynth`` program (`affectsynth.cli.run`) and the batch engine's fork server
(`affectsynth.worker_preload`) call it from their last exit handler.
"""

from __future__ import annotations

import os
import sys

__all__ = ["exit_now"]


def exit_now(status: int) -> None:
    """Flush stdout and stderr, then end the process with ``status`` (``os._exit``: no further
    exit handlers, no teardown). Only for a process whose files are all closed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed, gone (`| head`), or no stream at all
            pass
    os._exit(status)
