"""Tests for affectsynth.render.antialias."""

from __future__ import annotations

import math

import pytest
import torch

from affectsynth.render import (
    ShapeError,
    TopologyHash,
    antialias,
    antialias_construct_topology_hash,
    interpolate,
    rasterize,
)
from affectsynth.render._reference import antialias_reference


def _scene(make_soup, seed=21, batch=2, res=(19, 23), dtype=torch.float32):
    pos, tri = make_soup(8, seed=seed, batch=batch, dtype=dtype)
    rast, _ = rasterize(pos, tri, res)
    g = torch.Generator().manual_seed(seed)
    color = torch.rand(batch, *res, 3, generator=g, dtype=dtype)
    return pos, tri, rast, color


def test_smoke(make_soup):
    pos, tri, rast, color = _scene(make_soup)
    out = antialias(color, rast, pos, tri)
    assert out.shape == color.shape and out.dtype == color.dtype
    assert (out != color).any()


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_matches_reference(make_soup, seed):
    pos, tri, rast, color = _scene(make_soup, seed=seed)
    out = antialias(color, rast, pos, tri)
    ref = antialias_reference(color, rast, pos, tri)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_matches_reference_on_closed_mesh(make_disc):
    verts, tri = make_disc(9)
    pos = torch.cat([verts[:, :2] * 1.3, verts[:, 2:] * 0.1, torch.ones(verts.shape[0], 1, dtype=torch.float64)], -1)
    pos = pos[None].float()
    rast, _ = rasterize(pos, tri, (24, 24))
    color = torch.rand(1, 24, 24, 2)
    out = antialias(color, rast, pos, tri)
    torch.testing.assert_close(out.double(), antialias_reference(color, rast, pos, tri), rtol=1e-5, atol=1e-5)
    # Interior edges between the fan's triangles are not silhouettes: only rim pixels change.
    changed = (out != color).any(-1)[0]
    inner = rast[0, ..., 3] > 0
    inner = inner & torch.roll(inner, 1, 0) & torch.roll(inner, -1, 0) & torch.roll(inner, 1, 1) & torch.roll(inner, -1, 1)
    assert not (changed & inner).any()


def test_full_screen_grid_is_unchanged(make_grid):
    pos, tri = make_grid(5, extent=1.5)
    rast, _ = rasterize(pos, tri, (16, 16))
    assert (rast[..., 3] > 0).all()
    color = torch.rand(1, 16, 16, 3)
    torch.testing.assert_close(antialias(color, rast, pos, tri), color, rtol=0, atol=0)


def test_batch_equals_single_and_pos_broadcast(make_soup):
    pos, tri, rast, color = _scene(make_soup, batch=2)
    out = antialias(color, rast, pos, tri)
    for b in range(2):
        one = antialias(color[b : b + 1], rast[b : b + 1], pos[b : b + 1], tri)
        torch.testing.assert_close(out[b : b + 1], one, rtol=0, atol=0)
    shared = pos[:1]
    rast_s, _ = rasterize(shared.expand(2, -1, -1).contiguous(), tri, (19, 23))
    torch.testing.assert_close(
        antialias(color, rast_s, shared, tri), antialias(color, rast_s, shared.expand(2, -1, -1), tri)
    )


def test_topology_hash_reuse(make_soup):
    pos, tri, rast, color = _scene(make_soup)
    topo = antialias_construct_topology_hash(tri)
    assert isinstance(topo, TopologyHash) and topo.opposite.shape == (tri.shape[0], 3)
    torch.testing.assert_close(antialias(color, rast, pos, tri, topology_hash=topo), antialias(color, rast, pos, tri))


def test_topology_hash_adjacency():
    topo = antialias_construct_topology_hash(torch.tensor([[0, 1, 2], [2, 1, 3], [3, 1, 4]], dtype=torch.int32))
    assert topo.opposite.tolist() == [[3, -1, -1], [4, -1, 0], [-1, -1, 2]]


def test_gradcheck_wrt_color_and_pos(make_soup):
    pos, tri, rast, color = _scene(make_soup, seed=24, batch=1, res=(9, 11), dtype=torch.float64)
    pos = pos.clone().requires_grad_(True)
    color = color.clone().requires_grad_(True)
    out = antialias(color, rast, pos, tri)
    assert (out != color).any()
    f = lambda c, p: antialias(c, rast, p, tri)  # noqa: E731
    assert torch.autograd.gradcheck(f, (color, pos), eps=1e-6, atol=1e-6)


def test_pos_gradient_boost(make_soup):
    pos, tri, rast, color = _scene(make_soup, seed=25, batch=1)
    grads = []
    for boost in (1.0, 3.0):
        p = pos.clone().requires_grad_(True)
        out = antialias(color, rast, p, tri, pos_gradient_boost=boost)
        out.sum().backward()
        grads.append((out.detach(), p.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=0)
    assert grads[0][1].abs().sum() > 0
    torch.testing.assert_close(grads[1][1], 3.0 * grads[0][1])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"color": torch.rand(1, 4, 4)}, ShapeError, "color must be"),
        ({"rast": torch.rand(1, 4, 5, 4)}, ShapeError, "rast must be"),
        ({"pos": torch.rand(1, 3, 3)}, ShapeError, "pos must be"),
        ({"tri": torch.zeros(1, 3)}, TypeError, "tri must be"),
        ({"topology_hash": "x"}, TypeError, "topology_hash must come"),
        ({"pos": torch.rand(3, 3, 4)}, ValueError, "pos batch"),
    ],
)
def test_errors(kwargs, exc, match):
    args = {
        "color": torch.rand(2, 4, 4, 3),
        "rast": torch.zeros(2, 4, 4, 4),
        "pos": torch.rand(1, 3, 4),
        "tri": torch.tensor([[0, 1, 2]], dtype=torch.int32),
    }
    topo = kwargs.pop("topology_hash", None)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        antialias(args["color"], args["rast"], args["pos"], args["tri"], topology_hash=topo)


def test_topology_hash_of_other_mesh_is_rejected(make_soup):
    pos, tri, rast, color = _scene(make_soup)
    with pytest.raises(ValueError, match="built for 2 triangles"):
        antialias(color, rast, pos, tri, topology_hash=antialias_construct_topology_hash(tri[:2]))


def _rot_z(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    z, o = torch.zeros_like(theta), torch.ones_like(theta)
    return torch.stack([torch.stack([c, -s, z]), torch.stack([s, c, z]), torch.stack([z, z, o])])


def test_optimisation_recovers_rotation_and_colour(make_disc):
    """Silhouette gradients from antialias recover a few degrees of rotation and a flat colour."""
    verts, tri = make_disc(7)
    topo = antialias_construct_topology_hash(tri)

    def render(theta: torch.Tensor, colour: torch.Tensor, *, aa: bool = True) -> torch.Tensor:
        v = verts @ _rot_z(theta).T + torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
        pos = torch.stack([2.5 * v[:, 0], 2.5 * v[:, 1], 0.1 * v[:, 2], v[:, 2]], -1)[None].float()
        rast, _ = rasterize(pos, tri, (48, 48))
        col, _ = interpolate(colour.float().expand(verts.shape[0], 3), rast, tri)
        return antialias(col, rast, pos, tri, topology_hash=topo) if aa else col

    true_theta, true_colour = math.radians(6.0), torch.tensor([0.9, 0.4, 0.2])
    target = render(torch.tensor(true_theta, dtype=torch.float64), true_colour).detach()

    # Without antialias there is no gradient to the rotation (ids are piecewise constant).
    theta = torch.zeros((), dtype=torch.float64, requires_grad=True)
    ((render(theta, true_colour, aa=False) - target) ** 2).mean().backward()
    assert theta.grad == 0

    theta = torch.zeros((), dtype=torch.float64, requires_grad=True)
    colour = torch.full((3,), 0.5, requires_grad=True)
    opt = torch.optim.Adam([{"params": [theta], "lr": 0.01}, {"params": [colour], "lr": 0.05}])
    for _ in range(100):
        opt.zero_grad()
        loss = ((render(theta, colour) - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert abs(math.degrees(theta.item()) - 6.0) < 0.3
    torch.testing.assert_close(colour.detach(), true_colour, rtol=0, atol=0.02)


@pytest.mark.parametrize("batch", [1, 3])
def test_forward_only_path_matches_autograd_path(make_soup, batch):
    # nothing requires grad: the compiled one-pass blend; otherwise the torch path with autograd
    pos, tri = make_soup(300, seed=5, batch=batch)
    rast, _ = rasterize(pos, tri, (61, 47))
    color = torch.rand(batch, 61, 47, 4, generator=torch.Generator().manual_seed(5))
    fast = antialias(color, rast, pos, tri)
    slow = antialias(color.clone().requires_grad_(True), rast, pos, tri)
    assert fast.grad_fn is None and slow.grad_fn is not None
    assert (fast != color).any()
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(antialias(color.clone().requires_grad_(True), rast, pos, tri), fast, rtol=0, atol=0)
