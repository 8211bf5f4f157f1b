"""Unwrap kernel: the per-texel work of `affectsynth.render.unwrap.unwrap_texture` over a cached UV raster.

The UV raster of a mesh (which triangle covers each texel, and where in it) depends on the
topology and the UVs only, the same for every photo; with it cached, what is left per photo
is a loop over the covered texels: interpolate position and normal, project into the photo,
test depth, normal and photo mask, sample the photo bilinearly. The torch path spends ~40
whole-texture ops on this; the arithmetic is the same here (interpolation as `interp_fwd`,
bilinear sampling as ``grid_sample`` with border padding), so results agree to float rounding.
`seen_band` with `fill_seen_edges`, and `fill_from_mirror`, are the two steps of `fill_texture`
before its last push-pull, each one pass over the texture instead of ~10 whole-texture ops; `eroded_blur` is
a mask's erosion and box blur (the seen weight of an unwrap) in integer sums. `depth_from_ids`
is the depth buffer's camera z from the rasterizer's triangle ids in one pass (what `rast_fill`
then `interp_fwd` compute, without the barycentric image between them).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from affectsynth.render._kernels.barycentrics import _pixel_edges
from affectsynth.render._kernels.rounding import floor_int

__all__ = ["box_mean", "depth_from_ids", "eroded_blur", "fill_from_mirror", "fill_seen_edges", "seen_band", "unwrap_texels"]


@njit(cache=True, nogil=True, error_model="numpy")
def _lerp_corner(a, i0, i1, i2, k, u, v):
    """Attribute k of rows i0, i1, i2 of `a` at barycentrics (u, v): ``a2 + u (a0 - a2) + v (a1 - a2)``."""
    a2 = a[i2, k]
    return a2 + u * (a[i0, k] - a2) + v * (a[i1, k] - a2)


@njit(cache=True, nogil=True, error_model="numpy")
def _sample_border(image, x, y, out, o):
    """Bilinear sample of image [H, W, C] at pixel coordinates (x, y) (pixel centres at + 0.5),
    coordinates clamped to the image (``grid_sample`` border padding), into out[o]."""
    h, w, nc = image.shape
    sx = min(max(x - np.float32(0.5), np.float32(0.0)), np.float32(w - 1))
    sy = min(max(y - np.float32(0.5), np.float32(0.0)), np.float32(h - 1))
    x0 = floor_int(sx)
    y0 = floor_int(sy)
    fx = sx - np.float32(x0)
    fy = sy - np.float32(y0)
    x1 = min(x0 + 1, w - 1)
    y1 = min(y0 + 1, h - 1)
    one = np.float32(1.0)
    for k in range(nc):
        top = image[y0, x0, k] * (one - fx) + image[y0, x1, k] * fx
        bot = image[y1, x0, k] * (one - fx) + image[y1, x1, k] * fx
        out[o, k] = top * (one - fy) + bot * fy


@njit(cache=True, nogil=True, error_model="numpy")
def unwrap_texels(texel, corners, bary, verts, normals, camera, image, zbuf, zbox, photo_mask, has_mask,
                  min_cos, cos_ramp, depth_tol, texture, weight, visible):
    """Unwrap the photo onto the covered texels of a cached UV raster.

    Args:
        texel: [N] int64 flat texel index (row-major in the R x R texture) of each covered texel.
        corners: [N, 3] int32 vertex ids of the triangle covering it (rasterizer corner order).
        bary: [N, 2] float32 the rasterizer's barycentrics (u, v) of corners 0 and 1.
        verts: [V, 3] float32 camera-space vertices; normals: [V, 3] float32 unit vertex normals.
        camera: [4] float32 (fx, fy, cx, cy).
        image: [H, W, C] float32 photo; zbuf: [h, w] float32 depth buffer (inf where empty).
        zbox: [4] float32 (x0, y0, sx, sy): photo pixel p is buffer pixel (p - (x0, y0)) * (sx, sy).
        photo_mask: [H, W] bool pixels that may be sampled (read only when `has_mask`).
        min_cos, cos_ramp, depth_tol: `UnwrapSettings`.
        texture: [R * R, C] float32 out, zero-filled; weight: [R * R] float32 out, zero-filled;
        visible: [R * R] bool out, False-filled.
    """
    h, w = image.shape[0], image.shape[1]
    bh, bw = zbuf.shape
    fx, fy, cx, cy = camera[0], camera[1], camera[2], camera[3]
    bx0, by0, bsx, bsy = zbox[0], zbox[1], zbox[2], zbox[3]
    tiny = np.float32(1e-12)
    for q in range(texel.shape[0]):
        i0, i1, i2 = corners[q, 0], corners[q, 1], corners[q, 2]
        u, v = bary[q, 0], bary[q, 1]
        px = _lerp_corner(verts, i0, i1, i2, 0, u, v)
        py = _lerp_corner(verts, i0, i1, i2, 1, u, v)
        pz = _lerp_corner(verts, i0, i1, i2, 2, u, v)
        nx = _lerp_corner(normals, i0, i1, i2, 0, u, v)
        ny = _lerp_corner(normals, i0, i1, i2, 1, u, v)
        nz = _lerp_corner(normals, i0, i1, i2, 2, u, v)
        nn = max(np.float32(math.sqrt(nx * nx + ny * ny + nz * nz)), tiny)
        pn = max(np.float32(math.sqrt(px * px + py * py + pz * pz)), tiny)
        cos = -((nx / nn) * px + (ny / nn) * py + (nz / nn) * pz) / pn
        if not (pz > 0 and cos > min_cos):
            continue
        x = px / pz * fx + cx
        y = py / pz * fy + cy
        if not (x >= 0 and x <= w and y >= 0 and y <= h):
            continue
        bu = floor_int((x - bx0) * bsx)
        bv = floor_int((y - by0) * bsy)
        if bu < 0 or bu >= bw or bv < 0 or bv >= bh or not pz <= zbuf[bv, bu] * (np.float32(1.0) + depth_tol):
            continue
        if has_mask and not photo_mask[min(max(floor_int(y), 0), h - 1), min(max(floor_int(x), 0), w - 1)]:
            continue
        k = texel[q]
        t = min(max((cos - min_cos) / cos_ramp, np.float32(0.0)), np.float32(1.0))
        weight[k] = t * t * (np.float32(3.0) - np.float32(2.0) * t)
        visible[k] = True
        _sample_border(image, x, y, texture, k)


@njit(cache=True, nogil=True, error_model="numpy")
def _integral(values):
    """[H + 1, W + 1] int64 summed-area table of an [H, W] 0/1 array: S[i, j] = sum of values[:i, :j]."""
    h, w = values.shape
    out = np.zeros((h + 1, w + 1), np.int64)
    for i in range(h):
        run = 0
        for j in range(w):
            run += values[i, j]
            out[i + 1, j + 1] = out[i, j + 1] + run
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _near_seen(w, grow):
    """[R, R] bool: texels with one of weight > 0 within a (2 grow + 1)^2 box (clipped to the texture),
    as a max-pool of the seen mask (box counts from a summed-area table)."""
    h, wd = w.shape
    s = _integral(w > 0)
    near = np.zeros((h, wd), np.bool_)
    for i in range(h):
        i0, i1 = max(0, i - grow), min(h, i + grow + 1)
        for j in range(wd):
            j0, j1 = max(0, j - grow), min(wd, j + grow + 1)
            near[i, j] = s[i1, j1] - s[i0, j1] - s[i1, j0] + s[i0, j0] > 0
    return near


@njit(cache=True, nogil=True, error_model="numpy")
def seen_band(weight, grow, out):
    """out [R, R] bool: the growth band of `fill_texture`, texels of weight < 1 within `grow` of a seen one."""
    near = _near_seen(weight, grow)
    h, wd = weight.shape
    one = np.float32(1.0)
    for i in range(h):
        for j in range(wd):
            out[i, j] = near[i, j] and weight[i, j] < one


@njit(cache=True, nogil=True, error_model="numpy")
def fill_seen_edges(color, weight, local, band):
    """The local growth step of `fill_texture`, in place: texels of the `band` (`seen_band`) take
    ``local (1 - w) + c w`` and weight 1; `local` [N, C] holds the push-pull fill of the band's
    texels, one row each in row-major order (`push_pull_at`)."""
    h, wd, nc = color.shape
    one = np.float32(1.0)
    q = 0
    for i in range(h):
        for j in range(wd):
            if band[i, j]:
                w = weight[i, j]
                for k in range(nc):
                    color[i, j, k] = local[q, k] * (one - w) + color[i, j, k] * w
                weight[i, j] = one
                q += 1


@njit(cache=True, nogil=True, error_model="numpy")
def fill_from_mirror(color, weight, mirror_uv, out_color, out_weight):
    """The mirror step of `fill_texture`: ``c' = (1 - a) c + a m``, ``w' = w + (1 - w) w_m`` with m, w_m
    the weight-normalised bilinear sample (zero padding, as ``grid_sample``) of (c w, w) at the
    texel's mirror uv, and ``a = (1 - w) [w_m > 1e-6]``. Texels without a mirror (uv < 0), and texels
    of weight 1 (a = 0, so the formula gives c back for any finite m: most of a photo's texture),
    are copied unchanged without sampling. The taps are summed in ``grid_sample``'s order (top
    left, top right, bottom left, bottom right), those outside the texture skipped, one channel
    at a time (each channel's sum in that order)."""
    h, wd, nc = color.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for i in range(h):
        for j in range(wd):
            w = weight[i, j]
            out_weight[i, j] = w
            mu, mv = mirror_uv[i, j, 0], mirror_uv[i, j, 1]
            if w == one or not (mu >= 0 and mv >= 0):  # a seen texel (a = 0) or no mirror: unchanged
                for k in range(nc):
                    out_color[i, j, k] = color[i, j, k]
                continue
            sx = mu * np.float32(wd) - np.float32(0.5)
            sy = mv * np.float32(h) - np.float32(0.5)
            x0 = floor_int(sx)
            y0 = floor_int(sy)
            fx = sx - np.float32(x0)
            fy = sy - np.float32(y0)
            x1, y1 = x0 + 1, y0 + 1
            in_x0, in_x1 = 0 <= x0 < wd, 0 <= x1 < wd
            in_y0, in_y1 = 0 <= y0 < h, 0 <= y1 < h
            in00, in01, in10, in11 = in_y0 and in_x0, in_y0 and in_x1, in_y1 and in_x0, in_y1 and in_x1
            t00, t01 = (one - fy) * (one - fx), (one - fy) * fx
            t10, t11 = fy * (one - fx), fy * fx
            wm = zero
            if in00:
                wm += t00 * weight[y0, x0]
            if in01:
                wm += t01 * weight[y0, x1]
            if in10:
                wm += t10 * weight[y1, x0]
            if in11:
                wm += t11 * weight[y1, x1]
            den = max(wm, np.float32(1e-6))
            wm_c = min(max(wm, zero), one)
            a = (one - w) if wm_c > np.float32(1e-6) else zero
            for k in range(nc):
                acc = zero
                if in00:
                    acc += t00 * (color[y0, x0, k] * weight[y0, x0])
                if in01:
                    acc += t01 * (color[y0, x1, k] * weight[y0, x1])
                if in10:
                    acc += t10 * (color[y1, x0, k] * weight[y1, x0])
                if in11:
                    acc += t11 * (color[y1, x1, k] * weight[y1, x1])
                out_color[i, j, k] = (one - a) * color[i, j, k] + a * (acc / den)
            out_weight[i, j] = w + (one - w) * wm_c


@njit(cache=True, nogil=True, error_model="numpy")
def eroded_blur(mask, erode, blur, out):
    """out [H, W] float32: `mask` [H, W] bool eroded by a (2 erode + 1)^2 box, then box-averaged over
    blur x blur (odd); both windows clipped to the image (a min-pool with implicit padding, then
    ``avg_pool2d(count_include_pad=False)``). Box counts of 0/1 values are exact integers (summed-area
    tables): bit for bit the pools' result."""
    h, w = mask.shape
    s = _integral(mask)
    kept = np.zeros((h, w), np.uint8)
    for i in range(h):
        i0, i1 = max(0, i - erode), min(h, i + erode + 1)
        for j in range(w):
            j0, j1 = max(0, j - erode), min(w, j + erode + 1)
            kept[i, j] = s[i1, j1] - s[i0, j1] - s[i1, j0] + s[i0, j0] == (i1 - i0) * (j1 - j0)
    s = _integral(kept)
    r = blur // 2
    for i in range(h):
        i0, i1 = max(0, i - r), min(h, i + r + 1)
        for j in range(w):
            j0, j1 = max(0, j - r), min(w, j + r + 1)
            out[i, j] = np.float32(s[i1, j1] - s[i0, j1] - s[i1, j0] + s[i0, j0]) / np.float32((i1 - i0) * (j1 - j0))


@njit(cache=True, nogil=True, error_model="numpy")
def box_mean(values, radius, out):
    """out [H, W] float32: the mean of `values` [H, W] float32 over the (2 radius + 1)^2 box clipped to
    the image, summed row by row from 0 as ``avg_pool2d(count_include_pad=False)`` sums on the CPU;
    boxes of zeros alone (most of a sparse weight map) are skipped."""
    h, w = values.shape
    nz = np.zeros((h, w), np.bool_)
    for i in range(h):
        for j in range(w):
            if values[i, j] != 0:
                for k in range(max(0, i - radius), min(h, i + radius + 1)):
                    for m in range(max(0, j - radius), min(w, j + radius + 1)):
                        nz[k, m] = True
    for i in range(h):
        i0, i1 = max(0, i - radius), min(h, i + radius + 1)
        for j in range(w):
            if not nz[i, j]:
                out[i, j] = 0.0
                continue
            j0, j1 = max(0, j - radius), min(w, j + radius + 1)
            acc = np.float32(0.0)
            for k in range(i0, i1):
                for m in range(j0, j1):
                    acc += values[k, m]
            out[i, j] = acc / np.float32((i1 - i0) * (j1 - j0))


@njit(cache=True, nogil=True, error_model="numpy")
def depth_from_ids(pos, tri, ids, z, out):
    """Camera z per pixel of one rasterized image: ``out`` [H, W] float32, inf where ``ids`` is 0.

    pos [1, V, 4] clip positions, tri [T, 3] int32, ids [H, W] triangle id + 1 (the
    rasterizer's visibility), z [V] float32 camera z. The barycentrics are `rast_fill`'s, rounded
    to float32 as its output is, and z is interpolated as `interp_fwd` does, so the buffer is
    bit-identical to ``interpolate(z, rasterize(...))`` at covered pixels.
    """
    height, width = ids.shape
    sx = 2.0 / width
    sy = 2.0 / height
    for r in range(height):
        ny = (r + 0.5) * sy - 1.0
        for c in range(width):
            t = ids[r, c] - 1
            if t < 0:
                out[r, c] = np.inf
                continue
            i0 = tri[t, 0]
            i1 = tri[t, 1]
            i2 = tri[t, 2]
            nx = (c + 0.5) * sx - 1.0
            e0, e1, e2 = _pixel_edges(pos, 0, i0, i1, i2, nx, ny)[9:]
            inv = 1.0 / (e0 + e1 + e2)
            u = np.float32(e0 * inv)
            v = np.float32(e1 * inv)
            z2 = z[i2]
            out[r, c] = z2 + u * (z[i0] - z2) + v * (z[i1] - z2)
