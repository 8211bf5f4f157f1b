"""The engines' process set-up: numba's registries without the BLAS probe take nothing away
(`install_numba_registries`), and the fork server's quick exit loses no output (`worker_preload`).

Each case runs in a fresh interpreter: the test process has long installed numba's registries.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    from numba import njit
    from affectsynth.numba_setup import install_numba_registries

    install_numba_registries()
    install_numba_registries()  # once per process: the second call does nothing
    hidden_during_setup = "scipy.linalg" not in sys.modules

    @njit
    def dot(a, b):  # a BLAS call: numba imports scipy.linalg itself when it compiles this
        return np.dot(a, b)

    a = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(dot(a, a.T), a @ a.T)
    import scipy.linalg  # imports normally afterwards: the hiding was undone

    assert scipy.linalg.cho_factor(np.eye(2))[0][0, 0] == 1.0
    print("hidden" if hidden_during_setup else "imported")
''')

ALREADY_IMPORTED = textwrap.dedent('''
    import sys
    import scipy.linalg
    from affectsynth.numba_setup import install_numba_registries

    install_numba_registries()
    import numba.np.arraymath

    assert sys.modules["scipy.linalg"] is scipy.linalg  # a module already imported is left alone
    print("blas" if numba.np.arraymath._HAVE_BLAS else "no blas")
''')


def _run(script: str) -> str:
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_setup_skips_the_probe_and_keeps_blas_and_scipy_usable():
    assert _run(SCRIPT) == "hidden"


def test_setup_leaves_an_imported_scipy_linalg_alone():
    assert _run(ALREADY_IMPORTED) == "blas"


SERVER_EXIT = textwrap.dedent('''
    import atexit, sys
    atexit.register(print, "an earlier exit handler ran")
    import affectsynth.worker_preload  # what the fork server imports last
    sys.stdout.write("buffered, no newline")
    sys.exit(0)
''')


def test_fork_server_exit_flushes_and_skips_the_teardown():
    """The fork server's exit: its buffered output still comes out, status 0, and nothing after
    (the earlier exit handlers and the interpreter's teardown are skipped)."""
    proc = subprocess.run([sys.executable, "-c", SERVER_EXIT], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "buffered, no newline"


GC_PAUSE = textwrap.dedent('''
    import gc, weakref
    from affectsynth.gc_pause import collections_paused

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    with collections_paused(permanent=False):
        assert not gc.isenabled()
        dead = cycle()
    assert gc.isenabled() and gc.get_freeze_count() == 0  # nothing stays frozen
    gc.collect()
    assert dead() is None  # a cycle made in the block is still collected

    gc.disable()
    with collections_paused(permanent=False):
        pass
    assert not gc.isenabled()  # the collector's state is restored, not forced on
    gc.enable()

    with collections_paused(permanent=True):
        kept = cycle()
    frozen = gc.get_freeze_count()
    assert gc.isenabled() and frozen > 0
    gc.collect()
    assert kept() is not None  # frozen: never collected

    with collections_paused(permanent=False):  # something is frozen: runs as it is, thaws nothing
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    print("ok")
''')


def test_collections_paused_files_objects_without_losing_or_thawing_any():
    assert _run(GC_PAUSE) == "ok"


SERVER_PRELOAD = textwrap.dedent('''
    import gc, sys
    import affectsynth.worker_preload
    assert {"torch", "numba", "affectsynth.batch", "affectsynth.synthesizer"} <= set(sys.modules)
    assert "scipy.linalg" not in sys.modules  # the registries were installed without the BLAS probe
    assert gc.isenabled() and gc.get_freeze_count() > 100000  # the imports' objects frozen for the workers

    def walks_the_frozen_objects():
        raise AssertionError("a forked worker asked for the freeze count (a walk over a million objects)")

    gc.get_freeze_count = walks_the_frozen_objects
    from affectsynth.batch import _import_engine
    _import_engine()  # what a forked worker's set-up calls: returns at once, the engine is imported
    print("ok")
''')


def test_fork_server_preload_imports_the_engine_with_its_objects_frozen():
    assert _run(SERVER_PRELOAD) == "ok"
