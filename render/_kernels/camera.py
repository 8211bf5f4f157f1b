"""Camera kernels: the pinhole projection of a point array in one pass."""

from __future__ import annotations

from numba import njit

__all__ = ["project_pinhole"]


@njit(cache=True, nogil=True, error_model="numpy")
def project_pinhole(points, f, c, out):
    """``out[i] = points[i, :2] / points[i, 2] * f + c`` for `points` [N, 3] into out [N, 2].

    The torch formula's operations in its order (divide, multiply, add), each rounded in the
    points' float type, so both give the same bits; z = 0 gives inf / nan as torch does.
    """
    for i in range(points.shape[0]):
        z = points[i, 2]
        out[i, 0] = points[i, 0] / z * f[0] + c[0]
        out[i, 1] = points[i, 1] / z * f[1] + c[1]
