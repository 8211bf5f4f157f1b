"""Compiled (numba) CPU kernels behind the render primitives.

- visibility: a depth test on packed (depth, triangle) keys gives triangle ids per pixel;
- barycentrics: perspective-correct (u, v, z/w) and their pixel derivatives, with the adjoint;
- interpolation and texture sampling, each with a hand-written backward;
- antialiasing: discovery of silhouette edges between adjacent pixels.

Discrete decisions (coverage, edges) carry no gradient; the differentiable quantities have
explicit forward/backward loops. Compiled code is cached on disk (``cache=True``), so a new
process loads it instead of recompiling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from affectsynth.render._prefetch import prefetch_row

__all__ = ["rasterize_ids", "antialias_find_edges", "topology_opposite"]


# Depth test on a 64-bit key per pixel: (quantised z/w << 32) | triangle index. One integer
# min per candidate pixel replaces a float compare plus two stores, needs no branch, and breaks
# depth ties towards the lower triangle index for free. z/w in [-1, 1] is quantised to 31 bits
# (a step of 2^-30, like a fixed-point GPU depth buffer); `_reference.visibility_reference`
# applies the same quantisation.
DEPTH_SCALE = 1073741824.0  # 2^30: (z/w + 1) in [0, 2] -> [0, 2^31]
DEPTH_MAX = 2147483647.0  # 2^31 - 1
KEY_EMPTY = np.int64(0x7FFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True, error_model="numpy")
def _project_vertices(pos, pb, height, width, sx, sy, sz):
    """Screen-space x, y (pixels) and z/w per vertex; NaN marks w <= 0."""
    hw = 0.5 * width
    hh = 0.5 * height
    for i in range(pos.shape[1]):
        w = np.float64(pos[pb, i, 3])
        if w > 0.0:
            sx[i] = (pos[pb, i, 0] / w + 1.0) * hw
            sy[i] = (pos[pb, i, 1] / w + 1.0) * hh
            sz[i] = pos[pb, i, 2] / w
        else:
            sx[i] = np.nan
            sy[i] = np.nan
            sz[i] = np.nan


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
            row = r * width
            for j in range(width):
                k = key[row + j]
                ids[b, r, j] = 0 if k == KEY_EMPTY else np.int32(k & 0xFFFFFFFF) + 1


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
                        if k == 0:
                            xa, ya, xb, yb, ak = x1, y1, x2, y2, a0
                        elif k == 1:
                            xa, ya, xb, yb, ak = x2, y2, x0, y0, a1
                        else:
                            xa, ya, xb, yb, ak = x0, y0, x1, y1, a2
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
                    if best == 0:
                        xa, ya, xb, yb, ak = x1, y1, x2, y2, a0
                    elif best == 1:
                        xa, ya, xb, yb, ak = x2, y2, x0, y0, a1
                    else:
                        xa, ya, xb, yb, ak = x0, y0, x1, y1, a2
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


# ----------------------------------------------------------------------------------------------
# Barycentrics (forward and backward), homogeneous formulation. See rasterize.barycentrics_from_ids
# for the formulas; these loops are the compiled equivalent and its hand-written adjoint.


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
                w0 = np.float64(pos[pb, i0, 3])
                w1 = np.float64(pos[pb, i1, 3])
                w2 = np.float64(pos[pb, i2, 3])
                z0 = np.float64(pos[pb, i0, 2])
                z1 = np.float64(pos[pb, i1, 2])
                z2 = np.float64(pos[pb, i2, 2])
                hx0 = pos[pb, i0, 0] - nx * w0
                hx1 = pos[pb, i1, 0] - nx * w1
                hx2 = pos[pb, i2, 0] - nx * w2
                hy0 = pos[pb, i0, 1] - ny * w0
                hy1 = pos[pb, i1, 1] - ny * w1
                hy2 = pos[pb, i2, 1] - ny * w2
                e0 = hx1 * hy2 - hy1 * hx2
                e1 = hx2 * hy0 - hy2 * hx0
                e2 = hx0 * hy1 - hy0 * hx1
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


# ----------------------------------------------------------------------------------------------
# Interpolation.


@njit(cache=True, nogil=True, error_model="numpy")
def interp_fwd(attr, nv, attr_batched, tri, rast, pix_per_image, out):
    """Interpolate attributes at covered pixels.

    Args:
        attr: [Ba * V, A] flattened attributes.
        nv: V.
        attr_batched: Ba > 1 (else every image uses attribute set 0).
        tri: [T, 3] int32.
        rast: [N, 4] flattened rast of B images of pix_per_image pixels.
        pix_per_image: H * W.
        out: [N, A] output: u a0 + v a1 + (1 - u - v) a2, 0 at empty pixels.

    Returns:
        0, or the largest triangle_id + 1 found in rast that is out of range for tri.
    """
    na = attr.shape[1]
    nt = np.uint64(tri.shape[0])
    bad = 0
    # Image index without a per-pixel integer division (it costs ~2x in these loops).
    base = 0
    image_end = pix_per_image
    for i in range(rast.shape[0]):
        if i == image_end:
            image_end += pix_per_image
            if attr_batched:
                base += nv
        t = np.int64(rast[i, 3]) - 1  # ids are exact in float; truncated as nvdiffrast does
        if np.uint64(t) >= nt:  # empty (t = -1) or out of range, in one compare
            if t >= 0:
                bad = max(bad, t + 1)
            for k in range(na):
                out[i, k] = 0.0
            continue
        u = rast[i, 0]
        v = rast[i, 1]
        i0 = base + tri[t, 0]
        i1 = base + tri[t, 1]
        i2 = base + tri[t, 2]
        for k in range(na):
            a2 = attr[i2, k]
            out[i, k] = a2 + u * (attr[i0, k] - a2) + v * (attr[i1, k] - a2)
    return bad


@njit(cache=True, nogil=True, error_model="numpy")
def interp_bwd(attr, nv, attr_batched, tri, rast, pix_per_image, grad_out, want_attr, grad_attr, grad_rast):
    """Accumulate dL/dattr ([Ba * V, A], if want_attr) and write dL/drast's (u, v) ([N, 4]), zero-filled."""
    na = attr.shape[1]
    nt = np.uint64(tri.shape[0])
    # Image index without a per-pixel integer division (it costs ~2x in these loops).
    base = 0
    image_end = pix_per_image
    for i in range(rast.shape[0]):
        if i == image_end:
            image_end += pix_per_image
            if attr_batched:
                base += nv
        t = np.int64(rast[i, 3]) - 1
        if np.uint64(t) >= nt:  # empty or out of range
            continue
        u = rast[i, 0]
        v = rast[i, 1]
        wgt = 1.0 - u - v
        i0 = base + tri[t, 0]
        i1 = base + tri[t, 1]
        i2 = base + tri[t, 2]
        gu = 0.0
        gv = 0.0
        for k in range(na):
            g = grad_out[i, k]
            a2 = attr[i2, k]
            gu += g * (attr[i0, k] - a2)
            gv += g * (attr[i1, k] - a2)
            if want_attr:
                grad_attr[i0, k] += g * u
                grad_attr[i1, k] += g * v
                grad_attr[i2, k] += g * wgt
        grad_rast[i, 0] = gu
        grad_rast[i, 1] = gv


# ----------------------------------------------------------------------------------------------
# Texture sampling. boundary: 0 wrap, 1 clamp, 2 zero.

PREFETCH_AHEAD = 16  # pixels; 8-64 measured alike on a 1024^2 texture, none is ~1.5x slower


@njit(cache=True, nogil=True, error_model="numpy")
def _texel(i, n, boundary):
    """Index into [0, n) and validity (False only for the 'zero' mode outside the texture)."""
    if boundary == 0:
        if i < 0:
            i += n  # common: one period below; avoid the (slow) integer modulo
            if i < 0:
                i %= n
        elif i >= n:
            i -= n
            if i >= n:
                i %= n
        return i, True
    if i < 0:
        return 0, boundary != 2
    if i >= n:
        return n - 1, boundary != 2
    return i, True


@njit(cache=True, nogil=True, error_model="numpy")
def tex_taps(uv, ht, wt, tex_batched, pix_per_image, boundary, consts, idx, frac):
    """First pass of bilinear sampling: the 4 taps' flat texel indices and the fractions.

    Splitting address computation from the texel gathers lets the gather loop keep many cache
    misses in flight (about 2x faster on a 1024^2 texture than one fused loop).

    Args:
        uv: [N, 2] flattened uv of B images of pix_per_image pixels.
        ht: Ht.
        wt: Wt.
        tex_batched: Bt > 1 (else every image uses texture 0).
        pix_per_image: H * W.
        boundary: 0 wrap, 1 clamp, 2 zero.
        consts: [4] (Ht, Wt, 0.5, 1.0) in uv's dtype (keeps float32 arithmetic in float32).
        idx: [N, 4] int32/int64 output: rows into the [Bt * Ht * Wt, C] texture for taps
            (0, 0), (0, 1), (1, 0), (1, 1) as (row, col) offsets; -1 = zero tap ('zero' mode
            outside, or non-finite uv).
        frac: [N, 2] output (fx, fy) in uv's dtype.
    """
    htf = consts[0]
    wtf = consts[1]
    half = consts[2]
    # Image index without a per-pixel integer division (it costs ~2x in these loops).
    base = 0
    image_end = pix_per_image
    for i in range(uv.shape[0]):
        if i == image_end:
            image_end += pix_per_image
            if tex_batched:
                base += ht * wt
        u = uv[i, 0]
        v = uv[i, 1]
        if not (math.isfinite(u) and math.isfinite(v)):
            idx[i, 0] = -1
            idx[i, 1] = -1
            idx[i, 2] = -1
            idx[i, 3] = -1
            frac[i, 0] = 0.0
            frac[i, 1] = 0.0
            continue
        x = u * wtf - half
        y = v * htf - half
        xf = np.floor(x)
        yf = np.floor(y)
        frac[i, 0] = x - xf
        frac[i, 1] = y - yf
        xi = int(xf)
        yi = int(yf)
        if xi >= 0 and yi >= 0 and xi + 1 < wt and yi + 1 < ht:
            i00 = base + yi * wt + xi
            idx[i, 0] = i00
            idx[i, 1] = i00 + 1
            idx[i, 2] = i00 + wt
            idx[i, 3] = i00 + wt + 1
            continue
        xa, oka = _texel(xi, wt, boundary)
        xb, okb = _texel(xi + 1, wt, boundary)
        ya, okc = _texel(yi, ht, boundary)
        yb, okd = _texel(yi + 1, ht, boundary)
        idx[i, 0] = base + ya * wt + xa if (oka and okc) else -1
        idx[i, 1] = base + ya * wt + xb if (okb and okc) else -1
        idx[i, 2] = base + yb * wt + xa if (oka and okd) else -1
        idx[i, 3] = base + yb * wt + xb if (okb and okd) else -1


@njit(cache=True, nogil=True, error_model="numpy")
def tex_gather(tex, idx, frac, consts, out):
    """Second pass of bilinear sampling: out [N, C] from tex [Bt * Ht * Wt, C]; see tex_taps.

    Writes every row of `out` (it need not be zero-filled).
    """
    nc = tex.shape[1]
    one = consts[3]
    n = idx.shape[0]
    for i in range(n):
        if i + PREFETCH_AHEAD < n:  # both texel rows of a pixel a few pixels ahead
            ahead = idx[i + PREFETCH_AHEAD, 0]
            if ahead >= 0:
                prefetch_row(tex, ahead)
            ahead = idx[i + PREFETCH_AHEAD, 2]
            if ahead >= 0:
                prefetch_row(tex, ahead)
        fx = frac[i, 0]
        fy = frac[i, 1]
        i00 = idx[i, 0]
        i01 = idx[i, 1]
        i10 = idx[i, 2]
        i11 = idx[i, 3]
        w00 = (one - fx) * (one - fy)
        w01 = fx * (one - fy)
        w10 = (one - fx) * fy
        w11 = fx * fy
        if i00 >= 0 and i01 >= 0 and i10 >= 0 and i11 >= 0:
            for k in range(nc):
                out[i, k] = w00 * tex[i00, k] + w01 * tex[i01, k] + w10 * tex[i10, k] + w11 * tex[i11, k]
            continue
        for k in range(nc):
            acc = one - one
            if i00 >= 0:
                acc += w00 * tex[i00, k]
            if i01 >= 0:
                acc += w01 * tex[i01, k]
            if i10 >= 0:
                acc += w10 * tex[i10, k]
            if i11 >= 0:
                acc += w11 * tex[i11, k]
            out[i, k] = acc


@njit(cache=True, nogil=True, error_model="numpy")
def tex_scatter(tex, idx, frac, consts, grad_out, grad_tex, grad_uv):
    """Backward of tex_gather: accumulate dL/dtex ([Bt * Ht * Wt, C]) and write dL/duv ([N, 2])."""
    nc = tex.shape[1]
    htf = consts[0]
    wtf = consts[1]
    one = consts[3]
    zero = one - one
    for i in range(idx.shape[0]):
        fx = frac[i, 0]
        fy = frac[i, 1]
        i00 = idx[i, 0]
        i01 = idx[i, 1]
        i10 = idx[i, 2]
        i11 = idx[i, 3]
        w00 = (one - fx) * (one - fy)
        w01 = fx * (one - fy)
        w10 = (one - fx) * fy
        w11 = fx * fy
        gfx = zero
        gfy = zero
        for k in range(nc):
            g = grad_out[i, k]
            if g == 0.0:
                continue
            t00 = tex[i00, k] if i00 >= 0 else zero
            t01 = tex[i01, k] if i01 >= 0 else zero
            t10 = tex[i10, k] if i10 >= 0 else zero
            t11 = tex[i11, k] if i11 >= 0 else zero
            gfx += g * ((one - fy) * (t01 - t00) + fy * (t11 - t10))
            gfy += g * ((one - fx) * (t10 - t00) + fx * (t11 - t01))
            if i00 >= 0:
                grad_tex[i00, k] += g * w00
            if i01 >= 0:
                grad_tex[i01, k] += g * w01
            if i10 >= 0:
                grad_tex[i10, k] += g * w10
            if i11 >= 0:
                grad_tex[i11, k] += g * w11
        grad_uv[i, 0] = gfx * wtf
        grad_uv[i, 1] = gfy * htf


@njit(cache=True, nogil=True, error_model="numpy")
def tex_nearest_fwd(tex, ht, wt, tex_batched, uv, pix_per_image, boundary, out):
    """Nearest-texel sampling: out [N, C] (zero-filled) from tex [Bt * Ht * Wt, C] at uv [N, 2]."""
    nc = tex.shape[1]
    # Image index without a per-pixel integer division (it costs ~2x in these loops).
    base = 0
    image_end = pix_per_image
    for i in range(uv.shape[0]):
        if i == image_end:
            image_end += pix_per_image
            if tex_batched:
                base += ht * wt
        u = uv[i, 0]
        v = uv[i, 1]
        if not (math.isfinite(u) and math.isfinite(v)):
            continue
        xi, okx = _texel(int(math.floor(u * wt)), wt, boundary)
        yi, oky = _texel(int(math.floor(v * ht)), ht, boundary)
        if okx and oky:
            t = base + yi * wt + xi
            for k in range(nc):
                out[i, k] = tex[t, k]


@njit(cache=True, nogil=True, error_model="numpy")
def tex_nearest_bwd(ht, wt, tex_batched, uv, pix_per_image, boundary, grad_out, grad_tex):
    """Backward of tex_nearest_fwd w.r.t. the texture (uv gets no gradient)."""
    nc = grad_tex.shape[1]
    # Image index without a per-pixel integer division (it costs ~2x in these loops).
    base = 0
    image_end = pix_per_image
    for i in range(uv.shape[0]):
        if i == image_end:
            image_end += pix_per_image
            if tex_batched:
                base += ht * wt
        u = uv[i, 0]
        v = uv[i, 1]
        if not (math.isfinite(u) and math.isfinite(v)):
            continue
        xi, okx = _texel(int(math.floor(u * wt)), wt, boundary)
        yi, oky = _texel(int(math.floor(v * ht)), ht, boundary)
        if okx and oky:
            t = base + yi * wt + xi
            for k in range(nc):
                grad_tex[t, k] += grad_out[i, k]
