"""Rotated regions of interest: face rect from a detection, and the crop that feeds a network.

A rect is [..., 5] float32 (x_centre, y_centre, width, height, rotation) in pixels of the image
it lies in (continuous coordinates, as MediaPipe's normalised rects times the image size),
rotation in radians (clockwise on screen, y down). Sampling follows MediaPipe's CPU
`ImageToTensorCalculator`: output pixel (u, v) of an S x S crop reads the image at OpenCV pixel
index centre + R(rotation) ((u / S - 0.5) width, (v / S - 0.5) height), bilinearly, on a 1/32-pixel
grid, rounded to uint8 before scaling to the network's value range.
"""

from __future__ import annotations

import math

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
    n = rects.shape[0]
    dev = image.device
    t = (torch.arange(size, device=dev, dtype=torch.float64) / size - 0.5)
    local_y, local_x = torch.meshgrid(t, t, indexing="ij")  # [S, S]
    r = rects.to(torch.float64)
    c, s = torch.cos(r[:, 4]), torch.sin(r[:, 4])
    lx = local_x[None] * r[:, 2, None, None]
    ly = local_y[None] * r[:, 3, None, None]
    x = c[:, None, None] * lx - s[:, None, None] * ly + r[:, 0, None, None]
    y = s[:, None, None] * lx + c[:, None, None] * ly + r[:, 1, None, None]
    x, y = torch.round(x * 32) / 32, torch.round(y * 32) / 32  # OpenCV's 1/32-pixel remap grid
    gx = x * (2.0 / max(w - 1, 1)) - 1.0
    gy = y * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], -1).to(torch.float32)
    src = image.to(torch.float32)[None].expand(n, -1, -1, -1)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border" if border == "replicate" else "zeros",
                        align_corners=True)
    return torch.round(out).clamp(0, 255)
