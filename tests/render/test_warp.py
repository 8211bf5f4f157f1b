"""Tests for affectsynth.render.warp: backward warps and mesh-driven motion fields."""

from __future__ import annotations


import pytest
import torch

from affectsynth.render.warp import (
    effective_margin,
    motion_field,
    motion_window,
    pixel_centres,
    sample_bilinear,
    sample_image,
    warp_image,
)


def stripes(h: int, w: int) -> torch.Tensor:
    y = torch.arange(h, dtype=torch.float32)[:, None, None]
    x = torch.arange(w, dtype=torch.float32)[None, :, None]
    return 0.5 + 0.4 * torch.sin(x / 3.0 + torch.arange(3)[None, None]) * torch.cos(y / 4.0)


def test_zero_flow_is_identity():
    img = torch.rand(23, 31, 3)
    out = warp_image(img, torch.zeros(23, 31, 2))
    assert torch.equal(out, img)
    assert torch.equal(pixel_centres(2, 3)[1, 2], torch.tensor([2.5, 1.5]))


def test_integer_flow_shifts_and_batch():
    img = torch.rand(2, 20, 30, 4)
    flow = torch.zeros(20, 30, 2)
    flow[..., 0] = 3.0
    flow[..., 1] = -2.0
    out = warp_image(img, flow)
    torch.testing.assert_close(out[:, 2:, :-3], img[:, :-2, 3:], atol=1e-5, rtol=0)
    coords = pixel_centres(5, 7)[None].expand(2, -1, -1, -1) + 0.25
    s = sample_bilinear(img, coords)
    assert s.shape == (2, 5, 7, 4)


def test_motion_field_translation_moves_pattern(make_pixel_disc):
    H, W = 96, 128
    src, tri = make_pixel_disc((60.0, 45.0), 20.0)
    shift = torch.tensor([6.0, 4.0])
    dst = src + shift
    flow = motion_field(src, dst, tri, (H, W), margin_px=10.0)
    assert flow.shape == (H, W, 2)
    # inside the moved disc the flow is exactly -shift
    inner = (pixel_centres(H, W) - torch.tensor([66.0, 49.0])).norm(dim=-1) < 17
    torch.testing.assert_close(flow[inner], (-shift).expand(int(inner.sum()), 2), atol=1e-4, rtol=0)
    img = stripes(H, W)
    out = warp_image(img, flow)
    torch.testing.assert_close(out[inner], img[:-4, :-6][inner[4:, 6:]], atol=1e-4, rtol=0)
    # exactly zero beyond the margin, and motion_window holds every non-zero flow
    m = effective_margin(src, dst, 10.0)
    assert m == pytest.approx(3.0 * float(shift.norm()))
    far = (pixel_centres(H, W) - torch.tensor([66.0, 49.0])).norm(dim=-1) > 20 + m + 1.5
    assert bool((flow[far] == 0).all())
    x0, y0, w, h = motion_window(src, dst, (H, W), margin_px=10.0)
    nz = (flow != 0).any(-1)
    assert not bool(nz[:y0].any() or nz[y0 + h:].any() or nz[:, :x0].any() or nz[:, x0 + w:].any())
    windowed = motion_field(src, dst, tri, (H, W), margin_px=10.0, window=(x0, y0, w, h))
    torch.testing.assert_close(windowed, flow[y0:y0 + h, x0:x0 + w], atol=1e-4, rtol=0)


def test_chin_drop_no_fold_no_double_contour(make_pixel_disc):
    # the lower half of a "face" moves down; a horizontal edge just below the chin must move
    # with it, appear once, and the backward map must stay one-to-one (no tearing, no folds)
    H, W = 120, 100
    src, tri = make_pixel_disc((50.0, 50.0), 25.0, n_ring=32)
    drop = ((src[:, 1] - 50.0).clamp(min=0) / 25.0) * 12.0  # chin (bottom) moves 12 px down
    dst = src + torch.stack([torch.zeros_like(drop), drop], -1)
    flow = motion_field(src, dst, tri, (H, W), margin_px=8.0)
    img = torch.zeros(H, W, 1)
    img[80:, :] = 1.0  # "collar" edge at y = 80, 5 px below the old chin (y = 75)
    out = warp_image(img, flow)
    col = out[:, 50, 0]
    # the edge moved down (pulled along by the chin) and there is a single rising transition
    first = int(torch.nonzero(col > 0.5)[0])
    assert first > 85
    assert int(((col[1:] > 0.5) != (col[:-1] > 0.5)).sum()) == 1
    # backward map p + flow is monotone along columns and rows: det of its Jacobian > 0
    mapped = pixel_centres(H, W) + flow
    dy = mapped[1:, :-1] - mapped[:-1, :-1]
    dx = mapped[:-1, 1:] - mapped[:-1, :-1]
    det = dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]
    assert float(det.min()) > 0.0


def test_depth_picks_front_surface(make_pixel_disc):
    H, W = 40, 40
    a, ta = make_pixel_disc((20.0, 20.0), 10.0)
    b, tb = make_pixel_disc((20.0, 20.0), 10.0)
    src = torch.cat([a, b + torch.tensor([5.0, 0.0])])  # b came from 5 px to the right
    dst = torch.cat([a, b])
    tri = torch.cat([ta, tb + a.shape[0]])
    depth = torch.cat([torch.full((a.shape[0],), 2.0), torch.full((b.shape[0],), 1.0)])  # b in front
    flow = motion_field(src, dst, tri, (H, W), dst_depth=depth)
    torch.testing.assert_close(flow[20, 20], torch.tensor([5.0, 0.0]), atol=1e-4, rtol=0)
    flow = motion_field(src, dst, tri, (H, W), dst_depth=-depth)
    torch.testing.assert_close(flow[20, 20], torch.tensor([0.0, 0.0]), atol=1e-4, rtol=0)


def test_errors(make_pixel_disc):
    src, tri = make_pixel_disc((20.0, 20.0), 10.0)
    with pytest.raises(ValueError, match="motion_field: src_pix"):
        motion_field(src, src[:-1], tri, (40, 40))
    with pytest.raises(ValueError, match="motion_field: tri"):
        motion_field(src, src, tri[:, :2], (40, 40))
    with pytest.raises(ValueError, match="dst_depth"):
        motion_field(src, src, tri, (40, 40), dst_depth=torch.zeros(3))
    with pytest.raises(ValueError, match="warp_image: flow"):
        warp_image(torch.rand(8, 8, 3), torch.zeros(8, 9, 2))
    with pytest.raises(TypeError, match="warp_image: image"):
        warp_image(torch.zeros(8, 8, 3, dtype=torch.uint8), torch.zeros(8, 8, 2))


def test_gradcheck_warp():
    img = torch.rand(6, 7, 2, dtype=torch.float64)
    flow = (torch.rand(6, 7, 2, dtype=torch.float64) - 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: warp_image(img, f), (flow,))


def test_coarse_motion_field_matches_full_resolution(make_pixel_disc):
    H, W = 96, 128
    src, tri = make_pixel_disc((60.0, 45.0), 20.0)
    dst = src + torch.tensor([6.0, 4.0])
    full = motion_field(src, dst, tri, (H, W), margin_px=10.0)
    coarse = motion_field(src, dst, tri, (H, W), margin_px=10.0, scale=0.5)
    assert coarse.shape == full.shape
    # same flow inside the moved disc, close everywhere, and still exactly zero far away
    inner = (pixel_centres(H, W) - torch.tensor([66.0, 49.0])).norm(dim=-1) < 16
    torch.testing.assert_close(coarse[inner], full[inner], atol=1e-3, rtol=0)
    assert float((coarse - full).abs().max()) < 2.0
    far = (pixel_centres(H, W) - torch.tensor([66.0, 49.0])).norm(dim=-1) > 20 + effective_margin(src, dst, 10.0) + 4
    assert bool((coarse[far] == 0).all())
    with pytest.raises(ValueError, match="scale"):
        motion_field(src, dst, tri, (H, W), scale=0.0)


def test_bicubic_keeps_detail_that_bilinear_averages_away():
    """Half-pixel shifts of a fine pattern: bicubic stays closer to the true shifted pattern."""
    def pattern(x: torch.Tensor) -> torch.Tensor:
        return 0.5 + 0.4 * torch.sin(x * 1.3)

    w = 64
    x = torch.arange(w, dtype=torch.float32) + 0.5
    img = pattern(x)[None, :, None].expand(8, w, 1).contiguous()
    coords = pixel_centres(8, w) + torch.tensor([0.5, 0.0])
    truth = pattern(x + 0.5)[None, :, None].expand(8, w, 1)
    inner = (slice(None), slice(4, w - 4))
    err = {m: float((sample_image(img, coords, mode=m) - truth)[inner].abs().mean()) for m in ("bilinear", "bicubic")}
    assert err["bicubic"] < 0.3 * err["bilinear"], err
    assert torch.equal(sample_image(img, coords), sample_bilinear(img, coords))
    # overshoot at a step edge stays within the image's range
    step = torch.zeros(4, 16, 1)
    step[:, 8:] = 1.0
    out = sample_image(step, pixel_centres(4, 16) + torch.tensor([0.3, 0.0]), mode="bicubic")
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    with pytest.raises(ValueError, match="mode"):
        sample_image(step, pixel_centres(4, 16), mode="lanczos")
