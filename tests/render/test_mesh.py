"""Tests for affectsynth.render.mesh."""

from __future__ import annotations

import torch

from affectsynth.render.mesh import vertex_normals


def test_vertex_normals_compiled_path_matches_torch_path(make_disc):
    # no grad: the compiled loop; requires_grad: the torch path (and its gradient)
    verts, tri = make_disc(16)
    g = torch.Generator().manual_seed(3)
    v = (verts + 0.05 * torch.randn(verts.shape, generator=g, dtype=verts.dtype)).float()
    v = torch.cat([v, torch.zeros(2, 3)])  # two unused vertices get zero normals
    fast = vertex_normals(v, tri)
    vg = v.clone().requires_grad_(True)
    slow = vertex_normals(vg, tri)
    assert fast.grad_fn is None and slow.grad_fn is not None
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-6)
    assert (fast[-2:] == 0).all()
    torch.testing.assert_close(fast.norm(dim=-1)[:-2], torch.ones(v.shape[0] - 2))
    with torch.no_grad():
        torch.testing.assert_close(vertex_normals(vg, tri), fast, rtol=0, atol=0)
