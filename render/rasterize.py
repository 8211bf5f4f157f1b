"""Rasterization of clip-space triangles into per-pixel barycentrics, depth and triangle ids."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from affectsynth.render._checks import ShapeError, check_same_device, check_shape, check_tensor
from affectsynth.render.context import RasterizeCudaContext, RasterizeReferenceContext, default_context

__all__ = ["rasterize"]

_FLOATS = (torch.float32, torch.float64)
_INTS = (torch.int32, torch.int64)


def _check_resolution(resolution: object) -> tuple[int, int]:
    try:
        h, w = (int(r) for r in resolution)  # type: ignore[union-attr]
        ok = all(int(r) == r for r in resolution)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        ok = False
    if not ok or h <= 0 or w <= 0:
        raise ValueError(f"rasterize: resolution must be (H, W) positive ints, got {resolution!r}")
    return h, w


def _layout(
    pos: Tensor, tri: Tensor, ranges: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Normalise instanced / range mode to pos [Bp, V, 4] plus per-image index tables."""
    t_count = tri.shape[0]
    if pos.dim() == 3:
        if ranges is not None:
            raise ValueError("rasterize: ranges is only valid with pos [V, 4] (range mode)")
        nb = pos.shape[0]
        pos_index = torch.arange(nb, dtype=torch.int64)
        tri_start = torch.zeros(nb, dtype=torch.int64)
        tri_count = torch.full((nb,), t_count, dtype=torch.int64)
        return pos, pos_index, tri_start, tri_count
    if ranges is None:
        raise ValueError("rasterize: pos [V, 4] (range mode) needs ranges [N, 2]; or pass pos [B, V, 4]")
    check_tensor(ranges, name="ranges", where="rasterize", dtypes=_INTS)
    check_shape(ranges, "N 2", name="ranges", where="rasterize")
    r = ranges.detach().cpu().to(torch.int64)
    if (r < 0).any() or (r[:, 0] + r[:, 1] > t_count).any():
        raise ValueError(f"rasterize: ranges must lie within [0, {t_count}), got {r.tolist()}")
    nb = r.shape[0]
    return pos.unsqueeze(0), torch.zeros(nb, dtype=torch.int64), r[:, 0].clone(), r[:, 1].clone()


def barycentrics_from_ids(
    pos: Tensor,
    tri: Tensor,
    ids: Tensor,
    *,
    pos_index: Tensor,
    grad_db: bool = True,
) -> tuple[Tensor, Tensor]:
    """Differentiable (u, v, z/w) at the covered pixels of a triangle-id image.

    Homogeneous (perspective-correct) barycentrics: with h_k = (x_k - X w_k, y_k - Y w_k) for
    the pixel centre (X, Y) in NDC, e_0 = h_1 x h_2 (and cyclically), u = e_0 / S, v = e_1 / S,
    S = e_0 + e_1 + e_2; z/w = sum e_k z_k / sum e_k w_k. Plain tensor ops, so autograd gives
    exact gradients w.r.t. `pos`.

    Args:
        pos: [Bp, V, 4] clip-space positions.
        tri: [T, 3] int vertex indices.
        ids: [B, H, W] int32 triangle_id + 1 (0 = empty), from a context's `visibility`.
        pos_index: [B] int64, the pos batch of each image.
        grad_db: also return the pixel-space derivatives of (u, v).

    Returns:
        rast [B, H, W, 4] and rast_db [B, H, W, 4] (or [B, H, W, 0] when not grad_db),
        in pos's dtype.
    """
    nb, height, width = ids.shape
    dev, dt = pos.device, pos.dtype
    flat = ids.reshape(-1)
    pix = torch.nonzero(flat, as_tuple=True)[0]
    t = flat[pix].long() - 1
    hw = height * width
    b = torch.div(pix, hw, rounding_mode="floor")
    rem = pix - b * hw
    row = torch.div(rem, width, rounding_mode="floor")
    col = rem - row * width
    ndc_x = ((col.to(dt) + 0.5) * (2.0 / width) - 1.0)[:, None]
    ndc_y = ((row.to(dt) + 0.5) * (2.0 / height) - 1.0)[:, None]
    nv = pos.shape[1]
    vidx = tri.long()[t] + (pos_index.to(dev)[b] * nv)[:, None]  # [N, 3]
    p = pos.reshape(-1, 4)[vidx]  # [N, 3, 4]
    w = p[..., 3]
    hx = p[..., 0] - ndc_x * w
    hy = p[..., 1] - ndc_y * w
    x0, x1, x2 = hx.unbind(-1)
    y0, y1, y2 = hy.unbind(-1)
    e0 = x1 * y2 - y1 * x2
    e1 = x2 * y0 - y2 * x0
    e2 = x0 * y1 - y0 * x1
    s = e0 + e1 + e2
    inv_s = 1.0 / s
    u = e0 * inv_s
    v = e1 * inv_s
    e = torch.stack([e0, e1, e2], dim=-1)
    zw = (e * p[..., 2]).sum(-1) / (e * w).sum(-1)
    vals = torch.stack([u, v, zw, (t + 1).to(dt)], dim=-1)
    rast = torch.zeros(nb * hw, 4, dtype=dt, device=dev).index_copy(0, pix, vals)
    rast = rast.view(nb, height, width, 4)
    if not grad_db:
        return rast, torch.zeros(nb, height, width, 0, dtype=dt, device=dev)
    w0, w1, w2 = w.unbind(-1)
    # d(e_k / S) = (de_k - (e_k / S) dS) / S, dS = sum_k de_k (S varies with the pixel when w does).
    sx, sy = 2.0 / width, 2.0 / height
    g0x, g1x, g2x = y1 * w2 - w1 * y2, y2 * w0 - w2 * y0, y0 * w1 - w0 * y1
    g0y, g1y, g2y = w1 * x2 - x1 * w2, w2 * x0 - x2 * w0, w0 * x1 - x0 * w1
    gsx = g0x + g1x + g2x
    gsy = g0y + g1y + g2y
    du_dx = (g0x - u * gsx) * inv_s * sx
    du_dy = (g0y - u * gsy) * inv_s * sy
    dv_dx = (g1x - v * gsx) * inv_s * sx
    dv_dy = (g1y - v * gsy) * inv_s * sy
    dvals = torch.stack([du_dx, du_dy, dv_dx, dv_dy], dim=-1)
    rast_db = torch.zeros(nb * hw, 4, dtype=dt, device=dev).index_copy(0, pix, dvals)
    return rast, rast_db.view(nb, height, width, 4)


class _BarycentricsCpu(torch.autograd.Function):
    """Compiled twin of `barycentrics_from_ids` with a hand-written backward."""

    @staticmethod
    def forward(ctx, pos3, tri, ids, pos_index, grad_db):  # type: ignore[override]
        from affectsynth.render._kernels.barycentrics import rast_fill  # noqa: PLC0415

        nb, height, width = ids.shape
        p = pos3.detach().contiguous()
        t = tri.detach().to(torch.int32).contiguous()
        rast = torch.empty(nb, height, width, 4, dtype=p.dtype)  # rast_fill writes every pixel
        rast_db = torch.empty(nb, height, width, 4 if grad_db else 0, dtype=p.dtype)
        rast_fill(p.numpy(), t.numpy(), pos_index.numpy(), ids.numpy(), rast.numpy(), rast_db.numpy(), grad_db)
        ctx.save_for_backward(p, t, ids, pos_index)
        return rast, rast_db

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_rast, g_db):  # type: ignore[override]
        from affectsynth.render._kernels.barycentrics import rast_grad  # noqa: PLC0415

        p, t, ids, pos_index = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        if g_db is not None and g_db.numel() and bool(g_db.any()):
            # Rare path (derivatives of rast_db requested): exact via torch autograd.
            with torch.enable_grad():
                pp = p.detach().requires_grad_(True)
                r, d = barycentrics_from_ids(pp, t, ids, pos_index=pos_index, grad_db=True)
                (gp,) = torch.autograd.grad([r, d], [pp], [g_rast, g_db])
            return gp, None, None, None, None
        gp = torch.zeros(p.shape, dtype=torch.float64)
        rast_grad(p.numpy(), t.numpy(), pos_index.numpy(), ids.numpy(), g_rast.contiguous().numpy(), gp.numpy())
        return gp.to(p.dtype), None, None, None, None


def rasterize(
    pos: Tensor,
    tri: Tensor,
    resolution: tuple[int, int],
    *,
    ctx: Any = None,
    ranges: Tensor | None = None,
    grad_db: bool = True,
) -> tuple[Tensor, Tensor]:
    """Rasterize triangles given in clip space (nvdiffrast semantics).

    Args:
        pos: [B, V, 4] float32 clip-space positions (instanced mode; float64 accepted, e.g. for
            gradcheck), or [V, 4] with `ranges` (range mode).
        tri: [T, 3] int32 vertex indices (int64 accepted), shared by the batch.
        resolution: (H, W) of the output.
        ctx: a raster context (`RasterizeCpuContext`, `RasterizeCudaContext`,
            `RasterizeReferenceContext`); None picks nvdiffrast for CUDA tensors, else the CPU one.
        ranges: [N, 2] int32 (first triangle, count) per image, range mode only (on the CPU).
        grad_db: also compute `rast_db`.

    Returns:
        rast: [B, H, W, 4] (u, v, z/w, triangle_id + 1), pos's dtype. u and v weight the
            triangle's vertices 0 and 1 (p = u p0 + v p1 + (1 - u - v) p2, perspective-correct);
            0 everywhere for empty pixels. Row 0 is clip y = -1; pixel centres at +0.5.
            (u, v, z/w) are differentiable w.r.t. `pos`; the id channel is not.
        rast_db: [B, H, W, 4] (du/dX, du/dY, dv/dX, dv/dY) in pixels, or [B, H, W, 0] when
            `grad_db` is False.

    Raises:
        TypeError: non-tensor inputs or wrong dtypes.
        ShapeError: wrong shapes.
        ValueError: bad resolution or ranges, mixed devices.
        ImportError: CUDA tensors without nvdiffrast (message gives the install command).

    Note:
        A pixel is covered when its centre is inside the triangle (edges inclusive), all three
        vertices have w > 0 and -1 <= z/w <= 1; the nearest z/w wins (on the CPU compared in
        steps of 2^-30, like a fixed-point depth buffer), ties go to the lower triangle id.
        Triangles crossing the w = 0 plane are dropped entirely on the CPU
        (nvdiffrast clips them); keep geometry in front of the camera. No backface culling.

    Example:
        >>> import torch
        >>> pos = torch.tensor([[[-1., -1, 0, 1], [1, -1, 0, 1], [-1, 1, 0, 1]]])
        >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        >>> rast, rast_db = rasterize(pos, tri, (4, 4))
        >>> rast.shape, int(rast[0, 0, 0, 3])
        (torch.Size([1, 4, 4, 4]), 1)
    """
    check_tensor(pos, name="pos", where="rasterize", dtypes=_FLOATS)
    check_tensor(tri, name="tri", where="rasterize", dtypes=_INTS)
    check_shape(pos, ["B V 4", "V 4"], name="pos", where="rasterize")
    check_shape(tri, "T 3", name="tri", where="rasterize")
    check_same_device(pos, tri, where="rasterize")
    height, width = _check_resolution(resolution)
    if ctx is None:
        ctx = default_context(pos.device)
    if isinstance(ctx, RasterizeCudaContext):
        if pos.device.type != "cuda":
            raise ValueError(f"rasterize: RasterizeCudaContext needs CUDA tensors, got {pos.device}")
        return ctx.dr.rasterize(
            ctx.glctx, pos.float().contiguous(), tri.to(torch.int32).contiguous(),
            (height, width), ranges=ranges, grad_db=grad_db,
        )
    if not hasattr(ctx, "visibility"):
        raise TypeError(f"rasterize: ctx must be a raster context, got {type(ctx).__name__}")
    if tri.numel():
        lo, hi = (int(x) for x in torch.aminmax(tri))  # one pass over the indices
        if lo < 0 or hi >= pos.shape[-2]:
            raise ValueError(f"rasterize: tri indices must lie in [0, {pos.shape[-2]}), got [{lo}, {hi}]")
    pos3, pos_index, tri_start, tri_count = _layout(pos, tri, ranges)
    ids = ctx.visibility(
        pos3, tri, height, width, pos_index=pos_index, tri_start=tri_start, tri_count=tri_count
    )
    if ids.shape != (pos_index.numel(), height, width):
        raise ShapeError(f"rasterize: backend {ctx!r} returned ids of shape {list(ids.shape)}")
    if isinstance(ctx, RasterizeReferenceContext) or pos.device.type != "cpu":
        return barycentrics_from_ids(pos3, tri, ids, pos_index=pos_index, grad_db=grad_db)
    return _BarycentricsCpu.apply(pos3, tri, ids, pos_index, bool(grad_db))
