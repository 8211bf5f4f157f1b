"""Analytic antialiasing of silhouette and occlusion edges, with gradients to vertex positions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from affectsynth.render._checks import check_same_device, check_shape, check_tensor

__all__ = ["antialias", "antialias_construct_topology_hash", "TopologyHash"]

_FLOATS = (torch.float32, torch.float64)
_INTS = (torch.int32, torch.int64)


@dataclass(frozen=True)
class TopologyHash:
    """Edge adjacency of a triangle mesh, built once per topology.

    Attributes:
        opposite: [T, 3] int32 numpy array; (t, k) is the vertex across edge k of triangle t
            (the edge not containing vertex k) in the neighbouring triangle, -1 on boundaries.
        num_triangles: T, to catch a hash built for another mesh.
    """

    opposite: np.ndarray
    num_triangles: int


def antialias_construct_topology_hash(tri: Tensor) -> TopologyHash:
    """Build the edge adjacency `antialias` needs; reuse it while the topology is unchanged.

    Args:
        tri: [T, 3] int32 vertex indices.

    Returns:
        A `TopologyHash`.

    Raises:
        TypeError: tri is not an integer tensor.
        ShapeError: tri is not [T, 3].

    Example:
        >>> import torch
        >>> h = antialias_construct_topology_hash(torch.tensor([[0, 1, 2], [2, 1, 3]]))
        >>> h.opposite.tolist()
        [[3, -1, -1], [-1, -1, 0]]
    """
    from affectsynth.render._kernels.antialias import topology_opposite  # noqa: PLC0415

    check_tensor(tri, name="tri", where="antialias_construct_topology_hash", dtypes=_INTS)
    check_shape(tri, "T 3", name="tri", where="antialias_construct_topology_hash")
    t_np = tri.detach().cpu().numpy()
    return TopologyHash(opposite=topology_opposite(t_np), num_triangles=int(tri.shape[0]))


def _pos_index(nb: int, pos_batched: bool) -> np.ndarray:
    """[B] int64: the pos batch each image uses."""
    return np.arange(nb, dtype=np.int64) if pos_batched else np.zeros(nb, dtype=np.int64)


def _pos3(pos: Tensor) -> np.ndarray:
    """[Bp, V, 4] contiguous numpy view of pos ([V, 4] gets a batch of 1)."""
    p = pos.detach().contiguous()
    return (p.unsqueeze(0) if p.dim() == 2 else p).numpy()


def _find_edges(pos: Tensor, rast: Tensor, tri: Tensor, topo: TopologyHash,
                pos_batched: bool) -> tuple[np.ndarray, np.ndarray]:
    """(items [N, 6] int64, crossing distances [N] float64) of `antialias_find_edges`."""
    from affectsynth.render._kernels.antialias import antialias_find_edges  # noqa: PLC0415

    nb, height, width, _ = rast.shape
    p = pos.detach().contiguous()
    p = p.unsqueeze(0) if p.dim() == 2 else p
    pos_index = np.arange(nb, dtype=np.int64) if pos_batched else np.zeros(nb, dtype=np.int64)
    args = (p.numpy(), pos_index, tri.detach().to(torch.int32).contiguous().numpy(), topo.opposite,
            rast.detach().contiguous().numpy())
    # Edges lie along silhouettes: a few times the perimeter is room enough, almost always; the
    # retry has room for every adjacent pixel pair. (Fewer fresh pages than the full size each call.)
    for bound in (nb * (8 * (height + width) + 1024), 2 * nb * height * width):
        items = np.empty((bound, 6), dtype=np.int64)
        dcs = np.empty(bound, dtype=np.float64)
        n = antialias_find_edges(*args, items, dcs)
        if n >= 0:
            break
    return items[:n], dcs[:n]


def _antialias_forward(color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor, topo: TopologyHash,
                       pos_batched: bool) -> Tensor:
    """The compiled forward-only path (CPU, nothing requires grad): the edges' crossings as found,
    blended in numba, no autograd graph."""
    from affectsynth.render._kernels.antialias import antialias_blend  # noqa: PLC0415

    items, dcs = _find_edges(pos, rast, tri, topo, pos_batched)
    c = color.detach().to(torch.promote_types(color.dtype, pos.dtype)).contiguous()
    out = c.clone()
    ch = c.shape[-1]
    antialias_blend(c.view(-1, ch).numpy(), items, dcs, items.shape[0], out.view(-1, ch).numpy())
    return out


def antialias(
    color: Tensor,
    rast: Tensor,
    pos: Tensor,
    tri: Tensor,
    *,
    topology_hash: TopologyHash | None = None,
    pos_gradient_boost: float = 1.0,
) -> Tensor:
    """Antialias silhouette and occlusion edges analytically (nvdiffrast's method).

    For each horizontally or vertically adjacent pixel pair whose triangle ids differ, the
    nearer triangle's silhouette edge crossing between the two pixel centres (if any) is
    located, and the pixel on the wrong side of the midpoint is blended towards the other
    pixel's colour in proportion to the crossing's distance from the midpoint. The blend weight
    is a function of the edge's projected vertices, so gradients reach `pos`.

    Args:
        color: [B, H, W, C] float32 shaded image.
        rast: [B, H, W, 4] from `rasterize` with the same pos and tri.
        pos: [B, V, 4] float32 clip-space positions (B may be 1), or [V, 4] in range mode.
        tri: [T, 3] int32 vertex indices.
        topology_hash: from `antialias_construct_topology_hash(tri)`; built on the fly if None
            (costs a sort of the edges per call).
        pos_gradient_boost: multiplier on the gradient w.r.t. `pos` (values unaffected).

    Returns:
        [B, H, W, C] antialiased colours; differentiable w.r.t. `color` and `pos`. On the CPU
        with neither requiring grad, one compiled pass finds and blends the edges (no autograd
        graph; the same values up to float rounding).

    Raises:
        TypeError: wrong types or dtypes, or a foreign topology hash.
        ShapeError: wrong shapes.
        ValueError: batch mismatch, a hash for another mesh, mixed devices.

    Example:
        >>> import torch
        >>> from affectsynth.render.rasterize import rasterize
        >>> pos = torch.tensor([[[-0.9, -0.9, 0, 1], [0.8, -0.7, 0, 1], [-0.6, 0.9, 0, 1]]])
        >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        >>> rast, _ = rasterize(pos, tri, (8, 8))
        >>> antialias((rast[..., 3:] > 0).float(), rast, pos, tri).shape
        torch.Size([1, 8, 8, 1])
    """
    check_tensor(color, name="color", where="antialias", dtypes=_FLOATS)
    check_tensor(rast, name="rast", where="antialias", dtypes=_FLOATS)
    check_tensor(pos, name="pos", where="antialias", dtypes=_FLOATS)
    check_tensor(tri, name="tri", where="antialias", dtypes=_INTS)
    dims = check_shape(color, "B H W C", name="color", where="antialias")
    check_shape(rast, "B H W 4", name="rast", where="antialias", dims=dims)
    check_shape(pos, ["Bp V 4", "V 4"], name="pos", where="antialias")
    check_shape(tri, "T 3", name="tri", where="antialias")
    check_same_device(color, rast, pos, tri, where="antialias")
    nb = dims["B"]
    pos_batched = pos.dim() == 3 and pos.shape[0] > 1
    if pos_batched and pos.shape[0] != nb:
        raise ValueError(f"antialias: pos batch must be 1 or {nb} (color's), got {pos.shape[0]}")
    if topology_hash is not None and not isinstance(topology_hash, TopologyHash):
        raise TypeError(
            "antialias: topology_hash must come from antialias_construct_topology_hash, "
            f"got {type(topology_hash).__name__}"
        )
    if topology_hash is not None and topology_hash.num_triangles != tri.shape[0]:
        raise ValueError(
            f"antialias: topology_hash was built for {topology_hash.num_triangles} triangles, "
            f"tri has {tri.shape[0]}"
        )

    if color.device.type == "cuda":
        from affectsynth.render.context import _import_nvdiffrast  # noqa: PLC0415

        dr = _import_nvdiffrast()
        return dr.antialias(
            color.contiguous(), rast.contiguous(), pos.contiguous(), tri.to(torch.int32).contiguous(),
            pos_gradient_boost=pos_gradient_boost,
        )

    topo = topology_hash if topology_hash is not None else antialias_construct_topology_hash(tri)
    if color.device.type == "cpu" and not (torch.is_grad_enabled() and (color.requires_grad or pos.requires_grad)):
        return _antialias_forward(color, rast, pos, tri, topo, pos_batched)
    items = torch.from_numpy(_find_edges(pos, rast, tri, topo, pos_batched)[0].copy())
    if items.shape[0] == 0:
        return color.clone()
    _, height, width, ch = color.shape
    dt = torch.promote_types(color.dtype, pos.dtype)
    p = pos if pos_gradient_boost == 1.0 else pos.detach() + (pos - pos.detach()) * pos_gradient_boost
    pflat = p.reshape(-1, 4).to(dt)
    pix0, pix1, down, ref1, va, vb = items.unbind(1)
    down_f = down.bool()
    ref = torch.where(ref1.bool(), pix1, pix0)
    rem = ref % (height * width)
    ry = torch.div(rem, width, rounding_mode="floor").to(dt)
    rx = (rem % width).to(dt)
    xh, yh = 0.5 * width, 0.5 * height
    pa = pflat[va]
    pb = pflat[vb]
    xa = pa[:, 0] / pa[:, 3] * xh - (rx + 0.5 - xh)
    ya = pa[:, 1] / pa[:, 3] * yh - (ry + 0.5 - yh)
    xb = pb[:, 0] / pb[:, 3] * xh - (rx + 0.5 - xh)
    yb = pb[:, 1] / pb[:, 3] * yh - (ry + 0.5 - yh)
    # For vertical pairs swap the axes so the pair direction is always "x".
    xa, ya = torch.where(down_f, ya, xa), torch.where(down_f, xa, ya)
    xb, yb = torch.where(down_f, yb, xb), torch.where(down_f, xb, yb)
    ds = 1.0 - 2.0 * ref1.to(dt)
    dc = ds * (xa * (yb - ya) - ya * (xb - xa)) / (yb - ya)
    dc = dc.clamp(0.0, 1.0)
    alpha = ds * (0.5 - dc)
    cflat = color.reshape(-1, ch).to(dt)
    delta = alpha[:, None] * (cflat[pix1] - cflat[pix0])
    target = torch.where(alpha.detach() > 0, pix0, pix1)
    out = cflat.index_add(0, target, delta)
    return out.view(color.shape)
