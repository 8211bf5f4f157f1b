"""MediaPipe's custom attention operators of the face landmark model, batched in torch.

Semantics follow MediaPipe's TFLite custom ops (version 2): `Landmarks2TransformMatrix` builds a
crop matrix around a landmark subset (rotated so that two landmarks are level),
`TransformTensorBilinear` samples a feature map through that matrix, `TransformLandmarks` maps
landmarks found in the crop back. Matrices are [B, 4, 4] row-major and map crop pixels (x, y, 0, 1)
to feature-map pixels.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LandmarksToMatrix", "TransformTensorBilinear", "TransformLandmarks"]


def _rot(angle: Tensor) -> Tensor:
    """[B, 2, 2] rotation matrices [[cos, -sin], [sin, cos]]."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


class LandmarksToMatrix(nn.Module):
    """Crop matrix around a landmark subset (MediaPipe `Landmarks2TransformMatrix` v2).

    Args:
        subset: landmark indices whose rotated bounding box is the crop.
        left: index of the landmark that sets the rotation's start.
        right: index of the landmark that sets the rotation's end.
        target_rotation: angle in radians the left -> right vector is rotated to.
        out_size: (height, width) of the crop in pixels.
        scale: (x, y) enlargement of the bounding box.
    """

    def __init__(self, subset: list[int], left: int, right: int, target_rotation: float,
                 out_size: tuple[int, int], scale: tuple[float, float]):
        super().__init__()
        self.register_buffer("subset", torch.tensor(sorted(set(subset)), dtype=torch.long), persistent=False)
        self.left, self.right, self.target = left, right, target_rotation
        self.out_h, self.out_w = out_size
        self.scale_x, self.scale_y = scale

    def forward(self, landmarks: Tensor) -> Tensor:
        """Build the matrices.

        Args:
            landmarks: [B, N, 3] float32 landmarks in feature-map pixels.

        Returns:
            [B, 4, 4] float32 matrices: crop pixel (x, y, 0, 1) -> feature-map pixel.
        """
        d = landmarks[:, self.right, :2] - landmarks[:, self.left, :2]  # (rx - lx, ry - ly) in one op
        r = self.target - torch.atan2(d[:, 1], d[:, 0])
        pts = landmarks[:, self.subset, :2]  # [B, S, 2]
        rotated = pts @ _rot(r).transpose(1, 2)
        lo, hi = rotated.min(1).values, rotated.max(1).values
        size = hi - lo  # [B, 2] width, height
        centre = (((lo + hi) / 2)[:, None] @ _rot(-r).transpose(1, 2))[:, 0]
        scale = torch.stack([self.scale_x * size[:, 0] / self.out_w, self.scale_y * size[:, 1] / self.out_h], -1)
        lin = _rot(-r) * scale[:, None, :]  # rotation @ diag(scale)
        shift = _crop_shift(self.out_w, self.out_h, landmarks.dtype, landmarks.device)
        trans = centre + (lin @ shift)[..., 0]
        out = torch.zeros(landmarks.shape[0], 4, 4, dtype=landmarks.dtype, device=landmarks.device)
        out[:, :2, :2] = lin
        out[:, :2, 3] = trans
        out[:, 2, 2] = 1.0
        out[:, 3, 3] = 1.0
        return out


@functools.lru_cache(maxsize=16)
def _crop_shift(width: int, height: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[1, 2, 1] (-width / 2, -height / 2): the crop centre's offset, as a column for the matrix
    product (cached per crop size: callers only read it)."""
    return torch.tensor([-width / 2.0, -height / 2.0], dtype=dtype, device=device)[None, :, None]


@functools.lru_cache(maxsize=16)
def _pixel_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[1, height * width, 2] (x, y) pixel indices of a crop, row-major (cached: every call of a
    crop size uses the same ones; callers only read it)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                            torch.arange(width, dtype=dtype, device=device), indexing="ij")
    return torch.stack([xs, ys], -1).reshape(1, -1, 2)


class TransformTensorBilinear(nn.Module):
    """Sample a feature map through crop matrices (MediaPipe `TransformTensorBilinear` v2).

    Args:
        size: (height, width) of the output crop.

    Note:
        A crop pixel whose sample point falls outside [0, W - 1] x [0, H - 1] is zero; inside, reads
        beyond the border count as zero (as MediaPipe's kernel).
    """

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.size = size

    def forward(self, features: Tensor, matrix: Tensor) -> Tensor:
        """Crop.

        Args:
            features: [B, C, H, W] float32 feature map.
            matrix: [B, 4, 4] float32 from `LandmarksToMatrix`.

        Returns:
            [B, C, h, w] float32 crops.
        """
        b, _, h, w = features.shape
        oh, ow = self.size
        m = matrix[:, :2, :].clone()
        m[:, :, 3] = m[:, :, 3] + m[:, :, 0] * 0.5 + m[:, :, 1] * 0.5 - 0.5
        grid = _pixel_grid(oh, ow, features.dtype, features.device)  # [1, P, 2]
        tc = grid @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 3]  # [B, P, 2] feature-map pixels
        inside = (tc[..., 0] >= 0) & (tc[..., 0] <= w - 1) & (tc[..., 1] >= 0) & (tc[..., 1] <= h - 1)
        norm = torch.stack([tc[..., 0] * (2.0 / (w - 1)) - 1.0, tc[..., 1] * (2.0 / (h - 1)) - 1.0], -1)
        out = F.grid_sample(features, norm.reshape(b, oh, ow, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
        return out * inside.reshape(b, 1, oh, ow).to(out.dtype)


class TransformLandmarks(nn.Module):
    """Map 2-D landmarks through matrices (MediaPipe `TransformLandmarks` v2, 2 dimensions)."""

    def forward(self, landmarks: Tensor, matrix: Tensor) -> Tensor:
        """Transform.

        Args:
            landmarks: [B, N, 2] float32 points.
            matrix: [B, 4, 4] float32.

        Returns:
            [B, N, 2] float32: (m00 x + m01 y + m03, m10 x + m11 y + m13).
        """
        return landmarks @ matrix[:, :2, :2].transpose(1, 2) + matrix[:, None, :2, 3]
