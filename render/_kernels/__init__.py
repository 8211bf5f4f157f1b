"""Compiled (numba) CPU kernels behind the render primitives, one module per primitive.

Discrete decisions (coverage, edges) carry no gradient; the differentiable quantities have explicit
forward/backward loops. Compiled code is cached on disk (``cache=True``), so a new process loads it
instead of recompiling. Importing numba is slow: the primitives import these modules lazily.
"""
