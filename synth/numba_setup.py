"""Numba's one-time set-up in an engine process, done up front and without its BLAS probe.

The first numba dispatch in a process (a kernel call, or loading one from the disk cache) first
installs numba's lowering registries (``BaseContext.refresh`` on the CPU target): about 0.35-0.45 s
of CPU on this project's test machine, on the way to every worker's first output. Of that, about
0.1-0.15 s is one import: ``numba.np.arraymath`` probes for a BLAS at import time by importing
``scipy.linalg`` (85 modules), only to decide whether ``np.correlate``/``np.convolve`` may call it.
No affectsynth kernel uses BLAS (``np.dot``, ``np.linalg``, ``@``), and a kernel that did would
still get it: numba imports ``scipy.linalg`` itself when it compiles such a call.

`install_numba_registries` installs the registries with ``scipy.linalg`` hidden from that probe
(only while it runs, and only where nothing imported ``scipy.linalg`` yet). The engines call it
where they build their Synthesizer (`affectsynth.batch.make_synthesizer`), and the fork server
calls it once for all its workers (`affectsynth.worker_preload`): registries are plain Python
objects and LLVM's target set-up starts no thread, so a worker forked afterwards is as fresh as
one that did it itself. Outputs do not change: the kernels are the same cached machine code.

Library users who import affectsynth into their own programs are never affected: only the engines
call this.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

__all__ = ["install_numba_registries"]

_STATE = {"installed": False}


@contextlib.contextmanager
def _scipy_linalg_hidden() -> Iterator[None]:
    """Make ``import scipy.linalg`` raise ImportError inside the block (a ``None`` entry in
    ``sys.modules``), unless it is already imported; afterwards it imports normally."""
    if "scipy.linalg" in sys.modules:
        yield
        return
    sys.modules["scipy.linalg"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if "scipy.linalg" in sys.modules and sys.modules["scipy.linalg"] is None:
            del sys.modules["scipy.linalg"]


def install_numba_registries() -> None:
    """Install numba's CPU lowering registries now (once per process; later calls return at once),
    skipping the BLAS probe's ``scipy.linalg`` import (see the module docstring).

    If hiding ``scipy.linalg`` breaks the set-up (a numba release that needs it elsewhere), it is
    redone the ordinary way: this only ever saves time, it never changes what numba can do.
    """
    if _STATE["installed"]:
        return
    from numba.core.registry import cpu_target

    try:
        with _scipy_linalg_hidden():
            cpu_target.target_context.refresh()
    except ImportError:
        cpu_target.target_context.refresh()
    _STATE["installed"] = True
