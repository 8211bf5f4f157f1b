"""Tests for affectsynth.render.rasterize."""

from __future__ import annotations

import pytest
import torch

from affectsynth.render import (
    RasterizeCpuContext,
    RasterizeReferenceContext,
    ShapeError,
    interpolate,
    rasterize,
)
from affectsynth.render._reference import rasterize_reference


def test_smoke_shapes_and_dtypes(grid):
    pos, tri = grid
    rast, rast_db = rasterize(pos, tri, (16, 24))
    assert rast.shape == (1, 16, 24, 4) and rast.dtype == torch.float32
    assert rast_db.shape == (1, 16, 24, 4) and rast_db.dtype == torch.float32
    ids = rast[..., 3]
    assert ids.min() == 0 and ids.max() <= tri.shape[0]
    # The grid covers [-0.8, 0.8]^2 of clip space: the centre is covered, the corner is not.
    assert ids[0, 8, 12] > 0 and ids[0, 0, 0] == 0
    _, no_db = rasterize(pos, tri, (16, 24), grad_db=False)
    assert no_db.shape == (1, 16, 24, 0)


def test_empty_pixels_are_all_zero(grid):
    pos, tri = grid
    rast, rast_db = rasterize(pos, tri, (9, 9))
    empty = rast[..., 3] == 0
    assert empty.any()
    assert (rast[empty] == 0).all() and (rast_db[empty] == 0).all()


@pytest.mark.parametrize(
    ("pos", "tri", "exc", "match"),
    [
        (torch.zeros(1, 3, 3), torch.zeros(1, 3, dtype=torch.int32), ShapeError, r"pos must be \[B, V, 4\]"),
        (torch.zeros(1, 3, 4, dtype=torch.float16), torch.zeros(1, 3, dtype=torch.int32), TypeError, "pos must be"),
        (torch.zeros(1, 3, 4), torch.zeros(1, 3), TypeError, "tri must be int32"),
        (torch.zeros(1, 3, 4), torch.zeros(1, 4, dtype=torch.int32), ShapeError, r"tri must be \[T, 3\]"),
        ([[0.0] * 4] * 3, torch.zeros(1, 3, dtype=torch.int32), TypeError, "pos must be a torch.Tensor"),
        (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 3]], dtype=torch.int32), ValueError, "tri indices"),
    ],
)
def test_errors_inputs(pos, tri, exc, match):
    with pytest.raises(exc, match=match):
        rasterize(pos, tri, (4, 4))


def test_error_messages_name_shapes():
    with pytest.raises(ShapeError) as info:
        rasterize(torch.zeros(2, 500, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.int32), (4, 4))
    assert str(info.value) == "rasterize: pos must be [B, V, 4] or [V, 4], got [2, 500, 3] float64"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("res", [(0, 4), (4,), (4.5, 4), "ab", None, (-1, 3)])
def test_errors_resolution(grid, res):
    pos, tri = grid
    with pytest.raises(ValueError, match="resolution"):
        rasterize(pos, tri, res)


def test_errors_ctx_and_ranges(grid):
    pos, tri = grid
    with pytest.raises(TypeError, match="raster context"):
        rasterize(pos, tri, (4, 4), ctx="cpu")
    with pytest.raises(ValueError, match="range mode"):
        rasterize(pos, tri, (4, 4), ranges=torch.tensor([[0, 2]], dtype=torch.int32))
    with pytest.raises(ValueError, match="needs ranges"):
        rasterize(pos[0], tri, (4, 4))
    with pytest.raises(ValueError, match="ranges must lie"):
        rasterize(pos[0], tri, (4, 4), ranges=torch.tensor([[0, 999]], dtype=torch.int32))


def test_batch_equals_single(make_soup):
    pos, tri = make_soup(10, seed=3, batch=3)
    rast, rast_db = rasterize(pos, tri, (20, 30))
    for b in range(3):
        r1, d1 = rasterize(pos[b : b + 1], tri, (20, 30))
        torch.testing.assert_close(rast[b : b + 1], r1, rtol=0, atol=0)
        torch.testing.assert_close(rast_db[b : b + 1], d1, rtol=0, atol=0)


def test_range_mode_equals_instanced(make_soup):
    pos, tri = make_soup(8, seed=4, batch=1)
    ranges = torch.tensor([[0, 8], [2, 3], [5, 0]], dtype=torch.int32)
    rast, _ = rasterize(pos[0], tri, (17, 19), ranges=ranges)
    assert rast.shape == (3, 17, 19, 4)
    full, _ = rasterize(pos, tri, (17, 19))
    torch.testing.assert_close(rast[0:1], full, rtol=0, atol=0)
    sub, _ = rasterize(pos, tri[2:5], (17, 19))
    sub_ids = torch.where(sub[..., 3] > 0, sub[..., 3] + 2, sub[..., 3])
    torch.testing.assert_close(rast[1:2, ..., 3], sub_ids, rtol=0, atol=0)
    assert (rast[2] == 0).all()


@pytest.mark.parametrize("res", [(37, 53), (16, 16), (1, 7)])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_bruteforce_reference(make_soup, res, seed):
    pos, tri = make_soup(15, seed=seed, batch=2)
    rast, _ = rasterize(pos, tri, res)
    ref = rasterize_reference(pos, tri, res)
    ids, ref_ids = rast[..., 3], ref[..., 3].float()
    assert (ids != ref_ids).sum() <= 2  # float32 vs float64 setup: at most a tie or two on edges
    both = (ids == ref_ids) & (ids > 0)
    assert both.sum() > 0.1 * ids.numel()
    torch.testing.assert_close(rast[both][:, :3], ref[both][:, :3].float(), rtol=1e-4, atol=2e-5)


def test_projected_vertex_lands_at_expected_pixel():
    height, width = 21, 34
    # A small triangle around pixel-space point (x, y) = (12.5, 7.5): the centre of row 7, col 12.
    px = torch.tensor([[12.2, 7.1], [13.3, 7.4], [12.4, 8.3]], dtype=torch.float64)
    w = torch.tensor([[2.0], [3.0], [1.5]], dtype=torch.float64)
    ndc = torch.stack([2 * px[:, 0] / width - 1, 2 * px[:, 1] / height - 1], -1)
    pos = torch.cat([ndc * w, torch.zeros_like(w), w], -1)[None].float()
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = rasterize(pos, tri, (height, width))
    covered = (rast[0, ..., 3] > 0).nonzero().tolist()
    assert covered == [[7, 12]]
    # Perspective-correct interpolation of the pixel position attribute (times w, divided by w)
    # returns the pixel centre exactly.
    attr = torch.cat([px * w, w], -1)[None].float()
    out, _ = interpolate(attr, rast, tri)
    centre = out[0, 7, 12, :2] / out[0, 7, 12, 2]
    torch.testing.assert_close(centre, torch.tensor([12.5, 7.5]), rtol=0, atol=1e-5)


def test_row_zero_is_clip_y_minus_one():
    pos = torch.tensor([[[-1.0, -1.0, 0, 1], [1.0, -1.0, 0, 1], [-1.0, -0.5, 0, 1]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, _ = rasterize(pos, tri, (8, 8))
    assert rast[0, 0, 0, 3] == 1 and rast[0, 7, 0, 3] == 0


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_depth_ordering(order):
    near = [[-0.8, -0.8, -0.5, 1], [0.8, -0.8, -0.5, 1], [0.0, 0.8, -0.5, 1]]
    far = [[-0.9, 0.9, 0.3, 1], [0.9, 0.9, 0.3, 1], [0.0, -0.9, 0.3, 1]]
    tris = [near, far]
    pos = torch.tensor([tris[order[0]] + tris[order[1]]])
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast, _ = rasterize(pos, tri, (32, 32))
    near_id = 1 + order.index(0)
    assert rast[0, 16, 16, 3] == near_id
    torch.testing.assert_close(rast[0, 16, 16, 2], torch.tensor(-0.5))
    assert (rast[..., 3] == 3 - near_id).any()  # the far triangle shows where the near one is absent


def test_near_far_and_behind_camera_are_not_drawn():
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    base = torch.tensor([[-0.8, -0.8], [0.8, -0.8], [0.0, 0.8]])
    for z, w, visible in [(0.5, 1.0, True), (1.5, 1.0, False), (-1.5, 1.0, False), (0.0, -1.0, False)]:
        pos = torch.cat([base * w, torch.full((3, 1), z * w), torch.full((3, 1), w)], -1)[None]
        rast, _ = rasterize(pos, tri, (8, 8))
        assert bool((rast[..., 3] > 0).any()) == visible, (z, w)


def test_shared_edges_are_watertight(make_grid):
    pos, tri = make_grid(7, extent=0.77)
    rast, _ = rasterize(pos, tri, (41, 43))
    # Every pixel centre inside the grid's square is covered by exactly the union of triangles.
    ys = (torch.arange(41) + 0.5) * 2 / 41 - 1
    xs = (torch.arange(43) + 0.5) * 2 / 43 - 1
    inside = (ys.abs() < 0.77)[:, None] & (xs.abs() < 0.77)[None, :]
    assert torch.equal(rast[0, ..., 3] > 0, inside)


def test_rast_db_matches_pixel_differences(make_grid):
    # Affine case (w = 1): barycentrics are linear in pixels, so differences are exact.
    pos, tri = make_grid(1, extent=0.9)
    rast, rast_db = rasterize(pos, tri, (32, 32))
    r, c = 10, 6  # inside triangle 0, away from its edges
    assert rast[0, r, c, 3] == rast[0, r, c + 1, 3] == rast[0, r + 1, c, 3] == 1
    du_dx = rast[0, r, c + 1, 0] - rast[0, r, c, 0]
    du_dy = rast[0, r + 1, c, 0] - rast[0, r, c, 0]
    dv_dx = rast[0, r, c + 1, 1] - rast[0, r, c, 1]
    dv_dy = rast[0, r + 1, c, 1] - rast[0, r, c, 1]
    torch.testing.assert_close(rast_db[0, r, c], torch.stack([du_dx, du_dy, dv_dx, dv_dy]), rtol=1e-4, atol=1e-5)


def test_rast_db_perspective_matches_central_difference():
    pos = torch.tensor([[[-0.9, -0.9, 0, 1.0], [1.6, -1.2, 0, 2.0], [-0.5, 2.1, 0, 3.0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    height, width, h = 64, 48, 1e-4
    rast, rast_db = rasterize(pos, tri, (height, width))
    r, c = 20, 20
    assert rast[0, r, c, 3] == 1

    def shifted(dx_px: float, dy_px: float) -> torch.Tensor:
        # Moving the geometry by -d pixels samples the original at the pixel centre + d.
        p = pos.clone()
        p[..., 0] -= 2 * dx_px / width * p[..., 3]
        p[..., 1] -= 2 * dy_px / height * p[..., 3]
        return rasterize(p, tri, (height, width))[0][0, r, c, :2]

    d_dx = (shifted(h, 0) - shifted(-h, 0)) / (2 * h)
    d_dy = (shifted(0, h) - shifted(0, -h)) / (2 * h)
    expected = torch.stack([d_dx[0], d_dy[0], d_dx[1], d_dy[1]])
    torch.testing.assert_close(rast_db[0, r, c], expected, rtol=1e-5, atol=1e-8)


def _soup64(make_soup, seed=5, n=4, batch=2):
    pos, tri = make_soup(n, seed=seed, batch=batch, dtype=torch.float64)
    return pos, tri


@pytest.mark.parametrize("ctx", [RasterizeCpuContext(), RasterizeReferenceContext()], ids=["cpu", "reference"])
def test_gradcheck_barycentrics_wrt_pos(make_soup, ctx):
    pos, tri = _soup64(make_soup)
    pos.requires_grad_(True)

    def f(p):
        rast, rast_db = rasterize(p, tri, (7, 9), ctx=ctx)
        return rast[..., :3], rast_db

    assert torch.autograd.gradcheck(f, (pos,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradcheck_without_db(make_soup):
    pos, tri = _soup64(make_soup, seed=6)
    pos.requires_grad_(True)
    f = lambda p: rasterize(p, tri, (8, 6), grad_db=False)[0][..., :3]  # noqa: E731
    assert torch.autograd.gradcheck(f, (pos,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_instanced_broadcast_gradient_range_mode(make_soup):
    pos, tri = _soup64(make_soup, seed=7, batch=1)
    p2 = pos[0].clone().requires_grad_(True)
    ranges = torch.tensor([[0, 4], [1, 2]], dtype=torch.int32)
    f = lambda p: rasterize(p, tri, (6, 6), ranges=ranges)[0][..., :3]  # noqa: E731
    assert torch.autograd.gradcheck(f, (p2,), eps=1e-6, atol=1e-5, rtol=1e-4)
