"""Tests for affectsynth.render.camera (conventions, projection matrix, rasterizer round trip)."""

from __future__ import annotations

import math

import pytest
import torch

from affectsynth.render.camera import (
    Intrinsics,
    clip_to_pixels,
    crop_intrinsics,
    pixels_to_ndc,
    project_points,
    projection_matrix,
    to_clip,
)

FX, FY, CX, CY, W, H = 410.0, 380.0, 150.3, 97.6, 301, 203
CAM = Intrinsics(FX, FY, CX, CY, W, H)


def _points(n: int = 50, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return torch.stack([(p[:, 0] - 0.5) * 40, (p[:, 1] - 0.5) * 30, 20 + 60 * p[:, 2]], dim=-1)


def test_projection_matrix_matches_project_points():
    pts = _points()
    P = projection_matrix(FX, FY, CX, CY, W, H, dtype=torch.float64)
    clip = to_clip(pts[None], P)
    assert clip.shape == (1, 50, 4)
    torch.testing.assert_close(clip[0, :, 3], pts[:, 2])
    pix = clip_to_pixels(clip, W, H)[0]
    torch.testing.assert_close(pix, project_points(pts, CAM))
    # pixel -> ndc convention: x_ndc = 2u/W - 1, y_ndc = 2v/H - 1 (no flip)
    torch.testing.assert_close(pixels_to_ndc(pix, W, H), clip[0, :, :2] / clip[0, :, 3:])


def test_depth_range_and_orientation():
    P = projection_matrix(FX, FY, CX, CY, W, H, near=2.0, far=50.0, dtype=torch.float64)
    pts = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 50.0], [0.0, 0.0, 10.0]], dtype=torch.float64)
    clip = to_clip(pts, P)[0]
    z = clip[:, 2] / clip[:, 3]
    torch.testing.assert_close(z[:2], torch.tensor([-1.0, 1.0], dtype=torch.float64))
    assert -1 < z[2] < 1
    # y down: a point below the axis lands at larger v, i.e. larger ndc y (raster row grows)
    below = project_points(torch.tensor([0.0, 1.0, 10.0]), CAM)
    assert below[1] > CY


def test_principal_point_is_image_centre_for_centred_camera():
    P = projection_matrix(100.0, 100.0, W / 2, H / 2, W, H, dtype=torch.float64)
    clip = to_clip(torch.tensor([[0.0, 0.0, 5.0]], dtype=torch.float64), P)
    torch.testing.assert_close(clip[0, 0, :2], torch.zeros(2, dtype=torch.float64))


def test_batched_proj_and_crop():
    pts = _points(10)
    P = projection_matrix(FX, FY, CX, CY, W, H, dtype=torch.float64)
    win = (37, 21, 120, 90)
    Pc = projection_matrix(*crop_intrinsics(FX, FY, CX, CY, win), dtype=torch.float64)
    clip = to_clip(pts[None].expand(2, -1, -1), torch.stack([P, Pc]))
    full = clip_to_pixels(clip[0], W, H)
    crop = clip_to_pixels(clip[1], win[2], win[3])
    torch.testing.assert_close(crop + torch.tensor([37.0, 21.0], dtype=torch.float64), full)
    k = Intrinsics(FX, FY, CX, CY, W, H)
    assert k.crop(*win) == Intrinsics(FX, FY, CX - 37, CY - 21, 120, 90)
    assert Intrinsics.from_dict(k.to_dict()) == k
    torch.testing.assert_close(k.projection_matrix(dtype=torch.float64), P)


def test_errors():
    with pytest.raises(ValueError, match="projection_matrix"):
        projection_matrix(FX, FY, CX, CY, 0, H)
    with pytest.raises(ValueError, match="near < far"):
        projection_matrix(FX, FY, CX, CY, W, H, near=5.0, far=1.0)
    with pytest.raises(ValueError, match="fx, fy > 0"):
        projection_matrix(-1.0, FY, CX, CY, W, H)
    with pytest.raises(ValueError, match="to_clip: points_cam"):
        to_clip(torch.zeros(1, 4, 2), torch.eye(4))
    with pytest.raises(ValueError, match="to_clip: proj"):
        to_clip(torch.zeros(1, 4, 3), torch.eye(3))
    with pytest.raises(ValueError, match="project_points"):
        project_points(torch.zeros(4, 2), CAM)
    with pytest.raises(TypeError, match="project_points: camera"):
        project_points(torch.zeros(4, 3), (FX, FY, CX, CY))
    with pytest.raises(ValueError, match="clip_to_pixels"):
        clip_to_pixels(torch.zeros(4, 3), W, H)
    with pytest.raises(ValueError, match="crop_intrinsics"):
        crop_intrinsics(FX, FY, CX, CY, (0, 0, 0, 5))
    with pytest.raises(ValueError, match="Intrinsics"):
        Intrinsics(FX, FY, CX, CY, 0, H)


def test_gradcheck_projection():
    pts = _points(4).requires_grad_(True)
    P = projection_matrix(FX, FY, CX, CY, W, H, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: clip_to_pixels(to_clip(p, P), W, H), (pts,))


def _fan(centre_pix: tuple[float, float], z: float, radius_px: float = 20.0, n: int = 7):
    """A fan of triangles around a centre vertex that projects to ``centre_pix`` (camera space)."""
    u, v = centre_pix
    pts = [((u - CX) * z / FX, (v - CY) * z / FY, z)]
    for k in range(n):
        a = 2 * math.pi * (k + 0.3) / n
        zk = z * (1.0 + 0.1 * math.sin(3 * a))
        uk, vk = u + radius_px * math.cos(a), v + radius_px * math.sin(a)
        pts.append(((uk - CX) * zk / FX, (vk - CY) * zk / FY, zk))
    tri = [(0, 1 + k, 1 + (k + 1) % n) for k in range(n)]
    return torch.tensor(pts, dtype=torch.float32), torch.tensor(tri, dtype=torch.int32)


@pytest.mark.parametrize("centre", [(100.5, 60.5), (37.2, 150.9), (250.77, 33.01)])
def test_round_trip_project_rasterize(centre):
    from affectsynth.render.rasterize import rasterize

    pts, tri = _fan(centre, z=30.0)
    P = projection_matrix(FX, FY, CX, CY, W, H)
    pix = project_points(pts[0], CAM)
    torch.testing.assert_close(pix, torch.tensor(centre), atol=1e-3, rtol=0)
    rast, _ = rasterize(to_clip(pts[None], P), tri, (H, W))
    col, row = int(pix[0]), int(pix[1])
    tid = int(rast[0, row, col, 3]) - 1
    assert 0 <= tid < tri.shape[0]
    # vertex 0 of every fan triangle is the centre: barycentric u ~ 1 (pixel is < 1 px away)
    assert float(rast[0, row, col, 0]) > 0.95
    # a window render at photo resolution finds it at the same photo pixel
    x0, y0 = col - 10, row - 7
    Pc = projection_matrix(*crop_intrinsics(FX, FY, CX, CY, (x0, y0, 24, 16)))
    rast_c, _ = rasterize(to_clip(pts[None], Pc), tri, (16, 24))
    hit = rast_c[0, row - y0, col - x0]
    assert int(hit[3]) > 0 and float(hit[0]) > 0.95
    if centre != (100.5, 60.5):  # off the shared vertex, no tie: the very same triangle
        torch.testing.assert_close(hit, rast[0, row, col], atol=1e-4, rtol=0)


def test_project_points_takes_a_camera_or_batched_intrinsics():
    """One projection for the renderer (an Intrinsics) and the fitter ([B, 1, 4] per-face cameras)."""
    pts = _points().float()
    one = project_points(pts, CAM)
    torch.testing.assert_close(CAM.project(pts), one)
    other = Intrinsics(2 * FX, FY, CX + 5, CY, W, H)
    batch = torch.tensor([[[FX, FY, CX, CY]], [[2 * FX, FY, CX + 5, CY]]])
    both = project_points(torch.stack([pts, pts]), batch)
    torch.testing.assert_close(both[0], one)
    torch.testing.assert_close(both[1], project_points(pts, other))
    with pytest.warns(DeprecationWarning):
        old = project_points(pts, FX, FY, CX, CY)
    torch.testing.assert_close(old, one)


def test_compiled_projection_is_bitwise_the_torch_expression():
    """[N, 3] float32 CPU points without grad take the compiled pass: the same bits as the torch
    expression (run on the same points with grad), also for z = 0 and points behind the camera."""
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(2000, 3, generator=g) * 5
    pts[:, 2] = pts[:, 2].abs() + 20
    pts[0, 2], pts[1, 2], pts[2] = 0.0, -3.0, torch.tensor([0.0, 1.0, 0.0])
    cam = Intrinsics(511.7, 498.3, 127.9, 130.1, 256, 256)
    fast = project_points(pts, cam)
    with torch.enable_grad():
        slow = project_points(pts.clone().requires_grad_(True), cam)
    assert slow.grad_fn is not None and fast.grad_fn is None
    assert fast.dtype == torch.float32 and fast.shape == (2000, 2)
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=0, equal_nan=True)
    strided = torch.randn(500, 6, generator=g)[:, ::2].abs() + 1  # a non-contiguous view
    torch.testing.assert_close(project_points(strided, cam), strided[..., :2] / strided[..., 2:3] * torch.tensor(
        [cam.fx, cam.fy]) + torch.tensor([cam.cx, cam.cy]), rtol=0, atol=0)
