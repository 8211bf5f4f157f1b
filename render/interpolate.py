"""Interpolation of per-vertex attributes at the pixels covered by a rasterization."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from affectsynth.render._checks import check_same_device, check_shape, check_tensor

__all__ = ["interpolate"]

_FLOATS = (torch.float32, torch.float64)
_INTS = (torch.int32, torch.int64)


def _diff_list(diff_attrs: str | Sequence[int] | None, n_attr: int) -> list[int]:
    if diff_attrs is None:
        return []
    if isinstance(diff_attrs, str):
        if diff_attrs != "all":
            raise ValueError(f"interpolate: diff_attrs must be 'all' or a list of ints, got {diff_attrs!r}")
        return list(range(n_attr))
    out = [int(i) for i in diff_attrs]
    bad = [i for i in out if not 0 <= i < n_attr]
    if bad:
        raise ValueError(f"interpolate: diff_attrs must index [0, {n_attr}), got {bad}")
    return out


def _use_nvdiffrast(t: Tensor) -> bool:
    if t.device.type != "cuda":
        return False
    from affectsynth.render.context import _import_nvdiffrast  # noqa: PLC0415

    _import_nvdiffrast()
    return True


class _InterpolateCpu(torch.autograd.Function):
    """Compiled interpolation with a hand-written backward (no pixel derivatives)."""

    @staticmethod
    def forward(ctx, attr3, rast, tri):  # type: ignore[override]
        from affectsynth.render._kernels.interpolation import interp_fwd  # noqa: PLC0415

        a = attr3.detach().contiguous()
        r = rast.detach().contiguous()
        t = tri.detach().to(torch.int32).contiguous()
        nb, height, width, _ = r.shape
        ba, nv, na = a.shape
        out = torch.empty(nb, height, width, na, dtype=a.dtype)  # interp_fwd writes every pixel
        bad = interp_fwd(a.view(-1, na).numpy(), nv, ba > 1, t.numpy(), r.view(-1, 4).numpy(), height * width,
                         out.view(-1, na).numpy())
        if bad:
            raise ValueError(f"interpolate: rast refers to triangle {bad - 1} but tri has {t.shape[0]} rows")
        ctx.save_for_backward(a, r, t)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):  # type: ignore[override]
        from affectsynth.render._kernels.interpolation import interp_bwd  # noqa: PLC0415

        a, r, t = ctx.saved_tensors
        ba, nv, na = a.shape
        want_attr = bool(ctx.needs_input_grad[0])
        g_attr = torch.zeros_like(a) if want_attr else torch.zeros(1, 1, na, dtype=a.dtype)
        g_rast = torch.zeros_like(r)
        interp_bwd(a.view(-1, na).numpy(), nv, ba > 1, t.numpy(), r.view(-1, 4).numpy(), r.shape[1] * r.shape[2],
                   g_out.contiguous().view(-1, na).numpy(), want_attr, g_attr.view(-1, na).numpy(),
                   g_rast.view(-1, 4).numpy())
        return (g_attr if ctx.needs_input_grad[0] else None,
                g_rast if ctx.needs_input_grad[1] else None, None)


def interpolate(
    attr: Tensor,
    rast: Tensor,
    tri: Tensor,
    *,
    rast_db: Tensor | None = None,
    diff_attrs: str | Sequence[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Interpolate per-vertex attributes at covered pixels (nvdiffrast semantics).

    Args:
        attr: [B, V, A] float32 vertex attributes (B may be 1: broadcast), or [V, A] shared.
            float64 accepted.
        rast: [B, H, W, 4] from `rasterize`: (u, v, z/w, triangle_id + 1).
        tri: [T, 3] int32 vertex indices into `attr` (may differ from the rasterized topology,
            e.g. UV indices, as long as triangle t matches).
        rast_db: [B, H, W, 4] from `rasterize`, needed for `diff_attrs`.
        diff_attrs: 'all' or attribute indices whose pixel derivatives to return.

    Returns:
        out: [B, H, W, A] interpolated attributes, 0 at empty pixels; differentiable w.r.t.
            `attr` and rast's (u, v).
        out_db: [B, H, W, 2 * len(diff_attrs)] (dA/dX, dA/dY per listed attribute, in pixels),
            or [B, H, W, 0] when no derivatives were requested.

    Raises:
        TypeError: wrong types or dtypes.
        ShapeError: wrong shapes.
        ValueError: bad `diff_attrs`, `diff_attrs` without `rast_db`, mixed devices.

    Example:
        >>> import torch
        >>> from affectsynth.render.rasterize import rasterize
        >>> pos = torch.tensor([[[-1., -1, 0, 1], [1, -1, 0, 1], [-1, 1, 0, 1]]])
        >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        >>> rast, _ = rasterize(pos, tri, (4, 4))
        >>> out, _ = interpolate(torch.ones(1, 3, 2), rast, tri)
        >>> float(out[0, 0, 0, 0])
        1.0
    """
    check_tensor(attr, name="attr", where="interpolate", dtypes=_FLOATS)
    check_tensor(rast, name="rast", where="interpolate", dtypes=_FLOATS)
    check_tensor(tri, name="tri", where="interpolate", dtypes=_INTS)
    dims = check_shape(rast, "B H W 4", name="rast", where="interpolate")
    check_shape(attr, ["Ba V A", "V A"], name="attr", where="interpolate", dims=dims)
    check_shape(tri, "T 3", name="tri", where="interpolate")
    if rast_db is not None:
        check_tensor(rast_db, name="rast_db", where="interpolate", dtypes=_FLOATS)
        check_shape(rast_db, ["B H W 4", "B H W 0"], name="rast_db", where="interpolate", dims=dims)
    check_same_device(attr, rast, tri, rast_db, where="interpolate")
    nb, height, width = dims["B"], dims["H"], dims["W"]
    if attr.dim() == 3 and attr.shape[0] not in (1, nb):
        raise ValueError(f"interpolate: attr batch must be 1 or {nb} (rast's), got {attr.shape[0]}")
    n_attr = attr.shape[-1]
    dl = _diff_list(diff_attrs, n_attr)
    if dl and (rast_db is None or rast_db.shape[-1] != 4):
        raise ValueError("interpolate: diff_attrs needs rast_db [B, H, W, 4] from rasterize(grad_db=True)")

    if _use_nvdiffrast(attr):
        from affectsynth.render.context import _import_nvdiffrast  # noqa: PLC0415

        dr = _import_nvdiffrast()
        return dr.interpolate(
            attr.contiguous(), rast.contiguous(), tri.to(torch.int32).contiguous(),
            rast_db=rast_db, diff_attrs=("all" if diff_attrs == "all" else (dl or None)),
        )

    dt = torch.promote_types(attr.dtype, rast.dtype)
    if attr.device.type == "cpu" and not dl:
        attr3 = attr.to(dt) if attr.dim() == 3 else attr.to(dt).unsqueeze(0)
        out = _InterpolateCpu.apply(attr3, rast.to(dt), tri)
        return out, torch.zeros(nb, height, width, 0, dtype=dt)
    return _interpolate_torch(attr, rast, tri, rast_db, dl)


def _interpolate_torch(
    attr: Tensor, rast: Tensor, tri: Tensor, rast_db: Tensor | None, dl: list[int]
) -> tuple[Tensor, Tensor]:
    """Pure-torch interpolation (any device; also the path with pixel derivatives)."""
    nb, height, width, _ = rast.shape
    n_attr = attr.shape[-1]
    dev, dt = attr.device, torch.promote_types(attr.dtype, rast.dtype)
    hw = height * width
    tid = rast[..., 3].detach().reshape(-1)
    pix = torch.nonzero(tid > 0.5, as_tuple=True)[0]
    t = tid[pix].round().long() - 1
    if t.numel() and int(t.max()) >= tri.shape[0]:
        raise ValueError(
            f"interpolate: rast refers to triangle {int(t.max())} but tri has {tri.shape[0]} rows"
        )
    nv = attr.shape[-2]
    vidx = tri.long()[t]  # [N, 3]
    if attr.dim() == 3 and attr.shape[0] > 1:
        vidx = vidx + (torch.div(pix, hw, rounding_mode="floor") * nv)[:, None]
    a = attr.reshape(-1, n_attr).to(dt)[vidx]  # [N, 3, A]
    r = rast.reshape(-1, 4)[pix].to(dt)
    u = r[:, 0:1]
    v = r[:, 1:2]
    a0, a1, a2 = a.unbind(1)
    vals = a2 + u * (a0 - a2) + v * (a1 - a2)
    out = torch.zeros(nb * hw, n_attr, dtype=dt, device=dev).index_copy(0, pix, vals)
    out = out.view(nb, height, width, n_attr)
    if not dl:
        return out, torch.zeros(nb, height, width, 0, dtype=dt, device=dev)
    db = rast_db.reshape(-1, 4)[pix].to(dt)  # type: ignore[union-attr]
    sel = torch.tensor(dl, dtype=torch.long, device=dev)
    d0 = (a0 - a2).index_select(1, sel)
    d1 = (a1 - a2).index_select(1, sel)
    dx = db[:, 0:1] * d0 + db[:, 2:3] * d1
    dy = db[:, 1:2] * d0 + db[:, 3:4] * d1
    dvals = torch.stack([dx, dy], dim=-1).reshape(-1, 2 * len(dl))
    out_db = torch.zeros(nb * hw, 2 * len(dl), dtype=dt, device=dev).index_copy(0, pix, dvals)
    return out, out_db.view(nb, height, width, 2 * len(dl))
