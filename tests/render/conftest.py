"""Shared fixtures for the render primitive tests: small meshes in clip space."""

from __future__ import annotations

import math

import pytest
import torch


def grid_mesh(n: int = 4, *, z: float = 0.0, w: float = 1.0, extent: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat (n x n)-cell grid in clip space: pos [1, (n+1)^2, 4] float32, tri [2 n^2, 3] int32."""
    lin = torch.linspace(-extent, extent, n + 1)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    pos = torch.stack([gx * w, gy * w, torch.full_like(gx, z * w), torch.full_like(gx, w)], -1).reshape(1, -1, 4)
    tris = []
    for r in range(n):
        for c in range(n):
            a = r * (n + 1) + c
            tris.append([a, a + 1, a + n + 1])
            tris.append([a + 1, a + n + 2, a + n + 1])
    return pos, torch.tensor(tris, dtype=torch.int32)


def random_soup(
    n_tri: int, *, seed: int, batch: int = 1, perspective: bool = True, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random overlapping triangles with varied depth and w: pos [B, 3 n, 4], tri [n, 3] int32."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(batch, n_tri, 1, 2, generator=g) * 1.6 - 0.8
    offs = (torch.rand(batch, n_tri, 3, 2, generator=g) - 0.5) * 0.9
    xy = (centre + offs).reshape(batch, 3 * n_tri, 2)
    z = torch.rand(batch, 3 * n_tri, 1, generator=g) * 1.6 - 0.8
    w = (torch.rand(batch, 3 * n_tri, 1, generator=g) * 1.5 + 0.5) if perspective else torch.ones(batch, 3 * n_tri, 1)
    pos = torch.cat([xy * w, z * w, w], -1).to(dtype)
    tri = torch.arange(3 * n_tri, dtype=torch.int32).reshape(n_tri, 3)
    return pos, tri


def disc_mesh(n: int = 12, *, radius: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    """A fan-triangulated regular n-gon in the z = 0 plane (model space), pos [n + 1, 3]."""
    ang = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    rim = torch.stack([torch.cos(ang), torch.sin(ang) * 0.7, torch.zeros(n, dtype=torch.float64)], -1) * radius
    verts = torch.cat([torch.zeros(1, 3, dtype=torch.float64), rim])
    tri = torch.tensor([[0, 1 + i, 1 + (i + 1) % n] for i in range(n)], dtype=torch.int32)
    return verts, tri


def pixel_disc_mesh(centre: tuple[float, float], radius: float, n_ring: int = 24, n_rad: int = 4):
    """A 2D disc mesh in pixels (rings of vertices around a centre): points [V, 2], tri [T, 3] int32."""
    pts = [centre]
    for r in range(1, n_rad + 1):
        for k in range(n_ring):
            a = 2 * math.pi * k / n_ring
            pts.append((centre[0] + radius * r / n_rad * math.cos(a), centre[1] + radius * r / n_rad * math.sin(a)))
    tri = [(0, 1 + k, 1 + (k + 1) % n_ring) for k in range(n_ring)]
    for r in range(1, n_rad):
        base, nxt = 1 + (r - 1) * n_ring, 1 + r * n_ring
        for k in range(n_ring):
            k1 = (k + 1) % n_ring
            tri += [(base + k, nxt + k, nxt + k1), (base + k, nxt + k1, base + k1)]
    return torch.tensor(pts, dtype=torch.float32), torch.tensor(tri, dtype=torch.int32)


@pytest.fixture
def make_pixel_disc():
    """Factory fixture: `make_pixel_disc(centre, radius, n_ring=24, n_rad=4)` (see `pixel_disc_mesh`)."""
    return pixel_disc_mesh


@pytest.fixture
def grid() -> tuple[torch.Tensor, torch.Tensor]:
    return grid_mesh()


@pytest.fixture
def soup() -> tuple[torch.Tensor, torch.Tensor]:
    return random_soup(12, seed=0, batch=2)


@pytest.fixture
def make_grid():
    """Factory fixture: `make_grid(n, z=..., w=..., extent=...)`."""
    return grid_mesh


@pytest.fixture
def make_soup():
    """Factory fixture: `make_soup(n_tri, seed=..., batch=..., perspective=..., dtype=...)`."""
    return random_soup


@pytest.fixture
def make_disc():
    """Factory fixture: `make_disc(n, radius=...)` -> model-space verts [n + 1, 3] float64, tri."""
    return disc_mesh
