"""`FaceFit`: the 3DMM fit of one face in one photo (coefficients, pose, camera), savable as JSON.

Pose angles: the head rotation H (model space, +y up, +z towards the viewer) is the fit's rotation with the
model -> OpenCV axis flip removed, ``R = diag(1, -1, -1) @ H``, decomposed as ``H = Ry(yaw) Rx(pitch) Rz(roll)``.
All zero for a face looking straight at the camera; positive yaw turns the nose to the image's right (the
subject turns to their left), positive pitch tilts the nose down, positive roll turns the face counter-clockwise
in the image (the subject's left side goes up).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from affectsynth.fitting.landmarks import EYE_CORNERS
from affectsynth.render.camera import Intrinsics

__all__ = ["FIT_SCHEMA_VERSION", "FaceFit", "Camera", "MODEL_TO_OPENCV", "pose_angles_deg", "rotation_from_angles_deg"]

#: Rotation that turns model axes (+y up, +z to the viewer) into OpenCV camera axes (y down, z forward).
MODEL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Camera(Intrinsics):
    """Pinhole intrinsics in pixels (OpenCV) and the image size they belong to: the renderer's
    `Intrinsics`, plus the fixed-field-of-view default the fitter uses for single photos."""

    @classmethod
    def from_fov(cls, width: int, height: int, *, diagonal_fov_deg: float = 35.0) -> "Camera":
        """Camera with a fixed diagonal field of view, principal point at the image centre."""
        if not 1.0 <= diagonal_fov_deg <= 150.0:
            raise ValueError(f"Camera.from_fov: diagonal_fov_deg must be in [1, 150], got {diagonal_fov_deg}")
        f = math.hypot(width, height) / (2.0 * math.tan(math.radians(diagonal_fov_deg) / 2.0))
        return cls(fx=f, fy=f, cx=width / 2.0, cy=height / 2.0, width=int(width), height=int(height))


def pose_angles_deg(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a model -> camera rotation; see the module docstring."""
    h = MODEL_TO_OPENCV.T @ np.asarray(rotation, dtype=np.float64)
    pitch = math.asin(max(-1.0, min(1.0, -h[1, 2])))
    yaw = math.atan2(h[0, 2], h[2, 2])
    roll = math.atan2(h[1, 0], h[1, 1])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def rotation_from_angles_deg(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Model -> OpenCV camera rotation for head angles (inverse of `pose_angles_deg`)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return MODEL_TO_OPENCV @ ry @ rx @ rz


@dataclass(frozen=True)
class FaceFit:
    """3DMM fit of one face in one photo, OpenCV camera. Holds no pixels: synthesis takes the photo too.

    Camera-space vertices are ``rotation @ model_vertices + translation`` (cm).

    Attributes:
        identity: [K] float32 identity coefficients (~N(0, 1)).
        expression: [S] float32 blendshape weights in [0, 1], in `expression_names` order.
        rotation: [3, 3] float32 model -> camera rotation.
        translation: [3] float32 model origin in camera space, cm.
        camera: pinhole intrinsics and image size.
        landmarks: [N, 2] float32 detected landmarks used for the fit (pixels).
        landmark_kind: their layout ("mediapipe468" or "ibug68").
        residuals: [N] float32 reprojection error per landmark (pixels).
        bbox: (x0, y0, x1, y1) face box, pixels.
        expression_names: names of the blendshapes, in order.
        fit_ms: time spent fitting this face (its share of a batch), milliseconds.
        detect_ms: time spent detecting landmarks in the photo, milliseconds.
        faces_found: how many faces the detector found in the photo (`Landmarks.faces_found`;
            also when only the largest were fitted), or None when unknown. Not saved by `to_dict`.
    """

    identity: Tensor
    expression: Tensor
    rotation: Tensor
    translation: Tensor
    camera: Camera
    landmarks: Tensor
    landmark_kind: str
    residuals: Tensor
    bbox: tuple[float, float, float, float]
    expression_names: tuple[str, ...] = field(default=())
    fit_ms: float = 0.0
    detect_ms: float = 0.0
    faces_found: int | None = None

    def __post_init__(self) -> None:
        if self.rotation.shape != (3, 3) or self.translation.shape != (3,):
            raise ValueError(
                f"FaceFit: rotation must be [3, 3] and translation [3], got {list(self.rotation.shape)}, {list(self.translation.shape)}"
            )
        if self.expression_names and len(self.expression_names) != self.expression.shape[0]:
            raise ValueError(
                f"FaceFit: {len(self.expression_names)} expression names for {self.expression.shape[0]} weights"
            )

    # ------------------------------------------------------------------ derived values
    @property
    def pose_deg(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees, see the module docstring."""
        return pose_angles_deg(self.rotation.detach().cpu().double().numpy())

    @property
    def reprojection_error_px(self) -> float:
        """Mean landmark reprojection error in pixels."""
        return float(self.residuals.mean())

    @property
    def interocular_px(self) -> float:
        """Distance between the outer eye corners of the detected landmarks (300-W's normaliser)."""
        idx = EYE_CORNERS[self.landmark_kind]
        return float(torch.linalg.norm(self.landmarks[idx[0]] - self.landmarks[idx[1]]))

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the photo."""
        return self.camera.width, self.camera.height

    def expression_dict(self) -> dict[str, float]:
        """Blendshape weights by name."""
        return {n: float(w) for n, w in zip(self.expression_names, self.expression.tolist())}

    # ------------------------------------------------------------------ conversions
    def to(self, device: torch.device | str) -> "FaceFit":
        return replace(self, **{k: getattr(self, k).to(device) for k in _TENSORS})

    def detach(self) -> "FaceFit":
        return replace(self, **{k: getattr(self, k).detach() for k in _TENSORS})

    def with_expression(self, expression: Tensor) -> "FaceFit":
        """The same face with other blendshape weights."""
        return replace(self, expression=expression.to(self.expression))

    def cropped(self, x0: float, y0: float, scale: float, width: int, height: int) -> "FaceFit":
        """The same fit seen in a crop of the photo starting at (x0, y0), resized by `scale`.

        Pixel coordinates map as ``p' = (p - (x0, y0)) * scale``; the 3D face and pose are unchanged.
        """
        if scale <= 0:
            raise ValueError(f"FaceFit.cropped: scale must be > 0, got {scale}")
        c = self.camera
        cam = Camera(fx=c.fx * scale, fy=c.fy * scale, cx=(c.cx - x0) * scale, cy=(c.cy - y0) * scale,
                     width=int(width), height=int(height))
        shift = torch.tensor([x0, y0], dtype=self.landmarks.dtype, device=self.landmarks.device)
        bx0, by0, bx1, by1 = self.bbox
        return replace(
            self, camera=cam, landmarks=(self.landmarks - shift) * scale, residuals=self.residuals * scale,
            bbox=((bx0 - x0) * scale, (by0 - y0) * scale, (bx1 - x0) * scale, (by1 - y0) * scale),
        )

    def to_dict(self) -> dict:
        """JSON-safe dict, the fit schema (`FIT_SCHEMA_VERSION`) that `affectsynth fit` writes per face.

        Keys: ``version``; ``identity`` [K]; ``expression`` {blendshape name: weight} (a list in
        model order when the fit has no names); ``rotation`` [3][3] model -> camera;
        ``translation`` [3] cm; ``camera`` (fx, fy, cx, cy, width, height); ``landmarks`` [N][2]
        pixels and their ``landmark_kind``; ``residuals`` [N] pixels; ``bbox``; ``fit_ms``,
        ``detect_ms``; and, for reading only (`from_dict` recomputes them): ``pose_deg``
        {yaw, pitch, roll}, ``reprojection_error_px``, ``interocular_px``.
        """
        d: dict = {"version": FIT_SCHEMA_VERSION}
        d.update({k: getattr(self, k).detach().cpu().tolist() for k in _TENSORS})
        if self.expression_names:
            d["expression"] = dict(zip(self.expression_names, d["expression"]))
        yaw, pitch, roll = self.pose_deg
        d.update(
            camera=self.camera.to_dict(),
            landmark_kind=self.landmark_kind,
            bbox=list(self.bbox),
            fit_ms=self.fit_ms,
            detect_ms=self.detect_ms,
            pose_deg={"yaw": yaw, "pitch": pitch, "roll": roll},
            reprojection_error_px=self.reprojection_error_px,
            interocular_px=self.interocular_px,
        )
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FaceFit":
        """Inverse of `to_dict` (also reads fits saved before the schema had a version).

        Raises:
            ValueError: a malformed fit, or one written by a newer schema version.
        """
        version = d.get("version", 1) if isinstance(d, dict) else None
        if not isinstance(version, int) or version > FIT_SCHEMA_VERSION:
            raise ValueError(f"FaceFit.from_dict: fit schema version {version!r}; this version reads <= {FIT_SCHEMA_VERSION}")
        try:
            d = dict(d)
            names = tuple(d.get("expression_names", ()))
            if isinstance(d.get("expression"), dict):
                names = tuple(d["expression"])
                d["expression"] = list(d["expression"].values())
            tensors = {k: torch.tensor(d[k], dtype=torch.float32) for k in _TENSORS}
            return cls(
                **tensors,
                camera=Camera.from_dict(d["camera"]),
                landmark_kind=str(d["landmark_kind"]),
                bbox=tuple(float(x) for x in d["bbox"]),
                expression_names=names,
                fit_ms=float(d.get("fit_ms", 0.0)),
                detect_ms=float(d.get("detect_ms", 0.0)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"FaceFit.from_dict: malformed fit ({exc!r})") from exc

    def save(self, path: str | Path) -> None:
        """Write as JSON (`to_dict`), atomically: a temporary file, flushed to disk, then renamed."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path, *, face: int = 0) -> "FaceFit":
        """Read a fit saved by `save`, or face ``face`` of a photo's JSON written by ``affectsynth fit``.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a fit, or the photo has no face ``face`` (the message says how many it has).
        """
        fits = cls.load_all(path)
        if not 0 <= face < len(fits):
            raise ValueError(f"FaceFit.load: '{path}' holds {len(fits)} face(s); face {face} does not exist")
        return fits[face]

    @classmethod
    def load_all(cls, path: str | Path) -> "list[FaceFit]":
        """Every fit in a file: the one of a `save`, or all faces of an ``affectsynth fit`` JSON."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"FaceFit.load: no such file '{path}'")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and "faces" in doc:
                return [cls.from_dict(f) for f in doc["faces"]]
            return [cls.from_dict(doc)]
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"FaceFit.load: '{path}' is not a saved fit ({exc})") from exc


#: Version of the fit JSON schema (`FaceFit.to_dict`, ``affectsynth fit``'s per-face entries).
FIT_SCHEMA_VERSION = 2

_TENSORS = ("identity", "expression", "rotation", "translation", "landmarks", "residuals")
