"""What the batch engine's fork server does, once, for every worker it forks.

Importing this module is the action: the fork server runs its preload list
(`affectsynth.pool.WORKER_PRELOAD`) as imports, and this entry, after the Synthesizer's modules,
installs numba's registries (`affectsynth.numba_setup.install_numba_registries`), so that no
worker pays that on its way to its first output. Only work that starts no thread and loads no
model belongs here (see `affectsynth.pool`). Nothing but the fork server imports it.
"""

from __future__ import annotations

from affectsynth.numba_setup import install_numba_registries

install_numba_registries()
