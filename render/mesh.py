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
        [V, 3] unit normals (0 for unused vertices), dtype of ``vertices``.
    """
    t = tri.long()
    v0, v1, v2 = vertices[t[:, 0]], vertices[t[:, 1]], vertices[t[:, 2]]
    fn = torch.cross(v1 - v0, v2 - v0, dim=-1)
    n = torch.zeros_like(vertices)
    for k in range(3):
        n.index_add_(0, t[:, k], fn)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
