"""Composite kernels: the feathered alpha of a render and its paste over a flow-warped uint8 photo, in one pass each."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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


@njit(cache=True, nogil=True, error_model="numpy")
def _flow_reach(flow, sx0, sy0, sx1, sy1, fx0, fy0):
    """Largest |flow| component over photo pixels [sy0, sy1) x [sx0, sx1) of a flow whose corner is (fx0, fy0)."""
    m = np.float32(0.0)
    for y in range(sy0, sy1):
        for x in range(sx0, sx1):
            m = max(m, abs(flow[y - fy0, x - fx0, 0]), abs(flow[y - fy0, x - fx0, 1]))
    return m


@njit(cache=True, nogil=True, error_model="numpy")
def warp_paste(src, box, flow, fx0, fy0, rendered, alpha, rx0, ry0, bicubic, out, used):
    """`composite` of an RGB uint8 photo in one pass over the changing region, in place into out and used.

    Each pixel of ``box`` with a non-zero flow samples the photo at its centre plus the flow
    (bicubic, clamped to the range of the photo around the region, or bilinear; border
    padding), every other one keeps its photo value; then the render is blended in with alpha
    and the result rounded to uint8. Pixels with zero flow and zero alpha are left as they are
    (out holds the photo). The arithmetic is the torch path's, in the same order.

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
        lo, hi = np.float32(np.inf), np.float32(-np.inf)
        for y in range(max(0, Y0 - reach), min(H, Y1 + reach)):
            for x in range(max(0, X0 - reach), min(W, X1 + reach)):
                for c in range(3):
                    lo = min(lo, src[y, x, c])
                    hi = max(hi, src[y, x, c])
    one = np.float32(1.0)
    for y in range(Y0, Y1):
        for x in range(X0, X1):
            fu = np.float32(0.0)
            fv = np.float32(0.0)
            if sy0 <= y < sy1 and sx0 <= x < sx1:
                fu = flow[y - fy0, x - fx0, 0]
                fv = flow[y - fy0, x - fx0, 1]
            moved = fu != 0 or fv != 0
            a = np.float32(0.0)
            ry, rx = y - ry0, x - rx0
            if 0 <= ry < rh and 0 <= rx < rw:
                a = alpha[ry, rx]
            if not (moved or a > 0):
                continue
            used[y, x] = True
            if not moved:
                p0, p1, p2 = src[y, x, 0], src[y, x, 1], src[y, x, 2]
            elif bicubic:
                p0, p1, p2 = _bicubic(src, np.float32(x) + fu, np.float32(y) + fv, lo, hi)
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
def _bicubic(src, sx, sy, lo, hi):
    """RGB of src [H, W, 3] at pixel-index position (sx, sy): Keys bicubic, border taps, clamped to [lo, hi]."""
    H, W = src.shape[0], src.shape[1]
    xf = math.floor(sx)
    yf = math.floor(sy)
    wx0, wx1, wx2, wx3 = _cubic(np.float32(sx - xf))
    wy0, wy1, wy2, wy3 = _cubic(np.float32(sy - yf))
    xa = min(max(xf - 1, 0), W - 1)
    xb = min(max(xf, 0), W - 1)
    xc = min(max(xf + 1, 0), W - 1)
    xd = min(max(xf + 2, 0), W - 1)
    p0 = p1 = p2 = np.float32(0.0)
    for i in range(4):
        yy = min(max(yf - 1 + i, 0), H - 1)
        wy = wy0 if i == 0 else (wy1 if i == 1 else (wy2 if i == 2 else wy3))
        p0 += (src[yy, xa, 0] * wx0 + src[yy, xb, 0] * wx1 + src[yy, xc, 0] * wx2 + src[yy, xd, 0] * wx3) * wy
        p1 += (src[yy, xa, 1] * wx0 + src[yy, xb, 1] * wx1 + src[yy, xc, 1] * wx2 + src[yy, xd, 1] * wx3) * wy
        p2 += (src[yy, xa, 2] * wx0 + src[yy, xb, 2] * wx1 + src[yy, xc, 2] * wx2 + src[yy, xd, 2] * wx3) * wy
    return min(max(p0, lo), hi), min(max(p1, lo), hi), min(max(p2, lo), hi)


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
    p = np.empty(3, np.float32)
    for c in range(3):
        top = src[ya, xa, c] * (one - tx) + src[ya, xb, c] * tx
        bot = src[yb, xa, c] * (one - tx) + src[yb, xb, c] * tx
        p[c] = top * (one - ty) + bot * ty
    return p[0], p[1], p[2]
