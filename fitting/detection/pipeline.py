"""Faces and their 478 landmarks in whole photos: MediaPipe's detection + face mesh steps, batched.

The steps are those `MediaPipeDetector` ran through MediaPipe's legacy solutions: the full-range
detector on the photo (plus the short-range detector on 2x2 and 3x3 tiles of large photos), then,
per face, an enlarged square crop of the photo goes through MediaPipe's face mesh graph (short-range
detection inside the crop, eye-levelled 192 px crop, landmark network, projection back). Every
network runs once per stage for all images and faces of a call. `TorchFaceDetector` chooses which
candidates (`candidates`) go through the face mesh (`locate`, then `mesh_located`) and when the
whole-photo fallback (`whole_photo`) runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from affectsynth.fitting.detection.blazeface import BlazeFace
from affectsynth.fitting.detection.face_mesh import INPUT_SIZE, FaceMesh, unproject
from affectsynth.fitting.detection.graph import empty_input
from affectsynth.fitting.detection.roi import crop_rects, rect_from_detection
from affectsynth.fitting.landmarks import box_overlap

__all__ = ["FaceCandidate", "FacePipeline", "FaceResult", "LocatedFace", "PipelineSettings", "mesh_crop_box"]

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
class FaceCandidate:
    """A face the detectors found, before the face mesh.

    Attributes:
        box: (x0, y0, x1, y1) detector box in photo pixels.
        score: detection score in [0, 1].
        crop: integer (x0, y0, x1, y1) of its face-mesh crop (`mesh_crop_box`).
    """

    box: tuple[float, float, float, float]
    score: float
    crop: tuple[int, int, int, int]

    @property
    def area(self) -> float:
        """Area of the detector box in square pixels."""
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


@dataclass(frozen=True)
class LocatedFace:
    """A candidate's face as the short-range detector sees it inside the candidate's crop.

    Attributes:
        rect: [1, 5] face-mesh rect (centre x, y, width, height in crop pixels; rotation, radians).
        area: area of that detector box in square pixels.
        keypoints: [6, 2] float32 detector keypoints in crop pixels (as `Detections.keypoints`),
            or None where unknown.
    """

    rect: Tensor
    area: float
    keypoints: np.ndarray | None = None


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
        return self._mesh_rects(regions, rects, owners)

    def _mesh_rects(self, regions: list[Tensor], rects: list[Tensor], owners: list[int]) -> list[list[np.ndarray]]:
        """The landmark network on rects ([n, 5] each, pixels of region ``owners[k]`` for the k-th row of
        all rects): per region, the [478, 3] points of its faces that pass the presence check."""
        out: list[list[np.ndarray]] = [[] for _ in regions]
        if not rects:
            return out
        rects_t = torch.cat(rects)
        pts, presence = self.mesh(_mesh_crops(regions, rects_t, owners))
        pts = unproject(pts, rects_t).cpu().numpy()
        for k, r in enumerate(owners):
            if presence[k] >= PRESENCE_MIN_SCORE:
                out[r].append(pts[k])
        return out

    def tensors(self, images: list[np.ndarray]) -> list[Tensor]:
        """The photos as [3, H, W] tensors on the pipeline's device (copies: the caller's arrays stay
        untouched): uint8, or float32 holding 0..255 for large photos (see `_as_float`)."""
        out = []
        for im in images:
            t = torch.from_numpy(np.array(im, copy=True)).to(self.device).permute(2, 0, 1)
            out.append(t.to(torch.float32) if self._as_float(t) else t)
        return out

    def _as_float(self, photo: Tensor) -> bool:
        """Whether a photo is kept in float32: one that is tiled (longer side >= `tile_min_side`).

        Every crop (`crop_rects`) samples a float image and converts its uint8 source in full: the
        letterbox the photo, each of the 13 tiles and the face crops their part of it, a fresh buffer
        each time (a 2 Mpx photo: about 5 photos' worth, page faults included). Converted once, they
        are float views of it (same values, channels interleaved as the conversion kept them). A
        small photo is better left uint8: the small copy each crop makes is still in the caches
        when it is sampled, the photo's float copy would not be.
        """
        return max(photo.shape[1:]) >= self.settings.tile_min_side

    @torch.no_grad()
    def candidates(self, tensors: list[Tensor]) -> list[list[FaceCandidate]]:
        """Per photo, the detectors' faces that are worth a face mesh (box side at least `min_face_px`,
        a crop of at least 2 px), in detection order (highest score first)."""
        s = self.settings
        out: list[list[FaceCandidate]] = []
        for im, bs in zip(tensors, self._boxes(tensors)):
            h, w = im.shape[1:]
            kept = []
            for x0, y0, x1, y1, score in bs:
                if max(x1 - x0, y1 - y0) < s.min_face_px:
                    continue
                crop = mesh_crop_box((x0, y0, x1, y1), s.crop_scale, w, h)
                if crop[2] - crop[0] >= 2 and crop[3] - crop[1] >= 2:
                    kept.append(FaceCandidate((x0, y0, x1, y1), score, crop))
            out.append(kept)
        return out

    def _regions(self, tensors: list[Tensor], picks: list[tuple[int, FaceCandidate]]) -> list[Tensor]:
        """The face-mesh crops of candidates (photo index, candidate), views of the photos."""
        return [tensors[i][:, c.crop[1]:c.crop[3], c.crop[0]:c.crop[2]] for i, c in picks]

    @torch.no_grad()
    def locate(self, tensors: list[Tensor], picks: list[tuple[int, FaceCandidate]]) -> list[LocatedFace | None]:
        """The first step of the face mesh graph on candidates (photo index, candidate): the
        short-range detection inside each crop, None where it finds no face. Cheaper than the
        landmark network, and its box predicts the landmark box far better than the photo's."""
        located: list[LocatedFace | None] = []
        for d in self.short.detect(self._regions(tensors, picks), min_score=CROP_MIN_SCORE, max_detections=1):
            if not len(d.scores):
                located.append(None)
                continue
            x0, y0, x1, y1 = d.boxes[0].tolist()
            located.append(LocatedFace(rect_from_detection(d.boxes[:1], d.keypoints[:1]), (x1 - x0) * (y1 - y0),
                                       d.keypoints[0].cpu().numpy()))
        return located

    @torch.no_grad()
    def mesh_located(self, tensors: list[Tensor], picks: list[tuple[int, FaceCandidate, LocatedFace]]) -> list[FaceResult | None]:
        """The rest of the face mesh graph on located candidates (photo index, candidate, `locate`'s
        face): one result each, None where the presence score is too low."""
        regions = self._regions(tensors, [(i, c) for i, c, _ in picks])
        meshed = self._mesh_rects(regions, [located.rect for _, _, located in picks], list(range(len(picks))))
        results: list[FaceResult | None] = []
        for (_, c, _), faces in zip(picks, meshed):
            p = faces[0] if faces else None
            results.append(None if p is None else FaceResult(
                (p[:, :2] + np.array(c.crop[:2], np.float32)).astype(np.float32), p[:, 2].astype(np.float32), c.score))
        return results

    @torch.no_grad()
    def mesh_coarse(self, tensors: list[Tensor], picks: list[tuple[int, FaceCandidate, LocatedFace]]) -> list[np.ndarray]:
        """The landmark network without its lips and eyes refinement (`FaceMesh.coarse`) on located
        candidates (photo index, candidate, `locate`'s face): per pick, its [468, 2] float32 unrefined
        points in photo pixels, whatever the presence score. About half the cost of `mesh_located`:
        the points a search needs to bound a face's landmark box."""
        if not picks:
            return []
        regions = self._regions(tensors, [(i, c) for i, c, _ in picks])
        rects = torch.cat([located.rect for _, _, located in picks])
        pts, _ = self.mesh.coarse(_mesh_crops(regions, rects, list(range(len(picks)))))
        pts = unproject(pts, rects).cpu().numpy()
        return [(p[:, :2] + np.array(c.crop[:2], np.float32)).astype(np.float32) for (_, c, _), p in zip(picks, pts)]

    @torch.no_grad()
    def whole_photo(self, tensors: list[Tensor]) -> list[list[FaceResult]]:
        """MediaPipe's fallback where the detectors found no face: the face mesh graph on whole photos."""
        multi = self._mesh_in(tensors, max_faces=self.settings.max_faces, min_score=SHORT_RANGE_MIN_SCORE)
        return [[FaceResult(p[:, :2].astype(np.float32), p[:, 2].astype(np.float32), 0.5) for p in faces] for faces in multi]


def _mesh_crops(regions: list[Tensor], rects: Tensor, owners: list[int]) -> Tensor:
    """[N, 3, 192, 192] landmark-network inputs in [0, 1]: row k of ``rects`` ([N, 5], pixels of region
    ``owners[k]``) cropped from its region."""
    crops = [crop_rects(regions[r], rect[None], INPUT_SIZE) for r, rect in zip(owners, rects)]
    batch = crops[0] if len(crops) == 1 else torch.cat(crops)
    return empty_input(batch).copy_(batch).div_(255.0)  # scaled in the network's layout (one copy to it)
