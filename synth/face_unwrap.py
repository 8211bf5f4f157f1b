"""Unwrap of the face model's textures with the model's UV raster cached.

`affectsynth.render.unwrap.unwrap_texture` rasterizes the mesh in UV space on every call, yet
which triangle covers each texel, and where in it, depends on the model's topology, UVs and
the texture side only: the same for every photo. `face_uv_texels` keeps it per (renderer, part,
resolution); `unwrap_face` then does only the per-photo work, by a compiled loop over the
covered texels (`affectsynth.render._kernels.unwrap`), on CPU float32 without grad; otherwise
(autograd, CUDA) it calls `unwrap_texture` itself. `fill_unwrapped` is `fill_texture` with its
growth and mirror steps compiled alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from affectsynth.fitting import Camera
from affectsynth.render.inpaint import push_pull_fill
from affectsynth.render.mesh import vertex_normals
from affectsynth.render.unwrap import (UnwrapResult, UnwrapSettings, _depth_buffer, _uv_raster, fill_texture,
                                       unwrap_texture, uv_tile_triangles)

if TYPE_CHECKING:  # face_render imports teeth, which imports this module
    from affectsynth.face_render import FaceRenderer

__all__ = ["UVTexels", "face_uv_texels", "fill_unwrapped", "unwrap_face"]

#: the model's parts with a texture unwrapped from the photo (see `UVTexels.part`)
_PARTS = ("skin", "teeth")
#: `fill_texture`'s local growth band, texels (its default)
_FILL_GROW_PX = 2


@dataclass(frozen=True)
class UVTexels:
    """The covered texels of one part's UV raster, and what covers them.

    Attributes:
        part: "skin" (all triangles occlude, the rendered skin is unwrapped, UV tile (0, 0)) or
            "teeth" (the teeth alone occlude and are unwrapped, `affectsynth.teeth.TEETH_UV_TILE`).
        resolution: texture side R.
        uv_tile: the texture's UV tile (u0, v0).
        texel: [N] int64 row-major index of each covered texel in the R x R texture.
        corners: [N, 3] int32 vertex ids of the triangle covering it.
        bary: [N, 2] float32 the rasterizer's barycentrics (u, v) of corners 0 and 1 there.
    """

    part: str
    resolution: int
    uv_tile: tuple[int, int]
    texel: np.ndarray
    corners: np.ndarray
    bary: np.ndarray


@lru_cache(maxsize=8)
def _part_triangles(renderer: FaceRenderer, part: str) -> tuple[Tensor, Tensor, Tensor, tuple[int, int]]:
    """(triangles, their uv indices, the ones unwrapped, UV tile) of a part, as `unwrap_texture` takes them
    (per renderer: they depend on the model only)."""
    from affectsynth.teeth import TEETH_UV_TILE  # noqa: PLC0415  (teeth imports this module)

    if part not in _PARTS:
        raise ValueError(f"unwrap_face: part must be one of {_PARTS}, got {part!r}")
    m = renderer.model
    if part == "skin":
        return m.triangles, m.triangle_uv, renderer.skin, (0, 0)
    tri, tri_uv = m.triangles[renderer.teeth], m.triangle_uv[renderer.teeth]
    return tri, tri_uv, uv_tile_triangles(m.uv, tri_uv, tile=TEETH_UV_TILE), TEETH_UV_TILE


@lru_cache(maxsize=16)
def face_uv_texels(renderer: FaceRenderer, part: str, resolution: int) -> UVTexels:
    """The UV raster of a part of the renderer's model at R x R (built once per renderer, part and R)."""
    tri, tri_uv, sel, tile = _part_triangles(renderer, part)
    uv = renderer.model.uv
    offset = torch.tensor([float(tile[0]), float(tile[1])], dtype=uv.dtype, device=uv.device)
    corner_uv = (uv[tri_uv[sel].long()] - offset).cpu()
    rast, _ = _uv_raster(corner_uv, int(resolution), None)
    rast = rast[0].reshape(-1, 4)
    ids = rast[:, 3].long() - 1
    texel = torch.nonzero(ids >= 0)[:, 0]
    corners = tri[sel].cpu().to(torch.int32)[ids[texel]]
    return UVTexels(part, int(resolution), tile, texel.numpy(), corners.contiguous().numpy(),
                    rast[texel, :2].contiguous().numpy())


def unwrap_face(photo: Tensor, vertices: Tensor, renderer: FaceRenderer, camera: Camera, part: str, *,
                resolution: int, photo_mask: Tensor | None, min_cos: float) -> UnwrapResult:
    """`unwrap_texture` of one part of the face ("skin" or "teeth", see `UVTexels.part`) from a photo.

    Args:
        photo: [H, W, 3] float32 photo in [0, 1].
        vertices: [V, 3] camera-space vertices of the fitted face.
        renderer: the face model's renderer (its model and triangle lists).
        camera: the photo's camera.
        part: "skin" or "teeth".
        resolution: texture side R.
        photo_mask: [H, W] bool photo pixels that may be sampled, or None (all).
        min_cos: texels seen at a cosine below this are unseen.

    Returns:
        `UnwrapResult`, equal to `unwrap_texture`'s to float rounding.
    """
    tri, tri_uv, sel, tile = _part_triangles(renderer, part)
    wants_grad = torch.is_grad_enabled() and (photo.requires_grad or vertices.requires_grad)
    if wants_grad or photo.device.type != "cpu" or photo.dtype != torch.float32:
        return unwrap_texture(photo, vertices, tri, renderer.model.uv, tri_uv, camera, resolution=resolution,
                              triangle_mask=sel, uv_tile=tile, photo_mask=photo_mask, min_cos=min_cos)
    tex = face_uv_texels(renderer, part, int(resolution))
    return _unwrap_compiled(photo, vertices.detach().float(), tri, camera, tex, photo_mask, min_cos)


def _unwrap_compiled(photo: Tensor, verts: Tensor, tri: Tensor, camera: Camera, tex: UVTexels,
                     photo_mask: Tensor | None, min_cos: float) -> UnwrapResult:
    """The per-photo part of `unwrap_texture` over cached texels, by the compiled kernel."""
    from affectsynth.render._kernels.unwrap import unwrap_texels  # noqa: PLC0415  (numba import is slow)

    s = UnwrapSettings()
    H, W, C = photo.shape
    R = tex.resolution
    if photo_mask is not None and (photo_mask.shape != (H, W) or photo_mask.dtype != torch.bool):
        raise ValueError(f"unwrap_face: photo_mask must be [{H}, {W}] bool, got {list(photo_mask.shape)} {photo_mask.dtype}")
    normals = vertex_normals(verts, tri)
    zbuf, _cover, zbox = _depth_buffer(verts, tri, camera, (H, W), s.max_depth_res, None)
    if len(zbox) != 4:  # the mesh lies outside the photo: an empty 1 x 1 buffer, (x0, y0, scale)
        zbox = (zbox[0], zbox[1], zbox[2], zbox[2])
    texture = torch.zeros(R * R, C)
    weight = torch.zeros(R * R)
    visible = torch.zeros(R * R, dtype=torch.bool)
    mask = photo_mask if photo_mask is not None else torch.ones(1, 1, dtype=torch.bool)
    cam = np.array([camera.fx, camera.fy, camera.cx, camera.cy], np.float32)
    unwrap_texels(tex.texel, tex.corners, tex.bary, verts.contiguous().numpy(), normals.contiguous().numpy(), cam,
                  photo.contiguous().numpy(), zbuf.float().contiguous().numpy(), np.array(zbox, np.float32),
                  mask.contiguous().numpy(), photo_mask is not None, np.float32(min_cos), np.float32(s.cos_ramp),
                  np.float32(s.depth_tol), texture.numpy(), weight.numpy(), visible.numpy())
    return UnwrapResult(texture.view(R, R, C), weight.view(R, R), visible.view(R, R))


def fill_unwrapped(texture: Tensor, weight: Tensor, *, mirror_uv: Tensor | None = None) -> Tensor:
    """`fill_texture` (local growth of 2 texels, mirror texel, push-pull) of an unwrapped texture.

    On CPU float32 without grad the growth and mirror steps run compiled (the same arithmetic,
    results equal to float rounding); otherwise `fill_texture` itself.

    Args:
        texture: [R, R, C] float texture (`UnwrapResult.texture`).
        weight: [R, R] float weights in [0, 1] (the visibility: seen texels keep their colour).
        mirror_uv: optional [R, R, 2] from `affectsynth.render.unwrap.mirror_texel_map`.
    """
    wants_grad = torch.is_grad_enabled() and (texture.requires_grad or weight.requires_grad)
    if wants_grad or texture.device.type != "cpu" or texture.dtype != torch.float32 or texture.ndim != 3:
        return fill_texture(texture, weight, mirror_uv=mirror_uv, grow_px=_FILL_GROW_PX)
    from affectsynth.render._kernels.unwrap import fill_from_mirror, fill_seen_edges  # noqa: PLC0415  (numba import is slow)

    if weight.shape != texture.shape[:2]:
        raise ValueError(f"fill_unwrapped: weight must be {list(texture.shape[:2])}, got {list(weight.shape)}")
    c = texture.detach().clone(memory_format=torch.contiguous_format)
    w = weight.detach().to(torch.float32).clamp(0.0, 1.0).contiguous()
    fill_seen_edges(c.numpy(), w.numpy(), push_pull_fill(c, w).numpy(), _FILL_GROW_PX)
    if mirror_uv is not None:
        if mirror_uv.shape != (*texture.shape[:2], 2):
            raise ValueError(f"fill_unwrapped: mirror_uv must be {[*texture.shape[:2], 2]}, got {list(mirror_uv.shape)}")
        mc, mw = torch.empty_like(c), torch.empty_like(w)
        fill_from_mirror(c.numpy(), w.numpy(), mirror_uv.to(torch.float32).contiguous().numpy(), mc.numpy(), mw.numpy())
        c, w = mc, mw
    return push_pull_fill(c, w)
