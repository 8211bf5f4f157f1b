"""Composite kernels: the feathered alpha of a render and its paste over a flow-warped uint8 photo, in one pass each."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from affectsynth.render._kernels.rounding import floor_int_f32
from affectsynth.render._kernels.simd import bicubic_taps_rgb

__all__ = ["feather_alpha", "warp_paste"]


@njit(cache=True, nogil=True, error_model="numpy")
def feather_alpha(coverage, opacity, has_opacity, feather, erode, threshold, alpha):
    """`composite`'s alpha: coverage times the smoothstep ramp of the distance into the silhouette.

    The Euclidean distance of each inside pixel (coverage > threshold) to the nearest outside
    pixel (the frame counts as inside), as ``scipy.ndimage.distance_transform_edt``, is needed only
    below ``0.5 + erode + feather`` (the ramp is 1 beyond): the row distances are capped there and
    the columns searched that far, which is exact below the cap.

    Args:
        coverage: [h, w] float32 coverage.
        opacity: [h, w] float32 multiplier (read only if has_opacity), clamped to [0, 1].
        has_opacity: whether opacity applies.
        feather: ramp width, pixels (0: a step at the eroded edge).
        erode: ramp offset into the silhouette, pixels.
        threshold: inside/outside threshold on the coverage (clamped to [0, 1]).
        alpha: [h, w] float32 output.

    Returns:
        Whether some pixel is outside (without one the caller takes scipy's convention).
    """
    h, w = coverage.shape
    reach = 0.5 + erode + feather
    cap = int(math.ceil(reach)) + 1
    run = np.empty((h, w), np.int64)  # distance along the row to the nearest outside pixel, capped
    outside = False
    for y in range(h):
        d = cap
        for x in range(w):
            if min(max(coverage[y, x], np.float32(0.0)), np.float32(1.0)) > threshold:
                d = min(d + 1, cap)
            else:
                d = 0
                outside = True
            run[y, x] = d
        d = cap
        for x in range(w - 1, -1, -1):
            d = 0 if run[y, x] == 0 else min(d + 1, cap)
            run[y, x] = min(run[y, x], d)
    best = np.empty(w, np.int64)
    for y in range(h):
        # squared distance to the nearest outside pixel within the cap: the rows of the column
        # window in the outer loop, the pixels of the row innermost (contiguous, vectorised)
        best[:] = cap * cap
        for yy in range(max(0, y - cap + 1), min(h, y + cap)):
            dy2 = (yy - y) * (yy - y)
            for x in range(w):
                g = run[yy, x]
                if g < cap:
                    best[x] = min(best[x], dy2 + g * g)
        for x in range(w):
            cov = min(max(coverage[y, x], np.float32(0.0)), np.float32(1.0))
            if run[y, x] == 0:
                alpha[y, x] = cov * np.float32(0.0)
                continue
            t = 1.0
            if best[x] < cap * cap:
                d = math.sqrt(best[x]) - 0.5 - erode
                if feather > 0:
                    t = min(max(d / feather, 0.0), 1.0)
                else:
                    t = 1.0 if d >= 0 else 0.0
            a = cov * np.float32(t * t * (3.0 - 2.0 * t))
            if has_opacity:
                a = a * min(max(opacity[y, x], np.float32(0.0)), np.float32(1.0))
            alpha[y, x] = a
    return outside


@njit(cache=True, nogil=True, inline="always")
def _cubic(t):
    """Keys cubic weights (a = -0.75, as ``grid_sample``) of the 4 taps around a fraction t."""
    a = np.float32(-0.75)
    x = t + np.float32(1.0)
    w0 = ((a * x - np.float32(5.0) * a) * x + np.float32(8.0) * a) * x - np.float32(4.0) * a
    w1 = ((a + np.float32(2.0)) * t - (a + np.float32(3.0))) * t * t + np.float32(1.0)
    x = np.float32(1.0) - t
    w2 = ((a + np.float32(2.0)) * x - (a + np.float32(3.0))) * x * x + np.float32(1.0)
    x = x + np.float32(1.0)
    w3 = ((a * x - np.float32(5.0) * a) * x + np.float32(8.0) * a) * x - np.float32(4.0) * a
    return w0, w1, w2, w3


_SIGN = np.int32(0x7FFFFFFF)  # float32 bits without the sign
_INF_BITS = np.int32(0x7F800000)  # bits of +inf; larger magnitudes are NaN


@njit(cache=True, nogil=True, inline="always")
def _bits_to_float(bits):
    """The float32 whose IEEE bits are the int32 ``bits``."""
    return np.full(1, bits, np.int32).view(np.float32)[0]


@njit(cache=True, nogil=True, error_model="numpy")
def _flow_reach_scalar(flow, sx0, sy0, sx1, sy1, fx0, fy0):
    """`_flow_reach` as plain float max (the reference, and the fallback where a flow holds NaN)."""
    m = np.float32(0.0)
    for y in range(sy0, sy1):
        for x in range(sx0, sx1):
            m = max(m, abs(flow[y - fy0, x - fx0, 0]), abs(flow[y - fy0, x - fx0, 1]))
    return m


@njit(cache=True, nogil=True, error_model="numpy")
def _flow_reach(flow, sx0, sy0, sx1, sy1, fx0, fy0):
    """Largest |flow| component over photo pixels [sy0, sy1) x [sx0, sx1) of a flow whose corner is (fx0, fy0).

    The magnitude bits of non-NaN float32 order as their values do, so the maximum is an int32
    max over each row's contiguous run of (u, v) pairs, which the loop vectoriser handles (a float
    max reduction it leaves scalar without fast-math). A NaN (bits above +inf's) falls back to
    the float loop, whose max skips NaNs.
    """
    if sy1 <= sy0 or sx1 <= sx0:
        return np.float32(0.0)
    fw = flow.shape[1]
    bits = np.ascontiguousarray(flow).view(np.int32).reshape(flow.shape[0], fw * 2)
    m = np.int32(0)
    for y in range(sy0, sy1):
        row = bits[y - fy0, 2 * (sx0 - fx0) : 2 * (sx1 - fx0)]
        for i in range(row.size):  # indices from 0: no negative-index wrap, contiguous vector loads
            m = max(m, row[i] & _SIGN)
    if m > _INF_BITS:
        return _flow_reach_scalar(flow, sx0, sy0, sx1, sy1, fx0, fy0)
    return _bits_to_float(m)


@njit(cache=True, nogil=True, error_model="numpy")
def _value_range_scalar(src, x0, y0, x1, y1):
    """(min, max) of src [H, W, 3] over pixels [y0, y1) x [x0, x1) by float min / max ((inf, -inf) if empty)."""
    lo, hi = np.float32(np.inf), np.float32(-np.inf)
    for y in range(y0, y1):
        for x in range(x0, x1):
            for c in range(3):
                lo = min(lo, src[y, x, c])
                hi = max(hi, src[y, x, c])
    return lo, hi


@njit(cache=True, nogil=True, error_model="numpy")
def _value_range(src, x0, y0, x1, y1):
    """`_value_range_scalar`, vectorised: int32 min / max of the float bits over each row's run.

    Non-negative non-NaN float32 (a photo / 255) order as their bits do; any sign bit or NaN
    falls back to the float loop, so the result is the same for every input.
    """
    if y1 <= y0 or x1 <= x0:
        return np.float32(np.inf), np.float32(-np.inf)
    H, W = src.shape[0], src.shape[1]
    bits = np.ascontiguousarray(src).view(np.int32).reshape(H, W * 3)
    lo, hi = np.int32(0x7FFFFFFF), np.int32(-0x80000000)
    for y in range(y0, y1):
        row = bits[y, 3 * x0 : 3 * x1]
        for i in range(row.size):  # indices from 0: no negative-index wrap, contiguous vector loads
            lo = min(lo, row[i])
            hi = max(hi, row[i])
    if lo < 0 or hi > _INF_BITS:
        return _value_range_scalar(src, x0, y0, x1, y1)
    return _bits_to_float(lo), _bits_to_float(hi)


@njit(cache=True, nogil=True, error_model="numpy")
def _row_taps(flow_row, n, x0, y, H, W, wts, offs):
    """Bicubic weights and tap offsets of pixels x0 .. x0 + n - 1 of row y, flow_row[2k], flow_row[2k + 1] the flow of pixel x0 + k.

    ``wts[0:4, k]`` are the column weights, ``wts[4:8, k]`` the row weights; ``offs[0:4, k]`` the
    flat offsets of the 4 tap columns (index * 3), ``offs[4:8, k]`` those of the 4 tap rows
    (index * W * 3), border-clamped. Two branch-free passes the loop vectoriser handles (one with
    all 16 output rows exceeds its budget of runtime alias checks and stays scalar); the bicubic
    sums then read the results back per pixel. The flow comes as a flat (u, v, u, v, ...) run: the
    stride of a [n, 2] array's rows is a run-time value to LLVM, which then vectorises only for a
    stride of 1.
    """
    _row_weights(flow_row, n, x0, y, wts)
    _row_offsets(flow_row, n, x0, y, H, W, offs)


@njit(cache=True, nogil=True, error_model="numpy")
def _row_weights(flow_row, n, x0, y, wts):
    """`_row_taps`' weights. The fractions are the old ``float32(sx - floor(sx))`` (exact in
    float64, rounded once): a float32 subtraction of the same exact operands rounds the same exact
    result once. Indices run from 0 (numba wraps negative indices, turning loads into gathers).
    """
    for k in range(n):
        sx = np.float32(x0 + k) + flow_row[2 * k]
        sy = np.float32(y) + flow_row[2 * k + 1]
        wx0, wx1, wx2, wx3 = _cubic(sx - np.float32(floor_int_f32(sx)))
        wy0, wy1, wy2, wy3 = _cubic(sy - np.float32(floor_int_f32(sy)))
        wts[0, k] = wx0
        wts[1, k] = wx1
        wts[2, k] = wx2
        wts[3, k] = wx3
        wts[4, k] = wy0
        wts[5, k] = wy1
        wts[6, k] = wy2
        wts[7, k] = wy3


@njit(cache=True, nogil=True, error_model="numpy")
def _row_offsets(flow_row, n, x0, y, H, W, offs):
    """`_row_taps`' border-clamped flat tap offsets."""
    r = W * 3
    for k in range(n):
        xf = floor_int_f32(np.float32(x0 + k) + flow_row[2 * k])
        yf = floor_int_f32(np.float32(y) + flow_row[2 * k + 1])
        offs[0, k] = min(max(xf - 1, 0), W - 1) * 3
        offs[1, k] = min(max(xf, 0), W - 1) * 3
        offs[2, k] = min(max(xf + 1, 0), W - 1) * 3
        offs[3, k] = min(max(xf + 2, 0), W - 1) * 3
        offs[4, k] = min(max(yf - 1, 0), H - 1) * r
        offs[5, k] = min(max(yf, 0), H - 1) * r
        offs[6, k] = min(max(yf + 1, 0), H - 1) * r
        offs[7, k] = min(max(yf + 2, 0), H - 1) * r


@njit(cache=True, nogil=True, inline="always")
def _bicubic_at(flat, wts, offs, k, lo, hi):
    """RGB bicubic sample k of a row prepared by `_row_taps` from flat (the photo raveled), clamped to [lo, hi].

    The 3 channels go as one 4-lane vector (`bicubic_taps_rgb`) unless the fourth lane of the
    last tap would read past the photo (its bottom-right pixel), where the scalar sums run.
    """
    rows = (offs[4, k], offs[5, k], offs[6, k], offs[7, k])
    cols = (offs[0, k], offs[1, k], offs[2, k], offs[3, k])
    wx = (wts[0, k], wts[1, k], wts[2, k], wts[3, k])
    wy = (wts[4, k], wts[5, k], wts[6, k], wts[7, k])
    if rows[3] + cols[3] + 3 < flat.size:
        p0, p1, p2 = bicubic_taps_rgb(flat, rows, cols, wx, wy)
    else:
        p0, p1, p2 = _bicubic_sums(flat, rows, cols, wx, wy)
    return min(max(p0, lo), hi), min(max(p1, lo), hi), min(max(p2, lo), hi)


@njit(cache=True, nogil=True, inline="always")
def _bicubic_sums(flat, rows, cols, wx, wy):
    """The scalar form of `bicubic_taps_rgb`: each channel's weighted tap sums, in the same order."""
    p0 = p1 = p2 = np.float32(0.0)
    for i in range(4):
        o = rows[i]
        a, b, c, d = o + cols[0], o + cols[1], o + cols[2], o + cols[3]
        p0 += (flat[a] * wx[0] + flat[b] * wx[1] + flat[c] * wx[2] + flat[d] * wx[3]) * wy[i]
        p1 += (flat[a + 1] * wx[0] + flat[b + 1] * wx[1] + flat[c + 1] * wx[2] + flat[d + 1] * wx[3]) * wy[i]
        p2 += (flat[a + 2] * wx[0] + flat[b + 2] * wx[1] + flat[c + 2] * wx[2] + flat[d + 2] * wx[3]) * wy[i]
    return p0, p1, p2


@njit(cache=True, nogil=True, inline="always")
def _span(lo, hi, a, b):
    """[a, b) clipped to [lo, hi), empty as (lo, lo)."""
    a, b = max(a, lo), min(b, hi)
    return (a, b) if b > a else (lo, lo)


@njit(cache=True, nogil=True, error_model="numpy")
def warp_paste(src, box, flow, fx0, fy0, rendered, alpha, rx0, ry0, bicubic, out, used):
    """`composite` of an RGB uint8 photo in one pass over the changing region, in place into out and used.

    Each pixel of ``box`` with a non-zero flow samples the photo at its centre plus the flow
    (bicubic, clamped to the range of the photo around the region, or bilinear; border
    padding), every other one keeps its photo value; then the render is blended in with alpha
    and the result rounded to uint8. Pixels with zero flow and zero alpha are left as they are
    (out holds the photo). The arithmetic is the torch path's, in the same order.

    Per row, only the span covered by the flow or the render is visited (no other pixel can
    change), and the bicubic weights and offsets of the flow's span are computed first in one
    vectorised pass (`_row_taps`).

    Args:
        src: [H, W, 3] float32 the photo / 255.
        box: (X0, Y0, X1, Y1) int64 the region that may change, inside the photo.
        flow: [fh, fw, 2] float32 backward flow, its top-left pixel at photo pixel (fx0, fy0).
        fx0, fy0: the flow's corner.
        rendered: [rh, rw, 3] float32 the render, its top-left pixel at photo pixel (rx0, ry0).
        alpha: [rh, rw] float32 its blend weight.
        rx0, ry0: the render's corner.
        bicubic: bicubic (else bilinear) sampling of the warped photo.
        out: [H, W, 3] uint8 output, holding the photo.
        used: [H, W] bool output (zero-filled): pixels that may differ from the photo.
    """
    H, W = src.shape[0], src.shape[1]
    X0, Y0, X1, Y1 = box[0], box[1], box[2], box[3]
    fh, fw = flow.shape[0], flow.shape[1]
    rh, rw = alpha.shape
    sx0, sy0, sx1, sy1 = max(fx0, X0), max(fy0, Y0), min(fx0 + fw, X1), min(fy0 + fh, Y1)
    m = _flow_reach(flow, sx0, sy0, sx1, sy1, fx0, fy0)
    lo, hi = np.float32(0.0), np.float32(1.0)
    if bicubic and m > 0:  # the torch path clamps to the range of the photo it samples from
        reach = int(math.ceil(m)) + 2
        lo, hi = _value_range(src, max(0, X0 - reach), max(0, Y0 - reach), min(W, X1 + reach), min(H, Y1 + reach))
    flat = np.ascontiguousarray(src).ravel()
    flow_rows = np.ascontiguousarray(flow).reshape(fh, fw * 2)
    n_taps = max(sx1 - sx0, 0) if bicubic else 0
    wts = np.empty((8, n_taps), np.float32)
    offs = np.empty((8, n_taps), np.int64)
    one = np.float32(1.0)
    for y in range(Y0, Y1):
        fa, fb = _span(X0, X1, sx0, sx1) if sy0 <= y < sy1 else (X0, X0)
        ry = y - ry0
        ra, rb = _span(X0, X1, rx0, rx0 + rw) if 0 <= ry < rh else (X0, X0)
        if fb == fa and rb == ra:
            continue
        xa = fa if rb == ra else (ra if fb == fa else min(fa, ra))
        xb = max(fb, rb)
        if bicubic and fb > fa:
            _row_taps(flow_rows[y - fy0, 2 * (fa - fx0) : 2 * (fb - fx0)], fb - fa, fa, y, H, W, wts, offs)
        for x in range(xa, xb):
            fu = np.float32(0.0)
            fv = np.float32(0.0)
            if fa <= x < fb:
                fu = flow[y - fy0, x - fx0, 0]
                fv = flow[y - fy0, x - fx0, 1]
            moved = fu != 0 or fv != 0
            a = np.float32(0.0)
            rx = x - rx0
            if ra <= x < rb:
                a = alpha[ry, rx]
            if not (moved or a > 0):
                continue
            used[y, x] = True
            if not moved:
                p0, p1, p2 = src[y, x, 0], src[y, x, 1], src[y, x, 2]
            elif bicubic:
                p0, p1, p2 = _bicubic_at(flat, wts, offs, x - fa, lo, hi)
            else:
                p0, p1, p2 = _bilinear(src, np.float32(x) + fu, np.float32(y) + fv)
            r0 = r1 = r2 = np.float32(0.0)
            if a > 0:
                r0, r1, r2 = rendered[ry, rx, 0], rendered[ry, rx, 1], rendered[ry, rx, 2]
            out[y, x, 0] = _to_uint8(a * r0 + (one - a) * p0)
            out[y, x, 1] = _to_uint8(a * r1 + (one - a) * p1)
            out[y, x, 2] = _to_uint8(a * r2 + (one - a) * p2)


@njit(cache=True, nogil=True, inline="always")
def _to_uint8(v):
    """A [0, 1] float as uint8: times 255, rounded half to even, clamped."""
    return np.uint8(min(max(np.rint(v * np.float32(255.0)), np.float32(0.0)), np.float32(255.0)))


@njit(cache=True, nogil=True, inline="always")
def _bilinear(src, sx, sy):
    """RGB of src [H, W, 3] at pixel-index position (sx, sy): bilinear, coordinates clamped to the image."""
    H, W = src.shape[0], src.shape[1]
    one = np.float32(1.0)
    sx = min(max(sx, np.float32(0.0)), np.float32(W - 1))
    sy = min(max(sy, np.float32(0.0)), np.float32(H - 1))
    xa = int(sx)
    ya = int(sy)
    xb = min(xa + 1, W - 1)
    yb = min(ya + 1, H - 1)
    tx = sx - np.float32(xa)
    ty = sy - np.float32(ya)
    p0 = _lerp2(src, xa, xb, ya, yb, 0, tx, ty, one)
    p1 = _lerp2(src, xa, xb, ya, yb, 1, tx, ty, one)
    p2 = _lerp2(src, xa, xb, ya, yb, 2, tx, ty, one)
    return p0, p1, p2


@njit(cache=True, nogil=True, inline="always")
def _lerp2(src, xa, xb, ya, yb, c, tx, ty, one):
    """Channel c of the bilinear blend of the 4 pixels (xa|xb, ya|yb) of src at fractions (tx, ty)."""
    top = src[ya, xa, c] * (one - tx) + src[ya, xb, c] * tx
    bot = src[yb, xa, c] * (one - tx) + src[yb, xb, c] * tx
    return top * (one - ty) + bot * ty
