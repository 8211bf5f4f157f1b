"""Interpolation kernels: vertex attributes at covered pixels, and the backward pass."""

from __future__ import annotations

import numpy as np
from numba import njit

from affectsynth.render._kernels.pixels import next_image

__all__ = ["interp_fwd", "interp_bwd"]


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
    base = 0
    image_end = pix_per_image
    for i in range(rast.shape[0]):
        image_end, base = next_image(i, image_end, base, pix_per_image, nv, attr_batched)
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
    base = 0
    image_end = pix_per_image
    for i in range(rast.shape[0]):
        image_end, base = next_image(i, image_end, base, pix_per_image, nv, attr_batched)
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
