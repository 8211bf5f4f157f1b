"""Fit every face of photos: detect landmarks (one batch for all photos where the detector can), then
the model fit: one batch across all faces (`fit_images`), or photo by photo (`fit_each`)."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from affectsynth.fitting.face_fit import Camera, FaceFit
from affectsynth.fitting.face_model import FaceModel
from affectsynth.fitting.fit import FitSettings, fit_landmarks
from affectsynth.fitting.landmarks import LandmarkDetector, Landmarks, get_detector

__all__ = ["detect_images", "fit_each", "fit_images", "fit_image"]


def detect_images(images: Sequence[np.ndarray], detector: LandmarkDetector, max_faces: int | None = None
                  ) -> tuple[list[list[Landmarks]], list[float]]:
    """Each photo's faces (at most ``max_faces``, largest first) and the detection time per photo (ms).

    With one torch thread (the batch engine's setting), a detector with ``detect_batch``
    (`TorchFaceDetector`) gets all photos at once: each network runs once per round for all of
    them, and each photo still gets what ``detect`` gives it alone, bit for bit; the batch's time
    is shared equally. With several threads torch's kernels split a batch's work by its size (the
    last bits would depend on the batch), and the threads already keep the cores busy on one
    photo: photo by photo then, as for other detectors.
    """
    batched = getattr(detector, "detect_batch", None)
    if batched is not None and len(images) > 1 and torch.get_num_threads() == 1:
        t0 = time.perf_counter()
        found = batched(list(images), max_faces=max_faces) if max_faces else batched(list(images))
        each_ms = (time.perf_counter() - t0) * 1000.0 / len(images)
        return [faces[:max_faces] if max_faces else faces for faces in found], [each_ms] * len(images)
    per_image: list[list[Landmarks]] = []
    detect_ms: list[float] = []
    for img in images:
        t0 = time.perf_counter()
        faces = detector.detect(img, max_faces=max_faces) if max_faces else detector.detect(img)
        detect_ms.append((time.perf_counter() - t0) * 1000.0)
        per_image.append(faces[:max_faces] if max_faces else faces)
    return per_image, detect_ms


def fit_images(
    images: Sequence[np.ndarray],
    *,
    model: FaceModel | None = None,
    detector: LandmarkDetector | None = None,
    settings: FitSettings | None = None,
    max_faces: int | None = None,
) -> list[list[FaceFit]]:
    """Detect and fit all faces of several photos; faces of all photos are fitted in one batch.

    The batched solver runs the same iterations as one face alone: with one torch thread a face
    gets the bits it gets alone; with several, torch's kernels split the batch's work by its size
    and a face's fit agrees with `fit_image`'s to a fraction of a degree, not to the bit
    (`fit_each` gives `fit_image`'s own on any thread count).

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
    return _fit(images, model, detector, settings, max_faces, together=True)


def fit_each(images: Sequence[np.ndarray], **kwargs) -> list[list[FaceFit]]:
    """`fit_image` of every photo, bit for bit; with one torch thread (the batch engine's setting)
    the detection (`detect_images`) and the fit of all their faces run in one batch each, which
    gives every face the bits it gets alone (`fit_landmarks`), else photo by photo.

    The batch engine's path: a photo's fits, and so its outputs, must not depend on which other
    photos shared its batch. Keyword arguments as for `fit_images`.
    """
    return _fit(images, kwargs.pop("model", None), kwargs.pop("detector", None), kwargs.pop("settings", None),
                kwargs.pop("max_faces", None), together=False, **kwargs)


def _fit(images: Sequence[np.ndarray], model: FaceModel | None, detector: LandmarkDetector | None,
         settings: FitSettings | None, max_faces: int | None, *, together: bool) -> list[list[FaceFit]]:
    """Detect (`detect_images`), then fit all faces in one batch (``together``) or photo by photo."""
    model = model or FaceModel.default()
    detector = detector or get_detector("mediapipe")
    settings = settings or FitSettings()
    per_image, detect_ms = detect_images(images, detector, max_faces)
    if together or torch.get_num_threads() == 1:  # one thread: each face's fit is its own alone (`fit_landmarks`)
        return _fit_detected(images, per_image, detect_ms, model, settings)
    return [_fit_detected([img], [faces], [ms], model, settings)[0]
            for img, faces, ms in zip(images, per_image, detect_ms)]


def _fit_detected(images: Sequence[np.ndarray], per_image: list[list[Landmarks]], detect_ms: list[float],
                  model: FaceModel, settings: FitSettings) -> list[list[FaceFit]]:
    """Fit the detected faces of the photos in one batch (per landmark layout); largest face first."""
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
