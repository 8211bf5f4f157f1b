"""What the batch engine's fork server does, once, for every worker it forks, and how it exits.

Importing this module is the action: the fork server runs its preload list
(`affectsynth.pool.WORKER_PRELOAD`) as imports, and this entry, after the Synthesizer's modules:

- installs numba's registries (`affectsynth.numba_setup.install_numba_registries`), so that no
  worker pays that on its way to its first output. Only work that starts no thread and loads no
  model belongs here (see `affectsynth.pool`);
- makes the server's own exit immediate (`exit_without_teardown`): at the end of a run the main
  process waits for the server to exit, and the interpreter's teardown of torch, numba and
  scipy took 0.4-0.9 s on this project's test machine, added to every run with workers.

Nothing but the fork server imports it.
"""

from __future__ import annotations

import atexit
import os
import sys

from affectsynth.numba_setup import install_numba_registries

__all__ = ["exit_without_teardown"]


def exit_without_teardown() -> None:
    """Flush stdout and stderr and end the process now, status 0, skipping the interpreter's
    teardown (module clean-up, C++ static destructors) and the exit handlers registered before.

    Registered by this module as the fork server's last exit handler, which runs first. The
    server holds nothing to save: no files, no child processes of its own (its workers are the
    main process's pool's; they end with ``os._exit`` and never run exit handlers).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed, or no stream at all
            pass
    os._exit(0)


install_numba_registries()
atexit.register(exit_without_teardown)
