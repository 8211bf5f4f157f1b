"""Face render kernel: skin texture, photo weight and mouth materials of a rasterized window in one pass.

The compiled twin of `FaceRenderer`'s torch shading (interpolate, texture, the mouth's depth and
facing shading, the photo's own teeth) for the CPU when nothing requires grad: one loop over the
window's pixels instead of some forty full-window tensor ops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["shade_face"]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _bilinear(tex, tu, tv, k0, nk, out, o0):
    """Bilinear, clamped sample of channels [k0, k0 + nk) of tex [R, R, C] at texture coordinates
    (tu, tv) into out[o0:o0 + nk], as `render.texture(..., boundary_mode="clamp")` computes it."""
    ht = tex.shape[0]
    wt = tex.shape[1]
    xs = tu * np.float32(wt) - np.float32(0.5)
    ys = tv * np.float32(ht) - np.float32(0.5)
    xf = math.floor(xs)
    yf = math.floor(ys)
    fx = xs - np.float32(xf)
    fy = ys - np.float32(yf)
    xa = min(max(int(xf), 0), wt - 1)
    xb = min(max(int(xf) + 1, 0), wt - 1)
    ya = min(max(int(yf), 0), ht - 1)
    yb = min(max(int(yf) + 1, 0), ht - 1)
    one = np.float32(1.0)
    w00 = (one - fx) * (one - fy)
    w01 = fx * (one - fy)
    w10 = (one - fx) * fy
    w11 = fx * fy
    for k in range(nk):
        c = k0 + k
        out[o0 + k] = w00 * tex[ya, xa, c] + w01 * tex[ya, xb, c] + w10 * tex[yb, xa, c] + w11 * tex[yb, xb, c]


@njit(cache=True, nogil=True, error_model="numpy")
def shade_face(rast, kind, tri, tri_uv, uv, tex, shading, mouth_attr, colors, shadow, params, teeth_rgbw, tile,
               skin, mouth, own, seen):
    """Per pixel of a rasterized window: skin colour, mouth colour, own-teeth weight, photo weight.

    Args:
        rast: [h, w, 4] float32 (u, v, z/w, triangle_id + 1).
        kind: [h, w] int64 material per pixel (-1 none, 0 skin, 1 teeth, 2 gums/tongue, 3 socket).
        tri: [T, 3] int32 vertex indices; tri_uv: [T, 3] int32 uv indices; uv: [U, 2] float32.
        tex: [R, R, C] float32 skin texture: RGB, and with C = 4 the photo weight.
        shading: [V] float32 per-vertex multiplier of the skin colour, or [0] for none.
        mouth_attr: [V, 3] float32 (depth behind the lips/teeth cm, facing ratio, light) per vertex.
        colors: [4, 3] float32 material colours (row 1: teeth); shadow: [3] float32 a thin opening's.
        params: [4] float32 (floor, depth falloff cm, ambient, teeth ambient) of `MouthMaterials`.
        teeth_rgbw: [Rt, Rt, 4] float32 the photo's teeth and their weight, or [0, 0, 4] for none.
        tile: [2] float32 the teeth's UV tile offset.
        skin: [h, w, 3] float32 output: the texture (times shading); empty pixels get what uv (0, 0)
            samples (0 with shading), as the torch path.
        mouth: [h, w, 3] float32 output: material (or photo teeth) colour on kind > 0, else 0.
        own: [h, w] float32 output: the photo teeth's weight on teeth pixels, else 0.
        seen: [h, w] float32 output: the photo weight on skin pixels (C = 4), else 0.
    """
    height, width = kind.shape
    has_shading = shading.shape[0] > 0
    has_weight = tex.shape[2] > 3
    has_teeth = teeth_rgbw.shape[0] > 0
    floor = params[0]
    falloff_cm = params[1]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    acc = np.empty(4, dtype=np.float32)
    a = np.empty(3, dtype=np.float32)
    empty = np.zeros(3, dtype=np.float32)  # what uv (0, 0) samples, times no shading
    if not has_shading:
        _bilinear(tex, zero, zero, 0, 3, empty, 0)
    for y in range(height):
        for x in range(width):
            k = kind[y, x]
            for c in range(3):
                mouth[y, x, c] = zero
            own[y, x] = zero
            seen[y, x] = zero
            if k < 0:
                for c in range(3):
                    skin[y, x, c] = empty[c]
                continue
            t = np.int64(rast[y, x, 3]) - 1
            u = rast[y, x, 0]
            v = rast[y, x, 1]
            j0 = tri_uv[t, 0]
            j1 = tri_uv[t, 1]
            j2 = tri_uv[t, 2]
            tu = uv[j2, 0] + u * (uv[j0, 0] - uv[j2, 0]) + v * (uv[j1, 0] - uv[j2, 0])
            tv = uv[j2, 1] + u * (uv[j0, 1] - uv[j2, 1]) + v * (uv[j1, 1] - uv[j2, 1])
            if has_weight:
                _bilinear(tex, tu, tv, 0, 4, acc, 0)
            else:
                _bilinear(tex, tu, tv, 0, 3, acc, 0)
            i0 = tri[t, 0]
            i1 = tri[t, 1]
            i2 = tri[t, 2]
            s = one
            if has_shading:
                s = shading[i2] + u * (shading[i0] - shading[i2]) + v * (shading[i1] - shading[i2])
            for c in range(3):
                skin[y, x, c] = acc[c] * s if has_shading else acc[c]
            if k == 0:
                if has_weight:
                    seen[y, x] = min(max(acc[3], zero), one)
                continue
            for c in range(3):
                a2 = mouth_attr[i2, c]
                a[c] = a2 + u * (mouth_attr[i0, c] - a2) + v * (mouth_attr[i1, c] - a2)
            falloff = floor + (one - floor) * np.float32(math.exp(-a[0] / falloff_cm))
            ambient = params[3] if k == 1 else params[2]
            darken = falloff * (ambient + (one - ambient) * min(max(a[1], zero), one)) * a[2]
            for c in range(3):
                if k == 1:
                    mouth[y, x, c] = shadow[c] + (colors[1, c] - shadow[c]) * darken
                else:
                    mouth[y, x, c] = colors[k, c] * darken
            if k == 1 and has_teeth:
                _bilinear(teeth_rgbw, tu - tile[0], tv - tile[1], 0, 4, acc, 0)
                wt = min(max(acc[3], zero), one)
                for c in range(3):
                    mouth[y, x, c] = wt * acc[c] + (one - wt) * mouth[y, x, c]
                own[y, x] = wt
