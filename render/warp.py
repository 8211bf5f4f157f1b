"""Dense image warps from the 2D motion of a mesh: backward flow fields and bilinear warping.

A flow ``f [H, W, 2]`` is *backward*: output pixel centre ``p`` takes the input at ``p + f(p)``
(continuous pixel coordinates, see `affectsynth.render.camera`). `motion_field` builds it from a
mesh moving from ``src_pix`` to ``dst_pix``: exact inside the moved mesh's footprint (rasterize the
moved mesh, interpolate where each point came from), push-pull extended outside it, and faded to
exactly zero ``margin`` pixels away from the footprint, so the background next to a moving contour
(e.g. the background just below a contour that moves down) is pulled along without tearing or doubled contours.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from affectsynth.render.camera import pixels_to_ndc
from affectsynth.render.inpaint import push_pull_fill
from affectsynth.render.interpolate import interpolate
from affectsynth.render.rasterize import rasterize

__all__ = [
    "motion_field",
    "motion_window",
    "effective_margin",
    "pixel_bounds",
    "warp_image",
    "sample_bilinear",
    "sample_image",
    "pixel_centres",
]


def pixel_centres(height: int, width: int, *, dtype: torch.dtype = torch.float32, device: Any = None) -> Tensor:
    """Continuous (u, v) coordinates of the pixel centres, (j + 0.5, i + 0.5).

    Args:
        height: H, rows.
        width: W, columns.
        dtype: result dtype.
        device: result device.

    Returns:
        [H, W, 2] tensor; ``[i, j] = (j + 0.5, i + 0.5)``.
    """
    ys = torch.arange(height, dtype=dtype, device=device) + 0.5
    xs = torch.arange(width, dtype=dtype, device=device) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def effective_margin(src_pix: Tensor, dst_pix: Tensor, margin_px: float, *, margin_factor: float = 3.0,
                     vertices: Tensor | None = None) -> float:
    """Fade distance actually used: ``max(margin_px, margin_factor * max vertex displacement)``.

    Fading a displacement D to 0 over M pixels keeps the warp one-to-one only if D / M < 1; the
    factor keeps the stretch mild.

    Args:
        src_pix: [V, 2] vertex pixel positions before the motion.
        dst_pix: [V, 2] after the motion.
        margin_px: the minimum, pixels.
        margin_factor: multiple of the largest displacement.
        vertices: optional [N] integer indices: only these vertices count (None: all).

    Returns:
        The fade distance in pixels.
    """
    if src_pix.numel() == 0:
        return float(margin_px)
    if _compiled_applies(src_pix, dst_pix):
        from affectsynth.render._kernels.motion import max_displacement  # noqa: PLC0415  (numba import is slow)

        disp = float(max_displacement(_np(src_pix), _np(dst_pix), _index(vertices)))
    else:
        if vertices is not None:
            src_pix, dst_pix = src_pix[vertices], dst_pix[vertices]
        disp = float((dst_pix - src_pix).norm(dim=-1).max())
    return float(max(margin_px, margin_factor * disp))


def pixel_bounds(src_pix: Tensor, dst_pix: Tensor, vertices: Tensor | None = None) -> Tensor:
    """[2, 2] bounding box (min corner, max corner) of the points of src_pix [V, 2] and dst_pix [V, 2]
    together, or of their ``vertices`` ([N] integer indices) only.

    As a point set it has the min and max of all the points (e.g. for a bounding window of them),
    without gathering them into one tensor first.
    """
    if src_pix.numel() and _compiled_applies(src_pix, dst_pix):
        from affectsynth.render._kernels.motion import motion_bounds  # noqa: PLC0415  (numba import is slow)

        x_lo, y_lo, x_hi, y_hi = motion_bounds(_np(src_pix), _np(dst_pix), _index(vertices))
        return torch.tensor([[x_lo, y_lo], [x_hi, y_hi]], dtype=torch.float32)
    if vertices is not None:
        src_pix, dst_pix = src_pix[vertices], dst_pix[vertices]
    pts = torch.cat([src_pix, dst_pix], dim=0)
    return torch.stack([pts.min(dim=0).values, pts.max(dim=0).values])


def motion_window(
    src_pix: Tensor,
    dst_pix: Tensor,
    size: tuple[int, int],
    *,
    margin_px: float = 32.0,
    margin_factor: float = 3.0,
    vertices: Tensor | None = None,
) -> tuple[int, int, int, int]:
    """Smallest window (x0, y0, w, h) of an H x W image outside which `motion_field` is zero.

    Args:
        src_pix: [V, 2] vertex pixel positions before the motion.
        dst_pix: [V, 2] after the motion.
        size: (H, W) of the image.
        margin_px: minimum fade distance, pixels.
        margin_factor: see `effective_margin`.
        vertices: optional [N] integer indices: only these vertices count (None: all).

    Returns:
        (x0, y0, w, h), integers, clipped to the image (w or h may be 0 if all is outside).
    """
    H, W = int(size[0]), int(size[1])
    m = effective_margin(src_pix, dst_pix, margin_px, margin_factor=margin_factor, vertices=vertices) + 2.0
    bounds = pixel_bounds(src_pix, dst_pix, vertices)
    (lo_x, lo_y), (hi_x, hi_y) = (bounds[0] - m).tolist(), (bounds[1] + m).tolist()
    x0 = max(0, int(math.floor(lo_x)))
    y0 = max(0, int(math.floor(lo_y)))
    x1 = min(W, int(math.ceil(hi_x)))
    y1 = min(H, int(math.ceil(hi_y)))
    return (x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def motion_field(
    src_pix: Tensor,
    dst_pix: Tensor,
    tri: Tensor,
    size: tuple[int, int],
    *,
    margin_px: float = 32.0,
    margin_factor: float = 3.0,
    dst_depth: Tensor | None = None,
    window: tuple[int, int, int, int] | None = None,
    scale: float = 1.0,
    ctx: Any = None,
) -> Tensor:
    """Backward flow of an image region that moves with a mesh from ``src_pix`` to ``dst_pix``.

    Args:
        src_pix: [V, 2] float vertex positions in the input image, pixels (u, v).
        dst_pix: [V, 2] float vertex positions in the output image, pixels.
        tri: [T, 3] int32 triangles.
        size: (H, W) of the image the pixels refer to.
        margin_px: minimum distance (pixels) over which the flow fades to 0 outside the moved
            footprint; the distance used is `effective_margin` (at least ``margin_factor`` times
            the largest vertex displacement).
        margin_factor: see `effective_margin`.
        dst_depth: optional [V] depth (any monotone unit, smaller = nearer) of the moved vertices
            for self-occlusion inside the footprint; without it overlapping triangles pick
            arbitrarily.
        window: optional (x0, y0, w, h): compute only this window of the H x W image (pixel
            coordinates stay those of the full image); the result is then [h, w, 2]. Use
            `motion_window` for one that holds all non-zero flow.
        scale: compute the field on a grid this much coarser (0 < scale <= 1) and upsample it
            bilinearly: the flow is smooth, and 0.5 does a quarter of the work. Zeros stay exact.
        ctx: raster context for `rasterize` (None = default backend).

    Returns:
        [H, W, 2] (or [h, w, 2]) backward flow in pixels, dtype/device of ``src_pix``:
        output pixel centre p samples the input at ``p + flow[p]``; exactly 0 beyond the margin.

    Raises:
        ValueError: shapes don't match.
    """
    if src_pix.ndim != 2 or src_pix.shape[-1] != 2 or dst_pix.shape != src_pix.shape:
        raise ValueError(
            f"motion_field: src_pix and dst_pix must both be [V, 2], got {list(src_pix.shape)} "
            f"and {list(dst_pix.shape)}"
        )
    if tri.ndim != 2 or tri.shape[-1] != 3:
        raise ValueError(f"motion_field: tri must be [T, 3], got {list(tri.shape)}")
    if dst_depth is not None and dst_depth.shape != src_pix.shape[:1]:
        raise ValueError(f"motion_field: dst_depth must be [{src_pix.shape[0]}], got {list(dst_depth.shape)}")
    H, W = int(size[0]), int(size[1])
    x0, y0, w, h = (0, 0, W, H) if window is None else (int(a) for a in window)
    dtype, device = src_pix.dtype, src_pix.device
    if w <= 0 or h <= 0:
        return torch.zeros(max(h, 0), max(w, 0), 2, dtype=dtype, device=device)
    margin = effective_margin(src_pix, dst_pix, margin_px, margin_factor=margin_factor)

    if not 0.0 < scale <= 1.0:
        raise ValueError(f"motion_field: scale must be in (0, 1], got {scale}")
    hs, ws = max(1, int(math.ceil(h * scale))), max(1, int(math.ceil(w * scale)))
    if ctx is None and _compiled_applies(src_pix, dst_pix, dst_depth):
        return _motion_field_compiled(src_pix, dst_pix, tri, dst_depth, (x0, y0, w, h), (hs, ws), margin)
    offset = torch.tensor([float(x0), float(y0)], dtype=dtype, device=device)
    dst_local = dst_pix - offset
    ndc = pixels_to_ndc(dst_local, w, h)  # resolution-free: the coarse grid covers the same window
    if dst_depth is not None:
        d = dst_depth.to(dtype)
        z = (d - d.min()) / (d.max() - d.min()).clamp_min(1e-12) * 1.8 - 0.9
    else:
        z = torch.zeros_like(ndc[:, 0])
    pos = torch.cat([ndc, z[:, None], torch.ones_like(z[:, None])], dim=-1)[None].float()
    tri_i = tri.to(device=device, dtype=torch.int32)
    rast, _ = rasterize(pos, tri_i, (hs, ws), ctx=ctx)
    src_at, _ = interpolate(src_pix[None].float(), rast, tri_i)
    cover = rast[0, :, :, 3] > 0  # [hs, ws]
    step = torch.tensor([w / ws, h / hs], dtype=torch.float32, device=device)
    centres = pixel_centres(hs, ws, dtype=torch.float32, device=device) * step + offset.float()
    inside = (src_at[0] - centres) * cover[..., None]
    if not bool(cover.any()):
        return torch.zeros(h, w, 2, dtype=dtype, device=device)
    ext = push_pull_fill(inside, cover.float())
    from scipy.ndimage import distance_transform_edt  # noqa: PLC0415  (lazy: ~0.15 s at import; the compiled path needs none)

    dist = distance_transform_edt(~cover.cpu().numpy(), sampling=(h / hs, w / ws))
    t = np.clip(1.0 - dist / max(margin, 1e-6), 0.0, 1.0)
    fade = torch.from_numpy(t * t * (3.0 - 2.0 * t)).to(device=device, dtype=torch.float32)
    flow = torch.where(cover[..., None], inside, ext * fade[..., None])
    if (hs, ws) != (h, w):
        flow = F.interpolate(flow.permute(2, 0, 1)[None], size=(h, w), mode="bilinear",
                          align_corners=False)[0].permute(1, 2, 0)
    return flow.to(dtype)


_NO_INDEX = np.zeros(0, np.int64)


def _compiled_applies(*tensors: Tensor | None) -> bool:
    """Whether the compiled motion kernels serve these tensors: float32 on the CPU, no gradient wanted."""
    present = [t for t in tensors if t is not None]
    wants_grad = torch.is_grad_enabled() and any(t.requires_grad for t in present)
    return not wants_grad and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in present)


def _index(vertices: Tensor | None) -> np.ndarray:
    """The kernels' vertex index: int64 indices, empty for all vertices."""
    return _NO_INDEX if vertices is None else _np(vertices.to(torch.int64))


def _np(x: Tensor) -> np.ndarray:
    """A contiguous CPU numpy view (or copy) of `x` for the kernels."""
    return x.detach().contiguous().numpy()


def _motion_field_compiled(src_pix: Tensor, dst_pix: Tensor, tri: Tensor, dst_depth: Tensor | None,
                           window: tuple[int, int, int, int], grid: tuple[int, int], margin: float) -> Tensor:
    """`motion_field` of the window on an hs x ws ``grid`` by the compiled kernel (same arithmetic)."""
    from affectsynth.render._kernels.motion import motion_flow  # noqa: PLC0415  (numba import is slow)

    x0, y0, w, h = window
    flow = torch.zeros(h, w, 2, dtype=torch.float32)
    depth = src_pix.new_zeros(1) if dst_depth is None else dst_depth
    motion_flow(_np(src_pix), _np(dst_pix), _np(depth), dst_depth is not None, _np(tri.to(torch.int32)),
                x0, y0, w, h, grid[0], grid[1], float(margin), flow.numpy())
    return flow


def warp_image(image: Tensor, flow: Tensor, *, padding_mode: str = "border") -> Tensor:
    """Bilinear backward warp: ``out[p] = image(p + flow[p])`` at pixel centres p.

    Args:
        image: [H, W, C] or [B, H, W, C] float image.
        flow: [H, W, 2] or [B, H, W, 2] backward flow in pixels (B = 1 broadcasts).
        padding_mode: ``grid_sample`` padding outside the image ("border", "zeros", "reflection").

    Returns:
        Warped image shaped like ``image``, same dtype/device. Pixels with exactly zero flow are
        copied bit for bit.

    Raises:
        ValueError: shapes don't match.
        TypeError: non-float image.
    """
    if not image.is_floating_point():
        raise TypeError(f"warp_image: image must be floating point, got {image.dtype}")
    batched = image.ndim == 4
    if image.ndim not in (3, 4):
        raise ValueError(f"warp_image: image must be [H, W, C] or [B, H, W, C], got {list(image.shape)}")
    img = image if batched else image[None]
    fl = flow if flow.ndim == 4 else flow[None]
    H, W = img.shape[1:3]
    if fl.ndim != 4 or fl.shape[1:] != (H, W, 2) or fl.shape[0] not in (1, img.shape[0]):
        raise ValueError(f"warp_image: flow must be [{H}, {W}, 2] (or batched), got {list(flow.shape)}")
    coords = pixel_centres(H, W, dtype=fl.dtype, device=fl.device) + fl
    if coords.shape[0] != img.shape[0]:
        coords = coords.expand(img.shape[0], -1, -1, -1)
    out = sample_bilinear(img, coords, padding_mode=padding_mode)
    still = (fl == 0).all(dim=-1, keepdim=True)  # exact copy where nothing moves
    out = torch.where(still, img, out)
    return out if batched else out[0]


def sample_image(image: Tensor, coords: Tensor, *, mode: str = "bilinear", padding_mode: str = "border") -> Tensor:
    """Sample an image at continuous pixel coordinates, bilinearly or bicubically.

    Bicubic (Keys, a = -0.75 as ``grid_sample``) keeps more detail when every pixel moves by a
    fraction of a pixel: bilinear interpolation at a half-pixel offset averages two pixels, which
    softens fine texture visibly. Bicubic can overshoot at edges; the result is clamped to the
    image's own range.

    Args:
        image: [H, W, C] or [B, H, W, C] float image.
        coords: [h, w, 2] or [B, h, w, 2] (u, v) pixel coordinates in ``image`` (centre of
            pixel (i, j) = (j + 0.5, i + 0.5)); any grid shape h x w.
        mode: "bilinear" or "bicubic".
        padding_mode: ``grid_sample`` padding ("border", "zeros", "reflection").

    Returns:
        [h, w, C] (or [B, h, w, C]) samples, dtype of ``image``.
    """
    if not image.is_floating_point():
        raise TypeError(f"sample_image: image must be floating point, got {image.dtype}")
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"sample_image: mode must be 'bilinear' or 'bicubic', got {mode!r}")
    batched = image.ndim == 4
    img = image if batched else image[None]
    co = coords if coords.ndim == 4 else coords[None]
    if co.shape[-1] != 2:
        raise ValueError(f"sample_image: coords must be [..., 2], got {list(coords.shape)}")
    H, W = img.shape[1:3]
    grid = pixels_to_ndc(co.to(img.dtype), W, H)
    out = F.grid_sample(
        img.permute(0, 3, 1, 2), grid, mode=mode, padding_mode=padding_mode, align_corners=False
    ).permute(0, 2, 3, 1)
    if mode == "bicubic" and img.numel():
        out = out.clamp(float(img.min()), float(img.max()))
    return out if batched else out[0]


def sample_bilinear(image: Tensor, coords: Tensor, *, padding_mode: str = "border") -> Tensor:
    """Sample an image bilinearly at continuous pixel coordinates (`sample_image`, mode "bilinear").

    Args:
        image: [H, W, C] or [B, H, W, C] float image.
        coords: [h, w, 2] or [B, h, w, 2] (u, v) pixel coordinates in ``image``.
        padding_mode: ``grid_sample`` padding ("border", "zeros", "reflection").

    Returns:
        [h, w, C] (or [B, h, w, C]) samples, dtype of ``image``.
    """
    return sample_image(image, coords, mode="bilinear", padding_mode=padding_mode)
