"""Antialiasing kernels: mesh edge adjacency and discovery of silhouette edges between pixels."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["topology_opposite", "antialias_find_edges", "antialias_blend"]


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
def _project(pos, pb, xh, yh, px, py):
    """Vertices of pos batch pb in pixels relative to the image centre: px = x / w * W / 2 (float64)."""
    for v in range(pos.shape[1]):
        w = np.float64(pos[pb, v, 3])
        px[v] = pos[pb, v, 0] / w * xh
        py[v] = pos[pb, v, 1] / w * yh


@njit(cache=True, nogil=True, error_model="numpy")
def _silhouette_flags(t, tri, opp, px, py):
    """Bit k set: edge k of triangle t is a silhouette edge (its neighbour folds to the same side, or
    there is none). Depends on the projection only, not on the pixel pair: the callers compute it
    once per triangle and image, on first use."""
    v0 = tri[t, 0]
    v1 = tri[t, 1]
    v2 = tri[t, 2]
    x0 = px[v0]
    y0 = py[v0]
    x1 = px[v1]
    y1 = py[v1]
    x2 = px[v2]
    y2 = py[v2]
    o = opp[t, 0]
    ox0, oy0 = (x0, y0) if o < 0 else (px[o], py[o])
    o = opp[t, 1]
    ox1, oy1 = (x1, y1) if o < 0 else (px[o], py[o])
    o = opp[t, 2]
    ox2, oy2 = (x2, y2) if o < 0 else (px[o], py[o])
    bb = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    a0 = (x1 - ox0) * (y2 - oy0) - (x2 - ox0) * (y1 - oy0)
    a1 = (x2 - ox1) * (y0 - oy1) - (x0 - ox1) * (y2 - oy1)
    a2 = (x0 - ox2) * (y1 - oy2) - (x1 - ox2) * (y0 - oy2)
    return (1 if _same_sign(a0, bb) else 0) | (2 if _same_sign(a1, bb) else 0) | (4 if _same_sign(a2, bb) else 0)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _edge(k, x0, y0, x1, y1, x2, y2):
    """Edge k of a triangle (from vertex (k+1)%3 to (k+2)%3): (xa, ya, xb, yb)."""
    if k == 0:
        return x1, y1, x2, y2
    if k == 1:
        return x2, y2, x0, y0
    return x0, y0, x1, y1


@njit(cache=True, nogil=True, error_model="numpy")
def antialias_find_edges(pos, pos_index, tri, opp, rast, items, dcs):
    """Find silhouette edges crossing between horizontally/vertically adjacent pixel centres.

    Mirrors nvdiffrast's antialias analysis: for each pixel pair with different triangle ids,
    the nearer triangle (or the only one) is chosen; among its edges that cross the line
    between the two pixel centres, the one farthest towards the other pixel is taken if it is a
    silhouette edge (its neighbouring triangle folds to the same side, or there is none) and is
    steep relative to the pair direction. Whether a triangle has silhouette edges depends on the
    projection only: it is found once per triangle (`_silhouette_flags`), which rejects the pairs
    inside the mesh quickly: a pair of two triangles without silhouette edges is dropped before
    its depths are compared, whichever is nearer (on a mesh of pixel-sized triangles nearly every
    pair has two triangles, and that comparison is a coin flip the branch predictor loses). (One loop, no per-pair helper function: numba compiled one about 8x
    slower.)

    Args:
        pos: [Bp, V, 4] float clip-space positions.
        pos_index: [B] int64, which pos batch each image uses.
        tri: [T, 3] int32.
        opp: [T, 3] int32 from `topology_opposite`.
        rast: [B, H, W, 4] float rasterizer output (u, v, z/w, triangle_id + 1).
        items: [M, 6] int64 output rows
            (pixel0 flat index, pixel1 flat index, down flag, ref is pixel1 flag, va, vb), where
            va, vb are flat indices into pos.reshape(-1, 4) of the crossing edge's endpoints.
        dcs: [M] float64 output: the signed crossing distance from the reference pixel (the
            nearer triangle's), in pixels along the pair.

    Returns:
        Number of rows written, or -1 when `items` ran out of rows (M >= 2 B H W, the number of
        adjacent pixel pairs, always suffices).
    """
    n = 0
    nb, height, width = rast.shape[0], rast.shape[1], rast.shape[2]
    nv = pos.shape[1]
    xh = 0.5 * width
    yh = 0.5 * height
    vx = np.empty(nv)
    vy = np.empty(nv)
    flags = np.empty(tri.shape[0], dtype=np.int8)
    ids = np.empty((height, width), dtype=np.int32)  # the id channel, compact: the scan reads it twice
    for b in range(nb):
        _project(pos, pos_index[b], xh, yh, vx, vy)
        flags[:] = -1
        vbase = pos_index[b] * nv
        for py in range(height):
            for px in range(width):
                ids[py, px] = np.int32(rast[b, py, px, 3] + 0.5) - 1
        for py in range(height):
            for px in range(width):
                t0 = np.int64(ids[py, px])
                for d in range(2):
                    qx = px + 1 - d
                    qy = py + d
                    if qx == width or qy == height:
                        continue
                    t1 = np.int64(ids[qy, qx])
                    if t0 == t1:
                        continue
                    # a pair between two triangles without silhouette edges yields nothing,
                    # whichever is nearer: skip it before reading (and branching on) depths
                    f0 = 0
                    if t0 >= 0:
                        if flags[t0] < 0:
                            flags[t0] = _silhouette_flags(t0, tri, opp, vx, vy)
                        f0 = flags[t0]
                    f1 = 0
                    if t1 >= 0:
                        if flags[t1] < 0:
                            flags[t1] = _silhouette_flags(t1, tri, opp, vx, vy)
                        f1 = flags[t1]
                    if f0 == 0 and f1 == 0:
                        continue
                    t = t0 if t0 >= 0 else t1
                    if t0 >= 0 and t1 >= 0:
                        t = t0 if rast[b, py, px, 2] < rast[b, qy, qx, 2] else t1
                    f = f0 if t == t0 else f1
                    if f == 0:
                        continue
                    if t == t1:
                        rx = qx
                        ry = qy
                        ds = -1.0
                    else:
                        rx = px
                        ry = py
                        ds = 1.0
                    fx = rx + 0.5 - xh
                    fy = ry + 0.5 - yh
                    v0 = tri[t, 0]
                    v1 = tri[t, 1]
                    v2 = tri[t, 2]
                    x0 = vx[v0] - fx
                    y0 = vy[v0] - fy
                    x1 = vx[v1] - fx
                    y1 = vy[v1] - fy
                    x2 = vx[v2] - fx
                    y2 = vy[v2] - fy
                    if d == 1:
                        x0, y0 = y0, x0
                        x1, y1 = y1, x1
                        x2, y2 = y2, x2
                    # Edge k runs from vertex (k+1)%3 to (k+2)%3.
                    best = -1
                    best_dc = -1e300
                    for k in range(3):
                        xa, ya, xb, yb = _edge(k, x0, y0, x1, y1, x2, y2)
                        if _same_sign(ya, yb):
                            continue
                        dx = xb - xa
                        dy = yb - ya
                        dc = ds * (xa * dy - ya * dx) / dy
                        if dc > best_dc:
                            best_dc = dc
                            best = k
                    if best < 0 or ((f >> best) & 1) == 0:
                        continue
                    xa, ya, xb, yb = _edge(best, x0, y0, x1, y1, x2, y2)
                    if abs(yb - ya) < abs(xb - xa):
                        continue
                    if not (best_dc > -0.0625 and best_dc < 1.0625):
                        continue
                    if n == items.shape[0]:
                        return -1
                    items[n, 0] = (b * height + py) * width + px
                    items[n, 1] = (b * height + qy) * width + qx
                    items[n, 2] = d
                    items[n, 3] = 1 if ds < 0.0 else 0
                    items[n, 4] = vbase + (v1 if best == 0 else (v2 if best == 1 else v0))
                    items[n, 5] = vbase + (v2 if best == 0 else (v0 if best == 1 else v1))
                    dcs[n] = best_dc
                    n += 1
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def antialias_blend(color, items, dcs, n, out):
    """Forward-only blend of the first `n` edges of `antialias_find_edges` into out [P, C].

    out holds a copy of color [P, C] (flattened pixels); each edge moves the pixel on the wrong
    side of the midpoint towards the other one by |0.5 - crossing| (crossing clamped to [0, 1]),
    from the unblended colours, in row order (the torch path's index_add, without autograd).
    """
    nc = color.shape[1]
    for i in range(n):
        p0 = items[i, 0]
        p1 = items[i, 1]
        ds = -1.0 if items[i, 3] else 1.0
        alpha = ds * (0.5 - min(max(dcs[i], 0.0), 1.0))
        target = p0 if alpha > 0.0 else p1
        for k in range(nc):
            out[target, k] += alpha * (color[p1, k] - color[p0, k])
