"""Mesh kernels: area-weighted vertex normals in one pass over the triangles."""

from __future__ import annotations

import math

from numba import njit

__all__ = ["triangle_normal", "vertex_normals_fwd"]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def triangle_normal(vertices, i0, i1, i2):
    """(nx, ny, nz): the cross product (v1 - v0) x (v2 - v0) of the triangle (i0, i1, i2) of
    `vertices` [V, 3], twice its area times its unit normal, in the vertices' float type."""
    ax = vertices[i1, 0] - vertices[i0, 0]
    ay = vertices[i1, 1] - vertices[i0, 1]
    az = vertices[i1, 2] - vertices[i0, 2]
    bx = vertices[i2, 0] - vertices[i0, 0]
    by = vertices[i2, 1] - vertices[i0, 1]
    bz = vertices[i2, 2] - vertices[i0, 2]
    return ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx


@njit(cache=True, nogil=True, error_model="numpy")
def vertex_normals_fwd(vertices, tri, out):
    """Unit area-weighted normals of `vertices` [V, 3] over `tri` [T, 3] into out [V, 3] (zero-filled).

    Accumulates corner 0 of every triangle, then corner 1, then corner 2 (the order of the torch
    path's three index_add_ calls), so both sum in the same order.
    """
    for k in range(3):
        for t in range(tri.shape[0]):
            nx, ny, nz = triangle_normal(vertices, tri[t, 0], tri[t, 1], tri[t, 2])
            i = tri[t, k]
            out[i, 0] += nx
            out[i, 1] += ny
            out[i, 2] += nz
    for i in range(out.shape[0]):
        n = math.sqrt(out[i, 0] * out[i, 0] + out[i, 1] * out[i, 1] + out[i, 2] * out[i, 2])
        n = max(n, 1e-12)
        out[i, 0] /= n
        out[i, 1] /= n
        out[i, 2] /= n
