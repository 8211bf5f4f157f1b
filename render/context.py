"""Raster contexts (backends) and the registry listing which ones work here.

A context decides visibility: which triangle covers each pixel. `RasterizeCpuContext` runs a
compiled numba z-buffer, `RasterizeReferenceContext` a slow pure-torch brute force (for tests),
and `RasterizeCudaContext` wraps nvdiffrast on CUDA. For the CPU and reference contexts the
differentiable quantities (barycentrics, depth) are then recomputed in torch by `rasterize`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "RasterizeCpuContext",
    "RasterizeCudaContext",
    "RasterizeReferenceContext",
    "available_backends",
    "default_context",
    "BACKENDS",
]

_GPU_INSTALL = (
    "nvdiffrast is required for CUDA tensors: pip install 'affectsynth[gpu]' "
    "(installs diffrp-nvdiffrast), or move the tensors to the CPU"
)


def _import_nvdiffrast() -> Any:
    try:
        import nvdiffrast.torch as dr  # noqa: PLC0415  (optional extra, imported where used)
    except ImportError as exc:  # narrow: only a missing/broken optional extra
        raise ImportError(_GPU_INSTALL) from exc
    return dr


class RasterizeCpuContext:
    """CPU backend: numba-compiled z-buffer rasterizer (one thread, deterministic).

    Example:
        >>> ctx = RasterizeCpuContext()
        >>> ctx.name
        'cpu'
    """

    name = "cpu"
    device = torch.device("cpu")

    def visibility(
        self,
        pos: Tensor,
        tri: Tensor,
        height: int,
        width: int,
        *,
        pos_index: Tensor,
        tri_start: Tensor,
        tri_count: Tensor,
    ) -> Tensor:
        """Triangle id + 1 per pixel ([B, H, W] int32, 0 = empty); see `rasterize`."""
        from affectsynth.render._kernels.visibility import rasterize_ids  # noqa: PLC0415  (numba import is slow)

        p = pos.detach()
        if p.device.type != "cpu":
            raise ValueError(f"RasterizeCpuContext: tensors must be on the CPU, got {p.device}")
        p = p.contiguous().numpy()
        nb = int(pos_index.numel())
        ids = torch.empty(nb, height, width, dtype=torch.int32)
        key = torch.empty(height * width, dtype=torch.int64)
        rasterize_ids(
            p,
            tri.detach().to(torch.int32).contiguous().numpy(),
            pos_index.numpy(),
            tri_start.numpy(),
            tri_count.numpy(),
            int(height),
            int(width),
            ids.numpy(),
            key.numpy(),
        )
        return ids

    def __repr__(self) -> str:
        return "RasterizeCpuContext()"


class RasterizeReferenceContext:
    """Pure-torch brute-force backend (every pixel against every triangle); slow, for tests."""

    name = "reference"

    def visibility(
        self,
        pos: Tensor,
        tri: Tensor,
        height: int,
        width: int,
        *,
        pos_index: Tensor,
        tri_start: Tensor,
        tri_count: Tensor,
    ) -> Tensor:
        """Triangle id + 1 per pixel ([B, H, W] int32, 0 = empty); see `rasterize`."""
        from affectsynth.render._reference import visibility_reference  # noqa: PLC0415

        return visibility_reference(
            pos.detach(), tri, height, width,
            pos_index=pos_index.to(pos.device), tri_start=tri_start, tri_count=tri_count,
        )

    def __repr__(self) -> str:
        return "RasterizeReferenceContext()"


class RasterizeCudaContext:
    """CUDA backend wrapping `nvdiffrast.torch.RasterizeCudaContext`.

    Args:
        device: CUDA device (None = current).

    Raises:
        ImportError: nvdiffrast is not installed (the message gives the install command).
    """

    name = "cuda"

    def __init__(self, device: torch.device | str | int | None = None) -> None:
        dr = _import_nvdiffrast()
        self.dr = dr
        self.glctx = dr.RasterizeCudaContext(device=device)
        self.device = torch.device("cuda") if device is None else torch.device(device)

    def __repr__(self) -> str:
        return f"RasterizeCudaContext(device={self.device!s})"


def _cuda_works() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        _import_nvdiffrast()
    except ImportError:
        return False
    return True


BACKENDS: dict[str, type] = {
    "cpu": RasterizeCpuContext,
    "reference": RasterizeReferenceContext,
    "cuda": RasterizeCudaContext,
}


def available_backends() -> list[str]:
    """Names in `BACKENDS` that work in this process (cuda needs a GPU and nvdiffrast).

    Example:
        >>> "cpu" in available_backends()
        True
    """
    out = []
    for name in BACKENDS:
        if name == "cuda" and not _cuda_works():
            continue
        if name == "cpu":
            try:
                import numba  # noqa: F401, PLC0415
            except ImportError:
                continue
        out.append(name)
    return out


@functools.cache
def _cpu_singleton() -> RasterizeCpuContext:
    return RasterizeCpuContext()


@functools.cache
def _cuda_singleton(index: int) -> RasterizeCudaContext:
    return RasterizeCudaContext(device=torch.device("cuda", index))


def default_context(device: torch.device) -> Any:
    """The context `ctx=None` means for tensors on `device`.

    CPU tensors get a shared `RasterizeCpuContext`; CUDA tensors a shared
    `RasterizeCudaContext` per device.

    Args:
        device: the device of the tensors to rasterize.

    Returns:
        A raster context.

    Raises:
        ImportError: CUDA tensors but nvdiffrast is missing (message names the install command).
        ValueError: a device type with no backend.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return _cpu_singleton()
    if device.type == "cuda":
        _import_nvdiffrast()
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return _cuda_singleton(idx)
    raise ValueError(f"render: no raster backend for device type {device.type!r}; use cpu or cuda")
