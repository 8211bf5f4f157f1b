"""Texture sampling (nearest or bilinear) at per-pixel texture coordinates."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from affectsynth.render._checks import check_same_device, check_shape, check_tensor

__all__ = ["texture"]

_FLOATS = (torch.float32, torch.float64)
_FILTERS = {"auto": "linear", "bilinear": "linear", "linear": "linear", "nearest": "nearest"}
_BOUNDARIES = ("wrap", "clamp", "zero")


def _wrap_index(i: Tensor, n: int, boundary_mode: str) -> tuple[Tensor, Tensor | None]:
    """Map integer texel indices into [0, n); also a validity mask for 'zero'."""
    if boundary_mode == "wrap":
        return torch.remainder(i, n), None
    if boundary_mode == "clamp":
        return i.clamp(0, n - 1), None
    valid = (i >= 0) & (i < n)
    return i.clamp(0, n - 1), valid


def _consts(ht: int, wt: int, dtype: torch.dtype) -> np.ndarray:
    """(Ht, Wt, 0.5, 1.0) in `dtype`, so the compiled kernels compute in that precision."""
    return np.array([ht, wt, 0.5, 1.0], dtype=np.float32 if dtype == torch.float32 else np.float64)


def _index_dtype(tex: Tensor) -> type:
    """int32 texel indices when they fit (less memory traffic), else int64."""
    return np.int32 if tex.shape[0] * tex.shape[1] * tex.shape[2] < 2**31 - 1 else np.int64


class _TextureCpu(torch.autograd.Function):
    """Compiled texture sampling with a hand-written backward."""

    @staticmethod
    def forward(ctx, tex, uv, boundary, linear):  # type: ignore[override]
        from affectsynth.render._kernels import texture as k  # noqa: PLC0415

        t = tex.detach().contiguous()
        u = uv.detach().contiguous()
        nb, height, width, _ = u.shape
        bt, ht, wt, ch = t.shape
        t2 = t.view(-1, ch).numpy()
        u2 = u.view(-1, 2).numpy()
        out = (torch.empty if linear else torch.zeros)(nb, height, width, ch, dtype=t.dtype)
        if linear:
            consts = _consts(ht, wt, t.dtype)
            idx = np.empty((u2.shape[0], 4), dtype=_index_dtype(t))
            frac = np.empty((u2.shape[0], 2), dtype=u2.dtype)
            k.tex_taps(u2, ht, wt, bt > 1, height * width, boundary, consts, idx, frac)
            k.tex_gather(t2, idx, frac, consts, out.view(-1, ch).numpy())
        else:
            k.tex_nearest_fwd(t2, ht, wt, bt > 1, u2, height * width, boundary, out.view(-1, ch).numpy())
        ctx.save_for_backward(t, u)
        ctx.opts = (boundary, linear)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):  # type: ignore[override]
        from affectsynth.render._kernels import texture as k  # noqa: PLC0415

        t, u = ctx.saved_tensors
        boundary, linear = ctx.opts
        bt, ht, wt, ch = t.shape
        pix = u.shape[1] * u.shape[2]
        u2 = u.view(-1, 2).numpy()
        g2 = g_out.contiguous().view(-1, ch).numpy()
        g_tex = torch.zeros_like(t)
        g_uv = torch.zeros_like(u)
        if linear:
            consts = _consts(ht, wt, t.dtype)
            idx = np.empty((u2.shape[0], 4), dtype=_index_dtype(t))
            frac = np.empty((u2.shape[0], 2), dtype=u2.dtype)
            k.tex_taps(u2, ht, wt, bt > 1, pix, boundary, consts, idx, frac)
            k.tex_scatter(t.view(-1, ch).numpy(), idx, frac, consts, g2, g_tex.view(-1, ch).numpy(),
                          g_uv.view(-1, 2).numpy())
        else:
            k.tex_nearest_bwd(ht, wt, bt > 1, u2, pix, boundary, g2, g_tex.view(-1, ch).numpy())
        return (g_tex if ctx.needs_input_grad[0] else None,
                g_uv if ctx.needs_input_grad[1] else None, None, None)


def texture(
    tex: Tensor,
    uv: Tensor,
    *,
    uv_da: Tensor | None = None,
    filter_mode: str = "bilinear",
    boundary_mode: str = "wrap",
) -> Tensor:
    """Sample a texture at continuous texture coordinates (nvdiffrast semantics, no mipmaps).

    Args:
        tex: [Bt, Ht, Wt, C] float32 texture, channels last; Bt is 1 (shared) or B.
        uv: [B, H, W, 2] float32 texture coordinates: u along Wt, v along Ht; (0, 0) is the
            outer corner of texel (row 0, col 0), (1, 1) the far corner, texel centres at
            ((j + 0.5) / Wt, (i + 0.5) / Ht).
        uv_da: [B, H, W, 4] uv pixel derivatives; accepted for nvdiffrast compatibility and
            ignored (no mipmapping).
        filter_mode: "bilinear" (alias "linear", "auto") or "nearest".
        boundary_mode: "wrap" (repeat), "clamp" (edge texels) or "zero" (zeros outside).

    Returns:
        [B, H, W, C] sampled values, dtype of `tex`/`uv` promoted; differentiable w.r.t. `tex`
        and (bilinear) `uv`.

    Raises:
        TypeError: wrong types or dtypes.
        ShapeError: wrong shapes.
        ValueError: unknown filter or boundary mode, bad texture batch, mixed devices.

    Example:
        >>> import torch
        >>> tex = torch.arange(4.0).view(1, 2, 2, 1)
        >>> uv = torch.tensor([[[[0.25, 0.75]]]])  # centre of texel row 1, col 0
        >>> float(texture(tex, uv)[0, 0, 0, 0])
        2.0
    """
    check_tensor(tex, name="tex", where="texture", dtypes=_FLOATS)
    check_tensor(uv, name="uv", where="texture", dtypes=_FLOATS)
    dims = check_shape(uv, "B H W 2", name="uv", where="texture")
    check_shape(tex, "Bt Ht Wt C", name="tex", where="texture")
    if uv_da is not None:
        check_tensor(uv_da, name="uv_da", where="texture", dtypes=_FLOATS)
        check_shape(uv_da, "B H W 4", name="uv_da", where="texture", dims=dims)
    check_same_device(tex, uv, uv_da, where="texture")
    if filter_mode not in _FILTERS:
        raise ValueError(
            f"texture: filter_mode must be one of {sorted(_FILTERS)}, got {filter_mode!r} "
            "(mipmapped modes are not supported)"
        )
    if boundary_mode not in _BOUNDARIES:
        raise ValueError(f"texture: boundary_mode must be one of {list(_BOUNDARIES)}, got {boundary_mode!r}")
    nb = dims["B"]
    bt, ht, wt, ch = tex.shape
    if bt not in (1, nb):
        raise ValueError(f"texture: tex batch must be 1 or {nb} (uv's), got {bt}")
    if ht == 0 or wt == 0:
        raise ValueError(f"texture: tex must have at least one texel, got {list(tex.shape)}")
    mode = _FILTERS[filter_mode]

    if tex.device.type == "cuda":
        from affectsynth.render.context import _import_nvdiffrast  # noqa: PLC0415

        dr = _import_nvdiffrast()
        return dr.texture(tex.contiguous(), uv.contiguous(), filter_mode=mode, boundary_mode=boundary_mode)

    if tex.device.type == "cpu":
        dt = torch.promote_types(tex.dtype, uv.dtype)
        return _TextureCpu.apply(tex.to(dt), uv.to(dt), _BOUNDARIES.index(boundary_mode), mode == "linear")
    return _texture_torch(tex, uv, mode, boundary_mode)


def _texture_torch(tex: Tensor, uv: Tensor, mode: str, boundary_mode: str) -> Tensor:
    """Pure-torch texture sampling (any device); the compiled path's reference."""
    nb, height, width, _ = uv.shape
    bt, ht, wt, ch = tex.shape
    dt = torch.promote_types(tex.dtype, uv.dtype)
    tex_flat = tex.reshape(-1, ch)
    if tex_flat.dtype != dt:
        tex_flat = tex_flat.to(dt)
    uvf = uv.reshape(-1, 2).to(dt)
    npix = uvf.shape[0]
    base = None
    if bt > 1:
        base = torch.arange(nb, device=uv.device).repeat_interleave(height * width) * (ht * wt)
    x = uvf[:, 0] * wt
    y = uvf[:, 1] * ht
    if mode == "nearest":
        xi, vx = _wrap_index(torch.floor(x.detach()).long(), wt, boundary_mode)
        yi, vy = _wrap_index(torch.floor(y.detach()).long(), ht, boundary_mode)
        idx = yi * wt + xi
        if base is not None:
            idx = idx + base
        out = tex_flat.index_select(0, idx)
        if vx is not None:
            out = out * (vx & vy).to(dt)[:, None]
        return out.view(nb, height, width, ch)

    x = x - 0.5
    y = y - 0.5
    x0f = torch.floor(x.detach())
    y0f = torch.floor(y.detach())
    fx = (x - x0f)[:, None]
    fy = (y - y0f)[:, None]
    x0 = x0f.long()
    y0 = y0f.long()
    xa, vxa = _wrap_index(x0, wt, boundary_mode)
    xb, vxb = _wrap_index(x0 + 1, wt, boundary_mode)
    ya, vya = _wrap_index(y0, ht, boundary_mode)
    yb, vyb = _wrap_index(y0 + 1, ht, boundary_mode)
    ra = ya * wt
    rb = yb * wt
    idx = torch.stack([ra + xa, ra + xb, rb + xa, rb + xb])  # [4, N]
    if base is not None:
        idx = idx + base
    vals = tex_flat.index_select(0, idx.reshape(-1)).view(4, npix, ch)
    if vxa is not None:
        valid = torch.stack([vya & vxa, vya & vxb, vyb & vxa, vyb & vxb]).to(dt)[..., None]
        vals = vals * valid
    top = vals[0] + fx * (vals[1] - vals[0])
    bot = vals[2] + fx * (vals[3] - vals[2])
    out = top + fy * (bot - top)
    return out.view(nb, height, width, ch)
