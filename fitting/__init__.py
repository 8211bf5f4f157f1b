"""affectsynth.fitting: find faces and dense landmarks, fit the 3D morphable model.

Uses `affectsynth.blendshapes` (the expression basis type) and `affectsynth.render` only.
"""

from affectsynth.fitting.face_fit import FIT_SCHEMA_VERSION, Camera, FaceFit, pose_angles_deg, rotation_from_angles_deg
from affectsynth.fitting.face_model import DEFAULT_MODEL_PATH, FaceModel, LandmarkEmbedding
from affectsynth.fitting.fit import UNOBSERVABLE_EXPRESSIONS, FitSettings, fit_landmarks, project, reconstruct
from affectsynth.fitting.landmarks import (
    EYE_CORNERS, LandmarkDetector, Landmarks, MediaPipeDetector, TorchFaceDetector, detectors, get_detector,
)
from affectsynth.fitting.photo import detect_images, fit_each, fit_image, fit_images
from affectsynth.fitting.synthetic import SyntheticFace, aligned_error_mm, random_faces, silhouette_landmarks

__all__ = [
    "detect_images",
    "Camera",
    "EYE_CORNERS",
    "DEFAULT_MODEL_PATH",
    "FIT_SCHEMA_VERSION",
    "FaceFit",
    "FaceModel",
    "FitSettings",
    "LandmarkDetector",
    "LandmarkEmbedding",
    "Landmarks",
    "MediaPipeDetector",
    "UNOBSERVABLE_EXPRESSIONS",
    "aligned_error_mm",
    "detectors",
    "fit_each",
    "fit_image",
    "fit_images",
    "fit_landmarks",
    "get_detector",
    "pose_angles_deg",
    "project",
    "reconstruct",
    "random_faces",
    "rotation_from_angles_deg",
    "silhouette_landmarks",
    "SyntheticFace",
    "TorchFaceDetector",
]
