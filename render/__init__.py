"""affectsynth.render: differentiable rendering primitives (nvdiffrast's API) plus mesh/image helpers.

The four primitives keep nvdiffrast's names, argument order and return arity, with the raster
context as an optional keyword: `rasterize`, `interpolate`, `texture`, `antialias`.
"""

from affectsynth.render._checks import ShapeError, check_shape
from affectsynth.render.antialias import TopologyHash, antialias, antialias_construct_topology_hash
from affectsynth.render.context import (
    RasterizeCpuContext,
    RasterizeCudaContext,
    RasterizeReferenceContext,
    available_backends,
)
from affectsynth.render.interpolate import interpolate
from affectsynth.render.rasterize import rasterize
from affectsynth.render.texture import texture

__all__ = [
    "RasterizeCpuContext",
    "RasterizeCudaContext",
    "RasterizeReferenceContext",
    "ShapeError",
    "TopologyHash",
    "antialias",
    "antialias_construct_topology_hash",
    "available_backends",
    "check_shape",
    "interpolate",
    "rasterize",
    "texture",
]
