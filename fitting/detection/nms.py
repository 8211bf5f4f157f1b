"""MediaPipe's weighted non-maximum suppression of face detections (score-weighted box averaging)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["box_iou", "weighted_nms"]


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise intersection over union.

    Args:
        a: [N, 4] float32 boxes (x0, y0, x1, y1).
        b: [M, 4] float32 boxes (x0, y0, x1, y1).

    Returns:
        [N, M] float32 IoU; 0 where the union is empty.
    """
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def weighted_nms(boxes: Tensor, scores: Tensor, *, iou_threshold: float = 0.3) -> tuple[Tensor, Tensor]:
    """Weighted NMS as MediaPipe's `NonMaxSuppressionCalculator` (algorithm WEIGHTED).

    The best remaining detection absorbs every remaining detection overlapping it by more than
    `iou_threshold` (itself included); its box and keypoints become their score-weighted mean, its
    score stays its own.

    Args:
        boxes: [N, 4 + 2K] float32: (x0, y0, x1, y1) then K keypoints (x, y), any units.
        scores: [N] float32 scores.
        iou_threshold: the overlap above which a detection is absorbed.

    Returns:
        (boxes [M, 4 + 2K], scores [M]) in descending score order.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, scores = boxes[order], scores[order]
    kept_boxes, kept_scores = [], []
    remaining = torch.arange(len(scores), device=scores.device)
    while remaining.numel():
        top = remaining[0]
        iou = box_iou(boxes[top, None, :4], boxes[remaining, :4])[0]
        absorbed = iou > iou_threshold
        absorbed[0] = True
        members = remaining[absorbed]
        w = scores[members, None]
        kept_boxes.append((boxes[members] * w).sum(0) / w.sum())
        kept_scores.append(scores[top])
        remaining = remaining[~absorbed]
    if not kept_boxes:
        return boxes.new_zeros((0, boxes.shape[1])), scores.new_zeros((0,))
    return torch.stack(kept_boxes), torch.stack(kept_scores)
