"""Faces and their 478 landmarks in whole photos: MediaPipe's detection + face mesh steps, batched.

The steps are those `MediaPipeDetector` ran through MediaPipe's legacy solutions: the full-range
detector on the photo (plus the short-range detector on 2x2 and 3x3 tiles of large photos), then,
per face, an enlarged square crop of the photo goes through MediaPipe's face mesh graph (short-range
detection inside the crop, eye-levelled 192 px crop, landmark network, projection back). Every
network runs once per stage for all images and faces of a call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from affectsynth.fitting.detection.blazeface import BlazeFace
from affectsynth.fitting.detection.face_mesh import INPUT_SIZE, FaceMesh, unproject
from affectsynth.fitting.detection.roi import crop_rects, rect_from_detection
from affectsynth.fitting.landmarks import box_overlap

__all__ = ["FacePipeline", "FaceResult", "PipelineSettings", "mesh_crop_box"]

#: MediaPipe's own score floors: the graphs' node options override the solution's threshold.
FULL_RANGE_MIN_SCORE = 0.6
SHORT_RANGE_MIN_SCORE = 0.5
#: `FaceMesh(min_detection_confidence=0.3)`, the detection inside each face crop.
CROP_MIN_SCORE = 0.3
#: Face-presence threshold of the landmark network (MediaPipe's `min_tracking_confidence`).
PRESENCE_MIN_SCORE = 0.5


@dataclass(frozen=True)
class PipelineSettings:
    """Options of `FacePipeline` (the fields of `MediaPipeDetector`, same defaults).

    Attributes:
        max_faces: at most this many faces per photo.
        min_confidence: detection score threshold (the models' own floors, 0.6 full range and
            0.5 short range, still apply, as in MediaPipe).
        crop_scale: face box enlargement for the mesh crop.
        min_face_px: faces whose box side is smaller (pixels) are skipped.
        tile_min_side: photos with a longer side of at least this many pixels are also searched in
            2x2 and 3x3 overlapping tiles with the short-range detector.
        optimize: on the CPU, trace and freeze the networks once (about 2x faster per call, a
            one-time cost of several seconds: worth it for many photos, not for one).
    """

    max_faces: int = 32
    min_confidence: float = 0.5
    crop_scale: float = 1.8
    min_face_px: float = 24.0
    tile_min_side: int = 1000
    optimize: bool = False

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"PipelineSettings: max_faces must be >= 1, got {self.max_faces}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"PipelineSettings: min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.crop_scale <= 0:
            raise ValueError(f"PipelineSettings: crop_scale must be > 0, got {self.crop_scale}")


@dataclass(frozen=True)
class FaceResult:
    """One face: 478 points in photo pixels.

    Attributes:
        points: [478, 2] float32 (x, y), continuous pixel coordinates.
        depth: [478] float32 relative depth in pixels.
        score: detection score in [0, 1].
    """

    points: np.ndarray
    depth: np.ndarray
    score: float


def mesh_crop_box(box: tuple[float, float, float, float], crop_scale: float, width: int, height: int
                  ) -> tuple[int, int, int, int]:
    """Integer pixel box (x0, y0, x1, y1) of the face-mesh crop around a detected face box: a square
    ``crop_scale`` x the box's longer side about its centre, clipped to the ``width`` x ``height`` photo."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) * crop_scale / 2
    return (int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half))),
            int(min(width, np.ceil(cx + half))), int(min(height, np.ceil(cy + half))))


class FacePipeline:
    """The torch face detector + face mesh, on one device.

    Args:
        settings: detection options.
        device: where the networks run ("cpu", "cuda", ...).
    """

    def __init__(self, settings: PipelineSettings | None = None, *, device: str | torch.device = "cpu"):
        self.settings = settings or PipelineSettings()
        self.device = torch.device(device)
        self.full = BlazeFace("full").to(self.device)
        self.short = BlazeFace("short").to(self.device)
        self.mesh = FaceMesh().to(self.device)
        if self.settings.optimize and self.device.type == "cpu":
            for net in (self.full, self.short, self.mesh):
                net.optimize_for_cpu_()

    def _boxes(self, images: list[Tensor]) -> list[list[tuple[float, float, float, float, float]]]:
        """Face boxes (x0, y0, x1, y1, score) per photo: full range, plus tiles of large photos."""
        s = self.settings
        full = self.full.detect(images, min_score=max(s.min_confidence, FULL_RANGE_MIN_SCORE))
        boxes = [[(*b.tolist(), float(sc)) for b, sc in zip(d.boxes, d.scores)] for d in full]
        tiles, owners = [], []
        for i, im in enumerate(images):
            h, w = im.shape[1:]
            if max(h, w) < s.tile_min_side:
                continue
            for n in (2, 3):
                th, tw = int(np.ceil(h / n * 1.3)), int(np.ceil(w / n * 1.3))
                for ty in np.linspace(0, h - th, n).astype(int):
                    for tx in np.linspace(0, w - tw, n).astype(int):
                        tiles.append(im[:, ty:ty + th, tx:tx + tw])
                        owners.append((i, float(tx), float(ty)))
        for (i, tx, ty), d in zip(owners, self.short.detect(tiles, min_score=max(s.min_confidence, SHORT_RANGE_MIN_SCORE))):
            boxes[i] += [(b[0] + tx, b[1] + ty, b[2] + tx, b[3] + ty, float(sc)) for b, sc in zip(d.boxes.tolist(), d.scores)]
        out = []
        for bs in boxes:
            kept: list[tuple[float, float, float, float, float]] = []
            for box in sorted(bs, key=lambda b: -b[4]):
                if all(box_overlap(box, k) < 0.3 for k in kept):
                    kept.append(box)
            out.append(kept)
        return out

    def _mesh_in(self, regions: list[Tensor], *, max_faces: int, min_score: float) -> list[list[np.ndarray]]:
        """MediaPipe's face mesh graph on image regions: [N, 478, 3] points (pixels of the region) per region."""
        found = self.short.detect(regions, min_score=min_score)
        rects, owners = [], []
        for r, d in enumerate(found):
            if len(d.scores):
                n = min(max_faces, len(d.scores))
                rects.append(rect_from_detection(d.boxes[:n], d.keypoints[:n]))
                owners += [r] * n
        out: list[list[np.ndarray]] = [[] for _ in regions]
        if not rects:
            return out
        rects_t = torch.cat(rects)
        crops = torch.cat([crop_rects(regions[r], rect[None], INPUT_SIZE) for r, rect in zip(owners, rects_t)]) / 255.0
        pts, presence = self.mesh(crops)
        pts = unproject(pts, rects_t).cpu().numpy()
        for k, r in enumerate(owners):
            if presence[k] >= PRESENCE_MIN_SCORE:
                out[r].append(pts[k])
        return out

    @torch.no_grad()
    def detect(self, images: list[np.ndarray]) -> list[list[FaceResult]]:
        """Faces of each photo.

        Args:
            images: photos [H, W, 3] uint8 RGB (checked by the caller).

        Returns:
            Per photo, its faces in detection order (not yet deduplicated or sorted).
        """
        s = self.settings
        tensors = [torch.from_numpy(np.array(im, copy=True)).to(self.device).permute(2, 0, 1) for im in images]
        boxes = self._boxes(tensors)
        regions, owners = [], []
        for i, (im, bs) in enumerate(zip(tensors, boxes)):
            h, w = im.shape[1:]
            for x0, y0, x1, y1, score in bs:
                side = max(x1 - x0, y1 - y0)
                if side < s.min_face_px:
                    continue
                cx0, cy0, cx1, cy1 = mesh_crop_box((x0, y0, x1, y1), s.crop_scale, w, h)
                if cx1 - cx0 < 2 or cy1 - cy0 < 2:
                    continue
                regions.append(im[:, cy0:cy1, cx0:cx1])
                owners.append((i, cx0, cy0, score))
        results: list[list[FaceResult]] = [[] for _ in images]
        for (i, ox, oy, score), faces in zip(owners, self._mesh_in(regions, max_faces=1, min_score=CROP_MIN_SCORE)):
            for p in faces[:1]:
                results[i].append(FaceResult((p[:, :2] + np.array([ox, oy], np.float32)).astype(np.float32),
                                             p[:, 2].astype(np.float32), score))
        empty = [i for i, r in enumerate(results) if not r]
        if empty:  # whole-photo face mesh where the detectors found nothing
            multi = self._mesh_in([tensors[i] for i in empty], max_faces=s.max_faces, min_score=SHORT_RANGE_MIN_SCORE)
            for i, faces in zip(empty, multi):
                results[i] = [FaceResult(p[:, :2].astype(np.float32), p[:, 2].astype(np.float32), 0.5) for p in faces]
        return results
