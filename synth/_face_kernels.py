"""Face render kernels: skin texture, photo weight and mouth materials of a rasterized window in one pass,
and the passes around it (clip projection, pixel materials, mouth facing ratios, teeth-gap and slit closing, RGBA).

The compiled twins of `FaceRenderer`'s torch steps (interpolate, texture, the mouth's depth and
facing shading, the photo's own teeth, the mouth's morphology) for the CPU when nothing requires
grad: one loop over the window's pixels each instead of some forty full-window tensor ops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from affectsynth.render._kernels.mesh import triangle_normal
from affectsynth.render._kernels.rounding import floor_int_f32

__all__ = ["shade_face", "close_teeth_gaps_", "close_slits_", "mouth_facing_", "to_clip_", "face_rgba", "pixel_kinds_"]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _taps(ht, wt, tu, tv):
    """Bilinear, clamped taps of an [ht, wt] texture at texture coordinates (tu, tv), as
    `render.texture(..., boundary_mode="clamp")` computes them: rows ya, yb, columns xa, xb and
    the weights w00, w01, w10, w11 of (ya, xa), (ya, xb), (yb, xa), (yb, xb)."""
    xs = tu * np.float32(wt) - np.float32(0.5)
    ys = tv * np.float32(ht) - np.float32(0.5)
    xf = floor_int_f32(xs)  # int(math.floor()) without the floorf call
    yf = floor_int_f32(ys)
    fx = xs - np.float32(xf)
    fy = ys - np.float32(yf)
    xa = min(max(int(xf), 0), wt - 1)
    xb = min(max(int(xf) + 1, 0), wt - 1)
    ya = min(max(int(yf), 0), ht - 1)
    yb = min(max(int(yf) + 1, 0), ht - 1)
    one = np.float32(1.0)
    return ya, yb, xa, xb, (one - fx) * (one - fy), fx * (one - fy), (one - fx) * fy, fx * fy


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _bilinear(tex, tu, tv, k0, nk, out, o0):
    """Bilinear, clamped sample of channels [k0, k0 + nk) of tex [R, R, C] at texture coordinates
    (tu, tv) into out[o0:o0 + nk] (see `_taps`)."""
    ya, yb, xa, xb, w00, w01, w10, w11 = _taps(tex.shape[0], tex.shape[1], tu, tv)
    for k in range(nk):
        c = k0 + k
        out[o0 + k] = w00 * tex[ya, xa, c] + w01 * tex[ya, xb, c] + w10 * tex[yb, xa, c] + w11 * tex[yb, xb, c]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _bilinear_scalar(img, tu, tv):
    """Bilinear, clamped sample of the one-channel img [R, R] at (tu, tv) (see `_taps`)."""
    ya, yb, xa, xb, w00, w01, w10, w11 = _taps(img.shape[0], img.shape[1], tu, tv)
    return w00 * img[ya, xa] + w01 * img[ya, xb] + w10 * img[yb, xa] + w11 * img[yb, xb]


@njit(cache=True, nogil=True, error_model="numpy")
def shade_face(rast, kind, tri, tri_uv, uv, tex, weight, shading, mouth_attr, colors, shadow, params, teeth_rgbw, tile,
               skin, mouth, own, seen):
    """Per pixel of a rasterized window: skin colour, mouth colour, own-teeth weight, photo weight.

    Args:
        rast: [h, w, 4] float32 (u, v, z/w, triangle_id + 1).
        kind: [h, w] int64 material per pixel (-1 none, 0 skin, 1 teeth, 2 gums/tongue, 3 socket).
        tri: [T, 3] int32 vertex indices; tri_uv: [T, 3] int32 uv indices; uv: [U, 2] float32.
        tex: [R, R, 3] float32 skin texture.
        weight: [R', R'] float32 the photo weight texture (same UVs), or [0, 0] for none.
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
        seen: [h, w] float32 output: the photo weight on skin pixels (with `weight`), else 0.
    """
    height, width = kind.shape
    has_shading = shading.shape[0] > 0
    has_weight = weight.shape[0] > 0
    weight_taps = has_weight and weight.shape[0] == tex.shape[0] and weight.shape[1] == tex.shape[1]
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
            ya, yb, xa, xb, w00, w01, w10, w11 = _taps(tex.shape[0], tex.shape[1], tu, tv)
            i0 = tri[t, 0]
            i1 = tri[t, 1]
            i2 = tri[t, 2]
            s = one
            if has_shading:
                s = shading[i2] + u * (shading[i0] - shading[i2]) + v * (shading[i1] - shading[i2])
            for c in range(3):
                sample = w00 * tex[ya, xa, c] + w01 * tex[ya, xb, c] + w10 * tex[yb, xa, c] + w11 * tex[yb, xb, c]
                skin[y, x, c] = sample * s if has_shading else sample
            if k == 0:
                if weight_taps:  # the weight texture has the skin texture's size: the same taps
                    sw = w00 * weight[ya, xa] + w01 * weight[ya, xb] + w10 * weight[yb, xa] + w11 * weight[yb, xb]
                    seen[y, x] = min(max(sw, zero), one)
                elif has_weight:
                    seen[y, x] = min(max(_bilinear_scalar(weight, tu, tv), zero), one)
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



@njit(cache=True, nogil=True, error_model="numpy")
def _kind_box(kind, teeth_only, margin):
    """(r0, r1, c0, c1): rows [r0, r1) and columns [c0, c1) holding every teeth pixel (kind 1;
    with `teeth_only` False every mouth pixel, kind > 0), grown by `margin` and clipped to the
    image, as `face_render._bounding_box`; r0 == r1 when there is none."""
    height, width = kind.shape
    r0, r1, c0, c1 = height, -1, width, -1
    for y in range(height):
        for x in range(width):
            k = kind[y, x]
            if k == 1 or (k > 1 and not teeth_only):
                r0 = min(r0, y)
                r1 = max(r1, y)
                c0 = min(c0, x)
                c1 = max(c1, x)
    if r1 < 0:
        return 0, 0, 0, 0
    return max(0, r0 - margin), min(height, r1 + margin + 1), max(0, c0 - margin), min(width, c1 + margin + 1)


@njit(cache=True, nogil=True, error_model="numpy")
def close_teeth_gaps_(mouth, kind, own, gap_px, shade):
    """`face_render._close_teeth_gaps` in place: mouth [h, w, 3] float32 and kind [h, w] int64
    (own [h, w] float32 the photo teeth's weight, or [0, 0] for none).

    The closing of the teeth mask (dilation, then erosion with the outside of the image counting
    as not teeth) picks the gums/tongue/socket pixels between teeth; each takes the mean colour of
    the teeth pixels in its (2 gap_px + 1)^2 square, times shade + (1 - shade) * their mean own
    weight. Only the teeth's box grown by gap_px can change, so only it is visited.
    """
    r0, r1, c0, c1 = _kind_box(kind, True, gap_px)
    if r0 == r1:
        return
    bh = r1 - r0
    bw = c1 - c0
    teeth = np.zeros((bh, bw), dtype=np.bool_)
    for y in range(bh):
        for x in range(bw):
            teeth[y, x] = kind[r0 + y, c0 + x] == 1
    dilated = np.zeros((bh, bw), dtype=np.bool_)
    for y in range(bh):
        for x in range(bw):
            hit = False
            for yy in range(max(0, y - gap_px), min(bh, y + gap_px + 1)):
                for xx in range(max(0, x - gap_px), min(bw, x + gap_px + 1)):
                    hit = hit or teeth[yy, xx]
            dilated[y, x] = hit
    has_own = own.shape[0] > 0
    one = np.float32(1.0)
    gaps = np.zeros((bh, bw), dtype=np.bool_)
    for y in range(bh):
        for x in range(bw):
            if kind[r0 + y, c0 + x] < 2 or y < gap_px or x < gap_px or y + gap_px >= bh or x + gap_px >= bw:
                continue  # only gums, tongue or socket; a square reaching outside the box is not closed
            closed = True
            for yy in range(y - gap_px, y + gap_px + 1):
                for xx in range(x - gap_px, x + gap_px + 1):
                    closed = closed and dilated[yy, xx]
            gaps[y, x] = closed
    for y in range(bh):
        for x in range(bw):
            if not gaps[y, x]:
                continue
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            n = np.float32(0.0)
            for yy in range(max(0, y - gap_px), min(bh, y + gap_px + 1)):
                for xx in range(max(0, x - gap_px), min(bw, x + gap_px + 1)):
                    if teeth[yy, xx]:
                        s0 += mouth[r0 + yy, c0 + xx, 0]
                        s1 += mouth[r0 + yy, c0 + xx, 1]
                        s2 += mouth[r0 + yy, c0 + xx, 2]
                        if has_own:
                            s3 += own[r0 + yy, c0 + xx]
                        n += one
            inv = one / max(n, np.float32(1e-6))
            f = shade + (one - shade) * min(max(s3 * inv, np.float32(0.0)), one)
            mouth[r0 + y, c0 + x, 0] = s0 * inv * f
            mouth[r0 + y, c0 + x, 1] = s1 * inv * f
            mouth[r0 + y, c0 + x, 2] = s2 * inv * f
    for y in range(bh):
        for x in range(bw):
            if gaps[y, x]:
                kind[r0 + y, c0 + x] = 1


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _row_mean3(vals, m, y, x):
    """Mean of vals[y, x - 1 .. x + 1] over the pixels of the bool mask m there (0 when none), as
    `face_render._row_mean`."""
    width = m.shape[1]
    s = np.float32(0.0)
    n = np.float32(0.0)
    for xx in range(max(0, x - 1), min(width, x + 2)):
        if m[y, xx]:
            s += vals[y, xx]
            n += np.float32(1.0)
    return s / n if n > 0 else np.float32(0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def close_slits_(mouth, skin, kind, min_px, shadow, lip_line):
    """`face_render._close_slits` in place on mouth [h, w, 3] float32, for the mouth pixels
    (kind [h, w] int64 > 0) of the skin [h, w, 3] float32 window; shadow [3] float32.

    Per column, each vertical run of mouth pixels shorter than `min_px` takes the lips' colour
    above and below it (linearly across the run) times `lip_line`; runs of min_px .. min_px + 2
    fade from `shadow` to the mouth colour; both weights are averaged along rows over the mask.
    """
    r0, r1, c0, c1 = _kind_box(kind, False, 1)
    if r0 == r1:
        return
    bh = r1 - r0
    bw = c1 - c0
    m = np.zeros((bh, bw), dtype=np.bool_)
    above = np.empty((bh, bw), dtype=np.int64)
    below = np.empty((bh, bw), dtype=np.int64)
    for y in range(bh):
        for x in range(bw):
            m[y, x] = kind[r0 + y, c0 + x] > 0
    for x in range(bw):
        last = -1
        for y in range(bh):
            if not m[y, x]:
                last = y
            above[y, x] = last
        last = bh
        for y in range(bh - 1, -1, -1):
            if not m[y, x]:
                last = y
            below[y, x] = last
    shut = np.zeros((bh, bw), dtype=np.float32)  # 1 where the run is too thin to stay open
    ramp = np.zeros((bh, bw), dtype=np.float32)  # 0 .. 1 over runs of min_px .. min_px + 2
    for y in range(bh):
        for x in range(bw):
            run = below[y, x] - above[y, x] - 1
            shut[y, x] = np.float32(1.0) if run < min_px else np.float32(0.0)
            ramp[y, x] = min(max(np.float32(run - min_px + 1) / np.float32(3.0), np.float32(0.0)), np.float32(1.0))
    one = np.float32(1.0)
    for y in range(bh):
        for x in range(bw):
            if not m[y, x]:
                continue
            closed = _row_mean3(shut, m, y, x)
            open_ = _row_mean3(ramp, m, y, x)
            ya = r0 + min(max(above[y, x], 0), bh - 1)
            yb = r0 + min(max(below[y, x], 0), bh - 1)
            t = np.float32(y - above[y, x]) / np.float32(max(below[y, x] - above[y, x], 1))
            for c in range(3):
                top = skin[ya, c0 + x, c]
                lips = (top + (skin[yb, c0 + x, c] - top) * t) * lip_line
                opened = shadow[c] + (mouth[r0 + y, c0 + x, c] - shadow[c]) * open_
                mouth[r0 + y, c0 + x, c] = lips * closed + opened * (one - closed)


@njit(cache=True, nogil=True, error_model="numpy")
def mouth_facing_(rast, kind, tri, vertices, mouth_tri, inc_start, inc_tri, out):
    """Facing ratio |n . v| / |v| into out[:, 1] ([V, 3] float32) for the vertices of the mouth
    pixels' triangles (kind > 0) only: the one attribute of `FaceRenderer._mouth_attributes` that
    changes per target, for the vertices the shading reads.

    rast: [h, w, 4] float32 (u, v, z/w, triangle_id + 1) over `tri` [T, 3] int32; kind [h, w]
    int64; vertices [V, 3] float32 camera space; mouth_tri [M, 3] int32. inc_start [V + 1] and
    inc_tri [3 M] int64: vertex i's incident mouth triangles are inc_tri[inc_start[i]:inc_start[i + 1]],
    ordered by (corner, triangle) as `render.mesh.vertex_normals` sums them: the same normals, bit for bit.
    """
    height, width = kind.shape
    need = np.zeros(vertices.shape[0], dtype=np.bool_)
    for y in range(height):
        for x in range(width):
            if kind[y, x] > 0:
                t = np.int64(rast[y, x, 3]) - 1
                need[tri[t, 0]] = True
                need[tri[t, 1]] = True
                need[tri[t, 2]] = True
    for i in range(vertices.shape[0]):
        if not need[i]:
            continue
        nx = np.float32(0.0)
        ny = np.float32(0.0)
        nz = np.float32(0.0)
        for j in range(inc_start[i], inc_start[i + 1]):
            t = inc_tri[j]
            tx, ty, tz = triangle_normal(vertices, mouth_tri[t, 0], mouth_tri[t, 1], mouth_tri[t, 2])
            nx += tx
            ny += ty
            nz += tz
        n = max(math.sqrt(nx * nx + ny * ny + nz * nz), 1e-12)
        vx = vertices[i, 0]
        vy = vertices[i, 1]
        vz = vertices[i, 2]
        dot = nx / n * vx + ny / n * vy + nz / n * vz
        out[i, 1] = abs(dot) / max(math.sqrt(vx * vx + vy * vy + vz * vz), 1e-6)


@njit(cache=True, nogil=True, error_model="numpy")
def to_clip_(points, proj, out):
    """`render.camera.to_clip` of points [V, 3] float32 with proj [4, 4] float32 into out [V, 4]
    float32: clip = proj @ (x, y, z, 1), summed in that order (a K = 4 BLAS product is slow)."""
    for i in range(points.shape[0]):
        x = points[i, 0]
        y = points[i, 1]
        z = points[i, 2]
        for r in range(4):
            out[i, r] = x * proj[r, 0] + y * proj[r, 1] + z * proj[r, 2] + proj[r, 3]


@njit(cache=True, nogil=True, error_model="numpy")
def pixel_kinds_(rast, kind_of_id, out):
    """out [h, w] int64: ``kind_of_id[int(rast[y, x, 3])]``, the material of each pixel's triangle id
    + 1 (rast [h, w, 4] float32 holds the ids exactly; truncated as torch's ``.long()``)."""
    height, width = out.shape
    for y in range(height):
        for x in range(width):
            out[y, x] = kind_of_id[np.int64(rast[y, x, 3])]


@njit(cache=True, nogil=True, error_model="numpy")
def face_rgba(covered_kind, kind, skin, mouth, out):
    """out [h, w, 4] float32: the skin colour where kind [h, w] is 0, the mouth's where it is > 0,
    0 where the raster covers nothing (covered_kind < 0), and coverage in channel 3."""
    height, width = kind.shape
    for y in range(height):
        for x in range(width):
            if covered_kind[y, x] < 0:
                for c in range(4):
                    out[y, x, c] = 0.0
                continue
            src = skin if kind[y, x] == 0 else mouth
            for c in range(3):
                out[y, x, c] = src[y, x, c]
            out[y, x, 3] = 1.0
