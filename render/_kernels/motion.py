"""Motion-field kernels: `affectsynth.render.warp.motion_window` and `motion_field` on the CPU in one pass each.

The torch version of `motion_field` runs some 40 small ops (clip-space positions, rasterize,
barycentrics, interpolate, push-pull, scipy's distance transform, fade, bilinear upsampling);
at 256^2 that is ~2.5 ms, mostly op overhead. These kernels do the same arithmetic in the same
precision (float32 where torch computes in float32, the rasterizer's own visibility kernel),
so results agree to float rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from affectsynth.render._kernels.inpaint import _sources, push_pull
from affectsynth.render._kernels.visibility import rasterize_ids

__all__ = ["max_displacement", "motion_bounds", "motion_flow"]


@njit(cache=True, nogil=True, error_model="numpy")
def max_displacement(src, dst, index):
    """Largest |dst - src| (float32 norm, as torch's) over the vertices ``index`` (all if it is empty) of [V, 2] arrays."""
    n = index.shape[0] if index.shape[0] > 0 else src.shape[0]
    m = np.float32(0.0)
    for i in range(n):
        v = index[i] if index.shape[0] > 0 else i
        dx = dst[v, 0] - src[v, 0]
        dy = dst[v, 1] - src[v, 1]
        m = max(m, np.float32(math.sqrt(dx * dx + dy * dy)))
    return m


@njit(cache=True, nogil=True, error_model="numpy")
def motion_bounds(src, dst, index):
    """(x_min, y_min, x_max, y_max) over src and dst [V, 2] of the vertices ``index`` (all if it is empty)."""
    x_lo = y_lo = np.float32(np.inf)
    x_hi = y_hi = np.float32(-np.inf)
    n = index.shape[0] if index.shape[0] > 0 else src.shape[0]
    for i in range(n):
        v = index[i] if index.shape[0] > 0 else i
        x_lo = min(x_lo, min(src[v, 0], dst[v, 0]))
        y_lo = min(y_lo, min(src[v, 1], dst[v, 1]))
        x_hi = max(x_hi, max(src[v, 0], dst[v, 0]))
        y_hi = max(y_hi, max(src[v, 1], dst[v, 1]))
    return x_lo, y_lo, x_hi, y_hi


@njit(cache=True, nogil=True, error_model="numpy")
def _clip_positions(dst, depth, has_depth, x0, y0, w, h):
    """[1, V, 4] float32 clip-space positions of the moved vertices in the window: ndc x, y, depth
    normalised to [-0.9, 0.9] (0 without depth), w = 1."""
    nv = dst.shape[0]
    pos = np.empty((1, nv, 4), np.float32)
    d_lo = np.float32(np.inf)
    d_hi = np.float32(-np.inf)
    if has_depth:
        for i in range(nv):
            d_lo = min(d_lo, depth[i])
            d_hi = max(d_hi, depth[i])
    span = max(d_hi - d_lo, np.float32(1e-12))
    sx = np.float32(2.0) / np.float32(w)
    sy = np.float32(2.0) / np.float32(h)
    for i in range(nv):
        pos[0, i, 0] = (dst[i, 0] - np.float32(x0)) * sx - np.float32(1.0)
        pos[0, i, 1] = (dst[i, 1] - np.float32(y0)) * sy - np.float32(1.0)
        z = np.float32(0.0)
        if has_depth:
            z = (depth[i] - d_lo) / span * np.float32(1.8) - np.float32(0.9)
        pos[0, i, 2] = z
        pos[0, i, 3] = np.float32(1.0)
    return pos


@njit(cache=True, nogil=True, error_model="numpy")
def _inside_flow(pos, tri, ids, src, x0, y0, w, h, inside, cover):
    """Where each covered pixel of the coarse grid came from, minus its centre (photo pixels), into
    inside [hs, ws, 2] (0 off the mesh) and cover [hs, ws] (float32 0 / 1).

    The barycentrics are `rast_fill`'s (w = 1: no perspective), rounded to float32 as the raster
    is, and interpolated as `interp_fwd` does."""
    hs, ws = ids.shape
    sxn = 2.0 / ws
    syn = 2.0 / hs
    step_x = np.float32(w / ws)
    step_y = np.float32(h / hs)
    for r in range(hs):
        ny = (r + 0.5) * syn - 1.0
        cy = (np.float32(r) + np.float32(0.5)) * step_y + np.float32(y0)
        for c in range(ws):
            t = ids[r, c] - 1
            if t < 0:
                inside[r, c, 0] = np.float32(0.0)
                inside[r, c, 1] = np.float32(0.0)
                cover[r, c] = np.float32(0.0)
                continue
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            nx = (c + 0.5) * sxn - 1.0
            hx0 = np.float64(pos[0, i0, 0]) - nx
            hx1 = np.float64(pos[0, i1, 0]) - nx
            hx2 = np.float64(pos[0, i2, 0]) - nx
            hy0 = np.float64(pos[0, i0, 1]) - ny
            hy1 = np.float64(pos[0, i1, 1]) - ny
            hy2 = np.float64(pos[0, i2, 1]) - ny
            e0 = hx1 * hy2 - hy1 * hx2
            e1 = hx2 * hy0 - hy2 * hx0
            e2 = hx0 * hy1 - hy0 * hx1
            inv = 1.0 / (e0 + e1 + e2)
            u = np.float32(e0 * inv)
            v = np.float32(e1 * inv)
            cx = (np.float32(c) + np.float32(0.5)) * step_x + np.float32(x0)
            for k in range(2):
                a2 = src[i2, k]
                at = a2 + u * (src[i0, k] - a2) + v * (src[i1, k] - a2)
                inside[r, c, k] = at - (cx if k == 0 else cy)
            cover[r, c] = np.float32(1.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _envelope_1d(f, spacing, out, v, z):
    """Felzenszwalb's 1D squared distance transform of f [n] (inf = no seed) with sample spacing
    `spacing`: out[p] = min_q (spacing (p - q))^2 + f[q]; inf everywhere without a seed."""
    n = f.shape[0]
    k = -1
    for q in range(n):
        if f[q] == np.inf:
            continue
        xq = q * spacing
        s = -np.inf
        while k >= 0:  # pop the parabolas the new one hides
            xv = v[k] * spacing
            s = ((f[q] + xq * xq) - (f[v[k]] + xv * xv)) / (2.0 * (xq - xv))
            if s > z[k]:
                break
            k -= 1
        k += 1
        v[k] = q
        z[k] = s if k > 0 else -np.inf
        z[k + 1] = np.inf
    if k < 0:
        out[:] = np.inf
        return
    j = 0
    for p in range(n):
        xp = p * spacing
        while z[j + 1] < xp:
            j += 1
        d = xp - v[j] * spacing
        out[p] = d * d + f[v[j]]


@njit(cache=True, nogil=True, error_model="numpy")
def _distance_to_cover(cover, sy, sx):
    """[hs, ws] float64 Euclidean distance (pixel spacing sy, sx) of each pixel to the nearest covered
    one (0 on it): what ``scipy.ndimage.distance_transform_edt(~cover, sampling=(sy, sx))`` gives.

    Along the columns the squared distance is that to the nearest covered pixel above or below (two
    sweeps over the rows, every column at once), then along each row Felzenszwalb's lower envelope.
    """
    hs, ws = cover.shape
    none = hs + 1  # no covered pixel in the column (yet)
    below = np.empty((hs, ws), np.int64)
    run = np.full(ws, none, np.int64)
    for r in range(hs):
        for c in range(ws):
            run[c] = 0 if cover[r, c] > 0 else min(run[c] + 1, none)
            below[r, c] = run[c]
    cols = np.empty((hs, ws))
    run[:] = none
    for r in range(hs - 1, -1, -1):
        for c in range(ws):
            run[c] = 0 if cover[r, c] > 0 else min(run[c] + 1, none)
            m = min(below[r, c], run[c])
            cols[r, c] = np.inf if m >= none else (m * sy) * (m * sy)
    line = np.empty(ws)
    v = np.empty(ws, np.int64)
    z = np.empty(ws + 1)
    dist = np.empty((hs, ws))
    for r in range(hs):
        _envelope_1d(cols[r], sx, line, v, z)
        for c in range(ws):
            dist[r, c] = math.sqrt(line[c])
    return dist


@njit(cache=True, nogil=True, error_model="numpy")
def motion_flow(src, dst, depth, has_depth, tri, x0, y0, w, h, hs, ws, margin, flow):
    """`motion_field` over the window (x0, y0, w, h) computed on an hs x ws grid, into flow [h, w, 2].

    Rasterizes the moved mesh (nearest depth wins), takes where each covered grid point came from,
    extends that flow off the mesh by push-pull, fades it to 0 over `margin` pixels of distance
    from the mesh (smoothstep), and upsamples it bilinearly (torch's rule) to h x w.

    Args:
        src, dst: [V, 2] float32 vertex pixel positions before / after the motion.
        depth: [V] float32 depth of the moved vertices (read only if has_depth).
        has_depth: whether depth decides overlaps (else the lower triangle id wins).
        tri: [T, 3] int32 triangles.
        x0, y0, w, h: the window, photo pixels.
        hs, ws: the grid the field is computed on.
        margin: fade distance, pixels.
        flow: [h, w, 2] float32 output.

    Returns:
        Whether the mesh covers any grid point (else flow is left as it is; the field is 0).
    """
    pos = _clip_positions(dst, depth, has_depth, x0, y0, w, h)
    ids = np.empty((1, hs, ws), np.int32)
    key = np.empty(hs * ws, np.int64)
    rasterize_ids(pos, tri, np.zeros(1, np.int64), np.zeros(1, np.int64), np.full(1, tri.shape[0], np.int64),
                  hs, ws, ids, key)
    inside = np.empty((1, hs, ws, 2), np.float32)
    cover = np.empty((1, hs, ws), np.float32)
    _inside_flow(pos, tri, ids[0], src, x0, y0, w, h, inside[0], cover[0])
    if not (cover > 0).any():
        return False
    ext = np.empty_like(inside)
    push_pull(inside, cover, 1, ext)
    dist = _distance_to_cover(cover[0], h / hs, w / ws)
    coarse = np.empty((hs, ws, 2), np.float32)
    for r in range(hs):
        for c in range(ws):
            if cover[0, r, c] > 0:
                coarse[r, c, 0] = inside[0, r, c, 0]
                coarse[r, c, 1] = inside[0, r, c, 1]
                continue
            t = min(max(1.0 - dist[r, c] / max(margin, 1e-6), 0.0), 1.0)
            fade = np.float32(t * t * (3.0 - 2.0 * t))
            coarse[r, c, 0] = ext[0, r, c, 0] * fade
            coarse[r, c, 1] = ext[0, r, c, 1] * fade
    if hs == h and ws == w:
        flow[:, :, :] = coarse
        return True
    _upsample_bilinear(coarse, flow)
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def _upsample_bilinear(coarse, out):
    """out [h, w, C]: torch's bilinear upsampling (align_corners=False) of coarse [hs, ws, C].

    Each coarse row is blended along x once (into every output column), then each output row is
    the blend of two such rows, contiguous and vectorised: the same products and sums as the
    per-pixel formula ``(1 - ly) ((1 - lx) a + lx b) + ly ((1 - lx) c + lx d)``, bit for bit.
    """
    hs, ws, nc = coarse.shape
    h, w = out.shape[0], out.shape[1]
    one = np.float32(1.0)
    ya, yb, ly = _sources(hs, h)
    xa, xb, lx = _sources(ws, w)
    cols = np.empty((hs, w * nc), np.float32)
    for a in range(hs):
        for j in range(w):
            for k in range(nc):
                cols[a, j * nc + k] = (one - lx[j]) * coarse[a, xa[j], k] + lx[j] * coarse[a, xb[j], k]
    for i in range(h):
        top, bot, row, l = cols[ya[i]], cols[yb[i]], out[i].reshape(w * nc), ly[i]
        for j in range(w * nc):
            row[j] = (one - l) * top[j] + l * bot[j]
