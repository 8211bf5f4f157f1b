"""Visibility kernel: which triangle covers each pixel (z-buffered triangle ids).

The depth test min-reduces one 64-bit key per pixel, (z/w quantised to 2^-30 << 32) | triangle
index: one branch-free load/min/store per candidate pixel, ties to the lower triangle index by
construction. `render._reference.visibility_reference` applies the same depth quantisation. A
triangle whose bounding box already holds nearer depths everywhere is skipped (`_hidden`, an early
depth test exact by construction): a surface hidden behind one drawn earlier costs a key scan, not a raster.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["rasterize_ids", "DEPTH_SCALE", "DEPTH_MAX"]

DEPTH_SCALE = 1073741824.0  # 2^30: (z/w + 1) in [0, 2] -> [0, 2^31]
DEPTH_MAX = 2147483647.0  # 2^31 - 1
KEY_EMPTY = np.int64(0x7FFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True, error_model="numpy")
def _project_vertices(pos, pb, height, width, sx, sy, sz):
    """Screen-space x, y (pixels) and z/w per vertex; NaN marks w <= 0.

    The vertices are read as one flat run of (x, y, z, w): indexing pos[pb, i, k] strides by
    pos.shape[2], a run-time value to LLVM, which then vectorises only for a stride of 1; with
    the constant stride 4 the loop (3 divisions per vertex) runs 8 vertices at a time.
    """
    hw = 0.5 * width
    hh = 0.5 * height
    p = np.ascontiguousarray(pos[pb]).reshape(-1)
    for i in range(sx.shape[0]):
        w = np.float64(p[4 * i + 3])
        if w > 0.0:
            sx[i] = (p[4 * i] / w + 1.0) * hw
            sy[i] = (p[4 * i + 1] / w + 1.0) * hh
            sz[i] = p[4 * i + 2] / w
        else:
            sx[i] = np.nan
            sy[i] = np.nan
            sz[i] = np.nan


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _hidden(z0, z1, z2, area, extent, r0, r1, j0, j1, width, key):
    """Early depth test: whether every pixel of the bounding box rows [r0, r1] x columns [j0, j1]
    already holds a depth nearer than any this triangle can reach, so drawing it would change no key.

    Inside the triangle z/w is a convex combination of the corners' z0, z1, z2, so not below their
    minimum but for rounding: the barycentrics' float error is below 1e-15 extent^2 / |area| (the edge
    functions are products of differences of at most `extent` + 1 pixels), z's below that times
    (1 + max |z_k|); the bound subtracts 10x that and 4 depth steps, then quantises as the keys.
    Only keys with a strictly smaller depth part count: the result is exactly that of drawing it.
    """
    e = extent + 1.0
    zmax_abs = max(abs(z0), max(abs(z1), abs(z2)))
    zlo = min(z0, min(z1, z2)) - 1e-14 * e * e * (1.0 + zmax_abs) / abs(area) - 4.0 / DEPTH_SCALE
    bound = np.int64(min(max((zlo + 1.0) * DEPTH_SCALE, 0.0), DEPTH_MAX)) << 32
    for r in range(r0, r1 + 1):
        row = r * width
        for j in range(j0, j1 + 1):
            if key[row + j] >= bound:
                return False
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def _depth_keys(sx, sy, sz, tri, t_begin, t_end, height, width, key):
    """Min-reduce (quantised z/w, triangle index) keys of triangles [t_begin, t_end) into key [H * W]."""
    for t in range(t_begin, t_end):
        i0 = tri[t, 0]
        i1 = tri[t, 1]
        i2 = tri[t, 2]
        x0 = sx[i0]
        y0 = sy[i0]
        x1 = sx[i1]
        y1 = sy[i1]
        x2 = sx[i2]
        y2 = sy[i2]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        # NaN (w <= 0) and infinite areas fail this test.
        if not (area != 0.0 and abs(area) < 1e300):
            continue
        xmin = min(x0, min(x1, x2))
        xmax = max(x0, max(x1, x2))
        ymin = min(y0, min(y1, y2))
        ymax = max(y0, max(y1, y2))
        if xmax < 0.0 or ymax < 0.0 or xmin > width or ymin > height:
            continue
        j0 = max(0, int(math.ceil(xmin - 0.5)))
        j1 = min(width - 1, int(math.floor(xmax - 0.5)))
        r0 = max(0, int(math.ceil(ymin - 0.5)))
        r1 = min(height - 1, int(math.floor(ymax - 0.5)))
        if j0 > j1 or r0 > r1:
            continue
        z0 = sz[i0]
        z1 = sz[i1]
        z2 = sz[i2]
        if _hidden(z0, z1, z2, area, max(xmax - xmin, ymax - ymin), r0, r1, j0, j1, width, key):
            continue
        inv = 1.0 / area
        sgn = 1.0 if area > 0.0 else -1.0  # exact negation keeps shared edges watertight
        for r in range(r0, r1 + 1):
            py = r + 0.5
            row = r * width
            for j in range(j0, j1 + 1):
                px = j + 0.5
                e0 = (x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)
                e1 = (x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)
                e2 = (x0 - px) * (y1 - py) - (x1 - px) * (y0 - py)
                z = (e0 * z0 + e1 * z1 + e2 * z2) * inv
                ok = (sgn * e0 >= 0.0) & (sgn * e1 >= 0.0) & (sgn * e2 >= 0.0) & (z >= -1.0) & (z <= 1.0)
                k = (np.int64(min((z + 1.0) * DEPTH_SCALE, DEPTH_MAX)) << 32) | t
                k = k if ok else KEY_EMPTY
                key[row + j] = min(key[row + j], k)


@njit(cache=True, nogil=True, error_model="numpy")
def rasterize_ids(pos, tri, pos_index, tri_start, tri_count, height, width, ids, key):
    """Z-buffer rasterization of triangle ids.

    Args:
        pos: [Bp, V, 4] float32/float64 clip-space positions.
        tri: [T, 3] int32 vertex indices (validated by the caller; T < 2^31).
        pos_index: [B] int64, which pos batch each output image uses.
        tri_start: [B] int64, first triangle of each output image.
        tri_count: [B] int64, number of triangles of each output image.
        height: raster height H.
        width: raster width W.
        ids: [B, H, W] int32 output; receives triangle_id + 1 (0 = empty).
        key: [H * W] int64 scratch (contents ignored).

    A pixel (row i, col j) with centre (j + 0.5, i + 0.5) is covered when its three edge
    functions have the sign of the triangle's area (edges inclusive, so shared edges leave no
    holes), all three vertices have w > 0 (triangles crossing the w = 0 plane are dropped) and
    -1 <= z/w <= 1. The nearest z/w, quantised to steps of 2^-30, wins; ties keep the lower
    triangle id.
    """
    nb = ids.shape[0]
    nv = pos.shape[1]
    sx = np.empty(nv)
    sy = np.empty(nv)
    sz = np.empty(nv)
    last_pb = -1
    for b in range(nb):
        pb = pos_index[b]
        if pb != last_pb:
            _project_vertices(pos, pb, height, width, sx, sy, sz)
            last_pb = pb
        key[:] = KEY_EMPTY
        _depth_keys(sx, sy, sz, tri, tri_start[b], tri_start[b] + tri_count[b], height, width, key)
        for r in range(height):
            # per-row views indexed from 0: no negative-index wrap, so the loop vectorises
            krow = key[r * width : (r + 1) * width]
            orow = ids[b, r]
            for j in range(width):
                k = krow[j]
                orow[j] = 0 if k == KEY_EMPTY else np.int32(k & 0xFFFFFFFF) + 1
