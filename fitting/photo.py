"""Fit every face of photos: detect landmarks, then one batched model fit across all faces."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from affectsynth.fitting.face_fit import Camera, FaceFit
from affectsynth.fitting.face_model import FaceModel
from affectsynth.fitting.fit import FitSettings, fit_landmarks
from affectsynth.fitting.landmarks import LandmarkDetector, Landmarks, get_detector

__all__ = ["fit_images", "fit_image"]


def fit_images(
    images: Sequence[np.ndarray],
    *,
    model: FaceModel | None = None,
    detector: LandmarkDetector | None = None,
    settings: FitSettings | None = None,
    max_faces: int | None = None,
) -> list[list[FaceFit]]:
    """Detect and fit all faces of several photos; faces of all photos are fitted in one batch.

    Args:
        images: RGB uint8 arrays [H, W, 3].
        model: face model (default: `FaceModel.default()`).
        detector: landmark detector (default: MediaPipe).
        settings: fitter settings.
        max_faces: keep at most this many faces per photo (largest first); the detector is asked
            for only these (`LandmarkDetector.detect`'s ``max_faces``), so that it meshes and
            the fitter fits only them: ``max_faces=1`` is the fast way to the largest face.

    Returns:
        Per photo, its fits, largest face first (an empty list when no face was found).
    """
    model = model or FaceModel.default()
    detector = detector or get_detector("mediapipe")
    settings = settings or FitSettings()
    per_image: list[list[Landmarks]] = []
    detect_ms: list[float] = []
    for img in images:
        t0 = time.perf_counter()
        faces = detector.detect(img, max_faces=max_faces) if max_faces else detector.detect(img)
        detect_ms.append((time.perf_counter() - t0) * 1000.0)
        per_image.append(faces[:max_faces] if max_faces else faces)
    flat = [(i, lm) for i, faces in enumerate(per_image) for lm in faces]
    out: list[list[FaceFit]] = [[] for _ in images]
    by_kind: dict[str, list[tuple[int, Landmarks]]] = {}
    for i, lm in flat:
        by_kind.setdefault(lm.kind, []).append((i, lm))
    for items in by_kind.values():
        cams = [Camera.from_fov(images[i].shape[1], images[i].shape[0], diagonal_fov_deg=settings.diagonal_fov_deg) for i, _ in items]
        fits = fit_landmarks(
            model, [lm for _, lm in items], cams, settings=settings, detect_ms=[detect_ms[i] for i, _ in items]
        )
        for (i, _), f in zip(items, fits):
            out[i].append(f)
    for fits in out:
        fits.sort(key=lambda f: -(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    return out


def fit_image(image: np.ndarray, **kwargs) -> list[FaceFit]:
    """Detect and fit all faces of one photo, largest first (see `fit_images`)."""
    return fit_images([image], **kwargs)[0]
