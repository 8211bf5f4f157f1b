"""Barycentrics kernels: perspective-correct (u, v, z/w) and pixel derivatives per covered pixel, and
their hand-written adjoint. Homogeneous formulation; see `render.rasterize.barycentrics_from_ids` for
the formulas (these loops are its compiled equivalent).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["rast_fill", "rast_grad"]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _pixel_edges(pos, pb, i0, i1, i2, nx, ny):
    """Homogeneous edge functions of a triangle at NDC pixel centre (nx, ny), in float64.

    Returns (w0, w1, w2, hx0, hx1, hx2, hy0, hy1, hy2, e0, e1, e2) with hx_k = x_k - nx w_k,
    hy_k = y_k - ny w_k and e_k the 2D cross products of the other two corners' (hx, hy):
    e_k / (e0 + e1 + e2) is vertex k's perspective-correct barycentric.
    """
    w0 = np.float64(pos[pb, i0, 3])
    w1 = np.float64(pos[pb, i1, 3])
    w2 = np.float64(pos[pb, i2, 3])
    hx0 = pos[pb, i0, 0] - nx * w0
    hx1 = pos[pb, i1, 0] - nx * w1
    hx2 = pos[pb, i2, 0] - nx * w2
    hy0 = pos[pb, i0, 1] - ny * w0
    hy1 = pos[pb, i1, 1] - ny * w1
    hy2 = pos[pb, i2, 1] - ny * w2
    e0 = hx1 * hy2 - hy1 * hx2
    e1 = hx2 * hy0 - hy2 * hx0
    e2 = hx0 * hy1 - hy0 * hx1
    return w0, w1, w2, hx0, hx1, hx2, hy0, hy1, hy2, e0, e1, e2


@njit(cache=True, nogil=True, error_model="numpy")
def rast_fill(pos, tri, pos_index, ids, rast, rast_db, want_db):
    """Fill rast [B, H, W, 4] (and rast_db when want_db) from ids; empty pixels get zeros."""
    nb, height, width = ids.shape
    sx = 2.0 / width
    sy = 2.0 / height
    for b in range(nb):
        pb = pos_index[b]
        for r in range(height):
            ny = (r + 0.5) * sy - 1.0
            for c in range(width):
                t = ids[b, r, c] - 1
                if t < 0:
                    for k in range(4):
                        rast[b, r, c, k] = 0.0
                    if want_db:
                        for k in range(4):
                            rast_db[b, r, c, k] = 0.0
                    continue
                i0 = tri[t, 0]
                i1 = tri[t, 1]
                i2 = tri[t, 2]
                nx = (c + 0.5) * sx - 1.0
                w0, w1, w2, hx0, hx1, hx2, hy0, hy1, hy2, e0, e1, e2 = _pixel_edges(pos, pb, i0, i1, i2, nx, ny)
                inv = 1.0 / (e0 + e1 + e2)
                rast[b, r, c, 0] = e0 * inv
                rast[b, r, c, 1] = e1 * inv
                num = e0 * pos[pb, i0, 2] + e1 * pos[pb, i1, 2] + e2 * pos[pb, i2, 2]
                rast[b, r, c, 2] = num / (e0 * w0 + e1 * w1 + e2 * w2)
                rast[b, r, c, 3] = t + 1
                if want_db:
                    # d(e_k / S) = (de_k - (e_k / S) dS) / S with dS = sum_k de_k.
                    u = e0 * inv
                    v = e1 * inv
                    g0x = hy1 * w2 - w1 * hy2
                    g1x = hy2 * w0 - w2 * hy0
                    g2x = hy0 * w1 - w0 * hy1
                    g0y = w1 * hx2 - hx1 * w2
                    g1y = w2 * hx0 - hx2 * w0
                    g2y = w0 * hx1 - hx0 * w1
                    gsx = g0x + g1x + g2x
                    gsy = g0y + g1y + g2y
                    rast_db[b, r, c, 0] = (g0x - u * gsx) * inv * sx
                    rast_db[b, r, c, 1] = (g0y - u * gsy) * inv * sy
                    rast_db[b, r, c, 2] = (g1x - v * gsx) * inv * sx
                    rast_db[b, r, c, 3] = (g1y - v * gsy) * inv * sy


@njit(cache=True, nogil=True, error_model="numpy")
def rast_grad(pos, tri, pos_index, ids, grad_rast, grad_pos):
    """Accumulate dL/dpos ([Bp, V, 4], zero-filled) from dL/drast's (u, v, z/w) channels."""
    nb, height, width = ids.shape
    sx = 2.0 / width
    sy = 2.0 / height
    for b in range(nb):
        pb = pos_index[b]
        for r in range(height):
            ny = (r + 0.5) * sy - 1.0
            for c in range(width):
                t = ids[b, r, c] - 1
                if t < 0:
                    continue
                gu = np.float64(grad_rast[b, r, c, 0])
                gv = np.float64(grad_rast[b, r, c, 1])
                gz = np.float64(grad_rast[b, r, c, 2])
                if gu == 0.0 and gv == 0.0 and gz == 0.0:
                    continue
                i0 = tri[t, 0]
                i1 = tri[t, 1]
                i2 = tri[t, 2]
                nx = (c + 0.5) * sx - 1.0
                z0 = np.float64(pos[pb, i0, 2])
                z1 = np.float64(pos[pb, i1, 2])
                z2 = np.float64(pos[pb, i2, 2])
                w0, w1, w2, hx0, hx1, hx2, hy0, hy1, hy2, e0, e1, e2 = _pixel_edges(pos, pb, i0, i1, i2, nx, ny)
                s = e0 + e1 + e2
                u = e0 / s
                v = e1 / s
                den = e0 * w0 + e1 * w1 + e2 * w2
                zw = (e0 * z0 + e1 * z1 + e2 * z2) / den
                tt = gu * u + gv * v
                ge0 = (gu - tt) / s + gz * (z0 - zw * w0) / den
                ge1 = (gv - tt) / s + gz * (z1 - zw * w1) / den
                ge2 = (-tt) / s + gz * (z2 - zw * w2) / den
                # e0 = hx1 hy2 - hy1 hx2 ; e1 = hx2 hy0 - hy2 hx0 ; e2 = hx0 hy1 - hy0 hx1
                ghx0 = ge2 * hy1 - ge1 * hy2
                ghx1 = ge0 * hy2 - ge2 * hy0
                ghx2 = ge1 * hy0 - ge0 * hy1
                ghy0 = ge1 * hx2 - ge2 * hx1
                ghy1 = ge2 * hx0 - ge0 * hx2
                ghy2 = ge0 * hx1 - ge1 * hx0
                gzk = gz / den
                grad_pos[pb, i0, 0] += ghx0
                grad_pos[pb, i1, 0] += ghx1
                grad_pos[pb, i2, 0] += ghx2
                grad_pos[pb, i0, 1] += ghy0
                grad_pos[pb, i1, 1] += ghy1
                grad_pos[pb, i2, 1] += ghy2
                grad_pos[pb, i0, 2] += gzk * e0
                grad_pos[pb, i1, 2] += gzk * e1
                grad_pos[pb, i2, 2] += gzk * e2
                grad_pos[pb, i0, 3] += -nx * ghx0 - ny * ghy0 - gzk * zw * e0
                grad_pos[pb, i1, 3] += -nx * ghx1 - ny * ghy1 - gzk * zw * e1
                grad_pos[pb, i2, 3] += -nx * ghx2 - ny * ghy2 - gzk * zw * e2
