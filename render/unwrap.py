"""Texture extraction from a photo (unwrap into UV space) and filling of the unseen texels.

Texture convention (nvdiffrast's `texture`): a texture image ``tex [R, R, C]`` has texel row i,
column j centred at ``uv = ((j + 0.5) / R, (i + 0.5) / R)``: u grows along columns, v along
rows, i.e. **v grows downwards in the stored image** and uv (0, 0) is the first texel row. So
``texture(tex[None], uv_interpolated)`` with the mesh's own uv reproduces the photo. (A texture
image file in the OBJ convention, v up, is this array flipped vertically.)

Method: rasterize the mesh in UV space (clip position ``(2u - 1, 2v - 1, 0, 1)`` per triangle
corner, so UV seams are fine) with camera-space position and normal as attributes; every texel
gets a 3D point, which is projected into the photo; it is visible where its depth matches the
photo's depth buffer (the mesh rasterized with the camera); its weight is a ramp of the cosine
between its normal and the view ray; the photo is sampled bilinearly there. `fill_texture` then
fills unseen texels from their mirror texel (`mirror_texel_map`) and push-pull inpainting.

The UV raster (which triangle covers each texel, and where in it) depends on the topology, the
UVs and R only, the same for every photo: `uv_texels` builds it once, and `unwrap_texture`
given it (``texels=``) does only the per-photo work, by a compiled loop over the covered texels
(`affectsynth.render._kernels.unwrap`), on CPU float32 without grad (results equal to float
rounding); otherwise (autograd, CUDA) it rasterizes in torch as above.

Note:
    Triangles must be wound counter-clockwise seen from outside (right-handed, outward normals),
    and the mesh must be in front of the camera (z > 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from affectsynth.render.camera import Intrinsics, project_points, to_clip
from affectsynth.render.context import RasterizeCpuContext
from affectsynth.render.inpaint import push_pull_fill
from affectsynth.render.interpolate import interpolate
from affectsynth.render.mesh import vertex_normals
from affectsynth.render.rasterize import rasterize
from affectsynth.render.warp import sample_bilinear

__all__ = [
    "UnwrapSettings",
    "UnwrapResult",
    "UVTexels",
    "unwrap_texture",
    "uv_texels",
    "fill_texture",
    "mirror_texel_map",
    "uv_tile_triangles",
]


@dataclass(frozen=True)
class UnwrapSettings:
    """Defaults of `unwrap_texture` and `fill_texture`.

    Attributes:
        resolution: texture size R (R x R texels).
        min_cos: texels whose normal makes a cosine below this with the view ray get weight 0.
        cos_ramp: weight ramps smoothly from 0 at ``min_cos`` to 1 at ``min_cos + cos_ramp``.
        depth_tol: relative depth tolerance of the visibility test (fraction of the depth).
        max_depth_res: longest side of the depth buffer; larger boxes render it downscaled.
    """

    resolution: int = 1024
    min_cos: float = 0.2
    cos_ramp: float = 0.3
    depth_tol: float = 0.01
    max_depth_res: int = 1024

    def __post_init__(self) -> None:
        if int(self.resolution) < 1:
            raise ValueError(f"UnwrapSettings: resolution must be >= 1, got {self.resolution}")
        if not -1.0 <= self.min_cos < 1.0 or self.cos_ramp <= 0:
            raise ValueError(
                f"UnwrapSettings: expected -1 <= min_cos < 1 and cos_ramp > 0, got "
                f"{self.min_cos}, {self.cos_ramp}"
            )
        if self.depth_tol <= 0 or int(self.max_depth_res) < 8:
            raise ValueError(
                f"UnwrapSettings: expected depth_tol > 0 and max_depth_res >= 8, got "
                f"{self.depth_tol}, {self.max_depth_res}"
            )


@dataclass(frozen=True)
class UnwrapResult:
    """Texture unwrapped from one photo.

    Attributes:
        texture: [R, R, C] float32 texture (v grows down the rows, see module doc); 0 where unseen.
        weight: [R, R] float32 confidence in [0, 1] (visibility times the cosine ramp).
        visible: [R, R] bool texels seen in the photo (weight may still be 0 at grazing angles).
    """

    texture: Tensor
    weight: Tensor
    visible: Tensor

    def to(self, *args: Any, **kwargs: Any) -> UnwrapResult:
        """New result with the tensors moved (``Tensor.to`` arguments; the mask stays bool)."""
        tex = self.texture.to(*args, **kwargs)
        return UnwrapResult(tex, self.weight.to(*args, **kwargs), self.visible.to(tex.device))

    def detach(self) -> UnwrapResult:
        """Copy without autograd history."""
        return replace(self, texture=self.texture.detach(), weight=self.weight.detach())


def uv_tile_triangles(uv: Tensor, tri_uv: Tensor, *, tile: tuple[int, int] = (0, 0), eps: float = 1e-4) -> Tensor:
    """[T] bool: triangles whose three UV corners lie in the unit tile ``tile`` (u0, v0).

    Args:
        uv: [U, 2] texture coordinates.
        tri_uv: [T, 3] int indices into ``uv``.
        tile: (u0, v0) integers; the tile is [u0, u0 + 1] x [v0, v0 + 1].
        eps: tolerance.
    """
    c = uv[tri_uv.long()] - torch.tensor([float(tile[0]), float(tile[1])], dtype=uv.dtype, device=uv.device)
    return ((c >= -eps) & (c <= 1 + eps)).all(dim=-1).all(dim=-1)


def _selected(uv: Tensor, tri_uv: Tensor, triangle_mask: Tensor | None, tile: tuple[int, int], where: str) -> Tensor:
    if triangle_mask is None:
        return uv_tile_triangles(uv, tri_uv, tile=tile)
    if triangle_mask.shape != tri_uv.shape[:1] or triangle_mask.dtype != torch.bool:
        raise ValueError(
            f"{where}: triangle_mask must be [{tri_uv.shape[0]}] bool, got "
            f"{list(triangle_mask.shape)} {triangle_mask.dtype}"
        )
    return triangle_mask


def _uv_raster(corner_uv: Tensor, resolution: int, ctx: Any) -> tuple[Tensor, Tensor]:
    """Rasterize per-corner UVs [T, 3, 2] (tile-local) at R x R; returns rast [1, R, R, 4], tri."""
    n = corner_uv.shape[0]
    cu = corner_uv.reshape(-1, 2).float()
    pos = torch.cat([cu * 2.0 - 1.0, torch.zeros_like(cu[:, :1]), torch.ones_like(cu[:, :1])], dim=-1)
    tri_c = torch.arange(3 * n, dtype=torch.int32, device=cu.device).view(n, 3)
    rast, _ = rasterize(pos[None], tri_c, (resolution, resolution), ctx=ctx, grad_db=False)
    return rast, tri_c


@dataclass(frozen=True)
class UVTexels:
    """The covered texels of a mesh's UV raster (see `uv_texels`), and what covers them.

    Attributes:
        resolution: texture side R.
        uv_tile: the texture's UV tile (u0, v0).
        texel: [N] int64 row-major index of each covered texel in the R x R texture.
        corners: [N, 3] int32 vertex ids of the triangle covering it.
        bary: [N, 2] float32 the rasterizer's barycentrics (u, v) of corners 0 and 1 there.
    """

    resolution: int
    uv_tile: tuple[int, int]
    texel: np.ndarray
    corners: np.ndarray
    bary: np.ndarray


def uv_texels(uv: Tensor, tri: Tensor, tri_uv: Tensor, *, resolution: int, triangle_mask: Tensor | None = None,
              uv_tile: tuple[int, int] = (0, 0)) -> UVTexels:
    """The UV raster `unwrap_texture` would rasterize for these arguments (same meaning), as its
    covered texels: build it once per mesh topology and R, pass it back as ``texels``."""
    sel = _selected(uv, tri_uv, triangle_mask, uv_tile, "uv_texels")
    offset = torch.tensor([float(uv_tile[0]), float(uv_tile[1])], dtype=uv.dtype, device=uv.device)
    corner_uv = (uv[tri_uv[sel].long()] - offset).cpu()
    rast, _ = _uv_raster(corner_uv, int(resolution), None)
    rast = rast[0].reshape(-1, 4)
    ids = rast[:, 3].long() - 1
    texel = torch.nonzero(ids >= 0)[:, 0]
    corners = tri[sel].cpu().to(torch.int32)[ids[texel]]
    return UVTexels(int(resolution), tuple(uv_tile), texel.numpy(), corners.contiguous().numpy(),
                    rast[texel, :2].contiguous().numpy())


def _check_common(image: Tensor, vertices_cam: Tensor, tri: Tensor, uv: Tensor, tri_uv: Tensor) -> None:
    where = "unwrap_texture"
    if image.ndim != 3 or not image.is_floating_point():
        raise ValueError(f"{where}: image must be [H, W, C] float in [0, 1], got {list(image.shape)} {image.dtype}")
    if vertices_cam.ndim != 2 or vertices_cam.shape[-1] != 3:
        raise ValueError(f"{where}: vertices_cam must be [V, 3], got {list(vertices_cam.shape)}")
    if tri.ndim != 2 or tri.shape[-1] != 3 or tri_uv.shape != tri.shape:
        raise ValueError(
            f"{where}: tri and tri_uv must both be [T, 3], got {list(tri.shape)} and {list(tri_uv.shape)}"
        )
    if uv.ndim != 2 or uv.shape[-1] != 2:
        raise ValueError(f"{where}: uv must be [U, 2], got {list(uv.shape)}")


def _depth_buffer(
    vertices_cam: Tensor, tri: Tensor, camera: Intrinsics, size: tuple[int, int], max_res: int, ctx: Any,
) -> tuple[Tensor, Tensor, tuple[float, float, float]]:
    """Camera-z buffer of the mesh over the photo window it covers, possibly downscaled.

    Returns zbuf [h, w] (inf where empty), the window's coverage [h, w] bool, and (x0, y0, sx, sy):
    photo pixel (x, y) maps to buffer pixel ((x - x0) sx, (y - y0) sy).
    """
    H, W = size
    pix = project_points(vertices_cam, camera)
    lo = pix.min(dim=0).values
    hi = pix.max(dim=0).values
    x0 = max(0, int(math.floor(float(lo[0]))) - 1)
    y0 = max(0, int(math.floor(float(lo[1]))) - 1)
    x1 = min(W, int(math.ceil(float(hi[0]))) + 1)
    y1 = min(H, int(math.ceil(float(hi[1]))) + 1)
    if x1 <= x0 or y1 <= y0:
        return torch.full((1, 1), float("inf")), torch.zeros(1, 1, dtype=torch.bool), (0.0, 0.0, 1.0, 1.0)
    w, h = x1 - x0, y1 - y0
    s = min(1.0, max_res / max(w, h))
    bw, bh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    sx, sy = bw / w, bh / h
    k = camera.crop(x0, y0, w, h)
    z = vertices_cam[:, 2]
    near = max(float(z.min()) * 0.5, 1e-6)
    far = float(z.max()) * 2.0 + near
    buffer_cam = Intrinsics(k.fx * sx, k.fy * sy, k.cx * sx, k.cy * sy, bw, bh)
    P = buffer_cam.projection_matrix(near=near, far=far, dtype=torch.float32, device=vertices_cam.device)
    clip = to_clip(vertices_cam[None].float(), P)
    tri_i = tri.to(torch.int32)
    if clip.device.type == "cpu" and (ctx is None or isinstance(ctx, RasterizeCpuContext)):
        return (*_depth_from_visibility(clip, tri_i, z, (bh, bw)), (float(x0), float(y0), sx, sy))
    rast, _ = rasterize(clip, tri_i, (bh, bw), ctx=ctx, grad_db=False)
    zb, _ = interpolate(z[None, :, None].float(), rast, tri_i)
    cover = rast[0, :, :, 3] > 0
    zbuf = torch.where(cover, zb[0, :, :, 0], torch.full_like(zb[0, :, :, 0], float("inf")))
    return zbuf, cover, (float(x0), float(y0), sx, sy)


def _depth_from_visibility(clip: Tensor, tri: Tensor, z: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The CPU depth buffer: the rasterizer's triangle ids, then camera z per covered pixel by one
    compiled pass (bit-identical to `interpolate` over `rasterize`'s barycentrics, which it skips).
    A depth buffer is only compared against, never differentiated: no grad needed."""
    from affectsynth.render._kernels.unwrap import depth_from_ids  # noqa: PLC0415  (numba import is slow)

    bh, bw = size
    pos = clip.detach().contiguous()
    ids = RasterizeCpuContext().visibility(pos, tri, bh, bw, pos_index=torch.zeros(1, dtype=torch.int64),
                                           tri_start=torch.zeros(1, dtype=torch.int64),
                                           tri_count=torch.full((1,), tri.shape[0], dtype=torch.int64))[0]
    zbuf = torch.empty(bh, bw)
    depth_from_ids(pos.numpy(), tri.contiguous().numpy(), ids.numpy(), z.detach().float().contiguous().numpy(), zbuf.numpy())
    return zbuf, ids > 0


def unwrap_texture(
    image: Tensor,
    vertices_cam: Tensor,
    tri: Tensor,
    uv: Tensor,
    tri_uv: Tensor,
    camera: Intrinsics,
    *,
    resolution: int | None = None,
    triangle_mask: Tensor | None = None,
    uv_tile: tuple[int, int] = (0, 0),
    photo_mask: Tensor | None = None,
    min_cos: float | None = None,
    settings: UnwrapSettings | None = None,
    ctx: Any = None,
    texels: UVTexels | None = None,
) -> UnwrapResult:
    """Extract a UV texture of a posed mesh from a photo.

    Args:
        image: [H, W, C] float32 photo in [0, 1].
        vertices_cam: [V, 3] float vertex positions in camera space (OpenCV, z > 0).
        tri: [T, 3] int triangles (all of them occlude, selected or not).
        uv: [U, 2] float texture coordinates.
        tri_uv: [T, 3] int indices into ``uv`` per triangle corner.
        camera: the photo's camera (`Intrinsics`; its size is the photo's).
        resolution: texture size R; None = ``settings.resolution``.
        triangle_mask: [T] bool triangles to unwrap; None = those whose UVs lie in ``uv_tile``.
            Selected triangles' UVs must lie in the tile.
        uv_tile: (u0, v0): the texture covers uv in [u0, u0 + 1] x [v0, v0 + 1].
        photo_mask: optional [H, W] bool, photo pixels that may be sampled (False = not the
            surface, e.g. an occluder, or geometry seen through a hole in the mesh); texels landing on False
            pixels count as unseen.
        min_cos: override of ``settings.min_cos``.
        settings: `UnwrapSettings`; None = defaults.
        ctx: raster context (None = default backend).
        texels: `uv_texels` of the same mesh, UVs, selection, tile and R: on CPU float32 without
            grad the per-photo work then runs compiled over it (the same result to float rounding).

    Returns:
        `UnwrapResult` (texture [R, R, C], weight [R, R], visible [R, R]) on the image's device.

    Raises:
        ValueError: shapes or options invalid.
    """
    s = settings or UnwrapSettings()
    if resolution is not None or min_cos is not None:
        s = replace(s, resolution=s.resolution if resolution is None else int(resolution),
                    min_cos=s.min_cos if min_cos is None else float(min_cos))
    _check_common(image, vertices_cam, tri, uv, tri_uv)
    R = int(s.resolution)
    H, W, C = image.shape
    device = image.device
    if photo_mask is not None and (photo_mask.shape != (H, W) or photo_mask.dtype != torch.bool):
        raise ValueError(
            f"unwrap_texture: photo_mask must be [{H}, {W}] bool, got {list(photo_mask.shape)} {photo_mask.dtype}"
        )
    wants_grad = torch.is_grad_enabled() and (image.requires_grad or vertices_cam.requires_grad)
    if texels is not None and not wants_grad and device.type == "cpu" and image.dtype == torch.float32:
        if texels.resolution != R or tuple(texels.uv_tile) != tuple(uv_tile):
            raise ValueError(f"unwrap_texture: texels are for R={texels.resolution}, tile {texels.uv_tile}; "
                             f"unwrapping R={R}, tile {tuple(uv_tile)}")
        return _unwrap_compiled(image, vertices_cam.detach().float(), tri, camera, texels, photo_mask, s, ctx)
    sel = _selected(uv, tri_uv, triangle_mask, uv_tile, "unwrap_texture")
    tile = torch.tensor([float(uv_tile[0]), float(uv_tile[1])], dtype=uv.dtype, device=uv.device)
    tri_s = tri[sel].long()
    corner_uv = uv[tri_uv[sel].long()] - tile  # [Ts, 3, 2]
    if tri_s.shape[0] == 0:
        z = torch.zeros(R, R, device=device)
        return UnwrapResult(torch.zeros(R, R, C, device=device), z, z.bool())

    verts = vertices_cam.float()
    normals = vertex_normals(verts, tri)
    attr = torch.cat([verts[tri_s], normals[tri_s]], dim=-1).reshape(1, -1, 6)  # per corner
    rast, tri_c = _uv_raster(corner_uv, R, ctx)
    texel, _ = interpolate(attr, rast, tri_c)
    texel = texel[0]  # [R, R, 6]
    covered = rast[0, :, :, 3] > 0
    p = texel[..., :3]
    n = texel[..., 3:]
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    safe_p = torch.where(covered[..., None], p, torch.tensor([0.0, 0.0, 1.0], device=device))
    cos = -(n * safe_p).sum(-1) / safe_p.norm(dim=-1).clamp_min(1e-12)
    pix = project_points(safe_p, camera)  # [R, R, 2] photo pixels

    zbuf, zcover, (bx0, by0, sx, sy) = _depth_buffer(verts, tri, camera, (H, W), s.max_depth_res, ctx)
    bh, bw = zbuf.shape
    bu = ((pix[..., 0] - bx0) * sx).floor().long()
    bv = ((pix[..., 1] - by0) * sy).floor().long()
    inb = (bu >= 0) & (bu < bw) & (bv >= 0) & (bv < bh)
    zref = zbuf[bv.clamp(0, bh - 1), bu.clamp(0, bw - 1)]
    in_photo = (pix[..., 0] >= 0) & (pix[..., 0] <= W) & (pix[..., 1] >= 0) & (pix[..., 1] <= H)
    visible = covered & inb & in_photo & (safe_p[..., 2] > 0) & (safe_p[..., 2] <= zref * (1.0 + s.depth_tol))
    visible &= cos > s.min_cos
    if photo_mask is not None:
        pu = pix[..., 0].floor().long().clamp(0, W - 1)
        pv = pix[..., 1].floor().long().clamp(0, H - 1)
        visible &= photo_mask.to(device)[pv, pu]

    t = ((cos - s.min_cos) / s.cos_ramp).clamp(0.0, 1.0)
    weight = (t * t * (3.0 - 2.0 * t)) * visible
    color = sample_bilinear(image.float(), pix)
    texture = color * visible[..., None]
    return UnwrapResult(texture, weight.float(), visible)


def _unwrap_compiled(photo: Tensor, verts: Tensor, tri: Tensor, camera: Intrinsics, tex: UVTexels,
                     photo_mask: Tensor | None, s: UnwrapSettings, ctx: Any) -> UnwrapResult:
    """The per-photo part of `unwrap_texture` over cached texels, by the compiled kernel."""
    from affectsynth.render._kernels.unwrap import unwrap_texels  # noqa: PLC0415  (numba import is slow)

    H, W, C = photo.shape
    R = tex.resolution
    normals = vertex_normals(verts, tri)
    zbuf, _cover, zbox = _depth_buffer(verts, tri, camera, (H, W), s.max_depth_res, ctx)
    texture = torch.zeros(R * R, C)
    weight = torch.zeros(R * R)
    visible = torch.zeros(R * R, dtype=torch.bool)
    mask = photo_mask if photo_mask is not None else torch.ones(1, 1, dtype=torch.bool)
    cam = np.array([camera.fx, camera.fy, camera.cx, camera.cy], np.float32)
    unwrap_texels(tex.texel, tex.corners, tex.bary, verts.contiguous().numpy(), normals.contiguous().numpy(), cam,
                  photo.contiguous().numpy(), zbuf.float().contiguous().numpy(), np.array(zbox, np.float32),
                  mask.contiguous().numpy(), photo_mask is not None, np.float32(s.min_cos), np.float32(s.cos_ramp),
                  np.float32(s.depth_tol), texture.numpy(), weight.numpy(), visible.numpy())
    return UnwrapResult(texture.view(R, R, C), weight.view(R, R), visible.view(R, R))


def mirror_texel_map(
    uv: Tensor,
    tri_uv: Tensor,
    tri: Tensor,
    symmetry: Tensor,
    resolution: int,
    *,
    triangle_mask: Tensor | None = None,
    uv_tile: tuple[int, int] = (0, 0),
    ctx: Any = None,
) -> Tensor:
    """Per texel, the tile-local UV of its mirror-symmetric point.

    Rasterizes the selected triangles in UV space with, as attribute, the UV of each corner's
    mirror vertex (``symmetry[vertex]``). A vertex's UV is that of any selected corner using it.

    Args:
        uv: [U, 2] texture coordinates.
        tri_uv: [T, 3] int indices into ``uv``.
        tri: [T, 3] int vertex indices.
        symmetry: [V] int, the mirror vertex of each vertex (itself on the symmetry plane).
        resolution: texture size R.
        triangle_mask: [T] bool triangles in the texture (None = those in ``uv_tile``).
        uv_tile: (u0, v0) of the texture's tile.
        ctx: raster context.

    Returns:
        [R, R, 2] float32 mirror uv (tile-local, texture convention of this module); -1 where the
        texel is not covered or its mirror vertices have no UV in the texture.
    """
    if symmetry.ndim != 1 or (tri.numel() and int(tri.max()) >= symmetry.shape[0]):
        raise ValueError(f"mirror_texel_map: symmetry must be [V] covering tri's vertices, got {list(symmetry.shape)}")
    if tri.shape != tri_uv.shape or tri.ndim != 2 or tri.shape[-1] != 3:
        raise ValueError(f"mirror_texel_map: tri and tri_uv must both be [T, 3], got {list(tri.shape)}, {list(tri_uv.shape)}")
    R = int(resolution)
    sel = _selected(uv, tri_uv, triangle_mask, uv_tile, "mirror_texel_map")
    tile = torch.tensor([float(uv_tile[0]), float(uv_tile[1])], dtype=uv.dtype, device=uv.device)
    tri_s = tri[sel].long()
    corner_uv = (uv[tri_uv[sel].long()] - tile).float()
    V = symmetry.shape[0]
    vert_uv = torch.zeros(V, 2, device=uv.device)
    has = torch.zeros(V, device=uv.device)
    vert_uv[tri_s.reshape(-1)] = corner_uv.reshape(-1, 2)
    has[tri_s.reshape(-1)] = 1.0
    mirror = symmetry.long()[tri_s]  # [Ts, 3]
    attr = torch.cat([vert_uv[mirror], has[mirror][..., None]], dim=-1).reshape(1, -1, 3)
    if tri_s.shape[0] == 0:
        return torch.full((R, R, 2), -1.0, device=uv.device)
    rast, tri_c = _uv_raster(corner_uv, R, ctx)
    out, _ = interpolate(attr, rast, tri_c)
    out = out[0]
    ok = (rast[0, :, :, 3] > 0) & (out[..., 2] > 1.0 - 1e-4)
    return torch.where(ok[..., None], out[..., :2], torch.full_like(out[..., :2], -1.0))


def fill_texture(
    texture: Tensor,
    weight: Tensor,
    *,
    mirror_uv: Tensor | None = None,
    grow_px: int = 2,
) -> Tensor:
    """Fill a texture's low-weight texels: local growth, then mirror texel, then push-pull inpainting.

    First, texels within `grow_px` of a seen texel take the push-pull colour of their neighbourhood
    (so bilinear sampling at the edge of the seen area never mixes in mirrored colour). Then, with
    a mirror map, ``c' = w c + (1 - w) m``, ``w' = w + (1 - w) w_m``, where m is the mirror texel's
    colour (weight-normalised bilinear sample) and w_m its weight; finally `push_pull_fill(c', w')`.
    Pass a binary weight (the visibility) to keep every seen texel's own colour.

    Args:
        texture: [R, R, C] float texture from `unwrap_texture`.
        weight: [R, R] float weights in [0, 1].
        mirror_uv: optional [R, R, 2] from `mirror_texel_map` (-1 = no mirror).
        grow_px: width in texels of the local growth band (0 = none).

    Returns:
        [R, R, C] filled texture; texels of weight 1 unchanged.

    Raises:
        ValueError: shapes don't match.
    """
    if texture.ndim != 3 or weight.shape != texture.shape[:2]:
        raise ValueError(
            f"fill_texture: texture must be [R, R, C] and weight [R, R], got "
            f"{list(texture.shape)} and {list(weight.shape)}"
        )
    if mirror_uv is not None and mirror_uv.shape != (*texture.shape[:2], 2):
        raise ValueError(f"fill_texture: mirror_uv must be {[*texture.shape[:2], 2]}, got {list(mirror_uv.shape)}")
    wants_grad = torch.is_grad_enabled() and (texture.requires_grad or weight.requires_grad)
    if not wants_grad and texture.device.type == "cpu" and texture.dtype == torch.float32:
        return _fill_texture_compiled(texture, weight, mirror_uv, grow_px)
    return _fill_texture_torch(texture, weight, mirror_uv, grow_px)


def _fill_texture_compiled(texture: Tensor, weight: Tensor, mirror_uv: Tensor | None, grow_px: int) -> Tensor:
    """`fill_texture` on CPU float32 without grad: growth and mirror steps compiled (the same
    arithmetic as `_fill_texture_torch`, equal to float rounding, seen texels bit for bit)."""
    from affectsynth.render._kernels.unwrap import fill_from_mirror, fill_seen_edges, seen_band  # noqa: PLC0415  (numba import is slow)
    from affectsynth.render.inpaint import _push_pull_kernel  # noqa: PLC0415  (render's own compiled fill)

    c = texture.detach().clone(memory_format=torch.contiguous_format)
    w = weight.detach().to(torch.float32).clamp(0.0, 1.0).contiguous()
    if grow_px > 0:  # the push-pull colour is needed in the growth band only: filled there alone
        band = torch.empty(w.shape, dtype=torch.bool)
        seen_band(w.numpy(), int(grow_px), band.numpy())
        local = _push_pull_kernel(c[None], w[None], 1, band[None])  # [N, C], the band's texels in order
        fill_seen_edges(c.numpy(), w.numpy(), local.numpy(), band.numpy())
    if mirror_uv is not None:
        mc, mw = torch.empty_like(c), torch.empty_like(w)
        fill_from_mirror(c.numpy(), w.numpy(), mirror_uv.to(torch.float32).contiguous().numpy(), mc.numpy(), mw.numpy())
        c, w = mc, mw
    return push_pull_fill(c, w)


def _fill_texture_torch(texture: Tensor, weight: Tensor, mirror_uv: Tensor | None, grow_px: int) -> Tensor:
    """`fill_texture` in torch ops (autograd, any device and float type)."""
    w = weight.to(texture.dtype).clamp(0.0, 1.0)
    c = texture
    if grow_px > 0:
        seen = (w > 0).to(texture.dtype)[None, None]
        near = torch.nn.functional.max_pool2d(seen, 2 * grow_px + 1, stride=1, padding=grow_px)[0, 0] > 0
        band = near & (w < 1)
        local = push_pull_fill(c, w)
        c = torch.where(band[..., None], local * (1 - w[..., None]) + c * w[..., None], c)
        w = torch.where(band, torch.ones_like(w), w)
    if mirror_uv is not None:
        Rh, Rw = texture.shape[:2]
        valid = (mirror_uv >= 0).all(dim=-1)
        coords = mirror_uv.to(texture.dtype) * torch.tensor([float(Rw), float(Rh)], dtype=texture.dtype, device=texture.device)
        stacked = torch.cat([c * w[..., None], w[..., None]], dim=-1)
        sm = sample_bilinear(stacked, coords, padding_mode="zeros")
        wm = sm[..., -1]
        cm = sm[..., :-1] / wm.clamp_min(1e-6)[..., None]
        wm = torch.where(valid, wm.clamp(0.0, 1.0), torch.zeros_like(wm))
        a = ((1.0 - w) * (wm > 1e-6))[..., None]
        c = (1.0 - a) * c + a * cm
        w = w + (1.0 - w) * wm
    return push_pull_fill(c, w)
