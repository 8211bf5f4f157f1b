"""Facial landmarks: the `Landmarks` boundary type and the detectors that produce it.

Coordinates are continuous pixel coordinates (OpenCV convention): the image's top-left corner is
(0, 0) and the centre of pixel (row i, column j) is (j + 0.5, i + 0.5), i.e. MediaPipe's normalised
points times the image size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

__all__ = [
    "EYE_CORNERS",
    "Landmarks",
    "LandmarkDetector",
    "MediaPipeDetector",
    "detectors",
    "get_detector",
]


#: Outer eye corners (subject's right, subject's left) per layout: 300-W's inter-ocular distance.
EYE_CORNERS: dict[str, tuple[int, int]] = {"mediapipe468": (33, 263), "ibug68": (36, 45)}


@dataclass(frozen=True)
class Landmarks:
    """Landmarks of one face in one image.

    Attributes:
        points: [N, 2] float32 pixel coordinates (x, y), continuous image coordinates.
        kind: layout name: "mediapipe468" (MediaPipe face mesh order; 478 with iris points appended)
            or "ibug68" (iBUG / Multi-PIE 68-point order).
        bbox: (x0, y0, x1, y1) face box in pixels.
        depth: [N] float32 relative depth in pixels (MediaPipe's z times the image width), or None.
        score: detector confidence in [0, 1].
        detector: name of the detector that produced them.
    """

    points: np.ndarray
    kind: str
    bbox: tuple[float, float, float, float]
    depth: np.ndarray | None = None
    score: float = 1.0
    detector: str = "user"

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"Landmarks: points must be [N, 2], got {list(pts.shape)}")
        expected = {"mediapipe468": (468, 478), "ibug68": (68,)}
        if self.kind not in expected:
            raise ValueError(f"Landmarks: kind must be one of {sorted(expected)}, got {self.kind!r}")
        if pts.shape[0] not in expected[self.kind]:
            raise ValueError(f"Landmarks: kind {self.kind!r} needs {expected[self.kind]} points, got {pts.shape[0]}")
        if not np.isfinite(pts).all():
            raise ValueError("Landmarks: points contain NaN or inf")
        object.__setattr__(self, "points", pts)

    @classmethod
    def from_points(cls, points: np.ndarray, kind: str, **kwargs) -> "Landmarks":
        """User-supplied landmarks; the box is the points' bounding box."""
        pts = np.asarray(points, dtype=np.float32)
        box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
        return cls(points=pts, kind=kind, bbox=kwargs.pop("bbox", box), **kwargs)

    @property
    def size(self) -> float:
        """Face size in pixels: the geometric mean of the box's width and height."""
        x0, y0, x1, y1 = self.bbox
        return float(np.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0)))

    def eye_corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Outer eye corners (subject's right, subject's left), as in 300-W's inter-ocular distance."""
        idx = EYE_CORNERS[self.kind]
        return self.points[idx[0]], self.points[idx[1]]

    @property
    def interocular(self) -> float:
        """Distance between the outer eye corners in pixels."""
        a, b = self.eye_corners()
        return float(np.linalg.norm(a - b))


class LandmarkDetector(Protocol):
    """Anything that finds faces and their landmarks in an RGB uint8 image [H, W, 3]."""

    name: str

    def detect(self, image: np.ndarray) -> list[Landmarks]:
        """All faces in the image, largest first."""
        ...


@dataclass
class MediaPipeDetector:
    """MediaPipe face detection (full-range model) + face mesh with iris (478 points), offline.

    Faces are found by the full-range detector (small faces in group photos too), then each face crop
    (the box enlarged by `crop_scale`) goes through the face mesh. Where the detector finds nothing,
    the face mesh runs on the whole image as a fallback. The models ship inside the `mediapipe` wheel.

    Args:
        max_faces: at most this many faces (largest kept).
        min_confidence: detection score threshold.
        crop_scale: face box enlargement for the mesh crop.
        min_face_px: faces smaller than this (box side, pixels) are ignored: too small to fit.
        tile_min_side: photos whose longer side is at least this many pixels are also searched in
            overlapping 2x2 and 3x3 tiles with the short-range detector, which finds the medium-size
            faces of group photos that the full-range detector misses at its 192 px input.
    """

    max_faces: int = 32
    min_confidence: float = 0.5
    crop_scale: float = 1.8
    min_face_px: float = 24.0
    tile_min_side: int = 1000
    name: str = field(default="mediapipe", init=False)

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"MediaPipeDetector: max_faces must be >= 1, got {self.max_faces}")
        self._detector = self._detector_short = self._mesh = self._mesh_multi = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_detector"] = state["_mesh"] = state["_mesh_multi"] = state["_detector_short"] = None  # rebuilt lazily in the new process
        return state

    def _ensure(self) -> None:
        if self._mesh is not None:
            return
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import mediapipe as mp  # heavy: imported on first use only

        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.min_confidence
        )
        self._detector_short = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=self.min_confidence
        )
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
        )
        self._mesh_multi = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=self.max_faces, refine_landmarks=True, min_detection_confidence=0.5
        )

    def _boxes(self, image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        boxes = _detections(self._detector, image, 0, 0)
        h, w = image.shape[:2]
        if max(h, w) >= self.tile_min_side:
            for n in (2, 3):
                th, tw = int(np.ceil(h / n * 1.3)), int(np.ceil(w / n * 1.3))
                for ty in np.linspace(0, h - th, n).astype(int):
                    for tx in np.linspace(0, w - tw, n).astype(int):
                        tile = np.ascontiguousarray(image[ty:ty + th, tx:tx + tw])
                        boxes += _detections(self._detector_short, tile, tx, ty)
        kept: list[tuple[float, float, float, float, float]] = []
        for box in sorted(boxes, key=lambda b: -b[4]):
            if all(_iou(box, k) < 0.3 for k in kept):
                kept.append(box)
        return kept

    def _mesh_points(self, mesh, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        h, w = image.shape[:2]
        result = mesh.process(np.ascontiguousarray(image))
        out = []
        for face in result.multi_face_landmarks or []:
            arr = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            out.append((arr[:, :2] * np.array([w, h], np.float32), arr[:, 2] * w))
        return out

    def detect(self, image: np.ndarray) -> list[Landmarks]:
        """Detect faces and their 478 landmarks.

        Args:
            image: [H, W, 3] uint8 RGB.

        Returns:
            One `Landmarks` (kind "mediapipe468", 478 points) per face, largest first.
        """
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            got = getattr(image, "shape", type(image).__name__)
            raise ValueError(f"MediaPipeDetector.detect: expected an [H, W, 3] uint8 RGB array, got {got}")
        self._ensure()
        h, w = image.shape[:2]
        faces: list[Landmarks] = []
        for x0, y0, x1, y1, score in self._boxes(image):
            side = max(x1 - x0, y1 - y0)
            if side < self.min_face_px:
                continue
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            half = side * self.crop_scale / 2
            cx0, cy0 = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
            cx1, cy1 = int(min(w, np.ceil(cx + half))), int(min(h, np.ceil(cy + half)))
            crop = image[cy0:cy1, cx0:cx1]
            found = self._mesh_points(self._mesh, crop)
            if not found:
                continue
            pts, depth = found[0]
            pts = pts + np.array([cx0, cy0], np.float32)
            faces.append(self._make(pts, depth, score))
        if not faces:
            for pts, depth in self._mesh_points(self._mesh_multi, image):
                faces.append(self._make(pts, depth, 0.5))
        faces = _dedupe(faces)
        faces.sort(key=lambda f: -f.size)
        return faces[: self.max_faces]

    def _make(self, pts: np.ndarray, depth: np.ndarray, score: float) -> Landmarks:
        face = pts[:468]
        box = (float(face[:, 0].min()), float(face[:, 1].min()), float(face[:, 0].max()), float(face[:, 1].max()))
        return Landmarks(points=pts, kind="mediapipe468", bbox=box, depth=depth, score=score, detector=self.name)

    def close(self) -> None:
        for g in (self._detector, self._detector_short, self._mesh, self._mesh_multi):
            if g is not None:
                g.close()
        self._detector = self._detector_short = self._mesh = self._mesh_multi = None


def _detections(detector, image: np.ndarray, x0: int, y0: int) -> list[tuple[float, float, float, float, float]]:
    """Boxes (x0, y0, x1, y1, score) of one MediaPipe face detector run, shifted by (x0, y0)."""
    h, w = image.shape[:2]
    out = []
    for det in detector.process(image).detections or []:
        b = det.location_data.relative_bounding_box
        bx, by = b.xmin * w + x0, b.ymin * h + y0
        out.append((bx, by, bx + b.width * w, by + b.height * h, float(det.score[0])))
    return out


def _dedupe(faces: Sequence[Landmarks], iou_threshold: float = 0.5) -> list[Landmarks]:
    """Drop faces whose box overlaps a higher-scoring face's box (one face seen twice)."""
    kept: list[Landmarks] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(_iou(f.bbox, k.bbox) < iou_threshold for k in kept):
            kept.append(f)
    return kept


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


#: Registry of detector factories (plain dict, as trimesh's loaders).
detectors: dict[str, type] = {"mediapipe": MediaPipeDetector}


def get_detector(name: str = "mediapipe", **kwargs) -> LandmarkDetector:
    """Build a detector by name (see `detectors`)."""
    if name not in detectors:
        raise ValueError(f"get_detector: expected one of {sorted(detectors)}, got {name!r}")
    return detectors[name](**kwargs)
