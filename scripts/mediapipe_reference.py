"""The pre-port detector, on MediaPipe's own graphs: the parity reference for the torch port (dev only).

Needs `pip install -e '.[parity]'` (mediapipe==0.10.21, which pins numpy < 2). The runtime never
imports this module; `scripts/record_detection_reference.py`, `scripts/bench_detect.py` and the
optional live parity test do. Same steps and options as `affectsynth.fitting.TorchFaceDetector`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from affectsynth.fitting.detection.pipeline import mesh_crop_box
from affectsynth.fitting.landmarks import Landmarks, _dedupe, box_overlap

__all__ = ["ReferenceMediaPipeDetector"]


@dataclass
class ReferenceMediaPipeDetector:
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
    name: str = field(default="mediapipe-reference", init=False)

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"ReferenceMediaPipeDetector: max_faces must be >= 1, got {self.max_faces}")
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
            if all(box_overlap(box, k) < 0.3 for k in kept):
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
            raise ValueError(f"ReferenceMediaPipeDetector.detect: expected an [H, W, 3] uint8 RGB array, got {got}")
        self._ensure()
        h, w = image.shape[:2]
        faces: list[Landmarks] = []
        for x0, y0, x1, y1, score in self._boxes(image):
            side = max(x1 - x0, y1 - y0)
            if side < self.min_face_px:
                continue
            cx0, cy0, cx1, cy1 = mesh_crop_box((x0, y0, x1, y1), self.crop_scale, w, h)
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
