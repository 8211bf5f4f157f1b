"""MediaPipe's weighted non-maximum suppression of face detections (score-weighted box averaging)."""

from __future__ import annotations

import numpy as np
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


def weighted_nms(boxes: Tensor, scores: Tensor, *, iou_threshold: float = 0.3, max_detections: int | None = None
                 ) -> tuple[Tensor, Tensor]:
    """Weighted NMS as MediaPipe's `NonMaxSuppressionCalculator` (algorithm WEIGHTED).

    The best remaining detection absorbs every remaining detection overlapping it by more than
    `iou_threshold` (itself included); its box and keypoints become their score-weighted mean, its
    score stays its own.

    Args:
        boxes: [N, 4 + 2K] float32: (x0, y0, x1, y1) then K keypoints (x, y), any units.
        scores: [N] float32 scores.
        iou_threshold: the overlap above which a detection is absorbed.
        max_detections: stop after this many (the first ``max_detections`` of the full result, to
            the bit: each group depends only on those before it); None: all.

    Returns:
        (boxes [M, 4 + 2K], scores [M]) in descending score order.
    """
    if max_detections == 1 and len(scores):
        return _best_group(boxes, scores, iou_threshold)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, scores = boxes[order], scores[order]
    clusters = _clusters(boxes[:, :4].cpu().numpy(), iou_threshold, max_detections)
    if not clusters:
        return boxes.new_zeros((0, boxes.shape[1])), scores.new_zeros((0,))
    return _weighted_means(boxes, scores, clusters), scores[[int(m[0]) for m in clusters]]


def _best_group(boxes: Tensor, scores: Tensor, iou_threshold: float) -> tuple[Tensor, Tensor]:
    """`weighted_nms` with ``max_detections=1`` on a non-empty set, without sorting it: the best box
    (the first of the highest score, as the stable sort puts first) and the boxes it absorbs, summed
    in the sorted order (score descending, ties by index); each IoU is computed on its own, so the
    group and its weighted mean are the full path's."""
    box_np, score_np = boxes[:, :4].cpu().numpy(), scores.cpu().numpy()
    best = int(np.argmax(score_np))
    absorbed = _iou_np(box_np[best:best + 1], box_np)[0] > np.float32(iou_threshold)
    absorbed[best] = True
    members = np.flatnonzero(absorbed)
    members = members[np.argsort(-score_np[members], kind="stable")]
    return _weighted_means(boxes, scores, [members]), scores[[best]]


def _weighted_means(boxes: Tensor, scores: Tensor, clusters: list[np.ndarray]) -> Tensor:
    """[K, 4 + 2K'] score-weighted mean rows of the clusters, ``sum(box * w) / sum(w)`` each.

    Torch's own reductions as before, one cluster at a time, so the sums keep their order; the
    clusters of one box (most of them) go in one batch: their sum is ``0 + box * w`` (torch's sum
    starts at zero, which turns -0 into +0) over ``0 + w``, i.e. ``w``.
    """
    means: list[Tensor | None] = [None] * len(clusters)
    singles = [k for k, m in enumerate(clusters) if len(m) == 1]
    if singles:
        index = torch.tensor([int(clusters[k][0]) for k in singles], device=scores.device)
        w = scores[index, None]
        for k, row in zip(singles, (boxes[index] * w + 0.0) / w):
            means[k] = row
    for k, members in enumerate(clusters):
        if means[k] is None:
            index = torch.from_numpy(members).to(scores.device)
            w = scores[index, None]
            means[k] = (boxes[index] * w).sum(0) / w.sum()
    return torch.stack(means)


def _clusters(boxes: np.ndarray, iou_threshold: float, limit: int | None = None) -> list[np.ndarray]:
    """The groups of weighted NMS on [N, 4] float32 boxes in descending score order: each the
    indices (ascending, its best first) of the remaining boxes that the best remaining box absorbs;
    at most ``limit`` of them (None: all).

    In numpy, on the pairwise IoU matrix computed once: a few dozen boxes, for which torch's
    per-operation cost is most of the time. The IoU is `box_iou`'s float32 arithmetic, operation for
    operation, so the groups are the same. With a ``limit``, only the rows of the groups' best boxes
    (the same values: each entry is computed on its own).
    """
    threshold = np.float32(iou_threshold)  # as torch compares float32 with a Python float
    absorbs = _iou_np(boxes, boxes) > threshold if limit is None else None
    remaining = np.arange(len(boxes))
    out = []
    while remaining.size and (limit is None or len(out) < limit):
        best = remaining[0]
        row = absorbs[best] if absorbs is not None else _iou_np(boxes[best:best + 1], boxes)[0] > threshold
        absorbed = row[remaining]
        absorbed[0] = True
        out.append(remaining[absorbed])
        remaining = remaining[~absorbed]
    return out


def _iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] pairwise IoU of [N, 4] and [M, 4] float32 boxes, `box_iou`'s float32 operations in numpy."""
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    np.maximum(wh, np.float32(0), out=wh)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = (area_a[:, None] + area_b[None]) - inter
    with np.errstate(over="ignore", invalid="ignore"):  # only where the union is empty, which gives 0
        return np.where(union > 0, inter / np.maximum(union, np.float32(1e-12)), np.float32(0))
