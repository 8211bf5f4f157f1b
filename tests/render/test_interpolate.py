"""Tests for affectsynth.render.interpolate."""

from __future__ import annotations

import pytest
import torch

from affectsynth.render import ShapeError, interpolate, rasterize
from affectsynth.render.interpolate import _interpolate_torch


@pytest.fixture
def scene(make_soup):
    pos, tri = make_soup(10, seed=11, batch=2)
    rast, rast_db = rasterize(pos, tri, (23, 31))
    attr = torch.randn(2, pos.shape[1], 5, generator=torch.Generator().manual_seed(0))
    return pos, tri, rast, rast_db, attr


def test_smoke(scene):
    _, tri, rast, _, attr = scene
    out, out_db = interpolate(attr, rast, tri)
    assert out.shape == (2, 23, 31, 5) and out.dtype == torch.float32
    assert out_db.shape == (2, 23, 31, 0)
    assert (out[rast[..., 3] == 0] == 0).all()


def test_values_are_barycentric_combinations(scene):
    _, tri, rast, _, attr = scene
    out, _ = interpolate(attr, rast, tri)
    b, r, c = (rast[..., 3] > 0).nonzero()[0].tolist()
    u, v, _, tid = rast[b, r, c].tolist()
    i0, i1, i2 = tri[int(tid) - 1].tolist()
    expected = u * attr[b, i0] + v * attr[b, i1] + (1 - u - v) * attr[b, i2]
    torch.testing.assert_close(out[b, r, c], expected)


def test_broadcast_forms_agree(scene):
    _, tri, rast, _, attr = scene
    shared = attr[0]
    out_v, _ = interpolate(shared, rast, tri)  # [V, A]
    out_1, _ = interpolate(shared[None], rast, tri)  # [1, V, A]
    out_b, _ = interpolate(shared[None].expand(2, -1, -1), rast, tri)  # [B, V, A]
    torch.testing.assert_close(out_v, out_1, rtol=0, atol=0)
    torch.testing.assert_close(out_v, out_b, rtol=0, atol=0)


def test_batch_equals_single(scene):
    _, tri, rast, _, attr = scene
    out, _ = interpolate(attr, rast, tri)
    for b in range(2):
        one, _ = interpolate(attr[b : b + 1], rast[b : b + 1], tri)
        torch.testing.assert_close(out[b : b + 1], one, rtol=0, atol=0)


def test_odd_resolution_and_other_topology(make_grid):
    pos, tri = make_grid(3)
    rast, _ = rasterize(pos, tri, (37, 53))
    # A second index buffer of the same triangle count (e.g. UV seams): each corner its own row.
    tri_uv = torch.arange(tri.numel(), dtype=torch.int32).view(-1, 3)
    uv = torch.rand(tri.numel(), 2)
    out, _ = interpolate(uv, rast, tri_uv)
    assert out.shape == (1, 37, 53, 2)
    covered = rast[0, ..., 3] > 0
    assert ((out[0][covered] >= 0) & (out[0][covered] <= 1)).all()


@pytest.mark.parametrize(
    ("attr", "rast", "tri", "exc", "match"),
    [
        (torch.zeros(2, 3), torch.zeros(1, 4, 4, 3), torch.zeros(1, 3, dtype=torch.int32), ShapeError, "rast must be"),
        (torch.zeros(2, 3, 4, 1), torch.zeros(1, 4, 4, 4), torch.zeros(1, 3, dtype=torch.int32), ShapeError, "attr must be"),
        (torch.zeros(3, 2, dtype=torch.int32), torch.zeros(1, 4, 4, 4), torch.zeros(1, 3, dtype=torch.int32), TypeError, "attr must be"),
        (torch.zeros(3, 2), torch.zeros(1, 4, 4, 4), torch.zeros(1, 3), TypeError, "tri must be"),
        (torch.zeros(3, 3, 2), torch.zeros(2, 4, 4, 4), torch.zeros(1, 3, dtype=torch.int32), ValueError, "batch must be 1 or 2"),
    ],
)
def test_errors(attr, rast, tri, exc, match):
    with pytest.raises(exc, match=match):
        interpolate(attr, rast, tri)


def test_errors_diff_attrs_and_ids(scene):
    _, tri, rast, rast_db, attr = scene
    with pytest.raises(ValueError, match="needs rast_db"):
        interpolate(attr, rast, tri, diff_attrs="all")
    with pytest.raises(ValueError, match="diff_attrs must index"):
        interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=[7])
    with pytest.raises(ValueError, match="'all' or a list"):
        interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs="some")
    with pytest.raises(ValueError, match="refers to triangle"):
        interpolate(attr, rast, tri[:2])


def test_diff_attrs_match_chain_rule(scene):
    _, tri, rast, rast_db, attr = scene
    out, out_db = interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=[1, 3])
    assert out_db.shape == (2, 23, 31, 4)
    b, r, c = (rast[..., 3] > 0).nonzero()[3].tolist()
    i0, i1, i2 = tri[int(rast[b, r, c, 3]) - 1].tolist()
    du_dx, du_dy, dv_dx, dv_dy = rast_db[b, r, c]
    for k, a in enumerate([1, 3]):
        d0 = attr[b, i0, a] - attr[b, i2, a]
        d1 = attr[b, i1, a] - attr[b, i2, a]
        torch.testing.assert_close(out_db[b, r, c, 2 * k], du_dx * d0 + dv_dx * d1)
        torch.testing.assert_close(out_db[b, r, c, 2 * k + 1], du_dy * d0 + dv_dy * d1)
    all_out, all_db = interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs="all")
    torch.testing.assert_close(all_out, out)
    torch.testing.assert_close(all_db[..., 2:4], out_db[..., 0:2])


def test_compiled_matches_torch_path_values_and_grads(scene):
    _, tri, rast, _, attr = scene
    a1 = attr.clone().requires_grad_(True)
    r1 = rast.clone().requires_grad_(True)
    a2 = attr.clone().requires_grad_(True)
    r2 = rast.clone().requires_grad_(True)
    out1, _ = interpolate(a1, r1, tri)
    out2, _ = _interpolate_torch(a2, r2, tri, None, [])
    torch.testing.assert_close(out1, out2)
    g = torch.randn_like(out1)
    out1.backward(g)
    out2.backward(g)
    torch.testing.assert_close(a1.grad, a2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r1.grad[..., :2], r2.grad[..., :2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attr_batch", [0, 1, 2])
def test_gradcheck(make_soup, attr_batch):
    pos, tri = make_soup(4, seed=12, batch=2, dtype=torch.float64)
    rast, _ = rasterize(pos, tri, (6, 7))
    shape = {0: (pos.shape[1], 2), 1: (1, pos.shape[1], 2), 2: (2, pos.shape[1], 2)}[attr_batch]
    attr = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    # Gradients flow to (u, v, z/w); the id channel is a discrete label (truncated to an integer
    # as nvdiffrast does), so finite differences must not perturb it.
    uvz = rast[..., :3].clone().requires_grad_(True)
    f = lambda a, c: interpolate(a, torch.cat([c, rast[..., 3:]], -1), tri)[0]  # noqa: E731
    assert torch.autograd.gradcheck(f, (attr, uvz), eps=1e-6, atol=1e-6)


def test_gradcheck_with_pixel_derivatives(make_soup):
    pos, tri = make_soup(3, seed=13, batch=1, dtype=torch.float64)
    rast, rast_db = rasterize(pos, tri, (5, 6))
    attr = torch.randn(1, pos.shape[1], 2, dtype=torch.float64, requires_grad=True)
    db = rast_db.clone().requires_grad_(True)
    f = lambda a, d: interpolate(a, rast, tri, rast_db=d, diff_attrs="all")  # noqa: E731
    assert torch.autograd.gradcheck(f, (attr, db), eps=1e-6, atol=1e-6)
