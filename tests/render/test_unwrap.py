"""Tests for affectsynth.render.unwrap: texture from a photo, re-render round trip, filling."""

from __future__ import annotations

import math

import pytest
import torch

from affectsynth.render.camera import Intrinsics, projection_matrix, to_clip
from affectsynth.render.interpolate import interpolate
from affectsynth.render.rasterize import rasterize
from affectsynth.render.texture import texture
from affectsynth.render.inpaint import push_pull_fill
from affectsynth.render.unwrap import (
    UnwrapResult,
    UnwrapSettings,
    fill_texture,
    mirror_texel_map,
    unwrap_texture,
    uv_tile_triangles,
)
from affectsynth.render.mesh import vertex_normals

H, W = 120, 160
FX = FY = 200.0
CX, CY = W / 2, H / 2
CAM = Intrinsics(FX, FY, CX, CY, W, H)


def uv_sphere(n_lat: int = 16, n_lon: int = 32):
    """Unit sphere, lat-long UVs with a seam: vertices [V, 3], tri [T, 3] int32 (outward),
    uv [U, 2], tri_uv [T, 3] int32."""
    verts = [
        (math.sin(math.pi * i / n_lat) * math.cos(2 * math.pi * j / n_lon), -math.cos(math.pi * i / n_lat),
         math.sin(math.pi * i / n_lat) * math.sin(2 * math.pi * j / n_lon))
        for i in range(n_lat + 1) for j in range(n_lon)
    ]
    uvs = [(j / n_lon, i / n_lat) for i in range(n_lat + 1) for j in range(n_lon + 1)]
    tri, tri_uv = [], []
    for i in range(n_lat):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            ua, ub = i * (n_lon + 1) + j, i * (n_lon + 1) + j + 1
            uc, ud = ua + n_lon + 1, ub + n_lon + 1
            tri += [(a, c, b), (b, c, d)]
            tri_uv += [(ua, uc, ub), (ub, uc, ud)]
    v = torch.tensor(verts, dtype=torch.float32)
    return v, torch.tensor(tri, dtype=torch.int32), torch.tensor(uvs), torch.tensor(tri_uv, dtype=torch.int32)


def pattern_texture(res: int, channels: int = 3) -> torch.Tensor:
    """Smooth colourful texture [res, res, C] in [0.1, 0.9]."""
    y = (torch.arange(res, dtype=torch.float32) + 0.5)[:, None, None] / res
    x = (torch.arange(res, dtype=torch.float32) + 0.5)[None, :, None] / res
    ch = torch.arange(channels, dtype=torch.float32)[None, None, :]
    return 0.5 + 0.4 * torch.sin(2 * math.pi * (2 * x + ch / 3)) * torch.cos(2 * math.pi * (1.5 * y - ch / 5))


def render_textured(verts_cam, tri, uv, tri_uv, tex):
    """Photo of a textured mesh: image [H, W, C], mask [H, W], interpolated uv [1, H, W, 2]."""
    P = CAM.projection_matrix()
    n = tri.shape[0]
    tri_c = torch.arange(3 * n, dtype=torch.int32).view(n, 3)
    clip = to_clip(verts_cam[tri.long().reshape(-1)][None], P)
    rast, _ = rasterize(clip, tri_c, (H, W))
    uvi, _ = interpolate(uv[tri_uv.long()].reshape(1, -1, 2), rast, tri_c)
    mask = rast[0, ..., 3] > 0
    img = texture(tex[None], uvi, boundary_mode="clamp")[0] * mask[..., None]
    return img, mask, uvi


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10.0 * math.log10(float(((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def sphere_scene():
    v, tri, uv, tri_uv = uv_sphere()
    verts_cam = v * 2.0 + torch.tensor([0.2, -0.1, 9.0])
    tex = pattern_texture(128)
    img, mask, uvi = render_textured(verts_cam, tri, uv, tri_uv, tex)
    return verts_cam, tri, uv, tri_uv, img, mask, uvi


def test_unwrap_rerender_reproduces_photo(sphere_scene):
    verts_cam, tri, uv, tri_uv, img, mask, uvi = sphere_scene
    res = unwrap_texture(img, verts_cam, tri, uv, tri_uv, CAM, resolution=128)
    assert isinstance(res, UnwrapResult)
    assert res.texture.shape == (128, 128, 3) and res.weight.shape == (128, 128)
    assert res.visible.dtype == torch.bool
    # the texture, sampled with the mesh's own uv by `texture`, gives the photo back where the
    # surface faces the camera (convention check: v grows down the rows)
    weight_px = texture(res.weight[None, ..., None], uvi, boundary_mode="clamp")[0, ..., 0]
    good = mask & (weight_px > 0.99)
    assert int(good.sum()) > 0.4 * int(mask.sum())
    again = texture(res.texture[None], uvi, boundary_mode="clamp")[0]
    assert psnr(again[good], img[good]) > 30.0
    # after filling, the whole silhouette re-renders well
    filled = fill_texture(res.texture, res.weight)
    again = texture(filled[None], uvi, boundary_mode="clamp")[0]
    assert psnr(again[mask], img[mask]) > 30.0


def test_photo_mask_excludes_pixels(sphere_scene):
    verts_cam, tri, uv, tri_uv, img, _, _ = sphere_scene
    full = unwrap_texture(img, verts_cam, tri, uv, tri_uv, CAM, resolution=64)
    keep = torch.ones(H, W, dtype=torch.bool)
    keep[:, : W // 2] = False  # left half of the photo is not the surface
    part = unwrap_texture(img, verts_cam, tri, uv, tri_uv, CAM, resolution=64, photo_mask=keep)
    assert not bool((part.visible & ~full.visible).any())
    lost = int((full.visible & ~part.visible).sum())
    assert 0.3 * int(full.visible.sum()) < lost < 0.7 * int(full.visible.sum())
    assert bool((part.weight[~part.visible] == 0).all())
    with pytest.raises(ValueError, match="photo_mask"):
        unwrap_texture(img, verts_cam, tri, uv, tri_uv, CAM, photo_mask=keep[:-1])


def test_back_of_sphere_is_invisible(sphere_scene):
    verts_cam, tri, uv, tri_uv, img, _, _ = sphere_scene
    res = unwrap_texture(img, verts_cam, tri, uv, tri_uv, CAM, resolution=64)
    # lat-long map: u = longitude / 2 pi; the camera sees z < centre, i.e. sin(lon) < 0, u in (0.5, 1)
    cols = (torch.arange(64) + 0.5) / 64
    front = (cols > 0.6) & (cols < 0.9)
    back = (cols > 0.1) & (cols < 0.4)
    rows = slice(16, 48)
    assert float(res.weight[rows][:, front].mean()) > 0.8
    assert float(res.weight[rows][:, back].max()) == 0.0
    assert not bool(res.visible[rows][:, back].any())


def test_occlusion_by_other_geometry():
    # a small sphere in front of a large one hides part of it
    v, tri, uv, tri_uv = uv_sphere(12, 24)
    big = v * 2.0 + torch.tensor([0.0, 0.0, 10.0])
    small = v * 0.8 + torch.tensor([0.0, 0.0, 6.0])
    verts = torch.cat([big, small])
    tris = torch.cat([tri, tri + v.shape[0]])
    uvs = torch.cat([uv, uv + torch.tensor([1.0, 0.0])])  # small sphere in tile (1, 0)
    tri_uvs = torch.cat([tri_uv, tri_uv + uv.shape[0]])
    img = torch.ones(H, W, 3) * 0.5
    alone = unwrap_texture(img, big, tri, uv, tri_uv, CAM, resolution=64)
    both = unwrap_texture(img, verts, tris, uvs, tri_uvs, CAM, resolution=64)
    lost = alone.visible & ~both.visible
    assert int(lost.sum()) > 50  # front centre of the big sphere is hidden
    assert not bool((both.visible & ~alone.visible).any())
    # the small sphere (tile 1) is unwrapped on its own with uv_tile
    small_res = unwrap_texture(img, verts, tris, uvs, tri_uvs, CAM, resolution=64, uv_tile=(1, 0))
    assert int(small_res.visible.sum()) > 200


def test_mirror_map_and_fill():
    # a symmetric grid (x -> -x); the photo shows only its left half
    n = 16
    t = torch.linspace(-1.0, 1.0, n + 1)
    gy, gx = torch.meshgrid(t, t, indexing="ij")
    verts = torch.stack([gx, gy, torch.zeros_like(gx)], -1).reshape(-1, 3)
    idx = torch.arange((n + 1) ** 2).view(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tri = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)]).int()
    uv = (verts[:, :2] + 1) / 2
    symmetry = idx.flip(1).reshape(-1)
    R = 64
    mirror = mirror_texel_map(uv, tri, tri, symmetry, R)
    assert mirror.shape == (R, R, 2)
    centres = (torch.arange(R) + 0.5) / R
    # texel (i, j) mirrors to u' = 1 - u, same v
    torch.testing.assert_close(mirror[..., 0], (1 - centres)[None].expand(R, R), atol=1e-4, rtol=0)
    torch.testing.assert_close(mirror[..., 1], centres[:, None].expand(R, R), atol=1e-4, rtol=0)
    # texture: left-right symmetric pattern, right half unknown
    tex = pattern_texture(R)
    sym_tex = 0.5 * (tex + tex.flip(1))
    weight = torch.zeros(R, R)
    weight[:, : R // 2] = 1.0
    half = sym_tex * weight[..., None]
    filled = fill_texture(half, weight, mirror_uv=mirror, grow_px=0)
    assert torch.equal(filled[:, : R // 2], sym_tex[:, : R // 2])
    torch.testing.assert_close(filled, sym_tex, atol=2e-2, rtol=0)
    # with the default growth band, the 2 texels next to the seen half come from their neighbourhood
    # (no mirrored colour next to seen texels), the rest still from the mirror
    grown = fill_texture(half, weight, mirror_uv=mirror)
    assert torch.equal(grown[:, : R // 2], sym_tex[:, : R // 2])
    torch.testing.assert_close(grown[:, R // 2 + 2:], sym_tex[:, R // 2 + 2:], atol=2e-2, rtol=0)
    local = push_pull_fill(half, weight)
    torch.testing.assert_close(grown[:, R // 2: R // 2 + 2], local[:, R // 2: R // 2 + 2])
    # push-pull alone is much worse on the unseen half
    pp = fill_texture(half, weight)
    assert float((pp - sym_tex).abs().mean()) > 3 * float((filled - sym_tex).abs().mean())


def test_vertex_normals_and_tile_selection():
    v, tri, uv, tri_uv = uv_sphere(8, 16)
    n = vertex_normals(v, tri)
    used = torch.zeros(v.shape[0], dtype=torch.bool)
    used[tri.long().reshape(-1)] = True
    assert float((n[used] * v[used]).sum(-1).min()) > 0.9  # outward
    sel = uv_tile_triangles(torch.cat([uv, uv + 2.0]), torch.cat([tri_uv, tri_uv + uv.shape[0]]), tile=(2, 2))
    assert int(sel.sum()) == tri.shape[0] and bool(sel[tri.shape[0]:].all())


def test_errors(sphere_scene):
    verts_cam, tri, uv, tri_uv, img, _, _ = sphere_scene
    with pytest.raises(ValueError, match="unwrap_texture: image"):
        unwrap_texture(img[..., 0], verts_cam, tri, uv, tri_uv, CAM)
    with pytest.raises(ValueError, match="unwrap_texture: vertices_cam"):
        unwrap_texture(img, verts_cam[:, :2], tri, uv, tri_uv, CAM)
    with pytest.raises(ValueError, match="tri_uv"):
        unwrap_texture(img, verts_cam, tri, uv, tri_uv[:-1], CAM)
    with pytest.raises(ValueError, match="triangle_mask"):
        unwrap_texture(img, verts_cam, tri, uv, tri_uv, CAM, triangle_mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="UnwrapSettings"):
        UnwrapSettings(resolution=0)
    with pytest.raises(ValueError, match="fill_texture"):
        fill_texture(torch.zeros(8, 8, 3), torch.zeros(8, 7))
    with pytest.raises(ValueError, match="mirror_texel_map"):
        mirror_texel_map(uv, tri_uv, tri, torch.zeros(3, dtype=torch.int64), 16)


def test_result_to_and_detach(sphere_scene):
    verts_cam, tri, uv, tri_uv, img, _, _ = sphere_scene
    res = unwrap_texture(img, verts_cam, tri, uv, tri_uv, CAM, resolution=16)
    moved = res.to(torch.float64).detach()
    assert moved.texture.dtype == torch.float64 and moved.visible.dtype == torch.bool
    assert torch.equal(moved.visible, res.visible)
    torch.testing.assert_close(moved.weight.float(), res.weight)


def test_compiled_mirror_step_matches_torch_and_keeps_seen_texels():
    """The compiled mirror step of `fill_texture` (which copies weight-1 texels without sampling their
    mirror) gives the torch path's values, and weight-1 texels bit for bit."""
    from affectsynth.render._kernels.unwrap import fill_from_mirror
    from affectsynth.render.warp import sample_bilinear

    g = torch.Generator().manual_seed(0)
    R = 40
    color = torch.rand(R, R, 3, generator=g)
    weight = torch.rand(R, R, generator=g)
    weight[torch.rand(R, R, generator=g) < 0.4] = 1.0
    weight[torch.rand(R, R, generator=g) < 0.3] = 0.0
    mirror = torch.rand(R, R, 2, generator=g) * 1.1 - 0.05  # some taps outside the texture
    mirror[torch.rand(R, R, generator=g) < 0.2] = -1.0  # no mirror
    out_c, out_w = torch.empty_like(color), torch.empty_like(weight)
    fill_from_mirror(color.numpy(), weight.numpy(), mirror.numpy(), out_c.numpy(), out_w.numpy())
    # the torch path's mirror step (`_fill_texture_torch`)
    valid = (mirror >= 0).all(-1)
    sm = sample_bilinear(torch.cat([color * weight[..., None], weight[..., None]], -1), mirror * R, padding_mode="zeros")
    wm = torch.where(valid, sm[..., -1].clamp(0.0, 1.0), torch.zeros_like(weight))
    a = ((1.0 - weight) * (wm > 1e-6))[..., None]
    torch.testing.assert_close(out_c, (1.0 - a) * color + a * sm[..., :-1] / sm[..., -1:].clamp_min(1e-6), atol=1e-5, rtol=0)
    torch.testing.assert_close(out_w, weight + (1.0 - weight) * wm, atol=1e-5, rtol=0)
    seen = weight == 1.0
    assert torch.equal(out_c[seen], color[seen]) and bool((out_w[seen] == 1.0).all())
