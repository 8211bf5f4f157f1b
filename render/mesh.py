"""Mesh geometry helpers: per-vertex quantities derived from positions and triangles."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["vertex_normals"]


def vertex_normals(vertices: Tensor, tri: Tensor) -> Tensor:
    """Area-weighted unit vertex normals (counter-clockwise triangles face outwards).

    Args:
        vertices: [V, 3] float positions.
        tri: [T, 3] int triangles.

    Returns:
        [V, 3] unit normals (0 for unused vertices), dtype of ``vertices``. On the CPU, when
        ``vertices`` does not require grad, a compiled loop computes them (the same sums in the
        same order, no autograd graph).
    """
    if vertices.device.type == "cpu" and vertices.dim() == 2 and not (torch.is_grad_enabled() and vertices.requires_grad):
        from affectsynth.render._kernels.mesh import vertex_normals_fwd  # noqa: PLC0415  (numba import is slow)

        n = torch.zeros_like(vertices, memory_format=torch.contiguous_format)
        vertex_normals_fwd(vertices.detach().contiguous().numpy(), tri.to(torch.int32).contiguous().numpy(), n.numpy())
        return n
    t = tri.long()
    v0, v1, v2 = vertices[t[:, 0]], vertices[t[:, 1]], vertices[t[:, 2]]
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)
    n = torch.zeros_like(vertices)
    for k in range(3):
        n.index_add_(0, t[:, k], fn)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
