"""What the batch engine's fork server does, once, for every worker it forks, and how it exits.

Importing this module is the action: it is the fork server's preload (`affectsynth.pool.WORKER_PRELOAD`),
and it

- imports the engine's modules (:data:`ENGINE_MODULES`: the batch engine's worker functions and
  everything the Synthesizer imports: torch, numba, scipy) and installs numba's registries
  (`affectsynth.numba_setup.install_numba_registries`), so that no worker pays those on its way to
  its first output. Only work that starts no thread and loads no model belongs here (see
  `affectsynth.pool`);
- does all that with the garbage collector paused, then freezes what it created
  (`affectsynth.gc_pause.collections_paused`): collecting while the imports' objects accumulate cost
  0.28-0.35 s of CPU, a quarter of the preload, and frozen objects are never scanned again, in the
  server or in the workers it forks (which also keeps their pages shared);
- makes the server's own exit immediate (`affectsynth.quick_exit.exit_now`, status 0, as its last
  exit handler, which runs first): at the end of a run the main process waits for the server to
  exit, and the interpreter's teardown of torch, numba and scipy took 0.4-0.9 s on this
  project's test machine, added to every run with workers. The server holds nothing to save: no
  files, no child processes of its own (its workers are the main process's pool's; they end with
  ``os._exit`` and never run exit handlers).

Nothing but the fork server imports it.
"""

from __future__ import annotations

import atexit
import importlib

from affectsynth.gc_pause import collections_paused
from affectsynth.numba_setup import install_numba_registries
from affectsynth.quick_exit import exit_now

__all__ = ["ENGINE_MODULES"]

#: The modules every worker needs, imported here once for all of them.
ENGINE_MODULES = ("affectsynth.batch", "affectsynth.synthesizer")


with collections_paused(permanent=True):
    for _name in ENGINE_MODULES:
        importlib.import_module(_name)
    install_numba_registries()
atexit.register(exit_now, 0)
