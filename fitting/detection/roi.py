"""Rotated regions of interest: face rect from a detection, and the crop that feeds a network.

A rect is [..., 5] float32 (x_centre, y_centre, width, height, rotation) in pixels of the image
it lies in (continuous coordinates, as MediaPipe's normalised rects times the image size),
rotation in radians (clockwise on screen, y down). Sampling follows MediaPipe's CPU
`ImageToTensorCalculator`: output pixel (u, v) of an S x S crop reads the image at OpenCV pixel
index centre + R(rotation) ((u / S - 0.5) width, (v / S - 0.5) height), bilinearly, on a 1/32-pixel
grid, rounded to uint8 before scaling to the network's value range.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["crop_rects", "letterbox_rect", "rect_from_detection"]


def letterbox_rect(height: int, width: int) -> Tensor:
    """The whole image padded to a square (MediaPipe's `keep_aspect_ratio` letterbox).

    Args:
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        [5] float32 rect centred on the image, side max(height, width), no rotation.
    """
    side = float(max(height, width))
    return torch.tensor([width / 2.0, height / 2.0, side, side, 0.0])


def rect_from_detection(boxes: Tensor, keypoints: Tensor, *, scale: float = 1.5) -> Tensor:
    """Face-landmark rect from detections (MediaPipe `FaceDetectionFrontDetectionToRoi`).

    The box centre, turned so that the eye keypoints (0: subject's right eye, 1: left eye) are
    level, squared on its long side and enlarged by `scale`.

    Args:
        boxes: [N, 4] float32 (x0, y0, x1, y1) in pixels.
        keypoints: [N, K, 2] float32 detector keypoints in pixels, K >= 2.
        scale: enlargement of the square side.

    Returns:
        [N, 5] float32 rects (pixels, radians).
    """
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = (boxes[:, 2:] - boxes[:, :2]).amax(-1, keepdim=True) * scale
    d = keypoints[:, 1] - keypoints[:, 0]
    rot = -torch.atan2(-d[:, 1], d[:, 0])
    rot = rot - 2 * math.pi * torch.floor((rot + math.pi) / (2 * math.pi))  # [-pi, pi)
    return torch.cat([centre, size, size, rot[:, None]], -1)


def crop_rects(image: Tensor, rects: Tensor, size: int, *, border: str = "replicate") -> Tensor:
    """Sample square crops of one image through rotated rects, as MediaPipe feeds its networks.

    Args:
        image: [3, H, W] uint8 (or float holding 0..255) RGB image.
        rects: [N, 5] float32 rects in this image's pixels.
        size: output side S in pixels.
        border: "replicate" (edge pixels repeat) or "zero" (black outside the image).

    Returns:
        [N, 3, S, S] float32 crops holding whole numbers 0..255 (uint8 rounding, as MediaPipe).

    Raises:
        ValueError: wrong shapes or an unknown border.
    """
    if image.ndim != 3 or image.shape[0] != 3 or rects.ndim != 2 or rects.shape[1] != 5:
        raise ValueError(f"crop_rects: expected image [3, H, W] and rects [N, 5], got {list(image.shape)}, {list(rects.shape)}")
    if border not in ("replicate", "zero"):
        raise ValueError(f"crop_rects: border must be 'replicate' or 'zero', got {border!r}")
    h, w = image.shape[1:]
    grid = _sample_grid(rects, size, h, w)
    src = image.to(torch.float32)[None].expand(rects.shape[0], -1, -1, -1)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border" if border == "replicate" else "zeros",
                        align_corners=True)
    return out.round_().clamp_(0, 255)


@functools.lru_cache(maxsize=16)
def _unit_offsets(size: int, device: torch.device) -> Tensor:
    """[S] float64 offsets u / S - 0.5 of an S-pixel crop's samples from its centre, in crop sides
    (cached: every crop of a network's input size uses the same ones)."""
    return torch.arange(size, device=device, dtype=torch.float64) / size - 0.5


@functools.lru_cache(maxsize=16)
def _unit_offsets_np(size: int) -> np.ndarray:
    """`_unit_offsets` on the CPU as a read-only numpy array (the same values)."""
    out = _unit_offsets(size, torch.device("cpu")).numpy()
    out.flags.writeable = False
    return out


def _snap_and_normalise(xp, coord, extent: int):
    """Float64 pixel coordinates, in place: onto OpenCV's 1/32-pixel remap grid, then to grid_sample's
    [-1, 1] (align_corners) over an axis of ``extent`` pixels. ``xp``: the array module of ``coord``
    (torch or numpy: the same IEEE operations, one rounding each).

    ``(round(32 x) / 32) * k`` is computed as ``round(32 x) * (k / 32)``, one pass less: dividing an
    integer-valued float64 by 32 and scaling ``k`` by 1/32 are both exact, so the one rounding of
    the product is the same. Rounding is half to even in both modules.
    """
    coord *= 32
    xp.round(coord, out=coord)
    coord *= (2.0 / max(extent - 1, 1)) / 32
    coord -= 1.0
    return coord


def _sample_grid(rects: Tensor, size: int, h: int, w: int) -> Tensor:
    """[N, S, S, 2] float32 grid_sample grid of `crop_rects` for an h x w image.

    Output pixel (u, v) reads x = (c lx_u - s ly_v) + x_c, y = (s lx_u + c ly_v) + y_c (lx_u, ly_v: the
    pixel's offsets from the centre along the rect's axes), all in float64. Each product depends on u
    or on v only, so it is computed on [N, S] vectors and only the sums on the S x S grid; a rect
    without rotation (sin exactly 0: the letterbox, the crops of a detection's square) keeps x a
    function of u and y of v, and its grid is two vectors broadcast. The operations, their order and
    their float64 rounding are those of the per-pixel formula, so the grid is the same to the bit.

    On the CPU the grid is computed in numpy (each op costs a few microseconds less than torch's,
    and a grid is a dozen of them); the cosine and sine stay torch's, whose values the grid is
    defined by.
    """
    r = rects.to(torch.float64)
    c, s = torch.cos(r[:, 4, None]), torch.sin(r[:, 4, None])  # [N, 1]
    unrotated = bool((s == 0).all()) and bool(torch.isfinite(r).all())
    if rects.device.type == "cpu":
        grid = _grid_from(np, _unit_offsets_np(size), r.numpy(), c.numpy(), s.numpy(), unrotated, size, h, w)
        return torch.from_numpy(grid)
    return _grid_from(torch, _unit_offsets(size, rects.device), r, c, s, unrotated, size, h, w)


def _grid_from(xp, t, r, c, s, unrotated: bool, size: int, h: int, w: int):
    """`_sample_grid`'s formula in the array module ``xp`` (torch or numpy) on its float64 operands:
    offsets ``t`` [S], rects ``r`` [N, 5], their cosines and sines ``c``, ``s`` [N, 1]."""
    lx, ly = t * r[:, 2, None], t * r[:, 3, None]  # [N, S]: along u (columns), along v (rows)
    x0, x1 = (c * lx)[:, None, :], (s * ly)[:, :, None]
    y0, y1 = (s * lx)[:, None, :], (c * ly)[:, :, None]
    n = r.shape[0]
    if xp is np:
        grid = np.empty((n, size, size, 2), dtype=np.float32)
    else:
        grid = torch.empty(n, size, size, 2, dtype=torch.float32, device=r.device)
    if unrotated:
        # c lx_u - (+-0) is c lx_u but for the sign of a zero, which +x_c, the snap and normalisation
        # turn into the same grid value; likewise (+-0) + c ly_v for y
        x = _snap_and_normalise(xp, x0 + r[:, 0, None, None], w)  # [N, 1, S]
        y = _snap_and_normalise(xp, y1 + r[:, 1, None, None], h)  # [N, S, 1]
    else:
        x = x0 - x1
        x += r[:, 0, None, None]
        x = _snap_and_normalise(xp, x, w)  # [N, S, S]
        y = y0 + y1
        y += r[:, 1, None, None]
        y = _snap_and_normalise(xp, y, h)
    grid[..., 0] = x  # broadcast where unrotated; float64 -> float32, rounded to nearest
    grid[..., 1] = y
    return grid
