"""Antialiasing kernels: mesh edge adjacency and discovery of silhouette edges between pixels."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["topology_opposite", "antialias_find_edges"]


def topology_opposite(tri: np.ndarray) -> np.ndarray:
    """For each triangle edge, the vertex of the triangle on the other side of it.

    Args:
        tri: [T, 3] integer vertex indices.

    Returns:
        [T, 3] int32: entry (t, k) is the vertex opposite edge k of triangle t (edge k is the
        edge that does not contain vertex k), seen from the neighbouring triangle, or -1 when
        the edge is a boundary (or non-manifold beyond a second neighbour).
    """
    tri = np.asarray(tri, dtype=np.int64)
    t_count = tri.shape[0]
    opp = np.full((t_count, 3), -1, dtype=np.int32)
    if t_count == 0:
        return opp
    a = np.stack([tri[:, 1], tri[:, 2], tri[:, 0]], axis=1).reshape(-1)
    b = np.stack([tri[:, 2], tri[:, 0], tri[:, 1]], axis=1).reshape(-1)
    own = tri.reshape(-1)  # vertex k of triangle t is opposite edge k
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    key = lo * (int(tri.max()) + 1) + hi
    order = np.argsort(key, kind="stable")
    ks = key[order]
    same = ks[1:] == ks[:-1]
    # Pair consecutive half-edges with equal keys (first with second of each run).
    first = np.nonzero(same)[0]
    if first.size:
        # Skip runs longer than two after the first pair (non-manifold): keep the first pair only.
        run_start = np.ones_like(ks, dtype=bool)
        run_start[1:] = ~same
        starts_idx = np.nonzero(run_start)[0]
        start_of = np.repeat(starts_idx, np.diff(np.append(starts_idx, ks.size)))
        pair = first[first == start_of[first]]
        e_a = order[pair]
        e_b = order[pair + 1]
        opp.reshape(-1)[e_a] = own[e_b]
        opp.reshape(-1)[e_b] = own[e_a]
    return opp


@njit(cache=True, nogil=True, error_model="numpy")
def _same_sign(a, b):
    return (a >= 0.0) == (b >= 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _pix(pos, pb, v, xh, yh, fx, fy):
    """Vertex v's projected position relative to the reference pixel centre, in pixels."""
    w = np.float64(pos[pb, v, 3])
    return pos[pb, v, 0] / w * xh - fx, pos[pb, v, 1] / w * yh - fy


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _edge(k, x0, y0, x1, y1, x2, y2, a0, a1, a2):
    """Edge k of a triangle (from vertex (k+1)%3 to (k+2)%3) and its fold sign a_k: (xa, ya, xb, yb, a_k)."""
    if k == 0:
        return x1, y1, x2, y2, a0
    if k == 1:
        return x2, y2, x0, y0, a1
    return x0, y0, x1, y1, a2


@njit(cache=True, nogil=True, error_model="numpy")
def antialias_find_edges(pos, pos_index, tri, opp, tid, zw, height, width, items):
    """Find silhouette edges crossing between horizontally/vertically adjacent pixel centres.

    Mirrors nvdiffrast's antialias analysis: for each pixel pair with different triangle ids,
    the nearer triangle (or the only one) is chosen; among its edges that cross the line
    between the two pixel centres, the one farthest towards the other pixel is taken if it is a
    silhouette edge (its neighbouring triangle folds to the same side, or there is none) and is
    steep relative to the pair direction. The crossing position is then recomputed in torch.

    Args:
        pos: [Bp, V, 4] float clip-space positions.
        pos_index: [B] int64, which pos batch each image uses.
        tri: [T, 3] int32.
        opp: [T, 3] int32 from `topology_opposite`.
        tid: [B, H, W] int32 triangle index (-1 = empty).
        zw: [B, H, W] float32 z/w.
        height: H.
        width: W.
        items: [M, 6] int64 output rows, M >= the number of adjacent pixel pairs with
            different ids
            (pixel0 flat index, pixel1 flat index, down flag, ref is pixel1 flag, va, vb), where
            va, vb are flat indices into pos.reshape(-1, 4) of the crossing edge's endpoints.

    Returns:
        Number of rows written.
    """
    n = 0
    nv = pos.shape[1]
    xh = 0.5 * width
    yh = 0.5 * height
    eps = 0.0625
    for b in range(tid.shape[0]):
        vbase = pos_index[b] * nv
        for py in range(height):
            for px in range(width):
                t0 = tid[b, py, px]
                for d in range(2):
                    if d == 0:
                        if px == width - 1:
                            continue
                        qx = px + 1
                        qy = py
                    else:
                        if py == height - 1:
                            continue
                        qx = px
                        qy = py + 1
                    t1 = tid[b, qy, qx]
                    if t0 == t1:
                        continue
                    t = t0 if t0 >= 0 else t1
                    if t0 >= 0 and t1 >= 0:
                        t = t0 if zw[b, py, px] < zw[b, qy, qx] else t1
                    if t == t1:
                        rx = qx
                        ry = qy
                        ds = -1.0
                    else:
                        rx = px
                        ry = py
                        ds = 1.0
                    pb = pos_index[b]
                    v0 = tri[t, 0]
                    v1 = tri[t, 1]
                    v2 = tri[t, 2]
                    fx = rx + 0.5 - xh
                    fy = ry + 0.5 - yh
                    x0, y0 = _pix(pos, pb, v0, xh, yh, fx, fy)
                    x1, y1 = _pix(pos, pb, v1, xh, yh, fx, fy)
                    x2, y2 = _pix(pos, pb, v2, xh, yh, fx, fy)
                    o = opp[t, 0]
                    ox0, oy0 = (x0, y0) if o < 0 else _pix(pos, pb, o, xh, yh, fx, fy)
                    o = opp[t, 1]
                    ox1, oy1 = (x1, y1) if o < 0 else _pix(pos, pb, o, xh, yh, fx, fy)
                    o = opp[t, 2]
                    ox2, oy2 = (x2, y2) if o < 0 else _pix(pos, pb, o, xh, yh, fx, fy)
                    bb = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
                    a0 = (x1 - ox0) * (y2 - oy0) - (x2 - ox0) * (y1 - oy0)
                    a1 = (x2 - ox1) * (y0 - oy1) - (x0 - ox1) * (y2 - oy1)
                    a2 = (x0 - ox2) * (y1 - oy2) - (x1 - ox2) * (y0 - oy2)
                    if not (_same_sign(a0, bb) or _same_sign(a1, bb) or _same_sign(a2, bb)):
                        continue
                    if d == 1:
                        x0, y0 = y0, x0
                        x1, y1 = y1, x1
                        x2, y2 = y2, x2
                    # Edge k runs from vertex (k+1)%3 to (k+2)%3.
                    best = -1
                    best_dc = -1e300
                    for k in range(3):
                        xa, ya, xb, yb, ak = _edge(k, x0, y0, x1, y1, x2, y2, a0, a1, a2)
                        if _same_sign(ya, yb):
                            continue
                        dx = xb - xa
                        dy = yb - ya
                        dc = ds * (xa * dy - ya * dx) / dy
                        if dc > best_dc:
                            best_dc = dc
                            best = k
                    if best < 0:
                        continue
                    xa, ya, xb, yb, ak = _edge(best, x0, y0, x1, y1, x2, y2, a0, a1, a2)
                    if not _same_sign(ak, bb):
                        continue
                    if abs(yb - ya) < abs(xb - xa):
                        continue
                    if not (best_dc > -eps and best_dc < 1.0 + eps):
                        continue
                    p0 = (b * height + py) * width + px
                    p1 = (b * height + qy) * width + qx
                    items[n, 0] = p0
                    items[n, 1] = p1
                    items[n, 2] = d
                    items[n, 3] = 1 if ds < 0.0 else 0
                    va = v1 if best == 0 else (v2 if best == 1 else v0)
                    vb = v2 if best == 0 else (v0 if best == 1 else v1)
                    items[n, 4] = vbase + va
                    items[n, 5] = vbase + vb
                    n += 1
    return n
