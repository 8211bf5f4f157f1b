"""Synthetic faces drawn from the model, with their projected landmarks: ground truth for fitter tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from affectsynth.fitting.face_fit import Camera, rotation_from_angles_deg
from affectsynth.fitting.face_model import FaceModel
from affectsynth.fitting.fit import UNOBSERVABLE_EXPRESSIONS, silhouette_pick
from affectsynth.render.camera import project_points
from affectsynth.fitting.landmarks import Landmarks

__all__ = ["SyntheticFace", "aligned_error_mm", "random_faces", "silhouette_landmarks"]


@dataclass(frozen=True)
class SyntheticFace:
    """One random face: its true parameters and the noisy landmarks it projects to."""

    identity: Tensor  # [K]
    expression: Tensor  # [S]
    rotation: Tensor  # [3, 3] model -> camera
    translation: Tensor  # [3] cm
    camera: Camera
    landmarks: Landmarks
    pose_deg: tuple[float, float, float]


def silhouette_landmarks(model: FaceModel, vertices: Tensor, rotation: Tensor, translation: Tensor, camera: Camera, kind: str) -> Tensor:
    """Exact projected landmarks of a mesh, contour landmarks on its true silhouette.

    Args:
        vertices: [V, 3] model-space vertices.
        rotation, translation: model -> camera.

    Returns:
        [N, 2] pixel coordinates.
    """
    emb = model.embedding(kind)
    pts = model.landmark_points(vertices[None], kind)[0] @ rotation.T + translation
    pix = project_points(pts, camera)
    ci = torch.nonzero(emb.is_contour).flatten()
    if ci.numel():
        cand = emb.contour_bands[ci]
        safe = cand.clamp_min(0)
        from affectsynth.render.mesh import vertex_normals

        normals = vertex_normals(vertices, model.triangles)[safe] @ rotation.T  # [C, M, 3]
        cam = vertices[safe] @ rotation.T + translation
        pick = silhouette_pick(normals[None], cam[None], (cand >= 0)[None])[0]
        chosen = cam[torch.arange(len(ci)), pick]
        pix[ci] = project_points(chosen, camera)
    return pix


def random_faces(
    model: FaceModel,
    n: int,
    *,
    seed: int = 0,
    kind: str = "mediapipe468",
    image_size: tuple[int, int] = (512, 512),
    face_width_px: float = 250.0,
    noise_px: float = 1.0,
    yaw_deg: float = 40.0,
    pitch_deg: float = 20.0,
    roll_deg: float = 10.0,
    active: tuple[int, int] = (3, 6),
    weight_range: tuple[float, float] = (0.3, 1.0),
) -> list[SyntheticFace]:
    """Random faces: identity ~N(0, 1), `active` random observable expressions with weights in
    `weight_range`, uniform yaw/pitch/roll within the given ranges, a face about `face_width_px` wide,
    landmarks with Gaussian pixel noise. Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    names = model.expression_names
    observable = [i for i, nme in enumerate(names) if nme not in UNOBSERVABLE_EXPRESSIONS]
    camera = Camera.from_fov(*image_size)
    face_width_cm = 15.0
    out = []
    for _ in range(n):
        identity = torch.tensor(rng.standard_normal(model.num_identity), dtype=torch.float32)
        expression = torch.zeros(len(names))
        k = int(rng.integers(active[0], active[1] + 1))
        idx = rng.choice(observable, size=k, replace=False)
        expression[idx] = torch.tensor(rng.uniform(*weight_range, size=k), dtype=torch.float32)
        angles = (float(rng.uniform(-yaw_deg, yaw_deg)), float(rng.uniform(-pitch_deg, pitch_deg)), float(rng.uniform(-roll_deg, roll_deg)))
        rotation = torch.tensor(rotation_from_angles_deg(*angles), dtype=torch.float32)
        z = camera.fx * face_width_cm / face_width_px
        translation = torch.tensor([rng.uniform(-2, 2), rng.uniform(-2, 2), z], dtype=torch.float32)
        verts = model.vertices(identity, expression)
        pix = silhouette_landmarks(model, verts, rotation, translation, camera, kind)
        pix = pix + torch.tensor(rng.standard_normal(pix.shape) * noise_px, dtype=torch.float32)
        out.append(SyntheticFace(identity, expression, rotation, translation, camera,
                                 Landmarks.from_points(pix.numpy(), kind, detector="synthetic"), angles))
    return out


def aligned_error_mm(a: np.ndarray, b: np.ndarray) -> float:
    """Mean vertex distance after a similarity (Umeyama) alignment of `a` onto `b`, in mm.

    The shape-accuracy measure of fitter tests and benchmarks: pose and scale do not count.

    Args:
        a: [V, 3] vertices in cm (the model's unit), e.g. a fitted face.
        b: [V, 3] vertices in cm, e.g. the ground truth.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    a0, b0 = a - mu_a, b - mu_b
    u, s, vt = np.linalg.svd(b0.T @ a0)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = (s * np.diag(d)).sum() / (a0**2).sum()
    return float(np.linalg.norm(scale * a0 @ rot.T + mu_b - b, axis=1).mean() * 10)
