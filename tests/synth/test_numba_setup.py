"""`install_numba_registries`: the engines' numba set-up without the BLAS probe takes nothing away.

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
