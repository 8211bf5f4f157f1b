"""`FaceFit` serialisation, pose-angle conventions and `Camera` validation."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from affectsynth.fitting import (
    Camera, FaceFit, FaceModel, Landmarks, fit_landmarks, pose_angles_deg, random_faces, rotation_from_angles_deg,
    silhouette_landmarks,
)


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel.default()


@pytest.fixture(scope="module")
def fit(model) -> FaceFit:
    face = random_faces(model, 1, seed=11)[0]
    return fit_landmarks(model, [face.landmarks], [face.camera], detect_ms=[12.5])[0]


def _assert_same(a: FaceFit, b: FaceFit) -> None:
    for name in ("identity", "expression", "rotation", "translation", "landmarks", "residuals"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == torch.float32
        assert torch.equal(x, y), name
    assert a.camera == b.camera
    assert (a.landmark_kind, a.bbox, a.expression_names) == (b.landmark_kind, b.bbox, b.expression_names)
    assert (a.fit_ms, a.detect_ms) == (b.fit_ms, b.detect_ms)


def test_dict_round_trip_is_exact(fit):
    d = fit.to_dict()
    json.dumps(d)  # JSON-safe
    back = FaceFit.from_dict(json.loads(json.dumps(d)))
    _assert_same(fit, back)
    assert back.detect_ms == 12.5 and back.fit_ms > 0
    assert back.expression_dict() == fit.expression_dict()
    assert back.pose_deg == fit.pose_deg


def test_save_load_round_trip_is_exact(fit, tmp_path):
    path = tmp_path / "face.json"
    fit.save(path)
    assert not (tmp_path / "face.json.tmp").exists()
    _assert_same(fit, FaceFit.load(path))


def test_load_errors_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt_fit.json"
    corrupt.write_text('{"identity": [0.1, ')
    with pytest.raises(ValueError, match="corrupt_fit.json"):
        FaceFit.load(corrupt)
    incomplete = tmp_path / "incomplete_fit.json"
    incomplete.write_text(json.dumps({"identity": [0.0]}))
    with pytest.raises(ValueError, match="incomplete_fit.json"):
        FaceFit.load(incomplete)
    with pytest.raises(FileNotFoundError, match="missing_fit.json"):
        FaceFit.load(tmp_path / "missing_fit.json")
    with pytest.raises(ValueError, match="malformed"):
        FaceFit.from_dict({"identity": [0.0]})


def test_conversions_return_new_objects(fit):
    moved = fit.to("cpu")
    assert moved is not fit
    _assert_same(fit, moved)
    assert not fit.detach().rotation.requires_grad
    weights = torch.zeros_like(fit.expression)
    weights[fit.expression_names.index("jawOpen")] = 0.5
    other = fit.with_expression(weights)
    assert other.expression_dict()["jawOpen"] == 0.5 and torch.equal(other.identity, fit.identity)
    assert fit.image_size == (fit.camera.width, fit.camera.height)
    idx = (33, 263)
    assert fit.interocular_px == pytest.approx(float((fit.landmarks[idx[0]] - fit.landmarks[idx[1]]).norm()))
    assert fit.reprojection_error_px == pytest.approx(float(fit.residuals.mean()))
    with pytest.raises(ValueError, match="rotation must be"):
        FaceFit.from_dict({**fit.to_dict(), "rotation": [[1.0, 0.0], [0.0, 1.0]]})


def test_pose_angles_round_trip_over_grid():
    grid = itertools.product(range(-80, 81, 20), range(-60, 61, 20), range(-45, 46, 15))
    for yaw, pitch, roll in grid:
        rot = rotation_from_angles_deg(yaw, pitch, roll)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        np.testing.assert_allclose(pose_angles_deg(rot), (yaw, pitch, roll), atol=1e-9)
    # a frontal face: the model -> OpenCV flip, all angles zero
    np.testing.assert_allclose(rotation_from_angles_deg(0, 0, 0), np.diag([1.0, -1.0, -1.0]))
    assert pose_angles_deg(np.diag([1.0, -1.0, -1.0])) == (0.0, 0.0, 0.0)


POSES = {  # (yaw, pitch, roll) in degrees
    "yaw+": (30.0, 0.0, 0.0), "yaw-": (-30.0, 0.0, 0.0),
    "pitch+": (0.0, 15.0, 0.0), "pitch-": (0.0, -15.0, 0.0),
    "roll+": (0.0, 0.0, 20.0), "roll-": (0.0, 0.0, -20.0),
}


@pytest.fixture(scope="module")
def posed_fits(model) -> dict[str, FaceFit]:
    """Fits (one batch) of landmarks projected from the mean face at known poses."""
    cam = Camera.from_fov(512, 512)
    trans = torch.tensor([0.0, 0.0, 60.0])
    lms = []
    for angles in POSES.values():
        rot = torch.tensor(rotation_from_angles_deg(*angles), dtype=torch.float32)
        pix = silhouette_landmarks(model, model.neutral, rot, trans, cam, "mediapipe468")
        lms.append(Landmarks.from_points(pix.numpy(), "mediapipe468"))
    return dict(zip(POSES, fit_landmarks(model, lms, [cam] * len(lms))))


def _project(fit: FaceFit, points_model: torch.Tensor) -> np.ndarray:
    cam = fit.camera
    p = points_model @ fit.rotation.T + fit.translation
    return (p[:, :2] / p[:, 2:] * torch.tensor([cam.fx, cam.fy]) + torch.tensor([cam.cx, cam.cy])).numpy()


@pytest.mark.parametrize("sign", [1, -1])
def test_pose_sign_conventions(model, posed_fits, sign):
    nose_tip = model.neutral[model.landmarks68[30]]
    inside = torch.tensor([0.0, float(nose_tip[1]), float(nose_tip[2]) - 8.0])  # a point inside the head, behind the nose
    eyes = model.neutral[model.landmarks68[[36, 45]]]  # subject's right, subject's left outer corner
    points = torch.stack([nose_tip, inside, eyes[0], eyes[1]])
    s = "+" if sign > 0 else "-"

    fit = posed_fits["yaw" + s]
    yaw, pitch, roll = fit.pose_deg
    assert yaw == pytest.approx(30.0 * sign, abs=2.0) and abs(pitch) < 2 and abs(roll) < 2
    nose, centre, right_eye, left_eye = _project(fit, points)
    assert sign * (nose[0] - centre[0]) > 10  # positive yaw: the nose moves to the image's right
    assert right_eye[0] < left_eye[0]  # not mirrored: the subject's right eye is on the image's left

    fit = posed_fits["pitch" + s]
    assert fit.pose_deg[1] == pytest.approx(15.0 * sign, abs=2.0)
    nose, centre, _, _ = _project(fit, points)
    assert sign * (nose[1] - centre[1]) > 5  # positive pitch: the nose moves down in the image

    fit = posed_fits["roll" + s]
    assert fit.pose_deg[2] == pytest.approx(20.0 * sign, abs=2.0)
    _, _, right_eye, left_eye = _project(fit, points)
    # positive roll: counter-clockwise in the image, the subject's left eye (image right) goes up
    assert sign * (right_eye[1] - left_eye[1]) > 10


def test_camera_from_fov_and_validation():
    cam = Camera.from_fov(640, 480, diagonal_fov_deg=35.0)
    assert cam.fx == cam.fy == pytest.approx(800.0 / (2 * math.tan(math.radians(17.5))))
    assert (cam.cx, cam.cy, cam.width, cam.height) == (320.0, 240.0, 640, 480)
    assert Camera.from_fov(640, 480, diagonal_fov_deg=60.0).fx < cam.fx  # wider view, shorter focal length
    assert cam.to_dict() == {"fx": cam.fx, "fy": cam.fy, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480}
    for bad in (0.0, 0.5, 151.0, 180.0):
        with pytest.raises(ValueError, match="diagonal_fov_deg"):
            Camera.from_fov(640, 480, diagonal_fov_deg=bad)
    with pytest.raises(ValueError, match="fx, fy > 0"):
        Camera(fx=0.0, fy=500.0, cx=1.0, cy=1.0, width=10, height=10)
    with pytest.raises(ValueError, match="width, height > 0"):
        Camera(fx=500.0, fy=500.0, cx=1.0, cy=1.0, width=0, height=10)
    with pytest.raises(ValueError, match="width, height > 0"):
        Camera.from_fov(640, 0)
