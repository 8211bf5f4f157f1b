"""What the batch engine's fork server does, once, for every worker it forks, and how it exits.

Importing this module is the action: the fork server runs its preload list
(`affectsynth.pool.WORKER_PRELOAD`) as imports, and this entry, after the Synthesizer's modules:

- installs numba's registries (`affectsynth.numba_setup.install_numba_registries`), so that no
  worker pays that on its way to its first output. Only work that starts no thread and loads no
  model belongs here (see `affectsynth.pool`);
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

from affectsynth.numba_setup import install_numba_registries
from affectsynth.quick_exit import exit_now

install_numba_registries()
atexit.register(exit_now, 0)
