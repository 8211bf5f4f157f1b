"""Push-pull inpainting kernel: the whole pyramid of `affectsynth.render.inpaint.push_pull_fill` in one pass.

The torch version runs about 60 small ops per pyramid (pad, pool, divide, upsample, blend per
level); at 256^2 that is ~2.5 ms of op overhead for ~0.2 ms of arithmetic. This kernel does the
same arithmetic, in the same order where it matters (2 x 2 sums row by row, torch's bilinear
source-index rule), so results agree to float rounding.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["push_pull", "push_pull_at"]


@njit(cache=True, nogil=True, error_model="numpy")
def _level_sizes(h, w, min_size):
    """Heights and widths of the pyramid levels: halved (rounded up) until both sides are <= min_size."""
    hs = [h]
    ws = [w]
    while not (hs[-1] <= min_size and ws[-1] <= min_size):
        hs.append((hs[-1] + 1) // 2)
        ws.append((ws[-1] + 1) // 2)
    return np.array(hs), np.array(ws)


@njit(cache=True, nogil=True, error_model="numpy")
def _reduce_edge(col, wt, so, h, w, i, j, dcol, dwt, o):
    """One coarse texel (i, j) of `_reduce` whose 2 x 2 block is cut by the level's edge."""
    nc = col.shape[1]
    sw = np.float32(0.0)
    for di in range(2):
        for dj in range(2):
            y, x = 2 * i + di, 2 * j + dj
            if y < h and x < w:
                sw += wt[so + y * w + x]
    den = max(sw, np.float32(1e-12))
    for k in range(nc):
        sc = np.float32(0.0)
        for di in range(2):
            for dj in range(2):
                y, x = 2 * i + di, 2 * j + dj
                if y < h and x < w:
                    p = so + y * w + x
                    sc += col[p, k] * wt[p]
        dcol[o, k] = sc / den
    dwt[o] = min(sw, np.float32(1.0))


@njit(cache=True, nogil=True, error_model="numpy")
def _reduce(col, wt, so, h, w, dcol, dwt, do):
    """One push step: level (col, wt) at offset `so`, h x w, to its weight-normalised 2 x 2 sums
    (zero beyond the edge) at offset `do` of (dcol, dwt). Full 2 x 2 blocks take a branch-free
    path (the same sums in the same order: row 0 then row 1, left then right)."""
    nc = col.shape[1]
    dw = (w + 1) // 2
    for i in range((h + 1) // 2):
        if 2 * i + 1 >= h:
            for j in range(dw):
                _reduce_edge(col, wt, so, h, w, i, j, dcol, dwt, do + i * dw + j)
            continue
        for j in range(w // 2):
            p = so + 2 * i * w + 2 * j
            q = p + w
            w0, w1, w2, w3 = wt[p], wt[p + 1], wt[q], wt[q + 1]
            sw = w0 + w1 + w2 + w3
            den = max(sw, np.float32(1e-12))
            o = do + i * dw + j
            for k in range(nc):
                dcol[o, k] = (col[p, k] * w0 + col[p + 1, k] * w1 + col[q, k] * w2 + col[q + 1, k] * w3) / den
            dwt[o] = min(sw, np.float32(1.0))
        if w % 2:
            _reduce_edge(col, wt, so, h, w, i, dw - 1, dcol, dwt, do + i * dw + dw - 1)


@njit(cache=True, nogil=True, error_model="numpy")
def _sources(n_in, n_out):
    """torch's bilinear (align_corners=False) sources of the output indices: (i0, i1, weight of i1) arrays."""
    i0s = np.empty(n_out, np.int64)
    i1s = np.empty(n_out, np.int64)
    ls = np.empty(n_out, np.float32)
    scale = np.float32(n_in / n_out)
    for d in range(n_out):
        src = max(scale * (np.float32(d) + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
        i0 = int(src)
        i0s[d] = i0
        i1s[d] = i0 + 1 if i0 < n_in - 1 else i0
        ls[d] = src - np.float32(i0)
    return i0s, i1s, ls


@njit(cache=True, nogil=True, error_model="numpy")
def _expand(coarse, co, ch, cw, col, wt, so, h, w, out, oo, exact, wanted, has_wanted):
    """One pull step: ``out = wt * col + (1 - wt) * upsample(coarse)`` for the h x w level at offsets
    `so` (col, wt) and `oo` (out); the coarser result is ch x cw at offset `co`. With `exact`, texels
    of weight >= 1 take their colour bitwise (the blend is exact there only up to rounding). With
    `has_wanted`, only the texels where `wanted` [h * w] is True are written, one after the other
    (row-major) from row `oo` of `out`. Returns the number of texels written."""
    nc = col.shape[1]
    one = np.float32(1.0)
    y0s, y1s, lys = _sources(ch, h)
    x0s, x1s, lxs = _sources(cw, w)
    written = 0
    for i in range(h):
        ly = lys[i]
        my = one - ly
        a, b = co + y0s[i] * cw, co + y1s[i] * cw
        for j in range(w):
            p, o = so + i * w + j, oo + i * w + j
            if has_wanted:
                if not wanted[i * w + j]:
                    continue
                o = oo + written
            written += 1
            lw = wt[p]
            if exact and lw >= one:
                for k in range(nc):
                    out[o, k] = col[p, k]
                continue
            x0, x1, lx = x0s[j], x1s[j], lxs[j]
            mx = one - lx
            mw = one - lw
            for k in range(nc):
                up = my * (mx * coarse[a + x0, k] + lx * coarse[a + x1, k]) \
                    + ly * (mx * coarse[b + x0, k] + lx * coarse[b + x1, k])
                out[o, k] = lw * col[p, k] + mw * up
    return written


@njit(cache=True, nogil=True, error_model="numpy")
def push_pull(image, weight, min_size, result):
    """Push-pull fill of a batch.

    Args:
        image: [B, H, W, C] float32 colours (ignored where the weight is 0).
        weight: [B, H, W] float32 weights, already clamped to [0, 1].
        min_size: stop the pyramid when both sides are <= this.
        result: [B, H, W, C] float32 output; equals `image` where the weight is >= 1.
    """
    nb, h, w, nc = image.shape
    _push_pull(image, weight, min_size, result.reshape(nb * h * w, nc), np.zeros((1, 1, 1), np.bool_), False)


@njit(cache=True, nogil=True, error_model="numpy")
def push_pull_at(image, weight, min_size, wanted, result):
    """`push_pull` at the texels where `wanted` [B, H, W] bool is True only: their values, in row-major
    order, into `result` [N, C] (N = the wanted count), without the finest pull step's work elsewhere."""
    _push_pull(image, weight, min_size, result, wanted, True)


@njit(cache=True, nogil=True, error_model="numpy")
def _push_pull(image, weight, min_size, result, wanted, has_wanted):
    """`push_pull` into `result` [B * H * W, C], and with `has_wanted` `push_pull_at` into [N, C]."""
    nb, h, w, nc = image.shape
    hs, ws = _level_sizes(h, w, min_size)
    top = hs.shape[0] - 1
    offs = np.zeros(hs.shape[0] + 1, np.int64)  # levels 1.. in flat buffers; level 0 is the input itself
    for lv in range(1, hs.shape[0]):
        offs[lv + 1] = offs[lv] + hs[lv] * ws[lv]
    col = np.empty((offs[-1], nc), np.float32)
    wt = np.empty(offs[-1], np.float32)
    out = np.empty((offs[-1], nc), np.float32)
    done = 0  # rows of `result` written
    for bi in range(nb):
        col0 = image[bi].reshape(h * w, nc)
        wt0 = weight[bi].reshape(h * w)
        want0 = wanted[bi].reshape(h * w) if has_wanted else wanted[0].reshape(1)
        start = done if has_wanted else bi * h * w
        if top == 0:  # a single level: the colour where the weight is > 0, else 0
            for p in range(h * w):
                if has_wanted and not want0[p]:
                    continue
                for k in range(nc):
                    result[start, k] = col0[p, k] if wt0[p] > 0 else np.float32(0.0)
                start += 1
            done = start
            continue
        _reduce(col0, wt0, 0, h, w, col, wt, offs[1])
        for lv in range(1, top):
            _reduce(col, wt, offs[lv], hs[lv], ws[lv], col, wt, offs[lv + 1])
        for p in range(offs[top], offs[top] + hs[top] * ws[top]):
            keep = np.float32(1.0) if wt[p] > 0 else np.float32(0.0)
            for k in range(nc):
                out[p, k] = col[p, k] * keep
        for lv in range(top - 1, 0, -1):
            _expand(out, offs[lv + 1], hs[lv + 1], ws[lv + 1], col, wt, offs[lv], hs[lv], ws[lv], out, offs[lv], False,
                    want0, False)
        done = start + _expand(out, offs[1], hs[1], ws[1], col0, wt0, 0, h, w, result, start, True, want0, has_wanted)
