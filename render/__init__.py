"""affectsynth.render: differentiable rendering primitives (nvdiffrast's API) plus mesh/image helpers.

The four primitives keep nvdiffrast's names, argument order and return arity, with the raster
context as an optional keyword: `rasterize`, `interpolate`, `texture`, `antialias`. On top of them:
cameras (`camera`), mesh geometry (`mesh`), texture extraction from a photo (`unwrap`), hole filling
(`inpaint`), image warps from mesh motion (`warp`), spherical-harmonic shading (`shading`) and the
seamless composite (`composite`, `color`). Nothing here knows what the meshes depict.
"""

from affectsynth.render._checks import ShapeError, check_shape
from affectsynth.render.antialias import TopologyHash, antialias, antialias_construct_topology_hash
from affectsynth.render.camera import (
    Intrinsics,
    clip_to_pixels,
    crop_intrinsics,
    pixels_to_ndc,
    project_points,
    projection_matrix,
    to_clip,
)
from affectsynth.render.color import match_color
from affectsynth.render.composite import CompositeResult, CompositeSettings, composite, feather_mask
from affectsynth.render.context import (
    RasterizeCpuContext,
    RasterizeCudaContext,
    RasterizeReferenceContext,
    available_backends,
)
from affectsynth.render.inpaint import push_pull_fill
from affectsynth.render.interpolate import interpolate
from affectsynth.render.rasterize import rasterize
from affectsynth.render.shading import SH_COEFFICIENTS, fit_sh_lighting, sh_basis, sh_shading
from affectsynth.render.texture import texture
from affectsynth.render.unwrap import (
    UnwrapResult,
    UnwrapSettings,
    fill_texture,
    mirror_texel_map,
    unwrap_texture,
    uv_tile_triangles,
)
from affectsynth.render.mesh import vertex_normals
from affectsynth.render.warp import (
    effective_margin, motion_field, motion_window, pixel_centres, sample_bilinear, sample_image, warp_image,
)

__all__ = [
    "CompositeResult",
    "CompositeSettings",
    "Intrinsics",
    "RasterizeCpuContext",
    "RasterizeCudaContext",
    "RasterizeReferenceContext",
    "SH_COEFFICIENTS",
    "ShapeError",
    "TopologyHash",
    "UnwrapResult",
    "UnwrapSettings",
    "antialias",
    "antialias_construct_topology_hash",
    "available_backends",
    "check_shape",
    "clip_to_pixels",
    "composite",
    "crop_intrinsics",
    "effective_margin",
    "feather_mask",
    "fill_texture",
    "fit_sh_lighting",
    "interpolate",
    "match_color",
    "mirror_texel_map",
    "motion_field",
    "motion_window",
    "pixel_centres",
    "pixels_to_ndc",
    "project_points",
    "projection_matrix",
    "push_pull_fill",
    "rasterize",
    "sample_bilinear",
    "sample_image",
    "sh_basis",
    "sh_shading",
    "texture",
    "to_clip",
    "unwrap_texture",
    "uv_tile_triangles",
    "vertex_normals",
    "warp_image",
]
