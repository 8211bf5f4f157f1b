"""SSD anchor centres of MediaPipe's face detectors (`SsdAnchorsCalculator`, fixed anchor size)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ssd_anchors"]


def ssd_anchors(input_size: int, strides: tuple[int, ...], *, interpolated_scale_aspect_ratio: float = 1.0) -> Tensor:
    """Anchor centres in normalised input coordinates, in the order the network predicts them.

    Args:
        input_size: the square network input side in pixels (128 short range, 192 full range).
        strides: one stride per anchor layer; consecutive equal strides share one feature map.
        interpolated_scale_aspect_ratio: > 0 adds one anchor per layer (MediaPipe's option); the
            anchors of one cell differ only in scale, which fixed-size decoding ignores.

    Returns:
        [N, 2] float32 (x, y) centres in [0, 1]; boxes decode with anchor width = height = 1.

    Example:
        >>> ssd_anchors(128, (8, 16, 16, 16)).shape
        torch.Size([896, 2])
        >>> ssd_anchors(192, (4,), interpolated_scale_aspect_ratio=0.0).shape
        torch.Size([2304, 2])
    """
    if input_size <= 0 or not strides:
        raise ValueError(f"ssd_anchors: need input_size > 0 and at least one stride, got {input_size}, {strides}")
    out = []
    layer = 0
    while layer < len(strides):
        last = layer
        per_cell = 0
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 1 + (interpolated_scale_aspect_ratio > 0)
            last += 1
        side = math.ceil(input_size / strides[layer])
        ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        centres = (torch.stack([xs, ys], -1).reshape(-1, 1, 2).float() + 0.5) / side
        out.append(centres.expand(-1, per_cell, 2).reshape(-1, 2))
        layer = last
    return torch.cat(out)
