"""Floor to an integer inside numba kernels without a libm call.

numba lowers ``math.floor`` of a float32 to a call of ``floorf``: in a per-pixel loop the call
clobbers every vector register, so the loop spills and reloads its state around it, and the loop
vectoriser cannot handle it. ``int()`` truncates toward zero in one instruction; stepping one
down where that lands above the value is the floor, for every value whose floor fits an int64
(the same range in which ``int(math.floor(v))`` is defined).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["floor_int", "floor_int_f32"]


@njit(cache=True, nogil=True, inline="always")
def floor_int(v):
    """``int(math.floor(v))`` of a float32 or float64 v.

    The comparison runs in float64, where int(v) is exact: |int(v)| < 2^53, or v is already an
    integer-valued float equal to it.
    """
    i = int(v)
    return i - 1 if v < i else i


@njit(cache=True, nogil=True, inline="always")
def floor_int_f32(v):
    """`floor_int` of a float32 v, comparing in float32 (a loop of it vectorises at twice the width).

    float32(int(v)) is exact: either |int(v)| < 2^24, or v is an integer-valued float32 equal to it.
    """
    i = int(v)
    return i - 1 if v < np.float32(i) else i
