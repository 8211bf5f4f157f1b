"""Camera conventions: the one place that maps OpenCV cameras and pixels to rasterizer clip space.

Conventions (every other module follows these; none redefines them):

* Camera space is OpenCV: x right, y down, z forward (the camera looks along +z); any length unit.
* Pixels are continuous image coordinates ``(u, v)``: the top-left corner of the image is (0, 0),
  u grows to the right, v downwards; pixel (row i, col j) covers [j, j+1) x [i, i+1) and its centre
  is (j + 0.5, i + 0.5) (as MediaPipe's normalised points times the image size, and nvdiffrast).
* A camera-space point (x, y, z), z > 0, projects to ``(x / z * fx + cx, y / z * fy + cy)``
  (`project_points`, the one projection: the fitter and the renderer both use it).
* Clip space is nvdiffrast's: ``ndc = clip[:3] / clip[3]``; raster row 0 is ndc y = -1, so with
  y-down pixels no flip is needed: ``x_ndc = 2 u / W - 1``, ``y_ndc = 2 v / H - 1``. Depth
  ``z_ndc`` is -1 at ``near`` and +1 at ``far`` (OpenGL), smaller = closer; ``w_clip = z``.
* A window ``(x0, y0, w, h)`` of a W x H photo rendered at photo resolution is the same camera
  with ``cx - x0``, ``cy - y0`` and a w x h image (`crop_intrinsics`); window pixel (u', v') is
  photo pixel (u' + x0, v' + y0).

Note:
    Points must lie in front of the camera (z > 0) for `project_points` to be meaningful.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Intrinsics",
    "projection_matrix",
    "to_clip",
    "project_points",
    "clip_to_pixels",
    "pixels_to_ndc",
    "crop_intrinsics",
]


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an OpenCV camera and the image size they refer to (pixels).

    Attributes:
        fx: focal length along x, pixels.
        fy: focal length along y, pixels.
        cx: principal point x, continuous pixel coordinates (image centre = width / 2).
        cy: principal point y, continuous pixel coordinates.
        width: image width W, pixels.
        height: image height H, pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"Intrinsics: expected fx, fy > 0, got fx={self.fx}, fy={self.fy}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(
                f"Intrinsics: expected width, height > 0, got {self.width} x {self.height}"
            )

    def crop(self, x0: int, y0: int, width: int, height: int) -> Intrinsics:
        """The same camera seen through the window (x0, y0, width, height) at full resolution."""
        return Intrinsics(*crop_intrinsics(self.fx, self.fy, self.cx, self.cy, (x0, y0, width, height)))

    def project(self, points_cam: Tensor) -> Tensor:
        """[..., 2] pixel coordinates of camera-space points [..., 3]; see `project_points`."""
        return project_points(points_cam, self)

    def projection_matrix(
        self,
        *,
        near: float = 1.0,
        far: float = 1000.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """[4, 4] camera -> clip matrix for this image; see `projection_matrix`."""
        return projection_matrix(
            self.fx, self.fy, self.cx, self.cy, self.width, self.height,
            near=near, far=far, dtype=dtype, device=device,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; `from_dict` inverts it."""
        return {
            "fx": float(self.fx), "fy": float(self.fy), "cx": float(self.cx), "cy": float(self.cy),
            "width": int(self.width), "height": int(self.height),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Intrinsics:
        """Inverse of `to_dict`."""
        return cls(
            float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]),
            int(d["width"]), int(d["height"]),
        )


def projection_matrix(
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    width: int,
    height: int,
    *,
    near: float = 1.0,
    far: float = 1000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Camera (OpenCV) -> clip (nvdiffrast) matrix.

    ``clip = P @ [x, y, z, 1]`` gives ``clip_w = z`` and, after the divide,
    ``x_ndc = 2 u / W - 1``, ``y_ndc = 2 v / H - 1`` for the pixel (u, v) the point projects to,
    and ``z_ndc`` from -1 (near) to +1 (far).

    Args:
        fx: focal length x, pixels.
        fy: focal length y, pixels.
        cx: principal point x, pixels (continuous coordinates).
        cy: principal point y, pixels.
        width: image width W the clip space covers, pixels.
        height: image height H, pixels.
        near: near plane depth, camera units (> 0).
        far: far plane depth, camera units (> near).
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        [4, 4] tensor of ``dtype`` on ``device``.

    Raises:
        ValueError: non-positive size/focal length or ``not 0 < near < far``.

    Example:
        >>> P = projection_matrix(500.0, 500.0, 320.0, 240.0, 640, 480)
        >>> clip = P @ torch.tensor([0.0, 0.0, 10.0, 1.0])
        >>> (clip[:2] / clip[3]).tolist()
        [0.0, 0.0]
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"projection_matrix: expected width, height > 0, got {width} x {height}")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"projection_matrix: expected fx, fy > 0, got fx={fx}, fy={fy}")
    if not 0 < near < far:
        raise ValueError(f"projection_matrix: expected 0 < near < far, got near={near}, far={far}")
    W, H = float(width), float(height)
    # entries in Python floats (float64), one tensor from the nested list: the values a float64
    # zeros + 7 element writes give, without their dozen tensor ops (one matrix per rendered window)
    P = torch.tensor([[2.0 * fx / W, 0.0, 2.0 * cx / W - 1.0, 0.0],
                      [0.0, 2.0 * fy / H, 2.0 * cy / H - 1.0, 0.0],
                      [0.0, 0.0, (far + near) / (far - near), -2.0 * far * near / (far - near)],
                      [0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    return P.to(dtype=dtype, device=device)


def to_clip(points_cam: Tensor, proj: Tensor) -> Tensor:
    """Camera-space points -> homogeneous clip coordinates for `rasterize`.

    Args:
        points_cam: [B, V, 3] (or [V, 3], treated as B = 1) camera-space points, OpenCV.
        proj: [4, 4] or [B, 4, 4] from `projection_matrix`.

    Returns:
        [B, V, 4] clip coordinates, dtype/device of ``points_cam``.

    Raises:
        ValueError: wrong shapes.
    """
    if points_cam.ndim == 2:
        points_cam = points_cam[None]
    if points_cam.ndim != 3 or points_cam.shape[-1] != 3:
        raise ValueError(f"to_clip: points_cam must be [B, V, 3], got {list(points_cam.shape)}")
    if proj.shape[-2:] != (4, 4) or proj.ndim not in (2, 3):
        raise ValueError(f"to_clip: proj must be [4, 4] or [B, 4, 4], got {list(proj.shape)}")
    proj = proj.to(dtype=points_cam.dtype, device=points_cam.device)
    homo = torch.cat([points_cam, torch.ones_like(points_cam[..., :1])], dim=-1)
    if proj.ndim == 2:
        return homo @ proj.T
    return torch.einsum("bvj,bij->bvi", homo, proj)


def project_points(points_cam: Tensor, camera: "Intrinsics | Tensor", *deprecated: Any) -> Tensor:
    """Pinhole projection of camera-space points to continuous pixel coordinates.

    Args:
        points_cam: [..., 3] camera-space points (OpenCV, z > 0).
        camera: an `Intrinsics`, or a tensor [..., 4] of (fx, fy, cx, cy) broadcastable to
            ``points_cam[..., :1]`` (e.g. [B, 1, 4] for a batch of cameras and [B, N, 3] points).
        *deprecated: the old call ``project_points(points, fx, fy, cx, cy)`` (warns).

    Returns:
        [..., 2] pixel coordinates (u, v) = (x / z * fx + cx, y / z * fy + cy), dtype/device of
        ``points_cam``.

    Example:
        >>> cam = Intrinsics(100.0, 100.0, 50.0, 50.0, 100, 100)
        >>> project_points(torch.tensor([1.0, -1.0, 2.0]), cam).tolist()
        [100.0, 0.0]
    """
    if points_cam.shape[-1] != 3:
        raise ValueError(f"project_points: points_cam must be [..., 3], got {list(points_cam.shape)}")
    if deprecated:
        if len(deprecated) != 3:
            raise TypeError("project_points: expected (points_cam, camera), or the deprecated (points_cam, fx, fy, cx, cy)")
        warnings.warn("project_points(points, fx, fy, cx, cy) is deprecated: pass the camera (an Intrinsics)",
                      DeprecationWarning, stacklevel=2)
        camera = torch.tensor([float(camera), *(float(a) for a in deprecated)], dtype=points_cam.dtype,
                              device=points_cam.device)
    if isinstance(camera, Intrinsics) and _compiled_projection(points_cam):
        return _project_compiled(points_cam, camera)
    z = points_cam[..., 2:3]
    if isinstance(camera, Intrinsics):
        f = torch.tensor([camera.fx, camera.fy], dtype=points_cam.dtype, device=points_cam.device)
        c = torch.tensor([camera.cx, camera.cy], dtype=points_cam.dtype, device=points_cam.device)
    elif isinstance(camera, Tensor) and camera.shape[-1] == 4:
        f, c = camera[..., :2], camera[..., 2:]
    else:
        raise TypeError(f"project_points: camera must be an Intrinsics or a [..., 4] tensor, got {type(camera).__name__}")
    return points_cam[..., :2] / z * f + c


def _compiled_projection(points_cam: Tensor) -> bool:
    """Whether `project_points` may run the compiled pass: [N, 3] float32 CPU points, no grad
    (differentiable calls take the torch formula)."""
    return (points_cam.ndim == 2 and points_cam.dtype == torch.float32 and points_cam.device.type == "cpu"
            and not (points_cam.requires_grad and torch.is_grad_enabled()))


def _project_compiled(points_cam: Tensor, camera: Intrinsics) -> Tensor:
    """`project_points` of [N, 3] float32 CPU points in one compiled pass: the same operations
    and roundings as the torch formula (bit-identical), without its four strided passes and
    temporaries (~4x faster on 20k points)."""
    from affectsynth.render._kernels.camera import project_pinhole  # noqa: PLC0415  (numba import is slow)

    out = torch.empty(points_cam.shape[0], 2, dtype=torch.float32)
    project_pinhole(points_cam.detach().numpy(), np.array([camera.fx, camera.fy], dtype=np.float32),
                    np.array([camera.cx, camera.cy], dtype=np.float32), out.numpy())
    return out


def clip_to_pixels(clip: Tensor, width: int, height: int) -> Tensor:
    """Clip coordinates -> continuous pixel coordinates of a W x H raster.

    Args:
        clip: [..., 4] homogeneous clip coordinates (w > 0).
        width: raster width W, pixels.
        height: raster height H, pixels.

    Returns:
        [..., 2] pixel coordinates (u, v) = ((x/w + 1) W / 2, (y/w + 1) H / 2).
    """
    if clip.shape[-1] != 4:
        raise ValueError(f"clip_to_pixels: clip must be [..., 4], got {list(clip.shape)}")
    ndc = clip[..., :2] / clip[..., 3:4]
    scale = torch.tensor([float(width), float(height)], dtype=clip.dtype, device=clip.device)
    return (ndc + 1.0) * 0.5 * scale


def pixels_to_ndc(pix: Tensor, width: int, height: int) -> Tensor:
    """Continuous pixel coordinates -> ndc x, y of a W x H raster (inverse of `clip_to_pixels`).

    Args:
        pix: [..., 2] pixel coordinates (u, v).
        width: raster width W.
        height: raster height H.

    Returns:
        [..., 2] ``(2 u / W - 1, 2 v / H - 1)``; also ``grid_sample``'s grid with
        ``align_corners=False``.
    """
    if pix.shape[-1] != 2:
        raise ValueError(f"pixels_to_ndc: pix must be [..., 2], got {list(pix.shape)}")
    scale = torch.tensor([float(width), float(height)], dtype=pix.dtype, device=pix.device)
    return pix * (2.0 / scale) - 1.0


def crop_intrinsics(
    fx: float, fy: float, cx: float, cy: float, window: tuple[int, int, int, int]
) -> tuple[float, float, float, float, int, int]:
    """Intrinsics for rendering only the window (x0, y0, w, h) of the photo at photo resolution.

    Args:
        fx: focal length x, pixels.
        fy: focal length y, pixels.
        cx: principal point x of the photo, pixels.
        cy: principal point y of the photo, pixels.
        window: (x0, y0, w, h) integer pixels; window pixel (u', v') = photo (u' + x0, v' + y0).

    Returns:
        (fx, fy, cx - x0, cy - y0, w, h): arguments for `projection_matrix`.

    Example:
        >>> crop_intrinsics(500.0, 500.0, 320.0, 240.0, (100, 50, 64, 32))
        (500.0, 500.0, 220.0, 190.0, 64, 32)
    """
    if len(window) != 4:
        raise ValueError(f"crop_intrinsics: window must be (x0, y0, w, h), got {window!r}")
    x0, y0, w, h = (int(a) for a in window)
    if w <= 0 or h <= 0:
        raise ValueError(f"crop_intrinsics: window size must be > 0, got {w} x {h}")
    return (fx, fy, cx - x0, cy - y0, w, h)
