"""Unwrap of the face model's textures with the model's UV raster cached.

`affectsynth.render.unwrap.unwrap_texture` rasterizes the mesh in UV space on every call, yet
which triangle covers each texel, and where in it, depends on the model's topology, UVs and
the texture side only: the same for every photo. `face_uv_texels` keeps it (`uv_texels`) per
(renderer, part, resolution), and `unwrap_face` passes it to `unwrap_texture`, which then does
only the per-photo work, compiled, on CPU float32 without grad.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from affectsynth.fitting import Camera
from affectsynth.render.unwrap import UnwrapResult, UVTexels, unwrap_texture, uv_texels, uv_tile_triangles

if TYPE_CHECKING:  # face_render imports teeth, which imports this module
    from affectsynth.face_render import FaceRenderer

__all__ = ["face_uv_texels", "unwrap_face"]

#: the model's parts with a texture unwrapped from the photo: "skin" (all triangles occlude, the
#: rendered skin is unwrapped, UV tile (0, 0)) or "teeth" (the teeth alone occlude and are
#: unwrapped, `affectsynth.teeth.TEETH_UV_TILE`)
_PARTS = ("skin", "teeth")


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
    return uv_texels(renderer.model.uv, tri, tri_uv, resolution=int(resolution), triangle_mask=sel, uv_tile=tile)


def unwrap_face(photo: Tensor, vertices: Tensor, renderer: FaceRenderer, camera: Camera, part: str, *,
                resolution: int, photo_mask: Tensor | None, min_cos: float) -> UnwrapResult:
    """`unwrap_texture` of one part of the face ("skin" or "teeth", see `_PARTS`) from a photo.

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
    texels = face_uv_texels(renderer, part, int(resolution)) if photo.device.type == "cpu" else None
    return unwrap_texture(photo, vertices, tri, renderer.model.uv, tri_uv, camera, resolution=resolution,
                          triangle_mask=sel, uv_tile=tile, photo_mask=photo_mask, min_cos=min_cos, texels=texels)
