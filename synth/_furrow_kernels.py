"""Furrow kernel of the expression shading: wrinkle-map lookups, furrow heights, bumps and fold neighbourhoods in one pass."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from affectsynth.render._kernels.rounding import floor_int

__all__ = ["blur_weighted", "crease_surroundings", "edge_ratio", "furrows", "grid_ratio", "lift_folds", "shade_window",
           "upsample_grid"]


@njit(cache=True, nogil=True, inline="always")
def _uv_taps(rast, y, x, tri_uv, uv, ht, wt):
    """The 4 bilinear taps (clamped) and their weights at the texture coordinates of window pixel (y, x)."""
    t = np.int64(rast[y, x, 3]) - 1
    u = rast[y, x, 0]
    v = rast[y, x, 1]
    i0 = tri_uv[t, 0]
    i1 = tri_uv[t, 1]
    i2 = tri_uv[t, 2]
    tu = uv[i2, 0] + u * (uv[i0, 0] - uv[i2, 0]) + v * (uv[i1, 0] - uv[i2, 0])
    tv = uv[i2, 1] + u * (uv[i0, 1] - uv[i2, 1]) + v * (uv[i1, 1] - uv[i2, 1])
    xs = tu * np.float32(wt) - np.float32(0.5)
    ys = tv * np.float32(ht) - np.float32(0.5)
    xf = floor_int(xs)  # int(math.floor()) without the floorf call
    yf = floor_int(ys)
    fx = xs - xf
    fy = ys - yf
    xa = min(max(int(xf), 0), wt - 1)
    xb = min(max(int(xf) + 1, 0), wt - 1)
    ya = min(max(int(yf), 0), ht - 1)
    yb = min(max(int(yf) + 1, 0), ht - 1)
    return ya, yb, xa, xb, (1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy


@njit(cache=True, nogil=True, inline="always")
def _uv_lookup(rast, y, x, tri_uv, uv, tex, reach, out):
    """Bilinear, clamped lookup of tex [R, R, C] at window pixel (y, x) into out [C]: the F
    distances, then the masks only if some distance is below its `reach` [F]. Returns whether."""
    ya, yb, xa, xb, w00, w01, w10, w11 = _uv_taps(rast, y, x, tri_uv, uv, tex.shape[0], tex.shape[1])
    nf = reach.shape[0]
    any_near = False
    for c in range(nf):
        out[c] = w00 * tex[ya, xa, c] + w01 * tex[ya, xb, c] + w10 * tex[yb, xa, c] + w11 * tex[yb, xb, c]
        if out[c] < reach[c]:
            any_near = True
    if any_near:
        for c in range(nf, tex.shape[2]):
            out[c] = w00 * tex[ya, xa, c] + w01 * tex[ya, xb, c] + w10 * tex[yb, xa, c] + w11 * tex[yb, xb, c]
    return any_near


@njit(cache=True, nogil=True, inline="always")
def _activation(look, nf, act, f):
    s = 0.0
    for m in range(act.shape[1]):
        s += look[nf + m] * act[f, m]
    return min(max(s, 0.0), 1.25)


@njit(cache=True, nogil=True, error_model="numpy")
def furrows(rast, skin, k, tri_uv, uv, tex, act_t, act_s, reach, sigma, height_gain, fold_radius, lift_gain, crease,
            adds, drops, n_tk, sh_tk, coeffs, px_per_cm, occlusion, ratio, lift_near, near, crease_near, crease_feature):
    """Candidate pixels, their furrows' shading and the neighbourhoods of dropped folds, in place.

    Args:
        rast: [H, W, 4] float32 the window's rasterization (u, v, z/w, triangle_id + 1).
        skin: [H, W] bool skin pixels.
        k: the coarse grid's step (cells sampled at k // 2 + i k).
        tri_uv: [T, 3] int32 texture-coordinate indices.
        uv: [U, 2] float32 texture coordinates.
        tex: [R, R, F + M] float32 the wrinkle maps (distances, then masks).
        act_t, act_s: [F, M] float32 target and source activations.
        reach: [F] candidate distance per feature, cm (its furrow's reach plus a cell).
        sigma: [F] groove sigma, cm.
        height_gain: [F] its depth factor (cm, negative; 0: the feature draws no groove, it only
            lifts a dropped fold).
        fold_radius: [F] biweight radius of `fold_neighbourhood`, cm.
        lift_gain: its activation gain.
        crease: [F] bool the features whose dropped folds are lifted by their own darkness
            thresholds (occluded creases): their neighbourhoods go to ``crease_near``.
        adds, drops: whether to draw added furrows / mark dropped folds.
        n_tk: [h, w, 3] float32 target normals on the grid.
        sh_tk: [h, w] float32 their shading.
        coeffs: [9] float32 SH light.
        px_per_cm: the face's scale.
        occlusion: darkening per cm of depth.
        ratio: [H, W] float32, multiplied by the furrows' shading at candidates (if adds).
        lift_near: [H, W] float32 output (zero-filled), the dropped folds' neighbourhood (the
            features not in ``crease``).
        near: [H, W] bool output (zero-filled), the candidate pixels.
        crease_near: [H, W] float32 output (zero-filled), the dropped creases' neighbourhood.
        crease_feature: [H, W] uint8 output (zero-filled), the crease feature that gives it.

    Returns:
        How many candidate pixels there are.
    """
    H, W = skin.shape
    hk, wk = n_tk.shape[0], n_tk.shape[1]
    nf = act_t.shape[0]
    nc = tex.shape[2]
    look = np.empty(nc, np.float32)
    changed = np.zeros(nf, np.bool_)  # features whose activation changes in some mask (and so draw or lift)
    limit = np.empty(nf, np.float32)  # where both the groove and the fold neighbourhood are 0
    for f in range(nf):
        for m in range(act_t.shape[1]):
            d = act_t[f, m] - act_s[f, m]
            if abs(d) > 1e-6 and (height_gain[f] != 0 or (drops and d < 0)):  # no groove: only a drop lifts
                changed[f] = True
        limit[f] = max(3.5 * sigma[f], fold_radius[f])
    # coarse grid: cells near a furrow whose activation changes
    near_k = np.zeros((hk, wk), np.bool_)
    for i in range(hk):
        y = k // 2 + i * k
        for j in range(wk):
            x = k // 2 + j * k
            if not skin[y, x]:
                continue
            if not _uv_lookup(rast, y, x, tri_uv, uv, tex, reach, look):
                continue
            for f in range(nf):
                if not changed[f] or look[f] >= reach[f]:
                    continue
                d = _activation(look, nf, act_t, f) - _activation(look, nf, act_s, f)
                if d > 0 and height_gain[f] == 0:
                    continue  # an added fold that draws no groove
                if abs(d) > 1e-6 and look[f] < reach[f]:
                    near_k[i, j] = True
                    break
    height = np.zeros((H, W), np.float32)
    count = 0
    for y in range(min(H, hk * k)):
        i = y // k
        for x in range(min(W, wk * k)):
            if not (skin[y, x] and near_k[i, x // k]):
                continue
            near[y, x] = True
            count += 1
            if not _uv_lookup(rast, y, x, tri_uv, uv, tex, limit, look):
                continue
            hn = 0.0
            ln = 0.0
            cn = 0.0
            cf = 0
            for f in range(nf):
                if not changed[f] or look[f] >= limit[f]:
                    continue  # beyond the reach of both the groove and the fold neighbourhood
                at = _activation(look, nf, act_t, f)
                as_ = _activation(look, nf, act_s, f)
                if adds and at > as_:
                    z = look[f] / sigma[f]
                    if z < 3.5:
                        hn += (at - as_) * math.exp(-0.5 * z * z) * height_gain[f]
                if drops:
                    a = min(max((as_ - at) * lift_gain, 0.0), 1.0)
                    q = look[f] / fold_radius[f]
                    b = max(1 - q * q, 0.0)
                    if not crease[f]:
                        ln = max(ln, a * b * b)
                    elif a * b * b > cn:
                        cn = a * b * b
                        cf = f
            height[y, x] = hn
            lift_near[y, x] = ln
            crease_near[y, x] = cn
            crease_feature[y, x] = cf
    if not adds:
        return count
    half = 0.5 * px_per_cm
    for y in range(min(H, hk * k)):
        i = min(y // k, hk - 1)
        for x in range(min(W, wk * k)):
            if not near[y, x]:
                continue
            j = min(x // k, wk - 1)
            hr, hl = height[y, min(x + 1, W - 1)], height[y, max(x - 1, 0)]
            hd, hu = height[min(y + 1, H - 1), x], height[max(y - 1, 0), x]
            if hr == 0 and hl == 0 and hd == 0 and hu == 0 and height[y, x] == 0:
                continue  # flat: the target's own (unit) normal, a factor of 1
            gx = (hr - hl) * half
            gy = (hd - hu) * half
            nx, ny, nz = n_tk[i, j, 0], n_tk[i, j, 1], n_tk[i, j, 2]
            dot = gx * nx + gy * ny
            bx = nx - (gx - dot * nx)
            by = ny - (gy - dot * ny)
            bz = nz - (-dot * nz)
            norm = max(math.sqrt(bx * bx + by * by + bz * bz), 1e-12)
            bx /= norm
            by /= norm
            bz /= norm
            s = (coeffs[0] * 0.282095 + 0.488603 * (coeffs[1] * by + coeffs[2] * bz + coeffs[3] * bx)
                 + 1.092548 * (coeffs[4] * bx * by + coeffs[5] * by * bz + coeffs[7] * bx * bz)
                 + 0.315392 * coeffs[6] * (3 * bz * bz - 1) + 0.546274 * coeffs[8] * (bx * bx - by * by))
            s = max(s, 0.05)
            ratio[y, x] *= s * max(1 + occlusion * height[y, x], 0.3) / sh_tk[i, j]
    return count


@njit(cache=True, nogil=True, error_model="numpy")
def shade_window(region, ratio, lift, smooth, has_lift, out):
    """`apply_shading` on one window: ``x = I + lift (255 smooth - I)``, luminance times ratio,
    chroma times sqrt(ratio), rounded; pixels with ratio 1 and no lift are copied.

    Args:
        region: [h, w, 3] uint8 the image's window.
        ratio: [h, w] float32.
        lift: [h, w] float32 (read only if has_lift).
        smooth: [h, w, 3] float32 (read only if has_lift).
        has_lift: whether lift and smooth apply.
        out: [h, w, 3] uint8 output.
    """
    h, w = ratio.shape
    for y in range(h):
        for x in range(w):
            r = ratio[y, x]
            a = lift[y, x] if has_lift else np.float32(0.0)
            if r == 1 and a == 0:
                out[y, x, 0] = region[y, x, 0]
                out[y, x, 1] = region[y, x, 1]
                out[y, x, 2] = region[y, x, 2]
                continue
            c0 = np.float32(region[y, x, 0])
            c1 = np.float32(region[y, x, 1])
            c2 = np.float32(region[y, x, 2])
            if has_lift:
                c0 = c0 + a * (smooth[y, x, 0] * np.float32(255.0) - c0)
                c1 = c1 + a * (smooth[y, x, 1] * np.float32(255.0) - c1)
                c2 = c2 + a * (smooth[y, x, 2] * np.float32(255.0) - c2)
            lum = c0 * np.float32(0.299) + c1 * np.float32(0.587) + c2 * np.float32(0.114)
            sr = np.float32(math.sqrt(r))
            out[y, x, 0] = np.uint8(min(max(np.rint(lum * r + (c0 - lum) * sr), 0.0), 255.0))
            out[y, x, 1] = np.uint8(min(max(np.rint(lum * r + (c1 - lum) * sr), 0.0), 255.0))
            out[y, x, 2] = np.uint8(min(max(np.rint(lum * r + (c2 - lum) * sr), 0.0), 255.0))


@njit(cache=True, nogil=True, error_model="numpy")
def upsample_grid(grid, k, out):
    """out [H, W] float32: bilinear upsampling by k of grid [h, w] (half-pixel centres, as
    ``F.interpolate(..., scale_factor=k, align_corners=False)``), edges replicated beyond.

    Each grid row is blended along x once (float64, into every output column), then each output
    row is the blend of two such rows (contiguous, vectorised): bit for bit the per-pixel formula."""
    hk, wk = grid.shape
    H, W = out.shape
    inv = 1.0 / k
    cols = np.empty((hk, W))
    for x in range(W):
        sx = max((x + 0.5) * inv - 0.5, 0.0)
        x0 = min(int(sx), wk - 1)
        x1 = min(x0 + 1, wk - 1)
        lx = min(sx - x0, 1.0)
        for a in range(hk):
            cols[a, x] = (1 - lx) * grid[a, x0] + lx * grid[a, x1]
    for y in range(H):
        sy = max((y + 0.5) * inv - 0.5, 0.0)
        y0 = min(int(sy), hk - 1)
        y1 = min(y0 + 1, hk - 1)
        ly = min(sy - y0, 1.0)
        for x in range(W):
            out[y, x] = (1 - ly) * cols[y0, x] + ly * cols[y1, x]


@njit(cache=True, nogil=True, error_model="numpy")
def edge_ratio(r, skin, coverage, lo, hi, edge, ratio):
    """The ratio image faded to 1 at the skin's edges, in place into ratio [H, W]; edge [H, W] out.

    edge: the 5 x 5 mean of skin (in-bounds pixels only, separable) times the coverage in [0, 1];
    ratio: ``1 + (clamp(r, lo, hi) - 1) edge`` on skin, 1 elsewhere.
    """
    H, W = skin.shape
    tmp = np.empty((H, W), np.float32)
    count = np.empty(W, np.int64)
    for y in range(H):  # rows of taps innermost, contiguous: vectorised
        count[:] = 0
        for o in range(-2, 3):
            for x in range(max(0, -o), min(W, W - o)):
                count[x] += skin[y, x + o]
        for x in range(W):
            tmp[y, x] = count[x] / (min(W, x + 3) - max(0, x - 2))
    col = np.empty(W)
    for y in range(H):
        a, b = max(0, y - 2), min(H, y + 3)
        col[:] = 0.0
        for d in range(a, b):
            for x in range(W):
                col[x] += tmp[d, x]
        for x in range(W):
            e = col[x] / (b - a) * min(max(coverage[y, x], 0.0), 1.0)
            edge[y, x] = e
            ratio[y, x] = 1 + (min(max(r[y, x], lo), hi) - 1) * e if skin[y, x] else 1.0


@njit(cache=True, nogil=True, error_model="numpy")
def blur_weighted(x, weight, kernel, out):
    """out [h, w, C]: Gaussian blur (separable, zero beyond the edges) of x [h, w, C] times
    weight [h, w], over the blurred weight (clamped at 1e-6): an average of the weighted pixels.

    Channel planes, the taps in the outer loop and the pixels of a row innermost (contiguous, so
    the compiler vectorises them); each output still sums its taps in ascending order."""
    h, w, nc = x.shape
    r = kernel.shape[0] // 2
    planes = np.empty((nc, h, w), np.float32)
    for c in range(nc):
        for y in range(h):
            for xx in range(w):
                planes[c, y, xx] = x[y, xx, c]
    tmp = np.zeros((nc + 1, h, w), np.float32)
    for y in range(h):
        for o in range(-r, r + 1):
            g = kernel[o + r]
            lo, hi = max(0, -o), min(w, w - o)
            for xx in range(lo, hi):
                tmp[nc, y, xx] += g * weight[y, xx + o]
            for c in range(nc):
                for xx in range(lo, hi):
                    tmp[c, y, xx] += (g * weight[y, xx + o]) * planes[c, y, xx + o]
    acc = np.zeros((nc + 1, w), np.float32)
    for y in range(h):
        acc[:, :] = 0.0
        for d in range(max(0, y - r), min(h, y + r + 1)):
            g = kernel[d - y + r]
            for c in range(nc + 1):
                for xx in range(w):
                    acc[c, xx] += g * tmp[c, d, xx]
        for xx in range(w):
            den = max(acc[nc, xx], np.float32(1e-6))
            for c in range(nc):
                out[y, xx, c] = acc[c, xx] / den


@njit(cache=True, nogil=True, error_model="numpy")
def crease_surroundings(grid, skin_k, crease_near, k, floor, luma, weight):
    """The weights of the k-grid's samples in the surroundings of dropped folds, in place: 1 on
    the skin, 0 elsewhere and on a dropped crease's floor (samples in its neighbourhood darker
    than ``floor`` x the lower median of the skin samples' luminance).

    Args:
        grid: [h, w, 3] float32 the window's image on the k-grid, in [0, 1].
        skin_k: [h, w] bool its skin samples.
        crease_near: [H, W] float32 the dropped creases' neighbourhood (from `furrows`).
        k: the grid's step.
        floor: fraction of the median skin luminance below which a crease sample is its floor.
        luma: [3] float32 luminance weights.
        weight: [h, w] float32 output.

    Returns:
        Whether any sample was left out.
    """
    hk, wk = skin_k.shape
    values = np.empty(hk * wk, np.float32)
    n = 0
    own = False
    for i in range(hk):
        for j in range(wk):
            weight[i, j] = np.float32(1.0) if skin_k[i, j] else np.float32(0.0)
            if skin_k[i, j]:
                values[n] = grid[i, j, 0] * luma[0] + grid[i, j, 1] * luma[1] + grid[i, j, 2] * luma[2]
                n += 1
                if crease_near[k // 2 + i * k, k // 2 + j * k] > 0:
                    own = True
    if not own:
        return False
    mid = (n - 1) // 2  # the lower median
    limit = floor * np.partition(values[:n], mid)[mid]
    out = False
    for i in range(hk):
        for j in range(wk):
            if skin_k[i, j] and crease_near[k // 2 + i * k, k // 2 + j * k] > 0:
                if grid[i, j, 0] * luma[0] + grid[i, j, 1] * luma[1] + grid[i, j, 2] * luma[2] < limit:
                    weight[i, j] = 0.0
                    out = True
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def lift_folds(image, near, lift_near, smooth_k, edge, k, threshold, ramp, luma, lift, smooth,
               crease_near, crease_feature, crease_dark):
    """Where the photo's own creases near a dropped fold are lifted, in place: as far as the
    fold or crease (`furrows`) that lifts the pixel most. A fold's pixel is lifted towards its
    surroundings by how much darker it is (``threshold``, ``ramp``); a crease's pixel darker than
    its surroundings by more than ``crease_dark`` is brightened to that darkening.

    Args:
        image: [H, W, 3] uint8 the composite's window.
        near: [H, W] bool candidate pixels.
        lift_near: [H, W] float32 the dropped folds' neighbourhood.
        smooth_k: [h, w, 3] float32 the skin's surroundings on the coarse grid.
        edge: [H, W] float32 the fade at the skin's edges.
        k: the coarse grid's step.
        threshold: darkening below the surroundings before a pixel is lifted.
        ramp: darkening above the threshold at which it is lifted fully.
        luma: [3] float32 luminance weights.
        lift: [H, W] float32 output (zero-filled).
        smooth: [H, W, 3] float32 output (zero-filled): the surroundings at candidates.
        crease_near: [H, W] float32 the dropped creases' neighbourhood.
        crease_feature: [H, W] uint8 their feature.
        crease_dark: [F] float64 per feature, the darkening a crease's pixel keeps at most.
    """
    H, W = near.shape
    hk, wk = smooth_k.shape[0], smooth_k.shape[1]
    for y in range(H):
        i = min(y // k, hk - 1)
        for x in range(W):
            if not near[y, x]:
                continue
            j = min(x // k, wk - 1)
            a0, a1, a2 = smooth_k[i, j, 0], smooth_k[i, j, 1], smooth_k[i, j, 2]
            smooth[y, x, 0] = a0
            smooth[y, x, 1] = a1
            smooth[y, x, 2] = a2
            lum = (np.float32(image[y, x, 0]) / np.float32(255.0) * luma[0] + np.float32(image[y, x, 1]) / np.float32(255.0) * luma[1]
                   + np.float32(image[y, x, 2]) / np.float32(255.0) * luma[2])
            around = max(a0 * luma[0] + a1 * luma[1] + a2 * luma[2], np.float32(1e-3))
            dark = 1 - lum / around
            a = lift_near[y, x] * min(max((dark - threshold) / ramp, 0.0), 1.0)
            if crease_near[y, x] > 0 and dark > crease_dark[crease_feature[y, x]]:
                a = max(a, crease_near[y, x] * (1 - crease_dark[crease_feature[y, x]] / dark))
            lift[y, x] = a * edge[y, x]


@njit(cache=True, nogil=True, inline="always")
def _sh(coeffs, x, y, z):
    return (coeffs[0] * 0.282095 + 0.488603 * (coeffs[1] * y + coeffs[2] * z + coeffs[3] * x)
            + 1.092548 * (coeffs[4] * x * y + coeffs[5] * y * z + coeffs[7] * x * z)
            + 0.315392 * coeffs[6] * (3 * z * z - 1) + 0.546274 * coeffs[8] * (x * x - y * y))


@njit(cache=True, nogil=True, error_model="numpy")
def grid_ratio(rast, skin, k, tri, verts_t, verts_s, coeffs, n_tk, sh_tk, geo):
    """The mesh's shading ratio on the coarse grid (cells at k // 2 + i k), in place.

    Args:
        rast: [H, W, 4] float32 the window's rasterization.
        skin: [H, W] bool skin pixels.
        k: the grid's step.
        tri: [T, 3] int32 the rasterized triangles.
        verts_t: [V, 3] float32 target vertices, camera space.
        verts_s: [V, 3] float32 source vertices, camera space.
        coeffs: [9] float32 SH light.
        n_tk: [h, w, 3] float32 output: the target's unit normals (0 off the skin).
        sh_tk: [h, w] float32 output: their shading, at least 0.05.
        geo: [h, w] float32 output: target over source shading on the skin, 1 elsewhere.
    """
    hk, wk = sh_tk.shape
    pos = np.zeros((hk, wk, 6), np.float32)
    valid = np.zeros((hk, wk), np.bool_)
    for i in range(hk):
        y = k // 2 + i * k
        for j in range(wk):
            x = k // 2 + j * k
            valid[i, j] = skin[y, x]
            t = np.int64(rast[y, x, 3]) - 1
            if t < 0:
                continue
            u = rast[y, x, 0]
            v = rast[y, x, 1]
            i0, i1, i2 = tri[t, 0], tri[t, 1], tri[t, 2]
            for c in range(3):
                a2 = verts_t[i2, c]
                pos[i, j, c] = a2 + u * (verts_t[i0, c] - a2) + v * (verts_t[i1, c] - a2)
                b2 = verts_s[i2, c]
                pos[i, j, 3 + c] = b2 + u * (verts_s[i0, c] - b2) + v * (verts_s[i1, c] - b2)
    d = np.empty(12, np.float32)
    shs = np.empty(2, np.float32)
    for i in range(hk):
        for j in range(wk):
            if not valid[i, j]:
                s0 = max(_sh(coeffs, 0.0, 0.0, 0.0), 0.05)
                n_tk[i, j, 0] = 0.0
                n_tk[i, j, 1] = 0.0
                n_tk[i, j, 2] = 0.0
                sh_tk[i, j] = s0
                geo[i, j] = 1.0
                continue
            jn, jp = min(j + 1, wk - 1), max(j - 1, 0)
            vn = valid[i, jn] and j < wk - 1
            vp = valid[i, jp] and j > 0
            inn, ip = min(i + 1, hk - 1), max(i - 1, 0)
            un = valid[inn, j] and i < hk - 1
            up = valid[ip, j] and i > 0
            for c in range(6):
                d[c] = (pos[i, jn, c] if vn else pos[i, j, c]) - (pos[i, jp, c] if vp else pos[i, j, c])  # dx
                d[6 + c] = (pos[inn, j, c] if un else pos[i, j, c]) - (pos[ip, j, c] if up else pos[i, j, c])  # dy
            for m in range(2):
                dx0, dx1, dx2 = d[3 * m], d[3 * m + 1], d[3 * m + 2]
                dy0, dy1, dy2 = d[6 + 3 * m], d[6 + 3 * m + 1], d[6 + 3 * m + 2]
                nx = dy1 * dx2 - dy2 * dx1
                ny = dy2 * dx0 - dy0 * dx2
                nz = dy0 * dx1 - dy1 * dx0
                norm = max(math.sqrt(nx * nx + ny * ny + nz * nz), 1e-12)
                nx /= norm
                ny /= norm
                nz /= norm
                if m == 0:
                    n_tk[i, j, 0] = nx
                    n_tk[i, j, 1] = ny
                    n_tk[i, j, 2] = nz
                shs[m] = max(_sh(coeffs, nx, ny, nz), 0.05)
            sh_tk[i, j] = shs[0]
            geo[i, j] = shs[0] / shs[1]
