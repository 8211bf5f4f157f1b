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
